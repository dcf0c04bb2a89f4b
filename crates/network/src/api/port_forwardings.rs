//! Floating IP port forwardings (`/v2.0/floatingips/{id}/port_forwardings`): an external
//! port (or range, `external_port_range` "first:last") of a floating IP, TCP or UDP,
//! forwarded to an address and port (or a range of the same size) of a port behind the
//! router that has a gateway on the floating IP's network. The router's namespace DNATs it.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use haneul_core::auth::Auth;
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Value};

use super::{bad, created, list_response, one_member, show_response, ApiResult, Attrs, Ctx, ListQuery};
use crate::model::PortForwarding;
use crate::service::floating::{self, find_forwarding as find_pf, ForwardingAsk};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/floatingips/{fip}/port_forwardings", rule("get_floatingip_port_forwarding"), list)
        .post("/floatingips/{fip}/port_forwardings", rule("create_floatingip_port_forwarding"), create)
        .get("/floatingips/{fip}/port_forwardings/{id}", rule("get_floatingip_port_forwarding"), show)
        .put("/floatingips/{fip}/port_forwardings/{id}", rule("update_floatingip_port_forwarding"), update)
        .delete("/floatingips/{fip}/port_forwardings/{id}", rule("delete_floatingip_port_forwarding"), delete)
}

fn render(p: &PortForwarding) -> Value {
    // A single port shows as the port and as a one-port range; a range only as the range.
    let single = |first: u16, last: Option<u16>| last.filter(|l| *l != first).map_or(json!(first), |_| Value::Null);
    let range = |first: u16, last: Option<u16>| format!("{first}:{}", last.unwrap_or(first));
    json!({
        "id": p.id,
        "protocol": p.protocol,
        "internal_ip_address": p.internal_ip_address,
        "internal_port": single(p.internal_port, p.internal_port_end),
        "internal_port_range": range(p.internal_port, p.internal_port_end),
        "internal_port_id": p.internal_port_id,
        "external_port": single(p.external_port, p.external_port_end),
        "external_port_range": range(p.external_port, p.external_port_end),
        "description": p.description,
    })
}

async fn list(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(fip): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    let f = floating::find(&m, &ctx, &fip)?;
    let items = f.port_forwardings.iter().map(render).collect();
    list_response(&c, items, &q, "port_forwardings", &[])
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path((fip, id)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let m = c.model();
    let f = floating::find(&m, &ctx, &fip)?;
    Ok(show_response("port_forwarding", render(find_pf(f, &id)?), &q))
}

/// A port range as given ("first:last", or one number), or the single port of `port_key`;
/// not both.
fn ports(a: &Attrs, port_key: &str, range_key: &str) -> ApiResult<Option<(u16, u16)>> {
    let single = port_number(a, port_key)?;
    let range = match a.get(range_key) {
        None | Some(Value::Null) => None,
        Some(v) => {
            let text = v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
            let invalid = || bad(format!("Invalid input for {range_key}. Reason: '{text}' is not a valid port range."));
            let (first, last) = text.split_once(':').unwrap_or((&text, &text));
            let n = |x: &str| x.trim().parse::<u16>().ok().filter(|n| *n >= 1);
            match (n(first), n(last)) {
                (Some(f), Some(l)) if f <= l => Some((f, l)),
                _ => return Err(invalid()),
            }
        }
    };
    match (single, range) {
        (Some(_), Some(_)) => Err(bad(format!("Invalid input: {port_key} and {range_key} cannot be given together."))),
        (Some(p), None) => Ok(Some((p, p))),
        (None, r) => Ok(r),
    }
}

fn port_number(a: &Attrs, key: &str) -> ApiResult<Option<u16>> {
    match a.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(n @ 1..=65535) => Ok(Some(n as u16)),
            _ => Err(bad(format!("Invalid input for {key}. Reason: '{v}' is not a valid port number."))),
        },
    }
}

fn parse(a: &Attrs) -> ApiResult<ForwardingAsk> {
    a.only(&[
        "protocol",
        "internal_ip_address",
        "internal_port",
        "internal_port_range",
        "internal_port_id",
        "external_port",
        "external_port_range",
        "description",
        "project_id",
        "tenant_id",
    ])?;
    let protocol = a.str("protocol", 40)?;
    if let Some(p) = &protocol {
        if !matches!(p.as_str(), "tcp" | "udp") {
            return Err(bad(format!("Invalid input for protocol. Reason: '{p}' is not in ['tcp', 'udp'].")));
        }
    }
    let internal_ip_address = a.str("internal_ip_address", 64)?;
    if let Some(ip) = &internal_ip_address {
        if ip.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(bad(format!(
                "Invalid input for internal_ip_address. Reason: '{ip}' is not a valid IPv4 address."
            )));
        }
    }
    Ok(ForwardingAsk {
        protocol,
        internal_ip_address,
        internal_ports: ports(a, "internal_port", "internal_port_range")?,
        internal_port_id: a.str("internal_port_id", 36)?,
        external_ports: ports(a, "external_port", "external_port_range")?,
        description: a.str("description", 255)?,
    })
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, Path(fip): Path<String>, body: Bytes) -> ApiResult {
    let a = one_member(&body, "port_forwarding", "port_forwardings")?;
    let ask = parse(&a)?;
    let missing = [
        ("protocol", ask.protocol.is_none()),
        ("internal_ip_address", ask.internal_ip_address.is_none()),
        ("internal_port", ask.internal_ports.is_none()),
        ("internal_port_id", ask.internal_port_id.is_none()),
        ("external_port", ask.external_ports.is_none()),
    ];
    if let Some((k, _)) = missing.iter().find(|(_, m)| *m) {
        return Err(bad(format!("Failed to parse request. Required attribute '{k}' not specified")));
    }
    floating::find(&c.model(), &ctx, &fip)?;
    let made = c.write(|t| floating::add_forwarding(t, &ctx, &fip, ask)).await?;
    Ok(created("port_forwarding", "port_forwardings", vec![render(&made)], false))
}

async fn update(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path((fip, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let a = one_member(&body, "port_forwarding", "port_forwardings")?;
    let ask = parse(&a)?;
    floating::find(&c.model(), &ctx, &fip)?;
    let saved = c.write(|t| floating::update_forwarding(t, &ctx, &fip, &id, ask)).await?;
    Ok(show_response("port_forwarding", render(&saved), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path((fip, id)): Path<(String, String)>) -> ApiResult<Response> {
    floating::find(&c.model(), &ctx, &fip)?;
    c.write(|t| floating::remove_forwarding(t, &fip, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
