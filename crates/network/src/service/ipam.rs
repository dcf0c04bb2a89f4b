//! IP address management: a port's fixed IPs from its subnets' pools (the next free address,
//! a named one checked, SLAAC's EUI-64 address) and its MAC address.

use std::collections::BTreeSet;

use super::{bad, invalid, not_found, Error, Result};
use crate::ip::{eui64, Addr, Cidr};
use crate::model::{address_key, FixedIp, Model, Subnet, PORT_ADDRESS};

/// The addresses in use while a port's addresses are chosen: the ports' (from the snapshot's
/// address index, the port being updated excepted) and those this request took already.
struct Used<'a> {
    m: &'a Model,
    port_id: Option<&'a str>,
    taken: BTreeSet<(String, u128)>,
}

impl Used<'_> {
    fn contains(&self, subnet: &str, a: Addr) -> bool {
        self.taken.contains(&(subnet.to_string(), a.bits))
            || self.m.ports.ids_by(PORT_ADDRESS, &address_key(subnet, a)).any(|holder| Some(holder) != self.port_id)
    }

    /// The first address of the subnet's pools not in use (the gateway is outside the pools)
    /// nor taken by this request: from the subnet's free ranges ([`crate::free`]), so it
    /// costs the ranges before the first fit, not the addresses in use. The port being
    /// changed may keep (or get back) one of its own.
    fn next_free(&self, s: &Subnet) -> Option<Addr> {
        let taken = |bits: u128| self.taken.contains(&(s.id.clone(), bits));
        let own: Vec<u128> = self
            .port_id
            .and_then(|id| self.m.ports.get(id))
            .into_iter()
            .flat_map(|p| &p.fixed_ips)
            .filter(|f| f.subnet_id == s.id)
            .filter_map(|f| Addr::parse(&f.ip_address).map(|a| a.bits))
            .filter(|b| !taken(*b))
            .collect();
        for (start, end) in crate::model::pools(s) {
            let free = self.m.free.first(&s.id, start.bits, end.bits, taken);
            let mine = own.iter().copied().filter(|b| start.bits <= *b && *b <= end.bits).min();
            let best = match (free, mine) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(bits) = best {
                return Some(Addr { version: s.ip_version, bits });
            }
        }
        None
    }
}

/// A fixed IP asked for on a port: a subnet, an address, or both.
#[derive(Clone, Debug, Default)]
pub struct IpRequest {
    pub subnet_id: Option<String>,
    pub ip_address: Option<String>,
    /// A router interface's gateway address: taken also on a SLAAC subnet (whose other
    /// ports only get their EUI-64 address), as Neutron allows for router ports.
    pub gateway: bool,
}

