//! The `postgresql://` URI of a primary cluster's system virtual cluster, as written in
//! `CREATE VIRTUAL CLUSTER ... FROM REPLICATION OF ... ON '<uri>'`.

use crate::{ReplError, ReplResult};
use percent_encoding::percent_decode_str;

/// How the standby secures its connections to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP (primaries started with `--insecure`).
    Disable,
    /// TLS, verifying the certificate chain against `sslrootcert` and the host name.
    VerifyFull,
}

/// How the standby itself runs: a secure standby (started with TLS certificates) replicates
/// only over verified TLS; an insecure one (started with `--insecure`) may use plain TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandbySecurity {
    Secure,
    Insecure,
}

/// What a secure standby asks for instead of a source URI that would not use TLS.
pub const TLS_REQUIRED_HINT: &str = "pass sslmode=verify-full&sslrootcert=<path of the primary's CA certificate> (for example certs/ca_primary.crt); only a standby started with --insecure may replicate with sslmode=disable";

/// A parsed source URI. Never print it with `{:?}` where users see it: use
/// [`SourceUri::redacted`].
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUri {
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    pub sslmode: SslMode,
    pub sslrootcert: Option<String>,
    /// The original text (holds the password).
    pub raw: String,
}

impl std::fmt::Debug for SourceUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn bad(uri: &str, reason: impl Into<String>) -> ReplError {
    ReplError::BadUri {
        uri: redact(uri),
        reason: reason.into(),
    }
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// `uri` with its password and query string replaced by `redacted`. Conservative where the
/// URI is malformed (a password holding an unencoded `/`, `?` or `@`): the user information
/// ends at the last `@`, the host at the first character a host cannot hold, and whatever is
/// cut off is not shown.
pub fn redact(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return "redacted".to_string();
    };
    let (user, after) = match rest.rsplit_once('@') {
        Some((userinfo, after)) => {
            let name_end = userinfo
                .find([':', '/', '?', '#'])
                .unwrap_or(userinfo.len());
            let name = &userinfo[..name_end];
            if name_end < userinfo.len() {
                (format!("{name}:redacted@"), after)
            } else {
                (format!("{name}@"), after)
            }
        }
        None => (String::new(), rest),
    };
    let host_end = after.find(['?', '&', '=', '#']).unwrap_or(after.len());
    let mut out = format!("{scheme}://{user}{}", &after[..host_end]);
    if host_end < after.len() || rest.contains('?') {
        out.push_str("?redacted");
    }
    out
}

/// `uri` (one [`SourceUri::parse`] accepts) without the password of its user information:
/// what a job record keeps, the password being kept apart (see `secrets`).
pub fn without_password(uri: &str) -> String {
    let uri = uri.trim();
    let Some((scheme, rest)) = uri.split_once("://") else {
        return redact(uri);
    };
    let (authority_path, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = authority_path.split('/').next().unwrap_or_default();
    let path = &authority_path[authority.len()..];
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{user}@{hostport}")
        }
        None => authority.to_string(),
    };
    match query {
        Some(q) => format!("{scheme}://{authority}{path}?{q}"),
        None => format!("{scheme}://{authority}{path}"),
    }
}

