//! `DateTime<Utc>` to and from `google.protobuf.Timestamp`, both ways
//! checked against the range a `Timestamp` may hold (0001-01-01T00:00:00Z to
//! 9999-12-31T23:59:59.999999999Z, nanos 0 to 999,999,999). A time outside
//! it is a [`TimestampError`] naming the field, never a panic or a clamp.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

/// Seconds of 0001-01-01T00:00:00Z, the earliest valid `Timestamp`.
pub const MIN_SECONDS: i64 = -62_135_596_800;
/// Seconds of 9999-12-31T23:59:59Z, the latest valid `Timestamp`.
pub const MAX_SECONDS: i64 = 253_402_300_799;
/// Nanos run from 0 to one less than this.
const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// A time a `Timestamp` cannot hold, or a `Timestamp` that is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} is not a valid time (0001-01-01 to 9999-12-31, nanos 0 to 999999999)")]
pub struct TimestampError {
    /// The field that held it.
    pub field: &'static str,
}

/// `time` as a `Timestamp`; `field` names it in the error.
pub fn to_timestamp(field: &'static str, time: DateTime<Utc>) -> Result<Timestamp, TimestampError> {
    let seconds = time.timestamp();
    // chrono keeps a leap second as nanos past 999,999,999; a Timestamp cannot.
    let nanos = time.timestamp_subsec_nanos();
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) || nanos >= NANOS_PER_SECOND {
        return Err(TimestampError { field });
    }
    let nanos = i32::try_from(nanos).map_err(|_| TimestampError { field })?;
    Ok(Timestamp { seconds, nanos })
}

/// The time a `Timestamp` holds; `field` names it in the error.
pub fn from_timestamp(
    field: &'static str,
    value: &Timestamp,
) -> Result<DateTime<Utc>, TimestampError> {
    let nanos = u32::try_from(value.nanos)
        .ok()
        .filter(|nanos| *nanos < NANOS_PER_SECOND);
    match nanos {
        Some(nanos) if (MIN_SECONDS..=MAX_SECONDS).contains(&value.seconds) => {
            DateTime::from_timestamp(value.seconds, nanos).ok_or(TimestampError { field })
        }
        _ => Err(TimestampError { field }),
    }
}

/// An optional `Timestamp` field (a request's optional time).
pub fn from_optional(
    field: &'static str,
    value: Option<&Timestamp>,
) -> Result<Option<DateTime<Utc>>, TimestampError> {
    value.map(|value| from_timestamp(field, value)).transpose()
}

/// True when a `Timestamp` can hold `time`.
pub fn in_range(time: DateTime<Utc>) -> bool {
    to_timestamp("time", time).is_ok()
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    #[test]
    fn times_round_trip() {
        let time = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap();
        let timestamp = to_timestamp("t", time).unwrap();
        assert_eq!(
            timestamp,
            Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_456_789
            }
        );
        assert_eq!(from_timestamp("t", &timestamp).unwrap(), time);
        let first = Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(to_timestamp("t", first).unwrap().seconds, MIN_SECONDS);
        let last = Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(to_timestamp("t", last).unwrap().seconds, MAX_SECONDS);
        assert_eq!(
            from_timestamp("t", &to_timestamp("t", last).unwrap()).unwrap(),
            last
        );
    }

    #[test]
    fn out_of_range_times_are_errors_naming_the_field() {
        let too_late = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            to_timestamp("create_time", too_late),
            Err(TimestampError {
                field: "create_time"
            })
        );
        let too_early = Utc.with_ymd_and_hms(0, 12, 31, 23, 59, 59).unwrap();
        assert!(to_timestamp("t", too_early).is_err());
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        assert!(to_timestamp("t", leap).is_err());

        for (seconds, nanos) in [
            (0, -1),
            (0, 1_000_000_000),
            (i64::MAX, 0),
            (i64::MIN, 0),
            (MAX_SECONDS + 1, 0),
            (MIN_SECONDS - 1, 0),
        ] {
            let error = from_timestamp("end_time", &Timestamp { seconds, nanos }).unwrap_err();
            assert_eq!(error.field, "end_time");
            assert!(
                error
                    .to_string()
                    .starts_with("end_time is not a valid time")
            );
        }
    }

    #[test]
    fn optional_times() {
        assert_eq!(from_optional("t", None), Ok(None));
        let zero = Timestamp::default();
        assert_eq!(
            from_optional("t", Some(&zero)),
            Ok(DateTime::from_timestamp(0, 0))
        );
        assert!(
            from_optional(
                "t",
                Some(&Timestamp {
                    seconds: 0,
                    nanos: -1
                })
            )
            .is_err()
        );
    }
}
