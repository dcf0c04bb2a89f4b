//! `/v3/auth/*`: issuing, validating and revoking tokens; what a token may reach.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use haneul_core::auth::{Auth, Scope};
use haneul_core::error::ApiError;
use haneul_core::routes::{target, Access, Routes};
use serde_json::{json, Value};

use super::catalog::catalog_for;
use super::{enforce, list_response, ApiResult, Ctx, Params};
use crate::model::TargetKind;
use crate::service::{effective_assignments, RoleTarget};
use crate::service::{AuthRequest, ValidToken};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/auth/tokens", target("identity:validate_token"), validate)
        .head("/auth/tokens", target("identity:validate_token"), check)
        .post("/auth/tokens", Access::Public("token issue: the credentials in the body authenticate"), issue)
        .delete("/auth/tokens", target("identity:revoke_token"), revoke)
        .get("/auth/catalog", target("identity:get_auth_catalog"), auth_catalog)
        .get("/auth/projects", target("identity:get_auth_projects"), auth_projects)
        .get("/auth/domains", target("identity:get_auth_domains"), auth_domains)
        .get("/auth/system", target("identity:get_auth_system"), auth_system)
}

/// Keystone's timestamp format: microseconds and a `Z`.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The token body Keystone returns from issue and validate.
pub fn render_token(ident: &Ctx, vt: &ValidToken, with_catalog: bool) -> Value {
    let c = &vt.ctx;
    let mut t = json!({
        "methods": c.methods,
        "user": {
            "id": c.user.id,
            "name": c.user.name,
            "domain": {"id": c.user_domain.id, "name": c.user_domain.name},
            "password_expires_at": vt.password_expires_at.map(ts),
        },
        "audit_ids": c.audit_ids,
        "expires_at": ts(c.expires_at),
        "issued_at": ts(c.issued_at),
    });
    let roles: Vec<Value> = c.roles.iter().map(|r| json!({"id": r.id, "name": r.name})).collect();
    match &c.scope {
        Scope::Unscoped => {}
        Scope::Project { project, domain } => {
            t["project"] =
                json!({"id": project.id, "name": project.name, "domain": {"id": domain.id, "name": domain.name}});
            t["is_domain"] = json!(false);
            t["roles"] = json!(roles);
        }
        Scope::Domain(d) => {
            t["domain"] = json!({"id": d.id, "name": d.name});
            t["roles"] = json!(roles);
        }
        Scope::System => {
            t["system"] = json!({"all": true});
            t["roles"] = json!(roles);
        }
    }
    if let Some(ac) = &vt.app_cred {
        t["application_credential"] = json!({"id": ac.id, "name": ac.name, "restricted": !ac.unrestricted});
    }
    if let Some(tr) = &vt.trust {
        t["OS-TRUST:trust"] = json!({
            "id": tr.id, "impersonation": tr.impersonation,
            "trustee_user": {"id": tr.trustee_user_id}, "trustor_user": {"id": tr.trustor_user_id},
        });
    }
    if with_catalog && c.scope != Scope::Unscoped {
        let m = ident.model();
        t["catalog"] = json!(catalog_for(&m, c.project_id()));
    }
    json!({"token": t})
}

fn wants_catalog(params: &Params) -> bool {
    !params.contains_key("nocatalog")
}

async fn issue(
    State(ident): State<Ctx>,
    params: Params,
    haneul_core::http::Json(req): haneul_core::http::Json<AuthRequest>,
) -> ApiResult {
    let (method, scope) = req.parse()?;
    let issued = ident.issue_token(method, scope).await?;
    let body = render_token(&ident, &issued.token, wants_catalog(&params));
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&issued.id) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    Ok(resp)
}

/// Validates `X-Subject-Token` on behalf of the caller.
fn subject(
    ident: &Ctx,
    auth: &Auth,
    headers: &HeaderMap,
    params: &Params,
) -> ApiResult<(String, std::sync::Arc<ValidToken>)> {
    let token = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("X-Subject-Token is required."))?
        .to_string();
    let allow_expired = params.get("allow_expired").is_some_and(|v| super::query_bool(v));
    // As Keystone: an invalid subject token is a 404 before any policy check.
    let vt = ident
        .validate_token(&token, allow_expired)
        .map_err(|_| ApiError::not_found("Could not find token: the token is invalid, expired or revoked."))?;
    let target = json!({"target": {"token": {"user_id": vt.ctx.user.id}}});
    enforce(ident, &auth.0, "identity:validate_token", &target)?;
    Ok((token, vt))
}

