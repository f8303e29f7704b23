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

fn key(user: &str, object: Object) -> Vec<u8> {
    let (kind, id) = match object {
        Object::Table(id) => ("table", id),
        Object::Database(id) => ("database", id),
    };
    format!("/sql/grants/{user}/{kind}/{id:020}").into_bytes()
}

/// The privileges `user` holds directly on `object`.
pub async fn get(txn: &mut TenantTxn, user: &str, object: Object) -> SqlResult<BTreeSet<String>> {
    match txn.get(&key(user, object)).await? {
        Some(b) => {
            postcard::from_bytes(&b).map_err(|e| SqlError::internal(format!("corrupt grant: {e}")))
        }
        None => Ok(BTreeSet::new()),
    }
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
    let bytes = postcard::to_allocvec(&have).map_err(|e| SqlError::internal(e.to_string()))?;
    txn.put(&key(user, object), bytes)?;
    Ok(())
}

/// Fails unless the session user holds `privilege` on `t` (directly, through its database,
/// or as an admin).
pub async fn require_table(ctx: &mut Ctx<'_>, t: &TableDesc, privilege: &str) -> SqlResult<()> {
    let user = ctx.session.user.clone();
    let rec = catalog::get_user(ctx.txn, &user)
        .await?
        .ok_or_else(|| SqlError::privilege(format!("user {user:?} no longer exists")))?;
    if rec.admin {
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

/// Fails unless the session user is an admin or holds `privilege` on the database.
pub async fn require_database(
    ctx: &mut Ctx<'_>,
    db: u64,
    privilege: &str,
    what: &str,
) -> SqlResult<()> {
    let user = ctx.session.user.clone();
    let rec = catalog::get_user(ctx.txn, &user)
        .await?
        .ok_or_else(|| SqlError::privilege(format!("user {user:?} no longer exists")))?;
    if rec.admin {
        return Ok(());
    }
    let have = get(ctx.txn, &user, Object::Database(db)).await?;
    if have.contains(privilege) || have.contains("ALL") {
        return Ok(());
    }
    Err(SqlError::privilege(format!(
        "user {user} does not have {privilege} privilege to {what}"
    )))
}
