//! PostgreSQL wire forms of values: type oids, and the binary encodings drivers use for
//! parameters and results (text forms come from [`Datum::to_text`] and [`Datum::parse`]).

use crate::datum::{Datum, Interval, date_in_range, timestamp_in_range};
use crate::descriptors::SqlType;
use crate::error::{SqlError, SqlResult, code};
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::FieldFormat;
use rust_decimal::Decimal;
use std::str::FromStr;

/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's epoch.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The wire type of a SQL type.
pub fn pg_type(t: &SqlType) -> Type {
    match t {
        SqlType::Int => Type::INT8,
        SqlType::Float => Type::FLOAT8,
        SqlType::Decimal => Type::NUMERIC,
        SqlType::String { max_len: None } => Type::TEXT,
        SqlType::String { max_len: Some(_) } => Type::VARCHAR,
        SqlType::Bytes => Type::BYTEA,
        SqlType::Bool => Type::BOOL,
        SqlType::Uuid => Type::UUID,
        SqlType::Timestamp => Type::TIMESTAMP,
        SqlType::TimestampTz => Type::TIMESTAMPTZ,
        SqlType::Date => Type::DATE,
        SqlType::Interval => Type::INTERVAL,
        SqlType::Jsonb => Type::JSONB,
    }
}

/// The SQL type of a wire type a client declared (unknown types read as text).
pub fn sql_type(t: &Type) -> SqlType {
    match *t {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => SqlType::Int,
        Type::FLOAT4 | Type::FLOAT8 => SqlType::Float,
        Type::NUMERIC => SqlType::Decimal,
        Type::BYTEA => SqlType::Bytes,
        Type::BOOL => SqlType::Bool,
        Type::UUID => SqlType::Uuid,
        Type::TIMESTAMP => SqlType::Timestamp,
        Type::TIMESTAMPTZ => SqlType::TimestampTz,
        Type::DATE => SqlType::Date,
        Type::INTERVAL => SqlType::Interval,
        Type::JSON | Type::JSONB => SqlType::Jsonb,
        _ => SqlType::String { max_len: None },
    }
}

fn bad(t: &Type, what: &str) -> SqlError {
    SqlError::new(
        code::INVALID_TEXT_REPRESENTATION,
        format!("invalid binary value for parameter of type {t}: {what}"),
    )
}

fn fixed<const N: usize>(b: &[u8], t: &Type) -> SqlResult<[u8; N]> {
    b.try_into()
        .map_err(|_| bad(t, &format!("expected {N} bytes, got {}", b.len())))
}

/// Decodes a parameter sent in binary as `t`.
pub fn decode_binary(b: &[u8], t: &Type) -> SqlResult<Datum> {
    Ok(match *t {
        Type::BOOL => Datum::Bool(fixed::<1>(b, t)?[0] != 0),
        Type::INT2 => Datum::Int(i16::from_be_bytes(fixed(b, t)?) as i64),
        Type::INT4 | Type::OID => Datum::Int(i32::from_be_bytes(fixed(b, t)?) as i64),
        Type::INT8 => Datum::Int(i64::from_be_bytes(fixed(b, t)?)),
        Type::FLOAT4 => Datum::Float(f32::from_be_bytes(fixed(b, t)?) as f64),
        Type::FLOAT8 => Datum::Float(f64::from_be_bytes(fixed(b, t)?)),
        Type::NUMERIC => Datum::Decimal(decode_numeric(b).ok_or_else(|| bad(t, "bad numeric"))?),
        Type::BYTEA => Datum::Bytes(b.to_vec()),
        Type::UUID => Datum::Uuid(fixed(b, t)?),
        // PostgreSQL sends +-infinity as i64::MAX/MIN (i32 for dates); roach has no infinite
        // values, so those and anything else outside the supported range are 22008.
        Type::TIMESTAMP => Datum::Timestamp(timestamp_in_range(
            i64::from_be_bytes(fixed(b, t)?) as i128 + PG_EPOCH_MICROS as i128,
        )?),
        Type::TIMESTAMPTZ => Datum::TimestampTz(timestamp_in_range(
            i64::from_be_bytes(fixed(b, t)?) as i128 + PG_EPOCH_MICROS as i128,
        )?),
        Type::DATE => Datum::Date(date_in_range(
            i32::from_be_bytes(fixed(b, t)?) as i128 + PG_EPOCH_DAYS as i128,
        )?),
        Type::INTERVAL => {
            let a: [u8; 16] = fixed(b, t)?;
            let mut m = [0u8; 8];
            m.copy_from_slice(&a[..8]);
            let mut d = [0u8; 4];
            d.copy_from_slice(&a[8..12]);
            let mut mo = [0u8; 4];
            mo.copy_from_slice(&a[12..]);
            Datum::Interval(Interval {
                micros: i64::from_be_bytes(m),
                days: i32::from_be_bytes(d),
                months: i32::from_be_bytes(mo),
            })
        }
        Type::JSONB => {
            let body = b
                .strip_prefix(&[1u8])
                .ok_or_else(|| bad(t, "unknown jsonb version"))?;
            Datum::Jsonb(crate::datum::normalize_json(
                std::str::from_utf8(body).map_err(|_| bad(t, "not UTF-8"))?,
            )?)
        }
        Type::JSON => Datum::Jsonb(crate::datum::normalize_json(
            std::str::from_utf8(b).map_err(|_| bad(t, "not UTF-8"))?,
        )?),
        _ => Datum::String(String::from_utf8(b.to_vec()).map_err(|_| bad(t, "text is not UTF-8"))?),
    })
}

