use crate::ParseTimestampError;
use chrono::{DateTime, NaiveDateTime, Utc};
use std::fmt;
use std::str::FromStr;

/// A hybrid logical clock timestamp: nanoseconds since the Unix epoch plus a logical counter
/// that orders events sharing a wall time.
///
/// Ordering is lexicographic on `(wall_time_ns, logical)` (field order matters for the derive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timestamp {
    /// Nanoseconds since 1970-01-01 00:00:00 UTC.
    pub wall_time_ns: u64,
    /// Logical counter within one wall time.
    pub logical: u32,
}

/// Digits of the logical part in the decimal text form.
const LOGICAL_DIGITS: usize = 10;

impl Timestamp {
    /// The zero timestamp: older than every real write.
    pub const ZERO: Timestamp = Timestamp {
        wall_time_ns: 0,
        logical: 0,
    };
    /// The largest timestamp.
    pub const MAX: Timestamp = Timestamp {
        wall_time_ns: u64::MAX,
        logical: u32::MAX,
    };

    /// A timestamp from its two parts.
    pub const fn new(wall_time_ns: u64, logical: u32) -> Self {
        Timestamp {
            wall_time_ns,
            logical,
        }
    }

    /// Whether this is [`Timestamp::ZERO`].
    pub const fn is_zero(self) -> bool {
        self.wall_time_ns == 0 && self.logical == 0
    }

    /// The smallest timestamp greater than `self` (saturating at [`Timestamp::MAX`]).
    pub const fn next(self) -> Self {
        if self.logical < u32::MAX {
            Timestamp::new(self.wall_time_ns, self.logical + 1)
        } else if self.wall_time_ns < u64::MAX {
            Timestamp::new(self.wall_time_ns + 1, 0)
        } else {
            Timestamp::MAX
        }
    }

    /// The largest timestamp smaller than `self` (saturating at [`Timestamp::ZERO`]).
    pub const fn prev(self) -> Self {
        if self.logical > 0 {
            Timestamp::new(self.wall_time_ns, self.logical - 1)
        } else if self.wall_time_ns > 0 {
            Timestamp::new(self.wall_time_ns - 1, u32::MAX)
        } else {
            Timestamp::ZERO
        }
    }

    /// Parses CockroachDB's decimal form `WALL.LOGICAL`, e.g. `1700000000123456789.0000000003`.
    ///
    /// The text is a decimal number of nanoseconds: the fraction holds the logical part scaled to
    /// ten digits, so `5.0000000003` is logical 3 and `5.1` is logical 1000000000. A bare integer
    /// means logical 0.
    pub fn parse_decimal(input: &str) -> Result<Self, ParseTimestampError> {
        let err = |reason| ParseTimestampError::Decimal {
            input: input.to_string(),
            reason,
        };
        let (wall, frac) = match input.split_once('.') {
            Some((wall, frac)) => (wall, Some(frac)),
            None => (input, None),
        };
        if wall.is_empty() || !wall.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("the wall time must be decimal digits"));
        }
        let wall_time_ns = wall
            .parse::<u64>()
            .map_err(|_| err("the wall time does not fit in 64 bits"))?;
        let logical = match frac {
            None => 0,
            Some(frac) => {
                if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("the logical part must be decimal digits"));
                }
                if frac.len() > LOGICAL_DIGITS {
                    return Err(err("the logical part has more than 10 digits"));
                }
                let scaled = format!("{frac:0<LOGICAL_DIGITS$}");
                scaled
                    .parse::<u32>()
                    .map_err(|_| err("the logical part does not fit in 32 bits"))?
            }
        };
        Ok(Timestamp::new(wall_time_ns, logical))
    }

    /// The SQL `TIMESTAMPTZ` text of the wall time, in UTC, as PostgreSQL prints it
    /// (`2023-11-14 22:13:20.123456+00`): microsecond precision, trailing zeros trimmed.
    /// The logical part and sub-microsecond nanoseconds are not representable and are dropped.
    pub fn to_timestamptz_string(self) -> String {
        let secs = (self.wall_time_ns / 1_000_000_000) as i64;
        let nanos = (self.wall_time_ns % 1_000_000_000) as u32;
        let micros = nanos / 1_000;
        // Invariant: any u64 of nanoseconds is within chrono's range (year 2554 at most).
        let dt = DateTime::<Utc>::from_timestamp(secs, micros * 1_000)
            .expect("u64 nanoseconds since the epoch are always a valid chrono date");
        let mut out = dt.format("%Y-%m-%d %H:%M:%S").to_string();
        if micros != 0 {
            let frac = format!("{micros:06}");
            out.push('.');
            out.push_str(frac.trim_end_matches('0'));
        }
        out.push_str("+00");
        out
    }

    /// Reads a SQL `TIMESTAMPTZ` literal: `YYYY-MM-DD HH:MM:SS[.fraction][zone]` with a space or
    /// `T` between date and time, and a zone of `Z`, `+HH`, `+HH:MM` or `+HHMM` (UTC when
    /// absent). Nanosecond fractions are kept; the logical part is 0.
    pub fn parse_timestamptz(input: &str) -> Result<Self, ParseTimestampError> {
        let trimmed = input.trim();
        let normalized = match trimmed.strip_suffix(['Z', 'z']) {
            Some(rest) => format!("{rest}+00:00"),
            None => trimmed.to_string(),
        }
        .replacen('T', " ", 1);
        let nanos = parse_with_zone(&normalized)
            .or_else(|| parse_without_zone(&normalized))
            .ok_or_else(|| ParseTimestampError::TimestampTz {
                input: input.to_string(),
            })?;
        let wall_time_ns = u64::try_from(nanos).map_err(|_| ParseTimestampError::OutOfRange {
            input: input.to_string(),
        })?;
        Ok(Timestamp::new(wall_time_ns, 0))
    }
}

