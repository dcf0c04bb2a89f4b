//! Routers' rules: the external gateway (its port on an external network the caller may
//! use, its fixed IPs), static routes through connected subnets, interfaces added by subnet
//! (the gateway address) or port and removed unless floating IPs need them.

use haneul_core::auth::AuthContext;
use serde_json::json;

use super::access::owns;
use super::{allocate_ips, bad, check_quota, invalid, new_mac, not_found, Error, IpRequest, Result, Txn};
use crate::ip::{Addr, Cidr};
use crate::model::{ExternalGateway, FixedIp, HostRoute, Model, Port, Router as L3Router, Std};

pub const INTERFACE: &str = "network:router_interface";
pub const GATEWAY: &str = "network:router_gateway";

pub fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a L3Router> {
    m.routers
        .get(id)
        .map(|r| &**r)
        .filter(|r| owns(ctx, &r.project_id))
        .ok_or_else(|| not_found("RouterNotFound", "Router", id))
}

pub fn gateway_port<'a>(m: &'a Model, router_id: &str) -> Option<&'a Port> {
    m.ports_of_device(router_id).find(|p| p.device_owner == GATEWAY)
}

/// The router's interface ports.
pub fn interfaces<'a>(m: &'a Model, router_id: &'a str) -> impl Iterator<Item = &'a Port> + 'a {
    m.ports_of_device(router_id).filter(|p| p.device_owner == INTERFACE)
}

/// `external_gateway_info` as asked: None = not given, Some(None) = no gateway.
pub struct GatewayAsk {
    pub network_id: String,
    pub enable_snat: Option<bool>,
    pub fixed_ips: Option<Vec<IpRequest>>,
}

/// Sets, changes or clears the router's gateway in `t`, with its port on the external
/// network.
pub fn set_gateway(
    t: &mut Txn,
    ctx: &AuthContext,
    router_id: &str,
    ask: Option<GatewayAsk>,
) -> Result<Option<ExternalGateway>> {
    let old = gateway_port(&t.m, router_id).cloned();
    let Some(ask) = ask else {
        if let Some(p) = old {
            let fips_use_it = t.m.floatingips.values().any(|f| f.router_id.as_deref() == Some(router_id));
            if fips_use_it {
                return Err(Error::Conflict(
                    "RouterExternalGatewayInUseByFloatingIp",
                    format!("Gateway cannot be updated for router {router_id}, since a gateway to external network {} is required by one or more floating IPs.", p.network_id),
                ));
            }
            t.delete::<Port>(&p.id);
        }
        return Ok(None);
    };
    let network =
        t.m.networks.get(&ask.network_id).ok_or_else(|| not_found("NetworkNotFound", "Network", &ask.network_id))?;
    if !super::networks::external_for(&t.m, ctx, network) {
        return Err(Error::BadRequest(
            "BadRequest",
            format!("Bad router request: Network {} is not an external network.", ask.network_id),
        ));
    }
    let enable_snat = ask.enable_snat.unwrap_or(true);
    if let Some(p) = &old {
        if p.network_id == ask.network_id && ask.fixed_ips.is_none() {
            return Ok(Some(ExternalGateway { network_id: ask.network_id, enable_snat }));
        }
        t.delete::<Port>(&p.id);
    }
    for r in ask.fixed_ips.iter().flatten() {
        if let Some(sid) = &r.subnet_id {
            let s = t.m.subnets.get(sid).ok_or_else(|| not_found("SubnetNotFound", "Subnet", sid))?;
            if s.network_id != ask.network_id {
                return Err(invalid(format!("Subnet {sid} is not on external network {}", ask.network_id)));
            }
            if let (Some(ip), Some(gw)) = (&r.ip_address, &s.gateway_ip) {
                if ip == gw {
                    return Err(bad(format!("Bad router request: IP address {ip} is the gateway of subnet {sid}.")));
                }
            }
        }
    }
    let mac = new_mac(&t.m, &ask.network_id);
    let fixed_ips = allocate_ips(&t.m, &ask.network_id, &mac, ask.fixed_ips.as_deref(), None)?;
    t.put(network_port(&ask.network_id, mac, fixed_ips, router_id, GATEWAY, ""))?;
    Ok(Some(ExternalGateway { network_id: ask.network_id, enable_snat }))
}

