//! Exact conversion between JSON and protobuf's `google.protobuf.Struct`, the
//! type that carries memory records. The CLI, the MCP server and the
//! memory-service all convert through here, so a record means the same
//! everywhere.
//!
//! A `Struct` stores every number as an `f64`, so the conversion refuses what
//! an `f64` cannot hold exactly (integers beyond 2^53) or what JSON cannot say
//! (NaN, infinities, a value with no kind), and NUL characters, which
//! PostgreSQL text cannot hold, instead of silently changing the data. Whole
//! numbers are written as JSON integers (`1`, not `1.0`), other numbers in the
//! shortest form that reads back as the same `f64` (`-0.0` keeps its sign),
//! and parsing is exact (`serde_json`'s `float_roundtrip`). Errors name the
//! field, e.g. `data.steps[2]`.

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Number, Value as Json};

/// Largest integer magnitude that every `f64` between it and zero can hold
/// exactly (2^53).
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// Name of the top-level object in error messages.
const ROOT: &str = "data";

/// Why a value could not be converted. Messages name the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// An integer too large to be stored exactly as an `f64`.
    #[error("{path} = {number} cannot be stored exactly: integers must lie between -2^53 and 2^53")]
    InexactInteger {
        /// The field.
        path: String,
        /// The number as written.
        number: String,
    },
    /// NaN or an infinity, which JSON cannot represent.
    #[error("{0} is not a finite number; JSON has no NaN or Infinity")]
    NonFinite(String),
    /// A protobuf `Value` with no kind set.
    #[error("{0} has no value (set null_value for null)")]
    NoValue(String),
    /// A string or key with a NUL character.
    #[error("{0} contains a NUL character, which cannot be stored")]
    Nul(String),
    /// The top-level value was not a JSON object.
    #[error("expected a JSON object")]
    NotAnObject,
    /// Text that is not JSON at all.
    #[error("not valid JSON: {0}")]
    Syntax(String),
}

/// Converts any JSON value that must be an object into a `Struct`.
pub fn json_to_struct(json: Json) -> Result<Struct, JsonError> {
    match json {
        Json::Object(object) => object_to_struct(object),
        _ => Err(JsonError::NotAnObject),
    }
}

/// Converts a JSON object into a `Struct`.
pub fn object_to_struct(object: Map<String, Json>) -> Result<Struct, JsonError> {
    fields_from_json(object).map_err(Located::into_error)
}

/// Parses JSON text that must hold an object into a `Struct`.
pub fn text_to_struct(text: &str) -> Result<Struct, JsonError> {
    let json = serde_json::from_str(text).map_err(|error| JsonError::Syntax(error.to_string()))?;
    json_to_struct(json)
}

/// Converts a `Struct` back into a JSON object.
pub fn struct_to_object(value: Struct) -> Result<Map<String, Json>, JsonError> {
    fields_to_json(value).map_err(Located::into_error)
}

/// The JSON text of a `Struct`.
pub fn struct_to_text(value: Struct) -> Result<String, JsonError> {
    Ok(Json::Object(struct_to_object(value)?).to_string())
}

/// What is wrong with one value, before we know where it is.
enum Fault {
    InexactInteger(String),
    NonFinite,
    NoValue,
    Nul,
}

/// One step of a field's path.
enum Segment {
    Key(String),
    Index(usize),
}

/// A fault and its path, innermost step first. The path is collected only
/// as an error travels up, so a conversion that succeeds builds no path
/// strings and stays linear in the size of the record.
struct Located {
    fault: Fault,
    path: Vec<Segment>,
}

impl Located {
    fn new(fault: Fault) -> Self {
        Self {
            fault,
            path: Vec::new(),
        }
    }

    fn at(mut self, segment: Segment) -> Self {
        self.path.push(segment);
        self
    }

    fn into_error(self) -> JsonError {
        let mut path = ROOT.to_owned();
        for segment in self.path.iter().rev() {
            match segment {
                Segment::Key(key) => {
                    path.push('.');
                    path.push_str(key);
                }
                Segment::Index(index) => path.push_str(&format!("[{index}]")),
            }
        }
        match self.fault {
            Fault::InexactInteger(number) => JsonError::InexactInteger { path, number },
            Fault::NonFinite => JsonError::NonFinite(path),
            Fault::NoValue => JsonError::NoValue(path),
            Fault::Nul => JsonError::Nul(path),
        }
    }
}

