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
use serde_json::{json, Map, Value};

use super::{enforce, no_content, not_found, ApiResult, Ctx};
use crate::model::{Document, DomainConfig};
use crate::service::Error;

/// Options an operator may set, with Keystone's defaults.
const IDENTITY_DEFAULTS: &[(&str, &str)] = &[("driver", "\"sql\""), ("list_limit", "null")];
const LDAP_DEFAULTS: &[(&str, &str)] = &[
    ("url", "\"ldap://localhost\""),
    ("user", "null"),
    ("suffix", "\"cn=example,cn=com\""),
    ("query_scope", "\"one\""),
    ("page_size", "0"),
    ("alias_dereferencing", "\"default\""),
    ("debug_level", "null"),
    ("chase_referrals", "null"),
    ("user_tree_dn", "null"),
    ("user_filter", "null"),
    ("user_objectclass", "\"inetOrgPerson\""),
    ("user_id_attribute", "\"cn\""),
    ("user_name_attribute", "\"sn\""),
    ("user_description_attribute", "\"description\""),
    ("user_mail_attribute", "\"mail\""),
    ("user_pass_attribute", "\"userPassword\""),
    ("user_enabled_attribute", "\"enabled\""),
    ("user_enabled_invert", "false"),
    ("user_enabled_mask", "0"),
    ("user_enabled_default", "\"True\""),
    ("user_attribute_ignore", "[\"default_project_id\"]"),
    ("user_default_project_id_attribute", "null"),
    ("user_enabled_emulation", "false"),
    ("user_enabled_emulation_dn", "null"),
    ("user_enabled_emulation_use_group_config", "false"),
    ("user_additional_attribute_mapping", "[]"),
    ("group_tree_dn", "null"),
    ("group_filter", "null"),
    ("group_objectclass", "\"groupOfNames\""),
    ("group_id_attribute", "\"cn\""),
    ("group_name_attribute", "\"ou\""),
    ("group_member_attribute", "\"member\""),
    ("group_members_are_ids", "false"),
    ("group_desc_attribute", "\"description\""),
    ("group_attribute_ignore", "[]"),
    ("group_additional_attribute_mapping", "[]"),
    ("tls_cacertfile", "null"),
    ("tls_cacertdir", "null"),
    ("use_tls", "false"),
    ("tls_req_cert", "\"demand\""),
    ("use_pool", "true"),
    ("pool_size", "10"),
    ("pool_retry_max", "3"),
    ("pool_retry_delay", "0.1"),
    ("pool_connection_timeout", "-1"),
    ("pool_connection_lifetime", "600"),
    ("use_auth_pool", "true"),
    ("auth_pool_size", "100"),
    ("auth_pool_connection_lifetime", "60"),
];
/// Accepted but never shown back.
const SENSITIVE: &[(&str, &str)] = &[("ldap", "password")];

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

fn defaults(group: &str) -> Option<Map<String, Value>> {
    let table = match group {
        "identity" => IDENTITY_DEFAULTS,
        "ldap" => LDAP_DEFAULTS,
        _ => return None,
    };
    Some(table.iter().map(|(k, v)| (k.to_string(), serde_json::from_str(v).unwrap_or(Value::Null))).collect())
}

fn allowed(group: &str, option: &str) -> bool {
    defaults(group).is_some_and(|d| d.contains_key(option)) || SENSITIVE.contains(&(group, option))
}

fn invalid(msg: String) -> ApiError {
    ApiError::forbidden(format!("Invalid domain specific configuration: {msg}"))
}

/// Checks a whole configuration: known groups, known options, each group an object.
fn check(config: &Map<String, Value>) -> ApiResult<()> {
    for (group, opts) in config {
        let opts = opts.as_object().ok_or_else(|| {
            ApiError::bad_request(format!("Invalid input for field 'config/{group}': must be an object."))
        })?;
        if defaults(group).is_none() {
            return Err(invalid(format!("group {group} is not supported")));
        }
        for option in opts.keys() {
            if !allowed(group, option) {
                return Err(invalid(format!("option {option} in group {group} is not supported")));
            }
        }
    }
    Ok(())
}

/// The stored configuration without sensitive options.
fn visible(config: &Map<String, Value>) -> Map<String, Value> {
    let mut out = config.clone();
    for (group, option) in SENSITIVE {
        if let Some(Value::Object(g)) = out.get_mut(*group) {
            g.remove(*option);
        }
    }
    out
}

fn config_body(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(mut m) => match m.remove("config") {
            Some(Value::Object(c)) => Ok(c),
            _ => Err(ApiError::bad_request("'config' is a required property and must be an object.")),
        },
        _ => Err(ApiError::bad_request("The request body must be a JSON object.")),
    }
}

fn stored(ident: &Ctx, id: &str) -> ApiResult<Map<String, Value>> {
    let m = ident.model();
    if !m.domains.contains_key(id) {
        return Err(not_found("domain", id));
    }
    m.domain_configs.get(id).map(|d| d.0.body.clone()).ok_or_else(|| not_found("domain config", id))
}

