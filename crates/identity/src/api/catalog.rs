//! The service catalog: regions, services, endpoints, and the catalog a token carries.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::http::Json as Body;
use haneul_core::routes::{target, Routes};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    created, enforce, list_response, member, no_content, not_found, parse, self_link, with_extra, ApiResult, Ctx,
    Params,
};
use crate::model::{Endpoint, Extra, Model, Region, Service};
use crate::service::catalog::{EndpointPatch, RegionPatch, ServicePatch};
use crate::service::{self, new_id};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/regions", target("identity:list_regions"), list_regions)
        .post("/regions", target("identity:create_region"), create_region)
        .get("/regions/{id}", target("identity:get_region"), get_region)
        .patch("/regions/{id}", target("identity:update_region"), update_region)
        .delete("/regions/{id}", target("identity:delete_region"), delete_region)
        .put("/regions/{id}", target("identity:create_region"), put_region)
        .get("/services", target("identity:list_services"), list_services)
        .post("/services", target("identity:create_service"), create_service)
        .get("/services/{id}", target("identity:get_service"), get_service)
        .patch("/services/{id}", target("identity:update_service"), update_service)
        .delete("/services/{id}", target("identity:delete_service"), delete_service)
        .get("/endpoints", target("identity:list_endpoints"), list_endpoints)
        .post("/endpoints", target("identity:create_endpoint"), create_endpoint)
        .get("/endpoints/{id}", target("identity:get_endpoint"), get_endpoint)
        .patch("/endpoints/{id}", target("identity:update_endpoint"), update_endpoint)
        .delete("/endpoints/{id}", target("identity:delete_endpoint"), delete_endpoint)
}

/// The catalog for a token: enabled services with their enabled endpoints.
pub fn catalog_for(m: &Model, project_id: Option<&str>) -> Vec<Value> {
    let allowed = project_id.and_then(|p| crate::service::endpoints::allowed_endpoints(m, p));
    m.services
        .values()
        .filter(|s| s.enabled)
        .map(|s| {
            let endpoints: Vec<Value> = m
                .endpoints
                .values()
                .filter(|e| e.enabled && e.service_id == s.id)
                .filter(|e| allowed.as_ref().is_none_or(|a| a.contains(&e.id)))
                .map(|e| json!({"id": e.id, "interface": e.interface, "region": e.region_id, "region_id": e.region_id, "url": e.url}))
                .collect();
            json!({"id": s.id, "type": s.kind, "name": s.name.clone().unwrap_or_default(), "endpoints": endpoints})
        })
        .collect()
}

// ------------------------------------------------------------------------------------ regions

fn render_region(ident: &Ctx, r: &Region) -> Value {
    with_extra(
        json!({"id": r.id, "description": r.description, "parent_region_id": r.parent_region_id, "links": self_link(ident, &format!("regions/{}", r.id))}),
        &r.extra,
    )
}

#[derive(Deserialize)]
struct RegionBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parent_region_id: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

async fn list_regions(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_regions", &json!({}))?;
    let m = ident.model();
    let items = m
        .regions
        .values()
        .filter(|r| params.get("parent_region_id").is_none_or(|p| r.parent_region_id.as_deref() == Some(p.as_str())))
        .map(|r| render_region(&ident, r))
        .collect();
    Ok(list_response(&ident, "regions", items, "regions"))
}

async fn get_region(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_region", &json!({}))?;
    let m = ident.model();
    let r = m.regions.get(&id).ok_or_else(|| not_found("region", &id))?;
    Ok(Json(json!({"region": render_region(&ident, r)})).into_response())
}

async fn create_region(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    let b: RegionBody = parse("region", member(body, "region")?)?;
    let id = b.id.clone().unwrap_or_else(new_id);
    store_region(ident, auth, id, b).await
}

