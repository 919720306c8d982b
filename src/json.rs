//! Exact conversion between JSON (`serde_json`) and protobuf's
//! `google.protobuf.Struct`, the type that carries memory records.
//!
//! A `Struct` stores every number as an `f64`, so the conversion refuses what
//! an `f64` cannot hold exactly (integers beyond 2^53) or what JSON cannot
//! say (NaN, infinities) instead of silently changing the data. Integral
//! numbers come back as JSON integers, so `{"n": 1}` round-trips as `1`, not
//! `1.0` (a JSON `1.0` also comes back as `1`: the same value).

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Number, Value as Json};

/// Largest integer magnitude that every `f64` between it and zero can hold
/// exactly (2^53).
const MAX_EXACT_INTEGER: u64 = 1 << 53;

/// Why a value could not be converted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonError {
    /// An integer too large to be stored exactly as an `f64`.
    #[error("the number {0} cannot be stored exactly: integers must lie between -2^53 and 2^53")]
    InexactInteger(String),
    /// NaN or an infinity, which JSON cannot represent.
    #[error("numbers must be finite")]
    NonFinite,
    /// The top-level value was not a JSON object.
    #[error("expected a JSON object")]
    NotAnObject,
}

/// Converts a JSON object into a `Struct`.
pub fn object_to_struct(object: Map<String, Json>) -> Result<Struct, JsonError> {
    let fields = object
        .into_iter()
        .map(|(key, value)| Ok((key, json_to_value(value)?)))
        .collect::<Result<_, JsonError>>()?;
    Ok(Struct { fields })
}

/// Converts any JSON value that must be an object into a `Struct`.
pub fn json_to_struct(json: Json) -> Result<Struct, JsonError> {
    match json {
        Json::Object(object) => object_to_struct(object),
        _ => Err(JsonError::NotAnObject),
    }
}

/// Converts one JSON value into a protobuf `Value`.
pub fn json_to_value(json: Json) -> Result<Value, JsonError> {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(flag) => Kind::BoolValue(flag),
        Json::Number(number) => Kind::NumberValue(number_to_f64(&number)?),
        Json::String(text) => Kind::StringValue(text),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items
                .into_iter()
                .map(json_to_value)
                .collect::<Result<_, _>>()?,
        }),
        Json::Object(object) => Kind::StructValue(object_to_struct(object)?),
    };
    Ok(Value { kind: Some(kind) })
}

/// Converts a `Struct` back into a JSON object.
pub fn struct_to_object(value: Struct) -> Result<Map<String, Json>, JsonError> {
    value
        .fields
        .into_iter()
        .map(|(key, value)| Ok((key, value_to_json(value)?)))
        .collect()
}

/// Converts one protobuf `Value` into JSON. A `Value` with no kind set is
/// null, as in protobuf's JSON mapping.
pub fn value_to_json(value: Value) -> Result<Json, JsonError> {
    Ok(match value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(flag)) => Json::Bool(flag),
        Some(Kind::NumberValue(number)) => Json::Number(f64_to_number(number)?),
        Some(Kind::StringValue(text)) => Json::String(text),
        Some(Kind::ListValue(list)) => Json::Array(
            list.values
                .into_iter()
                .map(value_to_json)
                .collect::<Result<_, _>>()?,
        ),
        Some(Kind::StructValue(object)) => Json::Object(struct_to_object(object)?),
    })
}

fn number_to_f64(number: &Number) -> Result<f64, JsonError> {
    if let Some(integer) = number.as_u64() {
        return exact_integer(integer, false, number);
    }
    if let Some(integer) = number.as_i64() {
        return exact_integer(integer.unsigned_abs(), integer < 0, number);
    }
    match number.as_f64() {
        Some(float) if float.is_finite() => Ok(float),
        _ => Err(JsonError::NonFinite),
    }
}

fn exact_integer(magnitude: u64, negative: bool, number: &Number) -> Result<f64, JsonError> {
    if magnitude > MAX_EXACT_INTEGER {
        return Err(JsonError::InexactInteger(number.to_string()));
    }
    // Exact: magnitude <= 2^53.
    let float = magnitude as f64;
    Ok(if negative { -float } else { float })
}

fn f64_to_number(float: f64) -> Result<Number, JsonError> {
    if !float.is_finite() {
        return Err(JsonError::NonFinite);
    }
    let integral = float.fract() == 0.0 && float.abs() <= MAX_EXACT_INTEGER as f64;
    // -0.0 stays a float so its sign survives.
    if integral && !(float == 0.0 && float.is_sign_negative()) {
        // Exact: an integral f64 within 2^53 fits an i64.
        return Ok(Number::from(float as i64));
    }
    Number::from_f64(float).ok_or(JsonError::NonFinite)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
                Err(JsonError::InexactInteger(_))
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
    fn non_finite_numbers_from_a_struct_are_refused() {
        for float in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let value = Value {
                kind: Some(Kind::NumberValue(float)),
            };
            assert_eq!(value_to_json(value), Err(JsonError::NonFinite));
        }
    }

    #[test]
    fn a_value_without_kind_is_null() {
        assert_eq!(value_to_json(Value { kind: None }), Ok(Json::Null));
    }
}
