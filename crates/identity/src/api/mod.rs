//! The Keystone v3 HTTP API: routes, request parsing, policy checks and response shapes.

mod appcreds;
mod auth;
mod catalog;
mod credentials;
mod domain_config;
mod domains;
mod endpoint_filter;
mod limits;
mod projects;
mod registry;
mod roles;
mod trusts;
mod users;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use haneul_core::auth::{auth_layer, unauthenticated, AuthContext, TokenValidator};
use haneul_core::error::{ApiError, FaultStyle};
use haneul_core::policy::Policy;
use haneul_core::routes::{Access, Guard, RouteSpec, Routes};
use serde_json::{json, Map, Value};

use crate::service::{Error, Identity};

pub type ApiResult<T = Response> = Result<T, ApiError>;
pub type Ctx = Arc<Identity>;

/// Keystone's newest API version, and the date Keystone gives for it.
pub const API_VERSION: &str = "v3.14";
const API_UPDATED: &str = "2020-04-07T00:00:00Z";

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::NotFound { .. } => ApiError::not_found(e.to_string()),
            Error::Conflict(m) => ApiError::conflict(m),
            Error::Validation(m) => ApiError::bad_request(m),
            Error::Unauthorized(m) => ApiError::unauthorized(m).with_header("www-authenticate", "Keystone uri=\"\""),
            Error::Forbidden(m) => ApiError::forbidden(m),
            other => {
                tracing::error!(error = ?other, "identity service failure");
                ApiError::internal("An unexpected error prevented the server from fulfilling your request.")
            }
        }
    }
}

/// The identity service validating tokens for the API middleware.
struct Validator(Arc<Identity>);

impl TokenValidator for Validator {
    fn validate<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<AuthContext>, ApiError>> + Send + 'a>> {
        Box::pin(
            async move { self.0.validate_token(token, false).map(|vt| vt.ctx.clone()).map_err(|_| unauthenticated()) },
        )
    }
}

/// A validator other in-process services can use.
pub fn validator(identity: Arc<Identity>) -> Arc<dyn TokenValidator> {
    Arc::new(Validator(identity))
}

/// The routes under `/v3`, each with the Keystone rule its handler asks.
fn v3_routes() -> Routes<Ctx> {
    Routes::new()
        .merge(auth::routes())
        .merge(domains::routes())
        .merge(projects::routes())
        .merge(users::routes())
        .merge(roles::routes())
        .merge(catalog::routes())
        .merge(registry::routes())
        .merge(appcreds::routes())
        .merge(credentials::routes())
        .merge(trusts::routes())
        .merge(domain_config::routes())
        .merge(limits::routes())
        .merge(endpoint_filter::routes())
}

/// Version discovery: public.
fn version_routes() -> Routes<Ctx> {
    const DISCOVERY: Access = Access::Public("version discovery");
    Routes::new().get("/", DISCOVERY, versions).get("/v3", DISCOVERY, version_v3).get("/v3/", DISCOVERY, version_v3)
}

/// Every identity route with what it asks, as the router serves them.
pub fn route_table() -> Vec<RouteSpec> {
    version_routes().nest("/v3", v3_routes()).table()
}

/// The guard of every identity route, over `policy` (the service's current rules). Keystone
/// serves system-, domain- and project-scoped tokens alike; its handlers ask its rules on the
/// resource, and the guard checks they did.
pub fn guard(policy: impl Fn() -> Arc<Policy> + Send + Sync + 'static) -> Guard {
    Guard::new(FaultStyle::Identity, denied, policy).any_scope()
}

/// Keystone's 403 for a rule that denies.
fn denied(rule: &str) -> ApiError {
    ApiError::forbidden(format!("You are not authorized to perform the requested action: {rule}."))
}

/// All identity routes with their layers.
pub fn router(identity: Arc<Identity>, body_limit: usize) -> Router {
    let i = identity.clone();
    let app = version_routes()
        .nest("/v3", v3_routes())
        .into_router(guard(move || i.policy.current()))
        .with_state(identity.clone())
        .layer(auth_layer(validator(identity)));
    haneul_core::http::service_layers(app, "identity", FaultStyle::Identity, body_limit)
}

