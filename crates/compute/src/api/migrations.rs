//! `GET /os-migrations`: the servers' moves (here: resizes), with Nova's filters and the
//! fields of each microversion (`migration_type` and `links` 2.23, `uuid` and paging 2.59,
//! `changes-before` 2.66, `user_id`/`project_id` 2.80). Project managers see their own
//! project's; admins any project's and the hosts.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use haneul_core::auth::Auth;
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Value};

use super::hosts::ts;
use super::{enforce, ApiResult, Ctx, Mv};
use crate::model::Migration;

pub fn routes() -> Routes<Ctx> {
    Routes::new().get("/os-migrations", rule("os_compute_api:os-migrations:index"), list)
}

fn bad(msg: String) -> ApiError {
    ApiError::bad_request(msg)
}

fn time_param(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<DateTime<Utc>>> {
    q.get(name)
        .map(|v| {
            DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                bad(format!("Invalid input for query parameters {name}. Value: {v}. '{v}' is not a 'date-time'"))
            })
        })
        .transpose()
}

fn render(m: &Migration, mv: Mv, hosts: bool) -> Value {
    let mut v = json!({
        "id": m.number,
        "instance_uuid": m.server_id,
        "status": m.status,
        // Flavors here have no integer ids (Nova's instance type ids); the schema allows null.
        "old_instance_type_id": null,
        "new_instance_type_id": null,
        "created_at": ts(m.created_at),
        "updated_at": m.updated_at.map(ts),
    });
    if hosts {
        for (k, h) in [
            ("source_compute", &m.source_compute),
            ("source_node", &m.source_compute),
            ("dest_compute", &m.dest_compute),
            ("dest_node", &m.dest_compute),
        ] {
            v[k] = json!(h);
        }
        v["dest_host"] = Value::Null;
    }
    if mv.at_least(23) {
        v["migration_type"] = json!(m.kind);
    }
    if mv.at_least(59) {
        v["uuid"] = json!(m.id);
    }
    if mv.at_least(80) {
        v["user_id"] = json!(m.user_id);
        v["project_id"] = json!(m.project_id);
    }
    v
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let may = |rule: &str| enforce(&c, &ctx, rule, &json!({"project_id": ctx.project_id()})).is_ok();
    let own = ctx.project_id().unwrap_or_default();
    // Another project's, or every project's, for admins; a manager's own otherwise.
    let project = match q.get("project_id").filter(|_| mv.at_least(80)) {
        Some(p) if p == own || may("os_compute_api:os-migrations:index:all_projects") => Some(p.as_str()),
        None if may("os_compute_api:os-migrations:index:all_projects") => None,
        _ => Some(own),
    };
    let hosts = may("os_compute_api:os-migrations:index:host");
    let since = time_param(&q, "changes-since")?.filter(|_| mv.at_least(59));
    let before = time_param(&q, "changes-before")?.filter(|_| mv.at_least(66));
    let limit = match q.get("limit").filter(|_| mv.at_least(59)) {
        None => None,
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            bad(format!("Invalid input for query parameters limit. Value: {l}. '{l}' does not match '^[0-9]*$'"))
        })?),
    };
    let want = |key: &str, have: &str| q.get(key).is_none_or(|v| v == have);
    let m = c.model();
    let mut list: Vec<&Migration> = m
        .migrations
        .values()
        .map(|m| &**m)
        .filter(|m| project.is_none_or(|p| m.project_id == p))
        .filter(|m| want("status", &m.status) && want("instance_uuid", &m.server_id))
        .filter(|m| want("source_compute", &m.source_compute) && want("migration_type", &m.kind))
        .filter(|m| q.get("host").is_none_or(|h| *h == m.source_compute || *h == m.dest_compute))
        .filter(|m| q.get("user_id").filter(|_| mv.at_least(80)).is_none_or(|u| *u == m.user_id))
        .filter(|m| since.is_none_or(|t| m.updated_at.unwrap_or(m.created_at) >= t))
        .filter(|m| before.is_none_or(|t| m.updated_at.unwrap_or(m.created_at) <= t))
        .collect();
    // Newest first, as Nova sorts them.
    list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.number.cmp(&a.number)));
    if let Some(marker) = q.get("marker").filter(|_| mv.at_least(59)) {
        let at = list
            .iter()
            .position(|m| m.id == *marker)
            .ok_or_else(|| bad(format!("Marker {marker} could not be found.")))?;
        list.drain(..=at);
    }
    if let Some(l) = limit {
        list.truncate(l);
    }
    let items: Vec<Value> = list.into_iter().map(|m| render(m, mv, hosts)).collect();
    Ok(Json(json!({"migrations": items})).into_response())
}
