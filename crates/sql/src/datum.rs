//! SQL values: [`Datum`], their text forms (PostgreSQL's output and input syntax), casts,
//! comparison across numeric and time types, and their place in index keys.

use crate::descriptors::SqlType;
use crate::error::{SqlError, SqlResult, code};
use crate::keycodec::KeyValue;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use rust_decimal::Decimal;
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use std::cmp::Ordering;
use std::str::FromStr;

/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The earliest date: 4714-11-24 BC (Julian day 0, PostgreSQL's lower bound), as days since
/// the Unix epoch.
pub const DATE_MIN_DAYS: i32 = -2_440_588;
/// The latest date: 262142-12-31 (the last full year chrono represents; PostgreSQL's dates go
/// further), as days since the Unix epoch.
pub const DATE_MAX_DAYS: i32 = 95_026_236;
/// The earliest timestamp: 4714-11-24 00:00:00 BC, in microseconds since the Unix epoch.
pub const TIMESTAMP_MIN_MICROS: i64 = DATE_MIN_DAYS as i64 * MICROS_PER_DAY;
/// The latest timestamp: 262142-12-31 23:59:59.999999, in microseconds since the Unix epoch.
pub const TIMESTAMP_MAX_MICROS: i64 = (DATE_MAX_DAYS as i64 + 1) * MICROS_PER_DAY - 1;

/// Every TIMESTAMP, TIMESTAMPTZ and DATE value lies in `[TIMESTAMP_MIN_MICROS,
/// TIMESTAMP_MAX_MICROS]` (`[DATE_MIN_DAYS, DATE_MAX_DAYS]`): values are checked where they
/// are made (parsing, binary parameters, casts, arithmetic), so formatting, date parts and
/// DATE-to-TIMESTAMP conversion never overflow.
fn range_hint() -> String {
    "timestamps and dates must lie between 4714-11-24 BC and 262142-12-31 AD".into()
}

/// 22008 `timestamp out of range`.
pub fn timestamp_out_of_range() -> SqlError {
    SqlError::new(code::DATETIME_FIELD_OVERFLOW, "timestamp out of range").with_hint(range_hint())
}

/// A timestamp computed in wide arithmetic, checked against the supported range (22008).
pub fn timestamp_in_range(micros: i128) -> SqlResult<i64> {
    if (TIMESTAMP_MIN_MICROS as i128..=TIMESTAMP_MAX_MICROS as i128).contains(&micros) {
        Ok(micros as i64)
    } else {
        Err(timestamp_out_of_range())
    }
}

/// A date's first microsecond since the epoch (22008 outside the timestamp range).
pub fn date_to_micros(days: i32) -> SqlResult<i64> {
    timestamp_in_range(days as i128 * MICROS_PER_DAY as i128)
}

/// A date computed in wide arithmetic, checked against the supported range (22008).
pub fn date_in_range(days: i128) -> SqlResult<i32> {
    if (DATE_MIN_DAYS as i128..=DATE_MAX_DAYS as i128).contains(&days) {
        Ok(days as i32)
    } else {
        Err(
            SqlError::new(code::DATETIME_FIELD_OVERFLOW, "date out of range")
                .with_hint(range_hint()),
        )
    }
}

/// An interval computed in wide arithmetic, checked field by field (22008).
pub fn interval_in_range(months: i128, days: i128, micros: i128) -> SqlResult<Interval> {
    match (
        i32::try_from(months),
        i32::try_from(days),
        i64::try_from(micros),
    ) {
        (Ok(months), Ok(days), Ok(micros)) => Ok(Interval {
            months,
            days,
            micros,
        }),
        _ => Err(SqlError::new(
            code::DATETIME_FIELD_OVERFLOW,
            "interval out of range",
        )),
    }
}

/// An interval: months, days and microseconds (PostgreSQL keeps the three apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// The interval as microseconds, with 30-day months (for ordering and arithmetic on
    /// timestamps).
    pub fn total_micros(&self) -> i128 {
        (self.months as i128 * 30 + self.days as i128) * MICROS_PER_DAY as i128
            + self.micros as i128
    }
}

