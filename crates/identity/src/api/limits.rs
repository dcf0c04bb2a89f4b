//! Unified limits: registered limits (a service's default per resource) and project or
//! domain limits that override them, with the `flat` enforcement model.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::http::Json as Body;
use haneul_core::routes::{target, Routes};
use haneul_core::ApiError;
use serde_json::{json, Map, Value};

use super::{created, enforce, list_response, no_content, not_found, ApiResult, Ctx, Params};
use crate::model::{Document, Model};
use crate::service::limits::key;
use crate::service::{self, new_id};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/registered_limits", target("identity:list_registered_limits"), list_registered)
        .post("/registered_limits", target("identity:create_registered_limits"), create_registered)
        .get("/registered_limits/{id}", target("identity:get_registered_limit"), show_registered)
        .patch("/registered_limits/{id}", target("identity:update_registered_limit"), update_registered)
        .delete("/registered_limits/{id}", target("identity:delete_registered_limit"), delete_registered)
        .get("/limits/model", target("identity:get_limit_model"), model)
        .get("/limits", target("identity:list_limits"), list_limits)
        .post("/limits", target("identity:create_limits"), create_limits)
        .get("/limits/{id}", target("identity:get_limit"), show_limit)
        .patch("/limits/{id}", target("identity:update_limit"), update_limit)
        .delete("/limits/{id}", target("identity:delete_limit"), delete_limit)
}

fn render(ident: &Ctx, path: &str, d: &Document) -> Value {
    let mut v = Value::Object(d.body.clone());
    v["id"] = json!(d.id);
    v["links"] = json!({"self": format!("{}/v3/{path}/{}", ident.settings.public_url, d.id)});
    v
}

fn s<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}

fn entries(body: Value, key: &str) -> ApiResult<Vec<Map<String, Value>>> {
    let list = body
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::bad_request(format!("'{key}' is a required property and must be a list.")))?;
    if list.is_empty() {
        return Err(ApiError::bad_request(format!("Invalid input for field '{key}': [] is too short")));
    }
    list.iter()
        .map(|e| {
            e.as_object().cloned().ok_or_else(|| {
                ApiError::bad_request(format!("Invalid input for field '{key}': each entry must be an object."))
            })
        })
        .collect()
}

fn check_types(o: &Map<String, Value>, strings: &[&str], ints: &[&str]) -> ApiResult<()> {
    for k in strings {
        if o.get(*k).is_some_and(|v| !(v.is_string() || v.is_null())) {
            return Err(ApiError::bad_request(format!("Invalid input for field '{k}': must be a string.")));
        }
    }
    for k in ints {
        if o.get(*k).is_some_and(|v| v.as_i64().is_none_or(|n| n < -1)) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field '{k}': must be an integer of at least -1."
            )));
        }
    }
    Ok(())
}

// --------------------------------------------------------------------------- registered limits

async fn create_registered(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_registered_limits", &json!({}))?;
    let items = entries(body, "registered_limits")?;
    let mut docs = Vec::new();
    for mut o in items {
        for k in ["service_id", "resource_name", "default_limit"] {
            if !o.contains_key(k) {
                return Err(ApiError::bad_request(format!("'{k}' is a required property")));
            }
        }
        check_types(&o, &["service_id", "region_id", "resource_name", "description"], &["default_limit"])?;
        o.remove("id");
        o.entry("region_id").or_insert(Value::Null);
        o.entry("description").or_insert(Value::Null);
        docs.push(Document { id: new_id(), uniq: Some(key(&o)), body: o });
    }
    let saved = ident.write(|t| service::limits::create_registered(t, docs)).await?;
    let items: Vec<Value> = saved.iter().map(|d| render(&ident, "registered_limits", &d.0)).collect();
    Ok(created(json!({"registered_limits": items})))
}

fn matches(params: &Params, o: &Map<String, Value>, keys: &[&str]) -> bool {
    keys.iter().all(|k| params.get(*k).is_none_or(|want| s(o, k) == Some(want.as_str())))
}

async fn list_registered(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_registered_limits", &json!({}))?;
    let m = ident.model();
    let items = m
        .registered_limits
        .values()
        .filter(|d| matches(&params, &d.0.body, &["service_id", "region_id", "resource_name"]))
        .map(|d| render(&ident, "registered_limits", &d.0))
        .collect();
    Ok(list_response(&ident, "registered_limits", items, "registered_limits"))
}

async fn show_registered(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_registered_limit", &json!({}))?;
    let m = ident.model();
    let d = m.registered_limits.get(&id).ok_or_else(|| not_found("registered limit", &id))?;
    Ok(Json(json!({"registered_limit": render(&ident, "registered_limits", &d.0)})).into_response())
}

