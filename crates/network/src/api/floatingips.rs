//! Floating IPs (`/v2.0/floatingips`): an address on an external network, held by a port
//! of its own, associated with a port's fixed IP through the router that joins the two.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::{
    bad, created_rows, list_response, members, one_member, owns, show_response, standard, ApiResult, Ctx, ListQuery,
};
use crate::ip::Addr;
use crate::model::{FloatingIp, Model, Port, Std};
use crate::service::{allocate_ips, check_quota, new_mac, not_found, Error, IpRequest};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/floatingips", rule("get_floatingip"), list)
        .post("/floatingips", rule("create_floatingip"), create)
        .get("/floatingips/{id}", rule("get_floatingip"), show)
        .put("/floatingips/{id}", rule("update_floatingip"), update)
        .delete("/floatingips/{id}", rule("delete_floatingip"), delete)
}

pub const OWNER: &str = "network:floatingip";

pub fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a FloatingIp, Error> {
    m.floatingips
        .get(id)
        .map(|f| &**f)
        .filter(|f| owns(ctx, &f.project_id))
        .ok_or_else(|| not_found("FloatingIPNotFound", "Floating IP", id))
}

fn render(m: &Model, f: &FloatingIp) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(f.id));
    v.insert("floating_ip_address".into(), json!(f.floating_ip_address));
    v.insert("floating_network_id".into(), json!(f.floating_network_id));
    v.insert("router_id".into(), json!(f.router_id));
    v.insert("port_id".into(), json!(f.port_id));
    v.insert("fixed_ip_address".into(), json!(f.fixed_ip_address));
    v.insert("status".into(), json!(if f.port_id.is_some() { "ACTIVE" } else { "DOWN" }));
    let details = f.port_id.as_ref().and_then(|p| m.ports.get(p)).map(|p| {
        json!({
            "name": p.name,
            "network_id": p.network_id,
            "mac_address": p.mac_address,
            "admin_state_up": p.admin_state_up,
            "status": p.status,
            "device_id": p.device_id,
            "device_owner": p.device_owner,
        })
    });
    v.insert("port_details".into(), details.unwrap_or(Value::Null));
    v.insert(
        "port_forwardings".into(),
        json!(f
            .port_forwardings
            .iter()
            .map(|p| json!({
                "protocol": p.protocol, "internal_ip_address": p.internal_ip_address,
                "internal_port": p.internal_port, "external_port": p.external_port,
            }))
            .collect::<Vec<_>>()),
    );
    standard(&mut v, &f.project_id, &f.std);
    Value::Object(v)
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    let items = m.floatingips.values().filter(|f| owns(&ctx, &f.project_id)).map(|f| render(&m, f)).collect();
    list_response(&c, items, &q, "floatingips", &[])
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let m = c.model();
    Ok(show_response("floatingip", render(&m, find(&m, &ctx, &id)?), &q))
}

