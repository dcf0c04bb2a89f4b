//! Unified limits: registered limits (a service's default per resource) and the project or
//! domain limits that override them. Each is a document keyed by service, region and
//! resource; a limit needs a registered limit with its key, which then cannot change.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Error, Result, Txn};
use crate::model::{Document, Limit, Model, RegisteredLimit};

fn s<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}

/// The unique key of a (registered) limit: service, region, resource (and project).
pub fn key(o: &Map<String, Value>) -> String {
    format!(
        "{}/{}/{}",
        s(o, "service_id").unwrap_or(""),
        s(o, "region_id").unwrap_or(""),
        s(o, "resource_name").unwrap_or("")
    )
}

/// Checks that the service and region a (registered) limit names exist.
fn check_refs(m: &Model, o: &Map<String, Value>) -> Result<()> {
    let service = s(o, "service_id").unwrap_or_default();
    if !m.services.contains_key(service) {
        return Err(Error::validation(format!("Invalid service_id {service}: no such service.")));
    }
    if let Some(r) = s(o, "region_id") {
        if !m.regions.contains_key(r) {
            return Err(Error::validation(format!("Invalid region_id {r}: no such region.")));
        }
    }
    Ok(())
}

/// Stores new registered limits (validated documents, each with its key), all or none.
pub fn create_registered(t: &mut Txn, docs: Vec<Document>) -> Result<Vec<Arc<RegisteredLimit>>> {
    let mut out = Vec::new();
    for d in docs {
        check_refs(&t.m, &d.body)?;
        out.push(t.put(RegisteredLimit(d))?);
    }
    Ok(out)
}

/// Merges `patch` (validated; `id` is ignored) into a registered limit; its key may change
/// only while no limit uses it.
pub fn update_registered(t: &mut Txn, id: &str, patch: Map<String, Value>) -> Result<Arc<RegisteredLimit>> {
    let mut d = t.m.registered_limits.get(id).ok_or_else(|| Error::not_found("registered limit", id))?.0.clone();
    let old_key = key(&d.body);
    for (k, v) in patch {
        if k != "id" {
            d.body.insert(k, v);
        }
    }
    let new_key = key(&d.body);
    if new_key != old_key && t.m.limits.values().any(|l| key(&l.0.body) == old_key) {
        return Err(Error::Forbidden(
            "The registered limit is referenced by project limits; its service, region and resource cannot change."
                .into(),
        ));
    }
    check_refs(&t.m, &d.body)?;
    d.uniq = Some(new_key);
    Ok(t.put(RegisteredLimit(d))?)
}

/// Deletes a registered limit no limit uses.
pub fn delete_registered(t: &mut Txn, id: &str) -> Result<()> {
    let d = t.m.registered_limits.get(id).ok_or_else(|| Error::not_found("registered limit", id))?;
    let k = key(&d.0.body);
    if t.m.limits.values().any(|l| key(&l.0.body) == k) {
        return Err(Error::Forbidden(
            "The registered limit is referenced by project limits; delete them first.".into(),
        ));
    }
    t.delete::<RegisteredLimit>(id);
    Ok(())
}

/// Stores new limits (validated documents, each with its owner and key), all or none: each
/// names an existing project or domain and has a registered limit.
pub fn create_limits(t: &mut Txn, docs: Vec<Document>) -> Result<Vec<Arc<Limit>>> {
    let mut out = Vec::new();
    for d in docs {
        check_refs(&t.m, &d.body)?;
        if let Some(p) = s(&d.body, "project_id") {
            if !t.m.projects.contains_key(p) {
                return Err(Error::validation(format!("Invalid project_id {p}: no such project.")));
            }
        }
        if let Some(dm) = s(&d.body, "domain_id") {
            if !t.m.domains.contains_key(dm) {
                return Err(Error::validation(format!("Invalid domain_id {dm}: no such domain.")));
            }
        }
        let k = key(&d.body);
        if !t.m.registered_limits.values().any(|r| key(&r.0.body) == k) {
            return Err(Error::Forbidden(format!("No registered limit for {k}; register one first.")));
        }
        out.push(t.put(Limit(d))?);
    }
    Ok(out)
}

/// Merges `patch` (validated: `resource_limit` and `description` only) into a limit.
pub fn update_limit(t: &mut Txn, id: &str, patch: Map<String, Value>) -> Result<Arc<Limit>> {
    let mut d = t.m.limits.get(id).ok_or_else(|| Error::not_found("limit", id))?.0.clone();
    d.body.extend(patch);
    Ok(t.put(Limit(d))?)
}

pub fn delete_limit(t: &mut Txn, id: &str) -> Result<()> {
    t.delete::<Limit>(id).ok_or_else(|| Error::not_found("limit", id))?;
    Ok(())
}
