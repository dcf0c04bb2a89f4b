//! The picture the network service sends ([`haneul_contracts::dataplane`]) as the agent
//! keeps it ([`Doc`]: records by id, with the lookups the data plane makes indexed), the
//! changes applied to it, and the names the data plane gives what it builds from it.

use std::collections::{BTreeMap, BTreeSet};

use imbl::{OrdMap, OrdSet};

pub use haneul_contracts::dataplane::*;

/// What the agent's lookups go by: a port's network, device, host, security group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum By {
    Network,
    Device,
    Host,
    Group,
    /// The network service's own ports (DHCP, routers' interfaces and gateways), key "".
    Service,
}

/// The picture a host's data plane is made from, as the agent holds it: each kind by id
/// in persistent maps (a copy is O(1), a change copies only what it touches), the ports
/// also by network, device, host and group.
#[derive(Clone, Debug, Default)]
pub struct Doc {
    pub version: String,
    pub networks: OrdMap<String, Network>,
    pub subnets: OrdMap<String, Subnet>,
    pub ports: OrdMap<String, Port>,
    pub security_groups: OrdMap<String, SecurityGroup>,
    pub rules: OrdMap<String, Rule>,
    pub routers: OrdMap<String, Router>,
    pub floatingips: OrdMap<String, FloatingIp>,
    pub tunnel_endpoints: BTreeMap<String, String>,
    index: OrdSet<(By, String, String)>,
}

/// What a change touched, for applying it to the host: everything (a whole picture), or
/// the networks, ports and groups it concerns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Touched {
    pub whole: bool,
    /// Networks that changed, and the networks of subnets and ports that came, changed or left.
    pub networks: BTreeSet<String>,
    /// Networks whose own settings changed: the network, its subnets, or one of the network
    /// service's ports on it (DHCP, a router's); a network only in [`Touched::networks`] saw
    /// only its guests' ports change.
    pub settings: BTreeSet<String>,
    pub ports: BTreeSet<String>,
    /// Groups that changed, whose rules changed, or whose members came, changed or left.
    pub groups: BTreeSet<String>,
    /// Groups that changed or whose rules changed (not only their members).
    pub group_rules: BTreeSet<String>,
    /// A router or floating IP changed.
    pub routing: bool,
    pub tunnels: bool,
}

impl Touched {
    pub fn whole() -> Touched {
        Touched { whole: true, ..Default::default() }
    }
    pub fn is_empty(&self) -> bool {
        *self == Touched::default()
    }
    pub fn network(&self, id: &str) -> bool {
        self.whole || self.networks.contains(id)
    }
    pub fn settings(&self, id: &str) -> bool {
        self.whole || self.settings.contains(id)
    }
}

fn port_keys(p: &Port) -> impl Iterator<Item = (By, String, String)> + '_ {
    [(By::Network, p.network_id.clone()), (By::Device, p.device_id.clone()), (By::Host, p.host_id.clone())]
        .into_iter()
        .chain(p.security_groups.iter().map(|g| (By::Group, g.clone())))
        .chain(is_service_port(p).then(|| (By::Service, String::new())))
        .map(|(by, k)| (by, k, p.id.clone()))
}

fn is_service_port(p: &Port) -> bool {
    p.device_owner.starts_with("network:")
}

/// The ids a change names for a kind: those it removes and those it puts.
fn ids<'a, T: Keyed>(removed: &'a [String], upserts: &'a [T]) -> impl Iterator<Item = String> + 'a {
    removed.iter().cloned().chain(upserts.iter().map(|v| v.key().to_string()))
}

/// Takes the records `removed` names and those `upserts` replaces out of `map`, then puts
/// `upserts` in; the records taken out.
fn replace<T: Keyed + Clone>(map: &mut OrdMap<String, T>, removed: &[String], upserts: &[T]) -> Vec<T> {
    let gone = removed.iter().map(String::as_str).chain(upserts.iter().map(Keyed::key)).filter_map(|id| map.remove(id));
    let gone = gone.collect();
    for v in upserts {
        map.insert(v.key().to_string(), v.clone());
    }
    gone
}

impl Doc {
    /// A whole picture, as the agent keeps it.
    pub fn from_picture(p: &Picture) -> Doc {
        let mut d = Doc::default();
        d.apply(p);
        d
    }