fn parse_with_zone(s: &str) -> Option<i128> {
    ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%#z"]
        .iter()
        .find_map(|fmt| DateTime::parse_from_str(s, fmt).ok())
        .map(|dt| nanos_since_epoch(dt.timestamp(), dt.timestamp_subsec_nanos()))
}

fn parse_without_zone(s: &str) -> Option<i128> {
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]
        .iter()
        .find_map(|fmt| {
            NaiveDateTime::parse_from_str(s, fmt).ok().or_else(|| {
                chrono::NaiveDate::parse_from_str(s, fmt)
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            })
        })
        .map(|dt| {
            let utc = dt.and_utc();
            nanos_since_epoch(utc.timestamp(), utc.timestamp_subsec_nanos())
        })
}

fn nanos_since_epoch(secs: i64, subsec_nanos: u32) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(subsec_nanos)
}

/// The decimal form, `WALL.LOGICAL` with the logical part as ten digits.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:0width$}",
            self.wall_time_ns,
            self.logical,
            width = LOGICAL_DIGITS
        )
    }
}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    /// Reads the decimal form (see [`Timestamp::parse_decimal`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse_decimal(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the decimal form matches CockroachDB's, byte for byte, on a known value.
    #[test]
    fn decimal_form_matches_cockroachdb() {
        let ts = Timestamp::new(1_700_000_000_123_456_789, 3);
        assert_eq!(ts.to_string(), "1700000000123456789.0000000003");
        assert_eq!(
            "1700000000123456789.0000000003".parse::<Timestamp>(),
            Ok(ts)
        );
        assert_eq!(
            "1700000000123456789".parse::<Timestamp>(),
            Ok(Timestamp::new(1_700_000_000_123_456_789, 0))
        );
        // A shorter fraction is a decimal fraction, scaled to ten digits.
        assert_eq!(
            "5.1".parse::<Timestamp>(),
            Ok(Timestamp::new(5, 1_000_000_000))
        );
    }

    // Goal: malformed decimal text is refused with an error, never misread.
    #[test]
    fn decimal_form_rejects_garbage() {
        for bad in [
            "",
            ".",
            "1.",
            ".5",
            "-1.0",
            "1.2.3",
            "abc",
            "1.00000000001",
            "1.9",
            "1 .0",
            "99999999999999999999.0",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "accepted {bad:?}");
        }
    }

    // Goal: TIMESTAMPTZ text is printed as PostgreSQL does and read back in its common spellings.
    #[test]
    fn timestamptz_forms() {
        let ts = Timestamp::new(1_700_000_000_123_456_000, 0);
        assert_eq!(ts.to_timestamptz_string(), "2023-11-14 22:13:20.123456+00");
        assert_eq!(
            Timestamp::new(1_700_000_000_000_000_000, 7).to_timestamptz_string(),
            "2023-11-14 22:13:20+00"
        );
        for text in [
            "2023-11-14 22:13:20.123456+00",
            "2023-11-14 22:13:20.123456+00:00",
            "2023-11-14T22:13:20.123456Z",
            "2023-11-14 22:13:20.123456",
            "2023-11-15 00:13:20.123456+02:00",
            "2023-11-14 20:13:20.123456-0200",
        ] {
            assert_eq!(Timestamp::parse_timestamptz(text), Ok(ts), "{text}");
        }
        assert_eq!(
            Timestamp::parse_timestamptz("2023-11-14"),
            Ok(Timestamp::new(1_699_920_000_000_000_000, 0))
        );
        assert!(Timestamp::parse_timestamptz("yesterday").is_err());
        assert!(matches!(
            Timestamp::parse_timestamptz("1960-01-01 00:00:00+00"),
            Err(ParseTimestampError::OutOfRange { .. })
        ));
    }

    // Goal: next/prev step to the adjacent timestamp, carrying across the logical limit.
    #[test]
    fn next_and_prev_carry() {
        let ts = Timestamp::new(10, u32::MAX);
        assert_eq!(ts.next(), Timestamp::new(11, 0));
        assert_eq!(ts.next().prev(), ts);
        assert_eq!(Timestamp::MAX.next(), Timestamp::MAX);
        assert_eq!(Timestamp::ZERO.prev(), Timestamp::ZERO);
    }
}
