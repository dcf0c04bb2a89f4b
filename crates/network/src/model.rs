//! The network service's state: networks, subnets, ports, security groups and their rules,
//! routers, floating IPs, subnet pools, RBAC policies and quotas; one snapshot written
//! through to the database (`core::docstore`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use haneul_core::docstore::{Record, Table};

use crate::ip::Addr;
use serde::{Deserialize, Serialize};

/// Prefixed: several services may share one PostgreSQL database.
/// Every table of this service, for the check that services sharing a database name none alike.
pub const TABLES: &[&str] = <Model as haneul_core::docstore::Snapshot>::TABLES;

/// Neutron's standard attributes, on every resource that has them.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Std {
    pub description: String,
    pub tags: BTreeSet<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub revision_number: i64,
}

impl Std {
    pub fn new(description: String) -> Std {
        let now = now();
        Std { description, tags: BTreeSet::new(), created_at: now, updated_at: now, revision_number: 0 }
    }
    /// A change: newer `updated_at`, next revision.
    pub fn touch(&mut self) {
        self.updated_at = now();
        self.revision_number += 1;
    }
}

/// Now, to the second (Neutron's timestamps carry no fraction).
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(0)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub admin_state_up: bool,
    pub shared: bool,
    /// `router:external`.
    pub external: bool,
    pub mtu: u32,
    /// `provider:network_type`: `vxlan`, `flat` or `local`.
    pub network_type: String,
    pub physical_network: Option<String>,
    pub segmentation_id: Option<u32>,
    pub port_security_enabled: bool,
    pub availability_zone_hints: Vec<String>,
    pub dns_domain: String,
    pub std: Std,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub start: String,
    pub end: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostRoute {
    pub destination: String,
    pub nexthop: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub project_id: String,
    pub network_id: String,
    pub name: String,
    pub ip_version: u8,
    pub cidr: String,
    pub gateway_ip: Option<String>,
    pub allocation_pools: Vec<Pool>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<HostRoute>,
    pub enable_dhcp: bool,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
    pub subnetpool_id: Option<String>,
    pub service_types: Vec<String>,
    pub dns_publish_fixed_ip: bool,
    pub std: Std,
}

