//! `/v3/projects`, with the project hierarchy and project tags.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::http::Json as Body;
use haneul_core::routes::{target as asks, Access, Routes};
use haneul_core::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    check_name, created, enforce, list_response, member, no_content, not_found, parse, query_bool, self_link,
    text_filter, with_extra, ApiResult, Ctx, Params,
};
use crate::model::{Extra, Model, Project};
use crate::service::domains::DomainPatch;
use crate::service::projects::{ProjectPatch, MAX_TAGS};
use crate::service::{self, new_id};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/projects", asks("identity:list_projects"), list)
        .post("/projects", Access::TargetAny(&["identity:create_project", "identity:create_domain"]), create)
        .get("/projects/{id}", asks("identity:get_project"), show)
        .patch("/projects/{id}", Access::TargetAny(&["identity:update_project", "identity:update_domain"]), update)
        .delete("/projects/{id}", asks("identity:delete_project"), delete)
        .get("/projects/{id}/tags", asks("identity:list_project_tags"), list_tags)
        .put("/projects/{id}/tags", asks("identity:update_project_tags"), replace_tags)
        .delete("/projects/{id}/tags", asks("identity:delete_project_tags"), clear_tags)
        .get("/projects/{id}/tags/{tag}", asks("identity:get_project_tag"), check_tag)
        .put("/projects/{id}/tags/{tag}", asks("identity:create_project_tag"), add_tag)
        .delete("/projects/{id}/tags/{tag}", asks("identity:delete_project_tag"), remove_tag)
}

pub fn render(ident: &Ctx, p: &Project) -> Value {
    with_extra(
        json!({
            "id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description,
            "enabled": p.enabled, "parent_id": p.parent_id.clone().unwrap_or_else(|| p.domain_id.clone()),
            "is_domain": false, "tags": p.tags, "options": p.options,
            "links": self_link(ident, &format!("projects/{}", p.id)),
        }),
        &p.extra,
    )
}

/// A domain seen through the projects API (`is_domain: true`), as Keystone shows it.
fn render_domain(ident: &Ctx, d: &crate::model::Domain) -> Value {
    json!({
        "id": d.id, "name": d.name, "domain_id": null, "description": d.description, "enabled": d.enabled,
        "parent_id": null, "is_domain": true, "tags": d.tags, "options": d.options,
        "links": self_link(ident, &format!("projects/{}", d.id)),
    })
}

fn target(p: &Project) -> Value {
    json!({"target": {"project": {"id": p.id, "domain_id": p.domain_id}}})
}

#[derive(Deserialize)]
struct ProjectBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    domain_id: Option<String>,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    is_domain: Option<bool>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    options: Option<Extra>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(flatten)]
    extra: Extra,
}

fn check_tags(tags: &[String]) -> ApiResult<()> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field 'tags': at most {MAX_TAGS} tags are allowed"
        )));
    }
    for t in tags {
        check_tag_name(t)?;
    }
    Ok(())
}

fn check_tag_name(t: &str) -> ApiResult<()> {
    if t.is_empty() || t.chars().count() > 255 || t.contains('/') || t.contains(',') {
        return Err(ApiError::bad_request(format!("Invalid input for field 'tags': '{t}' is not a valid tag")));
    }
    Ok(())
}

fn tag_filter(params: &Params, tags: &[String]) -> bool {
    let split = |k: &str| params.get(k).map(|v| v.split(',').map(str::to_string).collect::<Vec<_>>());
    if let Some(all) = split("tags") {
        if !all.iter().all(|t| tags.contains(t)) {
            return false;
        }
    }
    if let Some(any) = split("tags-any") {
        if !any.iter().any(|t| tags.contains(t)) {
            return false;
        }
    }
    if let Some(all) = split("not-tags") {
        if all.iter().all(|t| tags.contains(t)) {
            return false;
        }
    }
    if let Some(any) = split("not-tags-any") {
        if any.iter().any(|t| tags.contains(t)) {
            return false;
        }
    }
    true
}

async fn list(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    let domain_filter = params.get("domain_id").cloned();
    enforce(&ident, &auth.0, "identity:list_projects", &json!({"target": {"domain_id": domain_filter}}))?;
    let m = ident.model();
    if params.get("is_domain").is_some_and(|v| query_bool(v)) {
        let items = m
            .domains
            .values()
            .filter(|d| text_filter(&params, "name", &d.name))
            .filter(|d| params.get("enabled").is_none_or(|e| d.enabled == query_bool(e)))
            .map(|d| render_domain(&ident, d))
            .collect();
        return Ok(list_response(&ident, "projects", items, "projects"));
    }
    let items = m
        .projects
        .values()
        .filter(|p| domain_filter.as_ref().is_none_or(|d| &p.domain_id == d))
        .filter(|p| text_filter(&params, "name", &p.name))
        .filter(|p| params.get("enabled").is_none_or(|e| p.enabled == query_bool(e)))
        .filter(|p| params.get("parent_id").is_none_or(|pid| p.parent_id.as_deref().unwrap_or(&p.domain_id) == pid))
        .filter(|_| params.get("is_domain").is_none_or(|v| !query_bool(v)))
        .filter(|p| tag_filter(&params, &p.tags))
        .map(|p| render(&ident, p))
        .collect();
    Ok(list_response(&ident, "projects", items, "projects"))
}

