//! Fuzzes the start-up routing decision (startup `options` and `database` parameters): any
//! values must route or not, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (options, database) = text.split_once('\u{0}').unwrap_or((&text, ""));
    let _ = sql::pgserver::route(Some(options), Some(database));
    let _ = sql::pgserver::route(None, Some(options));
});