/// A SQL value.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    String(String),
    Bytes(Vec<u8>),
    Uuid([u8; 16]),
    /// Microseconds since the Unix epoch, without a zone.
    Timestamp(i64),
    /// Microseconds since the Unix epoch, UTC.
    TimestampTz(i64),
    /// Days since the Unix epoch.
    Date(i32),
    Interval(Interval),
    /// JSON text (validated, compact).
    Jsonb(String),
}

fn invalid(typ: &str, text: &str) -> SqlError {
    SqlError::new(
        code::INVALID_TEXT_REPRESENTATION,
        format!("could not parse {text:?} as type {typ}"),
    )
}

fn out_of_range(what: &str) -> SqlError {
    SqlError::new(
        code::NUMERIC_VALUE_OUT_OF_RANGE,
        format!("{what} out of range"),
    )
}

fn epoch() -> NaiveDateTime {
    DateTime::UNIX_EPOCH.naive_utc()
}

/// A timestamp's microseconds as a date-time (22008 outside chrono's range).
pub fn micros_to_naive(micros: i64) -> SqlResult<NaiveDateTime> {
    epoch()
        .checked_add_signed(chrono::TimeDelta::microseconds(micros))
        .ok_or_else(timestamp_out_of_range)
}

/// A date-time as microseconds since the epoch, checked against the supported range.
pub fn naive_to_micros(t: NaiveDateTime) -> SqlResult<i64> {
    let d = t - epoch();
    let micros = d.num_seconds() as i128 * 1_000_000 + d.subsec_nanos() as i128 / 1000;
    timestamp_in_range(micros)
}

fn format_timestamp(micros: i64) -> String {
    let Ok(t) = micros_to_naive(micros) else {
        // Unreachable for values made by roach (see `timestamp_in_range`).
        return format!("timestamp out of range ({micros} microseconds)");
    };
    let mut s = t.format("%Y-%m-%d %H:%M:%S").to_string();
    let frac = t.nanosecond() / 1000;
    if frac != 0 {
        let f = format!(".{frac:06}");
        s.push_str(f.trim_end_matches('0'));
    }
    s
}

fn format_interval(iv: &Interval) -> String {
    let mut parts = Vec::new();
    let years = iv.months / 12;
    let months = iv.months % 12;
    let plural =
        |n: i64, one: &str, many: &str| format!("{n} {}", if n.abs() == 1 { one } else { many });
    if years != 0 {
        parts.push(plural(years as i64, "year", "years"));
    }
    if months != 0 {
        parts.push(plural(months as i64, "mon", "mons"));
    }
    if iv.days != 0 {
        parts.push(plural(iv.days as i64, "day", "days"));
    }
    if iv.micros != 0 || parts.is_empty() {
        let neg = iv.micros < 0;
        let m = iv.micros.unsigned_abs();
        let secs = m / 1_000_000;
        let frac = m % 1_000_000;
        let mut t = format!(
            "{}{:02}:{:02}:{:02}",
            if neg { "-" } else { "" },
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        );
        if frac != 0 {
            let f = format!(".{frac:06}");
            t.push_str(f.trim_end_matches('0'));
        }
        parts.push(t);
    }
    parts.join(" ")
}