/// Turns a port's requested fixed IPs into addresses on `network_id`: each named address
/// checked (in a subnet of the network, free), each subnet-only request given the next free
/// address of its pools, SLAAC subnets their EUI-64 address. With no request at all the port
/// gets one address from each IPv4 subnet (the first with room) and each auto-address IPv6
/// subnet, as Neutron does. `port_id` is the port being updated (its own addresses are free
/// to keep; a request naming only a subnet keeps the port's address there).
pub fn allocate_ips(
    m: &Model,
    network_id: &str,
    mac: &str,
    requests: Option<&[IpRequest]>,
    port_id: Option<&str>,
) -> Result<Vec<FixedIp>> {
    let subnets: Vec<&Subnet> = m.subnets_of(network_id).collect();
    let mut used = Used { m, port_id, taken: BTreeSet::new() };
    let mut out: Vec<FixedIp> = Vec::new();
    let Some(requests) = requests else {
        // One address from one IPv4 subnet, one from one stateful IPv6 subnet, and the
        // EUI-64 address on every auto-address IPv6 subnet.
        let (mut v4_done, mut v6_done) = (false, false);
        for s in &subnets {
            if s.is_auto_address() {
                let ip = slaac_ip(s, mac)?;
                take(&mut used, s, ip, &mut out)?;
                continue;
            }
            let done = if s.ip_version == 4 { &mut v4_done } else { &mut v6_done };
            if *done {
                continue;
            }
            if let Some(ip) = used.next_free(s) {
                take(&mut used, s, ip.to_string(), &mut out)?;
                *done = true;
            }
        }
        if !subnets.is_empty() && out.is_empty() {
            return Err(Error::Conflict(
                "IpAddressGenerationFailure",
                format!("No more IP addresses available on network {network_id}."),
            ));
        }
        return Ok(out);
    };
    let kept: Vec<FixedIp> = port_id.and_then(|id| m.ports.get(id)).map(|p| p.fixed_ips.clone()).unwrap_or_default();
    for r in requests {
        if let (Some(sid), None) = (&r.subnet_id, &r.ip_address) {
            if let Some(k) =
                kept.iter().find(|k| &k.subnet_id == sid && !out.iter().any(|o| o.ip_address == k.ip_address))
            {
                if let Some(s) = subnets.iter().find(|s| &s.id == sid) {
                    take(&mut used, s, k.ip_address.clone(), &mut out)?;
                    continue;
                }
            }
        }
        let subnet = match (&r.subnet_id, &r.ip_address) {
            (Some(sid), _) => {
                let s = m.subnets.get(sid).ok_or_else(|| not_found("SubnetNotFound", "Subnet", sid))?;
                if s.network_id != network_id {
                    return Err(invalid(format!("Failed to create port on network {network_id}, because fixed_ips included invalid subnet {sid}")));
                }
                &**s
            }
            (None, Some(ip)) => {
                let a = Addr::parse(ip).ok_or_else(|| {
                    bad(format!("Invalid input for fixed_ips. Reason: '{ip}' is not a valid IP address."))
                })?;
                *subnets.iter().find(|s| Cidr::parse(&s.cidr, true).is_some_and(|c| c.contains(a))).ok_or_else(
                    || {
                        bad(format!(
                            "IP address {ip} is not a valid IP for any of the subnets on the specified network."
                        ))
                    },
                )?
            }
            (None, None) => {
                return Err(bad("Invalid input for fixed_ips. Reason: a fixed IP needs a subnet_id or an ip_address."))
            }
        };
        let ip = match &r.ip_address {
            Some(ip) => {
                let a = Addr::parse(ip).ok_or_else(|| {
                    bad(format!("Invalid input for fixed_ips. Reason: '{ip}' is not a valid IP address."))
                })?;
                let c = Cidr::parse(&subnet.cidr, true)
                    .ok_or_else(|| Error::Internal(format!("subnet {} has a bad cidr", subnet.id)))?;
                if !c.contains(a) {
                    return Err(invalid(format!("IP address {ip} is not a valid IP for the specified subnet.")));
                }
                if subnet.is_auto_address() && !r.gateway {
                    return Err(invalid(format!(
                        "IPv6 address {ip} cannot be directly assigned to a port on subnet {} with {} address mode",
                        subnet.id,
                        subnet.ipv6_address_mode.as_deref().unwrap_or_default()
                    )));
                }
                a.to_string()
            }
            None if subnet.is_auto_address() => slaac_ip(subnet, mac)?,
            None => used.next_free(subnet).map(|a| a.to_string()).ok_or_else(|| {
                Error::Conflict(
                    "IpAddressGenerationFailure",
                    format!("No more IP addresses available on network {network_id}."),
                )
            })?,
        };
        take(&mut used, subnet, ip, &mut out)?;
    }
    Ok(out)
}

/// Records `ip` on `subnet` for the port being placed; 409 if it is taken.
fn take(used: &mut Used, subnet: &Subnet, ip: String, out: &mut Vec<FixedIp>) -> Result<()> {
    let a = Addr::parse(&ip).ok_or_else(|| Error::Internal(format!("{ip} is not an address")))?;
    if used.contains(&subnet.id, a) || !used.taken.insert((subnet.id.clone(), a.bits)) {
        return Err(Error::Conflict(
            "IpAddressAlreadyAllocated",
            format!("IP address {ip} already allocated in subnet {}", subnet.id),
        ));
    }
    out.push(FixedIp { subnet_id: subnet.id.clone(), ip_address: ip });
    Ok(())
}

fn slaac_ip(s: &Subnet, mac: &str) -> Result<String> {
    let c = Cidr::parse(&s.cidr, true).ok_or_else(|| Error::Internal(format!("subnet {} has a bad cidr", s.id)))?;
    eui64(c, mac)
        .map(|a| a.to_string())
        .ok_or_else(|| invalid(format!("no EUI-64 address for MAC {mac} on subnet {}", s.id)))
}

