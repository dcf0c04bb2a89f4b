//! Which endpoints a project's catalog shows (the OS-EP-FILTER associations: endpoints and
//! endpoint groups associated with the project). Read by the catalog and by the
//! endpoint-filter API alike.

use serde_json::Value;

use crate::model::{Document, Endpoint, EndpointGroup, Model};

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