/// A port the network service owns (router gateway or interface, floating IP).
pub fn network_port(
    network_id: &str,
    mac: String,
    fixed_ips: Vec<FixedIp>,
    device_id: &str,
    owner: &str,
    project_id: &str,
) -> Port {
    Port {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: project_id.into(),
        network_id: network_id.into(),
        name: String::new(),
        admin_state_up: true,
        mac_address: mac,
        fixed_ips,
        device_id: device_id.into(),
        device_owner: owner.into(),
        status: if owner == "network:floatingip" { "N/A".into() } else { "ACTIVE".into() },
        security_groups: Vec::new(),
        port_security_enabled: false,
        allowed_address_pairs: Vec::new(),
        extra_dhcp_opts: Vec::new(),
        host_id: String::new(),
        vnic_type: "normal".into(),
        profile: json!({}),
        std: Std::new(String::new()),
    }
}

/// Static routes must lead through a subnet the router is on.
fn check_routes(m: &Model, router_id: &str, routes: &[HostRoute]) -> Result<()> {
    for r in routes {
        let hop = Addr::parse(&r.nexthop).ok_or_else(|| bad("bad nexthop"))?;
        let connected = interfaces(m, router_id)
            .chain(gateway_port(m, router_id))
            .flat_map(|p| p.fixed_ips.iter())
            .filter_map(|f| m.subnets.get(&f.subnet_id))
            .any(|s| Cidr::parse(&s.cidr, true).is_some_and(|c| c.contains(hop)));
        if !connected {
            return Err(Error::BadRequest(
                "InvalidRoutes",
                format!("Invalid format for routes: {r:?}, the nexthop {} is not connected with router", r.nexthop),
            ));
        }
    }
    Ok(())
}