fn parents_as_list(ident: &Ctx, m: &Model, p: &Project) -> Vec<Value> {
    m.project_parents(p).iter().map(|pp| json!({"project": render(ident, pp)})).collect()
}

fn parents_as_ids(m: &Model, p: &Project) -> Value {
    let mut out = Value::Null;
    for pp in m.project_parents(p).iter().rev() {
        out = json!({ pp.id.clone(): out });
    }
    out
}

fn subtree_as_ids(m: &Model, id: &str) -> Value {
    let children: Vec<_> = m.projects.values().filter(|c| c.parent_id.as_deref() == Some(id)).collect();
    if children.is_empty() {
        return Value::Null;
    }
    let mut map = serde_json::Map::new();
    for c in children {
        map.insert(c.id.clone(), subtree_as_ids(m, &c.id));
    }
    Value::Object(map)
}

async fn show(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, params: Params) -> ApiResult {
    let m = ident.model();
    let p = m.projects.get(&id);
    let t = p.map(|p| target(p)).unwrap_or_else(|| json!({"target": {"project": {"id": id}}}));
    enforce(&ident, &auth.0, "identity:get_project", &t)?;
    if let (None, Some(d)) = (p, m.domains.get(&id)) {
        return Ok(Json(json!({"project": render_domain(&ident, d)})).into_response());
    }
    let p = p.ok_or_else(|| not_found("project", &id))?;
    let mut v = render(&ident, p);
    if params.contains_key("parents_as_list") {
        v["parents"] = json!(parents_as_list(&ident, &m, p));
    } else if params.contains_key("parents_as_ids") {
        v["parents"] = parents_as_ids(&m, p);
    }
    if params.contains_key("subtree_as_list") {
        let sub: Vec<Value> = m.project_subtree(&p.id).iter().map(|c| json!({"project": render(&ident, c)})).collect();
        v["subtree"] = json!(sub);
    } else if params.contains_key("subtree_as_ids") {
        v["subtree"] = subtree_as_ids(&m, &p.id);
    }
    Ok(Json(json!({"project": v})).into_response())
}

async fn create(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    let b: ProjectBody = parse("project", member(body, "project")?)?;
    if b.id.is_some() {
        return Err(ApiError::bad_request("Invalid input for field 'id': a project's id cannot be chosen."));
    }
    let name = b.name.ok_or_else(|| ApiError::bad_request("'name' is a required property"))?;
    check_name("name", &name, 64)?;
    if b.is_domain == Some(true) {
        // A project acting as a domain is a domain, reachable through both APIs.
        if b.parent_id.is_some() || b.domain_id.is_some() {
            return Err(ApiError::bad_request("A project acting as a domain has no parent and no domain."));
        }
        enforce(&ident, &auth.0, "identity:create_domain", &json!({}))?;
        let d = crate::model::Domain {
            id: new_id(),
            name,
            description: b.description.unwrap_or_default(),
            enabled: b.enabled.unwrap_or(true),
            tags: b.tags.unwrap_or_default(),
            options: b.options.unwrap_or_default(),
            extra: b.extra,
        };
        let saved = ident.write(|t| service::domains::create(t, d)).await?;
        return Ok(created(json!({"project": render_domain(&ident, &saved)})));
    }
    if let Some(tags) = &b.tags {
        check_tags(tags)?;
    }
    let fallback_domain = auth.0.domain_id().map(str::to_string).unwrap_or_else(|| auth.0.user_domain.id.clone());
    let (domain_id, parent_id) =
        service::projects::placement(&ident.model(), b.parent_id.as_deref(), b.domain_id.as_deref(), &fallback_domain)?;
    let project = Project {
        id: new_id(),
        name,
        domain_id,
        parent_id,
        description: b.description.unwrap_or_default(),
        enabled: b.enabled.unwrap_or(true),
        tags: b.tags.unwrap_or_default(),
        options: b.options.unwrap_or_default(),
        extra: b.extra,
    };
    enforce(&ident, &auth.0, "identity:create_project", &target(&project))?;
    let saved = ident.write(|t| service::projects::create(t, project)).await?;
    Ok(created(json!({"project": render(&ident, &saved)})))
}

