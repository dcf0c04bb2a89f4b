//! The network service and the agents: the picture a host's data plane is made from
//! (`GET /v2.0/internal/dataplane?host=H&version=V` on the network service), its networks,
//! subnets, ports, security groups and rules, routers and floating IPs, as the agent uses
//! them. Built by the network service from its records field by field, read by the agent
//! strictly: a missing field is an error, not a silent default.
//!
//! The first answer to a host is its whole picture (`base` none); later answers are the
//! changes since the version the agent holds (`base` that version): the records that came
//! or changed, whole, and the ids of those that left (`removed`). An agent whose version
//! the service no longer knows (either side restarted) gets a whole picture again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The shape of [`Picture`]: an agent refuses a picture of another schema (an agent and a
/// network service of different releases) instead of reading it half.
pub const SCHEMA: u32 = 2;

/// Everything a host's data plane is made from, at one `version` of the network service's
/// data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Picture {
    /// [`SCHEMA`] of the sender.
    pub schema: u32,
    /// The network service's data version: the agent asks again with it and the answer
    /// waits for the next change.
    pub version: String,
    /// None: the whole picture. Some version: the changes since that version (the lists
    /// below hold what came or changed, [`Picture::removed`] what left).
    pub base: Option<String>,
    pub removed: Removed,
    pub networks: Vec<Network>,
    pub subnets: Vec<Subnet>,
    pub ports: Vec<Port>,
    pub security_groups: Vec<SecurityGroup>,
    pub rules: Vec<Rule>,
    pub routers: Vec<Router>,
    pub floatingips: Vec<FloatingIp>,
    /// Each host's VXLAN tunnel address (hosts whose agents have one); always whole.
    pub tunnel_endpoints: BTreeMap<String, String>,
}

/// The ids of the records that left a host's picture since a change's base.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Removed {
    pub networks: Vec<String>,
    pub subnets: Vec<String>,
    pub ports: Vec<String>,
    pub security_groups: Vec<String>,
    pub rules: Vec<String>,
    pub routers: Vec<String>,
    pub floatingips: Vec<String>,
}

impl Removed {
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
            && self.subnets.is_empty()
            && self.ports.is_empty()
            && self.security_groups.is_empty()
            && self.rules.is_empty()
            && self.routers.is_empty()
            && self.floatingips.is_empty()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub id: String,
    pub admin_state_up: bool,
    pub external: bool,
    pub mtu: u32,
    pub network_type: String,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub id: String,
    pub network_id: String,
    pub ip_version: u8,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<Route>,
    pub enable_dhcp: bool,
    /// IPv6: who sends router advertisements and what they say (`slaac`,
    /// `dhcpv6-stateless`, `dhcpv6-stateful`); none: no advertisements from us.
    pub ipv6_ra_mode: Option<String>,
    /// IPv6: how ports get their addresses (`slaac`, `dhcpv6-stateless`: SLAAC and DHCPv6
    /// for the other settings, `dhcpv6-stateful`: DHCPv6); none with no `ipv6_ra_mode`
    /// either is served as stateful (an outside router advertises), as Neutron does.
    pub ipv6_address_mode: Option<String>,
}

impl Subnet {
    /// Whether the network's DHCP server answers on this subnet.
    pub fn dhcp_served(&self) -> bool {
        self.enable_dhcp
            && (self.ip_version == 4
                || match self.ipv6_address_mode.as_deref() {
                    Some("dhcpv6-stateful" | "dhcpv6-stateless") => true,
                    Some(_) => false,
                    None => self.ipv6_ra_mode.is_none(),
                })
    }

    /// Addresses made by the guest itself (SLAAC, also with stateless DHCPv6), as the
    /// network service's IPAM sees them: it refuses them as explicit addresses.
    pub fn is_auto_address(&self) -> bool {
        let auto = |m: &Option<String>| matches!(m.as_deref(), Some("slaac" | "dhcpv6-stateless"));
        self.ip_version == 6 && (auto(&self.ipv6_address_mode) || auto(&self.ipv6_ra_mode))
    }

