//! Tenant ids and the keyspace each one owns.

use serde::{Deserialize, Serialize};
use std::fmt;
use storage::Span;

/// The first byte of every tenant key: `/Tenant/<id>/` is `0xfe` + id (8 bytes, big endian).
const TENANT_BYTE: u8 = 0xfe;
/// The first key of the tenants' keyspace.
pub const TENANT_KEYSPACE_START: &[u8] = &[TENANT_BYTE];
/// The first key after the tenants' keyspace.
pub const TENANT_KEYSPACE_END: &[u8] = &[TENANT_BYTE + 1];
/// The length of a virtual cluster's key prefix.
pub const PREFIX_LEN: usize = 9;

/// A virtual cluster's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TenantId(pub u64);

impl TenantId {
    /// The system virtual cluster.
    pub const SYSTEM: TenantId = TenantId(1);

    /// Whether this is the system virtual cluster.
    pub fn is_system(self) -> bool {
        self == TenantId::SYSTEM
    }

    /// The prefix of every key of this (non-system) tenant.
    pub fn prefix(self) -> Vec<u8> {
        let mut p = Vec::with_capacity(PREFIX_LEN);
        p.push(TENANT_BYTE);
        p.extend_from_slice(&self.0.to_be_bytes());
        p
    }

    /// The keyspace of this (non-system) tenant: `[prefix(id), prefix(id + 1))`.
    pub fn span(self) -> Span {
        Span::prefix(&self.prefix())
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The tenant a global key belongs to.
pub fn tenant_of_key(key: &[u8]) -> TenantId {
    match key.split_first() {
        Some((&TENANT_BYTE, rest)) if rest.len() >= 8 => {
            let mut id = [0u8; 8];
            id.copy_from_slice(&rest[..8]);
            TenantId(u64::from_be_bytes(id))
        }
        // A key inside [0xfe, 0xff) too short to name a tenant belongs to none; treat it as
        // tenant 0, which no virtual cluster has.
        Some((&TENANT_BYTE, _)) => TenantId(0),
        _ => TenantId::SYSTEM,
    }
}

/// Rewrites a key of tenant `from` into the same key of tenant `to` (replication into a
/// tenant with another id). `None` if the key is not `from`'s.
pub fn rekey(key: &[u8], from: TenantId, to: TenantId) -> Option<Vec<u8>> {
    let rest = key.strip_prefix(from.prefix().as_slice())?;
    let mut out = to.prefix();
    out.extend_from_slice(rest);
    Some(out)
}

/// A key for people: `/Tenant/<id>/<rest>` for tenant keys, escaped bytes otherwise.
pub fn pretty_key(key: &[u8]) -> String {
    match tenant_of_key(key) {
        TenantId::SYSTEM => format!("{}", key.escape_ascii()),
        TenantId(0) => format!("/Tenant/?/{}", key.escape_ascii()),
        id => format!("/Tenant/{id}/{}", key[PREFIX_LEN..].escape_ascii()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: tenant prefixes sort by id, spans are adjacent and disjoint, and keys map back to
    // their tenant.
    #[test]
    fn prefixes_and_spans() {
        let (a, b) = (TenantId(2), TenantId(3));
        assert!(a.prefix() < b.prefix());
        assert_eq!(a.span().end, Some(b.prefix()));
        assert_eq!(tenant_of_key(&a.prefix()), a);
        assert_eq!(tenant_of_key(b"anything"), TenantId::SYSTEM);
        assert_eq!(tenant_of_key(&[0xff, 1]), TenantId::SYSTEM);
        assert_eq!(tenant_of_key(&[0xfe, 1]), TenantId(0));
        let mut k = a.prefix();
        k.extend_from_slice(b"x");
        assert_eq!(rekey(&k, a, b).map(|k| tenant_of_key(&k)), Some(b));
        assert_eq!(rekey(&k, b, a), None);
        assert_eq!(pretty_key(&k), "/Tenant/2/x");
    }
}
