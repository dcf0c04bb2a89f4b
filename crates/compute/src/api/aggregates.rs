//! `/os-aggregates`: host aggregates and availability zones (`crate::service::aggregates`). As in Nova,
//! a body is validated before the caller's rights are checked.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, Access, Routes};
use serde_json::{json, Map, Value};

use super::{ApiResult, Ctx, Mv};
use crate::model::Aggregate;

pub fn routes() -> Routes<Ctx> {
    const ACTIONS: &[(&str, &str)] = &[
        ("add_host", "os_compute_api:os-aggregates:add_host"),
        ("remove_host", "os_compute_api:os-aggregates:remove_host"),
        ("set_metadata", "os_compute_api:os-aggregates:set_metadata"),
    ];
    Routes::new()
        .get("/os-aggregates", rule("os_compute_api:os-aggregates:index"), list)
        .post("/os-aggregates", rule("os_compute_api:os-aggregates:create"), create)
        .get("/os-aggregates/{id}", rule("os_compute_api:os-aggregates:show"), show)
        .put("/os-aggregates/{id}", rule("os_compute_api:os-aggregates:update"), update)
        .delete("/os-aggregates/{id}", rule("os_compute_api:os-aggregates:delete"), delete)
        .post("/os-aggregates/{id}/action", Access::Actions(ACTIONS), action)
        .post("/os-aggregates/{id}/images", rule("compute:aggregates:images"), images)
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.%6f").to_string()
}

fn render(a: &Aggregate, mv: Mv, full: bool) -> Value {
    let mut v = json!({
        "availability_zone": a.zone(),
        "created_at": ts(a.created_at),
        "deleted": false,
        "deleted_at": null,
        "id": a.number,
        "name": a.name,
        "updated_at": a.updated_at.map(ts),
    });
    if full {
        v["hosts"] = json!(a.hosts);
        v["metadata"] = json!(a.metadata);
    }
    if mv.at_least(41) {
        v["uuid"] = json!(a.id);
    }
    v
}

fn one(a: &Aggregate, mv: Mv) -> ApiResult {
    Ok(Json(json!({"aggregate": render(a, mv, true)})).into_response())
}

fn invalid(field: &str, value: &Value, why: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid input for field/attribute {field}. Value: {value}. {why}"))
}

/// The object under `key` of a body with nothing else in it.
fn object<'a>(body: &'a Value, key: &str) -> ApiResult<&'a Map<String, Value>> {
    let outer = body.as_object().ok_or_else(|| ApiError::bad_request(format!("{body} is not of type 'object'")))?;
    let inner = outer
        .get(key)
        .ok_or_else(|| invalid(key, body, &format!("'{key}' is a required property")))?
        .as_object()
        .ok_or_else(|| invalid(key, &outer[key], "is not of type 'object'"))?;
    if let Some(extra) = outer.keys().find(|k| *k != key) {
        return Err(invalid(key, body, &format!("Additional properties are not allowed ('{extra}' was unexpected)")));
    }
    Ok(inner)
}

fn only(o: &Map<String, Value>, field: &str, allowed: &[&str]) -> ApiResult<()> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(
            field,
            &Value::Object(o.clone()),
            &format!("Additional properties are not allowed ('{k}' was unexpected)"),
        )),
        None => Ok(()),
    }
}

/// An aggregate name: 1 to 255 printable characters; at create, without surrounding blanks.
fn name(v: &Value, trim_ok: bool) -> ApiResult<String> {
    let s = v.as_str().ok_or_else(|| invalid("name", v, "is not of type 'string'"))?;
    let n = s.chars().count();
    if n == 0 || n > 255 {
        return Err(invalid("name", v, "Length must be between 1 and 255."));
    }
    let printable = s.chars().all(|c| !c.is_control());
    if !printable || (!trim_ok && s.trim() != s) || s.trim().is_empty() {
        return Err(ApiError::bad_request(
            "An invalid 'name' value was provided. The name must be: printable characters. Can not start or end with whitespace.",
        ));
    }
    Ok(s.trim().to_string())
}

/// An availability zone: null, or 1 to 255 printable characters without `:` or blanks around.
fn zone(v: &Value) -> ApiResult<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s)
            if (1..=255).contains(&s.chars().count())
                && !s.contains(':')
                && s.trim() == s
                && s.chars().all(|c| !c.is_control()) =>
        {
            Ok(Some(s.clone()))
        }
        _ => Err(invalid("availability_zone", v, &format!("{v} is not valid under any of the given schemas"))),
    }
}

async fn list(State(c): State<Ctx>, mv: Mv) -> ApiResult {
    let m = c.model();
    let mut all: Vec<&Aggregate> = m.aggregates.values().map(|a| &**a).collect();
    all.sort_by_key(|a| a.number);
    let items: Vec<Value> = all.into_iter().map(|a| render(a, mv, true)).collect();
    Ok(Json(json!({"aggregates": items})).into_response())
}

