//! Who the caller is to a resource: its own project's, or an admin's.

use haneul_core::auth::AuthContext;

use super::{Error, Result};

/// The caller's project ("" for a token without one).
pub fn project_of(ctx: &AuthContext) -> String {
    ctx.project_id().unwrap_or_default().to_string()
}

pub fn is_admin(ctx: &AuthContext) -> bool {
    ctx.has_role("admin")
}

/// Whether the caller may act on a resource of `project_id`: its own, or as admin.
pub fn owns(ctx: &AuthContext, project_id: &str) -> bool {
    is_admin(ctx) || ctx.project_id() == Some(project_id)
}

/// Neutron's 403 when the caller is not the resource's project (nor admin) for `rule`.
pub fn require_owner(ctx: &AuthContext, project_id: &str, rule: &str) -> Result<()> {
    if owns(ctx, project_id) {
        Ok(())
    } else {
        Err(Error::Forbidden("PolicyNotAuthorized", format!("(rule:{rule}) is disallowed by policy")))
    }
}
