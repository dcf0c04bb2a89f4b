//! Application credentials (`/v3/users/{id}/application_credentials`) and their access rules
//! (`/v3/users/{id}/access_rules`).

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::http::Json as Body;
use haneul_core::routes::{target, Routes};
use haneul_core::ApiError;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{created, enforce, list_response, member, no_content, not_found, parse, self_link, ApiResult, Ctx, Params};
use crate::model::{AccessRule, ApplicationCredential, Model};
use crate::service::appcreds::{AccessRuleRef, NewAppCred};
use crate::service::{self, new_id, parse_expiry, RoleRef};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/users/{user_id}/application_credentials", target("identity:list_application_credentials"), list)
        .post("/users/{user_id}/application_credentials", target("identity:create_application_credential"), create)
        .get("/users/{user_id}/application_credentials/{id}", target("identity:get_application_credential"), show)
        .delete(
            "/users/{user_id}/application_credentials/{id}",
            target("identity:delete_application_credential"),
            delete,
        )
        .get("/users/{user_id}/access_rules", target("identity:list_access_rules"), list_rules)
        .get("/users/{user_id}/access_rules/{id}", target("identity:get_access_rule"), show_rule)
        .delete("/users/{user_id}/access_rules/{id}", target("identity:delete_access_rule"), delete_rule)
}

fn render_rule(r: &AccessRule) -> Value {
    json!({"id": r.id, "path": r.path, "method": r.method, "service": r.service})
}

fn render(ident: &Ctx, m: &Model, a: &ApplicationCredential) -> Value {
    let roles: Vec<Value> = a
        .roles
        .iter()
        .filter_map(|r| m.roles.get(r))
        .map(|r| json!({"id": r.id, "name": r.name, "domain_id": r.domain_id}))
        .collect();
    let rules: Vec<Value> =
        a.access_rules.iter().filter_map(|r| m.access_rules.get(r)).map(|r| render_rule(r)).collect();
    json!({
        "id": a.id, "name": a.name, "description": a.description, "user_id": a.user_id,
        "project_id": a.project_id, "roles": roles, "unrestricted": a.unrestricted,
        "expires_at": a.expires_at, "access_rules": rules,
        "links": self_link(ident, &format!("users/{}/application_credentials/{}", a.user_id, a.id)),
    })
}

/// The top-level `user_id` Keystone's owner rules compare with the caller.
fn owner_target(user_id: &str) -> Value {
    json!({"user_id": user_id, "target": {"user": {"id": user_id}}})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    roles: Option<Vec<RoleRef>>,
    #[serde(default)]
    unrestricted: Option<bool>,
    #[serde(default)]
    access_rules: Option<Vec<AccessRuleRef>>,
}

/// Application credentials come only from a user's own project-scoped, unrestricted token.
fn check_creator(ctx: &AuthContext, user_id: &str) -> ApiResult<String> {
    if ctx.user.id != user_id {
        return Err(ApiError::forbidden("Application credentials can only be created for yourself."));
    }
    if ctx.trust_id.is_some() {
        return Err(ApiError::forbidden("A trust-scoped token cannot create application credentials."));
    }
    ctx.project_id()
        .map(str::to_string)
        .ok_or_else(|| ApiError::forbidden("A project-scoped token is needed to create an application credential."))
}

