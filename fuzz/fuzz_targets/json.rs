//! JSON <-> `google.protobuf.Struct` (`ninaivalaigal::json`), both ways.
//! First byte even: the rest is JSON text; whatever `text_to_struct`
//! accepts must come back from `struct_to_text` as the same data (numbers
//! equal as `f64`, bit for bit) and the second trip must change nothing.
//! First byte odd: the rest is a protobuf-encoded `Struct` (any bytes prost
//! accepts, so NaN, infinities, values without a kind, NUL characters);
//! converting it to JSON may fail but never panics, and what converts comes
//! back as the same `Struct`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ninaivalaigal::json::{struct_to_text, text_to_struct};
use prost::Message;
use prost_types::{Struct, Value, value::Kind};
use serde_json::Value as Json;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            from_text(text);
        }
    } else if let Ok(record) = Struct::decode(rest) {
        from_struct(record);
    }
});

fn from_text(text: &str) {
    let Ok(record) = text_to_struct(text) else {
        return;
    };
    let written = struct_to_text(record.clone()).expect("a Struct read from JSON writes back");
    let original: Json = serde_json::from_str(text).expect("text_to_struct read it");
    let back: Json = serde_json::from_str(&written).expect("struct_to_text writes JSON");
    assert!(same_json(&original, &back), "{text} -> {written}");
    let again = text_to_struct(&written).expect("written JSON reads back");
    assert!(same_struct(&record, &again), "{text} -> {written}");
    assert_eq!(struct_to_text(again).expect("writes again"), written);
}

fn from_struct(record: Struct) {
    let Ok(text) = struct_to_text(record.clone()) else {
        return;
    };
    let back = text_to_struct(&text).expect("JSON written from a Struct reads back");
    assert!(same_struct(&record, &back), "{record:?} -> {text}");
}

/// Equal JSON, numbers compared as the `f64` they stand for (a `Struct`
/// holds nothing else, so `1.0` and `1` are the same number).
fn same_json(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(a), Json::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        },
        (Json::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_json(a, b))
        }
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((ka, va), (kb, vb))| ka == kb && same_json(va, vb))
        }
        _ => a == b,
    }
}

/// Equal `Struct`s, numbers bit for bit (so `-0.0` is not `0.0`); every
/// `null_value` is JSON's one null.
fn same_struct(a: &Struct, b: &Struct) -> bool {
    a.fields.len() == b.fields.len()
        && a.fields
            .iter()
            .zip(&b.fields)
            .all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (&a.kind, &b.kind) {
        (Some(Kind::NullValue(_)), Some(Kind::NullValue(_))) => true,
        (Some(Kind::NumberValue(a)), Some(Kind::NumberValue(b))) => a.to_bits() == b.to_bits(),
        (Some(Kind::ListValue(a)), Some(Kind::ListValue(b))) => {
            a.values.len() == b.values.len()
                && a.values
                    .iter()
                    .zip(&b.values)
                    .all(|(a, b)| same_value(a, b))
        }
        (Some(Kind::StructValue(a)), Some(Kind::StructValue(b))) => same_struct(a, b),
        (a, b) => a == b,
    }
}
