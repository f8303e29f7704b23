//! Fuzzes the statement parser: any text must parse or fail with a SQLSTATE, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(e) = sql::parser::parse(text)
    {
        assert_eq!(e.code.len(), 5, "every error has a SQLSTATE");
    }
});
