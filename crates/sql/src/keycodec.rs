//! The order-preserving key encoding of SQL values: for two values of one type, byte order
//! of their encodings equals SQL order (NULL first), ascending or descending; every encoding
//! is self-delimiting, so a composite key is the concatenation of its columns' encodings.
//!
//! Layout of an ascending value: a marker byte (`0x00` NULL, then one per type) followed by:
//! - INT: the i64 with its sign bit flipped, 8 bytes big endian;
//! - FLOAT: the f64 bits, sign-adjusted so that byte order is numeric order (NaN first, as
//!   the smallest value, then -inf ... +inf; -0.0 equals 0.0);
//! - DECIMAL: a sign class (negative, zero, positive), then for non-zero values the decimal
//!   exponent and the digits, both inverted for negatives;
//! - STRING / BYTES: the bytes with `0x00` escaped as `0x00 0xff`, then `0x00 0x01`;
//! - BOOL: `0` or `1`; UUID: the 16 bytes; TIMESTAMP(TZ): i64 microseconds like INT;
//!   DATE: i32 days like INT (4 bytes); INTERVAL: months, days, microseconds like INT.
//!
//! A descending value is the ascending encoding with every byte complemented, which reverses
//! the order of self-delimiting encodings.

use crate::error::{SqlError, SqlResult};
use rust_decimal::Decimal;
use std::cmp::Ordering;

const NULL: u8 = 0x00;
const BOOL: u8 = 0x10;
const INT: u8 = 0x11;
const FLOAT: u8 = 0x12;
const DECIMAL: u8 = 0x13;
const STRING: u8 = 0x14;
const BYTES: u8 = 0x15;
const UUID: u8 = 0x16;
const TIMESTAMP: u8 = 0x17;
const DATE: u8 = 0x18;
const INTERVAL: u8 = 0x19;

const DECIMAL_NEGATIVE: u8 = 0x01;
const DECIMAL_ZERO: u8 = 0x02;
const DECIMAL_POSITIVE: u8 = 0x03;

/// A SQL value that can be part of a key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    String(String),
    Bytes(Vec<u8>),
    Uuid([u8; 16]),
    /// Microseconds since the Unix epoch.
    Timestamp(i64),
    /// Days since the Unix epoch.
    Date(i32),
    /// Months, days and microseconds, compared in that order.
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
}

/// Sort direction of a key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
}

fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&((v as u32) ^ (1 << 31)).to_be_bytes());
}

fn put_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.push(0x00);
    out.push(0x01);
}

/// The f64's bits arranged so that unsigned byte order is numeric order.
fn float_key(f: f64) -> u64 {
    if f.is_nan() {
        return 0;
    }
    // -0.0 and 0.0 are equal in SQL.
    let f = if f == 0.0 { 0.0 } else { f };
    let bits = f.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// Appends the decimal's order-preserving form: sign class, then exponent and digits.
fn put_decimal(out: &mut Vec<u8>, d: Decimal) {
    let d = d.normalize();
    if d.is_zero() {
        out.push(DECIMAL_ZERO);
        return;
    }
    // d = 0.D1D2...Dn × 10^exp with D1 != 0.
    let mantissa = d.mantissa().unsigned_abs().to_string();
    let digits = mantissa.trim_end_matches('0');
    let exp = mantissa.len() as i32 - d.scale() as i32;
    let negative = d.is_sign_negative();
    out.push(if negative {
        DECIMAL_NEGATIVE
    } else {
        DECIMAL_POSITIVE
    });
    let mut body = Vec::with_capacity(digits.len() + 5);
    put_i32(&mut body, exp);
    // Digits as bytes 1..=10 so that 0x00 terminates: a shorter digit string sorts first.
    body.extend(digits.bytes().map(|b| b - b'0' + 1));
    body.push(0x00);
    if negative {
        body.iter_mut().for_each(|b| *b = !*b);
    }
    out.extend_from_slice(&body);
}

/// Appends the key encoding of `value` in `direction`.
pub fn encode(out: &mut Vec<u8>, value: &KeyValue, direction: Direction) {
    let start = out.len();
    match value {
        KeyValue::Null => out.push(NULL),
        KeyValue::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(*b)]),
        KeyValue::Int(i) => {
            out.push(INT);
            put_i64(out, *i);
        }
        KeyValue::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&float_key(*f).to_be_bytes());
        }
        KeyValue::Decimal(d) => {
            out.push(DECIMAL);
            put_decimal(out, *d);
        }
        KeyValue::String(s) => {
            out.push(STRING);
            put_escaped(out, s.as_bytes());
        }
        KeyValue::Bytes(b) => {
            out.push(BYTES);
            put_escaped(out, b);
        }
        KeyValue::Uuid(u) => {
            out.push(UUID);
            out.extend_from_slice(u);
        }
        KeyValue::Timestamp(t) => {
            out.push(TIMESTAMP);
            put_i64(out, *t);
        }
        KeyValue::Date(d) => {
            out.push(DATE);
            put_i32(out, *d);
        }
        KeyValue::Interval {
            months,
            days,
            micros,
        } => {
            out.push(INTERVAL);
            put_i32(out, *months);
            put_i32(out, *days);
            put_i64(out, *micros);
        }
    }
    if direction == Direction::Desc {
        out[start..].iter_mut().for_each(|b| *b = !*b);
    }
}

