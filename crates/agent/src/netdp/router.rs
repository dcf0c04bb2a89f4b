//! A router: namespace `qrouter-<router>` with a `qr-` interface per subnet it joins and a
//! `qg-` one on the external network; forwarding on; SNAT of its subnets out of the gateway
//! (`enable_snat`), each floating IP as an address on `qg-` with DNAT in and SNAT out (or, with
//! port forwardings, DNAT of each forwarded port); static
//! routes; IPv6 routed (no NAT) with router advertisements on the interfaces of subnets that
//! ask for them (`ipv6_ra_mode`, see [`dhcp::ensure_ra`]); and the metadata proxy for its
//! networks (169.254.169.254:80 redirected to 9697).
//! The namespace's iptables are the router's alone, rewritten whole each time.

use std::collections::BTreeSet;

use super::doc::{self, Doc, Port, Router};
use haneul_core::service::chain;

use super::{dhcp, metadata, sys, Dataplane, EnsureError};

pub const METADATA_PORT: u16 = 9697;

/// Makes router `r` what the picture says; the ports it plumbed.
pub async fn ensure(dp: &Dataplane, doc: &Doc, r: &Router, ns: &str) -> Result<Vec<String>, EnsureError> {
    let fresh = !sys::namespaces().iter().any(|n| n == ns);
    sys::add_namespace(ns).await?;
    if fresh {
        // IPv6 is routed too, not translated.
        for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
            sys::sysctl(Some(ns), key, "1").await?;
        }
    }
    let mut up = Vec::new();
    let mut inner = BTreeSet::new();
    let mut advertised = Vec::new();
    let interfaces: Vec<&Port> =
        doc.router_ports(&r.id).filter(|p| p.device_owner == doc::OWNER_ROUTER_INTERFACE).collect();
    for p in &interfaces {
        let ifname = dp.plumb(doc, ns, p, "qr-", &[]).await?;
        for s in p.fixed_ips.iter().filter_map(|f| doc.subnet(&f.subnet_id)).filter(|s| s.ip_version == 6) {
            if let Some(mode) = &s.ipv6_ra_mode {
                let mtu = doc.network(&p.network_id).map_or(1500, |n| n.mtu);
                advertised.push(dhcp::Advertised {
                    ifname: ifname.clone(),
                    cidr: s.cidr.clone(),
                    mode: mode.clone(),
                    mtu,
                });
            }
        }
        inner.insert(ifname);
        up.push(p.id.clone());
    }
    if let Err(e) = dhcp::ensure_ra(dp, ns, &advertised).await {
        // Advertisements are IPv6's part: the router's IPv4 (NAT, floating IPs) goes on.
        tracing::warn!(router = %r.id, "router advertisements: {}", chain(&e));
    }
    let floating: Vec<&doc::FloatingIp> = doc
        .floatingips
        .values()
        .filter(|f| {
            f.router_id.as_deref() == Some(r.id.as_str()) && f.port_id.is_some() && f.fixed_ip_address.is_some()
        })
        .collect();
    // Floating IPs with port forwardings: their address on qg-, DNAT per forwarded port.
    let forwarded: Vec<&doc::FloatingIp> = doc
        .floatingips
        .values()
        .filter(|f| {
            f.router_id.as_deref() == Some(r.id.as_str()) && f.port_id.is_none() && !f.port_forwardings.is_empty()
        })
        .collect();
    let gateway = doc.router_ports(&r.id).find(|p| p.device_owner == doc::OWNER_ROUTER_GATEWAY);
    let mut nat = String::from(
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
    );
    nat.push_str(&format!(
        "-A PREROUTING -i qr-+ -d {}/32 -p tcp --dport 80 -j REDIRECT --to-ports {METADATA_PORT}\n",
        super::dhcp::METADATA_IP
    ));
    if let Some(g) = gateway {
        let extra: Vec<String> =
            floating.iter().chain(&forwarded).map(|f| format!("{}/32", f.floating_ip_address)).collect();
        let qg = dp.plumb(doc, ns, g, "qg-", &extra).await?;
        inner.insert(qg.clone());
        up.push(g.id.clone());
        // IPv6 leaves by the external subnet's gateway, untranslated (the external side
        // routes the router's subnets back to its gateway address, see `v6_routes`).
        let v6_gateway = g.fixed_ips.iter().find_map(|f| doc.subnet(&f.subnet_id).filter(|s| s.ip_version == 6));
        match v6_gateway.and_then(|s| s.gateway_ip.as_ref()) {
            Some(gw) => {
                if let Err(e) = sys::ip(Some(ns), &["-6", "route", "replace", "default", "via", gw, "dev", &qg]).await {
                    tracing::warn!(router = %r.id, "IPv6 default route via {gw}: {}", chain(&e));
                }
            }
            None => {
                let _ = sys::ip(Some(ns), &["-6", "route", "del", "default", "dev", &qg]).await;
            }
        }
        let v4 = g.fixed_ips.iter().find_map(|f| Some((f, doc.subnet(&f.subnet_id).filter(|s| s.ip_version == 4)?)));
        if let Some((fixed, subnet)) = v4 {
            if let Some(gw) = &subnet.gateway_ip {
                sys::ip(Some(ns), &["route", "replace", "default", "via", gw, "dev", &qg]).await?;
            }
            for f in &floating {
                let (fip, fixed_ip) = (&f.floating_ip_address, f.fixed_ip_address.as_deref().unwrap_or_default());
                nat.push_str(&format!("-A PREROUTING -d {fip}/32 -j DNAT --to-destination {fixed_ip}\n"));
                nat.push_str(&format!("-A OUTPUT -d {fip}/32 -j DNAT --to-destination {fixed_ip}\n"));
                nat.push_str(&format!("-A POSTROUTING -s {fixed_ip}/32 -o {qg} -j SNAT --to-source {fip}\n"));
            }
            for f in &forwarded {
                for pf in &f.port_forwardings {
                    nat.push_str(&forward_rules(&f.floating_ip_address, pf));
                }
            }
            if r.gateway.as_ref().is_some_and(|g| g.enable_snat) {
                nat.push_str(&format!(
                    "-A POSTROUTING -o {qg} -m conntrack ! --ctstate DNAT -j SNAT --to-source {}\n",
                    fixed.ip_address
                ));
            }
        }
    }
    nat.push_str("COMMIT\n");
    let filter = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
    sys::run_in(Some(ns), "iptables-restore", &[], Some(&format!("{nat}{filter}"))).await?;
    // Static routes (the extraroute extension), as `proto static`; others we made go.
    let want: BTreeSet<(String, String)> =
        r.routes.iter().map(|rt| (rt.destination.clone(), rt.nexthop.clone())).collect();
    for (dest, hop) in &want {
        sys::ip(Some(ns), &["route", "replace", dest, "via", hop, "proto", "static"]).await?;
    }
    let have = sys::ip(Some(ns), &["-j", "route", "show", "proto", "static"]).await?;
    let have: Vec<serde_json::Value> = serde_json::from_str(&have).unwrap_or_default();
    for rt in have {
        let (Some(dst), Some(gw)) = (rt["dst"].as_str(), rt["gateway"].as_str()) else { continue };
        if !want.iter().any(|(d, h)| h == gw && (d == dst || d.strip_suffix("/32") == Some(dst))) {
            let _ = sys::ip(Some(ns), &["route", "del", dst, "via", gw, "proto", "static"]).await;
        }
    }
    // Interfaces of ports the router no longer has.
    for l in sys::links(Some(ns)).await? {
        if (l.ifname.starts_with("qr-") || l.ifname.starts_with("qg-")) && !inner.contains(&l.ifname) {
            let _ = sys::ip(Some(ns), &["link", "del", &l.ifname]).await;
        }
    }
    if !dp.has_proxy(ns) {
        let addr: std::net::SocketAddr = format!("0.0.0.0:{METADATA_PORT}").parse().expect("a socket address");
        let task =
            metadata::serve(dp, ns, addr, metadata::Scope::Router(r.id.clone())).map_err(EnsureError::MetadataProxy)?;
        dp.set_proxy(ns, task);
    }
    Ok(up)
}

