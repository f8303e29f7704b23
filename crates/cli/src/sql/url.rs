//! Parsing and redacting `postgresql://` connection URLs.
//!
//! Our own small parser rather than a general URL crate, because the CockroachDB tutorial writes
//! `?options=-ccluster=system` with an unencoded `=` inside the value: a query parameter is split
//! at its *first* `=` only, so the rest of the value is kept as written. Both the unencoded and
//! the percent-encoded form (`options=-ccluster%3Dsystem`, which psql needs) give the same value.
//!
//! Accepted form: `postgres[ql]://[user[:password]@][host][:port][/database][?key=value&...]`,
//! with `[v6addr]` for IPv6 hosts and percent-encoding anywhere. A password may contain unencoded
//! `@` and `:` (the last `@` ends the user information); `/`, `?` and `#` must be encoded.

use percent_encoding::percent_decode_str;
use std::fmt;

/// What replaces a password wherever a URL is shown.
pub const REDACTED: &str = "****";

/// Why a URL could not be parsed. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("URL must start with postgresql:// or postgres://")]
    Scheme,
    #[error("invalid port {port:?} in URL")]
    Port { port: String },
    #[error("unterminated IPv6 address in URL (missing `]`)")]
    Ipv6,
    #[error("multiple hosts in one URL are not supported")]
    MultipleHosts,
    #[error("the {part} in the URL is not valid UTF-8 after percent-decoding")]
    Utf8 { part: &'static str },
    #[error("empty parameter name in URL query")]
    EmptyKey,
}

/// The parts of a connection URL, percent-decoded. Missing parts are `None`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnUrl {
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    /// Query parameters in order, keys and values decoded; a value keeps every `=` after the
    /// first one of its parameter.
    pub params: Vec<(String, String)>,
}

impl fmt::Debug for ConnUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnUrl")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("params", &self.params)
            .finish()
    }
}

impl ConnUrl {
    /// Parses a `postgresql://` or `postgres://` URL.
    pub fn parse(url: &str) -> Result<ConnUrl, UrlError> {
        let rest = strip_scheme(url).ok_or(UrlError::Scheme)?;
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (before_query, None),
        };
        // The user information ends at the last `@` of the authority (passwords may hold `@`).
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };

        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (u, p) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                (
                    non_empty(decode(u, "user name")?),
                    p.map(|p| decode(p, "password")).transpose()?,
                )
            }
        };
        let (host, port) = split_host_port(hostport)?;
        let database = match path {
            Some(p) => non_empty(decode(p, "database")?),
            None => None,
        };
        let mut params = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(k, "parameter name")?;
            if key.is_empty() {
                return Err(UrlError::EmptyKey);
            }
            params.push((key, decode(v, "parameter value")?));
        }
        Ok(ConnUrl {
            user,
            password,
            host,
            port,
            database,
            params,
        })
    }

    /// The last value of query parameter `key`, if present.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Shows the URL with the password, if any, replaced by `****`.
impl fmt::Display for ConnUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
        const PART: &AsciiSet = &CONTROLS
            .add(b' ')
            .add(b'@')
            .add(b':')
            .add(b'/')
            .add(b'?')
            .add(b'#')
            .add(b'&')
            .add(b'%');
        const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'#').add(b'&').add(b'%');
        f.write_str("postgresql://")?;
        if self.user.is_some() || self.password.is_some() {
            if let Some(user) = &self.user {
                write!(f, "{}", utf8_percent_encode(user, PART))?;
            }
            if self.password.is_some() {
                write!(f, ":{REDACTED}")?;
            }
            f.write_str("@")?;
        }
        if let Some(host) = &self.host {
            if host.contains(':') {
                write!(f, "[{host}]")?;
            } else {
                f.write_str(host)?;
            }
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if let Some(db) = &self.database {
            write!(f, "/{}", utf8_percent_encode(db, PART))?;
        }
        for (i, (k, v)) in self.params.iter().enumerate() {
            let v = if is_secret_param(k) { REDACTED } else { v };
            write!(
                f,
                "{}{}={}",
                if i == 0 { "?" } else { "&" },
                utf8_percent_encode(k, QUERY),
                utf8_percent_encode(v, QUERY)
            )?;
        }
        Ok(())
    }
}