async fn create(State(c): State<Ctx>, mv: Mv, body: Bytes) -> ApiResult {
    let body: Value = haneul_core::http::parse_json(&body)?;
    let o = object(&body, "aggregate")?;
    only(o, "aggregate", &["name", "availability_zone"])?;
    let n = name(
        o.get("name").ok_or_else(|| invalid("aggregate", &body["aggregate"], "'name' is a required property"))?,
        false,
    )?;
    let z = o.get("availability_zone").map(zone).transpose()?.flatten();
    let a = c.create_aggregate(n, z).await?;
    Ok(Json(json!({"aggregate": render(&a, mv, false)})).into_response())
}

async fn show(State(c): State<Ctx>, mv: Mv, Path(id): Path<String>) -> ApiResult {
    let m = c.model();
    one(crate::service::aggregates::find(&m, &id)?, mv)
}

async fn update(State(c): State<Ctx>, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let body: Value = haneul_core::http::parse_json(&body)?;
    let o = object(&body, "aggregate")?;
    only(o, "aggregate", &["name", "availability_zone"])?;
    if o.is_empty() {
        return Err(invalid("aggregate", &body["aggregate"], "{} is not valid under any of the given schemas"));
    }
    let n = o.get("name").map(|v| name(v, true)).transpose()?;
    let z = o.get("availability_zone").map(zone).transpose()?;
    crate::service::aggregates::find(&c.model(), &id)?;
    one(&c.update_aggregate(&id, n, z).await?, mv)
}

async fn delete(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult {
    c.delete_aggregate(&id).await?;
    Ok(StatusCode::OK.into_response())
}

fn host_arg(o: &Map<String, Value>, action: &str) -> ApiResult<String> {
    only(o, action, &["host"])?;
    let v = o.get("host").ok_or_else(|| invalid(action, &Value::Object(o.clone()), "'host' is a required property"))?;
    match v.as_str() {
        Some(h)
            if (1..=255).contains(&h.len()) && h.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)) =>
        {
            Ok(h.to_string())
        }
        _ => Err(invalid("host", v, "is not a valid host name")),
    }
}

async fn action(State(c): State<Ctx>, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let body: Value = haneul_core::http::parse_json(&body)?;
    let outer =
        body.as_object().filter(|o| o.len() == 1).ok_or_else(|| ApiError::bad_request("Malformed request body"))?;
    let (verb, arg) = outer.iter().next().expect("one key");
    let arg = arg.as_object().ok_or_else(|| invalid(verb, arg, "is not of type 'object'"))?;
    match verb.as_str() {
        "add_host" => {
            let host = host_arg(arg, verb)?;
            one(&c.aggregate_add_host(&id, &host).await?, mv)
        }
        "remove_host" => {
            let host = host_arg(arg, verb)?;
            one(&c.aggregate_remove_host(&id, &host).await?, mv)
        }
        "set_metadata" => {
            only(arg, verb, &["metadata"])?;
            let md = arg
                .get("metadata")
                .ok_or_else(|| invalid(verb, &Value::Object(arg.clone()), "'metadata' is a required property"))?;
            let md = md.as_object().ok_or_else(|| invalid("metadata", md, "is not of type 'object'"))?;
            let mut changes = BTreeMap::new();
            for (k, v) in md {
                let key_ok =
                    (1..=255).contains(&k.len()) && k.chars().all(|c| c.is_ascii_alphanumeric() || "-_:. ".contains(c));
                if !key_ok {
                    return Err(invalid(
                        "metadata",
                        &Value::Object(md.clone()),
                        &format!("Additional properties are not allowed ('{k}' was unexpected)"),
                    ));
                }
                let v = match v {
                    Value::Null => None,
                    Value::String(s) if s.chars().count() <= 255 => Some(s.clone()),
                    other => return Err(invalid(k, other, "is not valid under any of the given schemas")),
                };
                changes.insert(k.clone(), v);
            }
            one(&c.set_aggregate_metadata(&id, changes).await?, mv)
        }
        other => Err(ApiError::bad_request(format!("There is no such action: {other}"))),
    }
}

/// 2.81: warm the image caches of the aggregate's hosts.
async fn images(State(c): State<Ctx>, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
    if !mv.at_least(81) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    let body: Value = haneul_core::http::parse_json(&body)?;
    let outer = body.as_object().ok_or_else(|| ApiError::bad_request(format!("{body} is not of type 'object'")))?;
    let cache = outer
        .get("cache")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid("cache", &body, "'cache' must be a non-empty list"))?;
    let mut ids = Vec::new();
    for item in cache {
        let id = item
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get("id"))
            .and_then(Value::as_str)
            .filter(|s| uuid::Uuid::parse_str(s).is_ok())
            .ok_or_else(|| invalid("cache", item, "is not valid under any of the given schemas"))?;
        if ids.iter().any(|i| i == id) {
            return Err(ApiError::bad_request("Duplicate images in request"));
        }
        ids.push(id.to_string());
    }
    let hosts = crate::service::aggregates::find(&c.model(), &id)?.hosts.clone();
    let c2 = c.clone();
    tokio::spawn(async move {
        for host in hosts {
            for image in &ids {
                let path = format!("/v1/images/{image}");
                if let Err(e) = c2.agent_call(&host, hyper::Method::PUT, &path, None).await {
                    tracing::warn!(%host, %image, error = %e.fault(), "could not cache an image");
                }
            }
        }
    });
    Ok(StatusCode::ACCEPTED.into_response())
}