fn fields_from_json(object: Map<String, Json>) -> Result<Struct, Located> {
    let fields = object
        .into_iter()
        .map(|(key, value)| {
            let at_key = |located: Located| located.at(Segment::Key(key.clone()));
            refuse_nul(&key).map_err(at_key)?;
            let value = json_to_value(value).map_err(at_key)?;
            Ok((key, value))
        })
        .collect::<Result<_, Located>>()?;
    Ok(Struct { fields })
}

fn json_to_value(json: Json) -> Result<Value, Located> {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(flag) => Kind::BoolValue(flag),
        Json::Number(number) => Kind::NumberValue(number_to_f64(&number)?),
        Json::String(text) => {
            refuse_nul(&text)?;
            Kind::StringValue(text)
        }
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items
                .into_iter()
                .enumerate()
                .map(|(index, item)| {
                    json_to_value(item).map_err(|located| located.at(Segment::Index(index)))
                })
                .collect::<Result<_, _>>()?,
        }),
        Json::Object(object) => Kind::StructValue(fields_from_json(object)?),
    };
    Ok(Value { kind: Some(kind) })
}

fn fields_to_json(value: Struct) -> Result<Map<String, Json>, Located> {
    value
        .fields
        .into_iter()
        .map(|(key, value)| {
            let at_key = |located: Located| located.at(Segment::Key(key.clone()));
            refuse_nul(&key).map_err(at_key)?;
            let value = value_to_json(value).map_err(at_key)?;
            Ok((key, value))
        })
        .collect()
}

