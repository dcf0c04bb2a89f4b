//! The data-plane picture ([`haneul_contracts::dataplane::Picture`]) the agents build
//! hosts' networks from, made from this service's records field by field: a field the agent
//! needs and the records lack does not compile.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use haneul_contracts::dataplane as dp;

use crate::model::{self, Model, PORT_GROUP};

/// The picture of `m` at `version`.
pub fn picture(m: &Model, version: String, tunnel_endpoints: BTreeMap<String, String>) -> dp::Picture {
    dp::Picture {
        schema: dp::SCHEMA,
        version,
        networks: m.networks.values().map(|n| network(n)).collect(),
        subnets: m.subnets.values().map(|s| subnet(s)).collect(),
        ports: m.ports.values().map(|p| port(p)).collect(),
        security_groups: m
            .security_groups
            .values()
            .map(|g| dp::SecurityGroup { id: g.id.clone(), stateful: g.stateful })
            .collect(),
        rules: m.rules.values().map(|r| rule(r)).collect(),
        routers: m.routers.values().map(|r| router(r)).collect(),
        floatingips: m.floatingips.values().map(|f| floating_ip(f)).collect(),
        tunnel_endpoints,
    }
}

/// What `host`'s data plane is made from: the ports bound to it (guests'), their networks
/// with their subnets, their security groups and those groups' rules, and every port in a
/// group those rules name as remote (the firewall matches their addresses); the network
/// service's own ports on those networks. A network node also carries every network with
/// DHCP, with a router's port or external, all ports on them, every router and every
/// floating IP. A change elsewhere in the cloud leaves this picture (and its version) as it
/// was, so the host's agent is not woken for it.
pub fn for_host(m: &Model, host: &str, network_node: bool, tunnel_endpoints: BTreeMap<String, String>) -> dp::Picture {
    let local: Vec<&model::Port> = m.ports_on_host(host).filter(|p| p.device_owner.starts_with("compute:")).collect();
    let mut networks: BTreeSet<&str> = local.iter().map(|p| p.network_id.as_str()).collect();
    if network_node {
        for n in m.networks.values() {
            let dhcp = n.admin_state_up && m.subnets_of(&n.id).any(|s| subnet(s).dhcp_served());
            if dhcp || n.external {
                networks.insert(&n.id);
            }
        }
        for r in m.routers.values() {
            for p in m.ports_of_device(&r.id) {
                networks.insert(&p.network_id);
            }
        }
    }
    let mut ports: BTreeMap<&str, &model::Port> = local.iter().map(|p| (p.id.as_str(), *p)).collect();
    for n in &networks {
        for p in m.ports_of(n) {
            if network_node || p.device_owner.starts_with("network:") {
                ports.insert(&p.id, p);
            }
        }
    }
    let local_groups: BTreeSet<&str> =
        local.iter().flat_map(|p| p.security_groups.iter().map(String::as_str)).collect();
    let rules: Vec<&model::SecurityGroupRule> = local_groups.iter().flat_map(|g| m.rules_of(g)).collect();
    let remote: BTreeSet<&str> = rules.iter().filter_map(|r| r.remote_group_id.as_deref()).collect();
    for g in &remote {
        for p in m.ports.by(PORT_GROUP, g) {
            ports.insert(&p.id, p);
        }
    }
    let groups: BTreeSet<&str> = local_groups.union(&remote).copied().collect();
    let mut rules: Vec<dp::Rule> = rules.into_iter().map(rule).collect();
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    let mut picture = dp::Picture {
        schema: dp::SCHEMA,
        version: String::new(),
        networks: networks.iter().filter_map(|n| m.networks.get(*n)).map(|n| network(n)).collect(),
        subnets: {
            let mut v: Vec<dp::Subnet> = networks.iter().flat_map(|n| m.subnets_of(n)).map(subnet).collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v
        },
        ports: ports.values().map(|p| port(p)).collect(),
        security_groups: groups
            .iter()
            .filter_map(|g| m.security_groups.get(*g))
            .map(|g| dp::SecurityGroup { id: g.id.clone(), stateful: g.stateful })
            .collect(),
        rules,
        routers: if network_node { m.routers.values().map(|r| router(r)).collect() } else { Vec::new() },
        floatingips: if network_node { m.floatingips.values().map(|f| floating_ip(f)).collect() } else { Vec::new() },
        tunnel_endpoints,
    };
    picture.version = digest(&picture);
    picture
}

/// A version that names the picture's content: equal pictures, equal versions.
fn digest(p: &dp::Picture) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(p).unwrap_or_default().hash(&mut h);
    format!("{:016x}", h.finish())
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
        let sent = picture(&m, "v1".into(), BTreeMap::from([("h".into(), "192.0.2.1".into())]));
        let read: dp::Picture = serde_json::from_str(&serde_json::to_string(&sent).unwrap()).unwrap();
        assert_eq!(read, sent);
        assert_eq!(read.schema, dp::SCHEMA);
        let p = &read.ports[0];
        assert_eq!((p.host_id.as_str(), p.allowed_address_pairs.len(), p.security_groups.len()), ("h", 1, 1));
        assert_eq!(read.floatingips[0].port_forwardings[0].external_port_end, Some(2223));
        assert_eq!(read.subnets[0].host_routes[0].nexthop, "2001:db8::2");
    }
}