/// A reader over an encoded key.
struct Reader<'a> {
    bytes: &'a [u8],
    desc: bool,
}

impl Reader<'_> {
    fn byte(&mut self) -> SqlResult<u8> {
        let (&b, rest) = self
            .bytes
            .split_first()
            .ok_or_else(|| SqlError::internal("truncated key"))?;
        self.bytes = rest;
        Ok(if self.desc { !b } else { b })
    }

    fn array<const N: usize>(&mut self) -> SqlResult<[u8; N]> {
        let mut out = [0u8; N];
        for b in out.iter_mut() {
            *b = self.byte()?;
        }
        Ok(out)
    }

    fn i64(&mut self) -> SqlResult<i64> {
        Ok((u64::from_be_bytes(self.array()?) ^ (1 << 63)) as i64)
    }

    fn i32(&mut self) -> SqlResult<i32> {
        Ok((u32::from_be_bytes(self.array()?) ^ (1 << 31)) as i32)
    }

    fn escaped(&mut self) -> SqlResult<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            match self.byte()? {
                0x00 => match self.byte()? {
                    0xff => out.push(0),
                    0x01 => return Ok(out),
                    _ => return Err(SqlError::internal("bad escape in key")),
                },
                b => out.push(b),
            }
        }
    }
}

/// Decodes one value from the front of `bytes`; returns it and the rest.
pub fn decode(bytes: &[u8], direction: Direction) -> SqlResult<(KeyValue, &[u8])> {
    let mut r = Reader {
        bytes,
        desc: direction == Direction::Desc,
    };
    let v = match r.byte()? {
        NULL => KeyValue::Null,
        BOOL => KeyValue::Bool(r.byte()? != 0),
        INT => KeyValue::Int(r.i64()?),
        FLOAT => {
            let k = u64::from_be_bytes(r.array()?);
            KeyValue::Float(if k == 0 {
                f64::NAN
            } else if k >> 63 == 1 {
                f64::from_bits(k & !(1 << 63))
            } else {
                f64::from_bits(!k)
            })
        }
        DECIMAL => KeyValue::Decimal(decode_decimal(&mut r)?),
        STRING => KeyValue::String(
            String::from_utf8(r.escaped()?)
                .map_err(|_| SqlError::internal("key string is not UTF-8"))?,
        ),
        BYTES => KeyValue::Bytes(r.escaped()?),
        UUID => KeyValue::Uuid(r.array()?),
        TIMESTAMP => KeyValue::Timestamp(r.i64()?),
        DATE => KeyValue::Date(r.i32()?),
        INTERVAL => KeyValue::Interval {
            months: r.i32()?,
            days: r.i32()?,
            micros: r.i64()?,
        },
        other => return Err(SqlError::internal(format!("unknown key marker {other:#x}"))),
    };
    Ok((v, r.bytes))
}

fn decode_decimal(r: &mut Reader<'_>) -> SqlResult<Decimal> {
    let class = r.byte()?;
    if class == DECIMAL_ZERO {
        return Ok(Decimal::ZERO);
    }
    let negative = match class {
        DECIMAL_NEGATIVE => true,
        DECIMAL_POSITIVE => false,
        _ => return Err(SqlError::internal("bad decimal sign in key")),
    };
    // Negative bodies are inverted on top of any descending inversion.
    let flip = |b: u8| if negative { !b } else { b };
    let mut exp_bytes = [0u8; 4];
    for b in exp_bytes.iter_mut() {
        *b = flip(r.byte()?);
    }
    let exp = (u32::from_be_bytes(exp_bytes) ^ (1 << 31)) as i32;
    let mut digits = String::new();
    loop {
        match flip(r.byte()?) {
            0 => break,
            d @ 1..=10 => digits.push((b'0' + d - 1) as char),
            _ => return Err(SqlError::internal("bad decimal digit in key")),
        }
    }
    let scale = digits.len() as i32 - exp;
    let mut text = digits;
    if scale < 0 {
        text.extend(std::iter::repeat_n('0', (-scale) as usize));
    }
    let mut mantissa: i128 = text
        .parse()
        .map_err(|_| SqlError::internal("decimal key does not fit"))?;
    if negative {
        mantissa = -mantissa;
    }
    Decimal::try_from_i128_with_scale(mantissa, scale.max(0) as u32)
        .map_err(|_| SqlError::internal("decimal key out of range"))
}

/// SQL order of two values of one type (NULL first; NaN smallest among floats).
pub fn compare(a: &KeyValue, b: &KeyValue) -> Ordering {
    use KeyValue::*;
    match (a, b) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Less,
        (_, Null) => Ordering::Greater,
        (Bool(x), Bool(y)) => x.cmp(y),
        (Int(x), Int(y)) | (Timestamp(x), Timestamp(y)) => x.cmp(y),
        (Float(x), Float(y)) => match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            _ => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        },
        (Decimal(x), Decimal(y)) => x.cmp(y),
        (String(x), String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Bytes(x), Bytes(y)) => x.cmp(y),
        (Uuid(x), Uuid(y)) => x.cmp(y),
        (Date(x), Date(y)) => x.cmp(y),
        (
            Interval {
                months: m1,
                days: d1,
                micros: u1,
            },
            Interval {
                months: m2,
                days: d2,
                micros: u2,
            },
        ) => (m1, d1, u1).cmp(&(m2, d2, u2)),
        // Different types are never compared within one column.
        _ => Ordering::Equal,
    }
}
