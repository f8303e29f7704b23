//! Where to connect and how: the flags and the `--url` resolved into one set of parameters.
//!
//! Rules: URL parts come first; `--host`, `--user` and `--database` override them when given
//! explicitly; what is still missing takes the defaults `localhost:26257`, `root`, `defaultdb`.
//! Security: a URL's `sslmode` wins; otherwise `--insecure` means `disable` and the default is
//! `verify-full` against `<certs-dir>/ca.crt`. The client certificate is the URL's `sslcert` and
//! `sslkey`, else `<certs-dir>/client.<user>.crt`/`.key` when that file exists.

use super::url::{ConnUrl, UrlError};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The virtual cluster `roach sql` connects to when the URL names none.
pub const DEFAULT_CLUSTER: &str = "system";
pub const DEFAULT_HOST: &str = "localhost";
pub const DEFAULT_PORT: u16 = 26257;
pub const DEFAULT_USER: &str = "root";
pub const DEFAULT_DATABASE: &str = "defaultdb";
pub const DEFAULT_APPLICATION_NAME: &str = "$ roach sql";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The URL query parameters `roach sql` understands.
pub const URL_PARAMS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "options",
    "application_name",
    "connect_timeout",
    "password",
];

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// Treated like `prefer`.
    Allow,
    /// TLS if the server offers it, without verifying the server.
    Prefer,
    /// TLS without verifying the server, unless `sslrootcert` is given (then like `verify-ca`).
    Require,
    /// TLS; the server certificate must chain to the root certificate.
    VerifyCa,
    /// Like `verify-ca`, and the certificate must name the host.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = ParamsError;

    fn from_str(s: &str) -> Result<SslMode, ParamsError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(ParamsError::SslMode { value: s.into() }),
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// Why the connection flags are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("invalid --url: {0}")]
    Url(#[from] UrlError),
    #[error("invalid --host {host:?}: expected HOST, HOST:PORT or [IPV6]:PORT")]
    Host { host: String },
    #[error(
        "invalid sslmode {value:?}: expected disable, allow, prefer, require, verify-ca or verify-full"
    )]
    SslMode { value: String },
    #[error("invalid connect_timeout {value:?}: expected whole seconds")]
    ConnectTimeout { value: String },
    #[error("unsupported URL parameter {key:?} (supported: {})", URL_PARAMS.join(", "))]
    UnknownParam { key: String },
    #[error("sslcert and sslkey must be given together")]
    ClientCertPair,
}

/// Everything needed to open a session.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnParams {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// The startup `options` parameter, e.g. `-ccluster=system`.
    pub options: Option<String>,
    pub application_name: String,
    pub ssl_mode: SslMode,
    pub ssl_root_cert: Option<PathBuf>,
    /// Client certificate and key, for certificate authentication.
    pub ssl_client_cert: Option<(PathBuf, PathBuf)>,
    pub connect_timeout: Duration,
}

impl fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnParams({})", self.redacted_url())
    }
}

/// The connection flags as given, before defaults.
#[derive(Debug, Clone, Default)]
pub struct Given<'a> {
    pub url: Option<&'a str>,
    pub host: Option<&'a str>,
    pub user: Option<&'a str>,
    pub database: Option<&'a str>,
    pub certs_dir: Option<&'a Path>,
    pub insecure: bool,
}