/// Where a floating IP points: the port (the caller's), its fixed IP (given, or its first
/// IPv4 address), and the router with a gateway on the floating network and an interface on
/// that address's subnet.
pub fn association(
    m: &Model,
    ctx: &AuthContext,
    fip_id: &str,
    network_id: &str,
    port_id: &str,
    fixed_ip: Option<&str>,
) -> Result<(String, String), Error> {
    let port: &Port = crate::service::ports::find(m, ctx, port_id)?;
    let fixed = match fixed_ip {
        Some(ip) => port.fixed_ips.iter().find(|f| f.ip_address == ip).ok_or_else(|| {
            Error::BadRequest(
                "BadRequest",
                format!("Bad floatingip request: Port {port_id} does not have fixed ip {ip}."),
            )
        })?,
        None => port.fixed_ips.iter().find(|f| Addr::parse(&f.ip_address).is_some_and(|a| a.version == 4)).ok_or_else(
            || {
                Error::BadRequest(
                    "BadRequest",
                    format!("Bad floatingip request: Port {port_id} does not have any IPv4 address."),
                )
            },
        )?,
    };
    let router = m
        .routers
        .values()
        .filter(|r| r.gateway.as_ref().is_some_and(|g| g.network_id == network_id))
        .find(|r| crate::service::routers::interfaces(m, &r.id).any(|p| p.fixed_ips.iter().any(|f| f.subnet_id == fixed.subnet_id)))
        .ok_or_else(|| {
            Error::NotFound(
                "ExternalGatewayForFloatingIPNotFound",
                format!(
                    "External network {network_id} is not reachable from subnet {}. Therefore, cannot associate Port {port_id} with a Floating IP.",
                    fixed.subnet_id
                ),
            )
        })?;
    if let Some(other) = m.floatingips.values().find(|f| {
        f.id != fip_id
            && f.floating_network_id == network_id
            && f.port_id.as_deref() == Some(port_id)
            && f.fixed_ip_address.as_deref() == Some(fixed.ip_address.as_str())
    }) {
        return Err(Error::Conflict(
            "FloatingIPPortAlreadyAssociated",
            format!(
                "Cannot associate floating IP {} ({fip_id}) with port {port_id} using fixed IP {}, as that fixed IP already has a floating IP on external network {network_id}.",
                other.floating_ip_address, fixed.ip_address
            ),
        ));
    }
    Ok((fixed.ip_address.clone(), router.id.clone()))
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let (items, bulk) = members(&body, "floatingip", "floatingips")?;
    let mut asks = Vec::new();
    for a in &items {
        a.only(&[
            "floating_network_id",
            "port_id",
            "fixed_ip_address",
            "floating_ip_address",
            "subnet_id",
            "description",
            "tenant_id",
            "project_id",
            "dns_name",
            "dns_domain",
        ])?;
        let project_id = a.owner(&ctx)?;
        let network_id = a
            .str("floating_network_id", 36)?
            .ok_or_else(|| bad("Failed to parse request. Required attribute 'floating_network_id' not specified"))?;
        let port_id = a.nullable_str("port_id", 36)?.flatten();
        let fixed = a.nullable_str("fixed_ip_address", 64)?.flatten();
        let address = a.nullable_str("floating_ip_address", 64)?.flatten();
        for ip in [&fixed, &address].into_iter().flatten() {
            if Addr::parse(ip).is_none() {
                return Err(bad(format!("Invalid input for operation: '{ip}' is not a valid IP address.")));
            }
        }
        let subnet = a.nullable_str("subnet_id", 36)?.flatten();
        asks.push((
            project_id,
            network_id,
            port_id,
            fixed,
            address,
            subnet,
            a.str("description", 255)?.unwrap_or_default(),
        ));
    }
    let ids = c
        .write(|t| {
            let mut ids = Vec::new();
            for (project_id, network_id, port_id, fixed, address, subnet, description) in asks {
                let network =
                    t.m.networks
                        .get(&network_id)
                        .ok_or_else(|| not_found("NetworkNotFound", "Network", &network_id))?;
                if !network.external
                    && !crate::service::rbac::grants(&t.m, &network_id, Some(&project_id), "access_as_external")
                {
                    return Err(Error::BadRequest(
                        "BadRequest",
                        format!("Bad floatingip request: Network {network_id} is not a valid external network."),
                    ));
                }
                check_quota(&t.m, &project_id, "floatingip", 1)?;
                let id = uuid::Uuid::new_v4().to_string();
                let (fixed_ip_address, router_id) = match &port_id {
                    Some(p) => {
                        let (ip, r) = association(&t.m, &ctx, &id, &network_id, p, fixed.as_deref())?;
                        (Some(ip), Some(r))
                    }
                    None => (None, None),
                };
                // The address: asked (admins) or the next free one of an IPv4 subnet.
                let request = match (&subnet, &address) {
                    (None, None) => {
                        let v4 = t.m.subnets_of(&network_id).find(|s| s.ip_version == 4).map(|s| s.id.clone());
                        v4.map(|s| vec![IpRequest { subnet_id: Some(s), ..Default::default() }])
                    }
                    _ => Some(vec![IpRequest {
                        subnet_id: subnet.clone(),
                        ip_address: address.clone(),
                        ..Default::default()
                    }]),
                };
                let Some(request) = request else {
                    return Err(Error::BadRequest(
                        "BadRequest",
                        format!("Bad floatingip request: Network {network_id} has no IPv4 subnet."),
                    ));
                };
                let mac = new_mac(&t.m, &network_id);
                let fixed_ips = allocate_ips(&t.m, &network_id, &mac, Some(&request), None)?;
                let floating_ip_address = fixed_ips[0].ip_address.clone();
                let port = crate::service::routers::network_port(&network_id, mac, fixed_ips, &id, OWNER, "");
                let port_row = port.id.clone();
                t.put(port)?;
                t.put(FloatingIp {
                    id: id.clone(),
                    project_id,
                    floating_network_id: network_id,
                    floating_ip_address,
                    floating_port_id: port_row,
                    port_id,
                    fixed_ip_address,
                    router_id,
                    std: Std::new(description),
                    port_forwardings: Vec::new(),
                })?;
                ids.push(id);
            }
            Ok(ids)
        })
        .await?;
    let m = c.model();
    let ports: Vec<String> =
        ids.iter().filter_map(|id| m.floatingips.get(id)).filter_map(|f| f.port_id.clone()).collect();
    c.ports_changed(&ports);
    Ok(created_rows(&c, &ids, "floatingip", "floatingips", bulk, |m| &m.floatingips, |m, r| render(m, r)))
}

