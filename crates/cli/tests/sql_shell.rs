//! `roach sql`, run as the built binary against a scripted fake PostgreSQL server on 127.0.0.1
//! (no real database needed): startup options, output formats, errors, exit codes, redaction.
//!
//! The fake server speaks just enough of the v3 protocol for the simple query flow: it accepts
//! any startup without TLS (or asks for a password), then answers each query by its text:
//! `select ...` gives two columns and one row (`1`, NULL), `fail ...` an error with SQLSTATE and
//! hint, anything else `INSERT 0 1`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

/// What the fake server saw.
#[derive(Debug, Default)]
struct Seen {
    /// Startup parameters of each connection, in order.
    startups: Vec<Vec<(String, String)>>,
    queries: Vec<String>,
}

/// How the fake server authenticates.
#[derive(Debug, Clone, Copy)]
enum Auth {
    Trust,
    /// Ask for a cleartext password and expect this one.
    Password(&'static str),
}

/// Starts the fake server; returns its port and what it sees.
fn must_start_fake_server(auth: Auth) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let seen_by_server = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen = seen_by_server.clone();
            thread::spawn(move || {
                // A client that hangs up mid-way is fine.
                let _ = serve(stream, auth, &seen);
            });
        }
    });
    (port, seen)
}

fn read_exact_vec(stream: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

fn read_i32(stream: &mut TcpStream) -> std::io::Result<usize> {
    let b = read_exact_vec(stream, 4)?;
    Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// A backend message: tag, then length-prefixed body.
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn cstring(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn serve(mut stream: TcpStream, auth: Auth, seen: &Mutex<Seen>) -> std::io::Result<()> {
    // Startup message: length, protocol version, then key/value C strings.
    let len = read_i32(&mut stream)?;
    let body = read_exact_vec(&mut stream, len - 4)?;
    let fields: Vec<String> = body[4..]
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let params = fields
        .chunks(2)
        .filter(|kv| kv.len() == 2 && !kv[0].is_empty())
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect();
    seen.lock().expect("lock").startups.push(params);

    if let Auth::Password(expected) = auth {
        stream.write_all(&message(b'R', &3i32.to_be_bytes()))?;
        let mut tag = [0u8; 1];
        stream.read_exact(&mut tag)?;
        let len = read_i32(&mut stream)?;
        let password = read_exact_vec(&mut stream, len - 4)?;
        if password != cstring(expected) {
            let mut e = Vec::new();
            for (code, value) in [
                (b'S', "FATAL"),
                (b'C', "28P01"),
                (b'M', "password authentication failed"),
            ] {
                e.push(code);
                e.extend(cstring(value));
            }
            e.push(0);
            stream.write_all(&message(b'E', &e))?;
            return Ok(());
        }
    }
    stream.write_all(&message(b'R', &0i32.to_be_bytes()))?;
    stream.write_all(&message(b'Z', b"I"))?;

    loop {
        let mut tag = [0u8; 1];
        stream.read_exact(&mut tag)?;
        let len = read_i32(&mut stream)?;
        let body = read_exact_vec(&mut stream, len - 4)?;
        match tag[0] {
            b'Q' => {
                let query = String::from_utf8_lossy(&body[..body.len() - 1]).into_owned();
                seen.lock().expect("lock").queries.push(query.clone());
                let mut out = Vec::new();
                if query.starts_with("select") {
                    let mut t = 2i16.to_be_bytes().to_vec();
                    for name in ["a", "b"] {
                        t.extend(cstring(name));
                        t.extend(0i32.to_be_bytes()); // table oid
                        t.extend(0i16.to_be_bytes()); // column number
                        t.extend(25i32.to_be_bytes()); // text
                        t.extend((-1i16).to_be_bytes()); // type length
                        t.extend((-1i32).to_be_bytes()); // type modifier
                        t.extend(0i16.to_be_bytes()); // text format
                    }
                    out.extend(message(b'T', &t));
                    let mut d = 2i16.to_be_bytes().to_vec();
                    d.extend(1i32.to_be_bytes());
                    d.extend(b"1");
                    d.extend((-1i32).to_be_bytes());
                    out.extend(message(b'D', &d));
                    out.extend(message(b'C', &cstring("SELECT 1")));
                } else if query.starts_with("fail") {
                    let mut e = Vec::new();
                    for (code, value) in [
                        (b'S', "ERROR"),
                        (b'V', "ERROR"),
                        (b'C', "42P01"),
                        (b'M', "relation \"nope\" does not exist"),
                        (b'H', "check the table name"),
                    ] {
                        e.push(code);
                        e.extend(cstring(value));
                    }
                    e.push(0);
                    out.extend(message(b'E', &e));
                } else {
                    out.extend(message(b'C', &cstring("INSERT 0 1")));
                }
                out.extend(message(b'Z', b"I"));
                stream.write_all(&out)?;
            }
            b'X' => return Ok(()),
            _ => return Ok(()),
        }
    }
}

/// Runs `roach sql <args>` with `stdin` as its standard input.
fn roach_sql(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roach"))
        .arg("sql")
        .args(args)
        .env_remove("ROACH_CERTS_DIR")
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn roach");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for roach")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn url(port: u16, query: &str) -> String {
    format!("postgresql://alice:s3cr%40t@127.0.0.1:{port}/shop?sslmode=disable{query}")
}

#[test]
fn options_reach_the_server_encoded_or_not() {
    // Goal: `options=-ccluster=system` (as the CockroachDB tutorial writes it) and
    // `options=-ccluster%3Dsystem` (as psql needs it) both arrive as the startup parameter
    // `options = -ccluster=system`, with the URL's user and database. Method: two runs against
    // the fake server, then read its recorded startup parameters.
    let (port, seen) = must_start_fake_server(Auth::Trust);
    for options in ["-ccluster=system", "-ccluster%3Dsystem"] {
        let out = roach_sql(
            &[
                "--url",
                &url(port, &format!("&options={options}")),
                "-e",
                "insert",
            ],
            "",
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.startups.len(), 2);
    for startup in &seen.startups {
        let get = |k: &str| {
            startup
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("options"), Some("-ccluster=system"), "{startup:?}");
        assert_eq!(get("user"), Some("alice"));
        assert_eq!(get("database"), Some("shop"));
    }
}

#[test]
fn execute_prints_tables_tags_and_footer() {
    // Goal: `-e` runs each statement (and each `;`-separated one inside an -e) in order,
    // printing a table with NULL and a `(1 row)` footer for rows and the tag for the rest.
    let (port, seen) = must_start_fake_server(Auth::Trust);
    let out = roach_sql(
        &[
            "--url",
            &url(port, ""),
            "-e",
            "select 1; insert into t values (1)",
            "-e",
            "select 2",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        " a | b\n---+------\n 1 | NULL\n(1 row)\nINSERT 0 1\n a | b\n---+------\n 1 | NULL\n(1 row)\n"
    );
    assert_eq!(
        seen.lock().expect("lock").queries,
        vec!["select 1", "insert into t values (1)", "select 2"]
    );
}

#[test]
fn csv_and_tsv_formats() {
    // Goal: --format csv/tsv print a header and rows without a footer.
    let (port, _) = must_start_fake_server(Auth::Trust);
    let out = roach_sql(
        &["--url", &url(port, ""), "--format", "csv", "-e", "select"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "a,b\n1,NULL\n");
    let out = roach_sql(
        &["--url", &url(port, ""), "--format", "tsv", "-e", "select"],
        "",
    );
    assert_eq!(stdout(&out), "a\tb\n1\tNULL\n");
}

#[test]
fn error_stops_execute_with_exit_code_1() {
    // Goal: the first failing -e statement prints ERROR, SQLSTATE and HINT to stderr, exits 1
    // and runs nothing after it.
    let (port, seen) = must_start_fake_server(Auth::Trust);
    let out = roach_sql(
        &[
            "--url",
            &url(port, ""),
            "-e",
            "insert",
            "-e",
            "fail now",
            "-e",
            "select",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "INSERT 0 1\n");
    assert_eq!(
        stderr(&out),
        "ERROR: relation \"nope\" does not exist\nSQLSTATE: 42P01\nHINT: check the table name\n"
    );
    assert_eq!(
        seen.lock().expect("lock").queries,
        vec!["insert", "fail now"]
    );
}

#[test]
fn piped_stdin_is_split_and_stops_at_error() {
    // Goal: statements piped on stdin are split at `;` outside quotes and comments (a final
    // one without `;` runs too), and the first error stops the run with exit code 1.
    let (port, seen) = must_start_fake_server(Auth::Trust);
    let out = roach_sql(
        &["--url", &url(port, "")],
        "insert 'a;b'; -- comment;\nselect\n 1\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        seen.lock().expect("lock").queries,
        vec!["insert 'a;b'", "-- comment;\nselect\n 1"]
    );
    let (port, seen) = must_start_fake_server(Auth::Trust);
    let out = roach_sql(&["--url", &url(port, "")], "insert;\nfail;\nselect;\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(seen.lock().expect("lock").queries, vec!["insert", "fail"]);
}

#[test]
fn password_from_url_and_missing_password() {
    // Goal: a percent-encoded URL password is decoded and sent; without one, and with stdin
    // not a terminal, the shell fails clearly instead of prompting.
    let (port, _) = must_start_fake_server(Auth::Password("s3cr@t"));
    let out = roach_sql(&["--url", &url(port, ""), "-e", "insert"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = roach_sql(
        &[
            "--url",
            &format!("postgresql://alice@127.0.0.1:{port}/shop?sslmode=disable"),
            "-e",
            "insert",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("asked for a password"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn password_is_never_shown() {
    // Goal: connection failures (refused, and wrong password) show host, port and the URL
    // with the password as `****`, never the password itself.
    let (port, _) = must_start_fake_server(Auth::Password("other"));
    let out = roach_sql(&["--url", &url(port, ""), "-e", "insert"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("alice:****@127.0.0.1"), "{err}");
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("s3cr"), "{err}");

    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_port = closed.local_addr().expect("addr").port();
    drop(closed);
    let out = roach_sql(&["--url", &url(closed_port, ""), "-e", "select"], "");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("127.0.0.1:{closed_port}")), "{err}");
    assert!(err.contains("HINT: is the node running"), "{err}");
    assert!(!err.contains("s3cr"), "{err}");
}

#[test]
fn bad_url_and_missing_certs() {
    // Goal: an unknown URL parameter and a secure connection without a CA certificate fail
    // with exit code 1 and a message saying what to do.
    let out = roach_sql(
        &[
            "--url",
            "postgresql://root@127.0.0.1:1/db?sslmod=disable",
            "-e",
            "select",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unsupported URL parameter \"sslmod\""));
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = dir.path().join("certs");
    let out = roach_sql(
        &[
            "--host",
            "127.0.0.1:1",
            "--certs-dir",
            certs.to_str().expect("utf-8 path"),
            "-e",
            "select",
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("ca.crt"), "{err}");
    assert!(err.contains("--insecure"), "{err}");
}
