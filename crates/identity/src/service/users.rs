//! Users: unique names in a domain, password changes (with the compliance rules), revocation
//! when one is disabled or its password changes, and what goes with a deleted user.

use std::sync::Arc;

use super::compliance::set_password;
use super::{Error, Result, Revoke, Settings, Txn};
use crate::model::{
    AccessRule, ActorKind, ApplicationCredential, Assignment, Credential, Extra, Membership, RevocationEvent, Trust,
    User,
};

fn name_taken(name: &str, domain_id: &str) -> Error {
    Error::Conflict(format!(
        "Conflict occurred attempting to store user - Duplicate entry found with name {name} at domain ID {domain_id}."
    ))
}

/// Stores a new user (its password already set) in an existing domain, under a free name.
pub fn create(t: &mut Txn, user: User) -> Result<Arc<User>> {
    if !t.m.domains.contains_key(&user.domain_id) {
        return Err(Error::not_found("domain", user.domain_id.clone()));
    }
    if t.m.users.unique_holder(&format!("{}/{}", user.domain_id, user.name), &user.id).is_some() {
        return Err(name_taken(&user.name, &user.domain_id));
    }
    Ok(t.put(user)?)
}

/// The attributes a user update may change; `None` leaves one as it is.
#[derive(Default)]
pub struct UserPatch {
    pub name: Option<String>,
    /// `Some(None)` clears it.
    pub default_project_id: Option<Option<String>>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    /// Merged into the user's options.
    pub options: Option<Extra>,
    /// A new password's hash, or `Some(None)` to remove the password.
    pub password_hash: Option<Option<String>>,
    pub enabled: Option<bool>,
    /// Merged into the attributes Keystone does not know.
    pub extra: Extra,
}

/// Updates a user; a new (or removed) password or disabling the user revokes its tokens.
pub fn update(t: &mut Txn, settings: &Settings, id: &str, patch: UserPatch) -> Result<Arc<User>> {
    let mut u = t.edit(&t.m.users, "user", id)?;
    if let Some(n) = patch.name {
        if t.m.users.unique_holder(&format!("{}/{}", u.domain_id, n), id).is_some() {
            return Err(name_taken(&n, &u.domain_id));
        }
        u.name = n;
    }
    if let Some(p) = patch.default_project_id {
        u.default_project_id = p;
    }
    if let Some(d) = patch.description {
        u.description = d;
    }
    if let Some(o) = patch.options {
        u.options.extend(o);
    }
    let mut revoke = false;
    match patch.password_hash {
        Some(Some(h)) => {
            set_password(settings, &mut u, h);
            revoke = true;
        }
        Some(None) => {
            u.password_hash = None;
            revoke = true;
        }
        None => {}
    }
    if let Some(e) = patch.enabled {
        revoke |= u.enabled && !e;
        u.enabled = e;
    }
    if revoke {
        t.revoke(RevocationEvent { user_id: Some(id.to_string()), ..Default::default() });
    }
    u.extra.extend(patch.extra);
    Ok(t.put(u)?)
}

/// Deletes a user with its memberships, assignments, credentials, application credentials,
/// access rules and trusts; revokes its tokens.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    t.delete::<User>(id).ok_or_else(|| Error::not_found("user", id))?;
    t.delete_where::<Membership>(|m| m.user_id == id);
    t.delete_where::<Assignment>(|a| a.actor_kind == ActorKind::User && a.actor_id == id);
    t.delete_where::<Credential>(|c| c.user_id == id);
    t.delete_where::<ApplicationCredential>(|a| a.user_id == id);
    t.delete_where::<AccessRule>(|r| r.user_id == id);
    t.delete_where::<Trust>(|tr| tr.trustor_user_id == id || tr.trustee_user_id == id);
    t.revoke(RevocationEvent { user_id: Some(id.to_string()), ..Default::default() });
    Ok(())
}

/// A self-service password change, after the caller proved the original password: refused
/// when the user was disabled or its password changed since `verified_hash` was checked.
pub fn change_password(
    t: &mut Txn,
    settings: &Settings,
    id: &str,
    verified_hash: &str,
    new_hash: String,
) -> Result<()> {
    let mut u = t.edit(&t.m.users, "user", id)?;
    if u.password_hash.as_deref() != Some(verified_hash) || !u.enabled {
        return Err(Error::unauthorized());
    }
    set_password(settings, &mut u, new_hash);
    t.revoke(RevocationEvent { user_id: Some(id.to_string()), ..Default::default() });
    t.put(u)?;
    Ok(())
}