fn value_to_json(value: Value) -> Result<Json, Located> {
    Ok(match value.kind {
        None => return Err(Located::new(Fault::NoValue)),
        Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(flag)) => Json::Bool(flag),
        Some(Kind::NumberValue(number)) => Json::Number(f64_to_number(number)?),
        Some(Kind::StringValue(text)) => {
            refuse_nul(&text)?;
            Json::String(text)
        }
        Some(Kind::ListValue(list)) => Json::Array(
            list.values
                .into_iter()
                .enumerate()
                .map(|(index, item)| {
                    value_to_json(item).map_err(|located| located.at(Segment::Index(index)))
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(Kind::StructValue(object)) => Json::Object(fields_to_json(object)?),
    })
}

fn refuse_nul(text: &str) -> Result<(), Located> {
    if text.contains('\0') {
        return Err(Located::new(Fault::Nul));
    }
    Ok(())
}

fn number_to_f64(number: &Number) -> Result<f64, Located> {
    let exact = |magnitude: u64, negative: bool| {
        if magnitude > MAX_EXACT_INTEGER {
            return Err(Located::new(Fault::InexactInteger(number.to_string())));
        }
        // Exact: magnitude <= 2^53.
        let float = magnitude as f64;
        Ok(if negative { -float } else { float })
    };
    if let Some(integer) = number.as_u64() {
        return exact(integer, false);
    }
    if let Some(integer) = number.as_i64() {
        return exact(integer.unsigned_abs(), integer < 0);
    }
    match number.as_f64() {
        Some(float) if float.is_finite() => Ok(float),
        _ => Err(Located::new(Fault::NonFinite)),
    }
}

fn f64_to_number(float: f64) -> Result<Number, Located> {
    let non_finite = || Located::new(Fault::NonFinite);
    if !float.is_finite() {
        return Err(non_finite());
    }
    let integral = float.fract() == 0.0 && float.abs() <= MAX_EXACT_INTEGER as f64;
    // -0.0 stays a float so its sign survives.
    if integral && !(float == 0.0 && float.is_sign_negative()) {
        // Exact: an integral f64 within 2^53 fits an i64.
        return Ok(Number::from(float as i64));
    }
    Number::from_f64(float).ok_or_else(non_finite)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn number(float: f64) -> Value {
        Value {
            kind: Some(Kind::NumberValue(float)),
        }
    }

    fn record(fields: Vec<(&str, Value)>) -> Struct {
        Struct {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    fn round_trip(json: Json) -> Json {
        let converted = json_to_struct(json).expect("converts to Struct");
        Json::Object(struct_to_object(converted).expect("converts back"))
    }

    #[test]
    fn nested_records_round_trip_exactly() {
        let record = json!({
            "message": "deploy with `make release`, then tag ✓",
            "count": 3,
            "negative": -17,
            "ratio": 0.1,
            "tiny": 5e-324,
            "big": 9007199254740992_u64,
            "minus_zero": -0.0,
            "flags": [true, false, null],
            "nested": {"list": [1, 2.5, "three", {"deep": []}], "empty": {}},
            "": "empty key",
        });
        assert_eq!(round_trip(record.clone()), record);
        assert_eq!(
            serde_json::to_string(&round_trip(record.clone())).unwrap(),
            serde_json::to_string(&record).unwrap()
        );
    }

    #[test]
    fn integers_come_back_as_integers() {
        let back = round_trip(json!({"n": 42, "m": -42}));
        assert_eq!(back["n"].as_i64(), Some(42));
        assert_eq!(back["m"].as_i64(), Some(-42));
        assert_eq!(serde_json::to_string(&back).unwrap(), r#"{"m":-42,"n":42}"#);
    }

    #[test]
    fn integers_beyond_two_to_the_53_are_refused() {
        for too_big in [
            json!(9007199254740993_u64),
            json!(-9007199254740993_i64),
            json!(u64::MAX),
        ] {
            assert!(matches!(
                json_to_struct(json!({"n": too_big})),
                Err(JsonError::InexactInteger { path, .. }) if path == "data.n"
            ));
        }
    }

    #[test]
    fn non_objects_are_refused() {
        for value in [json!([1]), json!("text"), json!(1), json!(null)] {
            assert_eq!(json_to_struct(value), Err(JsonError::NotAnObject));
        }
    }

    #[test]
    fn numbers_round_trip_exactly_through_text() {
        for float in [
            0.0,
            -0.0,
            0.1,
            0.1 + 0.2,
            1e-7,
            1e21,
            123_456_789.123_456_78,
            9_007_199_254_740_991.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
        ] {
            let text = struct_to_text(record(vec![("n", number(float))])).unwrap();
            let back = text_to_struct(&text).unwrap();
            let Some(Kind::NumberValue(read)) = back.fields["n"].kind else {
                panic!("{text}")
            };
            assert_eq!(
                float.to_bits(),
                read.to_bits(),
                "{float} -> {text} -> {read}"
            );
        }
    }

    #[test]
    fn whole_numbers_are_written_as_integers() {
        let text = struct_to_text(record(vec![("a", number(3.0)), ("b", number(-0.0))])).unwrap();
        assert_eq!(text, r#"{"a":3,"b":-0.0}"#);
    }

    #[test]
    fn non_finite_numbers_from_a_struct_are_refused_naming_the_field() {
        for float in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let list = Value {
                kind: Some(Kind::ListValue(ListValue {
                    values: vec![number(1.0), number(float)],
                })),
            };
            assert_eq!(
                struct_to_object(record(vec![("outer", list)])),
                Err(JsonError::NonFinite("data.outer[1]".into()))
            );
        }
    }

    #[test]
    fn a_value_without_kind_is_refused() {
        assert_eq!(
            struct_to_object(record(vec![("x", Value { kind: None })])),
            Err(JsonError::NoValue("data.x".into()))
        );
    }

    #[test]
    fn nul_characters_are_refused_in_keys_and_strings() {
        assert_eq!(
            json_to_struct(json!({"a": {"b\u{0}": 1}})),
            Err(JsonError::Nul("data.a.b\u{0}".into()))
        );
        assert_eq!(
            json_to_struct(json!({"s": ["ok", "x\u{0}y"]})),
            Err(JsonError::Nul("data.s[1]".into()))
        );
    }

    #[test]
    fn conversion_is_linear_in_the_size_of_the_record() {
        // 300 KB of small elements, nested and wide: a path string per
        // element made this quadratic (0.3 s of CPU); now it is a single
        // pass. The bound is generous so the test cannot flake on a slow
        // machine, yet far below what the quadratic version took.
        let wide = json!({"list": vec![json!({"k": [0, 1, 2]}); 25_000]});
        let mut deep = json!(0);
        for _ in 0..120 {
            deep = json!({"nested": [deep]});
        }
        let started = std::time::Instant::now();
        for json in [wide, deep] {
            let back = round_trip(json.clone());
            assert_eq!(back, json);
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_path_names_deep_faults() {
        assert_eq!(
            json_to_struct(json!({"a": [{"b": [0, {"c": "x\u{0}"}]}]})),
            Err(JsonError::Nul("data.a[0].b[1].c".into()))
        );
    }

    #[test]
    fn text_that_is_not_an_object_is_refused() {
        assert!(matches!(text_to_struct("{"), Err(JsonError::Syntax(_))));
        assert_eq!(text_to_struct("[1]"), Err(JsonError::NotAnObject));
    }
}
