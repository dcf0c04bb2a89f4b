//! Domains: unique names (case-insensitively), revocation when one is disabled, and the
//! cascade that deletes everything in one.

use std::sync::Arc;

use super::{Error, Result, Revoke, Txn};
use crate::model::{
    Assignment, Domain, DomainConfig, Extra, Group, ImpliedRole, Membership, Project, RevocationEvent, Role,
    TargetKind, User,
};

/// Stores a new domain: Keystone's conflict for a taken id or (case-insensitively) name. Also
/// used for projects created with `is_domain: true`.
pub fn create(t: &mut Txn, d: Domain) -> Result<Arc<Domain>> {
    if t.m.domains.contains_key(&d.id) {
        return Err(Error::Conflict(format!("Conflict occurred attempting to store domain - Duplicate ID, {}.", d.id)));
    }
    if t.m.domains.values().any(|x| x.name.eq_ignore_ascii_case(&d.name)) {
        return Err(name_taken(&d.name));
    }
    Ok(t.put(d)?)
}

fn name_taken(name: &str) -> Error {
    Error::Conflict(format!("Conflict occurred attempting to store domain - Duplicate entry found with name {name}."))
}

/// The attributes a domain update may change; `None` leaves one as it is.
#[derive(Default)]
pub struct DomainPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub tags: Option<Vec<String>>,
    /// Merged into the domain's options.
    pub options: Option<Extra>,
    /// Merged into the attributes Keystone does not know.
    pub extra: Extra,
}

/// Updates a domain; disabling it revokes the tokens scoped to it.
pub fn update(t: &mut Txn, id: &str, patch: DomainPatch) -> Result<Arc<Domain>> {
    let d = t.edit(&t.m.domains, "domain", id)?;
    if let Some(n) = &patch.name {
        if t.m.domains.values().any(|x| x.id != id && x.name.eq_ignore_ascii_case(n)) {
            return Err(name_taken(n));
        }
    }
    apply(t, d, patch)
}

/// Updates a domain addressed through the projects API (`is_domain: true`).
///
/// FIXME: unlike [`update`], a taken name is refused only by the store's unique key, with its
/// generic "Duplicate entry." message; it should be refused as [`update`] refuses it.
pub fn update_as_project(t: &mut Txn, id: &str, patch: DomainPatch) -> Result<Arc<Domain>> {
    let d = t.edit(&t.m.domains, "project", id)?;
    apply(t, d, patch)
}

fn apply(t: &mut Txn, mut d: Domain, patch: DomainPatch) -> Result<Arc<Domain>> {
    if let Some(n) = patch.name {
        d.name = n;
    }
    if let Some(x) = patch.description {
        d.description = x;
    }
    if let Some(tags) = patch.tags {
        d.tags = tags;
    }
    if let Some(o) = patch.options {
        d.options.extend(o);
    }
    if let Some(e) = patch.enabled {
        if d.enabled && !e {
            t.revoke(RevocationEvent { domain_id: Some(d.id.clone()), ..Default::default() });
        }
        d.enabled = e;
    }
    d.extra.extend(patch.extra);
    Ok(t.put(d)?)
}

/// Deletes a disabled domain with its projects, users, groups and domain-specific roles, their
/// assignments, memberships and implied roles, and its configuration; revokes its tokens.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    let d = t.m.domains.get(id).ok_or_else(|| Error::not_found("domain", id))?;
    if d.enabled {
        return Err(Error::Forbidden("Cannot delete a domain that is enabled, please disable it first.".into()));
    }
    let projects: Vec<String> = t.m.projects.values().filter(|p| p.domain_id == id).map(|p| p.id.clone()).collect();
    let users: Vec<String> = t.m.users.values().filter(|u| u.domain_id == id).map(|u| u.id.clone()).collect();
    let groups: Vec<String> = t.m.groups.values().filter(|g| g.domain_id == id).map(|g| g.id.clone()).collect();
    let roles: Vec<String> =
        t.m.roles.values().filter(|r| r.domain_id.as_deref() == Some(id)).map(|r| r.id.clone()).collect();
    t.delete_where::<Assignment>(|a| {
        (a.target_kind == TargetKind::Domain && a.target_id == id)
            || (a.target_kind == TargetKind::Project && projects.contains(&a.target_id))
            || users.contains(&a.actor_id)
            || groups.contains(&a.actor_id)
            || roles.contains(&a.role_id)
    });
    t.delete_where::<Membership>(|ms| users.contains(&ms.user_id) || groups.contains(&ms.group_id));
    t.delete_where::<ImpliedRole>(|ir| roles.contains(&ir.prior_role_id) || roles.contains(&ir.implied_role_id));
    t.delete_where::<Project>(|p| p.domain_id == id);
    t.delete_where::<User>(|u| u.domain_id == id);
    t.delete_where::<Group>(|g| g.domain_id == id);
    t.delete_where::<Role>(|r| r.domain_id.as_deref() == Some(id));
    t.delete::<DomainConfig>(id);
    t.delete::<Domain>(id);
    t.revoke(RevocationEvent { domain_id: Some(id.to_string()), ..Default::default() });
    Ok(())
}