/// The IPv6 routes the external side needs to reach routers' IPv6 subnets on external
/// network `network_id` (DevStack adds the same on `br-ex`): each subnet a router joins, via
/// that router's IPv6 gateway address, where the host has an address on that external
/// subnet (its gateway, link-local ones aside).
pub fn v6_routes(doc: &Doc, network_id: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for g in doc.ports_of(network_id).filter(|p| p.device_owner == doc::OWNER_ROUTER_GATEWAY) {
        let reachable = |f: &&doc::FixedIp| {
            doc.subnet(&f.subnet_id)
                .is_some_and(|s| s.ip_version == 6 && s.gateway_ip.as_ref().is_some_and(|gw| !doc::is_link_local(gw)))
        };
        let Some(via) = g.fixed_ips.iter().find(reachable) else { continue };
        for p in doc.router_ports(&g.device_id).filter(|p| p.device_owner == doc::OWNER_ROUTER_INTERFACE) {
            for s in p.fixed_ips.iter().filter_map(|f| doc.subnet(&f.subnet_id)).filter(|s| s.ip_version == 6) {
                out.insert((s.cidr.clone(), via.ip_address.clone()));
            }
        }
    }
    out
}

/// The DNAT of one port forwarding, in PREROUTING and OUTPUT: one port to one port, a range
/// onto one port, or a range onto a range of the same size (port by port: iptables' base
/// port shifts each external port by the same offset).
fn forward_rules(fip: &str, pf: &doc::PortForwarding) -> String {
    let (ef, el) = (pf.external_port, pf.external_port_end.unwrap_or(pf.external_port));
    let (inf, inl) = (pf.internal_port, pf.internal_port_end.unwrap_or(pf.internal_port));
    let dport = if el > ef { format!("{ef}:{el}") } else { ef.to_string() };
    let to = if inl > inf { format!("{inf}-{inl}/{ef}") } else { inf.to_string() };
    let (p, ip) = (&pf.protocol, &pf.internal_ip_address);
    let rule = format!("-d {fip}/32 -p {p} -m {p} --dport {dport} -j DNAT --to-destination {ip}:{to}\n");
    format!("-A PREROUTING {rule}-A OUTPUT {rule}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_forwardings_map_ports_and_ranges() {
        let pf = |i: u16, ie: Option<u16>, e: u16, ee: Option<u16>| doc::PortForwarding {
            protocol: "tcp".into(),
            internal_ip_address: "10.0.0.5".into(),
            internal_port: i,
            external_port: e,
            internal_port_end: ie,
            external_port_end: ee,
        };
        let one = forward_rules("172.24.4.9", &pf(22, None, 2222, None));
        assert!(
            one.starts_with(
                "-A PREROUTING -d 172.24.4.9/32 -p tcp -m tcp --dport 2222 -j DNAT --to-destination 10.0.0.5:22\n"
            ),
            "{one}"
        );
        let many_to_one = forward_rules("172.24.4.9", &pf(80, None, 8000, Some(8009)));
        assert!(many_to_one.contains("--dport 8000:8009 -j DNAT --to-destination 10.0.0.5:80\n"), "{many_to_one}");
        let n_to_n = forward_rules("172.24.4.9", &pf(21, Some(22), 2221, Some(2222)));
        assert!(n_to_n.contains("--dport 2221:2222 -j DNAT --to-destination 10.0.0.5:21-22/2221\n"), "{n_to_n}");
        assert!(n_to_n.contains("-A OUTPUT -d 172.24.4.9/32"));
    }
}