async fn create(
    State(ident): State<Ctx>,
    auth: Auth,
    Path(user_id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_application_credential", &owner_target(&user_id))?;
    let b: CreateBody = parse("application_credential", member(body, "application_credential")?)?;
    super::check_name("name", &b.name, 255)?;
    let project_id = check_creator(&auth.0, &user_id)?;
    if let Some(ac_id) = &auth.0.application_credential_id {
        let m = ident.model();
        if !m.application_credentials.get(ac_id).is_some_and(|a| a.unrestricted) {
            return Err(ApiError::forbidden(
                "A restricted application credential cannot create application credentials.",
            ));
        }
    }
    if b.expires_at.is_some() && parse_expiry(b.expires_at.as_deref()).is_none() {
        return Err(ApiError::bad_request("Invalid input for field 'expires_at': not a date and time."));
    }
    let secret = b.secret.unwrap_or_else(|| {
        let mut raw = [0u8; 48];
        rand::thread_rng().fill_bytes(&mut raw);
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw)
    });
    let new = NewAppCred {
        id: new_id(),
        name: b.name,
        description: b.description,
        user_id,
        project_id,
        secret_hash: ident.hash_password(secret.clone()).await?,
        expires_at: b.expires_at,
        roles: b.roles,
        token_roles: auth.0.roles.iter().map(|r| r.id.clone()).collect(),
        unrestricted: b.unrestricted.unwrap_or(false),
        access_rules: b.access_rules.unwrap_or_default(),
    };
    let saved = ident.write(|t| service::appcreds::create(t, new)).await?;
    let m = ident.model();
    let mut v = render(&ident, &m, &saved);
    v["secret"] = json!(secret);
    Ok(created(json!({"application_credential": v})))
}

async fn list(State(ident): State<Ctx>, auth: Auth, Path(user_id): Path<String>, params: Params) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_application_credentials", &owner_target(&user_id))?;
    let m = ident.model();
    if !m.users.contains_key(&user_id) {
        return Err(not_found("user", &user_id));
    }
    let items = m
        .application_credentials
        .values()
        .filter(|a| a.user_id == user_id)
        .filter(|a| params.get("name").is_none_or(|n| &a.name == n))
        .map(|a| render(&ident, &m, a))
        .collect();
    Ok(list_response(&ident, "application_credentials", items, &format!("users/{user_id}/application_credentials")))
}

async fn show(State(ident): State<Ctx>, auth: Auth, Path((user_id, id)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_application_credential", &owner_target(&user_id))?;
    let m = ident.model();
    let a = m
        .application_credentials
        .get(&id)
        .filter(|a| a.user_id == user_id)
        .ok_or_else(|| not_found("application credential", &id))?;
    Ok(Json(json!({"application_credential": render(&ident, &m, a)})).into_response())
}

async fn delete(State(ident): State<Ctx>, auth: Auth, Path((user_id, id)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_application_credential", &owner_target(&user_id))?;
    if let Some(ac_id) = &auth.0.application_credential_id {
        let m = ident.model();
        if !m.application_credentials.get(ac_id).is_some_and(|a| a.unrestricted) {
            return Err(ApiError::forbidden(
                "A restricted application credential cannot delete application credentials.",
            ));
        }
    }
    ident.write(|t| service::appcreds::delete(t, &user_id, &id)).await?;
    Ok(no_content())
}

// ----------------------------------------------------------------------------- access rules

fn rule_links(ident: &Ctx, r: &AccessRule) -> Value {
    let mut v = render_rule(r);
    v["links"] = self_link(ident, &format!("users/{}/access_rules/{}", r.user_id, r.id));
    v
}

async fn list_rules(State(ident): State<Ctx>, auth: Auth, Path(user_id): Path<String>, params: Params) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_access_rules", &owner_target(&user_id))?;
    let m = ident.model();
    let items = m
        .access_rules
        .values()
        .filter(|r| r.user_id == user_id)
        .filter(|r| params.get("service").is_none_or(|s| &r.service == s))
        .filter(|r| params.get("path").is_none_or(|s| &r.path == s))
        .filter(|r| params.get("method").is_none_or(|s| &r.method == s))
        .map(|r| rule_links(&ident, r))
        .collect();
    Ok(list_response(&ident, "access_rules", items, &format!("users/{user_id}/access_rules")))
}

async fn show_rule(State(ident): State<Ctx>, auth: Auth, Path((user_id, id)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_access_rule", &owner_target(&user_id))?;
    let m = ident.model();
    let r = m.access_rules.get(&id).filter(|r| r.user_id == user_id).ok_or_else(|| not_found("access rule", &id))?;
    Ok(Json(json!({"access_rule": rule_links(&ident, r)})).into_response())
}

async fn delete_rule(State(ident): State<Ctx>, auth: Auth, Path((user_id, id)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_access_rule", &owner_target(&user_id))?;
    ident.write(|t| service::appcreds::delete_access_rule(t, &user_id, &id)).await?;
    Ok(no_content())
}
