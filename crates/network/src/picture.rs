//! The data-plane picture ([`haneul_contracts::dataplane::Picture`]) the agents build
//! hosts' networks from, made from this service's records field by field: a field the agent
//! needs and the records lack does not compile. Each host gets its own ([`for_host`]), and
//! after the first one the changes to it ([`delta`]).

use std::collections::{BTreeMap, BTreeSet};

use haneul_contracts::dataplane as dp;
use haneul_core::docstore::Record;

use crate::model::{self, Model, PORT_GROUP};

/// What `host`'s picture is made of, beyond the ports bound to it: which networks it
/// carries, which security groups guard its guests' ports, and which groups those groups'
/// rules name as remote. Small (networks and groups, never ports), so it is worked out
/// anew for every change.
#[derive(Debug, PartialEq)]
pub struct Scope {
    host: String,
    network_node: bool,
    networks: BTreeSet<String>,
    local_groups: BTreeSet<String>,
    remote_groups: BTreeSet<String>,
}

impl Scope {
    /// The guests' ports bound to `host`, their networks, groups and rules' remote groups;
    /// a network node also carries every network with DHCP, with a router's port or
    /// external.
    pub fn of(m: &Model, host: &str, network_node: bool) -> Scope {
        let mut networks = BTreeSet::new();
        let mut local_groups = BTreeSet::new();
        for p in m.ports_on_host(host).filter(|p| is_guest(p)) {
            networks.insert(p.network_id.clone());
            local_groups.extend(p.security_groups.iter().cloned());
        }
        if network_node {
            for n in m.networks.values() {
                let dhcp = n.admin_state_up && m.subnets_of(&n.id).any(|s| subnet(s).dhcp_served());
                if dhcp || n.external {
                    networks.insert(n.id.clone());
                }
            }
            for r in m.routers.values() {
                for p in m.ports_of_device(&r.id) {
                    networks.insert(p.network_id.clone());
                }
            }
        }
        let remote_groups =
            local_groups.iter().flat_map(|g| m.rules_of(g)).filter_map(|r| r.remote_group_id.clone()).collect();
        Scope { host: host.to_string(), network_node, networks, local_groups, remote_groups }
    }

    fn has_network(&self, n: &model::Network) -> bool {
        self.networks.contains(&n.id)
    }

    fn has_subnet(&self, s: &model::Subnet) -> bool {
        self.networks.contains(&s.network_id)
    }

    /// A guest's port on this host, a port on a network it carries (the network service's
    /// own ports only, on a compute host), a member of a remote group.
    fn has_port(&self, p: &model::Port) -> bool {
        (p.host_id == self.host && is_guest(p))
            || (self.networks.contains(&p.network_id) && (self.network_node || p.device_owner.starts_with("network:")))
            || p.security_groups.iter().any(|g| self.remote_groups.contains(g))
    }

    fn has_group(&self, g: &model::SecurityGroup) -> bool {
        self.local_groups.contains(&g.id) || self.remote_groups.contains(&g.id)
    }

    fn has_rule(&self, r: &model::SecurityGroupRule) -> bool {
        self.local_groups.contains(&r.security_group_id)
    }
}

fn is_guest(p: &model::Port) -> bool {
    p.device_owner.starts_with("compute:")
}

