//! Each subnet's free addresses, as ranges: what IPAM hands the next address from without
//! looking at the ports that hold the others. Derived from the subnets' allocation pools and
//! the ports' fixed IPs, kept in step by their tables' changes (`model::subnet_changed`,
//! `model::port_changed`, run for every write and every load), and persistent like the
//! tables (a write copies only the ranges it changes).

use std::ops::Bound::{Excluded, Included, Unbounded};

use imbl::OrdMap;

/// Free ranges by subnet: (subnet, first address) → last address, inclusive.
#[derive(Clone, Default, Debug)]
pub struct Free {
    ranges: OrdMap<(String, u128), u128>,
}

impl Free {
    /// The range of `subnet` that holds `a`: its first and last address.
    fn holding(&self, subnet: &str, a: u128) -> Option<(u128, u128)> {
        let key = (subnet.to_string(), a);
        let ((s, first), last) = self.ranges.range((Unbounded, Included(key))).next_back()?;
        (s == subnet && *last >= a).then_some((*first, *last))
    }

    pub fn is_free(&self, subnet: &str, a: u128) -> bool {
        self.holding(subnet, a).is_some()
    }

    /// The first free address of `subnet` in `lo..=hi` that `skip` does not refuse: the
    /// ranges from the one holding `lo` on, each address of a range tried in order (`skip`
    /// refuses only what the caller took a moment ago, so few are tried).
    pub fn first(&self, subnet: &str, lo: u128, hi: u128, skip: impl Fn(u128) -> bool) -> Option<u128> {
        let from = (subnet.to_string(), lo);
        let holding = self.holding(subnet, lo);
        let after = self
            .ranges
            .range((Excluded(from), Unbounded))
            .take_while(|((s, first), _)| s == subnet && *first <= hi)
            .map(|((_, first), last)| (*first, *last));
        for (first, last) in holding.into_iter().chain(after) {
            let mut a = first.max(lo);
            while a <= last.min(hi) {
                if !skip(a) {
                    return Some(a);
                }
                a += 1;
            }
        }
        None
    }

    /// Marks `a` in use.
    pub fn take(&mut self, subnet: &str, a: u128) {
        let Some((first, last)) = self.holding(subnet, a) else { return };
        self.ranges.remove(&(subnet.to_string(), first));
        if first < a {
            self.ranges.insert((subnet.to_string(), first), a - 1);
        }
        if a < last {
            self.ranges.insert((subnet.to_string(), a + 1), last);
        }
    }

    /// Marks `a` free, joining it to the ranges on either side.
    pub fn give(&mut self, subnet: &str, a: u128) {
        if self.is_free(subnet, a) {
            return;
        }
        let (mut first, mut last) = (a, a);
        if let Some((f, _)) = a.checked_sub(1).and_then(|b| self.holding(subnet, b)) {
            self.ranges.remove(&(subnet.to_string(), f));
            first = f;
        }
        if let Some(l) = a.checked_add(1).and_then(|b| self.ranges.remove(&(subnet.to_string(), b))) {
            last = l;
        }
        self.ranges.insert((subnet.to_string(), first), last);
    }

    pub fn clear(&mut self, subnet: &str) {
        let firsts: Vec<u128> = self
            .ranges
            .range((Included((subnet.to_string(), 0)), Unbounded))
            .take_while(|((s, _), _)| s == subnet)
            .map(|((_, f), _)| *f)
            .collect();
        for f in firsts {
            self.ranges.remove(&(subnet.to_string(), f));
        }
    }

    /// Files `first..=last` as free (a subnet's ranges being made anew).
    pub fn insert(&mut self, subnet: &str, first: u128, last: u128) {
        self.ranges.insert((subnet.to_string(), first), last);
    }

