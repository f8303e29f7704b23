//! Object privileges inside a virtual cluster: `GRANT SELECT, INSERT ON TABLE t TO u`,
//! `GRANT ALL ON DATABASE d TO u`. Stored in the virtual cluster's own keyspace under
//! `/sql/grants/<user>/<kind>/<id>`; admins hold every privilege.

use crate::catalog;
use crate::descriptors::TableDesc;
use crate::error::{SqlError, SqlResult, code};
use crate::query::Ctx;
use std::collections::BTreeSet;
use tenant::TenantTxn;

/// Privileges that can be granted on tables and databases.
pub const OBJECT_PRIVILEGES: &[&str] = &[
    "ALL", "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "CONNECT",
];

/// A grantable object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Table(u64),
    Database(u64),
}

impl std::fmt::Display for Object {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Object::Table(id) => write!(f, "the table with id {id}"),
            Object::Database(id) => write!(f, "the database with id {id}"),
        }
    }
}

/// Grants listed or removed in one pass at most (a user's grants, one key per object).
const LIST_LIMIT: usize = 100_000;

fn user_prefix(user: &str) -> Vec<u8> {
    // User names never hold '/', so the prefix of `bob` does not cover `bob2`'s grants.
    format!("/sql/grants/{user}/").into_bytes()
}

fn key(user: &str, object: Object) -> Vec<u8> {
    let (kind, id) = match object {
        Object::Table(id) => ("table", id),
        Object::Database(id) => ("database", id),
    };
    let mut k = user_prefix(user);
    k.extend_from_slice(format!("{kind}/{id:020}").as_bytes());
    k
}

fn parse_object(suffix: &[u8]) -> SqlResult<Object> {
    let bad = || {
        SqlError::internal(format!(
            "corrupt grant key {:?}",
            String::from_utf8_lossy(suffix)
        ))
    };
    let text = std::str::from_utf8(suffix).map_err(|_| bad())?;
    let (kind, id) = text.split_once('/').ok_or_else(bad)?;
    let id: u64 = id.parse().map_err(|_| bad())?;
    match kind {
        "table" => Ok(Object::Table(id)),
        "database" => Ok(Object::Database(id)),
        _ => Err(bad()),
    }
}

/// Every object privilege `user` holds directly, by object.
pub async fn list(txn: &mut TenantTxn, user: &str) -> SqlResult<Vec<(Object, BTreeSet<String>)>> {
    let prefix = user_prefix(user);
    let page = txn
        .scan(&storage::Span::prefix(&prefix), LIST_LIMIT)
        .await?;
    if page.resume_key.is_some() {
        return Err(SqlError::new(
            code::PROGRAM_LIMIT_EXCEEDED,
            format!("user {user} holds more than {LIST_LIMIT} object grants"),
        ));
    }
    let mut out = Vec::with_capacity(page.rows.len());
    for kv in page.rows {
        let object = parse_object(&kv.key[prefix.len()..])?;
        let privileges: BTreeSet<String> = postcard::from_bytes(&kv.value)
            .map_err(|e| SqlError::internal(format!("corrupt grant: {e}")))?;
        if !privileges.is_empty() {
            out.push((object, privileges));
        }
    }
    Ok(out)
}

/// Removes every object privilege `user` holds (DROP USER: a new user of the same name
/// must inherit nothing).
pub async fn remove_all(txn: &mut TenantTxn, user: &str) -> SqlResult<()> {
    txn.note_cached_write();
    for (object, _) in list(txn, user).await? {
        txn.delete(&key(user, object))?;
    }
    Ok(())
}

/// The first object privilege `target` holds that `actor` does not (an admin actor holds
/// all). Whoever takes over a user (sets its password, drops and re-creates it) gets its
/// privileges, so a non-admin may only do that to users that hold nothing it lacks.
pub async fn first_not_held(
    txn: &mut TenantTxn,
    actor: &str,
    target: &str,
) -> SqlResult<Option<(Object, String)>> {
    if is_admin(txn, actor).await? {
        return Ok(None);
    }
    for (object, privileges) in list(txn, target).await? {
        let have = get(txn, actor, object).await?;
        if have.contains("ALL") {
            continue;
        }
        if let Some(p) = privileges.iter().find(|p| !have.contains(*p)) {
            return Ok(Some((object, p.clone())));
        }
    }
    Ok(None)
}

/// The privileges `user` holds directly on `object`.
pub async fn get(txn: &mut TenantTxn, user: &str, object: Object) -> SqlResult<BTreeSet<String>> {
    let have = crate::catalog_cache::read(txn, &key(user, object), |b| {
        postcard::from_bytes::<BTreeSet<String>>(b)
            .map_err(|e| SqlError::internal(format!("corrupt grant: {e}")))
    })
    .await?;
    Ok(have.map(|h| (*h).clone()).unwrap_or_default())
}

/// Adds or removes privileges.
pub async fn change(
    txn: &mut TenantTxn,
    user: &str,
    object: Object,
    privileges: &[String],
    grant: bool,
) -> SqlResult<()> {
    for p in privileges {
        if !OBJECT_PRIVILEGES.contains(&p.as_str()) {
            return Err(SqlError::new(
                code::INVALID_PARAMETER_VALUE,
                format!(
                    "unknown privilege {p}; known: {}",
                    OBJECT_PRIVILEGES.join(", ")
                ),
            ));
        }
    }
    let mut have = get(txn, user, object).await?;
    for p in privileges {
        if grant {
            have.insert(p.clone());
        } else if p == "ALL" {
            have.clear();
        } else {
            have.remove(p);
        }
    }
    txn.note_cached_write();
    let bytes = postcard::to_allocvec(&have).map_err(|e| SqlError::internal(e.to_string()))?;
    txn.put(&key(user, object), bytes)?;
    Ok(())
}

/// Fails unless the session user holds `privilege` on `t` (directly, through its database,
/// or as an admin).
pub async fn require_table(ctx: &mut Ctx<'_>, t: &TableDesc, privilege: &str) -> SqlResult<()> {
    let user = ctx.session.user.clone();
    if is_admin(ctx.txn, &user).await? {
        return Ok(());
    }
    for object in [Object::Table(t.id), Object::Database(t.database_id)] {
        let have = get(ctx.txn, &user, object).await?;
        if have.contains(privilege) || have.contains("ALL") {
            return Ok(());
        }
    }
    Err(SqlError::privilege(format!(
        "user {user} does not have {privilege} privilege on relation {}",
        t.name
    ))
    .with_hint(format!(
        "an admin can run GRANT {privilege} ON TABLE {} TO {user}",
        t.name
    )))
}

/// Whether `user` is an admin of the virtual cluster (an error if the user is gone).
pub async fn is_admin(txn: &mut TenantTxn, user: &str) -> SqlResult<bool> {
    Ok(catalog::get_user(txn, user)
        .await?
        .ok_or_else(|| SqlError::privilege(format!("user {user:?} no longer exists")))?
        .admin)
}

/// Fails unless `user` is an admin, naming the action it wanted.
pub async fn require_admin(txn: &mut TenantTxn, user: &str, what: &str) -> SqlResult<()> {
    if is_admin(txn, user).await? {
        Ok(())
    } else {
        Err(
            SqlError::privilege(format!("user {user} must be an admin to {what}"))
                .with_hint(format!("an admin can run GRANT admin TO {user}")),
        )
    }
}
