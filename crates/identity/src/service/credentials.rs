//! Credentials of users, the EC2-style access/secret pairs among them.

use std::sync::Arc;

use super::{Error, Result, Txn};
use crate::model::{Credential, Extra};

/// Stores a new credential of an existing user under a free id (an EC2 credential's id is
/// the hash of its access key).
pub fn create(t: &mut Txn, c: Credential) -> Result<Arc<Credential>> {
    if !t.m.users.contains_key(&c.user_id) {
        return Err(Error::not_found("user", c.user_id.clone()));
    }
    if t.m.credentials.contains_key(&c.id) {
        return Err(Error::Conflict(format!(
            "Conflict occurred attempting to store credential - Duplicate ID, {}.",
            c.id
        )));
    }
    Ok(t.put(c)?)
}

/// The attributes a credential update may change; `None` leaves one as it is.
#[derive(Default)]
pub struct CredentialPatch {
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub kind: Option<String>,
    pub blob: Option<String>,
    /// Merged into the attributes Keystone does not know.
    pub extra: Extra,
}

pub fn update(t: &mut Txn, id: &str, patch: CredentialPatch) -> Result<Arc<Credential>> {
    let mut c = t.edit(&t.m.credentials, "credential", id)?;
    if let Some(u) = patch.user_id {
        c.user_id = u;
    }
    if patch.project_id.is_some() {
        c.project_id = patch.project_id;
    }
    if let Some(k) = patch.kind {
        c.kind = k;
    }
    if let Some(bl) = patch.blob {
        c.blob = bl;
    }
    c.extra.extend(patch.extra);
    Ok(t.put(c)?)
}

pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    t.delete::<Credential>(id).ok_or_else(|| Error::not_found("credential", id))?;
    Ok(())
}

/// Stores a new EC2 credential of an existing user for an existing project.
pub fn create_ec2(t: &mut Txn, c: Credential) -> Result<Arc<Credential>> {
    if !t.m.users.contains_key(&c.user_id) {
        return Err(Error::not_found("user", c.user_id.clone()));
    }
    if let Some(p) = c.project_id.as_ref().filter(|p| !t.m.projects.contains_key(*p)) {
        return Err(Error::not_found("project", p.clone()));
    }
    Ok(t.put(c)?)
}

/// Deletes the EC2 credential `id` (whose access key is `access`) of `user_id`.
pub fn delete_ec2(t: &mut Txn, user_id: &str, id: &str, access: &str) -> Result<()> {
    t.m.credentials
        .get(id)
        .filter(|c| c.user_id == user_id && c.kind == "ec2")
        .ok_or_else(|| Error::not_found("credential", access))?;
    t.delete::<Credential>(id);
    Ok(())
}
