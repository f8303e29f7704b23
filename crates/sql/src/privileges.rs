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
