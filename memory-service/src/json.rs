//! Exact conversion between `google.protobuf.Struct` and JSON text.
//!
//! Going in, every number of a `Struct` is an `f64`; whole numbers below
//! 2^53 are written as integers (`1`, not `1.0`), the rest in the shortest
//! form that reads back as the same `f64`, and non-finite numbers, which
//! JSON cannot hold, are refused. Coming out, the JSON is parsed with exact
//! float parsing (`serde_json`'s `float_roundtrip`), so a memory comes back
//! exactly as it was given.

use std::collections::BTreeMap;

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Number, Value as Json};

/// Largest magnitude below which every whole `f64` is an exact integer.
const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53

/// Why a `Struct` cannot be stored as JSON. The message names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DataError {
    /// NaN or an infinity.
    #[error("{0} is not a finite number; JSON has no NaN or Infinity")]
    NotFinite(String),
    /// A `Value` with no kind set.
    #[error("{0} has no value (set null_value for null)")]
    NoValue(String),
    /// A string or key with a NUL character, which PostgreSQL text cannot hold.
    #[error("{0} contains a NUL character, which cannot be stored")]
    Nul(String),
}

/// The JSON text of `data`.
pub fn struct_to_json(data: &Struct) -> Result<String, DataError> {
    let value = fields_to_json("data", &data.fields)?;
    Ok(value.to_string())
}

/// The `Struct` of stored JSON text; `None` if the text is not a JSON object
/// (which the service never stores).
pub fn json_to_struct(text: &str) -> Option<Struct> {
    match serde_json::from_str::<Json>(text).ok()? {
        Json::Object(map) => Some(Struct {
            fields: map
                .into_iter()
                .map(|(key, value)| (key, json_to_value(value)))
                .collect(),
        }),
        _ => None,
    }
}

fn fields_to_json(path: &str, fields: &BTreeMap<String, Value>) -> Result<Json, DataError> {
    let mut map = Map::new();
    for (key, value) in fields {
        let path = format!("{path}.{key}");
        if key.contains('\0') {
            return Err(DataError::Nul(path));
        }
        let value = value_to_json(&path, value)?;
        map.insert(key.clone(), value);
    }
    Ok(Json::Object(map))
}

fn value_to_json(path: &str, value: &Value) -> Result<Json, DataError> {
    Ok(match &value.kind {
        None => return Err(DataError::NoValue(path.to_owned())),
        Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StringValue(s)) => {
            if s.contains('\0') {
                return Err(DataError::Nul(path.to_owned()));
            }
            Json::String(s.clone())
        }
        Some(Kind::NumberValue(n)) => number_to_json(path, *n)?,
        Some(Kind::StructValue(s)) => fields_to_json(path, &s.fields)?,
        Some(Kind::ListValue(list)) => Json::Array(
            list.values
                .iter()
                .enumerate()
                .map(|(i, v)| value_to_json(&format!("{path}[{i}]"), v))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn number_to_json(path: &str, n: f64) -> Result<Json, DataError> {
    if !n.is_finite() {
        return Err(DataError::NotFinite(path.to_owned()));
    }
    // -0.0 stays a float so that its sign survives.
    let whole =
        n.fract() == 0.0 && n.abs() < EXACT_INTEGER_LIMIT && !(n == 0.0 && n.is_sign_negative());
    if whole {
        // Exact: |n| < 2^53 is a whole number, so the cast loses nothing.
        return Ok(Json::Number(Number::from(n as i64)));
    }
    Number::from_f64(n)
        .map(Json::Number)
        .ok_or_else(|| DataError::NotFinite(path.to_owned()))
}

fn json_to_value(json: Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        // Every number we store came from an f64 and reads back as that f64.
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(values) => Kind::ListValue(ListValue {
            values: values.into_iter().map(json_to_value).collect(),
        }),
        Json::Object(map) => Kind::StructValue(Struct {
            fields: map
                .into_iter()
                .map(|(key, value)| (key, json_to_value(value)))
                .collect(),
        }),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(n: f64) -> Value {
        Value {
            kind: Some(Kind::NumberValue(n)),
        }
    }

    fn data(fields: Vec<(&str, Value)>) -> Struct {
        Struct {
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    #[test]
    fn numbers_round_trip_exactly() {
        let numbers = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.1 + 0.2,
            1e-7,
            1e21,
            123456789.123456789,
            9_007_199_254_740_991.0,
            9_007_199_254_740_993.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            2.2250738585072009e-308,
        ];
        for n in numbers {
            let original = data(vec![("n", number(n))]);
            let text = struct_to_json(&original).unwrap();
            let back = json_to_struct(&text).unwrap();
            let Some(Kind::NumberValue(m)) = back.fields["n"].kind else {
                panic!("{text}")
            };
            assert_eq!(n.to_bits(), m.to_bits(), "{n} -> {text} -> {m}");
        }
    }

    #[test]
    fn whole_numbers_are_written_as_integers() {
        let text = struct_to_json(&data(vec![("a", number(3.0)), ("b", number(-0.0))])).unwrap();
        assert_eq!(text, r#"{"a":3,"b":-0.0}"#);
    }

    #[test]
    fn non_finite_numbers_and_missing_values_are_refused() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let nested = data(vec![(
                "outer",
                Value {
                    kind: Some(Kind::ListValue(ListValue {
                        values: vec![number(1.0), number(bad)],
                    })),
                },
            )]);
            assert_eq!(
                struct_to_json(&nested),
                Err(DataError::NotFinite("data.outer[1]".into()))
            );
        }
        assert_eq!(
            struct_to_json(&data(vec![("x", Value { kind: None })])),
            Err(DataError::NoValue("data.x".into()))
        );
    }
}