async fn put_region(
    State(ident): State<Ctx>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let b: RegionBody = parse("region", member(body, "region")?)?;
    if b.id.as_ref().is_some_and(|x| x != &id) {
        return Err(haneul_core::ApiError::bad_request("The region id in the body does not match the URL."));
    }
    store_region(ident, auth, id, b).await
}

async fn store_region(ident: Ctx, auth: Auth, id: String, b: RegionBody) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_region", &json!({}))?;
    super::check_name("region/id", &id, 255)?;
    let region = Region {
        id,
        description: b.description.unwrap_or_default(),
        parent_region_id: b.parent_region_id,
        extra: b.extra,
    };
    let saved = ident.write(|t| service::catalog::create_region(t, region)).await?;
    Ok(created(json!({"region": render_region(&ident, &saved)})))
}

async fn update_region(
    State(ident): State<Ctx>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_region", &json!({}))?;
    let b: RegionBody = parse("region", member(body, "region")?)?;
    let patch = RegionPatch { description: b.description, parent_region_id: b.parent_region_id, extra: b.extra };
    let saved = ident.write(|t| service::catalog::update_region(t, &id, patch)).await?;
    Ok(Json(json!({"region": render_region(&ident, &saved)})).into_response())
}

async fn delete_region(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_region", &json!({}))?;
    ident.write(|t| service::catalog::delete_region(t, &id)).await?;
    Ok(no_content())
}

// ----------------------------------------------------------------------------------- services

fn render_service(ident: &Ctx, s: &Service) -> Value {
    let mut v = json!({"id": s.id, "type": s.kind, "enabled": s.enabled, "links": self_link(ident, &format!("services/{}", s.id))});
    if let Some(n) = &s.name {
        v["name"] = json!(n);
    }
    if let Some(d) = &s.description {
        v["description"] = json!(d);
    }
    with_extra(v, &s.extra)
}

#[derive(Deserialize)]
struct ServiceBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(flatten)]
    extra: Extra,
}

async fn list_services(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_services", &json!({}))?;
    let m = ident.model();
    let items = m
        .services
        .values()
        .filter(|s| params.get("type").is_none_or(|t| &s.kind == t))
        .filter(|s| params.get("name").is_none_or(|n| s.name.as_ref() == Some(n)))
        .map(|s| render_service(&ident, s))
        .collect();
    Ok(list_response(&ident, "services", items, "services"))
}

async fn get_service(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_service", &json!({}))?;
    let m = ident.model();
    let s = m.services.get(&id).ok_or_else(|| not_found("service", &id))?;
    Ok(Json(json!({"service": render_service(&ident, s)})).into_response())
}

async fn create_service(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_service", &json!({}))?;
    let b: ServiceBody = parse("service", member(body, "service")?)?;
    let kind = b.kind.ok_or_else(|| haneul_core::ApiError::bad_request("'type' is a required property"))?;
    super::check_name("type", &kind, 255)?;
    let s = Service {
        id: new_id(),
        kind,
        name: b.name,
        description: b.description,
        enabled: b.enabled.unwrap_or(true),
        extra: b.extra,
    };
    let saved = ident.write(|t| service::catalog::create_service(t, s)).await?;
    Ok(created(json!({"service": render_service(&ident, &saved)})))
}

async fn update_service(
    State(ident): State<Ctx>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_service", &json!({}))?;
    let b: ServiceBody = parse("service", member(body, "service")?)?;
    let patch =
        ServicePatch { kind: b.kind, name: b.name, description: b.description, enabled: b.enabled, extra: b.extra };
    let saved = ident.write(|t| service::catalog::update_service(t, &id, patch)).await?;
    Ok(Json(json!({"service": render_service(&ident, &saved)})).into_response())
}