async fn update_registered(
    State(ident): State<Ctx>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_registered_limit", &json!({}))?;
    let patch = super::member(body, "registered_limit")?;
    check_types(&patch, &["service_id", "region_id", "resource_name", "description"], &["default_limit"])?;
    let saved = ident.write(|t| service::limits::update_registered(t, &id, patch)).await?;
    Ok(Json(json!({"registered_limit": render(&ident, "registered_limits", &saved.0)})).into_response())
}

async fn delete_registered(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_registered_limit", &json!({}))?;
    ident.write(|t| service::limits::delete_registered(t, &id)).await?;
    Ok(no_content())
}

// ------------------------------------------------------------------------------------ limits

async fn model(State(ident): State<Ctx>, auth: Auth) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_limit_model", &json!({}))?;
    Ok(Json(json!({"model": {"name": "flat", "description": "Limit enforcement and validation does not take project hierarchy into consideration."}})).into_response())
}

async fn create_limits(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_limits", &json!({}))?;
    let items = entries(body, "limits")?;
    let mut docs = Vec::new();
    for mut o in items {
        for k in ["service_id", "resource_name", "resource_limit"] {
            if !o.contains_key(k) {
                return Err(ApiError::bad_request(format!("'{k}' is a required property")));
            }
        }
        check_types(
            &o,
            &["service_id", "region_id", "resource_name", "description", "project_id", "domain_id"],
            &["resource_limit"],
        )?;
        let owner = match (s(&o, "project_id"), s(&o, "domain_id")) {
            (Some(p), None) => format!("project:{p}"),
            (None, Some(d)) => format!("domain:{d}"),
            _ => return Err(ApiError::bad_request("A limit belongs to exactly one of project_id and domain_id.")),
        };
        o.remove("id");
        o.entry("region_id").or_insert(Value::Null);
        o.entry("description").or_insert(Value::Null);
        o.entry("project_id").or_insert(Value::Null);
        o.entry("domain_id").or_insert(Value::Null);
        let uniq = format!("{owner}/{}", key(&o));
        docs.push(Document { id: new_id(), uniq: Some(uniq), body: o });
    }
    let saved = ident.write(|t| service::limits::create_limits(t, docs)).await?;
    let items: Vec<Value> = saved.iter().map(|d| render(&ident, "limits", &d.0)).collect();
    Ok(created(json!({"limits": items})))
}

fn limit_target(o: &Map<String, Value>, m: &Model) -> Value {
    let project_domain = s(o, "project_id").and_then(|p| m.projects.get(p)).map(|p| p.domain_id.clone());
    json!({"target": {"limit": {
        "project_id": s(o, "project_id"),
        "domain": {"id": s(o, "domain_id")},
        "project": {"domain_id": project_domain},
    }}})
}

async fn list_limits(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_limits", &json!({}))?;
    let m = ident.model();
    let policy = ident.policy.current();
    let creds = auth.0.policy_credentials();
    let items = m
        .limits
        .values()
        .filter(|d| {
            matches(&params, &d.0.body, &["service_id", "region_id", "resource_name", "project_id", "domain_id"])
        })
        .filter(|d| policy.enforce("identity:get_limit", &super::without_nulls(&limit_target(&d.0.body, &m)), creds))
        .map(|d| render(&ident, "limits", &d.0))
        .collect();
    Ok(list_response(&ident, "limits", items, "limits"))
}

async fn show_limit(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    let m = ident.model();
    let d = m.limits.get(&id);
    let t = d.map(|d| limit_target(&d.0.body, &m)).unwrap_or_else(|| json!({}));
    enforce(&ident, &auth.0, "identity:get_limit", &t)?;
    let d = d.ok_or_else(|| not_found("limit", &id))?;
    Ok(Json(json!({"limit": render(&ident, "limits", &d.0)})).into_response())
}

async fn update_limit(
    State(ident): State<Ctx>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_limit", &json!({}))?;
    let patch = super::member(body, "limit")?;
    check_types(&patch, &["description"], &["resource_limit"])?;
    if patch.keys().any(|k| k != "resource_limit" && k != "description") {
        return Err(ApiError::bad_request("Only resource_limit and description of a limit can change."));
    }
    let saved = ident.write(|t| service::limits::update_limit(t, &id, patch)).await?;
    Ok(Json(json!({"limit": render(&ident, "limits", &saved.0)})).into_response())
}

async fn delete_limit(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_limit", &json!({}))?;
    ident.write(|t| service::limits::delete_limit(t, &id)).await?;
    Ok(no_content())
}
