//! Domain-specific configuration (`/v3/domains/{id}/config`): the `identity` and `ldap`
//! groups an operator may set per domain, and the defaults behind them.
//!
//! haneul keeps every domain's users in its own database today; the configuration is stored
//! and served as Keystone does so that tools managing it work, and is the place an LDAP
//! backend would read from.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::http::Json as Body;
use haneul_core::routes::{target, Routes};
use haneul_core::ApiError;
use serde_json::{json, Value};

use super::{enforce, no_content, not_found, ApiResult, Ctx};
use crate::service;
use crate::service::domain_config::{
    allowed, check, defaults, group_of, stored, unsupported_group, unsupported_option, visible, Config,
};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/domains/config/default", target("identity:get_domain_config_default"), default_all)
        .get("/domains/config/{group}/default", target("identity:get_domain_config_default"), default_group)
        .get("/domains/config/{group}/{option}/default", target("identity:get_domain_config_default"), default_option)
        .get("/domains/{id}/config", target("identity:get_domain_config"), show)
        .put("/domains/{id}/config", target("identity:create_domain_config"), create)
        .patch("/domains/{id}/config", target("identity:update_domain_config"), update)
        .delete("/domains/{id}/config", target("identity:delete_domain_config"), delete)
        .get("/domains/{id}/config/{group}", target("identity:get_domain_config"), show_group)
        .patch("/domains/{id}/config/{group}", target("identity:update_domain_config"), update_group)
        .delete("/domains/{id}/config/{group}", target("identity:delete_domain_config"), delete_group)
        .get("/domains/{id}/config/{group}/{option}", target("identity:get_domain_config"), show_option)
        .patch("/domains/{id}/config/{group}/{option}", target("identity:update_domain_config"), update_option)
        .delete("/domains/{id}/config/{group}/{option}", target("identity:delete_domain_config"), delete_option)
}

fn config_body(body: Value) -> ApiResult<Config> {
    match body {
        Value::Object(mut m) => match m.remove("config") {
            Some(Value::Object(c)) => Ok(c),
            _ => Err(ApiError::bad_request("'config' is a required property and must be an object.")),
        },
        _ => Err(ApiError::bad_request("The request body must be a JSON object.")),
    }
}

async fn default_all(State(ident): State<Ctx>, auth: Auth) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config_default", &json!({}))?;
    Ok(Json(json!({"config": {"identity": defaults("identity"), "ldap": defaults("ldap")}})).into_response())
}

async fn default_group(State(ident): State<Ctx>, auth: Auth, Path(group): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config_default", &json!({}))?;
    let d = defaults(&group).ok_or_else(|| unsupported_group(&group))?;
    Ok(Json(json!({"config": {group: d}})).into_response())
}

async fn default_option(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((group, option)): Path<(String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config_default", &json!({}))?;
    let d = defaults(&group).ok_or_else(|| unsupported_group(&group))?;
    let v = d.get(&option).ok_or_else(|| unsupported_option(&group, &option))?;
    Ok(Json(json!({"config": {option: v}})).into_response())
}

async fn show(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config", &json!({}))?;
    Ok(Json(json!({"config": visible(&stored(&ident.model(), &id)?)})).into_response())
}

async fn create(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_domain_config", &json!({}))?;
    let config = config_body(body)?;
    check(&config)?;
    if config.is_empty() {
        return Err(ApiError::bad_request("Invalid input for field 'config': it must not be empty."));
    }
    let existed = ident.write(|t| service::domain_config::create(t, &id, config.clone())).await?;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(json!({"config": visible(&config)}))).into_response())
}

async fn update(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_domain_config", &json!({}))?;
    let patch = config_body(body)?;
    check(&patch)?;
    let config = ident.write(|t| service::domain_config::update(t, &id, patch)).await?;
    Ok(Json(json!({"config": visible(&config)})).into_response())
}

async fn delete(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_domain_config", &json!({}))?;
    ident.write(|t| service::domain_config::delete(t, &id)).await?;
    Ok(no_content())
}

async fn show_group(State(ident): State<Ctx>, auth: Auth, Path((id, group)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config", &json!({}))?;
    let config = visible(&stored(&ident.model(), &id)?);
    let g = group_of(&config, &id, &group)?;
    Ok(Json(json!({"config": {group: g}})).into_response())
}

async fn update_group(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((id, group)): Path<(String, String)>,
    Body(body): Body<Value>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_domain_config", &json!({}))?;
    let patch = config_body(body)?;
    if patch.keys().any(|g| g != &group) {
        return Err(ApiError::bad_request(format!("The body may only change group {group}.")));
    }
    check(&patch)?;
    let config = ident.write(|t| service::domain_config::update_group(t, &id, &group, patch)).await?;
    Ok(Json(json!({"config": visible(&config)})).into_response())
}

async fn delete_group(State(ident): State<Ctx>, auth: Auth, Path((id, group)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_domain_config", &json!({}))?;
    ident.write(|t| service::domain_config::delete_group(t, &id, &group)).await?;
    Ok(no_content())
}

async fn show_option(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((id, group, option)): Path<(String, String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config", &json!({}))?;
    let config = visible(&stored(&ident.model(), &id)?);
    let g = group_of(&config, &id, &group)?;
    let v = g.get(&option).ok_or_else(|| not_found("domain config option", &format!("{group}.{option} of {id}")))?;
    Ok(Json(json!({"config": {option: v}})).into_response())
}

async fn update_option(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((id, group, option)): Path<(String, String, String)>,
    Body(body): Body<Value>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_domain_config", &json!({}))?;
    let patch = config_body(body)?;
    if patch.len() != 1 || !patch.contains_key(&option) {
        return Err(ApiError::bad_request(format!("The body may only change option {option}.")));
    }
    if !allowed(&group, &option) {
        return Err(unsupported_option(&group, &option).into());
    }
    let patch: Config = [(group.clone(), Value::Object(patch))].into_iter().collect();
    let config = ident.write(|t| service::domain_config::update_group(t, &id, &group, patch)).await?;
    Ok(Json(json!({"config": visible(&config)})).into_response())
}

async fn delete_option(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((id, group, option)): Path<(String, String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_domain_config", &json!({}))?;
    ident.write(|t| service::domain_config::delete_option(t, &id, &group, &option)).await?;
    Ok(no_content())
}