async fn update(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>) -> ApiResult {
    let b: ProjectBody = parse("project", member(body, "project")?)?;
    if !ident.model().projects.contains_key(&id) && ident.model().domains.contains_key(&id) {
        enforce(&ident, &auth.0, "identity:update_domain", &json!({"target": {"domain": {"id": id}}}))?;
        let patch = DomainPatch { name: b.name, description: b.description, enabled: b.enabled, ..Default::default() };
        let saved = ident.write(|t| service::domains::update_as_project(t, &id, patch)).await?;
        return Ok(Json(json!({"project": render_domain(&ident, &saved)})).into_response());
    }
    {
        let m = ident.model();
        let p = m.projects.get(&id).ok_or_else(|| not_found("project", &id))?;
        enforce(&ident, &auth.0, "identity:update_project", &target(p))?;
        if b.domain_id.as_ref().is_some_and(|d| d != &p.domain_id) {
            return Err(ApiError::bad_request("Cannot change the domain_id of a project."));
        }
        if b.parent_id.as_ref().is_some_and(|x| x != p.parent_id.as_ref().unwrap_or(&p.domain_id)) {
            return Err(ApiError::forbidden("Cannot change the parent_id of a project."));
        }
        if b.is_domain == Some(true) || b.id.as_ref().is_some_and(|v| v.as_str() != Some(id.as_str())) {
            return Err(ApiError::bad_request("Cannot change the id or is_domain of a project."));
        }
    }
    if let Some(n) = &b.name {
        check_name("name", n, 64)?;
    }
    if let Some(tags) = &b.tags {
        check_tags(tags)?;
    }
    let patch = ProjectPatch {
        name: b.name,
        description: b.description,
        tags: b.tags,
        options: b.options,
        enabled: b.enabled,
        extra: b.extra,
    };
    let saved = ident.write(|t| service::projects::update(t, &id, patch)).await?;
    Ok(Json(json!({"project": render(&ident, &saved)})).into_response())
}

async fn delete(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    if !ident.model().projects.contains_key(&id) && ident.model().domains.contains_key(&id) {
        return super::domains::delete(State(ident), auth, Path(id)).await;
    }
    {
        let m = ident.model();
        let p = m.projects.get(&id).ok_or_else(|| not_found("project", &id))?;
        enforce(&ident, &auth.0, "identity:delete_project", &target(p))?;
    }
    ident.write(|t| service::projects::delete(t, &id)).await?;
    Ok(no_content())
}

// ------------------------------------------------------------------------------------- tags

async fn tags_of(ident: &Ctx, auth: &Auth, id: &str, rule: &str) -> ApiResult<Project> {
    let m = ident.model();
    let p = m.projects.get(id).ok_or_else(|| not_found("project", id))?;
    enforce(ident, &auth.0, rule, &target(p))?;
    Ok((**p).clone())
}

async fn list_tags(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    let p = tags_of(&ident, &auth, &id, "identity:list_project_tags").await?;
    Ok(Json(json!({"tags": p.tags, "links": self_link(&ident, &format!("projects/{id}/tags"))})).into_response())
}

async fn check_tag(State(ident): State<Ctx>, auth: Auth, Path((id, tag)): Path<(String, String)>) -> ApiResult {
    let p = tags_of(&ident, &auth, &id, "identity:get_project_tag").await?;
    if p.tags.contains(&tag) {
        Ok(no_content())
    } else {
        Err(not_found("project tag", &tag))
    }
}

async fn replace_tags(
    State(ident): State<Ctx>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    tags_of(&ident, &auth, &id, "identity:update_project_tags").await?;
    let tags: Vec<String> = body
        .get("tags")
        .cloned()
        .ok_or_else(|| ApiError::bad_request("'tags' is a required property"))
        .and_then(|v| {
            serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("Invalid input for field 'tags': {e}")))
        })?;
    check_tags(&tags)?;
    let p = ident.write(|t| service::projects::set_tags(t, &id, tags)).await?;
    Ok(Json(json!({"tags": p.tags, "links": self_link(&ident, &format!("projects/{id}/tags"))})).into_response())
}

async fn clear_tags(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    tags_of(&ident, &auth, &id, "identity:delete_project_tags").await?;
    ident.write(|t| service::projects::set_tags(t, &id, vec![])).await?;
    Ok(no_content())
}

async fn add_tag(State(ident): State<Ctx>, auth: Auth, Path((id, tag)): Path<(String, String)>) -> ApiResult {
    tags_of(&ident, &auth, &id, "identity:create_project_tag").await?;
    check_tag_name(&tag)?;
    ident.write(|t| service::projects::add_tag(t, &id, tag)).await?;
    Ok(axum::http::StatusCode::CREATED.into_response())
}

async fn remove_tag(State(ident): State<Ctx>, auth: Auth, Path((id, tag)): Path<(String, String)>) -> ApiResult {
    tags_of(&ident, &auth, &id, "identity:delete_project_tag").await?;
    ident.write(|t| service::projects::remove_tag(t, &id, &tag)).await?;
    Ok(no_content())
}
