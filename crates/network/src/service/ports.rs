//! Ports' rules: who sees one (its project, or the network's), what a create or update may
//! set (MAC, addresses, security groups, address pairs, port security, binding), and what a
//! delete lets go of.

use haneul_core::auth::AuthContext;
use serde_json::Value;

use super::access::{is_admin, owns};
use super::{allocate_ips, check_quota, default_group, new_mac, not_found, Error, IpRequest, Result, Txn};
use crate::model::{AddressPair, DhcpOpt, FloatingIp, Model, Port, Std};

/// Whether the caller sees the port: its own, one on its network, or as admin.
pub fn visible(m: &Model, ctx: &AuthContext, p: &Port) -> bool {
    owns(ctx, &p.project_id) || m.networks.get(&p.network_id).is_some_and(|n| owns(ctx, &n.project_id))
}

pub fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a Port> {
    m.ports.get(id).map(|p| &**p).filter(|p| visible(m, ctx, p)).ok_or_else(|| not_found("PortNotFound", "Port", id))
}

/// A new port as asked, its attributes checked, before its network is looked at.
pub struct NewPort {
    pub project_id: String,
    pub network_id: String,
    pub name: String,
    pub admin_state_up: bool,
    pub mac: Option<String>,
    pub fixed_ips: Option<Vec<IpRequest>>,
    pub device_id: String,
    pub device_owner: String,
    pub security_groups: Option<Vec<String>>,
    pub port_security_enabled: Option<bool>,
    pub pairs: Vec<(String, Option<String>)>,
    pub dhcp_opts: Vec<DhcpOpt>,
    pub host_id: String,
    pub vnic_type: String,
    pub profile: Value,
    pub description: String,
}

/// Security groups a port may name: the caller's own (or, as admin, any).
fn check_groups(m: &Model, ctx: &AuthContext, project_id: &str, groups: &[String]) -> Result<()> {
    for g in groups {
        let found =
            m.security_groups.get(g).is_some_and(|sg| sg.project_id == project_id || is_admin(ctx) || sg.shared);
        if !found {
            return Err(not_found("SecurityGroupNotFound", "Security group", g));
        }
    }
    Ok(())
}

fn pairs_of(mac: &str, pairs: &[(String, Option<String>)]) -> Vec<AddressPair> {
    pairs
        .iter()
        .map(|(ip, m)| AddressPair {
            ip_address: ip.clone(),
            mac_address: m.clone().unwrap_or_else(|| mac.to_string()),
        })
        .collect()
}

