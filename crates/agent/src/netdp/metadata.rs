//! The metadata proxy: guests ask `http://169.254.169.254/...`; the proxy, listening inside
//! the guest network's namespace, finds the port by the asker's address on the networks it
//! serves, and forwards the request to the compute metadata service with the instance id
//! signed (`X-Instance-ID`, `X-Instance-ID-Signature`, `X-Tenant-ID`, `X-Forwarded-For`),
//! as Neutron's metadata agent does. It runs inside the agent: one task per namespace.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use sha2::Sha256;

use super::{sys, Dataplane};

struct Proxy {
    /// The data plane, for its latest picture (weak: the proxy ends with it).
    dp: Weak<Dataplane>,
    scope: Scope,
}

/// Whose guests a proxy answers: a network's (in its DHCP namespace) or those of the
/// networks a router joins (in its namespace).
pub enum Scope {
    Network(String),
    Router(String),
}

/// Starts a proxy on `addr` inside namespace `ns` for the guests of `scope`.
pub fn serve(dp: &Dataplane, ns: &str, addr: SocketAddr, scope: Scope) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let std_listener = sys::listen_in(Some(ns), addr)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let proxy = Arc::new(Proxy { dp: dp.me(), scope });
    let app = axum::Router::new().fallback(forward).with_state(proxy);
    let ns = ns.to_string();
    Ok(tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::warn!(namespace = %ns, error = %e, "metadata proxy stopped");
        }
    }))
}

/// The hex HMAC-SHA256 of the instance id, as the metadata service checks it.
pub fn sign(secret: &[u8], instance_id: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(instance_id.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn text(status: StatusCode, msg: &str) -> Response {
    (status, [("content-type", "text/plain; charset=UTF-8")], msg.to_string()).into_response()
}

async fn forward(State(p): State<Arc<Proxy>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, req: Request) -> Response {
    let Some(dp) = p.dp.upgrade() else { return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n") };
    let ip = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(v6.to_string(), |v4| v4.to_string()),
        v4 => v4.to_string(),
    };
    let doc = dp.doc();
    let networks: Vec<&str> = match &p.scope {
        Scope::Network(n) => vec![n.as_str()],
        Scope::Router(r) => doc.router_ports(r).map(|p| p.network_id.as_str()).collect(),
    };
    let Some(port) = networks.iter().find_map(|n| doc.port_with_ip(n, &ip)) else {
        tracing::warn!(%ip, "metadata request from an address with no port");
        return text(StatusCode::NOT_FOUND, "404 Not Found\n\nNo instance has this address.\n");
    };
    if port.device_id.is_empty() || !super::doc::is_instance_port(port) {
        return text(StatusCode::NOT_FOUND, "404 Not Found\n\nNo instance has this address.\n");
    }
    let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str()).to_string();
    let url = format!("{}{path}", dp.settings.metadata_url.trim_end_matches('/'));
    let signature = sign(&dp.settings.metadata_secret, &port.device_id);
    let headers = [
        ("x-instance-id", port.device_id.as_str()),
        ("x-instance-id-signature", signature.as_str()),
        ("x-tenant-id", port.project_id.as_str()),
        ("x-forwarded-for", ip.as_str()),
    ];
    let method = req.method().clone();
    // A body only for the guest's password post (256 bytes at most); refuse more than a page.
    let body = match axum::body::to_bytes(req.into_body(), 4096).await {
        Ok(b) if b.is_empty() => None,
        Ok(b) => Some(b.to_vec()),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "413 Request Entity Too Large\n"),
    };
    let resp = match haneul_core::client::send(method, &url, &headers, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "the metadata service is unreachable");
            return text(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n\nThe metadata service is unreachable.\n");
        }
    };
    let status = resp.status();
    let content_type = resp.headers().get("content-type").cloned();
    let body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return text(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n\nThe metadata service broke off.\n"),
    };
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    out.headers_mut().insert("content-type", content_type.unwrap_or(HeaderValue::from_static("text/plain")));
    out
}
