//! Users, system privileges and cluster settings, stored in each virtual cluster's own
//! keyspace (settings only in the system virtual cluster's) through a tenant-scoped client.

use crate::error::{SqlError, SqlResult, code};
use crate::settings;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use storage::Span;
use tenant::TenantTxn;

const USER_PREFIX: &[u8] = b"/sql/users/";
const SETTING_PREFIX: &[u8] = b"/sql/settings/";
const TENANT_SETTING_PREFIX: &[u8] = b"/sql/tenant-settings/";
/// The cluster's secret from which password logins without a real verifier get theirs
/// (`login::dummy_verifier`); in the system virtual cluster's keyspace, never shown.
const AUTH_NONCE_KEY: &[u8] = b"/sql/auth-nonce";
/// Rows a catalog listing reads at most.
const LIST_LIMIT: usize = 100_000;

/// The user every cluster has: always an admin, never stored without being created.
pub const ROOT: &str = "root";
/// The one role: members may run every administrative statement.
pub const ADMIN_ROLE: &str = "admin";

/// System privileges `GRANT SYSTEM ...` accepts.
pub const SYSTEM_PRIVILEGES: &[&str] = &[
    "REPLICATION",
    "MANAGEVIRTUALCLUSTER",
    "MODIFYCLUSTERSETTING",
    "VIEWCLUSTERSETTING",
    "CREATEROLE",
    "VIEWJOB",
];

/// A SCRAM-SHA-256 verifier: what is stored instead of a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramVerifier {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

/// A SQL user of a virtual cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub password: Option<ScramVerifier>,
    pub admin: bool,
    pub privileges: BTreeSet<String>,
}

impl UserRecord {
    fn root() -> Self {
        UserRecord {
            name: ROOT.to_string(),
            password: None,
            admin: true,
            privileges: BTreeSet::new(),
        }
    }

    /// Whether the user may use `privilege` (admins may use all).
    pub fn has(&self, privilege: &str) -> bool {
        self.admin || self.privileges.contains(privilege)
    }

    /// Fails with 42501 unless the user holds `privilege`.
    pub fn require(&self, privilege: &str, action: &str) -> SqlResult<()> {
        if self.has(privilege) {
            return Ok(());
        }
        Err(SqlError::privilege(format!(
            "user {} does not have {privilege} privilege to {action}",
            self.name
        ))
        .with_hint(format!(
            "an admin can run GRANT SYSTEM {privilege} TO {}",
            self.name
        )))
    }
}

fn user_key(name: &str) -> Vec<u8> {
    let mut k = USER_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> SqlError {
    SqlError::internal(format!("corrupt {what}: {e}"))
}

/// Checks a user name: lowercase letters, digits, `_`, `-`, `.`; 1 to 63 characters.
pub fn validate_user_name(name: &str) -> SqlResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            format!(
                "invalid user name {name:?}: use 1 to 63 lowercase letters, digits, '_', '-' or '.'"
            ),
        ))
    }
}

/// The user `name`, if it exists (root always does).
pub async fn get_user(txn: &mut TenantTxn, name: &str) -> SqlResult<Option<UserRecord>> {
    let user = crate::catalog_cache::read(txn, &user_key(name), |b| {
        postcard::from_bytes::<UserRecord>(b).map_err(|e| corrupt("user record", e))
    })
    .await?;
    match user {
        Some(u) => Ok(Some((*u).clone())),
        None if name == ROOT => Ok(Some(UserRecord::root())),
        None => Ok(None),
    }
}

/// The user `name`, or 42704.
pub async fn must_get_user(txn: &mut TenantTxn, name: &str) -> SqlResult<UserRecord> {
    get_user(txn, name).await?.ok_or_else(|| {
        SqlError::new(
            code::UNDEFINED_OBJECT,
            format!("user {name:?} does not exist"),
        )
    })
}

/// Writes a user record.
pub fn put_user(txn: &mut TenantTxn, user: &UserRecord) -> SqlResult<()> {
    txn.note_cached_write();
    let bytes = postcard::to_allocvec(user).map_err(|e| SqlError::internal(e.to_string()))?;
    txn.put(&user_key(&user.name), bytes)?;
    Ok(())
}

/// Removes a user record.
pub fn delete_user(txn: &mut TenantTxn, name: &str) -> SqlResult<()> {
    txn.note_cached_write();
    txn.delete(&user_key(name))?;
    Ok(())
}

