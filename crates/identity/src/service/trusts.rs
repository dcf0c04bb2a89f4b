//! Trusts: a trustor delegates roles it holds on a project to a trustee.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::roles::{user_roles, RoleRef, RoleTarget};
use super::{new_id, Error, Result, Revoke, Txn};
use crate::model::{RevocationEvent, Trust};

/// A new trust, as asked for (its expiry and uses already validated).
pub struct NewTrust {
    pub trustor_user_id: String,
    pub trustee_user_id: String,
    pub project_id: Option<String>,
    pub impersonation: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub remaining_uses: Option<i64>,
    /// The roles delegated on the project (ignored without one).
    pub roles: Vec<RoleRef>,
    pub allow_redelegation: bool,
}

/// Stores a new trust for an existing trustee. On a project (which must exist) it delegates
/// at least one role, each held by the trustor there.
pub fn create(t: &mut Txn, new: NewTrust) -> Result<Arc<Trust>> {
    if !t.m.users.contains_key(&new.trustee_user_id) {
        return Err(Error::not_found("user", new.trustee_user_id));
    }
    let mut role_ids: Vec<String> = Vec::new();
    if let Some(p) = &new.project_id {
        if !t.m.projects.contains_key(p) {
            return Err(Error::not_found("project", p.clone()));
        }
        let held = user_roles(&t.m, &new.trustor_user_id, RoleTarget::Project(p));
        for r in &new.roles {
            let role = r.resolve(&t.m)?;
            if !held.contains(&role.id) {
                return Err(Error::Forbidden(format!("The trustor does not hold role {} on project {p}.", role.name)));
            }
            if !role_ids.contains(&role.id) {
                role_ids.push(role.id.clone());
            }
        }
        if role_ids.is_empty() {
            return Err(Error::validation("At least one role should be specified."));
        }
    }
    Ok(t.put(Trust {
        id: new_id(),
        trustor_user_id: new.trustor_user_id,
        trustee_user_id: new.trustee_user_id,
        project_id: new.project_id,
        impersonation: new.impersonation,
        expires_at: new.expires_at,
        remaining_uses: new.remaining_uses,
        roles: role_ids,
        allow_redelegation: new.allow_redelegation,
        redelegation_count: None,
        redelegated_trust_id: None,
    })?)
}

/// Deletes a trust and revokes the tokens made with it.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    t.delete::<Trust>(id).ok_or_else(|| Error::not_found("trust", id))?;
    t.revoke(RevocationEvent { trust_id: Some(id.to_string()), ..Default::default() });
    Ok(())
}
