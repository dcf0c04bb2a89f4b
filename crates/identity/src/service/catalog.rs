//! The service catalog's records: regions (a tree), services and their endpoints.

use std::sync::Arc;

use serde_json::Value;

use super::{Error, Result, Txn};
use crate::model::{Endpoint, Extra, ProjectEndpoint, Region, Service};

// ------------------------------------------------------------------------------------ regions

/// Stores a new region under a free id, below an existing parent.
pub fn create_region(t: &mut Txn, region: Region) -> Result<Arc<Region>> {
    if t.m.regions.contains_key(&region.id) {
        return Err(Error::Conflict(format!(
            "Conflict occurred attempting to store region - Duplicate ID, {}.",
            region.id
        )));
    }
    if let Some(p) = &region.parent_region_id {
        if !t.m.regions.contains_key(p) {
            return Err(Error::not_found("region", p.clone()));
        }
    }
    Ok(t.put(region)?)
}

/// The attributes a region update may change; `None` leaves one as it is.
#[derive(Default)]
pub struct RegionPatch {
    pub description: Option<String>,
    pub parent_region_id: Option<String>,
    /// Merged into the attributes Keystone does not know.
    pub extra: Extra,
}

pub fn update_region(t: &mut Txn, id: &str, patch: RegionPatch) -> Result<Arc<Region>> {
    let mut r = t.edit(&t.m.regions, "region", id)?;
    if let Some(d) = patch.description {
        r.description = d;
    }
    if let Some(p) = patch.parent_region_id {
        if p == id || !t.m.regions.contains_key(&p) {
            return Err(Error::validation(format!("Invalid parent region {p}.")));
        }
        r.parent_region_id = Some(p);
    }
    r.extra.extend(patch.extra);
    Ok(t.put(r)?)
}

/// Deletes a region without child regions.
pub fn delete_region(t: &mut Txn, id: &str) -> Result<()> {
    if !t.m.regions.contains_key(id) {
        return Err(Error::not_found("region", id));
    }
    if t.m.regions.values().any(|r| r.parent_region_id.as_deref() == Some(id)) {
        return Err(Error::Forbidden(format!(
            "Unable to delete region {id} because it or its child regions have associated endpoints."
        )));
    }
    t.delete::<Region>(id);
    Ok(())
}

/// Endpoints may name a region that does not exist yet; Keystone creates it.
fn ensure_region(t: &mut Txn, id: &str) -> Result<()> {
    if !t.m.regions.contains_key(id) {
        t.put(Region { id: id.to_string(), description: String::new(), parent_region_id: None, extra: Extra::new() })?;
    }
    Ok(())
}

// ----------------------------------------------------------------------------------- services

pub fn create_service(t: &mut Txn, s: Service) -> Result<Arc<Service>> {
    Ok(t.put(s)?)
}

/// The attributes a service update may change; `None` leaves one as it is.
#[derive(Default)]
pub struct ServicePatch {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    /// Merged into the attributes Keystone does not know.
    pub extra: Extra,
}

pub fn update_service(t: &mut Txn, id: &str, patch: ServicePatch) -> Result<Arc<Service>> {
    let mut s = t.edit(&t.m.services, "service", id)?;
    if let Some(k) = patch.kind {
        s.kind = k;
    }
    if patch.name.is_some() {
        s.name = patch.name;
    }
    if patch.description.is_some() {
        s.description = patch.description;
    }
    if let Some(e) = patch.enabled {
        s.enabled = e;
    }
    s.extra.extend(patch.extra);
    Ok(t.put(s)?)
}

/// Deletes a service with its endpoints.
pub fn delete_service(t: &mut Txn, id: &str) -> Result<()> {
    t.delete::<Service>(id).ok_or_else(|| Error::not_found("service", id))?;
    t.delete_where::<Endpoint>(|e| e.service_id == id);
    Ok(())
}

// ---------------------------------------------------------------------------------- endpoints

fn no_service(id: &str) -> Error {
    Error::validation(format!("Could not find service: {id}."))
}

/// Stores a new endpoint of an existing service, creating its region if need be.
pub fn create_endpoint(t: &mut Txn, e: Endpoint) -> Result<Arc<Endpoint>> {
    if !t.m.services.contains_key(&e.service_id) {
        return Err(no_service(&e.service_id));
    }
    if let Some(r) = &e.region_id {
        ensure_region(t, r)?;
    }
    Ok(t.put(e)?)
}

/// The attributes an endpoint update may change; `None` leaves one as it is.
#[derive(Default)]
pub struct EndpointPatch {
    pub interface: Option<String>,
    pub service_id: Option<String>,
    pub region_id: Option<String>,
    pub url: Option<String>,
    pub enabled: Option<bool>,
    /// Merged into the attributes Keystone does not know.
    pub extra: Extra,
}

pub fn update_endpoint(t: &mut Txn, id: &str, patch: EndpointPatch) -> Result<Arc<Endpoint>> {
    let mut e = t.edit(&t.m.endpoints, "endpoint", id)?;
    if let Some(i) = patch.interface {
        e.interface = i;
    }
    if let Some(s) = patch.service_id {
        if !t.m.services.contains_key(&s) {
            return Err(no_service(&s));
        }
        e.service_id = s;
    }
    if let Some(r) = patch.region_id {
        ensure_region(t, &r)?;
        e.region_id = Some(r);
    }
    if let Some(u) = patch.url {
        e.url = u;
    }
    if let Some(en) = patch.enabled {
        e.enabled = en;
    }
    e.extra.extend(patch.extra);
    Ok(t.put(e)?)
}

/// Deletes an endpoint with its project associations.
pub fn delete_endpoint(t: &mut Txn, id: &str) -> Result<()> {
    t.delete::<Endpoint>(id).ok_or_else(|| Error::not_found("endpoint", id))?;
    t.delete_where::<ProjectEndpoint>(|pe| pe.0.body.get("endpoint_id").and_then(Value::as_str) == Some(id));
    Ok(())
}
