//! RBAC policies' rules: a network shared with one project or every one (`*`, kept in step
//! with the network's `shared` flag), or made external for it; a policy other projects still
//! depend on stays.

use haneul_core::auth::AuthContext;

use super::access::owns;
use super::{check_quota, invalid, not_found, Error, Result, Txn};
use crate::model::{Model, RbacPolicy};

/// Whether a policy lets `project` use network `network_id` for `action`.
pub fn grants(m: &Model, network_id: &str, project: Option<&str>, action: &str) -> bool {
    let Some(project) = project else { return false };
    m.rbac.values().any(|p| {
        p.object_type == "network"
            && p.object_id == network_id
            && p.action == action
            && (p.target_tenant == project || p.target_tenant == "*")
    })
}

/// The wildcard policy a network gets with `shared: true` (`access_as_shared`) or
/// `router:external: true` (`access_as_external`), at create or update.
pub fn grant_all(t: &mut Txn, network_id: &str, owner: &str, action: &str) -> Result<()> {
    if !t.m.rbac.values().any(|p| is_wildcard(p, network_id, action)) {
        t.put(RbacPolicy {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: owner.to_string(),
            object_type: "network".into(),
            object_id: network_id.to_string(),
            action: action.into(),
            target_tenant: "*".into(),
        })?;
    }
    Ok(())
}

/// Removes the wildcard policy (`shared` or `router:external` set to false).
pub fn revoke_all(t: &mut Txn, network_id: &str, action: &str) {
    t.delete_where::<RbacPolicy>(|p| is_wildcard(p, network_id, action));
}

fn is_wildcard(p: &RbacPolicy, network_id: &str, action: &str) -> bool {
    p.object_type == "network" && p.object_id == network_id && p.action == action && p.target_tenant == "*"
}

/// Whether the caller sees the policy: its own project's, or as admin.
pub fn visible(ctx: &AuthContext, p: &RbacPolicy) -> bool {
    owns(ctx, &p.project_id)
}

/// The policy if the caller may see it; Neutron's 404 otherwise.
pub fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a RbacPolicy> {
    m.rbac
        .get(id)
        .map(|p| &**p)
        .filter(|p| visible(ctx, p))
        .ok_or_else(|| not_found("RbacPolicyNotFound", "RBAC policy", id))
}

/// A policy asked for, its attributes checked.
pub struct NewPolicy {
    pub project_id: String,
    pub object_type: String,
    pub object_id: String,
    pub action: String,
    pub target_tenant: String,
}

/// Records the policy; a wildcard one sets the network's flag. Only the network's owner (or
/// an admin) shares it; others do not learn it exists.
pub fn create(t: &mut Txn, ctx: &AuthContext, new: NewPolicy) -> Result<String> {
    let n =
        t.m.networks
            .get(&new.object_id)
            .filter(|n| owns(ctx, &n.project_id))
            .cloned()
            .ok_or_else(|| not_found("NetworkNotFound", "Network", &new.object_id))?;
    if t.m.rbac.values().any(|p| {
        p.object_type == new.object_type
            && p.object_id == new.object_id
            && p.action == new.action
            && p.target_tenant == new.target_tenant
    }) {
        return Err(Error::Conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values.".into()));
    }
    check_quota(&t.m, &new.project_id, "rbac_policy", 1)?;
    let p = RbacPolicy {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: new.project_id,
        object_type: new.object_type,
        object_id: new.object_id,
        action: new.action,
        target_tenant: new.target_tenant,
    };
    let id = p.id.clone();
    if p.target_tenant == "*" {
        let mut n = (*n).clone();
        match p.action.as_str() {
            "access_as_shared" => n.shared = true,
            _ => n.external = true,
        }
        n.std.touch();
        t.put(n)?;
    }
    t.put(p)?;
    Ok(id)
}

/// Whether projects the policy lets in (other than the network's owner) still use the
/// network: their ports on it, or (external) their floating IPs and router gateways.
fn in_use(m: &Model, p: &RbacPolicy) -> bool {
    let Some(n) = m.networks.get(&p.object_id) else { return false };
    let covered = |project: &str| project != n.project_id && (p.target_tenant == "*" || p.target_tenant == project);
    match p.action.as_str() {
        "access_as_shared" => m.ports_of(&n.id).any(|port| covered(&port.project_id) && !super::is_network_owned(port)),
        _ => m.floatingips.values().any(|f| f.floating_network_id == n.id && covered(&f.project_id)),
    }
}

fn policy_in_use(p: &RbacPolicy) -> Error {
    Error::Conflict(
        "RbacPolicyInUse",
        format!(
            "RBAC policy on object {} cannot be removed because other objects depend on it.\nDetails: Callback neutron.plugins.ml2.plugin.Ml2Plugin.validate_network_rbac_policy_change failed with \"Unable to reconfigure sharing settings for network {}. Multiple tenants are using it.\"",
            p.object_id, p.object_id
        ),
    )
}

/// Points the policy at another project, unless the one it names still depends on it; to or
/// from the wildcard is a delete and a create.
pub fn retarget(t: &mut Txn, id: &str, target: String) -> Result<()> {
    let mut p = t.edit(&t.m.rbac, "RBAC policy", id)?;
    if p.target_tenant == target {
        return Ok(());
    }
    if in_use(&t.m, &p) {
        return Err(policy_in_use(&p));
    }
    if p.target_tenant == "*" || target == "*" {
        return Err(invalid(
            "Updating a policy to or from the wildcard target is not supported; delete and create it.",
        ));
    }
    p.target_tenant = target;
    t.put(p)?;
    Ok(())
}

/// Removes the policy unless projects still depend on it and no other policy lets them in;
/// a wildcard one clears the network's flag.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    let p = t.edit(&t.m.rbac, "RBAC policy", id)?;
    let others = t.m.rbac.values().any(|o| {
        o.id != p.id
            && o.object_id == p.object_id
            && o.action == p.action
            && (o.target_tenant == "*" || o.target_tenant == p.target_tenant)
    });
    if !others && in_use(&t.m, &p) {
        return Err(policy_in_use(&p));
    }
    if p.target_tenant == "*" {
        if let Some(n) = t.m.networks.get(&p.object_id).cloned() {
            let mut n = (*n).clone();
            match p.action.as_str() {
                "access_as_shared" => n.shared = false,
                _ => n.external = false,
            }
            n.std.touch();
            t.put(n)?;
        }
    }
    t.delete::<RbacPolicy>(id);
    Ok(())
}
