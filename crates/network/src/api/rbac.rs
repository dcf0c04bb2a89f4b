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
    bad, created, is_admin, list_response, one_member, owns, require_owner, show_response, ApiResult, Ctx, ListQuery,
};
use crate::model::{Model, RbacPolicy};
use crate::service::{check_quota, not_found, Error, Txn};

const ACTIONS: &[&str] = &["access_as_shared", "access_as_external"];

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/rbac-policies", rule("get_rbac_policy"), list)
        .post("/rbac-policies", rule("create_rbac_policy"), create)
        .get("/rbac-policies/{id}", rule("get_rbac_policy"), show)
        .put("/rbac-policies/{id}", rule("update_rbac_policy"), update)
        .delete("/rbac-policies/{id}", rule("delete_rbac_policy"), delete)
}

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
pub fn grant_all(t: &mut Txn, network_id: &str, owner: &str, action: &str) -> Result<(), Error> {
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

fn visible(ctx: &AuthContext, p: &RbacPolicy) -> bool {
    owns(ctx, &p.project_id)
}

fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a RbacPolicy, Error> {
    m.rbac
        .get(id)
        .map(|p| &**p)
        .filter(|p| visible(ctx, p))
        .ok_or_else(|| not_found("RbacPolicyNotFound", "RBAC policy", id))
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
    let id = c
        .write(|t| {
            // Only the network's owner (or an admin) shares it; others do not learn it exists.
            let n =
                t.m.networks
                    .get(&object_id)
                    .filter(|n| owns(&ctx, &n.project_id))
                    .cloned()
                    .ok_or_else(|| not_found("NetworkNotFound", "Network", &object_id))?;
            if t.m.rbac.values().any(|p| {
                p.object_type == object_type
                    && p.object_id == object_id
                    && p.action == action
                    && p.target_tenant == target_tenant
            }) {
                return Err(Error::Conflict(
                    "DuplicateRbacPolicy",
                    "An RBAC policy already exists with those values.".into(),
                ));
            }
            check_quota(&t.m, &owner, "rbac_policy", 1)?;
            let p = RbacPolicy {
                id: uuid::Uuid::new_v4().to_string(),
                project_id: owner.clone(),
                object_type,
                object_id: object_id.clone(),
                action: action.clone(),
                target_tenant: target_tenant.clone(),
            };
            let id = p.id.clone();
            t.put(p)?;
            if target_tenant == "*" {
                let mut n = (*n).clone();
                match action.as_str() {
                    "access_as_shared" => n.shared = true,
                    _ => n.external = true,
                }
                n.std.touch();
                t.put(n)?;
            }
            Ok(id)
        })
        .await?;
    let m = c.model();
    let p = m.rbac.get(&id).ok_or_else(|| not_found("RbacPolicyNotFound", "RBAC policy", &id))?;
    Ok(created("rbac_policy", "rbac_policies", vec![render(p)], false))
}

/// Whether projects the policy lets in (other than the network's owner) still use the
/// network: their ports on it, or (external) their floating IPs and router gateways.
fn in_use(m: &Model, p: &RbacPolicy) -> bool {
    let Some(n) = m.networks.get(&p.object_id) else { return false };
    let covered = |project: &str| project != n.project_id && (p.target_tenant == "*" || p.target_tenant == project);
    match p.action.as_str() {
        "access_as_shared" => {
            m.ports_of(&n.id).any(|port| covered(&port.project_id) && !crate::service::is_network_owned(port))
        }
        _ => m.floatingips.values().any(|f| f.floating_network_id == n.id && covered(&f.project_id)),
    }
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
    c.write(|t| {
        let mut p = t.edit(&t.m.rbac, "RBAC policy", &id)?;
        if p.target_tenant == new_target {
            return Ok(());
        }
        if in_use(&t.m, &p) {
            return Err(policy_in_use(&p));
        }
        if p.target_tenant == "*" || new_target == "*" {
            return Err(crate::service::invalid(
                "Updating a policy to or from the wildcard target is not supported; delete and create it.",
            ));
        }
        p.target_tenant = new_target.clone();
        t.put(p)?;
        Ok(())
    })
    .await?;
    let m = c.model();
    Ok(show_response("rbac_policy", render(find(&m, &ctx, &id)?), &[]))
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

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    {
        let m = c.model();
        let p = find(&m, &ctx, &id)?;
        require_owner(&ctx, &p.project_id, "delete_rbac_policy")?;
    }
    c.write(|t| {
        let p = t.edit(&t.m.rbac, "RBAC policy", &id)?;
        // Another policy that still lets the same projects in keeps the network usable.
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
        t.delete::<RbacPolicy>(&id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
