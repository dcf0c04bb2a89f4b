//! `os-instance-actions` (what was done to a server, by which request, with its events) and
//! `os-simple-tenant-usage` (server hours per project over a period), as Nova answers them.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, NaiveDateTime, Utc};
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, target, Routes};
use serde_json::{json, Value};

use super::{enforce, is_admin, ApiResult, Ctx, Mv};
use crate::model::{DeletedServer, FlavorCopy, InstanceAction};
use crate::service::Compute;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/servers/{id}/os-instance-actions", target("os_compute_api:os-instance-actions:list"), actions)
        .get(
            "/servers/{id}/os-instance-actions/{request_id}",
            target("os_compute_api:os-instance-actions:show"),
            action,
        )
        .get("/os-simple-tenant-usage", rule("os_compute_api:os-simple-tenant-usage:list"), usages)
        .get("/os-simple-tenant-usage/{tenant}", target("os_compute_api:os-simple-tenant-usage:show"), usage)
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S.%6f").to_string()
}

fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(v, f).ok())
        .map(|n| n.and_utc())
}

/// The project of a server, living or deleted (deleted ones from 2.21), if the caller may see it.
async fn server_project(c: &Compute, ctx: &AuthContext, mv: Mv, id: &str) -> ApiResult<String> {
    let live = c.model().servers.get(id).map(|s| s.project_id.clone());
    let project = match live {
        Some(p) => Some(p),
        None if mv.at_least(21) => {
            c.store().log_get::<DeletedServer>(id).await.map_err(store_error)?.map(|d| d.project_id)
        }
        None => None,
    };
    let project = project.filter(|p| is_admin(ctx) || ctx.project_id() == Some(p.as_str()));
    project.ok_or_else(|| ApiError::not_found(format!("Instance {id} could not be found.")))
}

fn render_action(a: &InstanceAction, mv: Mv) -> Value {
    let mut v = json!({
        "action": a.action, "instance_uuid": a.server_id, "request_id": a.id, "user_id": a.user_id,
        "project_id": a.project_id, "start_time": ts(a.start_time), "message": a.message,
    });
    if mv.at_least(58) {
        v["updated_at"] = json!(ts(a.updated_at));
    }
    v
}

fn one_param<'a>(q: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    q.get(key).map(String::as_str)
}

async fn actions(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let project = server_project(&c, &ctx, mv, &id).await?;
    enforce(&c, &ctx, "os_compute_api:os-instance-actions:list", &json!({"project_id": project}))?;
    let all: Vec<InstanceAction> = c.store().log_of(&id).await.map_err(store_error)?;
    let mut list: Vec<&InstanceAction> = all.iter().collect();
    list.sort_by(|a, b| b.start_time.cmp(&a.start_time).then_with(|| b.id.cmp(&a.id)));
    let mut links = None;
    if mv.at_least(58) {
        let allowed: &[&str] = if mv.at_least(66) {
            &["limit", "marker", "changes-since", "changes-before"]
        } else {
            &["limit", "marker", "changes-since"]
        };
        if let Some(k) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for query parameters {k}. Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
        let time = |k: &str| -> ApiResult<Option<DateTime<Utc>>> {
            match one_param(&q, k) {
                None => Ok(None),
                Some(v) => DateTime::parse_from_rfc3339(v)
                    .map(|d| Some(d.with_timezone(&Utc)))
                    .or_else(|_| parse_time(v).map(Some).ok_or(()))
                    .map_err(|_| {
                        ApiError::bad_request(format!(
                            "Invalid input for query parameters {k}. Value: {v}. '{v}' is not a 'date-time'"
                        ))
                    }),
            }
        };
        let (since, before) = (time("changes-since")?, time("changes-before")?);
        if let (Some(s), Some(b)) = (since, before) {
            if b < s {
                return Err(ApiError::bad_request(
                    "The value of changes-since must be less than or equal to changes-before.",
                ));
            }
        }
        list.retain(|a| since.is_none_or(|s| a.updated_at >= s) && before.is_none_or(|b| a.updated_at <= b));
        if let Some(marker) = one_param(&q, "marker") {
            let at = list
                .iter()
                .position(|a| a.id == marker)
                .ok_or_else(|| ApiError::bad_request(format!("Marker {marker} could not be found.")))?;
            list.drain(..=at);
        }
        if let Some(l) = one_param(&q, "limit") {
            let n: usize = l.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "Invalid input for query parameters limit. Value: {l}. '{l}' does not match '^[0-9]*$'"
                ))
            })?;
            let n = n.min(1000);
            if n > 0 && list.len() >= n {
                list.truncate(n);
                let last = &list[n - 1].id;
                links = Some(json!([{"rel": "next", "href": format!(
                    "{}/v2.1/servers/{id}/os-instance-actions?limit={n}&marker={last}", c.settings.public_url
                )}]));
            } else {
                list.truncate(n);
            }
        }
    }
    let mut body = json!({"instanceActions": list.iter().map(|a| render_action(a, mv)).collect::<Vec<_>>()});
    if let Some(l) = links {
        body["links"] = l;
    }
    Ok(Json(body).into_response())
}

