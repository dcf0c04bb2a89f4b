//! `haneul network diagnose <server or port>`: walks a guest port's path on this host, in the
//! order a packet takes it (port, bridge, tap, DHCP, metadata, router, NAT, security group),
//! and says where it breaks.

use super::doc::{self, Doc, Port};
use super::{dhcp, router, sys, Dataplane};

pub struct Step {
    pub ok: bool,
    pub what: String,
}

fn step(out: &mut Vec<Step>, ok: bool, what: impl Into<String>) -> bool {
    out.push(Step { ok, what: what.into() });
    ok
}

/// Why there is nothing to diagnose.
#[derive(Debug, thiserror::Error)]
pub enum DiagnoseError {
    #[error("no port is {target} or belongs to a server {target}")]
    NoPort { target: String },
}

/// The checks of every port of `target` (a port id, or a server's id).
pub async fn diagnose(dp: &Dataplane, doc: &Doc, target: &str) -> Result<Vec<Step>, DiagnoseError> {
    let ports: Vec<&Port> = doc.ports.values().filter(|p| p.id == target || p.device_id == target).collect();
    if ports.is_empty() {
        return Err(DiagnoseError::NoPort { target: target.to_string() });
    }
    let mut out = Vec::new();
    for p in ports {
        port(dp, doc, p, &mut out).await;
    }
    Ok(out)
}