/// A new MAC address, `fa:16:3e:xx:xx:xx` as Neutron's base_mac, unique on the network.
pub fn new_mac(m: &Model, network_id: &str) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    loop {
        let b: [u8; 3] = rng.gen();
        let mac = format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2]);
        if m.mac_holder(network_id, &mac).is_none() {
            return mac;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Pool, Port, Std};
    use std::sync::Arc;

    fn subnet(id: &str, cidr: &str, pools: &[(&str, &str)]) -> Subnet {
        Subnet {
            id: id.into(),
            project_id: "p".into(),
            network_id: "n".into(),
            name: String::new(),
            ip_version: if cidr.contains(':') { 6 } else { 4 },
            cidr: cidr.into(),
            gateway_ip: None,
            allocation_pools: pools.iter().map(|(a, b)| Pool { start: a.to_string(), end: b.to_string() }).collect(),
            dns_nameservers: vec![],
            host_routes: vec![],
            enable_dhcp: true,
            ipv6_ra_mode: None,
            ipv6_address_mode: None,
            subnetpool_id: None,
            service_types: vec![],
            dns_publish_fixed_ip: false,
            std: Std::default(),
        }
    }

    fn port(id: &str, ips: &[(&str, &str)]) -> Port {
        Port {
            id: id.into(),
            project_id: "p".into(),
            network_id: "n".into(),
            name: String::new(),
            admin_state_up: true,
            mac_address: "fa:16:3e:00:00:01".into(),
            fixed_ips: ips
                .iter()
                .map(|(s, a)| FixedIp { subnet_id: s.to_string(), ip_address: a.to_string() })
                .collect(),
            device_id: String::new(),
            device_owner: String::new(),
            status: "DOWN".into(),
            security_groups: vec![],
            port_security_enabled: true,
            allowed_address_pairs: vec![],
            extra_dhcp_opts: vec![],
            host_id: String::new(),
            vnic_type: "normal".into(),
            profile: serde_json::json!({}),
            std: Std::default(),
        }
    }

    /// As a write does: into the table, and into what derives from it (the free ranges).
    fn add_subnet(m: &mut Model, s: Subnet) {
        let s = Arc::new(s);
        let old = m.subnets.insert(s.id.clone(), s.clone());
        crate::model::subnet_changed(m, old.as_deref(), Some(&s));
    }

    fn add_port(m: &mut Model, p: Port) {
        let p = Arc::new(p);
        let old = m.ports.insert(p.id.clone(), p.clone());
        crate::model::port_changed(m, old.as_deref(), Some(&p));
    }

    #[test]
    fn addresses_are_handed_out_once_and_named_ones_checked() {
        let mut m = Model::default();
        add_subnet(&mut m, subnet("s", "10.0.0.0/29", &[("10.0.0.2", "10.0.0.4")]));
        add_port(&mut m, port("a", &[("s", "10.0.0.2")]));
        let got = allocate_ips(&m, "n", "fa:16:3e:00:00:02", None, None).unwrap();
        assert_eq!(got, vec![FixedIp { subnet_id: "s".into(), ip_address: "10.0.0.3".into() }]);
        // A named address already held is a 409; one outside the subnet a 400.
        let taken =
            [IpRequest { subnet_id: Some("s".into()), ip_address: Some("10.0.0.2".into()), ..Default::default() }];
        assert!(matches!(
            allocate_ips(&m, "n", "x", Some(&taken), None),
            Err(Error::Conflict("IpAddressAlreadyAllocated", _))
        ));
        let outside =
            [IpRequest { subnet_id: Some("s".into()), ip_address: Some("10.0.1.2".into()), ..Default::default() }];
        assert!(matches!(allocate_ips(&m, "n", "x", Some(&outside), None), Err(Error::BadRequest(..))));
        // The port itself may keep its address.
        assert!(allocate_ips(&m, "n", "x", Some(&taken), Some("a")).is_ok());
        // Two in one request from a pool of one left: the second fails.
        let two = [
            IpRequest { subnet_id: Some("s".into()), ..Default::default() },
            IpRequest { subnet_id: Some("s".into()), ..Default::default() },
        ];
        assert_eq!(allocate_ips(&m, "n", "x", Some(&two[..1]), None).unwrap()[0].ip_address, "10.0.0.3");
        let mut full = m.clone();
        add_port(&mut full, port("b", &[("s", "10.0.0.3")]));
        assert!(matches!(
            allocate_ips(&full, "n", "x", Some(&two), None),
            Err(Error::Conflict("IpAddressGenerationFailure", _))
        ));
    }

    #[test]
    fn slaac_subnets_give_the_eui64_address() {
        let mut m = Model::default();
        let mut s = subnet("v6", "2001:db8::/64", &[("2001:db8::2", "2001:db8::ffff:ffff:ffff:ffff")]);
        s.ipv6_address_mode = Some("slaac".into());
        add_subnet(&mut m, s);
        let got = allocate_ips(&m, "n", "fa:16:3e:12:34:56", None, None).unwrap();
        assert_eq!(got[0].ip_address, "2001:db8::f816:3eff:fe12:3456");
    }
}
