//! Creating the CA, node and client certificates (what `roach cert ...` runs).
//!
//! Keys are ECDSA P-256. Every private key is written with mode 0600 from the moment the file
//! is created (never widened and narrowed afterwards). Existing files are only replaced with
//! [`Overwrite::Replace`]; the check covers every file of a command before anything is
//! written, so a refused command writes nothing.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls_pki_types::CertificateDer;
use tenant::TenantId;

use crate::tls::{CertFile, CertsDir, NODE_COMMON_NAME, TlsError, parse_certs, read_file};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The default lifetime of a CA certificate: 10 years.
pub const CA_LIFETIME_DEFAULT: Duration = Duration::from_secs(10 * YEAR.as_secs());
/// The default lifetime of a node certificate: 5 years.
pub const NODE_LIFETIME_DEFAULT: Duration = Duration::from_secs(5 * YEAR.as_secs());
/// The default lifetime of a client certificate: 5 years.
pub const CLIENT_LIFETIME_DEFAULT: Duration = Duration::from_secs(5 * YEAR.as_secs());
/// The longest lifetime accepted for any certificate: 100 years.
pub const LIFETIME_MAX: Duration = Duration::from_secs(100 * YEAR.as_secs());
/// How far before "now" a certificate becomes valid, to tolerate clock skew between machines.
pub const BACKDATE: Duration = Duration::from_secs(60 * 60);
/// The latest clock reading accepted when creating a certificate (about the year 9000), so
/// that `now + LIFETIME_MAX` stays inside the range X.509 times and rcgen can represent.
const CLOCK_MAX_SINCE_EPOCH: Duration = Duration::from_secs(7030 * YEAR.as_secs());
/// The longest user name accepted (PostgreSQL's identifier limit).
pub const USER_NAME_LEN_MAX: usize = 63;

/// The Common Name prefix of a CA certificate.
const CA_COMMON_NAME: &str = "Roach CA";
/// The organization of every certificate created here.
const ORGANIZATION: &str = "Roach";

/// Mode of private key files.
const KEY_FILE_MODE: u32 = 0o600;
/// Mode of certificate files.
const CERT_FILE_MODE: u32 = 0o644;

/// When a certificate is valid: from `now - BACKDATE` to `now + lifetime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// The time the certificate is created.
    pub now: SystemTime,
    /// How long it stays valid after `now`.
    pub lifetime: Duration,
}

impl Validity {
    /// Valid from (about) now for `lifetime`.
    pub fn starting_now(lifetime: Duration) -> Self {
        Validity {
            now: SystemTime::now(),
            lifetime,
        }
    }

    /// `(not_before, not_after)` in seconds since the Unix epoch.
    fn bounds_unix_secs(&self) -> Result<(u64, u64), TlsError> {
        let invalid = |reason| TlsError::InvalidLifetime {
            lifetime: self.lifetime,
            reason,
        };
        if self.lifetime < DAY {
            return Err(invalid("must be at least one day"));
        }
        if self.lifetime > LIFETIME_MAX {
            return Err(invalid("must be at most 100 years"));
        }
        let now = self
            .now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| invalid("the clock is before 1970"))?;
        if now > CLOCK_MAX_SINCE_EPOCH {
            return Err(invalid("the clock is after the year 9000"));
        }
        let not_before = now.saturating_sub(BACKDATE);
        let not_after = now + self.lifetime;
        Ok((not_before.as_secs(), not_after.as_secs()))
    }

    /// Sets `params.not_before` and `params.not_after`.
    fn apply(&self, params: &mut CertificateParams) -> Result<(), TlsError> {
        let (not_before, not_after) = self.bounds_unix_secs()?;
        // rcgen takes `time::OffsetDateTime`; build it from the epoch so this crate needs no
        // direct dependency on `time`. Both bounds are before the year 9200 (checked above),
        // inside its range (up to 9999), so the additions cannot overflow.
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + Duration::from_secs(not_before);
        params.not_after = epoch + Duration::from_secs(not_after);
        Ok(())
    }
}

/// Whether existing files may be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// Fail with [`TlsError::Exists`] if any file to be written exists.
    Refuse,
    /// Replace existing files.
    Replace,
}