async fn port(dp: &Dataplane, doc: &Doc, p: &Port, out: &mut Vec<Step>) {
    let ips: Vec<&str> = p.fixed_ips.iter().map(|f| f.ip_address.as_str()).collect();
    let desc = format!("port {} ({} {}) on network {}", p.id, p.mac_address, ips.join(" "), p.network_id);
    if !step(out, p.admin_state_up, format!("{desc}: admin state {}", if p.admin_state_up { "up" } else { "down" })) {
        return;
    }
    let here = &dp.settings.host;
    if !step(out, &p.host_id == here, format!("bound to host {:?} (this is {here})", p.host_id)) {
        return;
    }
    step(out, p.status == "ACTIVE", format!("status {} (ACTIVE once this host plugged it)", p.status));
    let host = dp.settings.host_ns.as_deref();
    let links = sys::links(host).await.unwrap_or_default();
    let br = doc::bridge_name(&p.network_id);
    let bridge = links.iter().find(|l| l.ifname == br);
    if !step(out, bridge.is_some_and(|b| b.is_up()), format!("bridge {br} exists and is up")) {
        return;
    }
    let tap = doc::tap_name(&p.id);
    let t = links.iter().find(|l| l.ifname == tap);
    if !step(
        out,
        t.is_some_and(|t| t.master.as_deref() == Some(br.as_str()) && t.is_up()),
        format!("tap {tap} is up on {br}"),
    ) {
        return;
    }
    step(
        out,
        t.is_some_and(|t| t.flags.iter().any(|f| f == "LOWER_UP")),
        format!("the guest's QEMU holds {tap} (carrier on)"),
    );

    let dhcp_subnets: Vec<&doc::Subnet> =
        doc.subnets_of(&p.network_id).filter(|s| s.enable_dhcp && s.ip_version == 4).collect();
    if !dhcp_subnets.is_empty() {
        let ns = dp.dhcp_ns(&p.network_id);
        if step(out, sys::namespaces().contains(&ns), format!("DHCP namespace {ns} exists")) {
            let d = dhcp::dir(dp, &ns);
            step(out, sys::pid_running(&d.join("pid"), "dnsmasq").is_some(), "dnsmasq runs for the network");
            let hosts = std::fs::read_to_string(d.join("hosts").join(&p.id)).unwrap_or_default();
            let log = std::fs::read_to_string(d.join("log")).unwrap_or_default();
            for ip in &ips {
                if ip.contains(':') {
                    continue;
                }
                step(
                    out,
                    hosts.contains(&format!("{},", p.mac_address)) && hosts.contains(&format!(",{ip}\n")),
                    format!("dnsmasq knows {} → {ip}", p.mac_address),
                );
                step(
                    out,
                    log.lines().any(|l| l.contains("DHCPACK") && l.contains(ip) && l.contains(&p.mac_address)),
                    format!(
                        "a lease for {ip} was handed out (no: the guest has not asked, or its requests do not arrive)"
                    ),
                );
            }
        }
    }

    let routers: Vec<&str> = doc
        .ports_of(&p.network_id)
        .filter(|r| r.device_owner == doc::OWNER_ROUTER_INTERFACE)
        .map(|r| r.device_id.as_str())
        .collect();
    if routers.is_empty() {
        let ns = dp.dhcp_ns(&p.network_id);
        let listening = sys::run_in(Some(&ns), "ss", &["-ltnH"], None).await.unwrap_or_default();
        step(
            out,
            listening.contains(&format!("{}:80", dhcp::METADATA_IP)),
            format!("metadata proxy listens on {}:80 in {ns} (no router on the network)", dhcp::METADATA_IP),
        );
    }
    for rid in routers {
        let ns = dp.router_ns(rid);
        if !step(out, sys::namespaces().contains(&ns), format!("router namespace {ns} exists")) {
            continue;
        }
        let nat = sys::run_in(Some(&ns), "iptables", &["-w", "-t", "nat", "-S"], None).await.unwrap_or_default();
        let listening = sys::run_in(Some(&ns), "ss", &["-ltnH"], None).await.unwrap_or_default();
        step(
            out,
            nat.contains("REDIRECT") && listening.contains(&format!(":{}", router::METADATA_PORT)),
            "metadata requests are redirected to the proxy in the router",
        );
        let forward = sys::run_in(Some(&ns), "sysctl", &["-n", "net.ipv4.ip_forward"], None).await.unwrap_or_default();
        step(out, forward.trim() == "1", "the router forwards (ip_forward=1)");
        let gw = doc.router_ports(rid).find(|g| g.device_owner == doc::OWNER_ROUTER_GATEWAY);
        match gw {
            None => {
                step(out, false, format!("router {rid} has an external gateway (no: nothing leaves the network)"));
            }
            Some(g) => {
                let qg = doc::inner_name("qg-", &g.id);
                let routes = sys::ip(Some(&ns), &["route", "show", "default"]).await.unwrap_or_default();
                step(out, routes.contains(&qg), format!("the router's default route leaves by {qg}"));
                let snat = doc
                    .routers
                    .values()
                    .find(|r| r.id == rid)
                    .and_then(|r| r.gateway.as_ref())
                    .is_some_and(|g| g.enable_snat);
                if snat {
                    step(out, nat.contains(&format!("-o {qg}")) && nat.contains("SNAT"), "SNAT out of the gateway");
                }
                for f in doc.floatingips.values().filter(|f| f.port_id.as_deref() == Some(p.id.as_str())) {
                    let fixed = f.fixed_ip_address.as_deref().unwrap_or_default();
                    let addrs = sys::addresses(Some(&ns), &qg).await.unwrap_or_default();
                    step(
                        out,
                        addrs.iter().any(|a| a.local == f.floating_ip_address),
                        format!("floating IP {} is on {qg}", f.floating_ip_address),
                    );
                    step(
                        out,
                        nat.contains(&format!("-d {}/32 -j DNAT --to-destination {fixed}", f.floating_ip_address)),
                        format!("floating IP {} is forwarded to {fixed}", f.floating_ip_address),
                    );
                }
            }
        }
    }

    if p.port_security_enabled {
        let rules = sys::run_in(host, "iptables", &["-w", "-S"], None).await.unwrap_or_default();
        let chain = format!("haneul-i{}", &p.id[..p.id.len().min(10)]);
        step(
            out,
            rules.contains("-j haneul-fw") && rules.contains(&format!("-N {chain}")),
            format!("security group chains for the port ({chain})"),
        );
        let allowed: Vec<String> = rules
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("-A {chain} ")))
            .filter(|l| l.ends_with("-j RETURN") && !l.contains("ctstate") && !l.contains("--sport 67"))
            .map(|l| l.trim_end_matches("-j RETURN").trim().to_string())
            .collect();
        let what = if allowed.is_empty() {
            "nothing (only answers to its own traffic)".to_string()
        } else {
            allowed.join("; ")
        };
        step(out, true, format!("security groups let in: {what}"));
    } else {
        step(out, true, "port security is off: no filtering");
    }
}
