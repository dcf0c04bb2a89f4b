//! Floating IPs' rules: an address on an external network held by a port of its own, its
//! association with a port's fixed IP through the router joining the two, and its port
//! forwardings (the same router, an external port to an internal address and port).

use haneul_core::auth::AuthContext;

use super::access::owns;
use super::{allocate_ips, check_quota, new_mac, not_found, Error, IpRequest, Result, Txn};
use crate::ip::Addr;
use crate::model::{FloatingIp, Model, Port, PortForwarding, Std};

pub const OWNER: &str = "network:floatingip";

pub fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a FloatingIp> {
    m.floatingips
        .get(id)
        .map(|f| &**f)
        .filter(|f| owns(ctx, &f.project_id))
        .ok_or_else(|| not_found("FloatingIPNotFound", "Floating IP", id))
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
) -> Result<(String, String)> {
    let port: &Port = super::ports::find(m, ctx, port_id)?;
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
        .find(|r| super::routers::interfaces(m, &r.id).any(|p| p.fixed_ips.iter().any(|f| f.subnet_id == fixed.subnet_id)))
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

/// A floating IP asked for, its addresses checked for syntax.
pub struct NewFloatingIp {
    pub project_id: String,
    pub network_id: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub floating_ip_address: Option<String>,
    pub subnet_id: Option<String>,
    pub description: String,
}

/// Creates the floating IPs asked for, all or none: each on an external network, its address
/// (asked for, or the next free one of an IPv4 subnet) held by a port of its own, associated
/// when a port is named.
pub fn create(t: &mut Txn, ctx: &AuthContext, asks: Vec<NewFloatingIp>) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for ask in asks {
        let network_id = ask.network_id;
        let network =
            t.m.networks.get(&network_id).ok_or_else(|| not_found("NetworkNotFound", "Network", &network_id))?;
        if !network.external && !super::rbac::grants(&t.m, &network_id, Some(&ask.project_id), "access_as_external") {
            return Err(Error::BadRequest(
                "BadRequest",
                format!("Bad floatingip request: Network {network_id} is not a valid external network."),
            ));
        }
        check_quota(&t.m, &ask.project_id, "floatingip", 1)?;
        let id = uuid::Uuid::new_v4().to_string();
        let (fixed_ip_address, router_id) = match &ask.port_id {
            Some(p) => {
                let (ip, r) = association(&t.m, ctx, &id, &network_id, p, ask.fixed_ip_address.as_deref())?;
                (Some(ip), Some(r))
            }
            None => (None, None),
        };
        let request = match (&ask.subnet_id, &ask.floating_ip_address) {
            (None, None) => {
                let v4 = t.m.subnets_of(&network_id).find(|s| s.ip_version == 4).map(|s| s.id.clone());
                v4.map(|s| vec![IpRequest { subnet_id: Some(s), ..Default::default() }])
            }
            (subnet, address) => {
                Some(vec![IpRequest { subnet_id: subnet.clone(), ip_address: address.clone(), ..Default::default() }])
            }
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
        let port = super::routers::network_port(&network_id, mac, fixed_ips, &id, OWNER, "");
        let port_row = port.id.clone();
        t.put(port)?;
        t.put(FloatingIp {
            id: id.clone(),
            project_id: ask.project_id,
            floating_network_id: network_id,
            floating_ip_address,
            floating_port_id: port_row,
            port_id: ask.port_id,
            fixed_ip_address,
            router_id,
            std: Std::new(ask.description),
            port_forwardings: Vec::new(),
        })?;
        ids.push(id);
    }
    Ok(ids)
}

/// Associates the floating IP with `port` (`Some(Some(..))`), lets it go (`Some(None)`), or
/// moves it to another fixed IP of its port; not while it has port forwardings.
pub fn update(
    t: &mut Txn,
    ctx: &AuthContext,
    id: &str,
    port: Option<Option<String>>,
    fixed: Option<String>,
    description: Option<String>,
) -> Result<()> {
    let mut f = t.edit(&t.m.floatingips, "floating IP", id)?;
    if matches!(port, Some(Some(_))) && !f.port_forwardings.is_empty() {
        return Err(Error::Conflict(
            "FipInUseByPortForwarding",
            format!("Floating IP {id} in use by Port Forwarding resources."),
        ));
    }
    match port {
        Some(Some(p)) => {
            let (ip, r) = association(&t.m, ctx, id, &f.floating_network_id, &p, fixed.as_deref())?;
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
                let (ip, r) = association(&t.m, ctx, id, &f.floating_network_id, &p, Some(ip))?;
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
}

/// Deletes the floating IP and its own port; answers the port it was associated with.
pub fn delete(t: &mut Txn, id: &str) -> Result<Option<String>> {
    let f = t.delete::<FloatingIp>(id).ok_or_else(|| not_found("FloatingIPNotFound", "Floating IP", id))?;
    t.delete::<Port>(&f.floating_port_id);
    Ok(f.port_id.clone())
}

/// The external ports of a forwarding, first and last.
fn external(p: &PortForwarding) -> (u16, u16) {
    (p.external_port, p.external_port_end.unwrap_or(p.external_port))
}

/// The internal ports, first and last.
fn internal(p: &PortForwarding) -> (u16, u16) {
    (p.internal_port, p.internal_port_end.unwrap_or(p.internal_port))
}

pub fn find_forwarding<'a>(f: &'a FloatingIp, id: &str) -> Result<&'a PortForwarding> {
    f.port_forwardings
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| Error::NotFound("PortForwardingNotFound", format!("Port Forwarding {id} could not be found.")))
}

