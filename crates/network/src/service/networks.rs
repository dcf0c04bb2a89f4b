//! Networks' rules: who sees and uses a network (its project, sharing, RBAC policies), where a
//! new one is placed (type, VXLAN id, MTU), and what an update or delete may change.

use haneul_core::auth::AuthContext;

use super::access::owns;
use super::{check_quota, invalid, is_network_owned, not_found, rbac, Error, Result, Settings, Txn};
use crate::model::{FloatingIp, Model, Network, Port, RbacPolicy, Std, Subnet};

/// Overhead of VXLAN over IPv4 (outer Ethernet, IP, UDP and VXLAN headers).
const VXLAN_OVERHEAD: u32 = 50;

/// Whether the caller sees the network: its own, shared, external, shared with or made
/// external for its project by an RBAC policy, or as admin.
pub fn visible(m: &Model, ctx: &AuthContext, n: &Network) -> bool {
    owns(ctx, &n.project_id)
        || n.shared
        || n.external
        || rbac::grants(m, &n.id, ctx.project_id(), "access_as_shared")
        || rbac::grants(m, &n.id, ctx.project_id(), "access_as_external")
}

/// Whether the caller may put ports on the network: its own, or shared with it.
pub fn usable(m: &Model, ctx: &AuthContext, n: &Network) -> bool {
    owns(ctx, &n.project_id) || n.shared || rbac::grants(m, &n.id, ctx.project_id(), "access_as_shared")
}

/// Whether the network is external for the caller (floating IPs, router gateways).
pub fn external_for(m: &Model, ctx: &AuthContext, n: &Network) -> bool {
    n.external || rbac::grants(m, &n.id, ctx.project_id(), "access_as_external")
}

/// The network if the caller may see it; Neutron's 404 otherwise.
pub fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a Network, Error> {
    m.networks
        .get(id)
        .map(|n| &**n)
        .filter(|n| visible(m, ctx, n))
        .ok_or_else(|| not_found("NetworkNotFound", "Network", id))
}

/// What a create asks for, checked against the policy and the attribute rules.
pub struct NewNetwork {
    pub project_id: String,
    pub name: String,
    pub admin_state_up: bool,
    pub shared: bool,
    pub external: bool,
    pub mtu: Option<u32>,
    pub port_security_enabled: bool,
    pub network_type: Option<String>,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
    pub availability_zone_hints: Vec<String>,
    pub dns_domain: String,
    pub description: String,
}

/// Places a new network: its type (VXLAN for tenant networks, flat or local when asked), its
/// VXLAN id (the lowest free one unless asked), its MTU.
fn build(settings: &Settings, m: &Model, n: NewNetwork) -> Result<Network> {
    let network_type = n.network_type.unwrap_or_else(|| "vxlan".into());
    let (physical_network, segmentation_id) = match network_type.as_str() {
        "vxlan" => {
            if n.physical_network.is_some() {
                return Err(invalid("provider:physical_network specified for vxlan network"));
            }
            let taken =
                |id: u32| m.networks.values().any(|x| x.network_type == "vxlan" && x.segmentation_id == Some(id));
            let id = match n.segmentation_id {
                Some(id) if taken(id) => {
                    return Err(Error::Conflict(
                        "TunnelIdInUse",
                        format!("Unable to create the network. The tunnel ID {id} is in use."),
                    ))
                }
                Some(id) => id,
                None => (1..=16_777_215u32).find(|id| !taken(*id)).ok_or_else(|| {
                    Error::Conflict(
                        "NoNetworkAvailable",
                        "Unable to create the network. No tenant network is available for allocation.".into(),
                    )
                })?,
            };
            (None, Some(id))
        }
        "flat" => {
            let Some(phys) = n.physical_network else {
                return Err(invalid("physical_network required for flat provider network"));
            };
            if n.segmentation_id.is_some() {
                return Err(invalid("segmentation_id specified for flat network"));
            }
            if m.networks.values().any(|x| x.network_type == "flat" && x.physical_network.as_deref() == Some(&phys)) {
                return Err(Error::Conflict(
                    "FlatNetworkInUse",
                    format!("Unable to create the flat network. Physical network {phys} is in use."),
                ));
            }
            (Some(phys), None)
        }
        "local" => (None, None),
        other => return Err(invalid(format!("network_type value '{other}' not supported"))),
    };
    let max_mtu = match network_type.as_str() {
        "vxlan" => settings.global_physnet_mtu - VXLAN_OVERHEAD,
        _ => settings.global_physnet_mtu,
    };
    let mtu = match n.mtu {
        Some(m) if m > max_mtu => {
            return Err(invalid(format!("Requested MTU is too big, maximum is {max_mtu}")));
        }
        Some(m) => m,
        None => max_mtu,
    };
    Ok(Network {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: n.project_id,
        name: n.name,
        admin_state_up: n.admin_state_up,
        shared: n.shared,
        external: n.external,
        mtu,
        network_type,
        physical_network,
        segmentation_id,
        port_security_enabled: n.port_security_enabled,
        availability_zone_hints: n.availability_zone_hints,
        dns_domain: n.dns_domain,
        std: Std::new(n.description),
    })
}