async fn action(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path((id, request_id)): Path<(String, String)>,
) -> ApiResult {
    let project = server_project(&c, &ctx, mv, &id).await?;
    let target = json!({"project_id": project});
    enforce(&c, &ctx, "os_compute_api:os-instance-actions:show", &target)?;
    let a = c
        .store()
        .log_get::<InstanceAction>(&request_id)
        .await
        .map_err(store_error)?
        .filter(|a| a.server_id == id)
        .ok_or_else(|| ApiError::not_found(format!("Action {request_id} not found")))?;
    let a = &a;
    let allowed = |rule: &str| enforce(&c, &ctx, rule, &target).is_ok();
    let events_allowed = allowed("os_compute_api:os-instance-actions:events");
    let details_allowed = mv.at_least(84) && allowed("os_compute_api:os-instance-actions:events:details");
    let mut v = render_action(a, mv);
    if mv.at_least(51) || events_allowed {
        let mut events: Vec<&crate::model::ActionEvent> = a.events.iter().collect();
        events.sort_by(|x, y| y.start_time.cmp(&x.start_time));
        let events: Vec<Value> = events
            .into_iter()
            .map(|e| {
                let mut ev = json!({
                    "event": e.event, "start_time": ts(e.start_time),
                    "finish_time": e.finish_time.map(ts), "result": e.result,
                });
                if events_allowed {
                    ev["traceback"] = Value::Null;
                }
                if mv.at_least(62) {
                    ev["hostId"] = json!(e.host.as_deref().map_or(String::new(), |h| host_id(&a.project_id, h)));
                    if events_allowed {
                        ev["host"] = json!(e.host);
                    }
                }
                if details_allowed {
                    ev["details"] = json!(e.details);
                }
                ev
            })
            .collect();
        v["events"] = json!(events);
    }
    Ok(Json(json!({"instanceAction": v})).into_response())
}

/// Nova's event `hostId`: sha224 of the project and the host.
fn host_id(project: &str, host: &str) -> String {
    use sha2::Digest;
    sha2::Sha224::digest(format!("{project}{host}").as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Simple tenant usage

struct Period {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

fn period(q: &HashMap<String, String>) -> ApiResult<Period> {
    let now = Utc::now();
    let get = |k: &str| -> ApiResult<DateTime<Utc>> {
        match q.get(k).map(String::as_str).filter(|v| !v.is_empty()) {
            None => Ok(now),
            Some(v) => parse_time(v)
                .ok_or_else(|| ApiError::bad_request("Invalid datetime string: Datetime is in invalid format")),
        }
    };
    let (start, end) = (get("start")?, get("end")?);
    if start >= end {
        return Err(ApiError::bad_request("Invalid start time. The start time cannot occur after the end time."));
    }
    Ok(Period { start, end: end.min(now) })
}

struct Used {
    id: String,
    name: String,
    project: String,
    flavor: FlavorCopy,
    launched: DateTime<Utc>,
    ended: Option<DateTime<Utc>>,
    state: String,
}

/// The servers that ran in the period (deleted ones included), by project then id.
async fn used(c: &Compute, p: &Period, project: Option<&str>) -> ApiResult<Vec<Used>> {
    // Deleted servers that ended after the period began: the log by its time order.
    let deleted: Vec<DeletedServer> = c.store().log_since(p.start).await.map_err(store_error)?;
    let m = c.model();
    let live = m.servers.values().filter_map(|s| {
        Some(Used {
            id: s.id.clone(),
            name: s.name.clone(),
            project: s.project_id.clone(),
            flavor: s.flavor.clone(),
            launched: s.launched_at?,
            ended: None,
            state: s.vm_state.clone(),
        })
    });
    let gone = deleted.iter().filter_map(|d| {
        Some(Used {
            id: d.id.clone(),
            name: d.name.clone(),
            project: d.project_id.clone(),
            flavor: d.flavor.clone(),
            launched: d.launched_at?,
            ended: Some(d.terminated_at),
            state: "terminated".into(),
        })
    });
    let mut all: Vec<Used> = live
        .chain(gone)
        .filter(|u| project.is_none_or(|p| u.project == p))
        .filter(|u| u.launched < p.end && u.ended.is_none_or(|e| e > p.start))
        .collect();
    all.sort_by(|a, b| a.project.cmp(&b.project).then_with(|| a.id.cmp(&b.id)));
    Ok(all)
}

/// A failure to read the records kept in the database: logged, Nova's 500.
fn store_error(e: haneul_core::docstore::StoreError) -> ApiError {
    crate::service::Error::from(e).into()
}

fn page(mut all: Vec<Used>, q: &HashMap<String, String>, mv: Mv) -> ApiResult<(Vec<Used>, Option<String>)> {
    if !mv.at_least(40) {
        return Ok((all, None));
    }
    if let Some(marker) = q.get("marker") {
        let at = all
            .iter()
            .position(|u| &u.id == marker)
            .ok_or_else(|| ApiError::bad_request(format!("Marker {marker} could not be found.")))?;
        all.drain(..=at);
    }
    let limit = match q.get("limit") {
        None => 1000,
        Some(l) => l.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "Invalid input for query parameters limit. Value: {l}. '{l}' does not match '^[0-9]*$'"
            ))
        })?,
    }
    .min(1000);
    let full = limit > 0 && all.len() >= limit;
    all.truncate(limit);
    let next = if full { all.last().map(|u| u.id.clone()) } else { None };
    Ok((all, next))
}

