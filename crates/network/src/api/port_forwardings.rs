//! Floating IP port forwardings (`/v2.0/floatingips/{id}/port_forwardings`): an external
//! port (or range, `external_port_range` "first:last") of a floating IP, TCP or UDP,
//! forwarded to an address and port (or a range of the same size) of a port behind the
//! router that has a gateway on the floating IP's network. The router's namespace DNATs it.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Value};

use super::{bad, created, list_response, one_member, show_response, ApiResult, Attrs, Ctx, ListQuery};
use crate::model::{FloatingIp, PortForwarding};
use crate::service::Error;

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

/// The external ports of a forwarding, first and last.
fn external(p: &PortForwarding) -> (u16, u16) {
    (p.external_port, p.external_port_end.unwrap_or(p.external_port))
}

/// The internal ports, first and last.
fn internal(p: &PortForwarding) -> (u16, u16) {
    (p.internal_port, p.internal_port_end.unwrap_or(p.internal_port))
}

fn find_pf<'a>(f: &'a FloatingIp, id: &str) -> Result<&'a PortForwarding, Error> {
    f.port_forwardings
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| Error::NotFound("PortForwardingNotFound", format!("Port Forwarding {id} could not be found.")))
}

async fn list(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(fip): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    let f = super::floatingips::find(&m, &ctx, &fip)?;
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
    let f = super::floatingips::find(&m, &ctx, &fip)?;
    Ok(show_response("port_forwarding", render(find_pf(f, &id)?), &q))
}

/// The attributes of a create or update (None: not given).
struct Ask {
    protocol: Option<String>,
    internal_ip_address: Option<String>,
    /// First and last (the same for one port).
    internal_ports: Option<(u16, u16)>,
    internal_port_id: Option<String>,
    external_ports: Option<(u16, u16)>,
    description: Option<String>,
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

fn parse(a: &Attrs) -> ApiResult<Ask> {
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
    Ok(Ask {
        protocol,
        internal_ip_address,
        internal_ports: ports(a, "internal_port", "internal_port_range")?,
        internal_port_id: a.str("internal_port_id", 36)?,
        external_ports: ports(a, "external_port", "external_port_range")?,
        description: a.str("description", 255)?,
    })
}

/// Sets a forwarding's ports from first/last pairs.
fn set_ports(pf: &mut PortForwarding, internal: Option<(u16, u16)>, external: Option<(u16, u16)>) {
    if let Some((f, l)) = internal {
        pf.internal_port = f;
        pf.internal_port_end = (l != f).then_some(l);
    }
    if let Some((f, l)) = external {
        pf.external_port = f;
        pf.external_port_end = (l != f).then_some(l);
    }
}

/// Checks a forwarding against its floating IP (not associated with a port; no other
/// forwarding with the same external port and protocol, nor to the same internal socket)
/// and its internal port (the caller's, holding the address, behind a router with a gateway
/// on the floating IP's network). Returns the router.
fn check(m: &crate::model::Model, ctx: &AuthContext, f: &FloatingIp, pf: &PortForwarding) -> Result<String, Error> {
    if let Some(port) = &f.port_id {
        return Err(Error::Conflict(
            "FloatingIPPortAlreadyAssociated",
            format!("Floating IP {} is associated with port {port}; a port forwarding needs a free floating IP.", f.id),
        ));
    }
    let ((ef, el), (inf, inl)) = (external(pf), internal(pf));
    if inl != inf && inl - inf != el - ef {
        return Err(Error::BadRequest(
            "BadRequest",
            format!(
                "The internal port range {inf}:{inl} and the external port range {ef}:{el} must be of the same size, or the internal one a single port."
            ),
        ));
    }
    let overlaps = |a: (u16, u16), b: (u16, u16)| a.0 <= b.1 && b.0 <= a.1;
    let clash = f.port_forwardings.iter().filter(|o| o.id != pf.id).find(|o| {
        o.protocol == pf.protocol
            && (overlaps(external(o), external(pf))
                || (o.internal_port_id == pf.internal_port_id
                    && o.internal_ip_address == pf.internal_ip_address
                    && overlaps(internal(o), internal(pf))))
    });
    if let Some(o) = clash {
        return Err(Error::BadRequest(
            "BadRequest",
            format!(
                "A duplicate port forwarding entry with same attributes already exists, conflicting values are {{'floatingip_id': '{}', 'external_port': {}, 'protocol': '{}'}}",
                f.id, o.external_port, o.protocol
            ),
        ));
    }
    let (_, router) = super::floatingips::association(
        m,
        ctx,
        &f.id,
        &f.floating_network_id,
        &pf.internal_port_id,
        Some(&pf.internal_ip_address),
    )
    .map_err(|e| match e {
        Error::BadRequest(kind, msg) => Error::BadRequest(kind, msg.replace("floatingip", "port forwarding")),
        other => other,
    })?;
    Ok(router)
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
    let mut pf = PortForwarding {
        id: uuid::Uuid::new_v4().to_string(),
        protocol: ask.protocol.unwrap_or_default(),
        internal_ip_address: ask.internal_ip_address.unwrap_or_default(),
        internal_port: 0,
        internal_port_id: ask.internal_port_id.unwrap_or_default(),
        external_port: 0,
        internal_port_end: None,
        external_port_end: None,
        description: ask.description.unwrap_or_default(),
    };
    set_ports(&mut pf, ask.internal_ports, ask.external_ports);
    super::floatingips::find(&c.model(), &ctx, &fip)?;
    let made = pf.clone();
    c.write(|t| {
        let mut f = t.edit(&t.m.floatingips, "floating IP", &fip)?;
        let router = check(&t.m, &ctx, &f, &pf)?;
        f.router_id = Some(router);
        f.port_forwardings.push(pf);
        f.std.touch();
        t.put(f)?;
        Ok(())
    })
    .await?;
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
    super::floatingips::find(&c.model(), &ctx, &fip)?;
    let saved = c
        .write(|t| {
            let mut f = t.edit(&t.m.floatingips, "floating IP", &fip)?;
            let mut pf = find_pf(&f, &id)?.clone();
            if let Some(v) = ask.protocol {
                pf.protocol = v;
            }
            if let Some(v) = ask.internal_ip_address {
                pf.internal_ip_address = v;
            }
            set_ports(&mut pf, ask.internal_ports, ask.external_ports);
            if let Some(v) = ask.internal_port_id {
                pf.internal_port_id = v;
            }
            if let Some(v) = ask.description {
                pf.description = v;
            }
            let router = check(&t.m, &ctx, &f, &pf)?;
            f.router_id = Some(router);
            for p in f.port_forwardings.iter_mut().filter(|p| p.id == id) {
                *p = pf.clone();
            }
            f.std.touch();
            t.put(f)?;
            Ok(pf)
        })
        .await?;
    Ok(show_response("port_forwarding", render(&saved), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path((fip, id)): Path<(String, String)>) -> ApiResult<Response> {
    super::floatingips::find(&c.model(), &ctx, &fip)?;
    c.write(|t| {
        let mut f = t.edit(&t.m.floatingips, "floating IP", &fip)?;
        find_pf(&f, &id)?;
        f.port_forwardings.retain(|p| p.id != id);
        if f.port_forwardings.is_empty() && f.port_id.is_none() {
            f.router_id = None;
        }
        f.std.touch();
        t.put(f)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
