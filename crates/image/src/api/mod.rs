//! The Glance v2 HTTP API: routes, request parsing, policy checks and response shapes.

mod data;
mod image_list;
mod images;
mod members;
mod schemas;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use haneul_core::auth::{auth_layer, AuthContext, TokenValidator};
use haneul_core::error::{ApiError, FaultStyle};
use haneul_core::policy::Policy;
use haneul_core::routes::{rule, Access, Guard, RouteSpec, Routes};
use serde_json::{json, Value};

use crate::model::{Image, Model};
use crate::service::{Error, Images};

pub type ApiResult<T = Response> = Result<T, ApiError>;
pub type Ctx = Arc<Images>;

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::BadRequest(_) | Error::Interrupted(_) => StatusCode::BAD_REQUEST,
            Error::OverLimit(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::Gone(_) => StatusCode::GONE,
            Error::Store(haneul_core::docstore::StoreError::NotFound { .. }) => StatusCode::NOT_FOUND,
            Error::Store(haneul_core::docstore::StoreError::Duplicate { .. }) => StatusCode::CONFLICT,
            Error::Store(haneul_core::docstore::StoreError::Stale { .. }) => StatusCode::CONFLICT,
            Error::Store(_) | Error::Data(_) => {
                tracing::error!(error = ?e, "image service failure");
                return ApiError::internal("The server could not complete the request.");
            }
        };
        ApiError::new(status, e.to_string())
    }
}

/// Every image route, each with its rule.
fn routes() -> Routes<Ctx> {
    const DISCOVERY: Access = Access::Public("version discovery");
    Routes::new()
        .get("/", DISCOVERY, versions_300)
        .get("/versions", DISCOVERY, versions_200)
        .merge(schemas::routes())
        .merge(images::routes())
        .merge(image_list::routes())
        .merge(data::routes())
        .merge(members::routes())
        .get("/v2/info/import", Access::Token("Glance asks no rule for its import methods"), info_import)
        .get("/v2/info/usage", rule("get_images"), info_usage)
}

/// Every image route with what it asks, as the router serves them.
pub fn route_table() -> Vec<RouteSpec> {
    routes().table()
}

/// The guard of every image route, over `policy` (the service's current rules).
pub fn guard(policy: impl Fn() -> Arc<Policy> + Send + Sync + 'static) -> Guard {
    Guard::new(FaultStyle::Image, denied, policy)
}

/// Glance's 403 for a rule that denies.
fn denied(rule: &str) -> ApiError {
    ApiError::forbidden(format!("You are not authorized to complete {rule} action."))
}

/// All image routes with their layers.
pub fn router(images: Arc<Images>, validator: Arc<dyn TokenValidator>, body_limit: usize) -> Router {
    let svc = images.clone();
    let guard = guard(move || svc.policy.current());
    let app = routes()
        .into_router(guard)
        // Not a resource: any other path is Glance's 404 (or 300 for a bare version prefix).
        .route("/{*rest}", axum::routing::any(unknown_path))
        .with_state(images)
        .layer(auth_layer(validator));
    haneul_core::http::service_layers(app, "image", FaultStyle::Image, body_limit)
}

/// The API versions Glance lists; haneul claims those whose features it has (through 2.7:
/// interoperable import, hidden images, multihash), not multistore (2.8, 2.10–2.13), the
/// cache API or the locations API.
fn versions_doc(req: &Request) -> Value {
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1:9292");
    let href = format!("http://{host}/v2/");
    let list: Vec<Value> = [
        ("v2.7", "CURRENT"),
        ("v2.6", "SUPPORTED"),
        ("v2.5", "SUPPORTED"),
        ("v2.4", "SUPPORTED"),
        ("v2.3", "SUPPORTED"),
        ("v2.2", "SUPPORTED"),
        ("v2.1", "SUPPORTED"),
        ("v2.0", "SUPPORTED"),
    ]
    .iter()
    .map(|(id, status)| json!({"id": id, "status": status, "links": [{"rel": "self", "href": href}]}))
    .collect();
    json!({"versions": list})
}

async fn versions_300(req: Request) -> Response {
    (StatusCode::MULTIPLE_CHOICES, Json(versions_doc(&req))).into_response()
}

async fn versions_200(req: Request) -> Response {
    Json(versions_doc(&req)).into_response()
}

/// Glance answers any path outside a known version with the versions list (300); inside v2,
/// an unknown path is a 404.
async fn unknown_path(req: Request) -> Response {
    let first = req.uri().path().trim_start_matches('/').split('/').next().unwrap_or("");
    if first == "v2" || first.starts_with("v2.") {
        return ApiError::not_found("The resource could not be found.").into_response();
    }
    versions_300(req).await
}

async fn info_import() -> Response {
    Json(json!({"import-methods": {"description": "Import methods available.", "type": "array", "value": ["glance-direct"]}}))
        .into_response()
}

async fn info_usage(State(svc): State<Ctx>, auth: haneul_core::auth::Auth) -> ApiResult {
    let Some(project) = auth.0.project_id() else {
        return Err(ApiError::forbidden("Image usage is reported for project-scoped tokens only."));
    };
    let m = svc.model();
    let mut usage = serde_json::Map::new();
    for (resource, _) in crate::service::DEFAULT_LIMITS {
        let limit = svc.limits.limit(crate::service::SERVICE_TYPE, project, resource);
        usage.insert(
            resource.to_string(),
            json!({"limit": limit, "usage": crate::service::usage(&m, project, resource)}),
        );
    }
    Ok(Json(json!({"usage": usage})).into_response())
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the resource modules.

/// Glance's timestamps: seconds, `Z`.
pub fn ts(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The policy target of an image for the caller.
pub fn image_target(m: &Model, ctx: &AuthContext, img: &Image) -> Value {
    let member = ctx.project_id().filter(|p| m.member(&img.id, p).is_some());
    json!({"project_id": img.owner, "member_id": member, "visibility": img.visibility.as_str()})
}

/// Checks `rule`; a 403 naming it when denied.
pub fn enforce(svc: &Images, ctx: &AuthContext, rule: &str, target: &Value) -> ApiResult<()> {
    svc.policy.require(ctx, rule, target, denied)
}

/// The image the caller may see, or Glance's 404.
pub fn find_image(svc: &Images, m: &Model, ctx: &AuthContext, id: &str) -> ApiResult<Arc<Image>> {
    match m.images.get(id) {
        Some(img) if svc.visible(m, ctx, img) => Ok(img.clone()),
        _ => Err(ApiError::not_found(format!("No image found with ID {id}"))),
    }
}

/// A visible image the caller may act on with `rule` (403 when it may only look).
pub fn image_for(svc: &Images, m: &Model, ctx: &AuthContext, id: &str, rule: &str) -> ApiResult<Arc<Image>> {
    let img = find_image(svc, m, ctx, id)?;
    enforce(svc, ctx, rule, &image_target(m, ctx, &img))?;
    Ok(img)
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
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