async fn update(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let a = one_member(&body, "floatingip", "floatingips")?;
    a.only(&["port_id", "fixed_ip_address", "description"])?;
    find(&c.model(), &ctx, &id)?;
    let port = if a.has("port_id") { Some(a.nullable_str("port_id", 36)?.flatten()) } else { None };
    let fixed = a.nullable_str("fixed_ip_address", 64)?.flatten();
    if let Some(ip) = &fixed {
        if Addr::parse(ip).is_none() {
            return Err(bad(format!("Invalid input for fixed_ip_address. Reason: '{ip}' is not a valid IP address.")));
        }
    }
    let description = a.str("description", 255)?;
    let before = c.model().floatingips.get(&id).and_then(|f| f.port_id.clone());
    c.write(|t| {
        let mut f = t.edit(&t.m.floatingips, "floating IP", &id)?;
        if matches!(port, Some(Some(_))) && !f.port_forwardings.is_empty() {
            return Err(Error::Conflict(
                "FipInUseByPortForwarding",
                format!("Floating IP {id} in use by Port Forwarding resources."),
            ));
        }
        match port {
            Some(Some(p)) => {
                let (ip, r) = association(&t.m, &ctx, &id, &f.floating_network_id, &p, fixed.as_deref())?;
                f.port_id = Some(p);
                f.fixed_ip_address = Some(ip);
                f.router_id = Some(r);
            }
            Some(None) => {
                f.port_id = None;
                f.fixed_ip_address = None;
                f.router_id = None;
            }
            None => {
                if let (Some(ip), Some(p)) = (&fixed, f.port_id.clone()) {
                    let (ip, r) = association(&t.m, &ctx, &id, &f.floating_network_id, &p, Some(ip))?;
                    f.fixed_ip_address = Some(ip);
                    f.router_id = Some(r);
                }
            }
        }
        if let Some(d) = description {
            f.std.description = d;
        }
        f.std.touch();
        t.put(f)?;
        Ok(())
    })
    .await?;
    let m = c.model();
    let after = m.floatingips.get(&id).and_then(|f| f.port_id.clone());
    if before != after {
        c.ports_changed(&before.into_iter().chain(after).collect::<Vec<_>>());
    }
    Ok(show_response("floatingip", render(&m, find(&m, &ctx, &id)?), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    find(&c.model(), &ctx, &id)?;
    let port = c
        .write(|t| {
            let f = t.delete::<FloatingIp>(&id).ok_or_else(|| not_found("FloatingIPNotFound", "Floating IP", &id))?;
            t.delete::<Port>(&f.floating_port_id);
            Ok(f.port_id.clone())
        })
        .await?;
    c.ports_changed(&port.into_iter().collect::<Vec<_>>());
    Ok(StatusCode::NO_CONTENT.into_response())
}
