//! RBAC policies (`/v2.0/rbac-policies`): a network's owner shares it with one project
//! (`access_as_shared`), or an admin with every project (`*`, the same as `shared: true`);
//! `access_as_external` makes a network usable as an external one by a project. The
//! wildcard policies and the networks' `shared` flag are kept in step in both directions.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Value};

use super::{
    bad, created, is_admin, list_response, one_member, require_owner, show_response, ApiResult, Ctx, ListQuery,
};
use crate::model::RbacPolicy;
use crate::service::rbac::{self, find, visible, NewPolicy};
use crate::service::{not_found, Error};

const ACTIONS: &[&str] = &["access_as_shared", "access_as_external"];

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/rbac-policies", rule("get_rbac_policy"), list)
        .post("/rbac-policies", rule("create_rbac_policy"), create)
        .get("/rbac-policies/{id}", rule("get_rbac_policy"), show)
        .put("/rbac-policies/{id}", rule("update_rbac_policy"), update)
        .delete("/rbac-policies/{id}", rule("delete_rbac_policy"), delete)
}

fn render(p: &RbacPolicy) -> Value {
    json!({
        "id": p.id,
        "project_id": p.project_id,
        "tenant_id": p.project_id,
        "object_type": p.object_type,
        "object_id": p.object_id,
        "action": p.action,
        "target_tenant": p.target_tenant,
        "target_project": p.target_tenant,
    })
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    let items = m.rbac.values().filter(|p| visible(&ctx, p)).map(|p| render(p)).collect();
    list_response(&c, items, &q, "rbac_policies", &[])
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let m = c.model();
    Ok(show_response("rbac_policy", render(find(&m, &ctx, &id)?), &q))
}

/// A target project: a project id or `*` (only an admin shares with everyone).
fn target(ctx: &AuthContext, v: Option<String>) -> ApiResult<String> {
    let t = v.ok_or_else(|| bad("Failed to parse request. Required attribute 'target_tenant' not specified"))?;
    if t.is_empty() {
        return Err(bad("Invalid input for target_tenant. Reason: '' is too short."));
    }
    if t == "*" && !is_admin(ctx) {
        return Err(Error::Forbidden(
            "PolicyNotAuthorized",
            "(rule:create_rbac_policy:target_tenant) is disallowed by policy".into(),
        )
        .into());
    }
    Ok(t)
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let a = one_member(&body, "rbac_policy", "rbac_policies")?;
    a.only(&["object_type", "object_id", "action", "target_tenant", "target_project", "project_id", "tenant_id"])?;
    let object_type = a
        .str("object_type", 255)?
        .ok_or_else(|| bad("Failed to parse request. Required attribute 'object_type' not specified"))?;
    if object_type != "network" {
        return Err(bad(format!("Invalid input for object_type. Reason: '{object_type}' is not in ['network'].")));
    }
    let object_id = a
        .str("object_id", 36)?
        .ok_or_else(|| bad("Failed to parse request. Required attribute 'object_id' not specified"))?;
    let action = a
        .str("action", 255)?
        .ok_or_else(|| bad("Failed to parse request. Required attribute 'action' not specified"))?;
    if !ACTIONS.contains(&action.as_str()) {
        return Err(bad(format!("Invalid input for action. Reason: '{action}' is not in {ACTIONS:?}.")));
    }
    let target_tenant = target(&ctx, a.str("target_tenant", 255)?.or(a.str("target_project", 255)?))?;
    let owner = a.owner(&ctx)?;
    let new = NewPolicy { project_id: owner, object_type, object_id, action, target_tenant };
    let id = c.write(|t| rbac::create(t, &ctx, new)).await?;
    let m = c.model();
    let p = m.rbac.get(&id).ok_or_else(|| not_found("RbacPolicyNotFound", "RBAC policy", &id))?;
    Ok(created("rbac_policy", "rbac_policies", vec![render(p)], false))
}

async fn update(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let a = one_member(&body, "rbac_policy", "rbac_policies")?;
    a.only(&["target_tenant", "target_project"])?;
    let new_target = target(&ctx, a.str("target_tenant", 255)?.or(a.str("target_project", 255)?))?;
    {
        let m = c.model();
        let p = find(&m, &ctx, &id)?;
        require_owner(&ctx, &p.project_id, "update_rbac_policy")?;
    }
    c.write(|t| rbac::retarget(t, &id, new_target)).await?;
    let m = c.model();
    Ok(show_response("rbac_policy", render(find(&m, &ctx, &id)?), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    {
        let m = c.model();
        let p = find(&m, &ctx, &id)?;
        require_owner(&ctx, &p.project_id, "delete_rbac_policy")?;
    }
    c.write(|t| rbac::delete(t, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