/// `host`'s whole picture (its [`Scope`]'s records), every list in id order. A change
/// elsewhere in the cloud leaves it as it was.
pub fn for_host(m: &Model, host: &str, network_node: bool, tunnel_endpoints: BTreeMap<String, String>) -> dp::Picture {
    let sc = Scope::of(m, host, network_node);
    // The host's guests' ports are on networks it carries: the networks' ports include them.
    let mut ports: BTreeMap<&str, &model::Port> = BTreeMap::new();
    for n in &sc.networks {
        for p in m.ports_of(n).filter(|p| sc.has_port(p)) {
            ports.insert(&p.id, p);
        }
    }
    for g in &sc.remote_groups {
        for p in m.ports.by(PORT_GROUP, g) {
            ports.insert(&p.id, p);
        }
    }
    let groups: BTreeSet<&String> = sc.local_groups.union(&sc.remote_groups).collect();
    let mut rules: Vec<dp::Rule> = sc.local_groups.iter().flat_map(|g| m.rules_of(g)).map(rule).collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    let mut subnets: Vec<dp::Subnet> = sc.networks.iter().flat_map(|n| m.subnets_of(n)).map(subnet).collect();
    subnets.sort_by(|a, b| a.id.cmp(&b.id));
    dp::Picture {
        schema: dp::SCHEMA,
        version: String::new(),
        base: None,
        removed: dp::Removed::default(),
        networks: sc.networks.iter().filter_map(|n| m.networks.get(n)).map(|n| network(n)).collect(),
        subnets,
        ports: ports.values().map(|p| port(p)).collect(),
        security_groups: groups.iter().filter_map(|g| m.security_groups.get(g.as_str())).map(|g| group(g)).collect(),
        rules,
        routers: if network_node { m.routers.values().map(|r| router(r)).collect() } else { Vec::new() },
        floatingips: if network_node { m.floatingips.values().map(|f| floating_ip(f)).collect() } else { Vec::new() },
        tunnel_endpoints,
    }
}

/// What changed in `host`'s picture from snapshot `old` to snapshot `new` (an earlier
/// copy of it): the records that came into it or changed, and the ids of those that left,
/// every list in id order (`version` and `base` are the caller's). See [`delta_scoped`].
pub fn delta(old: &Model, new: &Model, host: &str, network_node: bool) -> dp::Picture {
    delta_scoped(old, &Scope::of(old, host, network_node), new, &Scope::of(new, host, network_node))
}

/// [`delta`] with the host's [`Scope`] in each snapshot already worked out (a caller
/// following one host from change to change has the old one from the step before). It
/// costs the records changed between the two snapshots (their tables share the rest, see
/// [`haneul_core::docstore::Table::changes_since`]), and, when the scope moved, the records
/// of the networks and groups that came or went.
pub fn delta_scoped(old: &Model, so: &Scope, new: &Model, sn: &Scope) -> dp::Picture {
    let moved =
        |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> { a.symmetric_difference(b).cloned().collect() };
    let networks_moved = moved(&so.networks, &sn.networks);
    let local_moved = moved(&so.local_groups, &sn.local_groups);
    let remote_moved = moved(&so.remote_groups, &sn.remote_groups);
    let sides = Sides { old, new, so, sn };
    // The records a moved network or group brings along, in either snapshot.
    let of_both = |f: &dyn Fn(&Model) -> Vec<String>| -> Vec<String> { [old, new].iter().flat_map(|m| f(m)).collect() };

    let mut d = dp::Picture { schema: dp::SCHEMA, ..Default::default() };
    (d.networks, d.removed.networks) = sides.settle(networks_moved.clone(), Scope::has_network, network);
    let subnets_moved =
        of_both(&|m| networks_moved.iter().flat_map(|n| m.subnets_of(n)).map(|s| s.id.clone()).collect());
    (d.subnets, d.removed.subnets) = sides.settle(subnets_moved, Scope::has_subnet, subnet);
    let ports_moved = of_both(&|m| {
        let of_networks = networks_moved.iter().flat_map(|n| m.ports_of(n)).map(|p| p.id.clone());
        let of_groups = remote_moved.iter().flat_map(|g| m.ports.ids_by(PORT_GROUP, g)).map(str::to_owned);
        of_networks.chain(of_groups).collect()
    });
    (d.ports, d.removed.ports) = sides.settle(ports_moved, Scope::has_port, port);
    let groups_moved = local_moved.iter().chain(&remote_moved).cloned().collect();
    (d.security_groups, d.removed.security_groups) = sides.settle(groups_moved, Scope::has_group, group);
    let rules_moved = of_both(&|m| local_moved.iter().flat_map(|g| m.rules_of(g)).map(|r| r.id.clone()).collect());
    (d.rules, d.removed.rules) = sides.settle(rules_moved, Scope::has_rule, rule);
    if sn.network_node {
        (d.routers, d.removed.routers) = sides.settle(Vec::new(), |_, _| true, router);
        (d.floatingips, d.removed.floatingips) = sides.settle(Vec::new(), |_, _| true, floating_ip);
    }
    d
}