/// Redacts the password of a URL given as text, even one that does not parse: in the user
/// information, everything after its first `:` becomes `****`, and so does the value of a
/// `password` query parameter. Text without `://` is returned unchanged.
///
/// A password may hold `/`, `?`, `#` or `@` without percent-encoding, so the user information
/// is taken to end at the last `@` that is followed by something shaped like a host (no `=` or
/// `&` before the next `/`, `?`, `#` or the end). When a query value holds an `@` too, more may
/// be hidden than needed, never less.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let ends_info = |at: usize| {
        let after = &rest[at + 1..];
        let host = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
        !host.contains(['=', '&'])
    };
    let at = rest
        .match_indices('@')
        .map(|(i, _)| i)
        .rev()
        .find(|&i| ends_info(i));
    let mut out = url[..scheme_end].to_string();
    let after_info = match at {
        Some(at) => {
            let info = &rest[..at];
            match info.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(REDACTED);
                }
                None => out.push_str(info),
            }
            &rest[at..]
        }
        None => rest,
    };
    let (before_query, query) = match after_info.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (after_info, None),
    };
    out.push_str(before_query);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_param(&decode_lossy(k)) => format!("{k}={REDACTED}"),
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Query parameters whose values are secrets.
fn is_secret_param(key: &str) -> bool {
    key.eq_ignore_ascii_case("password")
}

fn strip_scheme(url: &str) -> Option<&str> {
    ["postgresql://", "postgres://"].iter().find_map(|scheme| {
        url.get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &url[scheme.len()..])
    })
}

fn split_host_port(hostport: &str) -> Result<(Option<String>, Option<u16>), UrlError> {
    if hostport.contains(',') {
        return Err(UrlError::MultipleHosts);
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let end = v6.find(']').ok_or(UrlError::Ipv6)?;
        let after = &v6[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => {
                return Err(UrlError::Port {
                    port: after.to_string(),
                });
            }
        };
        (decode(&v6[..end], "host")?, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (decode(h, "host")?, Some(p)),
            None => (decode(hostport, "host")?, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => {
            Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| UrlError::Port {
                        port: p.to_string(),
                    })?,
            )
        }
    };
    Ok((non_empty(host), port))
}

fn decode(s: &str, part: &'static str) -> Result<String, UrlError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| UrlError::Utf8 { part })
}

