//! Availability zones, compute services and hypervisors: what an operator sees of the hosts.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::{ApiResult, Ctx, Mv};
use crate::model::Service;
use crate::service::hosts::compute_service;
use crate::service::Compute;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/os-availability-zone", rule("os_compute_api:os-availability-zone:list"), zones)
        .get("/os-availability-zone/detail", rule("os_compute_api:os-availability-zone:detail"), zones_detail)
        .get("/os-services", rule("os_compute_api:os-services:list"), services)
        .put("/os-services/{id}", rule("os_compute_api:os-services:update"), update_service)
        .delete("/os-services/{id}", rule("os_compute_api:os-services:delete"), delete_service)
        .get("/os-hypervisors", rule("os_compute_api:os-hypervisors:list"), hypervisors)
        .get("/os-hypervisors/detail", rule("os_compute_api:os-hypervisors:list-detail"), hypervisors_detail)
        .get("/os-hypervisors/statistics", rule("os_compute_api:os-hypervisors:statistics"), statistics)
        .get("/os-hypervisors/{id}", rule("os_compute_api:os-hypervisors:show"), hypervisor)
        .get("/os-hypervisors/{id}/uptime", rule("os_compute_api:os-hypervisors:uptime"), uptime)
        .get("/os-hypervisors/{id}/search", rule("os_compute_api:os-hypervisors:search"), search)
        .get("/os-hypervisors/{id}/servers", rule("os_compute_api:os-hypervisors:servers"), search_servers)
}

pub(super) fn ts(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.%6f").to_string()
}

// ---------------------------------------------------------------------------------------------
// Availability zones

/// Zones of enabled services, sorted, then zones that only have disabled services (Nova's
/// order); `internal` (the controller's services) only for the detailed list.
fn zone_names(c: &Compute, with_internal: bool) -> Vec<(String, bool)> {
    let m = c.model();
    let mut enabled = std::collections::BTreeSet::new();
    let mut disabled = std::collections::BTreeSet::new();
    for s in m.services.values() {
        let z = m.service_zone(s);
        if !with_internal && z == crate::model::INTERNAL_ZONE {
            continue;
        }
        if s.disabled {
            disabled.insert(z)
        } else {
            enabled.insert(z)
        };
    }
    let mut out: Vec<(String, bool)> = enabled.iter().map(|z| (z.clone(), true)).collect();
    out.extend(disabled.into_iter().filter(|z| !enabled.contains(z)).map(|z| (z, false)));
    out
}

async fn zones(State(c): State<Ctx>) -> ApiResult {
    let info: Vec<Value> = zone_names(&c, false)
        .into_iter()
        .map(|(z, up)| json!({"zoneName": z, "zoneState": {"available": up}, "hosts": null}))
        .collect();
    Ok(Json(json!({"availabilityZoneInfo": info})).into_response())
}

async fn zones_detail(State(c): State<Ctx>) -> ApiResult {
    let m = c.model();
    let now = Utc::now();
    let info: Vec<Value> = zone_names(&c, true)
        .into_iter()
        .map(|(zone, up)| {
            if !up {
                return json!({"zoneName": zone, "zoneState": {"available": false}, "hosts": null});
            }
            let mut hosts: Map<String, Value> = Map::new();
            for s in m.services.values().filter(|s| !s.disabled && m.service_zone(s) == zone) {
                let host = hosts.entry(s.host.clone()).or_insert_with(|| json!({}));
                host[&s.binary] =
                    json!({"available": c.is_up(s, now), "active": !s.disabled, "updated_at": ts(s.last_seen)});
            }
            json!({"zoneName": zone, "zoneState": {"available": true}, "hosts": hosts})
        })
        .collect();
    Ok(Json(json!({"availabilityZoneInfo": info})).into_response())
}

// ---------------------------------------------------------------------------------------------
// Services

fn service_json(c: &Compute, s: &Service, mv: Mv) -> Value {
    let mut v = json!({
        "id": if mv.at_least(53) { json!(s.id) } else { json!(s.number) },
        "binary": s.binary,
        "host": s.host,
        "zone": c.model().service_zone(s),
        "status": if s.disabled { "disabled" } else { "enabled" },
        "state": if c.is_up(s, Utc::now()) { "up" } else { "down" },
        "updated_at": ts(s.last_seen),
        "disabled_reason": s.disabled_reason,
    });
    if mv.at_least(11) {
        v["forced_down"] = json!(s.forced_down);
    }
    v
}