async fn validate(State(ident): State<Ctx>, auth: Auth, headers: HeaderMap, params: Params) -> ApiResult {
    let (token, vt) = subject(&ident, &auth, &headers, &params)?;
    let with_catalog = wants_catalog(&params);
    let body = vt.rendered[usize::from(with_catalog)]
        .get_or_init(|| serde_json::to_vec(&render_token(&ident, &vt, with_catalog)).unwrap_or_default())
        .clone();
    let mut resp = ([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&token) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    Ok(resp)
}

async fn check(State(ident): State<Ctx>, auth: Auth, headers: HeaderMap, params: Params) -> ApiResult {
    let (token, _) = subject(&ident, &auth, &headers, &params)?;
    let mut resp = StatusCode::OK.into_response();
    if let Ok(v) = HeaderValue::from_str(&token) {
        resp.headers_mut().insert("x-subject-token", v);
    }
    Ok(resp)
}

async fn revoke(State(ident): State<Ctx>, auth: Auth, headers: HeaderMap) -> ApiResult {
    let token = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("X-Subject-Token is required."))?;
    let vt = ident
        .validate_token(token, false)
        .map_err(|_| ApiError::not_found("Could not find token: the token is invalid, expired or revoked."))?;
    enforce(&ident, &auth.0, "identity:revoke_token", &json!({"target": {"token": {"user_id": vt.ctx.user.id}}}))?;
    ident.revoke_token(&vt).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn auth_catalog(State(ident): State<Ctx>, auth: Auth) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_auth_catalog", &json!({}))?;
    if auth.0.scope == Scope::Unscoped {
        return Err(ApiError::forbidden("A catalog cannot be provided for an unscoped token."));
    }
    let m = ident.model();
    let catalog = catalog_for(&m, auth.0.project_id());
    Ok(Json(json!({"catalog": catalog, "links": {"self": format!("{}/v3/auth/catalog", ident.settings.public_url), "previous": null, "next": null}})).into_response())
}

async fn auth_projects(State(ident): State<Ctx>, auth: Auth) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_auth_projects", &json!({}))?;
    let m = ident.model();
    let user = &auth.0.user.id;
    let mut ids: Vec<String> = effective_assignments(&m)
        .into_iter()
        .filter(|e| &e.user_id == user && e.target_kind == TargetKind::Project)
        .map(|e| e.target_id)
        .collect();
    ids.sort();
    ids.dedup();
    let items = ids
        .iter()
        .filter_map(|id| m.projects.get(id))
        .filter(|p| p.enabled && !crate::service::roles_on(&m, user, RoleTarget::Project(&p.id)).is_empty())
        .map(|p| super::projects::render(&ident, p))
        .collect();
    Ok(list_response(&ident, "projects", items, "auth/projects"))
}

async fn auth_domains(State(ident): State<Ctx>, auth: Auth) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_auth_domains", &json!({}))?;
    let m = ident.model();
    let user = &auth.0.user.id;
    let items = m
        .domains
        .values()
        .filter(|d| d.enabled && !crate::service::roles_on(&m, user, RoleTarget::Domain(&d.id)).is_empty())
        .map(|d| super::domains::render(&ident, d))
        .collect();
    Ok(list_response(&ident, "domains", items, "auth/domains"))
}

async fn auth_system(State(ident): State<Ctx>, auth: Auth) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_auth_system", &json!({}))?;
    let m = ident.model();
    let has = !crate::service::roles_on(&m, &auth.0.user.id, RoleTarget::System).is_empty();
    let system = if has { vec![json!({"all": true})] } else { vec![] };
    Ok(Json(json!({"system": system, "links": {"self": format!("{}/v3/auth/system", ident.settings.public_url), "previous": null, "next": null}})).into_response())
}
