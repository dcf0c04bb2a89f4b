//! The host agents' side door (not part of Neutron's API; the service user only):
//!
//! - `GET /v2.0/internal/dataplane?host=H&version=V`: what host H's data plane is made from
//!   ([`crate::picture::for_host`]: its ports, their networks, subnets, groups and rules; on
//!   a network node also the DHCP, routed and external networks, routers and floating IPs)
//!   at a `version`. When the caller holds a version sent to it, the answer waits (up to
//!   [`LONGEST_WAIT`]) until H's picture changes (a change elsewhere in the cloud does not
//!   wake it) and carries only the changes since ([`crate::picture::delta`], `base` = `V`;
//!   an empty change when the wait ran out); the agent asks again at once, so a change
//!   reaches every host within milliseconds. An agent that restarts (no version) or one whose
//!   version this process does not know gets the whole picture. Each ask is also the host's
//!   heartbeat for the agents list.
//! - `PUT /v2.0/internal/dataplane/ports`: `{"host": H, "up": [port ids]}`: the ports bound to
//!   H whose devices are plugged; they go `ACTIVE`, H's other bound ports `DOWN`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use haneul_core::routes::{rule, Routes};
use haneul_core::ApiError;
use serde::Deserialize;

use super::{ApiResult, Ctx};
use crate::picture::Scope;

/// How long an ask for changes is held before it is answered with the same version.
pub const LONGEST_WAIT: Duration = Duration::from_secs(25);

pub fn routes() -> Routes<Ctx> {
    Routes::new().get("/internal/dataplane", rule("haneul:agent:dataplane"), dataplane).put(
        "/internal/dataplane/ports",
        rule("haneul:agent:dataplane"),
        ports_up,
    )
}

#[derive(Deserialize)]
struct Ask {
    host: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    network_node: Option<bool>,
    /// The host's VXLAN tunnel address.
    #[serde(default)]
    tunnel_ip: Option<String>,
}

async fn dataplane(State(n): State<Ctx>, Query(q): Query<Ask>) -> ApiResult {
    n.agent_seen(&q.host, q.network_node, q.tunnel_ip.as_deref());
    let network_node = n.agents().get(&q.host).is_some_and(|a| a.network_node);
    let mut changes = n.changes();
    changes.borrow_and_update();
    let Some(mut base) = n.sent(&q.host, &q.version, network_node) else {
        // A first ask, or a version this process does not know: the whole picture.
        let m = n.model();
        let mut pic = crate::picture::for_host(&m, &q.host, network_node, n.tunnel_endpoints());
        pic.version = n.version_of(&m);
        n.remember_sent(&q.host, &pic.version, network_node, m);
        return Ok(Json(pic).into_response());
    };
    let deadline = tokio::time::Instant::now() + LONGEST_WAIT;
    let mut base_scope = Scope::of(&base, &q.host, network_node);
    loop {
        let m = n.model();
        let scope = Scope::of(&m, &q.host, network_node);
        let mut change = crate::picture::delta_scoped(&base, &base_scope, &m, &scope);
        let now = tokio::time::Instant::now();
        if !change.is_empty_change() || !n.tunnels_current(&q.version) || now >= deadline || n.stopping() {
            change.base = Some(q.version.clone());
            change.version = n.version_of(&m);
            change.tunnel_endpoints = n.tunnel_endpoints();
            n.remember_sent(&q.host, &change.version, network_node, m);
            return Ok(Json(change).into_response());
        }
        // Nothing of this host's changed: what it holds is this snapshot's picture too, and
        // the next change is worked out from here.
        n.remember_sent(&q.host, &q.version, network_node, m.clone());
        (base, base_scope) = (m, scope);
        // Another controller sharing the database shows up at the next refresh.
        let step = tokio::time::sleep_until(deadline.min(now + Duration::from_secs(5)));
        tokio::select! {
            _ = changes.changed() => {}
            _ = step => {
                if tokio::time::Instant::now() < deadline {
                    n.refresh().await?;
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct Up {
    host: String,
    up: Vec<String>,
}

async fn ports_up(State(n): State<Ctx>, body: Bytes) -> ApiResult<Response> {
    let b: Up =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("Invalid port report: {e}")))?;
    n.agent_seen(&b.host, None, None);
    n.set_ports_up(&b.host, &b.up).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
