//! `os-hosts`: Nova's older host API (microversions up to 2.42; 404 from 2.43, where
//! `os-services` and `os-hypervisors` replace it). Hosts are the hosts of the services;
//! a compute host's resources come from its provider in placement and its servers' flavors.
//! Host power actions and maintenance mode are what Nova's libvirt driver answers: 501.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::hosts::{hypervisor_list, Hv};
use super::{ApiResult, Ctx, Mv};
use crate::service::hosts::compute_service;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/os-hosts", rule("os_compute_api:os-hosts:list"), list)
        .get("/os-hosts/{host}", rule("os_compute_api:os-hosts:show"), show)
        .put("/os-hosts/{host}", rule("os_compute_api:os-hosts:update"), update)
        .get("/os-hosts/{host}/reboot", rule("os_compute_api:os-hosts:reboot"), power_action)
        .get("/os-hosts/{host}/shutdown", rule("os_compute_api:os-hosts:shutdown"), power_action)
        .get("/os-hosts/{host}/startup", rule("os_compute_api:os-hosts:start"), power_action)
}

/// The API is gone from 2.43 on.
fn served(mv: Mv) -> ApiResult<()> {
    if mv.at_least(43) {
        Err(ApiError::not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

fn no_host(host: &str) -> ApiError {
    ApiError::not_found(format!("Compute host {host} could not be found."))
}

async fn list(State(c): State<Ctx>, mv: Mv, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    served(mv)?;
    let m = c.model();
    let mut services: Vec<_> = m.services.values().collect();
    services.sort_by_key(|s| s.number);
    let hosts: Vec<Value> = services
        .into_iter()
        .map(|s| (s, m.service_zone(s)))
        // A blank zone filters nothing, as Nova reads it.
        .filter(|(_, zone)| q.get("zone").filter(|z| !z.is_empty()).is_none_or(|z| z == zone))
        .map(|(s, zone)| {
            let service = s.binary.strip_prefix("nova-").unwrap_or(&s.binary);
            json!({"host_name": s.host, "service": service, "zone": zone})
        })
        .collect();
    Ok(Json(json!({"hosts": hosts})).into_response())
}

fn resource(host: &str, project: &str, cpu: i64, memory_mb: i64, disk_gb: i64) -> Value {
    json!({"resource": {"host": host, "project": project, "cpu": cpu, "memory_mb": memory_mb, "disk_gb": disk_gb}})
}

/// The host's totals, what is in use now, what its servers' flavors ask for at most, and
/// that per project, as Nova lists them.
async fn show(State(c): State<Ctx>, mv: Mv, Path(host): Path<String>) -> ApiResult {
    served(mv)?;
    let hv: Hv = hypervisor_list(&c).into_iter().find(|h| h.name == host).ok_or_else(|| no_host(&host))?;
    let m = c.model();
    let mut per_project: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for s in m.servers_on(&host) {
        let e = per_project.entry(&s.project_id).or_default();
        e.0 += s.flavor.vcpus;
        e.1 += s.flavor.ram;
        e.2 += s.flavor.disk + s.flavor.ephemeral;
    }
    let max = per_project.values().fold((0, 0, 0), |a, p| (a.0 + p.0, a.1 + p.1, a.2 + p.2));
    let mut rows = vec![
        resource(&host, "(total)", hv.vcpus, hv.memory_mb, hv.local_gb),
        resource(&host, "(used_now)", hv.vcpus_used, hv.memory_mb_used, hv.local_gb_used),
        resource(&host, "(used_max)", max.0, max.1, max.2),
    ];
    rows.extend(per_project.iter().map(|(p, (cpu, mem, disk))| resource(&host, p, *cpu, *mem, *disk)));
    Ok(Json(json!({"host": rows})).into_response())
}

/// `enable`/`disable` in any case, as Nova's schema lists them.
fn switch(o: &Map<String, Value>, field: &str) -> ApiResult<Option<bool>> {
    match o.get(field) {
        None => Ok(None),
        Some(Value::String(v)) if v.eq_ignore_ascii_case("enable") => Ok(Some(true)),
        Some(Value::String(v)) if v.eq_ignore_ascii_case("disable") => Ok(Some(false)),
        Some(v) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: {v}. {v} is not one of ['enable', 'disable', 'Enable', 'Disable', 'ENABLE', 'DISABLE']"
        ))),
    }
}

/// `PUT /os-hosts/{host}`: `status` enables or disables the host's compute service;
/// `maintenance_mode` is not something the QEMU driver does (501, as Nova's libvirt driver).
async fn update(State(c): State<Ctx>, mv: Mv, Path(host): Path<String>, body: Bytes) -> ApiResult {
    served(mv)?;
    let Value::Object(o) = haneul_core::http::parse_json::<Value>(&body)? else {
        return Err(ApiError::bad_request("The request body must be a JSON object."));
    };
    if let Some(k) = o.keys().find(|k| !["status", "maintenance_mode"].contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute request body. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let (status, maintenance) = (switch(&o, "status")?, switch(&o, "maintenance_mode")?);
    if status.is_none() && maintenance.is_none() {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute request body. Value: {}. {} does not have enough properties",
        ));
    }
    let service = compute_service(&c.model(), &host).cloned().ok_or_else(|| no_host(&host))?;
    if maintenance.is_some() {
        return Err(not_supported());
    }
    let enable = status.expect("checked above");
    c.update_service(&service.id, Some(!enable), Some(None), None).await?;
    Ok(Json(json!({"host": host, "status": if enable { "enabled" } else { "disabled" }})).into_response())
}

fn not_supported() -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_IMPLEMENTED, "Action is not supported.")
}

/// Rebooting, shutting down or starting the host itself: 404 for an unknown host, else not
/// something the QEMU driver does (501, as Nova's libvirt driver).
async fn power_action(State(c): State<Ctx>, mv: Mv, Path(host): Path<String>) -> Result<Response, ApiError> {
    served(mv)?;
    compute_service(&c.model(), &host).ok_or_else(|| no_host(&host))?;
    Err(not_supported())
}