async fn save(ident: &Ctx, id: &str, config: Map<String, Value>) -> ApiResult<()> {
    let id = id.to_string();
    ident
        .write(|t| {
            if !t.m.domains.contains_key(&id) {
                return Err(Error::not_found("domain", id.clone()));
            }
            if config.is_empty() {
                t.delete::<DomainConfig>(&id);
                Ok(())
            } else {
                Ok(t.put(DomainConfig(Document { id: id.clone(), uniq: None, body: config })).map(|_| ())?)
            }
        })
        .await?;
    Ok(())
}

async fn default_all(State(ident): State<Ctx>, auth: Auth) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config_default", &json!({}))?;
    Ok(Json(json!({"config": {"identity": defaults("identity"), "ldap": defaults("ldap")}})).into_response())
}

async fn default_group(State(ident): State<Ctx>, auth: Auth, Path(group): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config_default", &json!({}))?;
    let d = defaults(&group).ok_or_else(|| invalid(format!("group {group} is not supported")))?;
    Ok(Json(json!({"config": {group: d}})).into_response())
}

async fn default_option(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((group, option)): Path<(String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config_default", &json!({}))?;
    let d = defaults(&group).ok_or_else(|| invalid(format!("group {group} is not supported")))?;
    let v = d.get(&option).ok_or_else(|| invalid(format!("option {option} in group {group} is not supported")))?;
    Ok(Json(json!({"config": {option: v}})).into_response())
}

async fn show(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config", &json!({}))?;
    Ok(Json(json!({"config": visible(&stored(&ident, &id)?)})).into_response())
}

async fn create(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_domain_config", &json!({}))?;
    let config = config_body(body)?;
    check(&config)?;
    if config.is_empty() {
        return Err(ApiError::bad_request("Invalid input for field 'config': it must not be empty."));
    }
    let existed = ident.model().domain_configs.contains_key(&id);
    save(&ident, &id, config.clone()).await?;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(json!({"config": visible(&config)}))).into_response())
}

/// Merges `patch` (group → options) into `config`.
fn merge(config: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (group, opts) in patch {
        let entry = config.entry(group).or_insert_with(|| json!({}));
        if let (Value::Object(dst), Value::Object(src)) = (entry, opts) {
            dst.extend(src);
        }
    }
}

async fn update(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_domain_config", &json!({}))?;
    let patch = config_body(body)?;
    check(&patch)?;
    let mut config = stored(&ident, &id)?;
    merge(&mut config, patch);
    save(&ident, &id, config.clone()).await?;
    Ok(Json(json!({"config": visible(&config)})).into_response())
}

async fn delete(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_domain_config", &json!({}))?;
    stored(&ident, &id)?;
    save(&ident, &id, Map::new()).await?;
    Ok(no_content())
}

fn group_of(config: &Map<String, Value>, id: &str, group: &str) -> ApiResult<Map<String, Value>> {
    if defaults(group).is_none() {
        return Err(invalid(format!("group {group} is not supported")));
    }
    config
        .get(group)
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| not_found("domain config group", &format!("{group} of {id}")))
}

async fn show_group(State(ident): State<Ctx>, auth: Auth, Path((id, group)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config", &json!({}))?;
    let config = visible(&stored(&ident, &id)?);
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
    let mut config = stored(&ident, &id)?;
    group_of(&config, &id, &group)?;
    merge(&mut config, patch);
    save(&ident, &id, config.clone()).await?;
    Ok(Json(json!({"config": visible(&config)})).into_response())
}

async fn delete_group(State(ident): State<Ctx>, auth: Auth, Path((id, group)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_domain_config", &json!({}))?;
    let mut config = stored(&ident, &id)?;
    group_of(&config, &id, &group)?;
    config.remove(&group);
    save(&ident, &id, config).await?;
    Ok(no_content())
}

async fn show_option(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((id, group, option)): Path<(String, String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain_config", &json!({}))?;
    let config = visible(&stored(&ident, &id)?);
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
        return Err(invalid(format!("option {option} in group {group} is not supported")));
    }
    let mut config = stored(&ident, &id)?;
    group_of(&config, &id, &group)?;
    merge(&mut config, [(group.clone(), Value::Object(patch))].into_iter().collect());
    save(&ident, &id, config.clone()).await?;
    Ok(Json(json!({"config": visible(&config)})).into_response())
}

async fn delete_option(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((id, group, option)): Path<(String, String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_domain_config", &json!({}))?;
    let mut config = stored(&ident, &id)?;
    let mut g = group_of(&config, &id, &group)?;
    g.remove(&option).ok_or_else(|| not_found("domain config option", &format!("{group}.{option} of {id}")))?;
    if g.is_empty() {
        config.remove(&group);
    } else {
        config.insert(group, Value::Object(g));
    }
    save(&ident, &id, config).await?;
    Ok(no_content())
}