fn hours(u: &Used, p: &Period) -> f64 {
    let end = u.ended.map_or(p.end, |e| e.min(p.end));
    let start = u.launched.max(p.start);
    ((end - start).num_milliseconds().max(0) as f64) / 3_600_000.0
}

fn summaries(used: &[Used], p: &Period, detailed: bool) -> Vec<Value> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for u in used {
        let h = hours(u, p);
        let local_gb = u.flavor.disk + u.flavor.ephemeral;
        if out.last().is_none_or(|(t, _)| *t != u.project) {
            let mut v = json!({
                "tenant_id": u.project, "start": ts(p.start), "stop": ts(p.end), "total_hours": 0.0,
                "total_local_gb_usage": 0.0, "total_memory_mb_usage": 0.0, "total_vcpus_usage": 0.0,
            });
            if detailed {
                v["server_usages"] = json!([]);
            }
            out.push((u.project.clone(), v));
        }
        let v = &mut out.last_mut().expect("pushed").1;
        let add = |v: &mut Value, k: &str, x: f64| v[k] = json!(v[k].as_f64().unwrap_or(0.0) + x);
        add(v, "total_hours", h);
        add(v, "total_local_gb_usage", local_gb as f64 * h);
        add(v, "total_memory_mb_usage", u.flavor.ram as f64 * h);
        add(v, "total_vcpus_usage", u.flavor.vcpus as f64 * h);
        if detailed {
            let uptime = (u.ended.unwrap_or_else(Utc::now) - u.launched).num_seconds();
            v["server_usages"].as_array_mut().expect("array").push(json!({
                "instance_id": u.id, "name": u.name, "tenant_id": u.project, "flavor": u.flavor.name,
                "hours": h, "memory_mb": u.flavor.ram, "local_gb": local_gb, "vcpus": u.flavor.vcpus,
                "started_at": ts(u.launched), "ended_at": u.ended.map(ts), "state": u.state, "uptime": uptime,
            }));
        }
    }
    out.into_iter().map(|(_, v)| v).collect()
}

fn check_params(q: &HashMap<String, String>, mv: Mv, allowed: &[&str]) -> ApiResult<()> {
    if mv.at_least(75) {
        if let Some(k) = q.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for query parameters {k}. Additional properties are not allowed ('{k}' was unexpected)"
            )));
        }
    }
    Ok(())
}

async fn usages(State(c): State<Ctx>, mv: Mv, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    check_params(&q, mv, &["start", "end", "detailed", "limit", "marker"])?;
    let p = period(&q)?;
    let detailed = q.get("detailed").is_some_and(|d| d == "1");
    let (used, next) = page(used(&c, &p, None).await?, &q, mv)?;
    let mut body = json!({"tenant_usages": summaries(&used, &p, detailed)});
    if let Some(marker) = next {
        body["tenant_usages_links"] = next_link(&c, "os-simple-tenant-usage", &q, &marker);
    }
    Ok(Json(body).into_response())
}

async fn usage(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    enforce(&c, &ctx, "os_compute_api:os-simple-tenant-usage:show", &json!({"project_id": tenant}))?;
    check_params(&q, mv, &["start", "end", "limit", "marker"])?;
    let p = period(&q)?;
    let (used, next) = page(used(&c, &p, Some(&tenant)).await?, &q, mv)?;
    let one = summaries(&used, &p, true).into_iter().next().unwrap_or_else(|| json!({}));
    let mut body = json!({"tenant_usage": one});
    if let Some(marker) = next {
        body["tenant_usage_links"] = next_link(&c, &format!("os-simple-tenant-usage/{tenant}"), &q, &marker);
    }
    Ok(Json(body).into_response())
}

fn next_link(c: &Compute, collection: &str, q: &HashMap<String, String>, marker: &str) -> Value {
    let mut params: Vec<(String, String)> =
        q.iter().filter(|(k, _)| *k != "marker").map(|(k, v)| (k.clone(), v.clone())).collect();
    params.sort();
    params.push(("marker".into(), marker.into()));
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", haneul_core::url::encode_form(v))).collect();
    json!([{"rel": "next", "href": format!("{}/v2.1/{collection}?{}", c.settings.public_url, query.join("&"))}])
}