fn version_doc(ident: &Identity) -> Value {
    json!({
        "id": API_VERSION,
        "status": "stable",
        "updated": API_UPDATED,
        "links": [{"rel": "self", "href": format!("{}/v3/", ident.settings.public_url)}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

async fn versions(axum::extract::State(ident): axum::extract::State<Ctx>) -> Response {
    (StatusCode::MULTIPLE_CHOICES, Json(json!({"versions": {"values": [version_doc(&ident)]}}))).into_response()
}

async fn version_v3(axum::extract::State(ident): axum::extract::State<Ctx>) -> Response {
    Json(json!({"version": version_doc(&ident)})).into_response()
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the resource modules.

/// Checks `rule` for the caller against `target`; Keystone's 403 when denied.
pub fn enforce(ident: &Identity, ctx: &AuthContext, rule: &str, target: &Value) -> ApiResult<()> {
    let creds = ctx.policy_credentials();
    // An unknown target attribute is absent, not `None`: oslo.policy would render a Python
    // None as "None" and let `domain_id:%(target.domain_id)s` match a caller without a domain.
    let target = without_nulls(target);
    if ident.policy.current().enforce(rule, &target, creds) {
        Ok(())
    } else {
        Err(denied(rule))
    }
}

pub fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(_, x)| !x.is_null()).map(|(k, x)| (k.clone(), without_nulls(x))).collect())
        }
        other => other.clone(),
    }
}

pub fn self_link(ident: &Identity, path: &str) -> Value {
    json!({"self": format!("{}/v3/{}", ident.settings.public_url, path)})
}

/// `{"<collection>": [...], "links": {...}}`, truncated at `list_limit` when set.
pub fn list_response(ident: &Identity, collection: &str, mut items: Vec<Value>, path_and_query: &str) -> Response {
    let mut body = Map::new();
    let limit = ident.settings.list_limit;
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        body.insert("truncated".into(), Value::Bool(true));
    }
    body.insert(collection.into(), Value::Array(items));
    body.insert(
        "links".into(),
        json!({"self": format!("{}/v3/{}", ident.settings.public_url, path_and_query), "previous": null, "next": null}),
    );
    Json(Value::Object(body)).into_response()
}

pub fn created(value: Value) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Query parameters as given.
pub type Params = Query<HashMap<String, String>>;

/// A body's member object, e.g. the `user` in `{"user": {...}}`.
pub fn member(body: Value, key: &str) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(mut m) => match m.remove(key) {
            Some(Value::Object(inner)) => Ok(inner),
            Some(_) => Err(ApiError::bad_request(format!("Invalid input for field '{key}': must be an object."))),
            None => Err(ApiError::bad_request(format!("'{key}' is a required property"))),
        },
        _ => Err(ApiError::bad_request("The request body must be a JSON object.")),
    }
}

/// Parses a member object into a typed request, naming the field that is wrong.
pub fn parse<T: serde::de::DeserializeOwned>(key: &str, obj: Map<String, Value>) -> ApiResult<T> {
    serde_json::from_value(Value::Object(obj))
        .map_err(|e| ApiError::bad_request(format!("Invalid input for field '{key}': {e}")))
}

/// Keystone's name rules: a non-empty string of at most 255 characters, not only spaces.
pub fn check_name(field: &str, name: &str, max: usize) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request(format!("Invalid input for field '{field}': '{name}' is too short")));
    }
    if name.chars().count() > max {
        return Err(ApiError::bad_request(format!("Invalid input for field '{field}': '{name}' is too long")));
    }
    Ok(())
}

/// Query booleans as Keystone reads them (`enabled=0`, `false`, ...).
pub fn query_bool(v: &str) -> bool {
    !matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "f" | "no" | "n" | "off")
}

/// Keystone's `name`, `name__contains`, `__startswith`, `__endswith` (and `__i*`) filters.
pub fn text_filter(params: &HashMap<String, String>, field: &str, value: &str) -> bool {
    for (k, want) in params {
        let Some(rest) = k.strip_prefix(field) else { continue };
        let ok = match rest {
            "" => value == want,
            "__contains" => value.contains(want.as_str()),
            "__icontains" => value.to_lowercase().contains(&want.to_lowercase()),
            "__startswith" => value.starts_with(want.as_str()),
            "__istartswith" => value.to_lowercase().starts_with(&want.to_lowercase()),
            "__endswith" => value.ends_with(want.as_str()),
            "__iendswith" => value.to_lowercase().ends_with(&want.to_lowercase()),
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Fails with Keystone's 404 for a missing resource.
pub fn not_found(kind: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("Could not find {kind}: {id}."))
}

/// Merges client-set attributes Keystone does not know into the rendered resource.
pub fn with_extra(mut v: Value, extra: &Map<String, Value>) -> Value {
    if let Value::Object(m) = &mut v {
        for (k, x) in extra {
            m.entry(k.clone()).or_insert_with(|| x.clone());
        }
    }
    v
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
