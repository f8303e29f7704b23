//! Fuzzes the pgwire front end's decoding: the bytes a client sends are decoded as pgwire
//! frontend messages (SSL negotiation, startup, then the message loop, as a connection
//! advances), and what roach decodes from them itself: the startup routing (`options`,
//! `database`), the Bind format codes and every bound parameter, in binary and text, as each
//! wire type. Any input must decode or fail with an error, never panic (issue 14 item 6).
//!
//! pgwire 0.42.1's decoders of the extended-protocol messages (Parse, Bind, Close, Describe,
//! Execute) read their fixed-size fields with `bytes::Buf::get_*` without checking the frame
//! holds them, and panic on a truncated body (found by this target). On a server that panic
//! ends only the offending connection's task (`robustness.rs` checks the server keeps
//! serving), but it would stop this target at once; so frames of those five kinds whose
//! declared fields do not fit are skipped here (`extended_frame_fits`) until pgwire checks
//! them itself. Everything else goes to the decoder as is.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::FieldFormat;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion};
use sql::pgtypes;

/// Types tried for parameters the Parse message left undeclared.
const TYPES: &[Type] = &[
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::DATE,
    Type::INTERVAL,
    Type::NUMERIC,
    Type::JSONB,
    Type::JSON,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::BOOL,
    Type::UUID,
    Type::BYTEA,
    Type::TEXT,
];

/// A cursor over one frame's body that fails instead of reading past it.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }

    fn cstring(&mut self) -> Option<()> {
        let end = self.0.iter().position(|b| *b == 0)?;
        self.take(end + 1)
    }

    fn u16(&mut self) -> Option<usize> {
        let v = u16::from_be_bytes([*self.0.first()?, *self.0.get(1)?]);
        self.take(2)?;
        Some(v as usize)
    }

    fn i32(&mut self) -> Option<i32> {
        let v = i32::from_be_bytes(self.0.get(..4)?.try_into().ok()?);
        self.take(4)?;
        Some(v)
    }
}

/// Whether the fields pgwire 0.42.1 reads from a Parse, Bind, Close, Describe or Execute
/// frame fit in its body (other frames: true).
fn extended_frame_fits(tag: u8, body: &[u8]) -> bool {
    let mut f = Fields(body);
    let ok = match tag {
        b'P' => (|| {
            f.cstring()?;
            f.cstring()?;
            let n = f.u16()?;
            f.take(n * 4)
        })(),
        b'B' => (|| {
            f.cstring()?;
            f.cstring()?;
            let n = f.u16()?;
            f.take(n * 2)?;
            for _ in 0..f.u16()? {
                let len = f.i32()?;
                if len >= 0 {
                    f.take(len as usize)?;
                }
            }
            let n = f.u16()?;
            f.take(n * 2)
        })(),
        b'C' | b'D' => (|| {
            f.take(1)?;
            f.cstring()
        })(),
        b'E' => (|| {
            f.cstring()?;
            f.i32().map(|_| ())
        })(),
        _ => Some(()),
    };
    ok.is_some()
}

fn format_from_codes(codes: &[i16]) -> Format {
    match codes {
        [] => Format::UnifiedText,
        [one] => Format::from(*one),
        many => Format::Individual(many.to_vec()),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut ctx = DecodeContext::new(ProtocolVersion::PROTOCOL3_0);
    let mut declared: Vec<Type> = Vec::new();
    // Each decoded message consumes input, so this ends; the bound guards a decoder that
    // would not.
    for _ in 0..1000 {
        if !ctx.awaiting_frontend_ssl && !ctx.awaiting_frontend_startup && buf.len() >= 5 {
            // The length counts itself: below 4 the frame is malformed whatever its kind.
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if len < 4 {
                return;
            }
            if let Some(body) = len.checked_add(1).and_then(|end| buf.get(5..end))
                && !extended_frame_fits(buf[0], body)
            {
                return;
            }
        }
        let message = match PgWireFrontendMessage::decode(&mut buf, &ctx) {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => return,
        };
        match message {
            PgWireFrontendMessage::SslNegotiation(_) => ctx.awaiting_frontend_ssl = false,
            PgWireFrontendMessage::Startup(startup) => {
                ctx.awaiting_frontend_ssl = false;
                ctx.awaiting_frontend_startup = false;
                let p = &startup.parameters;
                let _ = sql::pgserver::route(
                    p.get("options").map(String::as_str),
                    p.get("database").map(String::as_str),
                );
            }
            PgWireFrontendMessage::Parse(parse) => {
                declared = parse
                    .type_oids
                    .iter()
                    .map(|oid| Type::from_oid(*oid).unwrap_or(Type::TEXT))
                    .collect();
                let _ = sql::parser::parse(&parse.query);
            }
            PgWireFrontendMessage::Query(query) => {
                let _ = sql::parser::parse(&query.query);
            }
            PgWireFrontendMessage::Bind(bind) => {
                let formats = format_from_codes(&bind.parameter_format_codes);
                let n = bind.parameters.len();
                if pgtypes::check_formats(&formats, n, "parameter").is_err() {
                    continue;
                }
                let results = format_from_codes(&bind.result_column_format_codes);
                let _ = pgtypes::check_formats(&results, n, "result");
                let _ = pgtypes::format_of(&results, n);
                for (i, value) in bind.parameters.iter().enumerate() {
                    let binary = pgtypes::format_of(&formats, i) == FieldFormat::Binary;
                    let typed = declared.get(i).cloned();
                    let tried = typed
                        .iter()
                        .chain(if typed.is_none() { TYPES } else { &[] });
                    for t in tried {
                        for as_binary in [binary, !binary] {
                            if let Ok(d) = pgtypes::decode_param(value.as_deref(), t, as_binary) {
                                // Decoded values must print and encode back without panicking.
                                let _ = d.to_text();
                                let _ = pgtypes::encode_binary(&d, t);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
});
