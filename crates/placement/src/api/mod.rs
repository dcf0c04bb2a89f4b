//! The Placement HTTP API, with microversion negotiation (1.0–1.39) on every request.

mod allocations;
mod names;
mod providers;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use haneul_core::auth::{auth_layer, TokenValidator};
use haneul_core::error::{ApiError, FaultStyle};
use haneul_core::microversion::{negotiated, Microversion, Versions};
use haneul_core::policy::Policy;
use haneul_core::routes::{Access, Guard, RouteSpec, Routes};
use serde_json::{json, Map, Value};

use crate::service::{code, Error, Placement};

pub type ApiResult<T = Response> = Result<T, ApiError>;
pub type Ctx = Arc<Placement>;

pub const MIN_VERSION: Microversion = Microversion::new(1, 0);
pub const MAX_VERSION: Microversion = Microversion::new(1, 39);

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::NotFound(m) => ApiError::not_found(m),
            Error::BadRequest(c, m) => ApiError::bad_request(m).with_kind(c),
            Error::Conflict(c, m) => ApiError::conflict(m).with_kind(c),
            Error::Store(haneul_core::docstore::StoreError::Duplicate { .. }) => {
                ApiError::conflict("The resource already exists.").with_kind(code::DUPLICATE_NAME)
            }
            Error::Store(haneul_core::docstore::StoreError::Stale { .. }) => {
                ApiError::conflict("Another process changed the data; retry.").with_kind(code::CONCURRENT_UPDATE)
            }
            other => {
                tracing::error!(error = ?other, "placement service failure");
                ApiError::internal("The placement service could not complete the request.")
            }
        }
    }
}

pub use haneul_core::microversion::Mv;

/// Placement's microversions.
pub static VERSIONS: Versions = Versions {
    service: "placement",
    legacy_header: None,
    min: MIN_VERSION,
    max: MAX_VERSION,
    refused: Some(not_acceptable),
};

/// Clients (osc-placement) read the range from the 406's body to settle on a version.
fn not_acceptable(v: &Versions, e: ApiError) -> Response {
    let body = json!({"errors": [{
        "status": 406,
        "title": "Not Acceptable",
        "detail": format!("Invalid microversion: {}", e.message),
        "max_version": v.max.to_string(),
        "min_version": v.min.to_string(),
    }]});
    (StatusCode::NOT_ACCEPTABLE, Json(body)).into_response()
}

/// From 1.15 a GET's answer carries `last-modified` and `cache-control: no-cache`.
async fn cache_headers(mv: Mv, req: Request, next: Next) -> Response {
    let is_get = req.method() == Method::GET;
    let mut resp = next.run(req).await;
    if is_get && resp.status() == StatusCode::OK && mv.at_least(15) {
        let now = chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        if let Ok(value) = HeaderValue::from_str(&now) {
            resp.headers_mut().insert("last-modified", value);
        }
        resp.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache"));
    }
    resp
}

/// Every placement route, each with its rule; the version document is public.
fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/", Access::Public("version discovery"), versions)
        .merge(providers::routes())
        .merge(allocations::routes())
        .merge(names::routes())
}

/// Every placement route with what it asks, as the router serves them.
pub fn route_table() -> Vec<RouteSpec> {
    routes().table()
}

/// The guard of every placement route, over `policy` (the service's current rules).
pub fn guard(policy: impl Fn() -> Arc<Policy> + Send + Sync + 'static) -> Guard {
    Guard::new(FaultStyle::Placement, denied, policy)
}

/// Placement's 403 for a rule that denies.
fn denied(rule: &str) -> ApiError {
    ApiError::forbidden(format!("Policy does not allow {rule} to be performed."))
}

pub fn router(placement: Arc<Placement>, validator: Arc<dyn TokenValidator>, body_limit: usize) -> Router {
    let p = placement.clone();
    let guard = guard(move || p.policy.current());
    let app = routes()
        .into_router(guard)
        .layer(axum::middleware::from_fn(cache_headers))
        .layer(axum::middleware::from_fn_with_state(&VERSIONS, negotiated))
        .with_state(placement)
        .layer(auth_layer(validator));
    haneul_core::http::service_layers(app, "placement", FaultStyle::Placement, body_limit)
}