impl SourceUri {
    /// Parses and checks a source URI.
    pub fn parse(uri: &str) -> ReplResult<SourceUri> {
        let uri = uri.trim();
        let rest = uri
            .strip_prefix("postgresql://")
            .or_else(|| uri.strip_prefix("postgres://"))
            .ok_or_else(|| bad(uri, "the scheme must be postgresql://"))?;
        let (authority_path, query) = match rest.split_once('?') {
            Some((a, q)) => (a, q),
            None => (rest, ""),
        };
        let authority = authority_path.split('/').next().unwrap_or_default();
        let (userinfo, hostport) = authority.rsplit_once('@').ok_or_else(|| {
            if rest.contains('@') {
                bad(
                    uri,
                    "the user name or password holds '/', '?' or '#': percent-encode them (%2F, %3F, %23)",
                )
            } else {
                bad(
                    uri,
                    "it must name a user: postgresql://user:password@host:port",
                )
            }
        })?;
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (decode(u), Some(decode(p))),
            None => (decode(userinfo), None),
        };
        if user.is_empty() {
            return Err(bad(uri, "the user name is empty"));
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| bad(uri, format!("the port {p:?} is not a number")))?;
                (
                    h.trim_start_matches('[').trim_end_matches(']').to_string(),
                    port,
                )
            }
            _ => (hostport.to_string(), 26257),
        };
        if host.is_empty() {
            return Err(bad(uri, "the host is empty"));
        }
        let mut sslmode = None;
        let mut sslrootcert = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v);
            match k {
                "sslmode" => {
                    sslmode = Some(match v.as_str() {
                        "disable" => SslMode::Disable,
                        "verify-full" => SslMode::VerifyFull,
                        // libpq's opportunistic modes fall back to plain TCP when the server
                        // offers no TLS, so a man in the middle can turn TLS off.
                        "allow" | "prefer" => {
                            return Err(bad(
                                uri,
                                format!(
                                    "sslmode {v:?} may fall back to plaintext: pass sslmode=verify-full&sslrootcert=<path of the primary's CA certificate>, or sslmode=disable for --insecure clusters"
                                ),
                            ));
                        }
                        other => {
                            return Err(bad(
                                uri,
                                format!(
                                    "sslmode {other:?} is not supported: use verify-full, or disable for --insecure clusters"
                                ),
                            ));
                        }
                    })
                }
                "sslrootcert" => sslrootcert = Some(v),
                "options" => {
                    let cluster = v
                        .split_whitespace()
                        .find_map(|o| o.strip_prefix("-ccluster="))
                        .unwrap_or("");
                    if cluster != "system" {
                        return Err(bad(
                            uri,
                            format!(
                                "options must select the primary's system virtual cluster (options=-ccluster=system), not {cluster:?}"
                            ),
                        ));
                    }
                }
                "application_name" | "connect_timeout" | "sslcert" | "sslkey" | "sslinline" => {}
                other => {
                    return Err(bad(uri, format!("unknown parameter {other:?}")));
                }
            }
        }
        let sslmode = sslmode.unwrap_or(if sslrootcert.is_some() {
            SslMode::VerifyFull
        } else {
            SslMode::Disable
        });
        if sslmode != SslMode::Disable && sslrootcert.is_none() {
            return Err(bad(
                uri,
                "sslmode verify-full needs sslrootcert=<path of the primary's CA certificate> (for example certs/ca_primary.crt)",
            ));
        }
        Ok(SourceUri {
            user,
            password,
            host,
            port,
            sslmode,
            sslrootcert,
            raw: uri.to_string(),
        })
    }

    /// Refuses a URI that would reach the source without TLS (`sslmode=disable`, or neither
    /// `sslmode` nor `sslrootcert` given) unless the standby itself runs insecure.
    pub fn check_transport(&self, standby: StandbySecurity) -> ReplResult<()> {
        if self.sslmode == SslMode::Disable && standby == StandbySecurity::Secure {
            return Err(ReplError::PlaintextSource {
                uri: self.redacted(),
            });
        }
        Ok(())
    }

    /// The URI with its password and query string redacted.
    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }

    /// The `host:port` the URI names.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_tutorial_uri_encoded_or_not() {
        for uri in [
            "postgresql://repl:s3cret@127.0.0.1:26257?options=-ccluster=system&sslmode=verify-full&sslrootcert=certs/ca_primary.crt",
            "postgresql://repl:s3cret@127.0.0.1:26257/?options=-ccluster%3Dsystem&sslmode=verify-full&sslrootcert=certs%2Fca_primary.crt",
        ] {
            let u = SourceUri::parse(uri).expect("parses");
            assert_eq!(u.user, "repl");
            assert_eq!(u.password.as_deref(), Some("s3cret"));
            assert_eq!(u.addr(), "127.0.0.1:26257");
            assert_eq!(u.sslmode, SslMode::VerifyFull);
            assert_eq!(u.sslrootcert.as_deref(), Some("certs/ca_primary.crt"));
            assert!(!u.redacted().contains("s3cret"));
            assert!(!format!("{u:?}").contains("s3cret"));
            assert!(!u.redacted().contains("ca_primary"));
        }
    }

    #[test]
    fn the_password_comes_off_and_nothing_else() {
        // issue 14 item 4: what a job record keeps of the source URI has no password.
        for (raw, want) in [
            (
                "postgresql://repl:s3cret@127.0.0.1:26257?options=-ccluster=system&sslmode=verify-full&sslrootcert=certs/ca.crt",
                "postgresql://repl@127.0.0.1:26257?options=-ccluster=system&sslmode=verify-full&sslrootcert=certs/ca.crt",
            ),
            (
                "postgresql://repl:p%3Fw@h:1/defaultdb?sslmode=disable",
                "postgresql://repl@h:1/defaultdb?sslmode=disable",
            ),
            ("postgres://root@h:1", "postgres://root@h:1"),
        ] {
            assert_eq!(without_password(raw), want, "{raw}");
            let before = SourceUri::parse(raw).expect("parses");
            let after = SourceUri::parse(&without_password(raw)).expect("parses");
            assert_eq!(after.password, None);
            assert_eq!((&after.user, after.addr()), (&before.user, before.addr()));
            assert_eq!(after.sslrootcert, before.sslrootcert);
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("postgresql://repl:pw@h:1?sslmode=verify-full"),
            "postgresql://repl:redacted@h:1?redacted"
        );
        assert_eq!(redact("postgresql://repl@h:1"), "postgresql://repl@h:1");
        assert_eq!(redact("garbage:pw"), "redacted");
        // Unencoded '/', '?' or '@' in a password never show any of it.
        for (raw, want) in [
            (
                "postgresql://u:pa/ss@h:1?x",
                "postgresql://u:redacted@h:1?redacted",
            ),
            (
                "postgresql://u:pa?ss@h:1",
                "postgresql://u:redacted@h:1?redacted",
            ),
            (
                "postgresql://u:p@ss@h:1/db",
                "postgresql://u:redacted@h:1/db",
            ),
            (
                "postgresql://h?sslrootcert=a@b&password=x",
                "postgresql://h:redacted@b?redacted",
            ),
        ] {
            assert_eq!(redact(raw), want, "{raw}");
        }
        let e = SourceUri::parse("postgresql://u:pa/ss@h:1?sslmode=disable").expect_err("bad");
        let text = e.to_string();
        assert!(
            text.contains("percent-encode") && !text.contains("pa/ss"),
            "{text}"
        );
    }

    #[test]
    fn a_secure_standby_refuses_plaintext_sources() {
        // issue 14 item 3: a source URI without sslrootcert used to become sslmode=disable
        // silently, so a secure standby talked to its primary in plaintext. Method: every way
        // of asking for no TLS (explicit disable, nothing said, the opportunistic modes) is
        // refused on a secure standby with 22023 and the way out; an insecure standby keeps
        // sslmode=disable, and verify-full passes on both.
        for uri in [
            "postgresql://repl:s3cret@h:1?sslmode=disable",
            "postgresql://repl:s3cret@h:1",
            "postgresql://repl:s3cret@h:1?options=-ccluster=system",
        ] {
            let u = SourceUri::parse(uri).expect(uri);
            let e = u.check_transport(StandbySecurity::Secure).expect_err(uri);
            assert!(
                matches!(e, ReplError::PlaintextSource { .. }),
                "{uri}: {e:?}"
            );
            let sql: ::sql::error::SqlError = e.into();
            assert_eq!(sql.code, "22023", "{uri}");
            assert!(
                sql.message.contains("sslmode=verify-full&sslrootcert="),
                "{uri}: {}",
                sql.message
            );
            assert!(!sql.message.contains("s3cret"), "{}", sql.message);
            u.check_transport(StandbySecurity::Insecure)
                .expect("an insecure standby may use plain TCP");
        }
        for mode in ["allow", "prefer"] {
            let uri = format!("postgresql://repl:s3cret@h:1?sslmode={mode}&sslrootcert=ca.crt");
            let e = SourceUri::parse(&uri).expect_err(mode).to_string();
            assert!(e.contains("sslmode=verify-full&sslrootcert="), "{e}");
        }
        let tls =
            SourceUri::parse("postgresql://repl:s3cret@h:1?sslmode=verify-full&sslrootcert=ca.crt")
                .expect("parses");
        tls.check_transport(StandbySecurity::Secure).expect("TLS");
        tls.check_transport(StandbySecurity::Insecure).expect("TLS");
    }

    #[test]
    fn rejects_bad_uris() {
        for (uri, needle) in [
            ("mysql://a:b@h:1", "scheme"),
            ("postgresql://h:1", "user"),
            ("postgresql://a:b@h:notaport", "port"),
            ("postgresql://a:b@h:1?sslmode=prefer", "sslmode"),
            ("postgresql://a:b@h:1?sslmode=verify-full", "sslrootcert"),
            (
                "postgresql://a:b@h:1?options=-ccluster=application",
                "system",
            ),
            ("postgresql://a:b@h:1?bogus=1", "unknown parameter"),
        ] {
            let e = SourceUri::parse(uri).expect_err(uri).to_string();
            assert!(e.contains(needle), "{uri}: {e}");
            assert!(!e.contains(":b@"), "password leaked: {e}");
        }
        let u = SourceUri::parse("postgresql://root@127.0.0.1:5?sslmode=disable").expect("ok");
        assert_eq!(u.sslmode, SslMode::Disable);
        assert_eq!(u.password, None);
    }
}
