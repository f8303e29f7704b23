//! Fuzzes expression evaluation: the input is the select list of a `SELECT` without `FROM`
//! (one scalar expression: operators, casts, builtins, literals of every type), compiled
//! and evaluated with no tables. It must give a value or a SQL error with a SQLSTATE, never
//! panic (issue 14 item 6).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sql::expr::SessionInfo;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let session = SessionInfo {
        user: "root".into(),
        database: "defaultdb".into(),
        virtual_cluster: "application".into(),
        txn_micros: 1_700_000_000_000_000,
        node_id: 1,
        vars: Default::default(),
        definitions: Default::default(),
    };
    match sql::expr::eval_standalone(text, &session) {
        Ok(v) => {
            let _ = v.to_text();
        }
        Err(e) => assert_eq!(e.code.len(), 5, "every error has a SQLSTATE"),
    }
});
