//! Groups and their members: unique names in a domain; leaving a group revokes the member's
//! tokens (their roles may come from it).

use std::sync::Arc;

use super::{Error, Result, Revoke, Txn};
use crate::model::{ActorKind, Assignment, Extra, Group, Membership, RevocationEvent};

/// Stores a new group in an existing domain, under a free name.
pub fn create(t: &mut Txn, g: Group) -> Result<Arc<Group>> {
    if !t.m.domains.contains_key(&g.domain_id) {
        return Err(Error::not_found("domain", g.domain_id.clone()));
    }
    if t.m.groups.unique_holder(&format!("{}/{}", g.domain_id, g.name), &g.id).is_some() {
        return Err(Error::Conflict(format!(
            "Conflict occurred attempting to store group - Duplicate entry found with name {} at domain ID {}.",
            g.name, g.domain_id
        )));
    }
    Ok(t.put(g)?)
}

/// The attributes a group update may change; `None` leaves one as it is.
#[derive(Default)]
pub struct GroupPatch {
    pub name: Option<String>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// Merged into the attributes Keystone does not know.
    pub extra: Extra,
}

pub fn update(t: &mut Txn, id: &str, patch: GroupPatch) -> Result<Arc<Group>> {
    let mut g = t.edit(&t.m.groups, "group", id)?;
    if let Some(n) = patch.name {
        if t.m.groups.values().any(|x| x.id != id && x.domain_id == g.domain_id && x.name == n) {
            return Err(Error::Conflict(format!(
                "Conflict occurred attempting to store group - Duplicate entry found with name {n}."
            )));
        }
        g.name = n;
    }
    if let Some(d) = patch.description {
        g.description = d.unwrap_or_default();
    }
    g.extra.extend(patch.extra);
    Ok(t.put(g)?)
}

/// Deletes a group with its memberships and role assignments.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    t.delete::<Group>(id).ok_or_else(|| Error::not_found("group", id))?;
    t.delete_where::<Membership>(|m| m.group_id == id);
    t.delete_where::<Assignment>(|a| a.actor_kind == ActorKind::Group && a.actor_id == id);
    Ok(())
}

/// Adds an existing user to an existing group (again is a no-op).
pub fn add_member(t: &mut Txn, group_id: &str, user_id: &str) -> Result<()> {
    if !t.m.groups.contains_key(group_id) {
        return Err(Error::not_found("group", group_id));
    }
    if !t.m.users.contains_key(user_id) {
        return Err(Error::not_found("user", user_id));
    }
    t.put(Membership::new(group_id, user_id))?;
    Ok(())
}

/// Removes a user from a group and revokes the user's tokens.
pub fn remove_member(t: &mut Txn, group_id: &str, user_id: &str) -> Result<()> {
    t.delete::<Membership>(&format!("{group_id}/{user_id}"))
        .ok_or_else(|| Error::NotFound { kind: "membership", id: format!("user {user_id} in group {group_id}") })?;
    t.revoke(RevocationEvent { user_id: Some(user_id.to_string()), ..Default::default() });
    Ok(())
}