/// The attributes of a create or update (None: not given).
pub struct ForwardingAsk {
    pub protocol: Option<String>,
    pub internal_ip_address: Option<String>,
    /// First and last (the same for one port).
    pub internal_ports: Option<(u16, u16)>,
    pub internal_port_id: Option<String>,
    pub external_ports: Option<(u16, u16)>,
    pub description: Option<String>,
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
fn check(m: &Model, ctx: &AuthContext, f: &FloatingIp, pf: &PortForwarding) -> Result<String> {
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
    let (_, router) =
        association(m, ctx, &f.id, &f.floating_network_id, &pf.internal_port_id, Some(&pf.internal_ip_address))
            .map_err(|e| match e {
                Error::BadRequest(kind, msg) => Error::BadRequest(kind, msg.replace("floatingip", "port forwarding")),
                other => other,
            })?;
    Ok(router)
}

/// Adds a port forwarding to the floating IP (which it sends through the router found); its
/// required attributes were checked present.
pub fn add_forwarding(t: &mut Txn, ctx: &AuthContext, fip: &str, ask: ForwardingAsk) -> Result<PortForwarding> {
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
    let mut f = t.edit(&t.m.floatingips, "floating IP", fip)?;
    let router = check(&t.m, ctx, &f, &pf)?;
    f.router_id = Some(router);
    f.port_forwardings.push(pf.clone());
    f.std.touch();
    t.put(f)?;
    Ok(pf)
}

/// Changes a port forwarding, checked again as a new one.
pub fn update_forwarding(
    t: &mut Txn,
    ctx: &AuthContext,
    fip: &str,
    id: &str,
    ask: ForwardingAsk,
) -> Result<PortForwarding> {
    let mut f = t.edit(&t.m.floatingips, "floating IP", fip)?;
    let mut pf = find_forwarding(&f, id)?.clone();
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
    let router = check(&t.m, ctx, &f, &pf)?;
    f.router_id = Some(router);
    for p in f.port_forwardings.iter_mut().filter(|p| p.id == id) {
        *p = pf.clone();
    }
    f.std.touch();
    t.put(f)?;
    Ok(pf)
}

/// Removes a port forwarding; a floating IP left with none and no port lets go of its router.
pub fn remove_forwarding(t: &mut Txn, fip: &str, id: &str) -> Result<()> {
    let mut f = t.edit(&t.m.floatingips, "floating IP", fip)?;
    find_forwarding(&f, id)?;
    f.port_forwardings.retain(|p| p.id != id);
    if f.port_forwardings.is_empty() && f.port_id.is_none() {
        f.router_id = None;
    }
    f.std.touch();
    t.put(f)?;
    Ok(())
}
