//! Grants: role assignments of a user or group on a project, a domain or the system, direct or
//! inherited to the projects below.

use super::{Error, Result, Revoke, Txn};
use crate::model::{ActorKind, Assignment, Model, RevocationEvent, TargetKind};

/// Who holds grants where (one grant is this and a role).
#[derive(Clone, Debug)]
pub struct Grant {
    pub target_kind: TargetKind,
    /// `all` for the system.
    pub target_id: String,
    pub actor_kind: ActorKind,
    pub actor_id: String,
    pub inherited: bool,
}

impl Grant {
    /// The stored assignment of `role_id` by this grant.
    pub fn assignment(&self, role_id: &str) -> Assignment {
        Assignment::new(
            self.actor_kind.clone(),
            &self.actor_id,
            self.target_kind.clone(),
            &self.target_id,
            role_id,
            self.inherited,
        )
    }
}

/// Checks that the actor, the target and the role (when given) exist, and that a
/// domain-specific role is granted only inside its domain.
pub fn check(m: &Model, g: &Grant, role_id: Option<&str>) -> Result<()> {
    match g.actor_kind {
        ActorKind::User if !m.users.contains_key(&g.actor_id) => {
            return Err(Error::not_found("user", g.actor_id.as_str()))
        }
        ActorKind::Group if !m.groups.contains_key(&g.actor_id) => {
            return Err(Error::not_found("group", g.actor_id.as_str()))
        }
        _ => {}
    }
    match g.target_kind {
        TargetKind::Project if !m.projects.contains_key(&g.target_id) => {
            return Err(Error::not_found("project", g.target_id.as_str()))
        }
        TargetKind::Domain if !m.domains.contains_key(&g.target_id) => {
            return Err(Error::not_found("domain", g.target_id.as_str()))
        }
        _ => {}
    }
    if let Some(r) = role_id {
        let role = m.roles.get(r).ok_or_else(|| Error::not_found("role", r))?;
        if let Some(rd) = &role.domain_id {
            let target_domain = match g.target_kind {
                TargetKind::Project => m.projects.get(&g.target_id).map(|p| p.domain_id.clone()),
                TargetKind::Domain => Some(g.target_id.clone()),
                TargetKind::System => None,
            };
            if target_domain.as_ref() != Some(rd) {
                return Err(Error::Forbidden(format!(
                    "The role {r} belongs to domain {rd} and cannot be granted outside it."
                )));
            }
        }
    }
    Ok(())
}

/// Grants `role_id` (again is a no-op).
pub fn grant(t: &mut Txn, g: &Grant, role_id: &str) -> Result<()> {
    check(&t.m, g, Some(role_id))?;
    t.put(g.assignment(role_id))?;
    Ok(())
}

/// Revokes `role_id`, and the tokens of a user that carried it.
pub fn revoke(t: &mut Txn, g: &Grant, role_id: &str) -> Result<()> {
    check(&t.m, g, Some(role_id))?;
    let a = g.assignment(role_id);
    t.delete::<Assignment>(&a.id).ok_or_else(|| Error::not_found("role assignment", role_id))?;
    if g.actor_kind == ActorKind::User {
        let mut ev = RevocationEvent { user_id: Some(g.actor_id.clone()), ..Default::default() };
        if g.target_kind == TargetKind::Project && !g.inherited {
            ev.project_id = Some(g.target_id.clone());
        }
        t.revoke(ev);
    }
    Ok(())
}
