//! OS-EP-FILTER: which endpoints a project's catalog shows, by direct association or through
//! endpoint groups. A project with no association sees every enabled endpoint.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::routes::{target, Routes};
use serde_json::json;

use super::{enforce, list_response, no_content, not_found, ApiResult, Ctx};
use crate::service;
use crate::service::endpoints::{
    allowed_endpoints, endpoint_association, exists, field, group_association, group_matches,
};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get(
            "/OS-EP-FILTER/projects/{project}/endpoints",
            target("identity:list_endpoints_for_project"),
            project_endpoints,
        )
        .get(
            "/OS-EP-FILTER/projects/{project}/endpoints/{endpoint}",
            target("identity:check_endpoint_in_project"),
            check_ep,
        )
        .head(
            "/OS-EP-FILTER/projects/{project}/endpoints/{endpoint}",
            target("identity:check_endpoint_in_project"),
            check_ep,
        )
        .put(
            "/OS-EP-FILTER/projects/{project}/endpoints/{endpoint}",
            target("identity:add_endpoint_to_project"),
            add_ep,
        )
        .delete(
            "/OS-EP-FILTER/projects/{project}/endpoints/{endpoint}",
            target("identity:remove_endpoint_from_project"),
            remove_ep,
        )
        .get(
            "/OS-EP-FILTER/endpoints/{endpoint}/projects",
            target("identity:list_projects_for_endpoint"),
            endpoint_projects,
        )
        .get(
            "/OS-EP-FILTER/projects/{project}/endpoint_groups",
            target("identity:list_endpoint_groups_for_project"),
            project_groups,
        )
        .get(
            "/OS-EP-FILTER/endpoint_groups/{group}/projects",
            target("identity:list_projects_associated_with_endpoint_group"),
            group_projects,
        )
        .get(
            "/OS-EP-FILTER/endpoint_groups/{group}/endpoints",
            target("identity:list_endpoints_associated_with_endpoint_group"),
            group_endpoints,
        )
        .get(
            "/OS-EP-FILTER/endpoint_groups/{group}/projects/{project}",
            target("identity:get_endpoint_group_in_project"),
            get_eg,
        )
        .head(
            "/OS-EP-FILTER/endpoint_groups/{group}/projects/{project}",
            target("identity:get_endpoint_group_in_project"),
            get_eg,
        )
        .put(
            "/OS-EP-FILTER/endpoint_groups/{group}/projects/{project}",
            target("identity:add_endpoint_group_to_project"),
            add_eg,
        )
        .delete(
            "/OS-EP-FILTER/endpoint_groups/{group}/projects/{project}",
            target("identity:remove_endpoint_group_from_project"),
            remove_eg,
        )
}