/// Checks that `user` can name a client certificate: 1 to 63 characters, lowercase ASCII
/// letters, digits, `_`, `-` and `.`, not starting with `-` or `.`.
pub fn validate_user_name(user: &str) -> Result<(), TlsError> {
    let invalid = |reason| TlsError::InvalidUser {
        user: user.into(),
        reason,
    };
    let Some(first) = user.chars().next() else {
        return Err(invalid("must not be empty"));
    };
    if user.len() > USER_NAME_LEN_MAX {
        return Err(invalid("must be at most 63 characters"));
    }
    if !user
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
    {
        return Err(invalid(
            "may contain only lowercase letters, digits, '_', '-' and '.'",
        ));
    }
    if matches!(first, '-' | '.') {
        return Err(invalid("must start with a letter, a digit or '_'"));
    }
    Ok(())
}

/// Creates a CA: writes its certificate to `dir/ca.crt` and its private key to `ca_key`.
/// Returns the paths written.
pub fn create_ca(
    dir: &CertsDir,
    ca_key: &Path,
    validity: Validity,
    overwrite: Overwrite,
) -> Result<Vec<PathBuf>, TlsError> {
    let cert_path = dir.ca_cert();
    let targets = [(CertFile::CaKey, ca_key), (CertFile::CaCert, &cert_path)];
    check_targets(&targets, overwrite)?;

    let key = generate_key(CertFile::CaKey)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&ca_common_name(&key));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity.apply(&mut params)?;
    let cert = params
        .self_signed(&key)
        .map_err(|error| TlsError::Generate {
            file: CertFile::CaCert,
            error,
        })?;

    if let Some(parent) = ca_key.parent() {
        create_dir(parent)?;
    }
    create_dir(dir.path())?;
    write_file(
        &CertFile::CaKey,
        ca_key,
        key.serialize_pem().as_bytes(),
        KEY_FILE_MODE,
        overwrite,
    )?;
    write_file(
        &CertFile::CaCert,
        &cert_path,
        cert.pem().as_bytes(),
        CERT_FILE_MODE,
        overwrite,
    )?;
    Ok(vec![ca_key.to_owned(), cert_path])
}

/// Creates the node certificate `dir/node.crt` and key `dir/node.key`, signed by the CA in
/// `dir/ca.crt` and `ca_key`. CN is `node`; `hosts` become the subject alternative names (IP
/// literals as IP addresses, anything else as DNS names); the certificate is valid for both
/// server and client authentication. Returns the paths written.
pub fn create_node(
    dir: &CertsDir,
    ca_key: &Path,
    hosts: &[String],
    validity: Validity,
    overwrite: Overwrite,
) -> Result<Vec<PathBuf>, TlsError> {
    let sans = subject_alt_names(hosts)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(NODE_COMMON_NAME);
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    create_leaf(
        dir,
        ca_key,
        params,
        (CertFile::NodeCert, dir.node_cert()),
        (CertFile::NodeKey, dir.node_key()),
        validity,
        overwrite,
    )
}

/// Creates the client certificate `dir/client.<user>.crt` and key `dir/client.<user>.key`,
/// signed by the CA in `dir/ca.crt` and `ca_key`, without a tenant scope (see
/// [`create_scoped_client`]).
pub fn create_client(
    dir: &CertsDir,
    ca_key: &Path,
    user: &str,
    validity: Validity,
    overwrite: Overwrite,
) -> Result<Vec<PathBuf>, TlsError> {
    create_scoped_client(dir, ca_key, user, &[], validity, overwrite)
}

