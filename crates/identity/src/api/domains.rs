//! `/v3/domains`.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::http::Json as Body;
use haneul_core::routes::{target, Routes};
use haneul_core::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    check_name, created, enforce, list_response, member, no_content, not_found, parse, query_bool, self_link,
    text_filter, with_extra, ApiResult, Ctx, Params,
};
use crate::model::{Domain, Extra};
use crate::service::domains::DomainPatch;
use crate::service::{self, new_id};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/domains", target("identity:list_domains"), list)
        .post("/domains", target("identity:create_domain"), create)
        .get("/domains/{id}", target("identity:get_domain"), show)
        .patch("/domains/{id}", target("identity:update_domain"), update)
        .delete("/domains/{id}", target("identity:delete_domain"), delete)
}

pub fn render(ident: &Ctx, d: &Domain) -> Value {
    with_extra(
        json!({
            "id": d.id, "name": d.name, "description": d.description, "enabled": d.enabled,
            "tags": d.tags, "options": d.options, "links": self_link(ident, &format!("domains/{}", d.id)),
        }),
        &d.extra,
    )
}

#[derive(Deserialize)]
struct DomainBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    options: Option<Extra>,
    #[serde(default)]
    explicit_domain_id: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(flatten)]
    extra: Extra,
}

async fn list(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_domains", &json!({}))?;
    let m = ident.model();
    let items = m
        .domains
        .values()
        .filter(|d| text_filter(&params, "name", &d.name))
        .filter(|d| params.get("enabled").is_none_or(|e| d.enabled == query_bool(e)))
        .map(|d| render(&ident, d))
        .collect();
    Ok(list_response(&ident, "domains", items, "domains"))
}

async fn show(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain", &json!({"target": {"domain": {"id": id}}}))?;
    let m = ident.model();
    let d = m.domains.get(&id).ok_or_else(|| not_found("domain", &id))?;
    Ok(Json(json!({"domain": render(&ident, d)})).into_response())
}

async fn create(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_domain", &json!({}))?;
    let b: DomainBody = parse("domain", member(body, "domain")?)?;
    if b.id.is_some() {
        return Err(ApiError::bad_request(
            "Invalid input for field 'id': use explicit_domain_id to choose a domain's id.",
        ));
    }
    let name = b.name.ok_or_else(|| ApiError::bad_request("'name' is a required property"))?;
    check_name("name", &name, 64)?;
    let d = Domain {
        id: b.explicit_domain_id.unwrap_or_else(new_id),
        name,
        description: b.description.unwrap_or_default(),
        enabled: b.enabled.unwrap_or(true),
        tags: b.tags.unwrap_or_default(),
        options: b.options.unwrap_or_default(),
        extra: b.extra,
    };
    let saved = ident.write(|t| service::domains::create(t, d)).await?;
    Ok(created(json!({"domain": render(&ident, &saved)})))
}

async fn update(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_domain", &json!({"target": {"domain": {"id": id}}}))?;
    let b: DomainBody = parse("domain", member(body, "domain")?)?;
    if b.id.as_ref().is_some_and(|v| v.as_str() != Some(id.as_str())) {
        return Err(ApiError::bad_request("Cannot change the id of a domain."));
    }
    if let Some(n) = &b.name {
        check_name("name", n, 64)?;
    }
    let patch = DomainPatch {
        name: b.name,
        description: b.description,
        enabled: b.enabled,
        tags: b.tags,
        options: b.options,
        extra: b.extra,
    };
    let saved = ident.write(|t| service::domains::update(t, &id, patch)).await?;
    Ok(Json(json!({"domain": render(&ident, &saved)})).into_response())
}

pub async fn delete(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_domain", &json!({"target": {"domain": {"id": id}}}))?;
    ident.write(|t| service::domains::delete(t, &id)).await?;
    Ok(no_content())
}
