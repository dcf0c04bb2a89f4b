//! Subnet pools' rules: who sees a pool, its prefix bounds, one default pool per IP version,
//! prefixes that only grow, and carving a subnet's prefix out of a pool.

use haneul_core::auth::AuthContext;

use super::access::owns;
use super::{check_quota, invalid, not_found, Error, Result, Txn};
use crate::ip::Cidr;
use crate::model::{Model, SubnetPool};

pub fn visible(ctx: &AuthContext, p: &SubnetPool) -> bool {
    owns(ctx, &p.project_id) || p.shared
}

pub fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a SubnetPool, Error> {
    m.subnetpools
        .get(id)
        .map(|p| &**p)
        .filter(|p| visible(ctx, p))
        .ok_or_else(|| not_found("SubnetPoolNotFound", "Subnet pool", id))
}

/// Checks min ≤ default ≤ max within the version's width and the prefixes.
pub fn check_bounds(p: &SubnetPool) -> Result<()> {
    let width = if p.ip_version == 4 { 32 } else { 128 };
    if p.min_prefixlen > p.max_prefixlen || p.max_prefixlen > width {
        return Err(Error::BadRequest(
            "IllegalSubnetPoolPrefixBounds",
            format!("Illegal prefix bounds: min_prefixlen={}, max_prefixlen={}.", p.min_prefixlen, p.max_prefixlen),
        ));
    }
    if p.default_prefixlen < p.min_prefixlen || p.default_prefixlen > p.max_prefixlen {
        return Err(Error::BadRequest(
            "IllegalSubnetPoolPrefixBounds",
            format!(
                "Illegal prefix bounds: default_prefixlen={} must be between min_prefixlen and max_prefixlen.",
                p.default_prefixlen
            ),
        ));
    }
    Ok(())
}

/// Records the pools, all or none; one default pool per IP version.
pub fn create(t: &mut Txn, pools: Vec<SubnetPool>) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for p in pools {
        check_quota(&t.m, &p.project_id, "subnetpool", 1)?;
        if p.is_default && t.m.subnetpools.values().any(|o| o.is_default && o.ip_version == p.ip_version) {
            return Err(invalid(format!("A default subnetpool for IPv{} already exists", p.ip_version)));
        }
        ids.push(p.id.clone());
        t.put(p)?;
    }
    Ok(ids)
}

/// What an update changes (`None`: left as it is).
pub struct PoolUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Checked for syntax and one IP version.
    pub prefixes: Option<Vec<Cidr>>,
    pub default_prefixlen: Option<u8>,
    pub min_prefixlen: Option<u8>,
    pub max_prefixlen: Option<u8>,
    pub is_default: Option<bool>,
    pub default_quota: Option<Option<i64>>,
}

/// Applies an update: prefixes only grow (each old one stays covered), bounds stay ordered.
pub fn update(t: &mut Txn, id: &str, u: PoolUpdate) -> Result<()> {
    let mut p = t.edit(&t.m.subnetpools, "subnet pool", id)?;
    if let Some(v) = u.name {
        p.name = v;
    }
    if let Some(v) = u.description {
        p.std.description = v;
    }
    if let Some(new) = u.prefixes {
        if new.first().is_some_and(|n| n.version() != p.ip_version) {
            return Err(Error::BadRequest(
                "PrefixVersionMismatch",
                "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.".into(),
            ));
        }
        let covered = p
            .prefixes
            .iter()
            .filter_map(|o| Cidr::parse(o, true))
            .all(|o| new.iter().any(|n| n.len <= o.len && n.contains(o.net)));
        if !covered {
            return Err(Error::BadRequest(
                "IllegalSubnetPoolPrefixUpdate",
                "Illegal update to prefixes: existing prefixes must stay covered.".into(),
            ));
        }
        p.prefixes = new.iter().map(|c| c.to_string()).collect();
    }
    if let Some(v) = u.min_prefixlen {
        p.min_prefixlen = v;
    }
    if let Some(v) = u.max_prefixlen {
        p.max_prefixlen = v;
    }
    if let Some(v) = u.default_prefixlen {
        p.default_prefixlen = v;
    }
    check_bounds(&p)?;
    if let Some(v) = u.is_default {
        if v && t.m.subnetpools.values().any(|o| o.id != id && o.is_default && o.ip_version == p.ip_version) {
            return Err(invalid(format!("A default subnetpool for IPv{} already exists", p.ip_version)));
        }
        p.is_default = v;
    }
    if let Some(v) = u.default_quota {
        p.default_quota = v;
    }
    p.std.touch();
    t.put(p)?;
    Ok(())
}

/// Deletes the pool unless subnets were carved from it.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    if t.m.subnets.values().any(|s| s.subnetpool_id.as_deref() == Some(id)) {
        return Err(Error::BadRequest(
            "SubnetPoolDeleteError",
            "Unable to delete subnet pool: Subnet pool has existing allocations.".into(),
        ));
    }
    t.delete::<SubnetPool>(id).ok_or_else(|| not_found("SubnetPoolNotFound", "Subnet pool", id))?;
    Ok(())
}

/// Carves a subnet of `/prefixlen` (the pool's default when None) out of the pool: the first
/// block of that size in the pool's prefixes that overlaps no subnet allocated from it.
pub fn allocate(m: &Model, pool: &SubnetPool, prefixlen: Option<u8>) -> Result<Cidr> {
    let len = prefixlen.unwrap_or(pool.default_prefixlen);
    if len < pool.min_prefixlen {
        return Err(Error::BadRequest(
            "MinPrefixSubnetAllocationError",
            format!(
                "Unable to allocate subnet with prefix length {len}, minimum allowed prefix is {}.",
                pool.min_prefixlen
            ),
        ));
    }
    if len > pool.max_prefixlen {
        return Err(Error::BadRequest(
            "MaxPrefixSubnetAllocationError",
            format!(
                "Unable to allocate subnet with prefix length {len}, maximum allowed prefix is {}.",
                pool.max_prefixlen
            ),
        ));
    }
    let taken: Vec<Cidr> = m
        .subnets
        .values()
        .filter(|s| s.subnetpool_id.as_deref() == Some(pool.id.as_str()))
        .filter_map(|s| Cidr::parse(&s.cidr, true))
        .collect();
    for prefix in pool.prefixes.iter().filter_map(|p| Cidr::parse(p, true)) {
        if len < prefix.len {
            continue;
        }
        let step = Cidr { net: prefix.net, len }.size();
        let count = prefix.size() / step;
        let mut i = 0u128;
        // Skips whole taken blocks at a time, so a big pool is not walked block by block.
        while i < count.min(1 << 20) {
            let Some(net) = prefix.net.offset((i * step) as i128) else { break };
            let block = Cidr { net, len };
            match taken.iter().find(|t| t.overlaps(block)) {
                None => return Ok(block),
                Some(t) => {
                    let after = t.last().offset(1).map(|a| a.bits.saturating_sub(prefix.net.bits)).unwrap_or(u128::MAX);
                    i = (i + 1).max(after.div_ceil(step));
                }
            }
        }
    }
    Err(Error::Conflict(
        "SubnetAllocationError",
        format!("Failed to allocate subnet: Insufficient prefix space to allocate subnet size /{len}."),
    ))
}
