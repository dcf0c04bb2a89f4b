//! `/v3/OS-TRUST/trusts`: a trustor delegates roles on a project to a trustee, who then
//! authenticates with `scope: {"OS-TRUST:trust": {"id": ...}}`.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use haneul_core::auth::Auth;
use haneul_core::http::Json as Body;
use haneul_core::routes::{target as asks, Access, Routes};
use haneul_core::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{created, enforce, list_response, member, no_content, not_found, parse, self_link, ApiResult, Ctx, Params};
use crate::model::{Model, Trust};
use crate::service::trusts::NewTrust;
use crate::service::{self, parse_expiry, RoleRef};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get(
            "/OS-TRUST/trusts",
            Access::TargetAny(&[
                "identity:list_trusts_for_trustor",
                "identity:list_trusts_for_trustee",
                "identity:list_trusts",
            ]),
            list,
        )
        .post("/OS-TRUST/trusts", asks("identity:create_trust"), create)
        .get(
            "/OS-TRUST/trusts/",
            Access::TargetAny(&[
                "identity:list_trusts_for_trustor",
                "identity:list_trusts_for_trustee",
                "identity:list_trusts",
            ]),
            list,
        )
        .post("/OS-TRUST/trusts/", asks("identity:create_trust"), create)
        .get("/OS-TRUST/trusts/{id}", asks("identity:get_trust"), show)
        .delete("/OS-TRUST/trusts/{id}", asks("identity:delete_trust"), delete)
        .get("/OS-TRUST/trusts/{id}/roles", asks("identity:list_roles_for_trust"), list_roles)
        .get("/OS-TRUST/trusts/{id}/roles/{role_id}", asks("identity:get_role_for_trust"), show_role)
        .head("/OS-TRUST/trusts/{id}/roles/{role_id}", asks("identity:get_role_for_trust"), check_role)
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn render(ident: &Ctx, m: &Model, t: &Trust) -> Value {
    let roles: Vec<Value> =
        t.roles.iter().filter_map(|r| m.roles.get(r)).map(|r| super::roles::render(ident, r)).collect();
    json!({
        "id": t.id, "trustor_user_id": t.trustor_user_id, "trustee_user_id": t.trustee_user_id,
        "project_id": t.project_id, "impersonation": t.impersonation, "expires_at": t.expires_at.map(ts),
        "remaining_uses": t.remaining_uses, "allow_redelegation": t.allow_redelegation,
        "redelegation_count": t.redelegation_count, "redelegated_trust_id": t.redelegated_trust_id,
        "roles": roles,
        "roles_links": {"self": format!("{}/v3/OS-TRUST/trusts/{}/roles", ident.settings.public_url, t.id), "previous": null, "next": null},
        "links": self_link(ident, &format!("OS-TRUST/trusts/{}", t.id)),
    })
}

fn target(t: &Trust) -> Value {
    json!({"target": {"trust": {"id": t.id, "trustor_user_id": t.trustor_user_id, "trustee_user_id": t.trustee_user_id}}})
}

#[derive(Deserialize)]
struct TrustBody {
    trustor_user_id: String,
    trustee_user_id: String,
    #[serde(default)]
    project_id: Option<String>,
    impersonation: bool,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    remaining_uses: Option<i64>,
    #[serde(default)]
    roles: Vec<RoleRef>,
    #[serde(default)]
    allow_redelegation: Option<bool>,
}