/// Creates the networks asked for, all or none, and their wildcard RBAC policies.
pub fn create(t: &mut Txn, settings: &Settings, asks: Vec<NewNetwork>) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for ask in asks {
        check_quota(&t.m, &ask.project_id, "network", 1)?;
        let n = build(settings, &t.m, ask)?;
        ids.push(n.id.clone());
        if n.shared {
            rbac::grant_all(t, &n.id, &n.project_id, "access_as_shared")?;
        }
        if n.external {
            rbac::grant_all(t, &n.id, &n.project_id, "access_as_external")?;
        }
        t.put(n)?;
    }
    Ok(ids)
}

/// What an update changes (`None`: left as it is).
#[derive(Default)]
pub struct NetworkUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub shared: Option<bool>,
    pub external: Option<bool>,
    pub port_security_enabled: Option<bool>,
    pub dns_domain: Option<String>,
    pub mtu: Option<i64>,
}

/// Applies an update: sharing stops only when no other project has ports on the network, and
/// the MTU stays within what the network type carries.
pub fn update(t: &mut Txn, settings: &Settings, id: &str, u: NetworkUpdate) -> Result<()> {
    let global = settings.global_physnet_mtu;
    let mut n = t.edit(&t.m.networks, "network", id)?;
    if let Some(v) = u.name {
        n.name = v;
    }
    if let Some(v) = u.description {
        n.std.description = v;
    }
    if let Some(v) = u.admin_state_up {
        n.admin_state_up = v;
    }
    if let Some(v) = u.shared {
        if !v && n.shared && t.m.ports_of(id).any(|p| p.project_id != n.project_id && !is_network_owned(p)) {
            return Err(Error::Conflict(
                "InvalidSharedSetting",
                format!("Unable to reconfigure sharing settings for network {id}. Multiple tenants are using it."),
            ));
        }
        n.shared = v;
        if v {
            rbac::grant_all(t, id, &n.project_id, "access_as_shared")?;
        } else {
            rbac::revoke_all(t, id, "access_as_shared");
        }
    }
    if let Some(v) = u.external {
        n.external = v;
        if v {
            rbac::grant_all(t, id, &n.project_id, "access_as_external")?;
        } else {
            rbac::revoke_all(t, id, "access_as_external");
        }
    }
    if let Some(v) = u.port_security_enabled {
        n.port_security_enabled = v;
    }
    if let Some(v) = u.dns_domain {
        n.dns_domain = v;
    }
    if let Some(v) = u.mtu {
        let max = if n.network_type == "vxlan" { global - VXLAN_OVERHEAD } else { global };
        if v < 68 || v as u32 > max {
            return Err(invalid(format!("Requested MTU is too big, maximum is {max}")));
        }
        n.mtu = v as u32;
    }
    n.std.touch();
    t.put(n)?;
    Ok(())
}

/// Deletes the network with its subnets, its own ports (DHCP) and its unassociated floating
/// IPs; refused while other ports are on it.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    let m = t.m.clone();
    if !m.networks.contains_key(id) {
        return Err(not_found("NetworkNotFound", "Network", id));
    }
    if m.ports_of(id).any(|p| p.device_owner != "network:dhcp" && p.device_owner != "network:floatingip") {
        return Err(Error::Conflict(
            "NetworkInUse",
            format!("Unable to complete operation on network {id}. There are one or more ports still in use on the network."),
        ));
    }
    for p in m.ports_of(id) {
        t.delete::<Port>(&p.id);
    }
    // Unassociated floating IPs of an external network go with it.
    t.delete_where::<FloatingIp>(|f| f.floating_network_id == id);
    for s in m.subnets_of(id) {
        t.delete::<Subnet>(&s.id);
    }
    t.delete_where::<RbacPolicy>(|p| p.object_type == "network" && p.object_id == id);
    t.delete::<Network>(id);
    Ok(())
}
