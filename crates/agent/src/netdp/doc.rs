//! What the network service says the data plane is made from (its `internal/dataplane`
//! answer): only the fields the agent uses, read leniently.

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Doc {
    pub version: String,
    pub networks: Vec<Network>,
    pub subnets: Vec<Subnet>,
    pub ports: Vec<Port>,
    pub security_groups: Vec<SecurityGroup>,
    pub rules: Vec<Rule>,
    pub routers: Vec<Router>,
    pub floatingips: Vec<FloatingIp>,
    /// Each host's VXLAN tunnel address (hosts whose agents have one).
    pub tunnel_endpoints: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Network {
    pub id: String,
    pub admin_state_up: bool,
    pub external: bool,
    pub mtu: u32,
    pub network_type: String,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Route {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
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

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddressPair {
    pub ip_address: String,
    pub mac_address: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
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

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct SecurityGroup {
    pub id: String,
    pub stateful: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
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

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Gateway {
    pub network_id: String,
    pub enable_snat: bool,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Router {
    pub id: String,
    pub admin_state_up: bool,
    pub gateway: Option<Gateway>,
    pub routes: Vec<Route>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: String,
    pub floating_network_id: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub router_id: Option<String>,
    pub port_forwardings: Vec<PortForwarding>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
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

impl Doc {
    pub fn network(&self, id: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.id == id)
    }
    pub fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.id == id)
    }
    pub fn subnets_of<'a>(&'a self, network_id: &'a str) -> impl Iterator<Item = &'a Subnet> + 'a {
        self.subnets.iter().filter(move |s| s.network_id == network_id)
    }
    pub fn ports_of<'a>(&'a self, network_id: &'a str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ports.iter().filter(move |p| p.network_id == network_id)
    }
    /// The port holding `ip` on network `network_id`.
    pub fn port_with_ip(&self, network_id: &str, ip: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.network_id == network_id && p.fixed_ips.iter().any(|f| f.ip_address == ip))
    }
    /// Whether a router has an interface on the network.
    pub fn routed(&self, network_id: &str) -> bool {
        self.ports_of(network_id).any(|p| p.device_owner == OWNER_ROUTER_INTERFACE)
    }
}

/// Whether a port belongs to a guest (Nova sets `compute:<zone>`).
pub fn is_instance_port(p: &Port) -> bool {
    p.device_owner.starts_with("compute:")
}

/// Interface names (15 characters at most), as Neutron's Linux bridge agent names them.
pub fn bridge_name(network_id: &str) -> String {
    format!("brq{}", short(network_id))
}
pub fn tap_name(port_id: &str) -> String {
    format!("tap{}", short(port_id))
}
fn short(id: &str) -> &str {
    &id[..id.len().min(11)]
}
/// The port's end inside a namespace: `ns-` (DHCP), `qr-` (router interface), `qg-`
/// (router gateway).
pub fn inner_name(kind: &str, port_id: &str) -> String {
    format!("{kind}{}", short(port_id))
}

/// Whether `ip` is an IPv6 link-local address (every interface has its own already).
pub fn is_link_local(ip: &str) -> bool {
    ip.parse::<std::net::Ipv6Addr>().is_ok_and(|a| a.segments()[0] & 0xffc0 == 0xfe80)
}

/// A CIDR's prefix length (`10.0.0.0/24` → 24).
pub fn prefix_len(cidr: &str) -> Option<u8> {
    cidr.split_once('/')?.1.parse().ok()
}