/// Checks a Bind message's format codes against the `n` values they describe (`what`:
/// "parameter" or "result"): no code means all text, one code applies to all, otherwise there
/// must be exactly one per value (08P01, as in PostgreSQL).
pub fn check_formats(format: &Format, n: usize, what: &str) -> SqlResult<()> {
    match format {
        Format::Individual(codes) if codes.len() != n => Err(SqlError::new(
            code::PROTOCOL_VIOLATION,
            format!(
                "bind message has {} {what} formats but {n} {what}s",
                codes.len()
            ),
        )
        .with_hint("send no format code, one for all values, or one per value")),
        _ => Ok(()),
    }
}

/// The format of value `i` (text for an index past the codes, which `check_formats`
/// refuses beforehand: pgwire's own accessor panics there).
pub fn format_of(format: &Format, i: usize) -> FieldFormat {
    match format {
        Format::Individual(codes) => codes
            .get(i)
            .map_or(FieldFormat::Text, |c| FieldFormat::from(*c)),
        other => other.format_for(i),
    }
}

/// Decodes one bound parameter of declared wire type `t` (`None`: SQL NULL), sent in binary
/// or text format.
pub fn decode_param(value: Option<&[u8]>, t: &Type, binary: bool) -> SqlResult<Datum> {
    match value {
        None => Ok(Datum::Null),
        Some(b) if binary => decode_binary(b, t),
        Some(b) => decode_text(b, &sql_type(t)),
    }
}

/// Decodes a parameter sent as text for a parameter of type `t`.
pub fn decode_text(b: &[u8], t: &SqlType) -> SqlResult<Datum> {
    let s = std::str::from_utf8(b).map_err(|_| {
        SqlError::new(
            code::INVALID_TEXT_REPRESENTATION,
            "parameter text is not UTF-8",
        )
    })?;
    match t {
        SqlType::String { .. } => Ok(Datum::String(s.to_string())),
        other => Datum::parse(s, other),
    }
}

fn decode_numeric(b: &[u8]) -> Option<Decimal> {
    let u16_at =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?])) };
    let ndigits = u16_at(0)? as usize;
    let weight = u16_at(2)? as i16 as i32;
    let sign = u16_at(4)?;
    let dscale = u16_at(6)? as usize;
    if sign == 0xC000 {
        return None;
    }
    let mut int_part = String::new();
    let mut frac_part = String::new();
    for i in 0..ndigits {
        let d = u16_at(8 + 2 * i)?;
        let pos = weight - i as i32;
        if pos >= 0 {
            int_part.push_str(&format!("{d:04}"));
        } else {
            frac_part.push_str(&format!("{d:04}"));
        }
    }
    // Groups between the last digit and the decimal point, or leading fractional zeros.
    if weight >= ndigits as i32 {
        for _ in 0..(weight + 1 - ndigits as i32) {
            int_part.push_str("0000");
        }
    }
    if weight < -1 {
        let zeros = "0000".repeat((-1 - weight) as usize);
        frac_part = zeros + &frac_part;
    }
    frac_part.truncate(dscale.min(frac_part.len()));
    while frac_part.len() < dscale {
        frac_part.push('0');
    }
    let int_part = int_part.trim_start_matches('0');
    let text = format!(
        "{}{}{}{}",
        if sign == 0x4000 { "-" } else { "" },
        if int_part.is_empty() { "0" } else { int_part },
        if frac_part.is_empty() { "" } else { "." },
        frac_part
    );
    Decimal::from_str(&text).ok()
}