impl Subnet {
    /// Addresses come from the guest itself (SLAAC or DHCPv6 stateless), not from the pools.
    pub fn is_auto_address(&self) -> bool {
        let auto = |m: &Option<String>| matches!(m.as_deref(), Some("slaac") | Some("dhcpv6-stateless"));
        self.ip_version == 6 && (auto(&self.ipv6_address_mode) || auto(&self.ipv6_ra_mode))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixedIp {
    pub subnet_id: String,
    pub ip_address: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddressPair {
    pub ip_address: String,
    pub mac_address: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DhcpOpt {
    pub opt_name: String,
    pub opt_value: String,
    pub ip_version: u8,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub project_id: String,
    pub network_id: String,
    pub name: String,
    pub admin_state_up: bool,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIp>,
    pub device_id: String,
    pub device_owner: String,
    pub status: String,
    pub security_groups: Vec<String>,
    pub port_security_enabled: bool,
    pub allowed_address_pairs: Vec<AddressPair>,
    pub extra_dhcp_opts: Vec<DhcpOpt>,
    /// `binding:host_id`.
    pub host_id: String,
    /// `binding:vnic_type`.
    pub vnic_type: String,
    /// `binding:profile`.
    pub profile: serde_json::Value,
    pub std: Std,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub stateful: bool,
    pub shared: bool,
    pub std: Std,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    pub id: String,
    pub project_id: String,
    pub security_group_id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// As given: a name (`tcp`), a number as a string, or none (any).
    pub protocol: Option<String>,
    pub port_range_min: Option<i64>,
    pub port_range_max: Option<i64>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    pub remote_address_group_id: Option<String>,
    pub std: Std,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExternalGateway {
    pub network_id: String,
    pub enable_snat: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Router {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub admin_state_up: bool,
    pub gateway: Option<ExternalGateway>,
    /// Static routes (`routes`, the extraroute extension).
    pub routes: Vec<HostRoute>,
    pub distributed: bool,
    pub ha: bool,
    pub availability_zone_hints: Vec<String>,
    pub std: Std,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    pub project_id: String,
    pub floating_network_id: String,
    pub floating_ip_address: String,
    /// The port on the external network holding the address (device_owner
    /// `network:floatingip`).
    pub floating_port_id: String,
    pub port_id: Option<String>,
    pub fixed_ip_address: Option<String>,
    pub router_id: Option<String>,
    pub std: Std,
    /// Port forwardings (a floating IP with them is not associated with a port).
    #[serde(default)]
    pub port_forwardings: Vec<PortForwarding>,
}

/// `external_port` of the floating IP forwarded to `internal_ip_address:internal_port` of a
/// port behind the same router.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PortForwarding {
    pub id: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    pub internal_ip_address: String,
    pub internal_port: u16,
    pub internal_port_id: String,
    pub external_port: u16,
    /// The last ports of a range (`internal_port_range` "first:last"); none: one port. The
    /// external range maps onto an internal range of the same size, or onto one port.
    #[serde(default)]
    pub internal_port_end: Option<u16>,
    #[serde(default)]
    pub external_port_end: Option<u16>,
    #[serde(default)]
    pub description: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubnetPool {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub ip_version: u8,
    pub prefixes: Vec<String>,
    pub default_prefixlen: u8,
    pub min_prefixlen: u8,
    pub max_prefixlen: u8,
    pub shared: bool,
    pub is_default: bool,
    pub default_quota: Option<i64>,
    pub address_scope_id: Option<String>,
    pub std: Std,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RbacPolicy {
    pub id: String,
    pub project_id: String,
    /// `network`, ...
    pub object_type: String,
    pub object_id: String,
    /// `access_as_shared` or `access_as_external`.
    pub action: String,
    /// A project id or `*`.
    pub target_tenant: String,
}

/// A project's quota overrides (resource → limit, -1 unlimited).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Quota {
    /// The project id.
    pub id: String,
    pub limits: BTreeMap<String, i64>,
}

/// Things done once (the default security group of a project, ...).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Setting {
    pub id: String,
    pub value: serde_json::Value,
}

haneul_core::record!(Model; Network, "network_networks", networks, index: [project_id]);
haneul_core::record!(Model; Subnet, "network_subnets", subnets, index: [network_id, project_id], derive: subnet_changed);
haneul_core::record!(Model; Port, "network_ports", ports, indexes: index_keys, derive: port_changed);
haneul_core::record!(Model; SecurityGroup, "network_security_groups", security_groups, index: [project_id]);
haneul_core::record!(Model; SecurityGroupRule, "network_security_group_rules", rules, index: [security_group_id, project_id]);
haneul_core::record!(Model; Router, "network_routers", routers, index: [project_id]);
haneul_core::record!(Model; FloatingIp, "network_floatingips", floatingips, index: [project_id]);
haneul_core::record!(Model; SubnetPool, "network_subnetpools", subnetpools, index: [project_id]);
haneul_core::record!(Model; RbacPolicy, "network_rbac_policies", rbac, index: [project_id]);
haneul_core::record!(Model; Quota, "network_quotas", quotas);
haneul_core::record!(Model; Setting, "network_settings", settings);

#[derive(Clone, Default)]
pub struct Model {
    pub generation: u64,
    pub networks: Table<Network>,
    pub subnets: Table<Subnet>,
    pub ports: Table<Port>,
    pub security_groups: Table<SecurityGroup>,
    pub rules: Table<SecurityGroupRule>,
    pub routers: Table<Router>,
    pub floatingips: Table<FloatingIp>,
    pub subnetpools: Table<SubnetPool>,
    pub rbac: Table<RbacPolicy>,
    pub quotas: Table<Quota>,
    pub settings: Table<Setting>,
    /// Each subnet's free addresses (derived from subnets and ports, not stored).
    pub free: crate::free::Free,
}

haneul_core::snapshot!(
    Model;
    Network,
    Subnet,
    Port,
    SecurityGroup,
    SecurityGroupRule,
    Router,
    FloatingIp,
    SubnetPool,
    RbacPolicy,
    Quota,
    Setting,
);

impl Model {
    pub fn subnets_of<'a>(&'a self, network_id: &str) -> impl Iterator<Item = &'a Subnet> + 'a {
        self.subnets.by("network_id", network_id)
    }
    pub fn ports_of<'a>(&'a self, network_id: &str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ports.by(PORT_NETWORK, network_id)
    }
    /// The ports with an address on `subnet_id`, in id order: from the address index (its
    /// keys begin with the subnet's id), so a port costs no index entry for its subnet.
    pub fn ports_on_subnet<'a>(&'a self, subnet_id: &str) -> impl Iterator<Item = &'a Port> + 'a {
        let prefix = format!("{subnet_id}/");
        let ids: BTreeSet<&str> = self
            .ports
            .index_keys_from(PORT_ADDRESS, &prefix)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .map(|(_, id)| id)
            .collect();
        ids.into_iter().filter_map(|id| self.ports.get(id)).map(|p| &**p)
    }
    /// The ports of a device (a server, a router, a DHCP server).
    pub fn ports_of_device<'a>(&'a self, device_id: &str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ports.by(PORT_DEVICE, device_id)
    }
    /// The ports bound to `host`.
    pub fn ports_on_host<'a>(&'a self, host: &str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ports.by(PORT_HOST, host)
    }
    /// The port with MAC address `mac` on the network.
    pub fn mac_holder(&self, network_id: &str, mac: &str) -> Option<&str> {
        self.ports.ids_by(PORT_MAC, &format!("{network_id}/{mac}")).next()
    }
    /// Whether a port is in security group `group_id`.
    pub fn group_in_use(&self, group_id: &str) -> bool {
        self.ports.any_by(PORT_GROUP, group_id)
    }
    pub fn rules_of<'a>(&'a self, group_id: &str) -> impl Iterator<Item = &'a SecurityGroupRule> + 'a {
        self.rules.by("security_group_id", group_id)
    }
    /// The port holding address `ip` on `subnet_id`.
    pub fn address_holder(&self, subnet_id: &str, ip: Addr) -> Option<&str> {
        self.ports.ids_by(PORT_ADDRESS, &address_key(subnet_id, ip)).next()
    }
    /// The addresses in use on a subnet (ports' fixed IPs).
    pub fn used_ips(&self, subnet_id: &str) -> BTreeSet<String> {
        self.ports_on_subnet(subnet_id)
            .flat_map(|p| p.fixed_ips.iter())
            .filter(|f| f.subnet_id == subnet_id)
            .map(|f| f.ip_address.clone())
            .collect()
    }
    /// A project's default security group, if made.
    pub fn default_group(&self, project_id: &str) -> Option<&SecurityGroup> {
        self.security_groups.values().find(|g| g.project_id == project_id && g.name == "default").map(|g| &**g)
    }
}

