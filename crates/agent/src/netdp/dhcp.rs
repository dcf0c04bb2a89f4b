//! DHCP for a network: namespace `qdhcp-<network>` with the network's DHCP port in it and
//! dnsmasq serving fixed addresses only (a hosts file of MAC → address for every port, as
//! Neutron's DHCP agent writes it; SIGHUP re-reads it). Networks without a router also get
//! the metadata proxy at 169.254.169.254 in this namespace, and a classless static route to
//! it in their leases.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::doc::{self, Doc, Network, Subnet};
use super::{metadata, sys, Dataplane};

pub const METADATA_IP: &str = "169.254.169.254";

/// The DHCP port's `device_id` (Neutron: `dhcp<host id>-<network>`).
pub fn device_id(host: &str, network_id: &str) -> String {
    format!("dhcp-{host}-{network_id}")
}

/// Where the namespace's dnsmasq keeps its files (pid, hosts, options, leases, log).
pub fn dir(dp: &Dataplane, ns: &str) -> PathBuf {
    dp.settings.state_dir.join(ns)
}

/// Makes network `n`'s DHCP server what the picture says; the DHCP port's id once it runs.
pub async fn ensure(dp: &Dataplane, doc: &Doc, n: &Network, ns: &str) -> Result<Option<String>, String> {
    let subnets: Vec<&Subnet> = doc.subnets_of(&n.id).filter(|s| s.enable_dhcp && s.ip_version == 4).collect();
    let device = device_id(&dp.settings.host, &n.id);
    let Some(port) = doc.ports_of(&n.id).find(|p| p.device_owner == doc::OWNER_DHCP && p.device_id == device) else {
        dp.ask_dhcp_port(n, &subnets).await?;
        return Ok(None);
    };
    dp.dhcp_port_seen(&n.id);
    let fixed: BTreeMap<&str, &str> =
        port.fixed_ips.iter().map(|f| (f.subnet_id.as_str(), f.ip_address.as_str())).collect();
    sys::add_namespace(ns).await.map_err(|e| e.to_string())?;
    let inner = dp.plumb(doc, ns, port, "ns-", &[format!("{METADATA_IP}/32")]).await.map_err(|e| e.to_string())?;

    let d = dir(dp, ns);
    std::fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    // dnsmasq reads its files as nobody.
    open_up(&d, &dp.settings.state_dir);
    let routed = doc.routed(&n.id);
    let mut hosts = String::new();
    for p in doc.ports_of(&n.id) {
        for f in &p.fixed_ips {
            if subnets.iter().any(|s| s.id == f.subnet_id) {
                let name = format!("host-{}", f.ip_address.replace('.', "-"));
                hosts.push_str(&format!("{},{name}.openstacklocal,{}\n", p.mac_address, f.ip_address));
            }
        }
    }
    let mut opts = String::new();
    let mut ranges = Vec::new();
    for (i, s) in subnets.iter().enumerate() {
        let tag = format!("subnet{i}");
        let Some((addr, len)) = s.cidr.split_once('/') else { continue };
        let Ok(len) = len.parse::<u32>() else { continue };
        let mask = std::net::Ipv4Addr::from(u32::MAX.checked_shl(32 - len).unwrap_or(0));
        ranges.push(format!("--dhcp-range=set:{tag},{addr},static,{mask},86400s"));
        match &s.gateway_ip {
            Some(gw) => opts.push_str(&format!("tag:{tag},option:router,{gw}\n")),
            None => opts.push_str(&format!("tag:{tag},option:router\n")),
        }
        if !s.dns_nameservers.is_empty() {
            opts.push_str(&format!("tag:{tag},option:dns-server,{}\n", s.dns_nameservers.join(",")));
        }
        opts.push_str(&format!("tag:{tag},option:mtu,{}\n", n.mtu.max(576)));
        let mut routes: Vec<(String, String)> =
            s.host_routes.iter().map(|r| (r.destination.clone(), r.nexthop.clone())).collect();
        if !routed {
            if let Some(ip) = fixed.get(s.id.as_str()) {
                routes.push((format!("{METADATA_IP}/32"), ip.to_string()));
            }
        }
        if !routes.is_empty() {
            if let Some(gw) = &s.gateway_ip {
                routes.push(("0.0.0.0/0".into(), gw.clone()));
            }
            let list: Vec<String> = routes.iter().map(|(d, h)| format!("{d},{h}")).collect();
            opts.push_str(&format!("tag:{tag},option:classless-static-route,{}\n", list.join(",")));
            opts.push_str(&format!("tag:{tag},249,{}\n", list.join(",")));
        }
    }
    // A host entry that went away (a deleted port; its address may come back with another
    // MAC) takes its lease along: dnsmasq would refuse the address to anyone else until the
    // lease ran out. dnsmasq keeps leases in memory, so it restarts on a lease file without it.
    let before = std::fs::read_to_string(d.join("host")).unwrap_or_default();
    let dropped: Vec<&str> = before.lines().filter(|l| !hosts.lines().any(|h| h == *l)).collect();
    let files_changed = write_if_changed(&d.join("host"), &hosts)? | write_if_changed(&d.join("opts"), &opts)?;
    let mut restart = false;
    if !dropped.is_empty() {
        let leases = std::fs::read_to_string(d.join("leases")).unwrap_or_default();
        let kept: String = leases
            .lines()
            .filter(|l| {
                // "<expiry> <mac> <ip> <name> <client id>"
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() < 3
                    || hosts.lines().any(|h| h.starts_with(&format!("{},", f[1])) && h.ends_with(&format!(",{}", f[2])))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        restart = kept != leases;
        if restart {
            // Stopped first: a dnsmasq still running could write its leases over ours.
            halt(&d);
            write_if_changed(&d.join("leases"), &kept)?;
        }
    }
    let mut args = base_args(&d);
    args.extend([
        format!("--dhcp-hostsfile={}", d.join("host").display()),
        format!("--dhcp-optsfile={}", d.join("opts").display()),
        format!("--dhcp-leasefile={}", d.join("leases").display()),
        "--log-dhcp".into(),
        format!("--interface={inner}"),
        "--dhcp-authoritative".into(),
        "--domain=openstacklocal".into(),
    ]);
    args.extend(ranges);
    if !start(ns, &d, &args, restart).await? && files_changed {
        sys::signal_pidfile(&d.join("pid"), "dnsmasq", libc::SIGHUP);
    }
    if !dp.has_proxy(ns) {
        let addr: std::net::SocketAddr = format!("{METADATA_IP}:80").parse().expect("a socket address");
        let task = metadata::serve(dp, ns, addr, metadata::Scope::Network(n.id.clone()))
            .map_err(|e| format!("metadata proxy: {e}"))?;
        dp.set_proxy(ns, task);
    }
    Ok(Some(port.id.clone()))
}

/// One router interface that advertises its IPv6 subnet: the interface, the subnet, its
/// `ipv6_ra_mode`.
pub struct Advertised {
    pub ifname: String,
    pub cidr: String,
    pub mode: String,
    pub mtu: u32,
}

/// Router advertisements from a router's namespace, as Neutron's radvd sends them: a
/// dnsmasq that advertises (no DNS) on each interface of an IPv6 subnet with an
/// `ipv6_ra_mode`: the prefix for SLAAC (`slaac`), with the "other configuration" flag and
/// stateless DHCPv6 answers (`dhcpv6-stateless`); `dhcpv6-stateful` is not advertised
/// (stateful DHCPv6 is not served yet). None left: it stops.
pub async fn ensure_ra(dp: &Dataplane, ns: &str, interfaces: &[Advertised]) -> Result<(), String> {
    let d = dir(dp, ns).join("ra");
    let mut per_interface = Vec::new();
    for a in interfaces {
        let Some((net, len)) = a.cidr.split_once('/') else { continue };
        let kind = match a.mode.as_str() {
            "slaac" => "ra-only",
            "dhcpv6-stateless" => "ra-stateless",
            // Stateful DHCPv6 is not served: advertising the managed flag would leave
            // guests waiting for it.
            _ => continue,
        };
        per_interface.push(format!("--interface={}", a.ifname));
        per_interface.push(format!("--ra-param={},mtu:{},10,600", a.ifname, a.mtu.max(1280)));
        per_interface.push(format!("--dhcp-range={net},{kind},{len}"));
    }
    if per_interface.is_empty() {
        if d.exists() {
            halt(&d);
            let _ = std::fs::remove_dir_all(&d);
        }
        return Ok(());
    }
    std::fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    open_up(&d, &dp.settings.state_dir);
    let mut args = base_args(&d);
    args.push("--enable-ra".into());
    args.extend(per_interface);
    start(ns, &d, &args, false).await.map(|_| ())
}

/// What every dnsmasq of ours is started with: no DNS, no host or resolver files, its pid
/// file and log in `d`, only on the interfaces named.
fn base_args(d: &std::path::Path) -> Vec<String> {
    vec![
        "--no-hosts".to_string(),
        "--no-resolv".into(),
        "--port=0".into(),
        "--conf-file=/dev/null".into(),
        format!("--pid-file={}", d.join("pid").display()),
        format!("--log-facility={}", d.join("log").display()),
        "--bind-interfaces".into(),
        "--except-interface=lo".into(),
    ]
}

/// Starts the dnsmasq of `d` in `ns` with `args`, unless it runs with those already (and
/// no `restart` is asked); whether it was started.
async fn start(ns: &str, d: &std::path::Path, args: &[String], restart: bool) -> Result<bool, String> {
    let cmdline = args.join("\n");
    let running = sys::pid_running(&d.join("pid"), "dnsmasq").is_some();
    if running && !restart && std::fs::read_to_string(d.join("args")).is_ok_and(|a| a == cmdline) {
        return Ok(false);
    }
    if running {
        halt(d);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    sys::run_in(Some(ns), "dnsmasq", &refs, None).await.map_err(|e| e.to_string())?;
    std::fs::write(d.join("args"), &cmdline).map_err(|e| format!("writing {}: {e}", d.display()))?;
    Ok(true)
}

/// Stops the namespace's dnsmasq and removes its files.
pub fn stop(dp: &Dataplane, ns: &str) {
    let d = dir(dp, ns);
    halt(&d.join("ra"));
    halt(&d);
    let _ = std::fs::remove_dir_all(&d);
}

/// Stops the dnsmasq whose files are in `d`, and waits (briefly) for it to be gone.
fn halt(d: &std::path::Path) {
    let pidfile = d.join("pid");
    if let Some(pid) = sys::pid_running(&pidfile, "dnsmasq") {
        sys::signal_pidfile(&pidfile, "dnsmasq", libc::SIGTERM);
        for _ in 0..50 {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Lets others through the directory and its parents up to the state directory (dnsmasq
/// runs as nobody).
fn open_up(d: &std::path::Path, top: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut p = Some(d);
    while let Some(dir) = p.filter(|p| p.starts_with(top)) {
        if let Ok(meta) = std::fs::metadata(dir) {
            let mode = meta.permissions().mode();
            if mode & 0o001 == 0 {
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o005));
            }
        }
        p = dir.parent();
    }
}

fn write_if_changed(path: &std::path::Path, text: &str) -> Result<bool, String> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(true)
}