fn encode_numeric(d: &Decimal, out: &mut Vec<u8>) {
    let text = d.abs().to_string();
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i.to_string(), f.to_string()),
        None => (text.clone(), String::new()),
    };
    let dscale = frac_part.len() as u16;
    let int_part = int_part.trim_start_matches('0');
    let pad_left = (4 - int_part.len() % 4) % 4;
    let int_padded = format!("{}{}", "0".repeat(pad_left), int_part);
    let pad_right = (4 - frac_part.len() % 4) % 4;
    let frac_padded = format!("{}{}", frac_part, "0".repeat(pad_right));
    let group = |s: &str| -> Vec<i16> {
        s.as_bytes()
            .chunks(4)
            .map(|c| {
                std::str::from_utf8(c)
                    .ok()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0)
            })
            .collect()
    };
    let int_groups = group(&int_padded);
    let frac_groups = group(&frac_padded);
    let mut digits: Vec<i16> = int_groups.iter().chain(&frac_groups).copied().collect();
    let mut weight = int_groups.len() as i32 - 1;
    // Strip leading zero groups (moving the weight) and trailing zero groups.
    while digits.first() == Some(&0) {
        digits.remove(0);
        weight -= 1;
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    if digits.is_empty() {
        weight = 0;
    }
    let sign: u16 = if d.is_sign_negative() && !d.is_zero() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&(digits.len() as u16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in digits {
        out.extend_from_slice(&g.to_be_bytes());
    }
}

/// The binary form of `d` as wire type `t` (after converting it to that type).
pub fn encode_binary(d: &Datum, t: &Type) -> SqlResult<Option<Vec<u8>>> {
    if d.is_null() {
        return Ok(None);
    }
    let target = sql_type(t);
    let v = match (&target, d) {
        (SqlType::String { .. }, _) => return Ok(d.to_text().map(String::into_bytes)),
        _ => d.clone().cast(&target)?,
    };
    let mut out = Vec::new();
    match v {
        Datum::Bool(b) => out.push(u8::from(b)),
        Datum::Int(i) => match *t {
            Type::INT2 => out.extend_from_slice(&(i as i16).to_be_bytes()),
            Type::INT4 | Type::OID => out.extend_from_slice(&(i as i32).to_be_bytes()),
            _ => out.extend_from_slice(&i.to_be_bytes()),
        },
        Datum::Float(f) => match *t {
            Type::FLOAT4 => out.extend_from_slice(&(f as f32).to_be_bytes()),
            _ => out.extend_from_slice(&f.to_be_bytes()),
        },
        Datum::Decimal(x) => encode_numeric(&x, &mut out),
        Datum::Bytes(b) => out = b,
        Datum::Uuid(u) => out.extend_from_slice(&u),
        Datum::Timestamp(m) | Datum::TimestampTz(m) => out.extend_from_slice(
            &m.checked_sub(PG_EPOCH_MICROS)
                .ok_or_else(crate::datum::timestamp_out_of_range)?
                .to_be_bytes(),
        ),
        Datum::Date(days) => out.extend_from_slice(
            &days
                .checked_sub(PG_EPOCH_DAYS)
                .ok_or_else(crate::datum::timestamp_out_of_range)?
                .to_be_bytes(),
        ),
        Datum::Interval(iv) => {
            out.extend_from_slice(&iv.micros.to_be_bytes());
            out.extend_from_slice(&iv.days.to_be_bytes());
            out.extend_from_slice(&iv.months.to_be_bytes());
        }
        Datum::Jsonb(j) => {
            out.push(1);
            out.extend_from_slice(j.as_bytes());
        }
        Datum::String(s) => out = s.into_bytes(),
        Datum::Null => return Ok(None),
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: NUMERIC's binary form round-trips, including scales, negatives and zero.
    #[test]
    fn numeric_round_trip() {
        for s in [
            "0",
            "1",
            "-1",
            "123.45",
            "10000",
            "0.0001",
            "-98765.4321000",
            "1e-8",
            "123456789012.3456789",
        ] {
            let d = Decimal::from_str(s)
                .or_else(|_| Decimal::from_scientific(s))
                .expect(s);
            let mut b = Vec::new();
            encode_numeric(&d, &mut b);
            assert_eq!(decode_numeric(&b), Some(d), "{s}");
        }
    }

    // Goal: every type's binary form decodes back to the same value.
    #[test]
    fn binary_round_trip() {
        let cases = [
            (Datum::Int(-5), Type::INT8),
            (Datum::Float(2.5), Type::FLOAT8),
            (Datum::Bool(true), Type::BOOL),
            (Datum::Uuid([7; 16]), Type::UUID),
            (Datum::Timestamp(1_700_000_000_000_000), Type::TIMESTAMP),
            (Datum::TimestampTz(-5), Type::TIMESTAMPTZ),
            (Datum::Date(19_000), Type::DATE),
            (
                Datum::Interval(Interval {
                    months: 1,
                    days: 2,
                    micros: 3,
                }),
                Type::INTERVAL,
            ),
            (Datum::Jsonb("{\"a\":1}".into()), Type::JSONB),
            (Datum::Bytes(vec![0, 255]), Type::BYTEA),
        ];
        for (d, t) in cases {
            let b = encode_binary(&d, &t).expect("encode").expect("not null");
            assert_eq!(decode_binary(&b, &t).expect("decode"), d, "{t}");
        }
    }
}
