//! Quotas: each project's limits (its overrides over Neutron's defaults) and what it uses.

use std::collections::BTreeMap;

use super::{Error, Result, Txn};
use crate::model::{Model, Quota};

/// Neutron's default quotas (`[quotas]` in neutron.conf).
pub const DEFAULT_QUOTAS: &[(&str, i64)] = &[
    ("network", 100),
    ("subnet", 100),
    ("port", 500),
    ("router", 10),
    ("floatingip", 50),
    ("security_group", 10),
    ("security_group_rule", 100),
    ("subnetpool", -1),
    ("rbac_policy", 10),
];

/// The project's limit for `resource`: its override, else the default.
pub fn quota_limit(m: &Model, project_id: &str, resource: &str) -> i64 {
    m.quotas
        .get(project_id)
        .and_then(|q| q.limits.get(resource).copied())
        .or_else(|| DEFAULT_QUOTAS.iter().find(|(r, _)| *r == resource).map(|(_, v)| *v))
        .unwrap_or(-1)
}

/// How many of `resource` the project has.
pub fn quota_used(m: &Model, project_id: &str, resource: &str) -> i64 {
    let n = match resource {
        "network" => m.networks.ids_by("project_id", project_id).count(),
        "subnet" => m.subnets.ids_by("project_id", project_id).count(),
        "port" => m.ports.ids_by("project_id", project_id).count(),
        "router" => m.routers.ids_by("project_id", project_id).count(),
        "floatingip" => m.floatingips.ids_by("project_id", project_id).count(),
        "security_group" => m.security_groups.ids_by("project_id", project_id).count(),
        "security_group_rule" => m.rules.ids_by("project_id", project_id).count(),
        "subnetpool" => m.subnetpools.ids_by("project_id", project_id).count(),
        "rbac_policy" => m.rbac.ids_by("project_id", project_id).count(),
        _ => 0,
    };
    n as i64
}

/// Neutron's 409 `OverQuota` when one more `resource` would pass the project's limit.
pub fn check_quota(m: &Model, project_id: &str, resource: &str, adding: i64) -> Result<()> {
    let limit = quota_limit(m, project_id, resource);
    if limit >= 0 && quota_used(m, project_id, resource) + adding > limit {
        return Err(Error::Conflict("OverQuota", format!("Quota exceeded for resources: ['{resource}'].")));
    }
    Ok(())
}

/// Sets the project's limits named in `changes` (the others keep theirs).
pub fn set(t: &mut Txn, project: &str, changes: BTreeMap<String, i64>) -> Result<()> {
    let mut q =
        t.m.quotas
            .get(project)
            .map(|q| (**q).clone())
            .unwrap_or(Quota { id: project.to_string(), limits: BTreeMap::new() });
    q.limits.extend(changes);
    t.put(q)?;
    Ok(())
}

/// Back to the defaults.
pub fn reset(t: &mut Txn, project: &str) -> Result<()> {
    t.delete::<Quota>(project);
    Ok(())
}