/// The indexes of ports: by network, subnet, device, host, security group, and address.
pub const PORT_NETWORK: &str = "network";
pub const PORT_DEVICE: &str = "device";
pub const PORT_HOST: &str = "host";
pub const PORT_GROUP: &str = "group";
/// `<network>/<MAC>`: a MAC is unique on its network.
pub const PORT_MAC: &str = "mac";
/// `<subnet>/<address as 32 hex digits>`: a subnet's addresses in use sort in address order.
pub const PORT_ADDRESS: &str = "address";

/// The key of an address in the ports' address index.
pub fn address_key(subnet_id: &str, ip: Addr) -> String {
    format!("{subnet_id}/{:032x}", ip.bits)
}

impl Port {
    fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
        f("project_id", &self.project_id);
        f(PORT_NETWORK, &self.network_id);
        f(PORT_MAC, &format!("{}/{}", self.network_id, self.mac_address));
        if !self.device_id.is_empty() {
            f(PORT_DEVICE, &self.device_id);
        }
        if !self.host_id.is_empty() {
            f(PORT_HOST, &self.host_id);
        }
        for g in &self.security_groups {
            f(PORT_GROUP, g);
        }
        for ip in &self.fixed_ips {
            if let Some(a) = Addr::parse(&ip.ip_address) {
                f(PORT_ADDRESS, &address_key(&ip.subnet_id, a));
            }
        }
    }
}

