//! Setting types that several binaries parse the same way.

use std::{fmt, str::FromStr, time::Duration};

/// A positive number of seconds, fractions allowed (`0.2`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let seconds: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("{value:?} is not a number of seconds"))?;
        if seconds.is_nan() || seconds <= 0.0 {
            return Err("must be more than 0 seconds".into());
        }
        Duration::try_from_secs_f64(seconds)
            .map(Self)
            .map_err(|_| format!("{value:?} is too large"))
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

impl From<Seconds> for Duration {
    fn from(seconds: Seconds) -> Self {
        seconds.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_may_be_fractions_but_must_be_positive() {
        assert_eq!(
            "0.2".parse::<Seconds>().unwrap().0,
            Duration::from_millis(200)
        );
        assert_eq!(" 5 ".parse::<Seconds>().unwrap().0, Duration::from_secs(5));
        for bad in ["0", "-1", "soon", "NaN", "1e300"] {
            assert!(bad.parse::<Seconds>().is_err(), "{bad}");
        }
    }
}