async fn add_ep(State(ident): State<Ctx>, auth: Auth, Path((project, endpoint)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:add_endpoint_to_project", &json!({}))?;
    ident.write(|t| service::endpoints::add_endpoint(t, &project, &endpoint)).await?;
    Ok(no_content())
}

async fn check_ep(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((project, endpoint)): Path<(String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:check_endpoint_in_project", &json!({}))?;
    let m = ident.model();
    exists(&m, &project, Some(&endpoint), None)?;
    if m.project_endpoints.contains_key(&endpoint_association(&project, &endpoint)) {
        Ok(no_content())
    } else {
        Err(not_found("project endpoint", &format!("{endpoint} in {project}")))
    }
}

async fn remove_ep(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((project, endpoint)): Path<(String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:remove_endpoint_from_project", &json!({}))?;
    ident.write(|t| service::endpoints::remove_endpoint(t, &project, &endpoint)).await?;
    Ok(no_content())
}

async fn project_endpoints(State(ident): State<Ctx>, auth: Auth, Path(project): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_endpoints_for_project", &json!({}))?;
    let m = ident.model();
    exists(&m, &project, None, None)?;
    let allowed = allowed_endpoints(&m, &project).unwrap_or_default();
    let items = m
        .endpoints
        .values()
        .filter(|e| allowed.contains(&e.id))
        .map(|e| super::catalog::render_endpoint(&ident, e))
        .collect();
    Ok(list_response(&ident, "endpoints", items, &format!("OS-EP-FILTER/projects/{project}/endpoints")))
}

async fn endpoint_projects(State(ident): State<Ctx>, auth: Auth, Path(endpoint): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_projects_for_endpoint", &json!({}))?;
    let m = ident.model();
    if !m.endpoints.contains_key(&endpoint) {
        return Err(not_found("endpoint", &endpoint));
    }
    let items = m
        .project_endpoints
        .values()
        .filter(|pe| field(&pe.0, "endpoint_id") == Some(endpoint.as_str()))
        .filter_map(|pe| field(&pe.0, "project_id").and_then(|p| m.projects.get(p)))
        .map(|p| super::projects::render(&ident, p))
        .collect();
    Ok(list_response(&ident, "projects", items, &format!("OS-EP-FILTER/endpoints/{endpoint}/projects")))
}

async fn add_eg(State(ident): State<Ctx>, auth: Auth, Path((group, project)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:add_endpoint_group_to_project", &json!({}))?;
    ident.write(|t| service::endpoints::add_group(t, &group, &project)).await?;
    Ok(no_content())
}

async fn get_eg(State(ident): State<Ctx>, auth: Auth, Path((group, project)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_endpoint_group_in_project", &json!({}))?;
    let m = ident.model();
    exists(&m, &project, None, Some(&group))?;
    if !m.project_endpoints.contains_key(&group_association(&project, &group)) {
        return Err(not_found("project endpoint group", &format!("{group} in {project}")));
    }
    let p = &m.projects[&project];
    Ok((StatusCode::OK, Json(json!({"project": super::projects::render(&ident, p)}))).into_response())
}

async fn remove_eg(State(ident): State<Ctx>, auth: Auth, Path((group, project)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:remove_endpoint_group_from_project", &json!({}))?;
    ident.write(|t| service::endpoints::remove_group(t, &group, &project)).await?;
    Ok(no_content())
}

async fn project_groups(State(ident): State<Ctx>, auth: Auth, Path(project): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_endpoint_groups_for_project", &json!({}))?;
    let m = ident.model();
    exists(&m, &project, None, None)?;
    let items = m
        .project_endpoints
        .values()
        .filter(|pe| field(&pe.0, "project_id") == Some(project.as_str()))
        .filter_map(|pe| field(&pe.0, "endpoint_group_id").and_then(|g| m.endpoint_groups.get(g)))
        .map(|g| super::registry::render(&ident, &super::registry::ENDPOINT_GROUP, &g.0))
        .collect();
    Ok(list_response(&ident, "endpoint_groups", items, &format!("OS-EP-FILTER/projects/{project}/endpoint_groups")))
}

async fn group_projects(State(ident): State<Ctx>, auth: Auth, Path(group): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_projects_associated_with_endpoint_group", &json!({}))?;
    let m = ident.model();
    if !m.endpoint_groups.contains_key(&group) {
        return Err(not_found("endpoint group", &group));
    }
    let items = m
        .project_endpoints
        .values()
        .filter(|pe| field(&pe.0, "endpoint_group_id") == Some(group.as_str()))
        .filter_map(|pe| field(&pe.0, "project_id").and_then(|p| m.projects.get(p)))
        .map(|p| super::projects::render(&ident, p))
        .collect();
    Ok(list_response(&ident, "projects", items, &format!("OS-EP-FILTER/endpoint_groups/{group}/projects")))
}

async fn group_endpoints(State(ident): State<Ctx>, auth: Auth, Path(group): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_endpoints_associated_with_endpoint_group", &json!({}))?;
    let m = ident.model();
    let g = m.endpoint_groups.get(&group).ok_or_else(|| not_found("endpoint group", &group))?;
    let items = m
        .endpoints
        .values()
        .filter(|e| group_matches(g, e))
        .map(|e| super::catalog::render_endpoint(&ident, e))
        .collect();
    Ok(list_response(&ident, "endpoints", items, &format!("OS-EP-FILTER/endpoint_groups/{group}/endpoints")))
}