    /// The ranges of `subnet`, in order (tests, diagnosis).
    pub fn ranges_of(&self, subnet: &str) -> Vec<(u128, u128)> {
        self.ranges
            .range((Included((subnet.to_string(), 0)), Unbounded))
            .take_while(|((s, _), _)| s == subnet)
            .map(|((_, f), l)| (*f, *l))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use std::collections::BTreeSet;

    use rand::{Rng, SeedableRng};
    use serde_json::json;

    use crate::ip::Addr;
    use crate::model::{pools, port_changed, subnet_changed, Model, Port, Subnet};

    fn record<T: serde::de::DeserializeOwned>(mut v: serde_json::Value) -> T {
        v["std"] = json!({"description": "", "tags": [], "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "revision_number": 0});
        serde_json::from_value(v).unwrap()
    }

    fn subnet(pools: &[(&str, &str)]) -> Subnet {
        let pools: Vec<serde_json::Value> = pools.iter().map(|(s, e)| json!({"start": s, "end": e})).collect();
        record(json!({"id": "s", "project_id": "p", "network_id": "n", "name": "",
            "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1", "allocation_pools": pools,
            "dns_nameservers": [], "host_routes": [], "enable_dhcp": true, "ipv6_ra_mode": null,
            "ipv6_address_mode": null, "subnetpool_id": null, "service_types": [], "dns_publish_fixed_ip": false}))
    }

    fn port(id: &str, ips: &[u8]) -> Port {
        let fixed: Vec<serde_json::Value> =
            ips.iter().map(|i| json!({"subnet_id": "s", "ip_address": format!("10.0.0.{i}")})).collect();
        record(json!({"id": id, "project_id": "p", "network_id": "n", "name": "",
            "admin_state_up": true, "mac_address": format!("fa:16:3e:00:00:{:02x}", id.len()),
            "fixed_ips": fixed, "device_id": "", "device_owner": "", "status": "DOWN", "security_groups": [],
            "port_security_enabled": true, "allowed_address_pairs": [], "extra_dhcp_opts": [], "host_id": "",
            "vnic_type": "normal", "profile": {}}))
    }

    /// As a write does: the table changes, then what derives from it.
    fn put_port(m: &mut Model, p: Option<Port>, id: &str) {
        let old = match p {
            Some(p) => m.ports.insert(id.to_string(), Arc::new(p)),
            None => m.ports.remove(id),
        };
        let new = m.ports.get(id).cloned();
        port_changed(m, old.as_deref(), new.as_deref());
    }

    fn put_subnet(m: &mut Model, s: Subnet) {
        let old = m.subnets.insert("s".into(), Arc::new(s));
        let new = m.subnets.get("s").cloned();
        subnet_changed(m, old.as_deref(), new.as_deref());
    }

    /// Every address a port holds, by looking at every port.
    fn held(m: &Model) -> BTreeSet<u128> {
        m.ports.values().flat_map(|p| &p.fixed_ips).filter_map(|f| Addr::parse(&f.ip_address).map(|a| a.bits)).collect()
    }

    /// The first address of the pools no port holds, by looking at every address.
    fn scan(m: &Model) -> Option<u128> {
        let s = m.subnets.get("s")?;
        let held = held(m);
        pools(s).iter().flat_map(|(a, b)| a.bits..=b.bits).find(|b| !held.contains(b))
    }

    fn first(m: &Model) -> Option<u128> {
        let s = m.subnets.get("s")?;
        pools(s).iter().find_map(|(a, b)| m.free.first("s", a.bits, b.bits, |_| false))
    }

    /// For random ports coming, changing and going (and the pools changing now and then),
    /// the first free address the ranges give is the one a scan of every port finds, and the
    /// ranges are exactly the free addresses, none touching another.
    #[test]
    fn the_ranges_follow_random_changes_and_agree_with_a_scan() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        let mut m = Model::default();
        put_subnet(&mut m, subnet(&[("10.0.0.2", "10.0.0.40"), ("10.0.0.100", "10.0.0.120")]));
        for step in 0..4000 {
            let id = format!("p{}", rng.gen_range(0..60));
            match rng.gen_range(0..20) {
                0 => {
                    let lo = rng.gen_range(2..30);
                    put_subnet(&mut m, subnet(&[(&format!("10.0.0.{lo}"), "10.0.0.60")]));
                }
                1..=6 => put_port(&mut m, None, &id),
                _ => {
                    // Mostly the next free address, as IPAM gives; sometimes any.
                    let n = rng.gen_range(1..3);
                    let ips: Vec<u8> = (0..n)
                        .map(|_| match (rng.gen_bool(0.7), first(&m)) {
                            (true, Some(a)) => (a & 0xff) as u8,
                            _ => rng.gen_range(2..130),
                        })
                        .collect();
                    put_port(&mut m, Some(port(&id, &ips)), &id);
                }
            }
            assert_eq!(first(&m), scan(&m), "first free at step {step}");
            let s = m.subnets.get("s").unwrap().clone();
            let ranges = m.free.ranges_of("s");
            for w in ranges.windows(2) {
                assert!(w[0].1 + 1 < w[1].0, "ranges {w:?} touch at step {step}");
            }
            let free: BTreeSet<u128> = ranges.iter().flat_map(|(a, b)| *a..=*b).collect();
            let held = held(&m);
            let want: BTreeSet<u128> =
                pools(&s).iter().flat_map(|(a, b)| a.bits..=b.bits).filter(|b| !held.contains(b)).collect();
            assert_eq!(free, want, "free addresses at step {step}");
        }
    }
}
