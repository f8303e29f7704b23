//! What the interactive shell keeps in its history (in memory and in `~/.roach_sql_history`):
//! every line and statement except those that may hold a password, which are never recorded.
//! Like psql's `\password` (which prompts, so the password never reaches the history), and
//! conservative: a false positive only costs an up-arrow.
//!
//! Refused: any entry with the word `password` (case-insensitive: `CREATE USER ... WITH
//! PASSWORD`, `ALTER USER/ROLE ... PASSWORD`, `\password`, a `password=...` connection
//! parameter), and any entry holding a URI with user information and a password
//! (`scheme://user:secret@host`, such as a replication source URI).

/// Whether `entry` (a meta-command line or a complete statement) may be recorded.
pub fn may_record(entry: &str) -> bool {
    !mentions_password(entry) && !has_uri_with_password(entry)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `password` occurs as a word, in any case.
fn mentions_password(entry: &str) -> bool {
    const WORD: &[u8] = b"password";
    let bytes = entry.as_bytes();
    bytes.windows(WORD.len()).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(WORD)
            && (i == 0 || !is_word_byte(bytes[i - 1]))
            && bytes.get(i + WORD.len()).is_none_or(|b| !is_word_byte(*b))
    })
}

/// Whether some `://` is followed, before the end of that URI (whitespace or a quote), by user
/// information holding a `:`: `user:password@`.
fn has_uri_with_password(entry: &str) -> bool {
    entry.match_indices("://").any(|(i, _)| {
        let rest = &entry[i + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(rest.len());
        let uri = &rest[..end];
        // The user information ends at the last '@' before the path (a password may hold an
        // unencoded '/', '?' or '@': be conservative and look at all of it).
        uri.rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 14 item 4: the shell's history file stored statements holding passwords in plain
    // text. Goal: every form of statement that can carry a password is kept out of the
    // history, and ordinary statements are not. Method: a table of entries with the expected
    // verdict.
    #[test]
    fn statements_holding_passwords_are_never_recorded() {
        for secret in [
            "CREATE USER mallory WITH PASSWORD 'hunter2';",
            "create user mallory password 'hunter2';",
            "ALTER USER root WITH PASSWORD 'x';",
            "ALTER ROLE app WITH LOGIN PASSWORD 'x';",
            "CREATE ROLE app WITH ENCRYPTED PASSWORD 'SCRAM-SHA-256$4096:...';",
            "alter user root password NULL;",
            "\\password root",
            "\\password",
            "CREATE VIRTUAL CLUSTER application FROM REPLICATION OF application ON 'postgresql://repl:s3cret@10.0.0.1:26257?options=-ccluster=system&sslmode=verify-full&sslrootcert=ca.crt';",
            "SELECT 'postgres://u:p@h/db';",
            "SELECT \"postgresql://u:p@h\";",
            "SELECT 'postgresql://u:pa/ss@h:1';",
            "SELECT 'host=h user=u password=secret';",
        ] {
            assert!(!may_record(secret), "recorded: {secret}");
        }
        for ordinary in [
            "SELECT 1;",
            "SHOW USERS;",
            "CREATE USER alice;",
            "GRANT SYSTEM REPLICATION TO repl;",
            "SELECT repl_password_hint FROM t;",
            "SELECT 'postgresql://repl@10.0.0.1:26257?sslmode=verify-full';",
            "SELECT 'http://example.com/a:b';",
            "SELECT 'a:b@c';",
            "\\q",
        ] {
            assert!(may_record(ordinary), "not recorded: {ordinary}");
        }
    }
}