/// The two snapshots a delta is worked out between, with the host's scope in each.
struct Sides<'a> {
    old: &'a Model,
    new: &'a Model,
    so: &'a Scope,
    sn: &'a Scope,
}

impl Sides<'_> {
    /// For each record of kind `R` that differs between the snapshots, and each of `also`
    /// (records a moved scope brings or takes): the record as the host sees it before (in
    /// the old snapshot and scope) and after. What came or changed is the first list, the
    /// ids of what left the second.
    fn settle<R: Record<Model = Model>, D: PartialEq>(
        &self,
        also: Vec<String>,
        member: fn(&Scope, &R) -> bool,
        convert: fn(&R) -> D,
    ) -> (Vec<D>, Vec<String>) {
        let (old, new) = (R::table(self.old), R::table(self.new));
        let mut ids: BTreeSet<String> =
            new.changes_since(old).filter_map(|(o, n)| n.or(o)).map(|r| r.id().to_string()).collect();
        ids.extend(also);
        let (mut upserts, mut removed) = (Vec::new(), Vec::new());
        for id in ids {
            let before = old.get(&id).filter(|r| member(self.so, r)).map(|r| convert(r));
            let after = new.get(&id).filter(|r| member(self.sn, r)).map(|r| convert(r));
            match (before, after) {
                (Some(b), Some(a)) if a == b => {}
                (_, Some(a)) => upserts.push(a),
                (Some(_), None) => removed.push(id),
                (None, None) => {}
            }
        }
        (upserts, removed)
    }
}

fn group(g: &model::SecurityGroup) -> dp::SecurityGroup {
    dp::SecurityGroup { id: g.id.clone(), stateful: g.stateful }
}

fn network(n: &model::Network) -> dp::Network {
    dp::Network {
        id: n.id.clone(),
        admin_state_up: n.admin_state_up,
        external: n.external,
        mtu: n.mtu,
        network_type: n.network_type.clone(),
        physical_network: n.physical_network.clone(),
        segmentation_id: n.segmentation_id,
    }
}

fn routes(rs: &[model::HostRoute]) -> Vec<dp::Route> {
    rs.iter().map(|r| dp::Route { destination: r.destination.clone(), nexthop: r.nexthop.clone() }).collect()
}

fn subnet(s: &model::Subnet) -> dp::Subnet {
    dp::Subnet {
        id: s.id.clone(),
        network_id: s.network_id.clone(),
        ip_version: s.ip_version,
        cidr: s.cidr.clone(),
        gateway_ip: s.gateway_ip.clone(),
        dns_nameservers: s.dns_nameservers.clone(),
        host_routes: routes(&s.host_routes),
        enable_dhcp: s.enable_dhcp,
        ipv6_ra_mode: s.ipv6_ra_mode.clone(),
        ipv6_address_mode: s.ipv6_address_mode.clone(),
    }
}

fn port(p: &model::Port) -> dp::Port {
    dp::Port {
        id: p.id.clone(),
        project_id: p.project_id.clone(),
        network_id: p.network_id.clone(),
        admin_state_up: p.admin_state_up,
        mac_address: p.mac_address.clone(),
        fixed_ips: p
            .fixed_ips
            .iter()
            .map(|f| dp::FixedIp { subnet_id: f.subnet_id.clone(), ip_address: f.ip_address.clone() })
            .collect(),
        device_id: p.device_id.clone(),
        device_owner: p.device_owner.clone(),
        security_groups: p.security_groups.clone(),
        port_security_enabled: p.port_security_enabled,
        allowed_address_pairs: p
            .allowed_address_pairs
            .iter()
            .map(|a| dp::AddressPair { ip_address: a.ip_address.clone(), mac_address: a.mac_address.clone() })
            .collect(),
        host_id: p.host_id.clone(),
        status: p.status.clone(),
    }
}