    /// Applies a change (or a whole picture, which replaces everything); what it touched.
    /// The caller checked that a change's base is this doc's version.
    pub fn apply(&mut self, c: &Picture) -> Touched {
        let mut t = Touched::default();
        if c.base.is_none() {
            *self = Doc::default();
            t.whole = true;
        }
        self.version = c.version.clone();
        t.tunnels = self.tunnel_endpoints != c.tunnel_endpoints;
        self.tunnel_endpoints = c.tunnel_endpoints.clone();
        let r = &c.removed;
        replace(&mut self.networks, &r.networks, &c.networks);
        t.networks.extend(ids(&r.networks, &c.networks));
        t.settings.extend(t.networks.iter().cloned());
        for s in replace(&mut self.subnets, &r.subnets, &c.subnets).iter().chain(&c.subnets) {
            t.networks.insert(s.network_id.clone());
            t.settings.insert(s.network_id.clone());
        }
        let gone = replace(&mut self.ports, &r.ports, &c.ports);
        for k in gone.iter().flat_map(port_keys) {
            self.index.remove(&k);
        }
        for k in c.ports.iter().flat_map(port_keys) {
            self.index.insert(k);
        }
        for p in gone.iter().chain(&c.ports) {
            t.networks.insert(p.network_id.clone());
            if is_service_port(p) {
                t.settings.insert(p.network_id.clone());
            }
            t.groups.extend(p.security_groups.iter().cloned());
        }
        t.ports.extend(ids(&r.ports, &c.ports));
        replace(&mut self.security_groups, &r.security_groups, &c.security_groups);
        let groups: Vec<String> = ids(&r.security_groups, &c.security_groups).collect();
        t.groups.extend(groups.iter().cloned());
        t.group_rules.extend(groups);
        for rule in replace(&mut self.rules, &r.rules, &c.rules).iter().chain(&c.rules) {
            t.groups.insert(rule.security_group_id.clone());
            t.group_rules.insert(rule.security_group_id.clone());
        }
        replace(&mut self.routers, &r.routers, &c.routers);
        replace(&mut self.floatingips, &r.floatingips, &c.floatingips);
        t.routing = ids(&r.routers, &c.routers).chain(ids(&r.floatingips, &c.floatingips)).next().is_some();
        if t.whole {
            return Touched::whole();
        }
        t
    }

    /// The doc as a whole picture, every list in id order.
    pub fn to_picture(&self) -> Picture {
        Picture {
            schema: SCHEMA,
            version: self.version.clone(),
            base: None,
            removed: Removed::default(),
            networks: self.networks.values().cloned().collect(),
            subnets: self.subnets.values().cloned().collect(),
            ports: self.ports.values().cloned().collect(),
            security_groups: self.security_groups.values().cloned().collect(),
            rules: self.rules.values().cloned().collect(),
            routers: self.routers.values().cloned().collect(),
            floatingips: self.floatingips.values().cloned().collect(),
            tunnel_endpoints: self.tunnel_endpoints.clone(),
        }
    }