async fn delete_service(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_service", &json!({}))?;
    ident.write(|t| service::catalog::delete_service(t, &id)).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------- endpoints

pub fn render_endpoint(ident: &Ctx, e: &Endpoint) -> Value {
    with_extra(
        json!({
            "id": e.id, "interface": e.interface, "service_id": e.service_id, "region_id": e.region_id,
            "region": e.region_id, "url": e.url, "enabled": e.enabled,
            "links": self_link(ident, &format!("endpoints/{}", e.id)),
        }),
        &e.extra,
    )
}

#[derive(Deserialize)]
struct EndpointBody {
    #[serde(default)]
    interface: Option<String>,
    #[serde(default)]
    service_id: Option<String>,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(flatten)]
    extra: Extra,
}

fn check_interface(i: &str) -> ApiResult<()> {
    match i {
        "public" | "internal" | "admin" => Ok(()),
        _ => Err(haneul_core::ApiError::bad_request(format!(
            "Invalid input for field 'interface': '{i}' does not match '^(?:admin|internal|public)$'"
        ))),
    }
}

fn check_url(u: &str) -> ApiResult<()> {
    let ok = u.contains("://") && u.len() <= 225 && !u.trim().is_empty();
    if ok {
        Ok(())
    } else {
        Err(haneul_core::ApiError::bad_request(format!("Invalid input for field 'url': '{u}' is not a URL")))
    }
}

async fn list_endpoints(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_endpoints", &json!({}))?;
    let m = ident.model();
    let items = m
        .endpoints
        .values()
        .filter(|e| params.get("interface").is_none_or(|i| &e.interface == i))
        .filter(|e| params.get("service_id").is_none_or(|s| &e.service_id == s))
        .filter(|e| params.get("region_id").is_none_or(|r| e.region_id.as_ref() == Some(r)))
        .map(|e| render_endpoint(&ident, e))
        .collect();
    Ok(list_response(&ident, "endpoints", items, "endpoints"))
}

async fn get_endpoint(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_endpoint", &json!({}))?;
    let m = ident.model();
    let e = m.endpoints.get(&id).ok_or_else(|| not_found("endpoint", &id))?;
    Ok(Json(json!({"endpoint": render_endpoint(&ident, e)})).into_response())
}

async fn create_endpoint(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_endpoint", &json!({}))?;
    let b: EndpointBody = parse("endpoint", member(body, "endpoint")?)?;
    let interface =
        b.interface.ok_or_else(|| haneul_core::ApiError::bad_request("'interface' is a required property"))?;
    check_interface(&interface)?;
    let service_id =
        b.service_id.ok_or_else(|| haneul_core::ApiError::bad_request("'service_id' is a required property"))?;
    let url = b.url.ok_or_else(|| haneul_core::ApiError::bad_request("'url' is a required property"))?;
    check_url(&url)?;
    let region_id = b.region_id.or(b.region);
    let e = Endpoint {
        id: new_id(),
        service_id,
        interface,
        region_id,
        url,
        enabled: b.enabled.unwrap_or(true),
        extra: b.extra,
    };
    let saved = ident.write(|t| service::catalog::create_endpoint(t, e)).await?;
    Ok(created(json!({"endpoint": render_endpoint(&ident, &saved)})))
}

async fn update_endpoint(
    State(ident): State<Ctx>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_endpoint", &json!({}))?;
    let b: EndpointBody = parse("endpoint", member(body, "endpoint")?)?;
    if let Some(i) = &b.interface {
        check_interface(i)?;
    }
    if let Some(u) = &b.url {
        check_url(u)?;
    }
    let patch = EndpointPatch {
        interface: b.interface,
        service_id: b.service_id,
        region_id: b.region_id.or(b.region),
        url: b.url,
        enabled: b.enabled,
        extra: b.extra,
    };
    let saved = ident.write(|t| service::catalog::update_endpoint(t, &id, patch)).await?;
    Ok(Json(json!({"endpoint": render_endpoint(&ident, &saved)})).into_response())
}

async fn delete_endpoint(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_endpoint", &json!({}))?;
    ident.write(|t| service::catalog::delete_endpoint(t, &id)).await?;
    Ok(no_content())
}