async fn services(State(c): State<Ctx>, mv: Mv, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let m = c.model();
    let mut list: Vec<&Service> = m
        .services
        .values()
        .map(|s| &**s)
        .filter(|s| q.get("host").is_none_or(|h| *h == s.host))
        .filter(|s| q.get("binary").is_none_or(|b| *b == s.binary))
        .collect();
    list.sort_by_key(|s| s.number);
    let items: Vec<Value> = list.into_iter().map(|s| service_json(&c, s, mv)).collect();
    Ok(Json(json!({"services": items})).into_response())
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// `PUT /os-services/{id}` (2.53: `status`, `disabled_reason`, `forced_down`), and before
/// 2.53 the actions `enable`, `disable`, `disable-log-reason`, `force-down` by host and binary.
async fn update_service(State(c): State<Ctx>, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let o: Map<String, Value> = match haneul_core::http::parse_json::<Value>(&body)? {
        Value::Object(o) => o,
        _ => return Err(bad("The request body must be a JSON object.")),
    };
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    if mv.at_least(53) {
        if let Some(k) = o.keys().find(|k| !["status", "disabled_reason", "forced_down"].contains(&k.as_str())) {
            return Err(bad(format!("Invalid input for field/attribute service. Additional properties are not allowed ('{k}' was unexpected)")));
        }
        let disabled = match text("status").as_deref() {
            None => None,
            Some("enabled") => Some(false),
            Some("disabled") => Some(true),
            Some(v) => {
                return Err(bad(format!(
                    "Invalid input for field/attribute status. Value: {v}. '{v}' is not one of ['enabled', 'disabled']"
                )))
            }
        };
        let reason = o.get("disabled_reason").map(|r| r.as_str().map(str::to_owned));
        if reason.is_some() && disabled != Some(true) {
            return Err(bad("Specifying 'disabled_reason' with status other than 'disabled' is invalid."));
        }
        let forced_down = o.get("forced_down").map(|v| v.as_bool().unwrap_or(false));
        if disabled.is_none() && forced_down.is_none() {
            return Err(bad("No updates were requested. Fields 'status' or 'forced_down' should be specified."));
        }
        let found = c.model().services.contains_key(&id);
        if !found {
            return Err(ApiError::not_found(format!("Service {id} could not be found.")));
        }
        let s = c.update_service(&id, disabled, reason, forced_down).await?;
        return Ok(Json(json!({"service": service_json(&c, &s, mv)})).into_response());
    }
    let (host, binary) = match (text("host"), text("binary")) {
        (Some(h), Some(b)) => (h, b),
        _ => return Err(bad("Invalid input for field/attribute service: 'host' and 'binary' are required.")),
    };
    let sid = c
        .model()
        .services
        .values()
        .find(|s| s.host == host && s.binary == binary)
        .map(|s| s.id.clone())
        .ok_or_else(|| ApiError::not_found(format!("Service {binary} on host {host} could not be found.")))?;
    let (disabled, reason, forced) = match id.as_str() {
        "enable" => (Some(false), None, None),
        "disable" => (Some(true), None, None),
        "disable-log-reason" => (Some(true), Some(text("disabled_reason")), None),
        "force-down" if mv.at_least(11) => {
            (None, None, Some(o.get("forced_down").and_then(Value::as_bool).unwrap_or(false)))
        }
        _ => return Err(ApiError::not_found("Unknown action")),
    };
    let s = c.update_service(&sid, disabled, reason, forced).await?;
    let mut v = json!({"host": s.host, "binary": s.binary});
    match id.as_str() {
        "force-down" => v["forced_down"] = json!(s.forced_down),
        _ => {
            v["status"] = json!(if s.disabled { "disabled" } else { "enabled" });
            if id == "disable-log-reason" {
                v["disabled_reason"] = json!(s.disabled_reason);
            }
        }
    }
    Ok(Json(json!({"service": v})).into_response())
}

async fn delete_service(State(c): State<Ctx>, mv: Mv, Path(id): Path<String>) -> ApiResult {
    let m = c.model();
    let sid = if mv.at_least(53) {
        m.services.get(&id).map(|s| s.id.clone())
    } else {
        m.services.values().find(|s| s.number.to_string() == id).map(|s| s.id.clone())
    };
    let sid = sid.ok_or_else(|| ApiError::not_found(format!("Service {id} could not be found.")))?;
    c.delete_service(&sid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Hypervisors

pub(super) struct Hv {
    pub(super) id: String,
    pub(super) number: i64,
    pub(super) name: String,
    pub(super) service: Service,
    pub(super) vcpus: i64,
    pub(super) memory_mb: i64,
    pub(super) local_gb: i64,
    pub(super) vcpus_used: i64,
    pub(super) memory_mb_used: i64,
    pub(super) local_gb_used: i64,
    pub(super) running_vms: i64,
    pub(super) servers: Vec<(String, String)>,
}

pub(super) fn hypervisor_list(c: &Compute) -> Vec<Hv> {
    let m = c.model();
    let pm = c.placement.model();
    let mut out = Vec::new();
    for h in c.hosts() {
        let Some(service) = compute_service(&m, &h.name).cloned() else { continue };
        let p = pm.providers.get(&h.provider);
        let usage = pm.provider_usage(&h.provider);
        let inv = |rc: &str| p.and_then(|p| p.inventories.get(rc)).cloned();
        let total = |rc: &str| inv(rc).map_or(0, |i| i.total);
        let reserved = |rc: &str| inv(rc).map_or(0, |i| i.reserved);
        let used = |rc: &str| usage.get(rc).copied().unwrap_or(0);
        let servers: Vec<(String, String)> = m
            .servers
            .values()
            .filter(|s| s.host.as_deref() == Some(h.name.as_str()))
            .map(|s| (s.id.clone(), format!("instance-{}", &s.id[..8])))
            .collect();
        out.push(Hv {
            id: h.provider.clone(),
            number: service.number,
            name: h.name.clone(),
            vcpus: total("VCPU"),
            memory_mb: total("MEMORY_MB"),
            local_gb: total("DISK_GB"),
            vcpus_used: used("VCPU"),
            memory_mb_used: used("MEMORY_MB") + reserved("MEMORY_MB"),
            local_gb_used: used("DISK_GB"),
            running_vms: servers.len() as i64,
            servers,
            service,
        });
    }
    out
}

fn hv_summary(c: &Compute, h: &Hv, mv: Mv) -> Value {
    json!({
        "id": if mv.at_least(53) { json!(h.id) } else { json!(h.number) },
        "hypervisor_hostname": h.name,
        "state": if c.is_up(&h.service, Utc::now()) { "up" } else { "down" },
        "status": if h.service.disabled { "disabled" } else { "enabled" },
    })
}

fn hv_detail(c: &Compute, h: &Hv, mv: Mv) -> Value {
    let mut v = hv_summary(c, h, mv);
    let cpu_info = json!({"arch": "x86_64", "model": "qemu64", "vendor": "QEMU", "features": [],
        "topology": {"cores": h.vcpus, "threads": 1, "sockets": 1}});
    v["hypervisor_type"] = json!("QEMU");
    v["hypervisor_version"] = json!(7002000);
    v["host_ip"] = json!(host_ip(h));
    v["service"] = json!({
        "id": if mv.at_least(53) { json!(h.service.id) } else { json!(h.service.number) },
        "host": h.service.host,
        "disabled_reason": h.service.disabled_reason,
    });
    if mv.at_least(88) {
        v["uptime"] = json!(uptime_text());
    } else {
        v["vcpus"] = json!(h.vcpus);
        v["memory_mb"] = json!(h.memory_mb);
        v["local_gb"] = json!(h.local_gb);
        v["vcpus_used"] = json!(h.vcpus_used);
        v["memory_mb_used"] = json!(h.memory_mb_used);
        v["local_gb_used"] = json!(h.local_gb_used);
        v["free_ram_mb"] = json!(h.memory_mb - h.memory_mb_used);
        v["free_disk_gb"] = json!(h.local_gb - h.local_gb_used);
        v["current_workload"] = json!(0);
        v["running_vms"] = json!(h.running_vms);
        v["disk_available_least"] = json!(h.local_gb - h.local_gb_used);
        v["cpu_info"] = if mv.at_least(28) { cpu_info } else { json!(cpu_info.to_string()) };
    }
    v
}

fn with_servers(v: &mut Value, h: &Hv) {
    let servers: Vec<Value> = h.servers.iter().map(|(uuid, name)| json!({"uuid": uuid, "name": name})).collect();
    if !servers.is_empty() {
        v["servers"] = json!(servers);
    }
}

/// The address the host's agent is reached at.
fn host_ip(h: &Hv) -> String {
    let url = h.service.agent.as_ref().map_or("", |a| a.url.as_str());
    url.split("://").nth(1).and_then(|r| r.rsplit_once(':')).map(|(h, _)| h.to_string()).unwrap_or_default()
}

fn uptime_text() -> String {
    let up: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let l: Vec<&str> = load.split_whitespace().take(3).collect();
    let secs = up as u64;
    format!(
        " {} up {} days, {:02}:{:02},  load average: {}",
        Utc::now().format("%H:%M:%S"),
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        l.join(", ")
    )
}

fn list_filter(q: &HashMap<String, String>, mv: Mv) -> ApiResult<(Option<String>, bool)> {
    let allowed: &[&str] =
        if mv.at_least(53) { &["limit", "marker", "hypervisor_hostname_pattern", "with_servers"] } else { &[] };
    if let Some(k) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
        if mv.at_least(53) {
            return Err(bad(format!(
                "Invalid input for query parameters {k}. Value: Additional properties are not allowed."
            )));
        }
    }
    let with =
        q.get("with_servers").is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on"));
    Ok((q.get("hypervisor_hostname_pattern").cloned(), with))
}

async fn hypervisors(State(c): State<Ctx>, mv: Mv, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let (pattern, with) = list_filter(&q, mv)?;
    let list = hypervisor_list(&c);
    let matching: Vec<&Hv> =
        list.iter().filter(|h| pattern.as_ref().is_none_or(|p| h.name.contains(p.as_str()))).collect();
    if pattern.is_some() && matching.is_empty() {
        return Err(ApiError::not_found(format!(
            "Hypervisor with hostname {} could not be found.",
            pattern.unwrap_or_default()
        )));
    }
    let items: Vec<Value> = matching
        .into_iter()
        .map(|h| {
            let mut v = hv_summary(&c, h, mv);
            if with {
                with_servers(&mut v, h);
            }
            v
        })
        .collect();
    Ok(Json(json!({"hypervisors": items})).into_response())
}

async fn hypervisors_detail(State(c): State<Ctx>, mv: Mv, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let (pattern, with) = list_filter(&q, mv)?;
    let items: Vec<Value> = hypervisor_list(&c)
        .iter()
        .filter(|h| pattern.as_ref().is_none_or(|p| h.name.contains(p.as_str())))
        .map(|h| {
            let mut v = hv_detail(&c, h, mv);
            if with {
                with_servers(&mut v, h);
            }
            v
        })
        .collect();
    Ok(Json(json!({"hypervisors": items})).into_response())
}

fn find_hv(c: &Compute, id: &str, mv: Mv) -> ApiResult<Hv> {
    hypervisor_list(c)
        .into_iter()
        .find(|h| if mv.at_least(53) { h.id == id } else { h.number.to_string() == id })
        .ok_or_else(|| {
            if mv.at_least(53) && uuid::Uuid::parse_str(id).is_err() {
                bad(format!("Invalid uuid {id}"))
            } else {
                ApiError::not_found(format!("Hypervisor with ID {id} could not be found."))
            }
        })
}

async fn hypervisor(
    State(c): State<Ctx>,
    mv: Mv,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let h = find_hv(&c, &id, mv)?;
    let mut v = hv_detail(&c, &h, mv);
    if q.get("with_servers").is_some_and(|v| v == "true" || v == "True" || v == "1") {
        with_servers(&mut v, &h);
    }
    Ok(Json(json!({"hypervisor": v})).into_response())
}

async fn uptime(State(c): State<Ctx>, mv: Mv, Path(id): Path<String>) -> ApiResult {
    if mv.at_least(88) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    let h = find_hv(&c, &id, mv)?;
    let mut v = hv_summary(&c, &h, mv);
    v["uptime"] = json!(uptime_text());
    Ok(Json(json!({"hypervisor": v})).into_response())
}

async fn statistics(State(c): State<Ctx>, mv: Mv) -> ApiResult {
    if mv.at_least(88) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    let list = hypervisor_list(&c);
    let sum = |f: fn(&Hv) -> i64| list.iter().map(f).sum::<i64>();
    Ok(Json(json!({"hypervisor_statistics": {
        "count": list.len(),
        "vcpus": sum(|h| h.vcpus),
        "memory_mb": sum(|h| h.memory_mb),
        "local_gb": sum(|h| h.local_gb),
        "vcpus_used": sum(|h| h.vcpus_used),
        "memory_mb_used": sum(|h| h.memory_mb_used),
        "local_gb_used": sum(|h| h.local_gb_used),
        "free_ram_mb": sum(|h| h.memory_mb - h.memory_mb_used),
        "free_disk_gb": sum(|h| h.local_gb - h.local_gb_used),
        "current_workload": 0,
        "running_vms": sum(|h| h.running_vms),
        "disk_available_least": sum(|h| h.local_gb - h.local_gb_used),
    }}))
    .into_response())
}

/// Before 2.53: hypervisors whose host name contains `id`, optionally with their servers.
async fn search(State(c): State<Ctx>, mv: Mv, Path(pattern): Path<String>) -> ApiResult {
    search_common(&c, mv, &pattern, false)
}

async fn search_servers(State(c): State<Ctx>, mv: Mv, Path(pattern): Path<String>) -> ApiResult {
    search_common(&c, mv, &pattern, true)
}

fn search_common(c: &Compute, mv: Mv, pattern: &str, servers: bool) -> ApiResult {
    if mv.at_least(53) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    let items: Vec<Value> = hypervisor_list(c)
        .iter()
        .filter(|h| h.name.contains(pattern))
        .map(|h| {
            let mut v = hv_summary(c, h, mv);
            if servers {
                with_servers(&mut v, h);
            }
            v
        })
        .collect();
    if items.is_empty() {
        return Err(ApiError::not_found(format!("No hypervisor matching '{pattern}' could be found.")));
    }
    Ok(Json(json!({"hypervisors": items})).into_response())
}
