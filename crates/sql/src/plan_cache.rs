//! The plan of a prepared statement, kept across its executions.
//!
//! Parse plans a query once (names resolved, expressions compiled and typed, the access path
//! of each table chosen: `query::QueryTemplate`); each Execute loads that plan with its
//! parameters (checks SELECT on its tables, reads the rows) instead of planning again. A plan
//! is tagged with the catalog version of its virtual cluster (`catalog_cache`), the database
//! and the user it was made for; when any of them differs at Execute (a schema change, a
//! GRANT, `USE`), the statement is planned again and the new plan kept. Transactions that
//! cannot use the catalog cache (`AS OF SYSTEM TIME`, or one that changed the catalog itself)
//! plan every time and keep nothing. Queries whose plan holds rows (subqueries, derived
//! tables, set operations, WITH) are planned every time.

use crate::catalog_cache::CatalogCache;
use crate::error::SqlResult;
use crate::query::{self, Ctx, QueryTemplate};
use sqlparser::ast;
use std::sync::{Arc, Mutex};
use tenant::TenantId;

/// What a plan was made for; it is reused only for the same.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlanKey {
    tenant: TenantId,
    catalog_version: u64,
    database_id: u64,
    database: String,
    user: String,
}

#[derive(Debug)]
struct Kept {
    key: PlanKey,
    template: Arc<QueryTemplate>,
}

/// A prepared statement's plan slot (shared by the copies of the prepared statement).
#[derive(Debug, Default)]
pub struct PlanSlot {
    kept: Mutex<Option<Kept>>,
}

impl PlanSlot {
    fn get(&self, key: &PlanKey) -> Option<Arc<QueryTemplate>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.as_ref()
            .filter(|k| k.key == *key)
            .map(|k| k.template.clone())
    }

    fn put(&self, key: PlanKey, template: Arc<QueryTemplate>) {
        *self.kept.lock().unwrap_or_else(|p| p.into_inner()) = Some(Kept { key, template });
    }

    /// Whether a plan is kept (for tests).
    pub fn is_planned(&self) -> bool {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

/// The key of a plan made now in `ctx`, when its transaction may use the catalog cache.
fn key_of(ctx: &Ctx<'_>) -> Option<(CatalogCache, PlanKey)> {
    let cache = crate::catalog_cache::cache_of(ctx.txn)?;
    let tenant = ctx.txn.tenant();
    let catalog_version = cache.version(tenant, ctx.txn.read_ts())?;
    let key = PlanKey {
        tenant,
        catalog_version,
        database_id: ctx.db.id,
        database: ctx.db.name.clone(),
        user: ctx.session.user.clone(),
    };
    Some((cache, key))
}

/// The template of `q` for `slot`: the kept one if it is still valid, else a new one (kept
/// when it may be). `None`: `q` cannot be planned ahead (plan it the ordinary way).
pub async fn template(
    ctx: &mut Ctx<'_>,
    q: &ast::Query,
    slot: &PlanSlot,
) -> SqlResult<Option<Arc<QueryTemplate>>> {
    let keyed = key_of(ctx);
    if let Some((cache, key)) = &keyed
        && let Some(t) = slot.get(key)
    {
        cache.metrics().plan_cache_hits.inc();
        return Ok(Some(t));
    }
    let Some(template) = query::compile_query(ctx, q).await?.map(Arc::new) else {
        return Ok(None);
    };
    if let Some((cache, key)) = keyed {
        cache.metrics().plan_cache_misses.inc();
        // Tagged with the version read before planning: a change during planning makes the
        // next execution plan again.
        slot.put(key, template.clone());
    }
    Ok(Some(template))
}

/// Plans `q` for `slot` whatever it keeps (Parse: the statement's parameter types are
/// inferred as it is planned), and keeps the plan when it may. `None`: `q` cannot be planned
/// ahead.
pub async fn prepare(
    ctx: &mut Ctx<'_>,
    q: &ast::Query,
    slot: &PlanSlot,
) -> SqlResult<Option<Arc<QueryTemplate>>> {
    let keyed = key_of(ctx);
    let Some(template) = query::compile_query(ctx, q).await?.map(Arc::new) else {
        return Ok(None);
    };
    if let Some((cache, key)) = keyed {
        cache.metrics().plan_cache_misses.inc();
        slot.put(key, template.clone());
    }
    Ok(Some(template))
}

/// Plans `q` through `slot` (reusing its kept plan when valid) and loads it.
pub async fn plan(ctx: &mut Ctx<'_>, q: &ast::Query, slot: &PlanSlot) -> SqlResult<query::Planned> {
    match template(ctx, q, slot).await? {
        Some(t) => query::load_query(ctx, &t).await,
        None => query::plan_query(ctx, q, None).await,
    }
}
