//! Application credentials and the access rules that restrict them: a user delegates (some
//! of) the roles of a project-scoped token to a named secret.

use std::sync::Arc;

use super::roles::RoleRef;
use super::{new_id, Error, Result, Revoke, Txn};
use crate::model::{AccessRule, ApplicationCredential, RevocationEvent};

/// An access rule named in a request: an existing rule of the user by id, or a path, a method
/// and a service (an existing rule alike is reused).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct AccessRuleRef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
}

/// A new application credential, as asked for.
pub struct NewAppCred {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub user_id: String,
    pub project_id: String,
    pub secret_hash: String,
    pub expires_at: Option<String>,
    /// The roles to delegate; none, or an empty list, delegates all of `token_roles`.
    pub roles: Option<Vec<RoleRef>>,
    /// The role ids of the token creating it: only these can be delegated.
    pub token_roles: Vec<String>,
    pub unrestricted: bool,
    pub access_rules: Vec<AccessRuleRef>,
}

/// Stores a new application credential under a name free for its user, with the roles it
/// delegates (all held by the creating token) and its access rules (new ones stored).
pub fn create(t: &mut Txn, new: NewAppCred) -> Result<Arc<ApplicationCredential>> {
    let roles = match new.roles {
        // No roles, or an empty list (as the openstack CLI sends), delegates all of the token's.
        None => new.token_roles,
        Some(refs) if refs.is_empty() => new.token_roles,
        Some(refs) => {
            let mut out = Vec::new();
            for r in refs {
                let role = r.resolve(&t.m)?;
                if !new.token_roles.contains(&role.id) {
                    return Err(Error::Forbidden(format!(
                        "You cannot delegate role {}: your token does not hold it.",
                        role.name
                    )));
                }
                out.push(role.id.clone());
            }
            out
        }
    };
    let user_id = new.user_id;
    let mut rule_ids = Vec::new();
    for r in new.access_rules {
        let id = match (r.id, r.path, r.method, r.service) {
            (Some(id), ..) => {
                t.m.access_rules
                    .get(&id)
                    .filter(|x| x.user_id == user_id)
                    .ok_or_else(|| Error::not_found("access rule", id.clone()))?;
                id
            }
            (None, Some(path), Some(method), Some(service)) => {
                let existing =
                    t.m.access_rules
                        .values()
                        .find(|x| x.user_id == user_id && x.path == path && x.method == method && x.service == service);
                match existing {
                    Some(x) => x.id.clone(),
                    None => {
                        t.put(AccessRule { id: new_id(), user_id: user_id.clone(), service, path, method })?.id.clone()
                    }
                }
            }
            _ => return Err(Error::validation("An access rule needs an id, or a path, a method and a service.")),
        };
        rule_ids.push(id);
    }
    if t.m.application_credentials.values().any(|a| a.user_id == user_id && a.name == new.name) {
        return Err(Error::Conflict(format!(
            "Conflict occurred attempting to store application_credential - Duplicate entry found with name {}.",
            new.name
        )));
    }
    Ok(t.put(ApplicationCredential {
        id: new.id,
        name: new.name,
        description: new.description,
        user_id,
        project_id: new.project_id,
        secret_hash: new.secret_hash,
        expires_at: new.expires_at,
        roles,
        unrestricted: new.unrestricted,
        access_rules: rule_ids,
    })?)
}

/// Deletes an application credential of `user_id` and revokes the tokens made with it.
pub fn delete(t: &mut Txn, user_id: &str, id: &str) -> Result<()> {
    t.m.application_credentials
        .get(id)
        .filter(|a| a.user_id == user_id)
        .ok_or_else(|| Error::not_found("application credential", id))?;
    t.delete::<ApplicationCredential>(id);
    t.revoke(RevocationEvent { application_credential_id: Some(id.to_string()), ..Default::default() });
    Ok(())
}

/// Deletes an access rule of `user_id` that no application credential uses.
pub fn delete_access_rule(t: &mut Txn, user_id: &str, id: &str) -> Result<()> {
    t.m.access_rules.get(id).filter(|r| r.user_id == user_id).ok_or_else(|| Error::not_found("access rule", id))?;
    if t.m.application_credentials.values().any(|a| a.access_rules.iter().any(|r| r == id)) {
        return Err(Error::Forbidden(format!("Access rule {id} is still used by an application credential.")));
    }
    t.delete::<AccessRule>(id);
    Ok(())
}