    fn ports_by<'a>(&'a self, by: By, key: &str) -> impl Iterator<Item = &'a Port> + 'a {
        let from = (by, key.to_string(), String::new());
        let to = (by, format!("{key}\0"), String::new());
        self.index.range(from..to).filter_map(|(_, _, id)| self.ports.get(id))
    }

    pub fn network(&self, id: &str) -> Option<&Network> {
        self.networks.get(id)
    }
    pub fn subnet(&self, id: &str) -> Option<&Subnet> {
        self.subnets.get(id)
    }
    /// A network's subnets, in id order.
    pub fn subnets_of<'a>(&'a self, network_id: &'a str) -> impl Iterator<Item = &'a Subnet> + 'a {
        self.subnets.values().filter(move |s| s.network_id == network_id)
    }
    /// A network's ports, in id order.
    pub fn ports_of<'a>(&'a self, network_id: &str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ports_by(By::Network, network_id)
    }
    /// The ports bound to `host`.
    pub fn ports_on<'a>(&'a self, host: &str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ports_by(By::Host, host)
    }
    /// The ports of device `device_id` (a server, a router, a network's DHCP server).
    pub fn ports_of_device<'a>(&'a self, device_id: &str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ports_by(By::Device, device_id)
    }
    /// The network service's own ports (DHCP, routers').
    pub fn service_ports(&self) -> impl Iterator<Item = &Port> + '_ {
        self.ports_by(By::Service, "")
    }
    /// The ports in security group `group`.
    pub fn members<'a>(&'a self, group: &str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ports_by(By::Group, group)
    }
    /// The port holding `ip` on network `network_id`.
    pub fn port_with_ip(&self, network_id: &str, ip: &str) -> Option<&Port> {
        self.ports_of(network_id).find(|p| p.fixed_ips.iter().any(|f| f.ip_address == ip))
    }
    /// A router's ports: its interfaces and its gateway.
    pub fn router_ports<'a>(&'a self, router_id: &str) -> impl Iterator<Item = &'a Port> + 'a {
        self.ports_by(By::Device, router_id)
            .filter(|p| p.device_owner == OWNER_ROUTER_INTERFACE || p.device_owner == OWNER_ROUTER_GATEWAY)
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

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    fn random_picture(rng: &mut rand::rngs::StdRng) -> Picture {
        let mut p = Picture { schema: SCHEMA, ..Default::default() };
        for i in 0..rng.gen_range(0..4) {
            p.networks.push(Network { id: format!("n{i}"), mtu: rng.gen_range(1400..1402), ..Default::default() });
        }
        for i in 0..30 {
            if rng.gen_bool(0.5) {
                continue;
            }
            p.ports.push(Port {
                id: format!("p{i:02}"),
                network_id: format!("n{}", rng.gen_range(0..4)),
                host_id: format!("h{}", rng.gen_range(0..2)),
                device_id: format!("d{}", rng.gen_range(0..3)),
                security_groups: (0..rng.gen_range(0..3)).map(|_| format!("g{}", rng.gen_range(0..3))).collect(),
                ..Default::default()
            });
        }
        for i in 0..6 {
            if rng.gen_bool(0.5) {
                continue;
            }
            let group = format!("g{}", rng.gen_range(0..3));
            p.rules.push(Rule { id: format!("r{i}"), security_group_id: group, ..Default::default() });
        }
        p
    }

    /// The change from `a` to `b` as the network service sends it.
    fn change(a: &Picture, b: &Picture) -> Picture {
        fn diff<T: Keyed + Clone + PartialEq>(a: &[T], b: &[T], gone: &mut Vec<String>) -> Vec<T> {
            gone.extend(a.iter().filter(|x| !b.iter().any(|y| y.key() == x.key())).map(|x| x.key().to_string()));
            b.iter().filter(|y| !a.contains(y)).cloned().collect()
        }
        let mut c =
            Picture { schema: SCHEMA, base: Some(a.version.clone()), version: "next".into(), ..Default::default() };
        c.networks = diff(&a.networks, &b.networks, &mut c.removed.networks);
        c.ports = diff(&a.ports, &b.ports, &mut c.removed.ports);
        c.rules = diff(&a.rules, &b.rules, &mut c.removed.rules);
        c
    }

    /// A doc with a change applied is the doc of the picture after it, its lookups agree
    /// with a scan, and what it says it touched covers every port, network and group that
    /// differs.
    #[test]
    fn a_change_applied_to_a_doc_gives_the_picture_after_it() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        for round in 0..500 {
            let a = random_picture(&mut rng);
            let b = random_picture(&mut rng);
            let c = change(&a, &b);
            let mut doc = Doc::from_picture(&a);
            let touched = doc.apply(&c);
            let mut want = b.clone();
            want.version = "next".into();
            assert_eq!(doc.to_picture(), a.merged(&c), "round {round}");
            assert_eq!(doc.to_picture(), want, "round {round}");
            for n in 0..4 {
                let n = format!("n{n}");
                let scan: Vec<&str> = b.ports.iter().filter(|p| p.network_id == n).map(|p| p.id.as_str()).collect();
                assert_eq!(doc.ports_of(&n).map(|p| p.id.as_str()).collect::<Vec<_>>(), scan, "round {round}");
                let before: Vec<&Port> = a.ports.iter().filter(|p| p.network_id == n).collect();
                let after: Vec<&Port> = b.ports.iter().filter(|p| p.network_id == n).collect();
                assert!(before == after || touched.network(&n), "network {n} changed untouched in round {round}");
            }
            for g in 0..3 {
                let g = format!("g{g}");
                let members = |p: &Picture| -> Vec<Port> {
                    p.ports.iter().filter(|x| x.security_groups.contains(&g)).cloned().collect()
                };
                let rules = |p: &Picture| -> Vec<Rule> {
                    p.rules.iter().filter(|r| r.security_group_id == g).cloned().collect()
                };
                let same = members(&a) == members(&b) && rules(&a) == rules(&b);
                assert!(same || touched.groups.contains(&g), "group {g} changed untouched in round {round}");
            }
            for p in a.ports.iter().chain(&b.ports) {
                let same = a.ports.iter().find(|x| x.id == p.id) == b.ports.iter().find(|x| x.id == p.id);
                assert!(same || touched.ports.contains(&p.id), "port {} changed untouched in round {round}", p.id);
            }
        }
    }
}