/// A resource with Neutron's standard attributes (tags, description, timestamps, revision).
pub trait Standard: Record<Model = Model> {
    fn std(&self) -> &Std;
    fn std_mut(&mut self) -> &mut Std;
    fn project_id(&self) -> &str;
}

macro_rules! standard {
    ($($ty:ty),*) => {$(
        impl Standard for $ty {
            fn std(&self) -> &Std {
                &self.std
            }
            fn std_mut(&mut self) -> &mut Std {
                &mut self.std
            }
            fn project_id(&self) -> &str {
                &self.project_id
            }
        }
    )*};
}

standard!(Network, Subnet, Port, SecurityGroup, Router, FloatingIp, SubnetPool);

// ------------------------------------------------------------------ free address ranges

/// A subnet's allocation pools, as address ranges.
pub fn pools(s: &Subnet) -> Vec<(Addr, Addr)> {
    s.allocation_pools.iter().filter_map(|p| Some((Addr::parse(&p.start)?, Addr::parse(&p.end)?))).collect()
}

fn in_pools(s: &Subnet, a: u128) -> bool {
    pools(s).iter().any(|(start, end)| start.bits <= a && a <= end.bits)
}

/// A subnet came, changed or went: its ranges are made anew from its pools, less the
/// addresses ports hold on it (a walk of those, in address order; pools change rarely).
pub fn subnet_changed(m: &mut Model, old: Option<&Subnet>, new: Option<&Subnet>) {
    if let Some(o) = old {
        m.free.clear(&o.id);
    }
    let Some(s) = new else { return };
    let prefix = format!("{}/", s.id);
    let mut ranges = Vec::new();
    for (start, end) in pools(s) {
        let held = m
            .ports
            .index_keys_from(PORT_ADDRESS, &address_key(&s.id, start))
            .map_while(|(key, _)| u128::from_str_radix(key.strip_prefix(&prefix)?, 16).ok())
            .take_while(|bits| *bits <= end.bits);
        let mut next = start.bits;
        for bits in held {
            if bits > next {
                ranges.push((next, bits - 1));
            }
            next = next.max(bits.saturating_add(1));
        }
        if next <= end.bits {
            ranges.push((next, end.bits));
        }
    }
    for (first, last) in ranges {
        m.free.insert(&s.id, first, last);
    }
}

/// A port came, changed or went: the addresses it let go are free again (those in their
/// subnet's pools that no other port holds), those it took are not.
pub fn port_changed(m: &mut Model, old: Option<&Port>, new: Option<&Port>) {
    let addresses = |p: Option<&Port>| -> BTreeSet<(String, Addr)> {
        p.into_iter()
            .flat_map(|p| &p.fixed_ips)
            .filter_map(|f| Some((f.subnet_id.clone(), Addr::parse(&f.ip_address)?)))
            .collect()
    };
    let (before, after) = (addresses(old), addresses(new));
    for (subnet, a) in before.difference(&after) {
        let Some(s) = m.subnets.get(subnet).cloned() else { continue };
        if in_pools(&s, a.bits) && !m.ports.any_by(PORT_ADDRESS, &address_key(subnet, *a)) {
            m.free.give(subnet, a.bits);
        }
    }
    for (subnet, a) in after.difference(&before) {
        m.free.take(subnet, a.bits);
    }
}