/// Every stored user, plus root.
pub async fn list_users(txn: &mut TenantTxn) -> SqlResult<Vec<UserRecord>> {
    let page = txn.scan(&Span::prefix(USER_PREFIX), LIST_LIMIT).await?;
    let mut users: Vec<UserRecord> = page
        .rows
        .iter()
        .map(|kv| postcard::from_bytes(&kv.value).map_err(|e| corrupt("user record", e)))
        .collect::<SqlResult<_>>()?;
    if !users.iter().any(|u| u.name == ROOT) {
        users.push(UserRecord::root());
    }
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(users)
}

pub(crate) fn setting_key(name: &str) -> Vec<u8> {
    let mut k = SETTING_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// The value of a cluster setting (its default unless set). Read through the system
/// virtual cluster's transaction.
pub async fn get_setting(txn: &mut TenantTxn, name: &str) -> SqlResult<String> {
    let def = settings::lookup(name)?;
    match txn.get(&setting_key(name)).await? {
        Some(v) => String::from_utf8(v).map_err(|e| corrupt("setting", e)),
        None => Ok(def.default.to_string()),
    }
}

/// Sets (or with `None`, resets) a cluster setting, validating the value.
pub fn put_setting(txn: &mut TenantTxn, name: &str, value: Option<&str>) -> SqlResult<()> {
    let def = settings::lookup(name)?;
    match value {
        Some(v) => {
            let v = settings::normalize(def, v)?;
            txn.put(&setting_key(name), v.into_bytes())?;
        }
        None => txn.delete(&setting_key(name))?,
    }
    Ok(())
}

fn tenant_setting_key(tenant: tenant::TenantId, name: &str) -> Vec<u8> {
    let mut k = TENANT_SETTING_PREFIX.to_vec();
    k.extend_from_slice(&tenant.0.to_be_bytes());
    k.push(b'/');
    k.extend_from_slice(name.as_bytes());
    k
}

/// A virtual cluster's override of a setting, if it has one.
pub async fn get_tenant_setting(
    txn: &mut TenantTxn,
    tenant: tenant::TenantId,
    name: &str,
) -> SqlResult<Option<String>> {
    settings::lookup(name)?;
    match txn.get(&tenant_setting_key(tenant, name)).await? {
        Some(v) => Ok(Some(
            String::from_utf8(v).map_err(|e| corrupt("setting", e))?,
        )),
        None => Ok(None),
    }
}

/// Whether `key` (a system virtual cluster key) holds setting `name` or a virtual cluster's
/// override of it.
pub(crate) fn is_setting_key(key: &[u8], name: &str) -> bool {
    (key.starts_with(SETTING_PREFIX) || key.starts_with(TENANT_SETTING_PREFIX))
        && key.ends_with(name.as_bytes())
}

/// Sets (or with `None`, removes) a virtual cluster's override of a setting, stored in the
/// system virtual cluster's keyspace. Which settings honour overrides is up to their readers.
pub fn put_tenant_setting(
    txn: &mut TenantTxn,
    tenant: tenant::TenantId,
    name: &str,
    value: Option<&str>,
) -> SqlResult<()> {
    let def = settings::lookup(name)?;
    match value {
        Some(v) => {
            let v = settings::normalize(def, v)?;
            txn.put(&tenant_setting_key(tenant, name), v.into_bytes())?;
        }
        None => txn.delete(&tenant_setting_key(tenant, name))?,
    }
    Ok(())
}

/// The cluster's secret login nonce (32 random bytes), created by the first login that needs
/// it. Pass a client of the system virtual cluster.
pub async fn auth_nonce(kv: &tenant::TenantKv) -> SqlResult<Vec<u8>> {
    let mut last = None;
    // Two nodes creating it at once conflict: one commits, the other reads it on retry.
    for _ in 0..3 {
        let mut txn = kv.begin()?;
        if let Some(v) = txn.get(AUTH_NONCE_KEY).await? {
            return Ok(v);
        }
        let nonce: [u8; 32] = rand::random();
        txn.put(AUTH_NONCE_KEY, nonce.to_vec())?;
        match txn.commit().await {
            Ok(_) => return Ok(nonce.to_vec()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || SqlError::internal("cannot create the login nonce"),
        SqlError::from,
    ))
}
