//! Which endpoints a project's catalog shows (the OS-EP-FILTER associations: endpoints and
//! endpoint groups associated with the project). Read by the catalog and by the
//! endpoint-filter API alike.

use serde_json::{json, Value};

use super::{Error, Result, Txn};
use crate::model::{Document, Endpoint, EndpointGroup, Model, ProjectEndpoint};

/// A string field of a stored association document.
pub fn field<'a>(d: &'a Document, k: &str) -> Option<&'a str> {
    d.body.get(k).and_then(Value::as_str)
}

/// Whether an endpoint matches an endpoint group's filters (`service_id`, `region_id`, `interface`).
pub fn group_matches(group: &EndpointGroup, e: &Endpoint) -> bool {
    let Some(filters) = group.0.body.get("filters").and_then(Value::as_object) else { return false };
    filters.iter().all(|(k, v)| {
        let want = v.as_str();
        match k.as_str() {
            "service_id" => want == Some(e.service_id.as_str()),
            "region_id" => want == e.region_id.as_deref(),
            "interface" => want == Some(e.interface.as_str()),
            _ => false,
        }
    })
}

/// The endpoints a project's catalog may show, or `None` when it has no associations.
pub fn allowed_endpoints(m: &Model, project_id: &str) -> Option<Vec<String>> {
    let assoc: Vec<&Document> =
        m.project_endpoints.values().map(|pe| &pe.0).filter(|d| field(d, "project_id") == Some(project_id)).collect();
    if assoc.is_empty() {
        return None;
    }
    let mut out: Vec<String> = assoc.iter().filter_map(|d| field(d, "endpoint_id")).map(str::to_string).collect();
    for d in &assoc {
        if let Some(g) = field(d, "endpoint_group_id").and_then(|g| m.endpoint_groups.get(g)) {
            out.extend(m.endpoints.values().filter(|e| group_matches(g, e)).map(|e| e.id.clone()));
        }
    }
    Some(out)
}

/// The id of the association of an endpoint with a project.
pub fn endpoint_association(project: &str, endpoint: &str) -> String {
    format!("ep:{project}/{endpoint}")
}

/// The id of the association of an endpoint group with a project.
pub fn group_association(project: &str, group: &str) -> String {
    format!("eg:{project}/{group}")
}

/// Checks that the project, and the endpoint or endpoint group when given, exist.
pub fn exists(m: &Model, project: &str, endpoint: Option<&str>, group: Option<&str>) -> Result<()> {
    if !m.projects.contains_key(project) {
        return Err(Error::not_found("project", project));
    }
    if let Some(e) = endpoint.filter(|e| !m.endpoints.contains_key(*e)) {
        return Err(Error::not_found("endpoint", e));
    }
    if let Some(g) = group.filter(|g| !m.endpoint_groups.contains_key(*g)) {
        return Err(Error::not_found("endpoint group", g));
    }
    Ok(())
}

fn associate(t: &mut Txn, id: String, body: Value) -> Result<()> {
    t.put(ProjectEndpoint(Document { id, uniq: None, body: body.as_object().cloned().unwrap_or_default() }))?;
    Ok(())
}

/// Shows an existing endpoint in an existing project's catalog (again is a no-op).
pub fn add_endpoint(t: &mut Txn, project: &str, endpoint: &str) -> Result<()> {
    exists(&t.m, project, Some(endpoint), None)?;
    associate(t, endpoint_association(project, endpoint), json!({"project_id": project, "endpoint_id": endpoint}))
}

pub fn remove_endpoint(t: &mut Txn, project: &str, endpoint: &str) -> Result<()> {
    t.delete::<ProjectEndpoint>(&endpoint_association(project, endpoint))
        .ok_or_else(|| Error::not_found("project endpoint", format!("{endpoint} in {project}")))?;
    Ok(())
}

/// Shows an existing endpoint group's endpoints in an existing project's catalog (again is a
/// no-op).
pub fn add_group(t: &mut Txn, group: &str, project: &str) -> Result<()> {
    exists(&t.m, project, None, Some(group))?;
    associate(t, group_association(project, group), json!({"project_id": project, "endpoint_group_id": group}))
}

pub fn remove_group(t: &mut Txn, group: &str, project: &str) -> Result<()> {
    t.delete::<ProjectEndpoint>(&group_association(project, group))
        .ok_or_else(|| Error::not_found("project endpoint group", format!("{group} in {project}")))?;
    Ok(())
}
