//! The picture the network service sends ([`haneul_contracts::dataplane`]), under the name
//! the data plane's modules use, and the names the data plane gives what it builds from it.

pub use haneul_contracts::dataplane::*;

/// The picture a host's data plane is made from.
pub type Doc = Picture;

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