    /// Whether DHCP hands out this subnet's addresses (not only its other settings).
    pub fn dhcp_assigns(&self) -> bool {
        self.dhcp_served() && self.ipv6_address_mode.as_deref() != Some("dhcpv6-stateless")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressPair {
    pub ip_address: String,
    pub mac_address: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    pub id: String,
    pub project_id: String,
    pub network_id: String,
    pub admin_state_up: bool,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIp>,
    pub device_id: String,
    pub device_owner: String,
    pub security_groups: Vec<String>,
    pub port_security_enabled: bool,
    pub allowed_address_pairs: Vec<AddressPair>,
    pub host_id: String,
    pub status: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    pub id: String,
    pub stateful: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub security_group_id: String,
    pub direction: String,
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    pub network_id: String,
    pub enable_snat: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Router {
    pub id: String,
    pub admin_state_up: bool,
    pub gateway: Option<Gateway>,
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    pub floating_network_id: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub router_id: Option<String>,
    pub port_forwardings: Vec<PortForwarding>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortForwarding {
    pub protocol: String,
    pub internal_ip_address: String,
    pub internal_port: u16,
    pub external_port: u16,
    /// The last ports of a range (none: one port).
    pub internal_port_end: Option<u16>,
    pub external_port_end: Option<u16>,
}

pub const OWNER_DHCP: &str = "network:dhcp";
pub const OWNER_ROUTER_INTERFACE: &str = "network:router_interface";
pub const OWNER_ROUTER_GATEWAY: &str = "network:router_gateway";

/// Something with an id in a picture.
pub trait Keyed {
    fn key(&self) -> &str;
}

macro_rules! keyed {
    ($($t:ty),*) => { $(impl Keyed for $t { fn key(&self) -> &str { &self.id } })* };
}
keyed!(Network, Subnet, Port, SecurityGroup, Rule, Router, FloatingIp);

/// `list` with `change`'s records put in (replacing those with their ids) and `gone`'s ids
/// taken out, in id order.
fn merge<T: Keyed + Clone>(list: &[T], change: &[T], gone: &[String]) -> Vec<T> {
    let mut by_id: BTreeMap<&str, &T> = list.iter().map(|v| (v.key(), v)).collect();
    for g in gone {
        by_id.remove(g.as_str());
    }
    for v in change {
        by_id.insert(v.key(), v);
    }
    by_id.into_values().cloned().collect()
}

impl Picture {
    /// Whether a change carries nothing (the tunnel endpoints aside).
    pub fn is_empty_change(&self) -> bool {
        self.networks.is_empty()
            && self.subnets.is_empty()
            && self.ports.is_empty()
            && self.security_groups.is_empty()
            && self.rules.is_empty()
            && self.routers.is_empty()
            && self.floatingips.is_empty()
            && self.removed.is_empty()
    }

    /// This whole picture with `change` applied (a whole picture replaces it), every list in
    /// id order: what an agent's state must equal after applying the change its own way.
    pub fn merged(&self, change: &Picture) -> Picture {
        if change.base.is_none() {
            return change.clone();
        }
        let r = &change.removed;
        Picture {
            schema: change.schema,
            version: change.version.clone(),
            base: None,
            removed: Removed::default(),
            networks: merge(&self.networks, &change.networks, &r.networks),
            subnets: merge(&self.subnets, &change.subnets, &r.subnets),
            ports: merge(&self.ports, &change.ports, &r.ports),
            security_groups: merge(&self.security_groups, &change.security_groups, &r.security_groups),
            rules: merge(&self.rules, &change.rules, &r.rules),
            routers: merge(&self.routers, &change.routers, &r.routers),
            floatingips: merge(&self.floatingips, &change.floatingips, &r.floatingips),
            tunnel_endpoints: change.tunnel_endpoints.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_without_a_field_is_refused() {
        let whole = serde_json::to_value(Picture { schema: SCHEMA, ..Picture::default() }).unwrap();
        assert!(serde_json::from_value::<Picture>(whole.clone()).is_ok());
        let mut missing = whole;
        missing.as_object_mut().unwrap().remove("floatingips");
        assert!(serde_json::from_value::<Picture>(missing).is_err(), "a picture without floating IPs read as none");
        let port = serde_json::json!({"id": "p", "network_id": "n"});
        assert!(serde_json::from_value::<Port>(port).is_err(), "a port read with defaults");
    }
}
