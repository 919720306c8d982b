//! Text that reaches a terminal. Memories, descriptions and server messages
//! are written by whoever (or whatever assistant) stored them, so before they
//! are printed for a person every character a terminal could act on is made
//! visible: C0 controls (ESC starts colour changes, screen clears, cursor
//! moves, OSC 52 clipboard writes and OSC 8 links), DEL, the C1 controls
//! U+0080 to U+009F (U+009B is a one-character CSI on some terminals) and the
//! bidirectional overrides and isolates U+202A to U+202E and U+2066 to U+2069,
//! which make text read differently from what it is.
//!
//! `--json` stays exact: [`to_json`] writes the same JSON as serde_json,
//! except that DEL, C1 and bidi characters, which JSON allows raw, are
//! written as `\uXXXX` escapes, which every JSON parser reads back as the
//! same characters.

use std::{borrow::Cow, io};

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

/// Whether a terminal could act on `c`, rather than just show it.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}')
}

/// `text` with every unsafe character, newlines and tabs included, written
/// as a visible escape: `\n`, `\t`, `\r`, or `\u{1b}`. For one value (a
/// field, a table cell, a message) that must stay on its line.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_with(text, |_| false)
}

/// Like [`escape`], but keeps line breaks: for whole blocks of output whose
/// lines this program laid out itself.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n')
}

fn escape_with(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !is_unsafe(c) || keep(c) => escaped.push(c),
            '\n' => escaped.push_str("\\n"),
            '\t' => escaped.push_str("\\t"),
            '\r' => escaped.push_str("\\r"),
            c => escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        }
    }
    Cow::Owned(escaped)
}

/// `value` as pretty JSON with no character a terminal could act on.
pub fn to_json<T: Serialize>(value: &T) -> String {
    write_json(value, SafeFormatter(PrettyFormatter::new()))
}

/// `value` as JSON on one line, with no character a terminal could act on.
pub fn to_json_line<T: Serialize>(value: &T) -> String {
    write_json(value, SafeFormatter(CompactFormatter))
}

fn write_json<T: Serialize, F: Formatter>(value: &T, formatter: SafeFormatter<F>) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    // Views are plain data (strings, numbers, maps with string keys), which
    // always serialise.
    match value.serialize(&mut serializer) {
        // serde_json writes valid UTF-8, and the escapes added are ASCII.
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(error) => serde_json::json!({ "error": error.to_string() }).to_string(),
    }
}

/// One of serde_json's formatters, plus `\uXXXX` for the characters that
/// JSON lets through raw but a terminal would act on (serde_json already
/// escapes the C0 controls).
struct SafeFormatter<F>(F);

impl<F: Formatter> Formatter for SafeFormatter<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut rest = fragment;
        while let Some(index) = rest.find(is_unsafe) {
            writer.write_all(&rest.as_bytes()[..index])?;
            let c = rest[index..].chars().next().unwrap_or_default();
            write!(writer, "\\u{:04x}", u32::from(c))?;
            rest = &rest[index + c.len_utf8()..];
        }
        writer.write_all(rest.as_bytes())
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// OSC 52 (clipboard), OSC 8 (link), clear screen, cursor home, a C1
    /// CSI, DEL, and a right-to-left override.
    const HOSTILE: &str = "a\u{1b}]52;c;ZXZpbA==\u{7}b\u{1b}]8;;http://evil.example\u{1b}\\link\u{1b}]8;;\u{1b}\\\u{1b}[2J\u{1b}[H\u{9b}31m\u{7f}\u{202e}cod.exe\u{2066}x\u{2069}\r\n\tz";

    fn assert_inert(text: &str) {
        for c in text.chars() {
            assert!(
                !is_unsafe(c) || c == '\n',
                "raw {:?} in {text:?}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn controls_and_bidi_overrides_become_visible_escapes() {
        let escaped = escape(HOSTILE);
        assert_inert(&escaped);
        assert!(!escaped.contains('\n'));
        assert_eq!(
            escaped,
            "a\\u{1b}]52;c;ZXZpbA==\\u{7}b\\u{1b}]8;;http://evil.example\\u{1b}\\link\\u{1b}]8;;\\u{1b}\\\\u{1b}[2J\\u{1b}[H\\u{9b}31m\\u{7f}\\u{202e}cod.exe\\u{2066}x\\u{2069}\\r\\n\\tz"
        );
        for c in [
            '\u{0}', '\u{1f}', '\u{80}', '\u{9f}', '\u{202a}', '\u{2069}',
        ] {
            assert!(is_unsafe(c), "{:x}", u32::from(c));
        }
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "deploy with make release",
            "naïve café ● 日本語 עברית العربية 🙂",
            r"C:\path\to and \u{1b} typed out",
            "\u{a0}\u{200e}\u{2028}",
        ] {
            assert!(matches!(escape(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn escape_lines_keeps_only_the_line_breaks() {
        assert_eq!(escape_lines("one\ntwo\u{1b}[2J\r"), "one\ntwo\\u{1b}[2J\\r");
        assert_inert(&escape_lines(HOSTILE));
    }

    #[test]
    fn json_is_inert_and_parses_back_to_the_same_data() {
        let value = json!({"message": HOSTILE, HOSTILE: [HOSTILE, 1, null]});
        let text = to_json(&value);
        for c in text.chars() {
            assert!(
                !is_unsafe(c) || c == '\n',
                "raw {:?} in {text}",
                u32::from(c)
            );
        }
        assert!(text.contains("\\u009b") && text.contains("\\u202e") && text.contains("\\u007f"));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        // Otherwise the same layout as serde_json's own pretty printer.
        let plain = json!({"a": [1, {"b": "c"}], "d": {}});
        assert_eq!(
            to_json(&plain),
            serde_json::to_string_pretty(&plain).unwrap()
        );
        assert_eq!(to_json_line(&plain), serde_json::to_string(&plain).unwrap());
        let line = to_json_line(&value);
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), value);
    }
}