fn rule(r: &model::SecurityGroupRule) -> dp::Rule {
    dp::Rule {
        id: r.id.clone(),
        security_group_id: r.security_group_id.clone(),
        direction: r.direction.clone(),
        ethertype: r.ethertype.clone(),
        protocol: r.protocol.clone(),
        port_range_min: r.port_range_min,
        port_range_max: r.port_range_max,
        remote_ip_prefix: r.remote_ip_prefix.clone(),
        remote_group_id: r.remote_group_id.clone(),
    }
}

fn router(r: &model::Router) -> dp::Router {
    dp::Router {
        id: r.id.clone(),
        admin_state_up: r.admin_state_up,
        gateway: r
            .gateway
            .as_ref()
            .map(|g| dp::Gateway { network_id: g.network_id.clone(), enable_snat: g.enable_snat }),
        routes: routes(&r.routes),
    }
}

fn floating_ip(f: &model::FloatingIp) -> dp::FloatingIp {
    dp::FloatingIp {
        id: f.id.clone(),
        floating_ip_address: f.floating_ip_address.clone(),
        floating_network_id: f.floating_network_id.clone(),
        port_id: f.port_id.clone(),
        fixed_ip_address: f.fixed_ip_address.clone(),
        router_id: f.router_id.clone(),
        port_forwardings: f
            .port_forwardings
            .iter()
            .map(|pf| dp::PortForwarding {
                protocol: pf.protocol.clone(),
                internal_ip_address: pf.internal_ip_address.clone(),
                internal_port: pf.internal_port,
                external_port: pf.external_port,
                internal_port_end: pf.internal_port_end,
                external_port_end: pf.external_port_end,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn record<T: serde::de::DeserializeOwned>(mut v: serde_json::Value) -> Arc<T> {
        v["std"] = json!({"description": "", "tags": [], "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "revision_number": 0});
        Arc::new(serde_json::from_value(v).unwrap())
    }

    /// What the network service sends is what the agent reads, field for field.
    #[test]
    fn the_picture_reads_back_whole_on_the_agents_side() {
        let mut m = Model::default();
        m.networks.insert(
            "n".into(),
            record(json!({"id": "n", "project_id": "p", "name": "", "admin_state_up": true,
            "shared": false, "external": true, "mtu": 1450, "network_type": "vxlan", "physical_network": null,
            "segmentation_id": 7, "port_security_enabled": true, "availability_zone_hints": [], "dns_domain": ""})),
        );
        m.subnets.insert(
            "s".into(),
            record(json!({"id": "s", "project_id": "p", "network_id": "n", "name": "",
            "ip_version": 6, "cidr": "2001:db8::/64", "gateway_ip": "2001:db8::1", "allocation_pools": [],
            "dns_nameservers": ["2001:db8::53"], "host_routes": [{"destination": "::/0", "nexthop": "2001:db8::2"}],
            "enable_dhcp": true, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac", "subnetpool_id": null,
            "service_types": [], "dns_publish_fixed_ip": false})),
        );
        m.ports.insert(
            "q".into(),
            record(json!({"id": "q", "project_id": "p", "network_id": "n", "name": "",
            "admin_state_up": true, "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": "s", "ip_address": "2001:db8::5"}], "device_id": "d",
            "device_owner": "compute:nova", "status": "ACTIVE", "security_groups": ["g"], "port_security_enabled": true,
            "allowed_address_pairs": [{"ip_address": "10.0.0.9", "mac_address": "fa:16:3e:00:00:02"}],
            "extra_dhcp_opts": [], "host_id": "h", "vnic_type": "normal", "profile": {}})),
        );
        m.security_groups.insert(
            "g".into(),
            record(json!({"id": "g", "project_id": "p", "name": "default",
            "stateful": false, "shared": false})),
        );
        m.rules.insert(
            "r".into(),
            record(json!({"id": "r", "project_id": "p", "security_group_id": "g",
            "direction": "ingress", "ethertype": "IPv6", "protocol": "tcp", "port_range_min": 22, "port_range_max": 23,
            "remote_ip_prefix": "::/0", "remote_group_id": "g", "remote_address_group_id": null})),
        );
        m.routers.insert("t".into(), record(json!({"id": "t", "project_id": "p", "name": "", "admin_state_up": true,
            "gateway": {"network_id": "n", "enable_snat": true}, "routes": [{"destination": "10.9.0.0/16", "nexthop": "10.0.0.3"}],
            "distributed": false, "ha": false, "availability_zone_hints": []})));
        m.floatingips.insert(
            "f".into(),
            record(json!({"id": "f", "project_id": "p", "floating_network_id": "n",
            "floating_ip_address": "172.24.4.10", "floating_port_id": "fp", "port_id": null, "fixed_ip_address": null,
            "router_id": "t", "port_forwardings": [{"id": "pf", "protocol": "tcp", "internal_ip_address": "10.0.0.5",
            "internal_port": 22, "internal_port_id": "q", "external_port": 2222, "internal_port_end": 23,
            "external_port_end": 2223}]})),
        );
        let mut sent = for_host(&m, "h", true, BTreeMap::from([("h".into(), "192.0.2.1".into())]));
        sent.version = "v1".into();
        let read: dp::Picture = serde_json::from_str(&serde_json::to_string(&sent).unwrap()).unwrap();
        assert_eq!(read, sent);
        assert_eq!(read.schema, dp::SCHEMA);
        let p = &read.ports[0];
        assert_eq!((p.host_id.as_str(), p.allowed_address_pairs.len(), p.security_groups.len()), ("h", 1, 1));
        assert_eq!(read.floatingips[0].port_forwardings[0].external_port_end, Some(2223));
        assert_eq!(read.subnets[0].host_routes[0].nexthop, "2001:db8::2");
    }

    fn network_rec(id: &str, external: bool) -> Arc<model::Network> {
        record(json!({"id": id, "project_id": "p", "name": "", "admin_state_up": true,
            "shared": false, "external": external, "mtu": 1450, "network_type": "vxlan", "physical_network": null,
            "segmentation_id": 7, "port_security_enabled": true, "availability_zone_hints": [], "dns_domain": ""}))
    }

    fn subnet_rec(id: &str, network: &str, dhcp: bool, dns: &str) -> Arc<model::Subnet> {
        record(json!({"id": id, "project_id": "p", "network_id": network, "name": "",
            "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "allocation_pools": [],
            "dns_nameservers": [dns], "host_routes": [], "enable_dhcp": dhcp, "ipv6_ra_mode": null,
            "ipv6_address_mode": null, "subnetpool_id": null, "service_types": [], "dns_publish_fixed_ip": false}))
    }

    fn port_rec(id: &str, network: &str, host: &str, owner: &str, groups: &[String], ip: u8) -> Arc<model::Port> {
        record(json!({"id": id, "project_id": "p", "network_id": network, "name": "",
            "admin_state_up": true, "mac_address": "fa:16:3e:00:00:01",
            "fixed_ips": [{"subnet_id": "s", "ip_address": format!("10.0.0.{ip}")}], "device_id": "d",
            "device_owner": owner, "status": "ACTIVE", "security_groups": groups, "port_security_enabled": true,
            "allowed_address_pairs": [], "extra_dhcp_opts": [], "host_id": host, "vnic_type": "normal", "profile": {}}))
    }

    fn group_rec(id: &str, stateful: bool) -> Arc<model::SecurityGroup> {
        record(json!({"id": id, "project_id": "p", "name": "g", "stateful": stateful, "shared": false}))
    }

    fn rule_rec(id: &str, group: &str, remote: Option<&str>, port: i64) -> Arc<model::SecurityGroupRule> {
        record(json!({"id": id, "project_id": "p", "security_group_id": group,
            "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": port, "port_range_max": port,
            "remote_ip_prefix": null, "remote_group_id": remote, "remote_address_group_id": null}))
    }

    fn router_rec(id: &str, up: bool) -> Arc<model::Router> {
        record(json!({"id": id, "project_id": "p", "name": "", "admin_state_up": up, "gateway": null,
            "routes": [], "distributed": false, "ha": false, "availability_zone_hints": []}))
    }

    /// One random change to the cloud: a network, subnet, port, group, rule or router
    /// comes, changes or goes.
    fn random_change(m: &mut Model, rng: &mut rand::rngs::StdRng) {
        use rand::Rng;
        let pick = |rng: &mut rand::rngs::StdRng, kind: &str, n: u32| format!("{kind}{}", rng.gen_range(0..n));
        let delete = rng.gen_bool(0.25);
        match rng.gen_range(0..10) {
            0 => {
                let id = pick(rng, "n", 5);
                if delete {
                    m.networks.remove(&id);
                } else {
                    m.networks.insert(id.clone(), network_rec(&id, rng.gen_bool(0.2)));
                }
            }
            1 => {
                let id = pick(rng, "s", 6);
                if delete {
                    m.subnets.remove(&id);
                } else {
                    let dns = pick(rng, "10.9.9.", 3);
                    m.subnets.insert(id.clone(), subnet_rec(&id, &pick(rng, "n", 5), rng.gen_bool(0.7), &dns));
                }
            }
            2..=5 => {
                let id = pick(rng, "p", 40);
                if delete {
                    m.ports.remove(&id);
                } else {
                    let owner = ["compute:nova", "compute:nova", "network:dhcp", "network:router_interface", ""]
                        [rng.gen_range(0..5)];
                    let groups: Vec<String> = (0..rng.gen_range(0..3)).map(|_| pick(rng, "g", 4)).collect();
                    let (net, host) = (pick(rng, "n", 5), pick(rng, "h", 3));
                    let ip = rng.gen_range(2..250);
                    let mut p = port_rec(&id, &net, &host, owner, &groups, ip);
                    if owner == "network:router_interface" {
                        Arc::make_mut(&mut p).device_id = pick(rng, "r", 2);
                    }
                    m.ports.insert(id, p);
                }
            }
            6 => {
                let id = pick(rng, "g", 4);
                if delete {
                    m.security_groups.remove(&id);
                } else {
                    m.security_groups.insert(id.clone(), group_rec(&id, rng.gen_bool(0.5)));
                }
            }
            7 | 8 => {
                let id = pick(rng, "u", 12);
                if delete {
                    m.rules.remove(&id);
                } else {
                    let remote = rng.gen_bool(0.4).then(|| pick(rng, "g", 4));
                    let rule = rule_rec(&id, &pick(rng, "g", 4), remote.as_deref(), rng.gen_range(1..4));
                    m.rules.insert(id, rule);
                }
            }
            _ => {
                let id = pick(rng, "r", 2);
                if delete {
                    m.routers.remove(&id);
                } else {
                    m.routers.insert(id.clone(), router_rec(&id, rng.gen_bool(0.8)));
                }
            }
        }
    }

    /// For random sequences of changes, every host's picture before a change with the
    /// change's delta applied is the picture after it; and the deltas carry only what
    /// changed for the host (most are empty for a host the change is not about).
    #[test]
    fn a_picture_with_the_delta_applied_is_the_picture_after_the_change() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        let hosts = [("h0", false), ("h1", false), ("h2", true)];
        let mut m = Model::default();
        let (mut empty, mut carried, mut whole) = (0, 0, 0);
        for step in 0..3000 {
            let old = m.clone();
            for _ in 0..rand::Rng::gen_range(&mut rng, 1..3) {
                random_change(&mut m, &mut rng);
            }
            for (host, network_node) in hosts {
                let before = for_host(&old, host, network_node, BTreeMap::new());
                let after = for_host(&m, host, network_node, BTreeMap::new());
                let mut change = delta(&old, &m, host, network_node);
                change.base = Some("before".into());
                let merged = before.merged(&change);
                assert_eq!(merged, after, "host {host} at step {step}: delta {change:?}");
                if change.is_empty_change() {
                    empty += 1;
                }
                carried += change.ports.len() + change.removed.ports.len();
                whole += after.ports.len();
            }
        }
        assert!(empty > 1000, "hosts the changes were not about got empty deltas: {empty} of 9000");
        assert!(carried * 4 < whole, "deltas carried {carried} ports against {whole} in whole pictures");
    }
}
