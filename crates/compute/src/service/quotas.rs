//! Nova's quotas: limits per project (and per user within a project) over defaults that an
//! operator may change (the `default` quota class), usage counted from the servers and key
//! pairs themselves, and the check a create makes inside its own write, so that two
//! concurrent creates cannot both take the last unit.

use std::collections::BTreeMap;

use crate::model::{Model, QuotaLimits};
use crate::service::{Error, Result, Txn};

/// Every quota resource with Nova's default, and the microversion that dropped it (if any).
pub const RESOURCES: &[(&str, i64, Option<u32>)] = &[
    ("instances", 10, None),
    ("cores", 20, None),
    ("ram", 51200, None),
    ("metadata_items", 128, None),
    ("key_pairs", 100, None),
    ("server_groups", 10, None),
    ("server_group_members", 10, None),
    ("fixed_ips", -1, Some(36)),
    ("floating_ips", 10, Some(36)),
    ("security_groups", 10, Some(36)),
    ("security_group_rules", 20, Some(36)),
    ("injected_files", 5, Some(57)),
    ("injected_file_content_bytes", 10240, Some(57)),
    ("injected_file_path_bytes", 255, Some(57)),
];

/// The resources a microversion shows.
pub fn resources_at(minor: u32) -> impl Iterator<Item = &'static str> {
    RESOURCES.iter().filter(move |(_, _, gone)| gone.is_none_or(|g| minor < g)).map(|(n, _, _)| *n)
}

pub fn class_key(class: &str) -> String {
    format!("class:{class}")
}

pub fn user_key(project: &str, user: &str) -> String {
    format!("{project}/{user}")
}

/// The default limits: Nova's, with the key pair limit from the configuration, under the
/// operator's `default` quota class.
pub fn defaults(m: &Model, key_pairs: i64) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = RESOURCES.iter().map(|(n, d, _)| (n.to_string(), *d)).collect();
    out.insert("key_pairs".into(), key_pairs);
    if let Some(c) = m.quotas.get(&class_key("default")) {
        out.extend(c.limits.clone());
    }
    out
}

/// The limits in force for a project, or for one of its users.
pub fn limits(m: &Model, key_pairs: i64, project: &str, user: Option<&str>) -> BTreeMap<String, i64> {
    let mut out = defaults(m, key_pairs);
    if let Some(p) = m.quotas.get(project) {
        out.extend(p.limits.clone());
    }
    if let Some(u) = user.and_then(|u| m.quotas.get(&user_key(project, u))) {
        out.extend(u.limits.clone());
    }
    out
}

/// What a project (or one user of it) uses now.
pub fn usage(m: &Model, project: &str, user: Option<&str>) -> BTreeMap<String, i64> {
    let mut out: BTreeMap<String, i64> = RESOURCES.iter().map(|(n, _, _)| (n.to_string(), 0)).collect();
    for s in m.servers_of(project).filter(|s| user.is_none_or(|u| s.user_id == u)) {
        *out.entry("instances".into()).or_default() += 1;
        *out.entry("cores".into()).or_default() += s.flavor.vcpus;
        *out.entry("ram".into()).or_default() += s.flavor.ram;
    }
    let groups = m.server_groups.values().filter(|g| g.project_id == project && user.is_none_or(|u| g.user_id == u));
    out.insert("server_groups".into(), groups.count() as i64);
    if let Some(u) = user {
        out.insert("key_pairs".into(), m.keypairs_of(u).count() as i64);
    }
    out
}

/// Refuses `wanted` more of each resource if that would pass a limit; Nova's 403 message.
pub fn check(t: &Txn, key_pairs: i64, project: &str, user: &str, wanted: &[(&str, i64)]) -> Result<()> {
    let project_limits = limits(&t.m, key_pairs, project, None);
    let user_limits = limits(&t.m, key_pairs, project, Some(user));
    let project_used = usage(&t.m, project, None);
    let user_used = usage(&t.m, project, Some(user));
    let mut overs = Vec::new();
    for (resource, n) in wanted {
        for (lim, used) in [(&project_limits, &project_used), (&user_limits, &user_used)] {
            let allowed = lim.get(*resource).copied().unwrap_or(-1);
            let in_use = used.get(*resource).copied().unwrap_or(0);
            if allowed >= 0 && in_use + n > allowed {
                overs.push((*resource, *n, in_use, allowed));
                break;
            }
        }
    }
    if overs.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = overs.iter().map(|o| o.0).collect();
    let join = |f: &dyn Fn(&(&str, i64, i64, i64)) -> String| overs.iter().map(f).collect::<Vec<_>>().join(", ");
    Err(Error::Forbidden(format!(
        "Quota exceeded for {}: Requested {}, but already used {} of {} {}",
        names.join(", "),
        join(&|o| o.1.to_string()),
        join(&|o| o.2.to_string()),
        join(&|o| o.3.to_string()),
        names.join(", "),
    )))
}

/// Sets limits for a project, a user, or a class; values below the current usage are refused
/// unless `force`.
pub fn set(
    t: &mut Txn,
    key: String,
    changes: BTreeMap<String, i64>,
    used: &BTreeMap<String, i64>,
    force: bool,
) -> Result<()> {
    if !force {
        for (k, v) in &changes {
            let u = used.get(k).copied().unwrap_or(0);
            if *v >= 0 && *v < u {
                return Err(Error::BadRequest(format!(
                    "Quota limit {v} for {k} must be greater than or equal to already used and reserved {u}."
                )));
            }
        }
    }
    let mut q = t.m.quotas.get(&key).map(|q| (**q).clone()).unwrap_or(QuotaLimits { id: key, limits: BTreeMap::new() });
    q.limits.extend(changes);
    t.put(q)?;
    Ok(())
}