impl ConnParams {
    /// Resolves the flags into parameters (see the module comment for the rules).
    pub fn resolve(given: &Given<'_>) -> Result<ConnParams, ParamsError> {
        let url = given.url.map(ConnUrl::parse).transpose()?;
        if let Some(url) = &url
            && let Some((key, _)) = url
                .params
                .iter()
                .find(|(k, _)| !URL_PARAMS.contains(&k.as_str()))
        {
            return Err(ParamsError::UnknownParam { key: key.clone() });
        }
        let param = |key: &str| url.as_ref().and_then(|u| u.param(key));

        let (flag_host, flag_port) = match given.host {
            Some(h) => {
                let (host, port) = split_host_flag(h)?;
                (Some(host), port)
            }
            None => (None, None),
        };
        let host = flag_host
            .or_else(|| url.as_ref().and_then(|u| u.host.clone()))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let port = flag_port
            .or_else(|| url.as_ref().and_then(|u| u.port))
            .unwrap_or(DEFAULT_PORT);
        let user = given
            .user
            .map(str::to_string)
            .or_else(|| url.as_ref().and_then(|u| u.user.clone()))
            .unwrap_or_else(|| DEFAULT_USER.to_string());
        let database = given
            .database
            .map(str::to_string)
            .or_else(|| url.as_ref().and_then(|u| u.database.clone()))
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let password = url
            .as_ref()
            .and_then(|u| u.password.clone())
            .or_else(|| param("password").map(str::to_string));

        let ssl_mode = match param("sslmode") {
            Some(mode) => mode.parse()?,
            None if given.insecure => SslMode::Disable,
            None => SslMode::VerifyFull,
        };
        let certs_dir = given.certs_dir.filter(|_| !given.insecure);
        let ssl_root_cert = match param("sslrootcert") {
            Some(path) => Some(PathBuf::from(path)),
            None if matches!(ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                certs_dir.map(|d| d.join("ca.crt"))
            }
            None => None,
        };
        let ssl_client_cert = match (param("sslcert"), param("sslkey")) {
            _ if ssl_mode == SslMode::Disable => None,
            (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
            (Some(_), None) | (None, Some(_)) => return Err(ParamsError::ClientCertPair),
            (None, None) => certs_dir
                .map(|d| {
                    (
                        d.join(format!("client.{user}.crt")),
                        d.join(format!("client.{user}.key")),
                    )
                })
                .filter(|(cert, _)| cert.exists()),
        };
        let connect_timeout = match param("connect_timeout") {
            Some(v) => v
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| ParamsError::ConnectTimeout { value: v.into() })?,
            None => DEFAULT_CONNECT_TIMEOUT,
        };
        let mut params = ConnParams {
            host,
            port,
            user,
            password,
            database,
            options: param("options").map(str::to_string),
            application_name: param("application_name")
                .unwrap_or(DEFAULT_APPLICATION_NAME)
                .to_string(),
            ssl_mode,
            ssl_root_cert,
            ssl_client_cert,
            connect_timeout,
        };
        // The operator's shell goes to the system virtual cluster unless told otherwise
        // (psql and drivers follow `server.controller.default_target_cluster` instead).
        if params.cluster_option().is_none() && !params.database.starts_with("cluster:") {
            params.options = Some(match params.options.take() {
                Some(o) => format!("{o} -ccluster={DEFAULT_CLUSTER}"),
                None => format!("-ccluster={DEFAULT_CLUSTER}"),
            });
        }
        Ok(params)
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The parameters as a URL with the password replaced by `****`: safe to show anywhere.
    pub fn redacted_url(&self) -> String {
        let mut params = vec![("sslmode".to_string(), self.ssl_mode.to_string())];
        if let Some(options) = &self.options {
            params.push(("options".into(), options.clone()));
        }
        ConnUrl {
            user: Some(self.user.clone()),
            password: self.password.clone(),
            host: Some(self.host.clone()),
            port: Some(self.port),
            database: Some(self.database.clone()),
            params,
        }
        .to_string()
    }

    /// The virtual cluster named in the startup options (`-ccluster=NAME`, `-c cluster=NAME`,
    /// `--cluster=NAME`), if any.
    pub fn cluster_option(&self) -> Option<String> {
        let options = self.options.as_deref()?;
        let mut words = options.split_whitespace();
        let mut found = None;
        while let Some(word) = words.next() {
            let setting = match word {
                "-c" => words.next(),
                w => w.strip_prefix("-c").or_else(|| w.strip_prefix("--")),
            };
            if let Some(name) = setting.and_then(|s| s.strip_prefix("cluster=")) {
                found = Some(name.to_string());
            }
        }
        found.filter(|n| !n.is_empty())
    }
}

/// Splits `--host`: `HOST`, `HOST:PORT`, `[V6]:PORT`, `[V6]`, or a bare IPv6 address.
fn split_host_flag(flag: &str) -> Result<(String, Option<u16>), ParamsError> {
    let bad = || ParamsError::Host { host: flag.into() };
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
    if let Some(v6) = flag.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        return match after {
            "" => Ok((host.to_string(), None)),
            a => Ok((
                host.to_string(),
                Some(port(a.strip_prefix(':').ok_or_else(bad)?)?),
            )),
        };
    }
    if flag.matches(':').count() > 1 {
        // A bare IPv6 address: no port.
        return Ok((flag.to_string(), None));
    }
    match flag.split_once(':') {
        Some((h, p)) if !h.is_empty() => Ok((h.to_string(), Some(port(p)?))),
        Some(_) => Err(bad()),
        None if flag.is_empty() => Err(bad()),
        None => Ok((flag.to_string(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn must_resolve(given: Given<'_>) -> ConnParams {
        match ConnParams::resolve(&given) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn defaults_without_url() {
        // Goal: with no flags, connect to root@localhost:26257/defaultdb with verify-full and
        // no certificates directory.
        let p = must_resolve(Given::default());
        assert_eq!(p.host_port(), "localhost:26257");
        assert_eq!(p.user, "root");
        assert_eq!(p.database, "defaultdb");
        assert_eq!(p.ssl_mode, SslMode::VerifyFull);
        assert_eq!(p.password, None);
        assert_eq!(
            p.options.as_deref(),
            Some("-ccluster=system"),
            "the shell defaults to the system virtual cluster"
        );
    }

    #[test]
    fn host_flag_forms() {
        // Goal: --host accepts HOST, HOST:PORT, [V6]:PORT, [V6] and bare V6, and rejects junk.
        for (flag, host, port) in [
            ("db1", "db1", 26257),
            ("db1:26000", "db1", 26000),
            ("[::1]:26001", "::1", 26001),
            ("[::1]", "::1", 26257),
            ("::1", "::1", 26257),
            ("127.0.0.1:5432", "127.0.0.1", 5432),
        ] {
            let p = must_resolve(Given {
                host: Some(flag),
                ..Given::default()
            });
            assert_eq!((p.host.as_str(), p.port), (host, port), "{flag}");
        }
        for bad in ["", ":26257", "h:x", "h:0", "[::1", "[::1]26257"] {
            assert!(
                ConnParams::resolve(&Given {
                    host: Some(bad),
                    ..Given::default()
                })
                .is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn certs_dir_gives_root_and_client_cert() {
        // Goal: without a URL, --certs-dir supplies ca.crt as the root and client.USER.* only
        // when the client certificate exists; --insecure turns TLS off and ignores the dir.
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("client.root.crt"), "x").expect("write cert");
        let p = must_resolve(Given {
            certs_dir: Some(dir.path()),
            ..Given::default()
        });
        assert_eq!(p.ssl_mode, SslMode::VerifyFull);
        assert_eq!(p.ssl_root_cert, Some(dir.path().join("ca.crt")));
        assert_eq!(
            p.ssl_client_cert,
            Some((
                dir.path().join("client.root.crt"),
                dir.path().join("client.root.key")
            ))
        );
        let p = must_resolve(Given {
            certs_dir: Some(dir.path()),
            user: Some("bob"),
            ..Given::default()
        });
        assert_eq!(p.ssl_client_cert, None);
        let p = must_resolve(Given {
            certs_dir: Some(dir.path()),
            insecure: true,
            ..Given::default()
        });
        assert_eq!(p.ssl_mode, SslMode::Disable);
        assert_eq!(p.ssl_root_cert, None);
        assert_eq!(p.ssl_client_cert, None);
    }

    #[test]
    fn url_parts_and_ssl_params() {
        // Goal: URL parts and its ssl parameters are used; `require` without sslrootcert does
        // not take the certs dir's CA.
        let p = must_resolve(Given {
            url: Some(
                "postgresql://bob:pw@db:26300/movr?sslmode=require&sslcert=/c/b.crt&sslkey=/c/b.key&options=-ccluster=app&connect_timeout=3",
            ),
            certs_dir: Some(Path::new("/nonexistent")),
            ..Given::default()
        });
        assert_eq!(p.host_port(), "db:26300");
        assert_eq!(p.user, "bob");
        assert_eq!(p.password.as_deref(), Some("pw"));
        assert_eq!(p.database, "movr");
        assert_eq!(p.ssl_mode, SslMode::Require);
        assert_eq!(p.ssl_root_cert, None);
        assert_eq!(
            p.ssl_client_cert,
            Some((PathBuf::from("/c/b.crt"), PathBuf::from("/c/b.key")))
        );
        assert_eq!(p.options.as_deref(), Some("-ccluster=app"));
        assert_eq!(p.connect_timeout, Duration::from_secs(3));
    }

    #[test]
    fn flags_override_url() {
        // Goal: explicit --host/--user/--database override the URL; missing URL parts default.
        let p = must_resolve(Given {
            url: Some("postgresql://bob@db:26300/movr?sslmode=disable"),
            host: Some("other:1"),
            user: Some("carl"),
            database: Some("d2"),
            ..Given::default()
        });
        assert_eq!(p.host_port(), "other:1");
        assert_eq!(p.user, "carl");
        assert_eq!(p.database, "d2");
        let p = must_resolve(Given {
            url: Some("postgresql://?sslmode=disable"),
            ..Given::default()
        });
        assert_eq!(p.host_port(), "localhost:26257");
        assert_eq!(p.user, "root");
        assert_eq!(p.database, "defaultdb");
    }

    #[test]
    fn url_errors() {
        // Goal: bad sslmode, unknown parameters, a lone sslcert and bad timeouts are refused.
        for (url, want) in [
            ("postgresql://h?sslmode=maybe", "invalid sslmode"),
            (
                "postgresql://h?sslmod=disable",
                "unsupported URL parameter \"sslmod\"",
            ),
            (
                "postgresql://h?sslmode=require&sslcert=a",
                "sslcert and sslkey",
            ),
            (
                "postgresql://h?connect_timeout=1.5",
                "invalid connect_timeout",
            ),
            ("http://h", "invalid --url"),
        ] {
            let err = ConnParams::resolve(&Given {
                url: Some(url),
                ..Given::default()
            })
            .expect_err(url)
            .to_string();
            assert!(err.contains(want), "{url}: {err}");
        }
    }

    #[test]
    fn redacted_url_hides_password() {
        // Goal: the URL shown for a connection never contains its password, wherever it came
        // from, and Debug is redacted too.
        for url in [
            "postgresql://bob:t0p%40secret@[::1]:26257/db?sslmode=disable",
            "postgresql://bob@h/db?password=t0p@secret&sslmode=disable",
        ] {
            let p = must_resolve(Given {
                url: Some(url),
                ..Given::default()
            });
            assert_eq!(p.password.as_deref(), Some("t0p@secret"));
            let shown = p.redacted_url();
            assert!(shown.contains("bob:****@"), "{shown}");
            assert!(!shown.contains("secret"), "{shown}");
            assert!(!format!("{p:?}").contains("secret"));
        }
    }

    #[test]
    fn cluster_from_options() {
        // Goal: the virtual cluster is found in the startup options in every spelling.
        let with = |options: Option<&str>| ConnParams {
            options: options.map(str::to_string),
            ..must_resolve(Given::default())
        };
        assert_eq!(
            with(Some("-ccluster=system")).cluster_option().as_deref(),
            Some("system")
        );
        assert_eq!(
            with(Some("-c search_path=x -c cluster=app"))
                .cluster_option()
                .as_deref(),
            Some("app")
        );
        assert_eq!(
            with(Some("--cluster=app2")).cluster_option().as_deref(),
            Some("app2")
        );
        assert_eq!(with(Some("-csearch_path=x")).cluster_option(), None);
        assert_eq!(with(None).cluster_option(), None);
    }
}