fn decode_lossy(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn must_parse(url: &str) -> ConnUrl {
        match ConnUrl::parse(url) {
            Ok(u) => u,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn full_url() {
        // Goal: every part of a complete URL lands in its field, decoded.
        let u = must_parse(
            "postgresql://alice:secret@db.example.com:26258/movr?sslmode=verify-full&application_name=my%20app",
        );
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host.as_deref(), Some("db.example.com"));
        assert_eq!(u.port, Some(26258));
        assert_eq!(u.database.as_deref(), Some("movr"));
        assert_eq!(u.param("sslmode"), Some("verify-full"));
        assert_eq!(u.param("application_name"), Some("my app"));
    }

    #[test]
    fn postgres_scheme_and_case() {
        // Goal: both schemes are accepted, case-insensitively; anything else is refused.
        assert_eq!(
            must_parse("postgres://h").host.as_deref(),
            Some("h"),
            "postgres://"
        );
        assert_eq!(must_parse("PostgreSQL://h").host.as_deref(), Some("h"));
        assert_eq!(ConnUrl::parse("mysql://h"), Err(UrlError::Scheme));
        assert_eq!(ConnUrl::parse("h:26257"), Err(UrlError::Scheme));
    }

    #[test]
    fn options_unencoded_and_encoded_agree() {
        // Goal: the CockroachDB tutorial's unencoded `options=-ccluster=system` keeps its inner
        // `=`, and gives the same value as psql's percent-encoded form.
        let raw = must_parse(
            "postgresql://root@localhost:26257/defaultdb?options=-ccluster=system&sslmode=disable",
        );
        let enc = must_parse(
            "postgresql://root@localhost:26257/defaultdb?options=-ccluster%3Dsystem&sslmode=disable",
        );
        assert_eq!(raw.param("options"), Some("-ccluster=system"));
        assert_eq!(enc.param("options"), Some("-ccluster=system"));
        assert_eq!(raw, enc);
        assert_eq!(raw.param("sslmode"), Some("disable"));
    }

    #[test]
    fn options_with_spaces_and_several_settings() {
        // Goal: `%20` and several `-c` settings survive in an options value, `+` stays a plus.
        let u = must_parse("postgresql://h/?options=-ccluster=app%20-csearch_path=a+b");
        assert_eq!(u.param("options"), Some("-ccluster=app -csearch_path=a+b"));
    }

    #[test]
    fn defaults_are_none() {
        // Goal: missing parts are None so the caller can apply its defaults (port 26257 etc.).
        let u = must_parse("postgresql://localhost");
        assert_eq!(u.host.as_deref(), Some("localhost"));
        assert_eq!(u.port, None);
        assert_eq!(u.user, None);
        assert_eq!(u.password, None);
        assert_eq!(u.database, None);
        assert!(u.params.is_empty());
        let u = must_parse("postgresql://");
        assert_eq!(u.host, None);
        let u = must_parse("postgresql://root@:26257/?");
        assert_eq!(u.user.as_deref(), Some("root"));
        assert_eq!(u.host, None);
        assert_eq!(u.port, Some(26257));
        assert_eq!(u.database, None);
        let u = must_parse("postgresql://h:/db");
        assert_eq!(u.port, None);
    }

    #[test]
    fn ipv4_host() {
        // Goal: an IPv4 literal with and without a port.
        let u = must_parse("postgresql://root@127.0.0.1:26257/defaultdb");
        assert_eq!(u.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(u.port, Some(26257));
        let u = must_parse("postgresql://10.0.0.1/defaultdb");
        assert_eq!(u.host.as_deref(), Some("10.0.0.1"));
        assert_eq!(u.port, None);
    }

    #[test]
    fn ipv6_host() {
        // Goal: bracketed IPv6 literals, with and without port, lose their brackets; a missing
        // `]` or junk after it is an error.
        let u = must_parse("postgresql://root@[::1]:26257/defaultdb");
        assert_eq!(u.host.as_deref(), Some("::1"));
        assert_eq!(u.port, Some(26257));
        let u = must_parse("postgresql://[fe80::1:2]/db");
        assert_eq!(u.host.as_deref(), Some("fe80::1:2"));
        assert_eq!(u.port, None);
        assert_eq!(u.database.as_deref(), Some("db"));
        assert_eq!(
            ConnUrl::parse("postgresql://[::1:26257/db"),
            Err(UrlError::Ipv6)
        );
        assert!(matches!(
            ConnUrl::parse("postgresql://[::1]x/db"),
            Err(UrlError::Port { .. })
        ));
    }

    #[test]
    fn bad_ports() {
        // Goal: non-numeric, zero and out-of-range ports are errors naming the port.
        for bad in ["abc", "0", "65536", "-1"] {
            assert_eq!(
                ConnUrl::parse(&format!("postgresql://h:{bad}/db")),
                Err(UrlError::Port { port: bad.into() }),
                "{bad}"
            );
        }
    }

    #[test]
    fn multiple_hosts_refused() {
        // Goal: libpq's multi-host form is refused clearly rather than misparsed.
        assert_eq!(
            ConnUrl::parse("postgresql://h1:26257,h2:26257/db"),
            Err(UrlError::MultipleHosts)
        );
    }

    #[test]
    fn encoded_special_password() {
        // Goal: a password with every awkward character, percent-encoded, decodes exactly.
        let u = must_parse("postgresql://bob:p%40ss%3Aw%2Fo%25rd%3F%23%26@localhost:26257/db");
        assert_eq!(u.user.as_deref(), Some("bob"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w/o%rd?#&"));
        assert_eq!(u.host.as_deref(), Some("localhost"));
        assert_eq!(u.port, Some(26257));
        assert_eq!(u.database.as_deref(), Some("db"));
    }

    #[test]
    fn unencoded_at_and_colon_in_password() {
        // Goal: unencoded `@` and `:` in a password are tolerated: the first `:` ends the user,
        // the last `@` ends the password.
        let u = must_parse("postgresql://bob:p@ss:w@rd@localhost:26257/db");
        assert_eq!(u.user.as_deref(), Some("bob"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w@rd"));
        assert_eq!(u.host.as_deref(), Some("localhost"));
        assert_eq!(u.port, Some(26257));
    }

    #[test]
    fn empty_password_and_encoded_user() {
        // Goal: `user:@` gives an empty (present) password; an encoded user name decodes.
        let u = must_parse("postgresql://us%3Aer:@h/db");
        assert_eq!(u.user.as_deref(), Some("us:er"));
        assert_eq!(u.password.as_deref(), Some(""));
    }

    #[test]
    fn lone_percent_is_kept() {
        // Goal: a `%` not followed by two hex digits is kept literally (lenient, like libpq).
        let u = must_parse("postgresql://u:50%off@h/db");
        assert_eq!(u.password.as_deref(), Some("50%off"));
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        // Goal: percent-encoded bytes that are not UTF-8 are refused, naming the part only.
        assert_eq!(
            ConnUrl::parse("postgresql://u:%ff@h/db"),
            Err(UrlError::Utf8 { part: "password" })
        );
    }

    #[test]
    fn query_edge_cases() {
        // Goal: empty pairs are skipped, a key without `=` has an empty value, the last of a
        // repeated key wins, and an empty key is an error.
        let u = must_parse("postgresql://h/db?&sslmode=require&&flag&sslmode=disable");
        assert_eq!(u.param("flag"), Some(""));
        assert_eq!(u.param("sslmode"), Some("disable"));
        assert_eq!(
            ConnUrl::parse("postgresql://h/db?=x"),
            Err(UrlError::EmptyKey)
        );
    }

    #[test]
    fn path_may_hold_at_sign() {
        // Goal: an `@` after the first `/` belongs to the database name, not the user info.
        let u = must_parse("postgresql://h:1/db@x");
        assert_eq!(u.user, None);
        assert_eq!(u.host.as_deref(), Some("h"));
        assert_eq!(u.database.as_deref(), Some("db@x"));
        // Raw-text redaction cannot tell this from a password holding a '/' ("h" the user,
        // "1/db" the password), so it hides what might be one.
        assert_eq!(redact("postgresql://h:1/db@x"), "postgresql://h:****@x");
    }

    #[test]
    fn query_value_may_hold_at_sign() {
        // Goal: an `@` in a query value does not move the user-information boundary.
        let u = must_parse("postgresql://root@h/db?application_name=me@work");
        assert_eq!(u.user.as_deref(), Some("root"));
        assert_eq!(u.host.as_deref(), Some("h"));
        assert_eq!(u.param("application_name"), Some("me@work"));
    }

    #[test]
    fn display_redacts_password() {
        // Goal: showing a parsed URL never shows the password, here one with special
        // characters, nor a `password` query parameter.
        let u = must_parse(
            "postgresql://bob:s3cr%40t@[::1]:26257/my%20db?options=-ccluster=system&password=hunter2",
        );
        let shown = u.to_string();
        assert_eq!(
            shown,
            "postgresql://bob:****@[::1]:26257/my%20db?options=-ccluster=system&password=****"
        );
        assert!(!shown.contains("s3cr"));
        assert!(!shown.contains("hunter2"));
        assert!(!format!("{u:?}").contains("s3cr"));
    }

    #[test]
    fn display_without_password() {
        // Goal: a URL without a password is shown without `:****`.
        let u = must_parse("postgresql://root@localhost:26257/defaultdb?sslmode=disable");
        assert_eq!(
            u.to_string(),
            "postgresql://root@localhost:26257/defaultdb?sslmode=disable"
        );
    }

    #[test]
    fn redact_text() {
        // Goal: redacting raw text hides the password even in URLs that do not parse, and
        // leaves the rest alone.
        assert_eq!(
            redact("postgresql://bob:p@ss:w@rd@localhost:26257/db?sslmode=disable"),
            "postgresql://bob:****@localhost:26257/db?sslmode=disable"
        );
        assert_eq!(
            redact("postgresql://bob:secret@h1,h2:bad/db"),
            "postgresql://bob:****@h1,h2:bad/db"
        );
        assert_eq!(
            redact("postgresql://bob@h/db?password=secret&x=1"),
            "postgresql://bob@h/db?password=****&x=1"
        );
        assert_eq!(redact("postgresql://h:26257/db"), "postgresql://h:26257/db");
        assert_eq!(redact("not a url"), "not a url");
        // Unencoded '/', '?', '#' and '@' in a password stay hidden.
        for pw in ["pa/ss", "pa?ss", "pa#ss", "p@/s?s", "a?b=c"] {
            let r = redact(&format!(
                "postgresql://bob:{pw}@host:26257/db?sslmode=disable"
            ));
            assert_eq!(
                r, "postgresql://bob:****@host:26257/db?sslmode=disable",
                "{pw}"
            );
        }
        // An '@' in a query value is not taken for the end of a password.
        assert_eq!(
            redact("postgresql://bob@h/db?application_name=a@b&x=1"),
            "postgresql://bob@h/db?application_name=a@b&x=1"
        );
        assert_eq!(
            redact("postgresql://h/db?application_name=a@b"),
            "postgresql://h/db?application_name=a@b"
        );
    }
}