/// A new interface's subnets must not overlap the router's other subnets.
fn check_overlap(m: &Model, router_id: &str, subnet_ids: &[String]) -> Result<()> {
    for sid in subnet_ids {
        let Some(new) = m.subnets.get(sid) else { continue };
        let Some(nc) = Cidr::parse(&new.cidr, true) else { continue };
        for p in interfaces(m, router_id) {
            for f in &p.fixed_ips {
                if &f.subnet_id == sid {
                    return Err(Error::BadRequest(
                        "BadRequest",
                        format!("Bad router request: Router already has a port on subnet {sid}."),
                    ));
                }
                if let Some(o) = m.subnets.get(&f.subnet_id) {
                    if Cidr::parse(&o.cidr, true).is_some_and(|oc| oc.overlaps(nc)) {
                        return Err(Error::BadRequest(
                            "BadRequest",
                            format!(
                                "Bad router request: Cidr {} of subnet {sid} overlaps with cidr {} of subnet {}.",
                                new.cidr, o.cidr, o.id
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Creates the routers asked for with their gateways, all or none.
pub fn create(t: &mut Txn, ctx: &AuthContext, asks: Vec<(L3Router, Option<GatewayAsk>)>) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for (mut router, gateway) in asks {
        check_quota(&t.m, &router.project_id, "router", 1)?;
        router.gateway = set_gateway(t, ctx, &router.id, gateway)?;
        ids.push(router.id.clone());
        t.put(router)?;
    }
    Ok(ids)
}

/// What an update changes (`None`: left as it is; a gateway of `Some(None)` is removed).
pub struct RouterUpdate {
    pub gateway: Option<Option<GatewayAsk>>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub routes: Option<Vec<HostRoute>>,
    pub distributed: Option<bool>,
    pub ha: Option<bool>,
}

pub fn update(t: &mut Txn, ctx: &AuthContext, id: &str, u: RouterUpdate) -> Result<()> {
    let mut r = t.edit(&t.m.routers, "router", id)?;
    if let Some(g) = u.gateway {
        r.gateway = set_gateway(t, ctx, id, g)?;
    }
    if let Some(v) = u.name {
        r.name = v;
    }
    if let Some(v) = u.description {
        r.std.description = v;
    }
    if let Some(v) = u.admin_state_up {
        r.admin_state_up = v;
    }
    if let Some(v) = u.distributed {
        r.distributed = v;
    }
    if let Some(v) = u.ha {
        r.ha = v;
    }
    if let Some(v) = u.routes {
        check_routes(&t.m, id, &v)?;
        r.routes = v;
    }
    r.std.touch();
    t.put(r)?;
    Ok(())
}

/// Deletes the router and its gateway port; refused while it has interfaces.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    let ports: Vec<String> = interfaces(&t.m, id).map(|p| p.id.clone()).collect();
    if !ports.is_empty() {
        return Err(Error::Conflict("RouterInUse", format!("Router {id} still has ports: {}", ports.join(", "))));
    }
    if let Some(p) = gateway_port(&t.m, id).map(|p| p.id.clone()) {
        t.delete::<Port>(&p);
    }
    t.delete::<L3Router>(id).ok_or_else(|| not_found("RouterNotFound", "Router", id))?;
    Ok(())
}

/// An interface named by its subnet or by its port.
pub enum Interface {
    Subnet(String),
    Port(String),
}

/// Adds an interface: on a subnet, a new port holding the subnet's gateway address; or an
/// unused port of the caller's. Its subnets must not overlap the router's others.
pub fn add_interface(t: &mut Txn, ctx: &AuthContext, id: &str, which: Interface) -> Result<(L3Router, Port)> {
    let router = t.m.routers.get(id).cloned().ok_or_else(|| not_found("RouterNotFound", "Router", id))?;
    let port = match which {
        Interface::Subnet(sid) => {
            let s = super::subnets::find(&t.m, ctx, &sid)?.clone();
            if !owns(ctx, &s.project_id)
                && !t.m.networks.get(&s.network_id).is_some_and(|n| owns(ctx, &n.project_id) || n.shared)
            {
                return Err(not_found("SubnetNotFound", "Subnet", &sid));
            }
            let Some(gw) = s.gateway_ip.clone() else {
                return Err(Error::BadRequest(
                    "BadRequest",
                    "Bad router request: Subnet for router interface must have a gateway IP.".into(),
                ));
            };
            check_overlap(&t.m, id, std::slice::from_ref(&sid))?;
            let mac = new_mac(&t.m, &s.network_id);
            let req = [IpRequest { subnet_id: Some(sid.clone()), ip_address: Some(gw), gateway: true }];
            let fixed = allocate_ips(&t.m, &s.network_id, &mac, Some(&req), None)?;
            network_port(&s.network_id, mac, fixed, id, INTERFACE, &router.project_id)
        }
        Interface::Port(pid) => {
            let mut p = super::ports::find(&t.m, ctx, &pid)?.clone();
            if !p.device_id.is_empty() || !p.device_owner.is_empty() {
                return Err(Error::Conflict(
                    "PortInUse",
                    format!(
                        "Unable to complete operation on port {pid} for network {}. Port already has an attached device {}.",
                        p.network_id, p.device_id
                    ),
                ));
            }
            if p.fixed_ips.is_empty() {
                return Err(Error::BadRequest(
                    "BadRequest",
                    "Bad router request: Router port must have at least one fixed IP.".into(),
                ));
            }
            let subnets: Vec<String> = p.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect();
            check_overlap(&t.m, id, &subnets)?;
            p.device_id = id.to_string();
            p.device_owner = INTERFACE.into();
            p.status = "ACTIVE".into();
            p.security_groups.clear();
            p.std.touch();
            p
        }
    };
    t.put(port.clone())?;
    Ok(((*router).clone(), port))
}

/// Removes an interface (by subnet or port) unless a floating IP reaches its subnet through
/// this router.
pub fn remove_interface(t: &mut Txn, id: &str, which: Interface) -> Result<(L3Router, Port)> {
    let router = t.m.routers.get(id).cloned().ok_or_else(|| not_found("RouterNotFound", "Router", id))?;
    let port = match &which {
        Interface::Subnet(sid) => interfaces(&t.m, id)
            .find(|p| p.fixed_ips.iter().any(|f| &f.subnet_id == sid))
            .cloned()
            .ok_or_else(|| {
                Error::NotFound(
                    "RouterInterfaceNotFoundForSubnet",
                    format!("Router {id} has no interface on subnet {sid}"),
                )
            })?,
        Interface::Port(pid) => interfaces(&t.m, id).find(|p| &p.id == pid).cloned().ok_or_else(|| {
            Error::NotFound("RouterInterfaceNotFound", format!("Router {id} does not have an interface with id {pid}"))
        })?,
    };
    let subnets: Vec<&str> = port.fixed_ips.iter().map(|f| f.subnet_id.as_str()).collect();
    let in_use = t.m.floatingips.values().any(|f| {
        f.router_id.as_deref() == Some(id)
            && f.port_id
                .as_ref()
                .and_then(|p| t.m.ports.get(p))
                .is_some_and(|p| p.fixed_ips.iter().any(|x| subnets.contains(&x.subnet_id.as_str())))
    });
    if in_use {
        return Err(Error::Conflict(
            "RouterInterfaceInUseByFloatingIP",
            format!(
                "Router interface for subnet {} on router {id} cannot be deleted, as it is required by one or more floating IPs.",
                subnets.first().unwrap_or(&"")
            ),
        ));
    }
    t.delete::<Port>(&port.id);
    Ok(((*router).clone(), port))
}