async fn versions() -> Response {
    Json(json!({"versions": [{
        "id": "v1.0",
        "max_version": MAX_VERSION.to_string(),
        "min_version": MIN_VERSION.to_string(),
        "status": "CURRENT",
        "links": [{"rel": "self", "href": ""}],
    }]}))
    .into_response()
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the resource modules.

pub fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// A JSON object body, or placement's 400.
pub fn object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    match haneul_core::http::parse_json::<Value>(body)? {
        Value::Object(o) => Ok(o),
        _ => Err(bad("JSON does not validate: the body must be an object.")),
    }
}

/// Refuses keys outside `allowed`, as placement's JSON schemas do.
pub fn only_keys(o: &Map<String, Value>, allowed: &[&str]) -> ApiResult<()> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => {
            Err(bad(format!("JSON does not validate: Additional properties are not allowed ('{k}' was unexpected)")))
        }
        None => Ok(()),
    }
}

pub fn required<'a>(o: &'a Map<String, Value>, key: &str) -> ApiResult<&'a Value> {
    o.get(key).ok_or_else(|| bad(format!("JSON does not validate: '{key}' is a required property")))
}

pub fn int(v: &Value, key: &str) -> ApiResult<i64> {
    v.as_i64().ok_or_else(|| bad(format!("JSON does not validate: {v} is not of type 'integer' ({key})")))
}

pub fn string<'a>(v: &'a Value, key: &str) -> ApiResult<&'a str> {
    v.as_str().ok_or_else(|| bad(format!("JSON does not validate: {v} is not of type 'string' ({key})")))
}

/// A uuid as placement accepts it (with or without dashes), in its dashed form.
pub fn uuid(s: &str, what: &str) -> ApiResult<String> {
    uuid::Uuid::parse_str(s)
        .map(|u| u.to_string())
        .map_err(|_| bad(format!("JSON does not validate: '{s}' is not a 'uuid' ({what})")))
}

/// The generation a writer read, required in the body.
pub fn generation(o: &Map<String, Value>) -> ApiResult<i64> {
    int(required(o, "resource_provider_generation")?, "resource_provider_generation")
}

/// Query string pairs in order (repeated keys kept).
pub type Pairs = Vec<(String, String)>;

/// Refuses query parameters outside `allowed`; a name ending in `*` allows suffixed forms
/// (`resources1`, `required_GPU`).
pub fn only_params(q: &Pairs, allowed: &[&str]) -> ApiResult<()> {
    for (k, _) in q {
        let ok = allowed.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => k.starts_with(prefix),
            None => a == k,
        });
        if !ok {
            return Err(bad(format!(
                "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    Ok(())
}

pub fn param<'a>(q: &'a Pairs, key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Placement's 404 for a route that does not exist before microversion `1.minor`.
pub fn since(mv: Mv, minor: u32) -> ApiResult<()> {
    if mv.at_least(minor) {
        Ok(())
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

/// A `PUT` that creates or confirms a named thing: 201 when `made`, else 204; both say where.
pub fn created_or_confirmed(location: &str, made: bool) -> Response {
    if made {
        return created(location, None);
    }
    let mut resp = no_content();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert("location", v);
    }
    resp
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

pub fn created(location: &str, body: Option<Value>) -> Response {
    let mut resp = match body {
        Some(b) => (StatusCode::CREATED, Json(b)).into_response(),
        None => StatusCode::CREATED.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert("location", v);
    }
    resp
}

#[cfg(test)]
mod route_rules {
    #[test]
    fn the_default_rules_parse_and_every_route_names_one_of_them() {
        let table = super::route_table();
        let unknown = haneul_core::routes::unknown_rules(&table, crate::policy_defaults::DEFAULT_RULES);
        assert!(unknown.is_empty(), "{unknown:?}");
    }
}
