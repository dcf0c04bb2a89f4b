//! The host agents' side door (not part of Neutron's API; the service user only):
//!
//! - `GET /v2.0/internal/dataplane?host=H&version=V`: what host H's data plane is made from
//!   ([`crate::picture::for_host`]: its ports, their networks, subnets, groups and rules; on
//!   a network node also the DHCP, routed and external networks, routers and floating IPs),
//!   with a `version` that names its content. When the caller already has version `V`, the
//!   answer waits (up to [`LONGEST_WAIT`]) until H's picture changes (a change elsewhere in
//!   the cloud does not wake it): the agent asks again at once, so a change reaches
//!   every host within milliseconds, and an agent that restarts simply asks anew. Each ask is
//!   also the host's heartbeat for the agents list.
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
    let picture = |n: &Ctx| crate::picture::for_host(&n.model(), &q.host, network_node, n.tunnel_endpoints());
    let mut changes = n.changes();
    let mut pic = picture(&n);
    if pic.version == q.version {
        let deadline = tokio::time::Instant::now() + LONGEST_WAIT;
        // Another controller sharing the database shows up at the next refresh.
        while pic.version == q.version && !n.stopping() {
            let step = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + Duration::from_secs(5)));
            tokio::select! {
                _ = changes.changed() => pic = picture(&n),
                _ = step => {
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    if n.refresh().await? {
                        pic = picture(&n);
                    }
                }
            }
        }
    }
    Ok(Json(pic).into_response())
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
