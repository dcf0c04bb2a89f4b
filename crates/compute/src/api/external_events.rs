//! `POST /os-server-external-events`: what other services tell the compute service about its
//! servers (Nova's external events). The network service sends `network-changed` when a
//! floating IP is associated with or let go from a server's port; the server's addresses
//! then show it (`OS-EXT-IPS:type: floating`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, Routes};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiResult, Ctx};

pub fn routes() -> Routes<Ctx> {
    Routes::new().post("/os-server-external-events", rule("os_compute_api:os-server-external-events:create"), create)
}

/// The event names Nova's schema accepts.
const NAMES: &[&str] = &[
    "network-changed",
    "network-vif-plugged",
    "network-vif-unplugged",
    "network-vif-deleted",
    "volume-extended",
    "power-update",
    "accelerator-request-bound",
    "volume-reimaged",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Events {
    events: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    name: String,
    server_uuid: String,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

async fn create(State(c): State<Ctx>, body: Bytes) -> ApiResult {
    let bad = |m: String| ApiError::bad_request(format!("Invalid input for field/attribute events. {m}"));
    let Events { events } = serde_json::from_slice(&body).map_err(|e| bad(e.to_string()))?;
    if events.is_empty() {
        return Err(bad("Value: []. [] is too short".into()));
    }
    let m = c.model();
    let mut answered = Vec::with_capacity(events.len());
    let mut found = 0;
    for e in events {
        if !NAMES.contains(&e.name.as_str()) {
            return Err(bad(format!("Value: {}. '{}' is not one of {NAMES:?}", e.name, e.name)));
        }
        let status = e.status.clone().unwrap_or_else(|| "completed".into());
        let mut out = json!({"name": e.name, "server_uuid": e.server_uuid, "status": status});
        if let Some(tag) = &e.tag {
            out["tag"] = json!(tag);
        }
        if m.servers.contains_key(&e.server_uuid) {
            found += 1;
            out["code"] = json!(200);
            if e.name == "network-changed" {
                let c = c.clone();
                tokio::spawn(async move { c.refresh_ports(&e.server_uuid, e.tag.as_deref()).await });
            }
        } else {
            out["code"] = json!(404);
            out["status"] = json!("failed");
        }
        answered.push(out);
    }
    if found == 0 {
        return Err(ApiError::not_found("No instances found for any event"));
    }
    let status = if found == answered.len() { StatusCode::OK } else { StatusCode::MULTI_STATUS };
    let body: Value = json!({"events": answered});
    Ok((status, Json(body)).into_response())
}