/// Creates the client certificate `dir/client.<user>.crt` and key `dir/client.<user>.key`,
/// signed by the CA in `dir/ca.crt` and `ca_key`. CN is `user`; valid for client
/// authentication only. With a non-empty `tenant_scope`, the certificate carries one SAN URI
/// `roach://tenant/<id>/user/<user>` per virtual cluster and logs in only there. The user
/// `node` is refused: that name belongs to node certificates. Returns the paths written.
pub fn create_scoped_client(
    dir: &CertsDir,
    ca_key: &Path,
    user: &str,
    tenant_scope: &[TenantId],
    validity: Validity,
    overwrite: Overwrite,
) -> Result<Vec<PathBuf>, TlsError> {
    validate_user_name(user)?;
    if user == NODE_COMMON_NAME {
        return Err(TlsError::InvalidUser {
            user: user.into(),
            reason: "is reserved for node certificates; create one with `roach cert create-node`",
        });
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(user);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    for tenant in tenant_scope {
        let uri = sql::certauth::scope_uri(*tenant, user);
        let uri = uri
            .as_str()
            .try_into()
            .map_err(|error| TlsError::Generate {
                file: CertFile::ClientCert { user: user.into() },
                error,
            })?;
        params.subject_alt_names.push(SanType::URI(uri));
    }
    create_leaf(
        dir,
        ca_key,
        params,
        (
            CertFile::ClientCert { user: user.into() },
            dir.client_cert(user),
        ),
        (
            CertFile::ClientKey { user: user.into() },
            dir.client_key(user),
        ),
        validity,
        overwrite,
    )
}

/// The virtual cluster id of the well-known name `application` (the id the
/// `replication-source` profile gives it, and the first id a cluster allocates after
/// `template`).
pub const APPLICATION_TENANT_ID: TenantId = TenantId(3);

/// Parses a `--tenant-scope` list: comma-separated virtual cluster ids, or the well-known
/// names `system` (1) and `application` (3). `roach cert` runs offline, so other names cannot
/// be resolved: pass their id (`SHOW VIRTUAL CLUSTERS` shows it). Duplicates are dropped.
pub fn parse_tenant_scope(text: &str) -> Result<Vec<TenantId>, TlsError> {
    let invalid = |reason: String| TlsError::InvalidTenantScope {
        scope: text.into(),
        reason,
    };
    let mut ids = Vec::new();
    for item in text.split(',').map(str::trim) {
        let id = match item {
            "" => return Err(invalid("an entry is empty".into())),
            "system" => TenantId::SYSTEM,
            "application" => APPLICATION_TENANT_ID,
            _ => match item.parse::<u64>() {
                Ok(0) => return Err(invalid("0 is not a virtual cluster id".into())),
                Ok(id) => TenantId(id),
                Err(_) => {
                    return Err(invalid(format!(
                        "{item:?} is neither a virtual cluster id nor system or application; \
                         pass the id SHOW VIRTUAL CLUSTERS shows for it"
                    )));
                }
            },
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Signs a leaf certificate with the CA and writes it and its key.
fn create_leaf(
    dir: &CertsDir,
    ca_key: &Path,
    mut params: CertificateParams,
    (cert_file, cert_path): (CertFile, PathBuf),
    (key_file, key_path): (CertFile, PathBuf),
    validity: Validity,
    overwrite: Overwrite,
) -> Result<Vec<PathBuf>, TlsError> {
    let ca = Ca::load(dir, ca_key)?;
    check_targets(
        &[
            (key_file.clone(), &key_path),
            (cert_file.clone(), &cert_path),
        ],
        overwrite,
    )?;

    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    validity.apply(&mut params)?;
    let (_, not_after) = validity.bounds_unix_secs()?;
    if not_after > ca.not_after_unix_secs {
        return Err(TlsError::OutlivesCa {
            file: cert_file,
            not_after: format!("{}", params.not_after),
            ca_path: dir.ca_cert(),
            ca_not_after: ca.not_after_display,
        });
    }

    let key = generate_key(key_file.clone())?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|error| TlsError::Generate {
            file: cert_file.clone(),
            error,
        })?;
    create_dir(dir.path())?;
    write_file(
        &key_file,
        &key_path,
        key.serialize_pem().as_bytes(),
        KEY_FILE_MODE,
        overwrite,
    )?;
    write_file(
        &cert_file,
        &cert_path,
        cert.pem().as_bytes(),
        CERT_FILE_MODE,
        overwrite,
    )?;
    Ok(vec![key_path, cert_path])
}

/// A CA loaded from `ca.crt` and its key, ready to sign.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    not_after_unix_secs: u64,
    not_after_display: String,
}

impl Ca {
    /// Loads the CA from `dir/ca.crt` (its first certificate) and `ca_key`, checking that the
    /// key belongs to the certificate and that the certificate is a CA.
    fn load(dir: &CertsDir, ca_key: &Path) -> Result<Self, TlsError> {
        let cert_path = dir.ca_cert();
        let cert_pem = read_file(&CertFile::CaCert, &cert_path)?;
        let key_pem = read_file(&CertFile::CaKey, ca_key)?;
        let cert_error = |reason: String| TlsError::Parse {
            file: CertFile::CaCert,
            path: cert_path.clone(),
            reason,
        };
        let cert: CertificateDer<'static> = parse_certs(&CertFile::CaCert, &cert_path, &cert_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| cert_error("no PEM certificate found".into()))?;
        let key_pem = String::from_utf8(key_pem).map_err(|_| TlsError::Parse {
            file: CertFile::CaKey,
            path: ca_key.to_owned(),
            reason: "not a PEM file (not UTF-8)".into(),
        })?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| TlsError::Parse {
            file: CertFile::CaKey,
            path: ca_key.to_owned(),
            reason: e.to_string(),
        })?;

        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert).map_err(|e| cert_error(e.to_string()))?;
        if !parsed.is_ca() {
            return Err(cert_error("not a CA certificate".into()));
        }
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(TlsError::CertKey {
                cert_file: CertFile::CaCert,
                cert_path,
                key_file: CertFile::CaKey,
                key_path: ca_key.to_owned(),
                error: "the key does not belong to the certificate".into(),
            });
        }
        let not_after = parsed.validity().not_after;
        let not_after_unix_secs = u64::try_from(not_after.timestamp()).unwrap_or(0);
        let not_after_display = not_after.to_string();
        let issuer = Issuer::from_ca_cert_der(&cert, key).map_err(|e| cert_error(e.to_string()))?;
        Ok(Ca {
            issuer,
            not_after_unix_secs,
            not_after_display,
        })
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

/// `Roach CA <id>`, where `<id>` is 16 hex digits of the CA's public key. Distinct CAs (say,
/// a primary's and a standby's) then have distinct names, so a certificate checked against the
/// wrong CA fails as "unknown issuer" rather than as a bad signature of a same-named CA.
fn ca_common_name(key: &KeyPair) -> String {
    // The public key is an uncompressed EC point (0x04 || X || Y); X is uniformly random.
    let id: String = key
        .der_bytes()
        .iter()
        .skip(1)
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{CA_COMMON_NAME} {id}")
}

fn generate_key(file: CertFile) -> Result<KeyPair, TlsError> {
    KeyPair::generate().map_err(|error| TlsError::Generate { file, error })
}

/// The SANs of a node certificate: IP literals (optionally in brackets) as IP addresses,
/// other hosts as DNS names; duplicates dropped.
fn subject_alt_names(hosts: &[String]) -> Result<Vec<SanType>, TlsError> {
    if hosts.is_empty() {
        return Err(TlsError::NoHosts);
    }
    let mut sans = Vec::with_capacity(hosts.len());
    for host in hosts {
        let invalid = |reason: &str| TlsError::InvalidHost {
            host: host.clone(),
            reason: reason.into(),
        };
        let unbracketed = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let san = if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            SanType::IpAddress(ip)
        } else {
            if host.is_empty() || host.len() > 253 {
                return Err(invalid("a DNS name must have 1 to 253 characters"));
            }
            if !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*'))
            {
                return Err(invalid(
                    "neither an IP address nor a DNS name (letters, digits, '-', '.', '*')",
                ));
            }
            let name = host
                .as_str()
                .try_into()
                .map_err(|e: rcgen::Error| invalid(&e.to_string()))?;
            SanType::DnsName(name)
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

/// Fails with [`TlsError::Exists`] for the first target that exists, unless replacing.
fn check_targets(targets: &[(CertFile, &Path)], overwrite: Overwrite) -> Result<(), TlsError> {
    if overwrite == Overwrite::Replace {
        return Ok(());
    }
    for (file, path) in targets {
        // `symlink_metadata` so that a dangling symlink counts as existing.
        if path.symlink_metadata().is_ok() {
            return Err(TlsError::Exists {
                file: file.clone(),
                path: path.to_path_buf(),
            });
        }
    }
    Ok(())
}

fn create_dir(path: &Path) -> Result<(), TlsError> {
    if path.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(path).map_err(|error| TlsError::CreateDir {
        path: path.to_owned(),
        error,
    })
}

/// Writes `contents` to a new file created with `mode` (on Unix). An existing file is removed
/// first when replacing, so the new file never inherits wider permissions; otherwise it is an
/// error.
fn write_file(
    file: &CertFile,
    path: &Path,
    contents: &[u8],
    mode: u32,
    overwrite: Overwrite,
) -> Result<(), TlsError> {
    let write_error = |error| TlsError::Write {
        file: file.clone(),
        path: path.to_owned(),
        error,
    };
    if overwrite == Overwrite::Replace {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_error(e)),
        }
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut out = options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError::Exists {
                file: file.clone(),
                path: path.to_owned(),
            }
        } else {
            write_error(error)
        }
    })?;
    out.write_all(contents).map_err(write_error)?;
    out.sync_all().map_err(write_error)?;
    Ok(())
}