/// Makes the port in `t`: the network checked, a MAC, addresses, security groups.
fn place(t: &mut Txn, ctx: &AuthContext, ask: NewPort) -> Result<String> {
    let m = &t.m;
    let network = crate::service::networks::find(m, ctx, &ask.network_id)?;
    let network_owner = owns(ctx, &network.project_id);
    if !network_owner && !crate::service::networks::usable(m, ctx, network) && !is_admin(ctx) {
        return Err(not_found("NetworkNotFound", "Network", &ask.network_id));
    }
    if ask.mac.is_some() && !network_owner {
        return Err(Error::Forbidden(
            "PolicyNotAuthorized",
            "(rule:create_port:mac_address) is disallowed by policy".into(),
        ));
    }
    if ask.fixed_ips.as_ref().is_some_and(|f| f.iter().any(|r| r.ip_address.is_some()))
        && !network_owner
        && !is_admin(ctx)
    {
        return Err(Error::Forbidden(
            "PolicyNotAuthorized",
            "(rule:create_port:fixed_ips:ip_address) is disallowed by policy".into(),
        ));
    }
    check_quota(m, &ask.project_id, "port", 1)?;
    let mac = match ask.mac {
        Some(mac) => {
            if m.mac_holder(&ask.network_id, &mac).is_some() {
                return Err(Error::Conflict(
                    "MacAddressInUse",
                    format!(
                        "Unable to complete operation for network {}. The mac address {mac} is in use.",
                        ask.network_id
                    ),
                ));
            }
            mac
        }
        None => new_mac(m, &ask.network_id),
    };
    let fixed_ips = allocate_ips(m, &ask.network_id, &mac, ask.fixed_ips.as_deref(), None)?;
    let port_security = ask.port_security_enabled.unwrap_or(network.port_security_enabled);
    let owned_by_network = ask.device_owner.starts_with("network:");
    let groups = match ask.security_groups {
        Some(g) => {
            check_groups(m, ctx, &ask.project_id, &g)?;
            g
        }
        None if port_security && !owned_by_network => vec![default_group(t, &ask.project_id)?],
        None => Vec::new(),
    };
    if !port_security && !groups.is_empty() {
        return Err(Error::Conflict(
            "PortSecurityAndIPRequiredForSecurityGroups",
            "Port security must be enabled and port must have an IP address in order to use security groups.".into(),
        ));
    }
    if !port_security && !ask.pairs.is_empty() {
        return Err(Error::Conflict(
            "AddressPairAndPortSecurityRequired",
            "Port Security must be enabled in order to have allowed address pairs on a port.".into(),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let status = if owned_by_network && ask.device_owner != "network:dhcp" { "ACTIVE" } else { "DOWN" };
    t.put(Port {
        id: id.clone(),
        project_id: ask.project_id,
        network_id: ask.network_id,
        name: ask.name,
        admin_state_up: ask.admin_state_up,
        allowed_address_pairs: pairs_of(&mac, &ask.pairs),
        mac_address: mac,
        fixed_ips,
        device_id: ask.device_id,
        device_owner: ask.device_owner,
        status: status.into(),
        security_groups: groups,
        port_security_enabled: port_security,
        extra_dhcp_opts: ask.dhcp_opts,
        host_id: ask.host_id,
        vnic_type: ask.vnic_type,
        profile: ask.profile,
        std: Std::new(ask.description),
    })?;
    Ok(id)
}

/// Creates the ports asked for, all or none.
pub fn create(t: &mut Txn, ctx: &AuthContext, asks: Vec<NewPort>) -> Result<Vec<String>> {
    asks.into_iter().map(|ask| place(t, ctx, ask)).collect()
}

/// What an update changes (`None`: left as it is).
pub struct PortUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub mac_address: Option<String>,
    pub fixed_ips: Option<Vec<IpRequest>>,
    pub device_id: Option<String>,
    pub device_owner: Option<String>,
    pub port_security_enabled: Option<bool>,
    pub security_groups: Option<Vec<String>>,
    pub allowed_address_pairs: Option<Vec<(String, Option<String>)>>,
    /// Options named with an empty value are removed; the rest replace or add.
    pub extra_dhcp_opts: Option<Vec<DhcpOpt>>,
    pub host_id: Option<String>,
    pub vnic_type: Option<String>,
    pub profile: Option<Value>,
}

/// Applies an update: a new MAC only on an unbound port and unique on its network, addresses
/// re-allocated (the port's own kept where asked), security groups and address pairs only
/// with port security.
pub fn update(t: &mut Txn, ctx: &AuthContext, id: &str, u: PortUpdate) -> Result<()> {
    let mut p = t.edit(&t.m.ports, "port", id)?;
    if let Some(v) = u.name {
        p.name = v;
    }
    if let Some(v) = u.description {
        p.std.description = v;
    }
    if let Some(v) = u.admin_state_up {
        p.admin_state_up = v;
    }
    if let Some(mac) = u.mac_address {
        if !p.host_id.is_empty() {
            return Err(Error::Conflict(
                "PortBound",
                format!("Unable to complete operation on port {id}, port is already bound"),
            ));
        }
        if t.m.mac_holder(&p.network_id, &mac).is_some_and(|holder| holder != id) {
            return Err(Error::Conflict("MacAddressInUse", format!("The mac address {mac} is in use.")));
        }
        p.mac_address = mac;
    }
    if let Some(f) = u.fixed_ips {
        p.fixed_ips = allocate_ips(&t.m, &p.network_id, &p.mac_address, Some(&f), Some(id))?;
    }
    if let Some(v) = u.device_id {
        p.device_id = v;
    }
    if let Some(v) = u.device_owner {
        p.device_owner = v;
    }
    if let Some(v) = u.port_security_enabled {
        p.port_security_enabled = v;
    }
    if let Some(g) = u.security_groups {
        check_groups(&t.m, ctx, &p.project_id, &g)?;
        p.security_groups = g;
    }
    if let Some(v) = u.allowed_address_pairs {
        p.allowed_address_pairs = pairs_of(&p.mac_address, &v);
    }
    if !p.port_security_enabled && (!p.security_groups.is_empty() || !p.allowed_address_pairs.is_empty()) {
        return Err(Error::Conflict(
            "PortSecurityAndIPRequiredForSecurityGroups",
            "Port security must be enabled and port must have an IP address in order to use security groups.".into(),
        ));
    }
    if let Some(v) = u.extra_dhcp_opts {
        let mut opts = p.extra_dhcp_opts.clone();
        for o in v {
            opts.retain(|x| !(x.opt_name == o.opt_name && x.ip_version == o.ip_version));
            if !o.opt_value.is_empty() {
                opts.push(o);
            }
        }
        p.extra_dhcp_opts = opts;
    }
    if let Some(v) = u.host_id {
        p.host_id = v;
    }
    if let Some(v) = u.vnic_type {
        p.vnic_type = v;
    }
    if let Some(v) = u.profile {
        p.profile = v;
    }
    p.std.touch();
    t.put(p)?;
    Ok(())
}

/// Deletes the port; a router's ports go only through the router, and floating IPs let go.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    let p = t.m.ports.get(id).ok_or_else(|| not_found("PortNotFound", "Port", id))?;
    if p.device_owner == "network:router_interface" || p.device_owner == "network:router_gateway" {
        return Err(Error::Conflict(
            "L3PortInUse",
            format!(
                "Port {id} has owner {} and therefore cannot be deleted directly via the port API.",
                p.device_owner
            ),
        ));
    }
    t.delete::<Port>(id);
    disassociate_port(t, id)
}

/// Floating IPs pointing at `port_id` let go of it (the port is going away), and their port
/// forwardings to it go.
pub fn disassociate_port(t: &mut Txn, port_id: &str) -> Result<()> {
    let held: Vec<FloatingIp> = t
        .m
        .floatingips
        .values()
        .filter(|f| {
            f.port_id.as_deref() == Some(port_id) || f.port_forwardings.iter().any(|p| p.internal_port_id == port_id)
        })
        .map(|f| (**f).clone())
        .collect();
    for mut f in held {
        if f.port_id.as_deref() == Some(port_id) {
            f.port_id = None;
            f.fixed_ip_address = None;
            f.router_id = None;
        }
        f.port_forwardings.retain(|p| p.internal_port_id != port_id);
        if f.port_id.is_none() && f.port_forwardings.is_empty() {
            f.router_id = None;
        }
        f.std.touch();
        t.put(f)?;
    }
    Ok(())
}