/// Parses an interval: `1 day 02:00:00`, `3 hours`, `-10s`, `1h30m`, `2 mons`, `00:05`.
pub fn parse_interval(text: &str) -> SqlResult<Interval> {
    let bad = || invalid("INTERVAL", text);
    let mut iv = Interval::default();
    let s = text.trim().to_ascii_lowercase();
    let s = s.strip_prefix('@').unwrap_or(&s).trim().to_string();
    if s.is_empty() {
        return Err(bad());
    }
    let tokens: Vec<&str> = s.split_whitespace().collect();
    let mut i = 0;
    // Each field is summed in wide arithmetic and checked (22015), never wrapped.
    let overflow = || {
        SqlError::new(
            code::INTERVAL_FIELD_OVERFLOW,
            format!("interval field value out of range: {text:?}"),
        )
    };
    let add = |iv: &mut Interval, n: f64, unit: &str| -> SqlResult<bool> {
        // `as` saturates (NaN becomes 0); a saturated field fails the range check below.
        let wide = |f: f64| f.round() as i128;
        let (months, days, micros) = match unit {
            "y" | "year" | "years" | "yr" | "yrs" => (wide(n * 12.0), 0, 0),
            "mon" | "mons" | "month" | "months" => (wide(n), 0, 0),
            "w" | "week" | "weeks" => (0, wide(n * 7.0), 0),
            "d" | "day" | "days" => (0, wide(n), 0),
            "h" | "hour" | "hours" | "hr" | "hrs" => (0, 0, wide(n * 3.6e9)),
            "m" | "min" | "mins" | "minute" | "minutes" => (0, 0, wide(n * 6e7)),
            "s" | "sec" | "secs" | "second" | "seconds" => (0, 0, wide(n * 1e6)),
            "ms" | "millisecond" | "milliseconds" => (0, 0, wide(n * 1e3)),
            "us" | "microsecond" | "microseconds" => (0, 0, wide(n)),
            _ => return Ok(false),
        };
        *iv = interval_in_range(
            iv.months as i128 + months,
            iv.days as i128 + days,
            iv.micros as i128 + micros,
        )
        .map_err(|_| overflow())?;
        Ok(true)
    };
    while i < tokens.len() {
        let tok = tokens[i];
        if tok.contains(':') {
            let neg = tok.starts_with('-');
            let body = tok.trim_start_matches(['-', '+']);
            let fields: Vec<&str> = body.split(':').collect();
            let nums: Vec<f64> = fields
                .iter()
                .map(|f| f.parse::<f64>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad())?;
            let secs = match nums.as_slice() {
                [h, m] => h * 3600.0 + m * 60.0,
                [h, m, s] => h * 3600.0 + m * 60.0 + s,
                _ => return Err(bad()),
            };
            let micros = (secs * 1e6).round() as i128;
            let micros = iv.micros as i128 + if neg { -micros } else { micros };
            iv.micros = i64::try_from(micros).map_err(|_| overflow())?;
            i += 1;
            continue;
        }
        // "3 hours" or compact "3h30m" / "-10s".
        if let Ok(n) = tok.parse::<f64>() {
            let unit = tokens.get(i + 1).copied().unwrap_or("s");
            if !add(&mut iv, n, unit)? {
                return Err(bad());
            }
            i += 2;
            continue;
        }
        let mut rest = tok;
        let mut any = false;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
                .ok_or_else(bad)?;
            let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
            let after = &rest[num_end..];
            let unit_end = after
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(after.len());
            if !add(&mut iv, n, &after[..unit_end])? {
                return Err(bad());
            }
            rest = &after[unit_end..];
            any = true;
        }
        if !any {
            return Err(bad());
        }
        i += 1;
    }
    Ok(iv)
}

fn parse_timestamp_naive(text: &str) -> Option<NaiveDateTime> {
    let t = text.trim();
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(v) = NaiveDateTime::parse_from_str(t, f) {
            return Some(v);
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN))
}

/// Parses a timestamp with an optional zone offset (`Z`, `+02`, `+02:00`, `UTC`); without
/// one it is UTC. The result is the UTC date-time.
fn parse_timestamptz(text: &str) -> Option<NaiveDateTime> {
    let t = text.trim();
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(v) = DateTime::parse_from_str(t, f) {
            return Some(v.naive_utc());
        }
    }
    if let Ok(v) = DateTime::parse_from_rfc3339(t) {
        return Some(v.naive_utc());
    }
    let stripped = t
        .strip_suffix(" UTC")
        .or_else(|| t.strip_suffix('Z'))
        .or_else(|| t.strip_suffix("+00"))
        .unwrap_or(t);
    parse_timestamp_naive(stripped)
}

fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let hex: String = text
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A UUID's text form.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random (version 4) UUID.
pub fn random_uuid() -> [u8; 16] {
    let mut u: [u8; 16] = rand::random();
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "yes" | "y" | "on" | "1" => Some(true),
        "f" | "false" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn parse_bytes(text: &str) -> SqlResult<Vec<u8>> {
    if let Some(hex) = text.strip_prefix("\\x") {
        if hex.len() % 2 != 0 {
            return Err(invalid("BYTES", text));
        }
        // By bytes, not by `str` slices: a multi-byte character must not split a slice.
        let nibble = |c: u8| {
            (c as char)
                .to_digit(16)
                .ok_or_else(|| invalid("BYTES", text))
        };
        return hex
            .as_bytes()
            .chunks(2)
            .map(|pair| match pair {
                [hi, lo] => Ok((nibble(*hi)? << 4 | nibble(*lo)?) as u8),
                _ => Err(invalid("BYTES", text)),
            })
            .collect();
    }
    Ok(text.as_bytes().to_vec())
}

/// Validates JSON text and returns its normalized form.
pub fn normalize_json(text: &str) -> SqlResult<String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| invalid("JSONB", &format!("{text}: {e}")))?;
    Ok(v.to_string())
}

impl Datum {
    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }

    /// The type of a non-NULL value.
    pub fn typ(&self) -> Option<SqlType> {
        Some(match self {
            Datum::Null => return None,
            Datum::Bool(_) => SqlType::Bool,
            Datum::Int(_) => SqlType::Int,
            Datum::Float(_) => SqlType::Float,
            Datum::Decimal(_) => SqlType::Decimal,
            Datum::String(_) => SqlType::String { max_len: None },
            Datum::Bytes(_) => SqlType::Bytes,
            Datum::Uuid(_) => SqlType::Uuid,
            Datum::Timestamp(_) => SqlType::Timestamp,
            Datum::TimestampTz(_) => SqlType::TimestampTz,
            Datum::Date(_) => SqlType::Date,
            Datum::Interval(_) => SqlType::Interval,
            Datum::Jsonb(_) => SqlType::Jsonb,
        })
    }

    /// PostgreSQL's text output form (`None` for NULL).
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            Datum::Null => return None,
            Datum::Bool(b) => if *b { "t" } else { "f" }.to_string(),
            Datum::Int(i) => i.to_string(),
            Datum::Float(f) => format_float(*f),
            Datum::Decimal(d) => d.to_string(),
            Datum::String(s) | Datum::Jsonb(s) => s.clone(),
            Datum::Bytes(b) => {
                let mut s = String::with_capacity(2 + b.len() * 2);
                s.push_str("\\x");
                for byte in b {
                    s.push_str(&format!("{byte:02x}"));
                }
                s
            }
            Datum::Uuid(u) => format_uuid(u),
            Datum::Timestamp(t) => format_timestamp(*t),
            Datum::TimestampTz(t) => format!("{}+00:00", format_timestamp(*t)),
            Datum::Date(d) => match epoch()
                .date()
                .checked_add_signed(chrono::TimeDelta::days(*d as i64))
            {
                Some(date) => date.format("%Y-%m-%d").to_string(),
                // Unreachable for values made by roach (see `date_in_range`).
                None => format!("date out of range ({d} days)"),
            },
            Datum::Interval(iv) => format_interval(iv),
        })
    }

    /// Parses `text` as a value of `typ` (22P02 when it is not one).
    pub fn parse(text: &str, typ: &SqlType) -> SqlResult<Datum> {
        let t = text.trim();
        Ok(match typ {
            SqlType::Int => Datum::Int(
                t.parse::<i64>()
                    .or_else(|_| {
                        // "1.0" and "1e3" are accepted when integral.
                        t.parse::<f64>()
                            .ok()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                            .map(|f| f as i64)
                            .ok_or(())
                    })
                    .map_err(|_| invalid("INT8", text))?,
            ),
            SqlType::Float => Datum::Float(match t.to_ascii_lowercase().as_str() {
                "nan" => f64::NAN,
                "inf" | "infinity" | "+infinity" => f64::INFINITY,
                "-inf" | "-infinity" => f64::NEG_INFINITY,
                _ => t.parse::<f64>().map_err(|_| invalid("FLOAT8", text))?,
            }),
            SqlType::Decimal => Datum::Decimal(
                Decimal::from_str(t)
                    .or_else(|_| Decimal::from_scientific(t))
                    .map_err(|_| invalid("DECIMAL", text))?,
            ),
            SqlType::String { max_len } => {
                let s = text.to_string();
                if let Some(n) = max_len
                    && s.chars().count() > *n as usize
                {
                    return Err(SqlError::new(
                        code::STRING_DATA_RIGHT_TRUNCATION,
                        format!("value too long for type VARCHAR({n})"),
                    ));
                }
                Datum::String(s)
            }
            SqlType::Bytes => Datum::Bytes(parse_bytes(text)?),
            SqlType::Bool => Datum::Bool(parse_bool(t).ok_or_else(|| invalid("BOOL", text))?),
            SqlType::Uuid => Datum::Uuid(parse_uuid(t).ok_or_else(|| invalid("UUID", text))?),
            SqlType::Timestamp => Datum::Timestamp(naive_to_micros(
                parse_timestamp_naive(t)
                    .or_else(|| parse_timestamptz(t))
                    .ok_or_else(|| invalid("TIMESTAMP", text))?,
            )?),
            SqlType::TimestampTz => Datum::TimestampTz(naive_to_micros(
                parse_timestamptz(t).ok_or_else(|| invalid("TIMESTAMPTZ", text))?,
            )?),
            SqlType::Date => {
                let d = NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .ok()
                    .or_else(|| parse_timestamp_naive(t).map(|v| v.date()))
                    .ok_or_else(|| invalid("DATE", text))?;
                Datum::Date(date_in_range((d - epoch().date()).num_days() as i128)?)
            }
            SqlType::Interval => Datum::Interval(parse_interval(t)?),
            SqlType::Jsonb => Datum::Jsonb(normalize_json(t)?),
        })
    }

    /// Converts to `typ` (an explicit cast, or an assignment to a column of that type).
    pub fn cast(self, typ: &SqlType) -> SqlResult<Datum> {
        let same = self.typ().as_ref().is_some_and(|t| same_family(t, typ));
        if same {
            // Re-check a VARCHAR(n) limit.
            if let (Datum::String(s), SqlType::String { max_len: Some(_) }) = (&self, typ) {
                return Datum::parse(s, typ);
            }
            return Ok(self);
        }
        let cannot = |v: &Datum| {
            SqlError::new(
                code::CANNOT_COERCE,
                format!(
                    "invalid cast: {} -> {}",
                    v.typ()
                        .map_or("unknown".to_string(), |t| crate::ddl::type_name(&t)),
                    crate::ddl::type_name(typ)
                ),
            )
        };
        Ok(match (self, typ) {
            (Datum::Null, _) => Datum::Null,
            (Datum::String(s), t) => Datum::parse(&s, t)?,
            (v, SqlType::String { .. }) => Datum::parse(&v.to_text().unwrap_or_default(), typ)?,
            (Datum::Int(i), SqlType::Float) => Datum::Float(i as f64),
            (Datum::Int(i), SqlType::Decimal) => Datum::Decimal(Decimal::from(i)),
            (Datum::Int(i), SqlType::Bool) => Datum::Bool(i != 0),
            (Datum::Float(f), SqlType::Int) => {
                if !f.is_finite() || f.abs() > 9.2e18 {
                    return Err(out_of_range("integer"));
                }
                Datum::Int(f.round() as i64)
            }
            (Datum::Float(f), SqlType::Decimal) => {
                Datum::Decimal(Decimal::from_f64(f).ok_or_else(|| out_of_range("decimal"))?)
            }
            (Datum::Decimal(d), SqlType::Int) => {
                Datum::Int(d.round().to_i64().ok_or_else(|| out_of_range("integer"))?)
            }
            (Datum::Decimal(d), SqlType::Float) => Datum::Float(d.to_f64().unwrap_or(f64::NAN)),
            (Datum::Bool(b), SqlType::Int) => Datum::Int(i64::from(b)),
            (Datum::Timestamp(t), SqlType::TimestampTz) => Datum::TimestampTz(t),
            (Datum::TimestampTz(t), SqlType::Timestamp) => Datum::Timestamp(t),
            (Datum::Timestamp(t) | Datum::TimestampTz(t), SqlType::Date) => {
                Datum::Date(date_in_range(t.div_euclid(MICROS_PER_DAY) as i128)?)
            }
            (Datum::Date(d), SqlType::Timestamp) => Datum::Timestamp(date_to_micros(d)?),
            (Datum::Date(d), SqlType::TimestampTz) => Datum::TimestampTz(date_to_micros(d)?),
            (Datum::Int(i), SqlType::Timestamp) => {
                Datum::Timestamp(timestamp_in_range(i as i128 * 1_000_000)?)
            }
            (Datum::Int(i), SqlType::TimestampTz) => {
                Datum::TimestampTz(timestamp_in_range(i as i128 * 1_000_000)?)
            }
            (Datum::Bytes(b), SqlType::Uuid) if b.len() == 16 => {
                let mut u = [0u8; 16];
                u.copy_from_slice(&b);
                Datum::Uuid(u)
            }
            (Datum::Uuid(u), SqlType::Bytes) => Datum::Bytes(u.to_vec()),
            (v, _) => return Err(cannot(&v)),
        })
    }

    /// The value's key form (for index keys); JSONB values cannot be indexed.
    pub fn to_key(&self) -> KeyValue {
        match self {
            Datum::Null => KeyValue::Null,
            Datum::Bool(b) => KeyValue::Bool(*b),
            Datum::Int(i) => KeyValue::Int(*i),
            Datum::Float(f) => KeyValue::Float(*f),
            Datum::Decimal(d) => KeyValue::Decimal(*d),
            Datum::String(s) | Datum::Jsonb(s) => KeyValue::String(s.clone()),
            Datum::Bytes(b) => KeyValue::Bytes(b.clone()),
            Datum::Uuid(u) => KeyValue::Uuid(*u),
            Datum::Timestamp(t) | Datum::TimestampTz(t) => KeyValue::Timestamp(*t),
            Datum::Date(d) => KeyValue::Date(*d),
            Datum::Interval(iv) => KeyValue::Interval {
                months: iv.months,
                days: iv.days,
                micros: iv.micros,
            },
        }
    }

    /// The value of a column of type `typ` from its key form.
    pub fn from_key(k: KeyValue, typ: &SqlType) -> Datum {
        match (k, typ) {
            (KeyValue::Null, _) => Datum::Null,
            (KeyValue::Bool(b), _) => Datum::Bool(b),
            (KeyValue::Int(i), _) => Datum::Int(i),
            (KeyValue::Float(f), _) => Datum::Float(f),
            (KeyValue::Decimal(d), _) => Datum::Decimal(d),
            (KeyValue::String(s), SqlType::Jsonb) => Datum::Jsonb(s),
            (KeyValue::String(s), _) => Datum::String(s),
            (KeyValue::Bytes(b), _) => Datum::Bytes(b),
            (KeyValue::Uuid(u), _) => Datum::Uuid(u),
            (KeyValue::Timestamp(t), SqlType::TimestampTz) => Datum::TimestampTz(t),
            (KeyValue::Timestamp(t), _) => Datum::Timestamp(t),
            (KeyValue::Date(d), _) => Datum::Date(d),
            (
                KeyValue::Interval {
                    months,
                    days,
                    micros,
                },
                _,
            ) => Datum::Interval(Interval {
                months,
                days,
                micros,
            }),
        }
    }

    /// SQL comparison; `None` when either side is NULL. Numbers compare across INT, FLOAT
    /// and DECIMAL; a string compared with another type is read as that type.
    pub fn sql_cmp(&self, other: &Datum) -> SqlResult<Option<Ordering>> {
        use Datum::*;
        Ok(Some(match (self, other) {
            (Null, _) | (_, Null) => return Ok(None),
            (Int(a), Int(b)) => a.cmp(b),
            (Float(_) | Int(_) | Decimal(_), Float(_) | Int(_) | Decimal(_)) => {
                match (self, other) {
                    (Decimal(_), _) | (_, Decimal(_))
                        if !matches!(self, Float(_)) && !matches!(other, Float(_)) =>
                    {
                        to_decimal(self)?.cmp(&to_decimal(other)?)
                    }
                    _ => total_float_cmp(to_f64(self), to_f64(other)),
                }
            }
            (String(a), String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (String(s), v) => {
                let t = v.typ().unwrap_or(SqlType::String { max_len: None });
                return Datum::parse(s, &t)?.sql_cmp(v);
            }
            (v, String(s)) => {
                let t = v.typ().unwrap_or(SqlType::String { max_len: None });
                return v.sql_cmp(&Datum::parse(s, &t)?);
            }
            (Bool(a), Bool(b)) => a.cmp(b),
            (Bytes(a), Bytes(b)) => a.cmp(b),
            (Uuid(a), Uuid(b)) => a.cmp(b),
            (Timestamp(a) | TimestampTz(a), Timestamp(b) | TimestampTz(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (Date(d), Timestamp(t) | TimestampTz(t)) => {
                (*d as i128 * MICROS_PER_DAY as i128).cmp(&(*t as i128))
            }
            (Timestamp(t) | TimestampTz(t), Date(d)) => {
                (*t as i128).cmp(&(*d as i128 * MICROS_PER_DAY as i128))
            }
            (Interval(a), Interval(b)) => a.total_micros().cmp(&b.total_micros()),
            (Jsonb(a), Jsonb(b)) => a.cmp(b),
            (a, b) => {
                return Err(SqlError::new(
                    code::UNDEFINED_FUNCTION,
                    format!(
                        "unsupported comparison: {} and {}",
                        a.typ()
                            .map_or("unknown".into(), |t| crate::ddl::type_name(&t)),
                        b.typ()
                            .map_or("unknown".into(), |t| crate::ddl::type_name(&t))
                    ),
                ));
            }
        }))
    }

    /// Total order for sorting (NULLs first) and grouping.
    pub fn sort_cmp(&self, other: &Datum) -> Ordering {
        match (self, other) {
            (Datum::Null, Datum::Null) => Ordering::Equal,
            (Datum::Null, _) => Ordering::Less,
            (_, Datum::Null) => Ordering::Greater,
            _ => self
                .sql_cmp(other)
                .ok()
                .flatten()
                .unwrap_or_else(|| self.to_text().cmp(&other.to_text())),
        }
    }
}

fn total_float_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Whether values of `a` and `b` are stored alike.
fn same_family(a: &SqlType, b: &SqlType) -> bool {
    matches!((a, b), (SqlType::String { .. }, SqlType::String { .. })) || a == b
}

/// A number as f64.
pub fn to_f64(d: &Datum) -> f64 {
    match d {
        Datum::Int(i) => *i as f64,
        Datum::Float(f) => *f,
        Datum::Decimal(x) => x.to_f64().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

/// A number as a decimal.
pub fn to_decimal(d: &Datum) -> SqlResult<Decimal> {
    match d {
        Datum::Int(i) => Ok(Decimal::from(*i)),
        Datum::Decimal(x) => Ok(*x),
        Datum::Float(f) => Decimal::from_f64(*f).ok_or_else(|| out_of_range("decimal")),
        other => Err(SqlError::new(
            code::DATATYPE_MISMATCH,
            format!("{:?} is not a number", other.to_text()),
        )),
    }
}

/// A float in PostgreSQL's text form.
pub fn format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else if f != 0.0 && (f.abs() >= 1e16 || f.abs() < 1e-5) {
        let s = format!("{f:e}");
        // Rust prints 1e20; PostgreSQL prints 1e+20.
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        }
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: every type's text output parses back to the same value.
    #[test]
    fn text_round_trip() {
        let cases = [
            (SqlType::Int, "-42"),
            (SqlType::Float, "1.5"),
            (SqlType::Decimal, "123.4500"),
            (SqlType::Bool, "t"),
            (SqlType::Uuid, "3b241101-e2bb-4255-8caf-4136c566a962"),
            (SqlType::Timestamp, "2026-11-24 10:11:12.5"),
            (SqlType::TimestampTz, "2026-11-24 10:11:12+00:00"),
            (SqlType::Date, "1999-12-31"),
            (SqlType::Interval, "1 year 2 mons 3 days 04:05:06.5"),
            (SqlType::Bytes, "\\x00ff10"),
            (SqlType::Jsonb, "{\"a\":[1,2]}"),
        ];
        for (t, text) in cases {
            let d = Datum::parse(text, &t).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(d.to_text().as_deref(), Some(text), "{t:?}");
            assert_eq!(Datum::parse(text, &t).expect("again"), d);
        }
    }

    // Goal: bad text gets 22P02; VARCHAR(n) is enforced with 22001.
    #[test]
    fn parse_errors() {
        for (t, text) in [
            (SqlType::Int, "abc"),
            (SqlType::Uuid, "not-a-uuid"),
            (SqlType::Date, "2020-13-45"),
            (SqlType::Jsonb, "{oops"),
            (SqlType::Bool, "maybe"),
        ] {
            assert_eq!(
                Datum::parse(text, &t).expect_err(text).code,
                code::INVALID_TEXT_REPRESENTATION
            );
        }
        assert_eq!(
            Datum::parse("abcdef", &SqlType::String { max_len: Some(3) })
                .expect_err("long")
                .code,
            code::STRING_DATA_RIGHT_TRUNCATION
        );
    }

    // Goal: intervals in the forms people type, including CockroachDB's '-10s'.
    #[test]
    fn intervals() {
        let iv = |s| parse_interval(s).expect(s);
        assert_eq!(iv("-10s").micros, -10_000_000);
        assert_eq!(iv("1h30m").micros, 5_400_000_000);
        assert_eq!(iv("2 days").days, 2);
        assert_eq!(iv("00:05:00").micros, 300_000_000);
        assert_eq!(iv("1 day 02:00:00").micros, 7_200_000_000);
        assert!(parse_interval("soon").is_err());
    }

    // Goal: numbers compare across types; strings compare as the other side's type.
    #[test]
    fn comparisons() {
        let lt = |a: Datum, b: Datum| a.sql_cmp(&b).expect("cmp") == Some(Ordering::Less);
        assert!(lt(Datum::Int(1), Datum::Float(1.5)));
        assert!(lt(Datum::Decimal(Decimal::new(15, 1)), Datum::Int(2)));
        assert!(lt(Datum::Date(0), Datum::Timestamp(1)));
        assert!(lt(Datum::String("5".into()), Datum::Int(10)));
        assert_eq!(Datum::Null.sql_cmp(&Datum::Int(1)).expect("null"), None);
        assert!(Datum::Bool(true).sql_cmp(&Datum::Int(1)).is_err());
    }
}