async fn create(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    let b: TrustBody = parse("trust", member(body, "trust")?)?;
    enforce(
        &ident,
        &auth.0,
        "identity:create_trust",
        &json!({"target": {"trust": {"trustor_user_id": b.trustor_user_id}}}),
    )?;
    if auth.0.trust_id.is_some() {
        return Err(ApiError::forbidden("Redelegation of trusts is not supported."));
    }
    let expires_at = match &b.expires_at {
        None => None,
        Some(s) => Some(parse_expiry(Some(s)).ok_or_else(|| {
            ApiError::bad_request(format!("Invalid input for field 'expires_at': '{s}' is not a date and time."))
        })?),
    };
    if b.remaining_uses.is_some_and(|n| n <= 0) {
        return Err(ApiError::bad_request(
            "Invalid input for field 'remaining_uses': must be a positive integer or null.",
        ));
    }
    let new = NewTrust {
        trustor_user_id: b.trustor_user_id,
        trustee_user_id: b.trustee_user_id,
        project_id: b.project_id,
        impersonation: b.impersonation,
        expires_at,
        remaining_uses: b.remaining_uses,
        roles: b.roles,
        allow_redelegation: b.allow_redelegation.unwrap_or(false),
    };
    let saved = ident.write(|t| service::trusts::create(t, new)).await?;
    let m = ident.model();
    Ok(created(json!({"trust": render(&ident, &m, &saved)})))
}

async fn list(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    let trustor = params.get("trustor_user_id");
    let trustee = params.get("trustee_user_id");
    match (trustor, trustee) {
        (Some(u), _) => enforce(
            &ident,
            &auth.0,
            "identity:list_trusts_for_trustor",
            &json!({"target": {"trust": {"trustor_user_id": u}}}),
        )?,
        (None, Some(u)) => enforce(
            &ident,
            &auth.0,
            "identity:list_trusts_for_trustee",
            &json!({"target": {"trust": {"trustee_user_id": u}}}),
        )?,
        (None, None) => enforce(&ident, &auth.0, "identity:list_trusts", &json!({}))?,
    }
    let m = ident.model();
    let now = Utc::now();
    let items = m
        .trusts
        .values()
        .filter(|t| trustor.is_none_or(|u| &t.trustor_user_id == u))
        .filter(|t| trustee.is_none_or(|u| &t.trustee_user_id == u))
        .filter(|t| t.expires_at.is_none_or(|e| e > now))
        .map(|t| render(&ident, &m, t))
        .collect();
    Ok(list_response(&ident, "trusts", items, "OS-TRUST/trusts"))
}

fn find(ident: &Ctx, auth: &Auth, id: &str, rule: &str) -> ApiResult<Trust> {
    let m = ident.model();
    let t = m.trusts.get(id).ok_or_else(|| not_found("trust", id))?;
    enforce(ident, &auth.0, rule, &target(t))?;
    if t.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(not_found("trust", id));
    }
    Ok((**t).clone())
}

async fn show(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    let t = find(&ident, &auth, &id, "identity:get_trust")?;
    let m = ident.model();
    Ok(Json(json!({"trust": render(&ident, &m, &t)})).into_response())
}

async fn delete(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    {
        let m = ident.model();
        let t = m.trusts.get(&id).ok_or_else(|| not_found("trust", &id))?;
        enforce(&ident, &auth.0, "identity:delete_trust", &target(t))?;
    }
    ident.write(|t| service::trusts::delete(t, &id)).await?;
    Ok(no_content())
}

async fn list_roles(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    let t = find(&ident, &auth, &id, "identity:list_roles_for_trust")?;
    let m = ident.model();
    let items = t.roles.iter().filter_map(|r| m.roles.get(r)).map(|r| super::roles::render(&ident, r)).collect();
    Ok(list_response(&ident, "roles", items, &format!("OS-TRUST/trusts/{id}/roles")))
}

async fn show_role(State(ident): State<Ctx>, auth: Auth, Path((id, role_id)): Path<(String, String)>) -> ApiResult {
    let t = find(&ident, &auth, &id, "identity:get_role_for_trust")?;
    if !t.roles.contains(&role_id) {
        return Err(not_found("role", &role_id));
    }
    let m = ident.model();
    let r = m.roles.get(&role_id).ok_or_else(|| not_found("role", &role_id))?;
    Ok(Json(json!({"role": super::roles::render(&ident, r)})).into_response())
}

async fn check_role(State(ident): State<Ctx>, auth: Auth, Path((id, role_id)): Path<(String, String)>) -> ApiResult {
    let t = find(&ident, &auth, &id, "identity:get_role_for_trust")?;
    if !t.roles.contains(&role_id) {
        return Err(not_found("role", &role_id));
    }
    Ok(axum::http::StatusCode::OK.into_response())
}
