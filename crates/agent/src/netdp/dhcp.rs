//! DHCP for a network: namespace `qdhcp-<network>` with the network's DHCP port in it and
//! dnsmasq serving fixed addresses only (MAC → address for every port, one file per port in
//! a hosts directory: a new file is read at once (inotify), a changed or removed one at a
//! SIGHUP, so a port's change rewrites its own file and nothing else): DHCPv4, and DHCPv6 on IPv6 subnets
//! with the address mode `dhcpv6-stateful` (addresses) or `dhcpv6-stateless` (DNS servers
//! only); the router advertisements that send guests to it come from the router's
//! namespace ([`ensure_ra`]). Networks without a router also get
//! the metadata proxy at 169.254.169.254 in this namespace, and a classless static route to
//! it in their leases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::doc::{self, Doc, Network, Port, Subnet, Touched};
use super::{metadata, sys, Dataplane, EnsureError};
use haneul_core::error::FileError;

pub const METADATA_IP: &str = "169.254.169.254";

/// The DHCP port's `device_id` (Neutron: `dhcp<host id>-<network>`).
pub fn device_id(host: &str, network_id: &str) -> String {
    format!("dhcp-{host}-{network_id}")
}

/// Where the namespace's dnsmasq keeps its files (pid, hosts, options, leases, log).
pub fn dir(dp: &Dataplane, ns: &str) -> PathBuf {
    dp.settings.state_dir.join(ns)
}

/// Makes network `n`'s DHCP server what the picture says, redoing what `touched` names (only
/// the host entries of its ports when nothing else of the network changed); the DHCP port's
/// id once it runs.
pub async fn ensure(
    dp: &Dataplane,
    doc: &Doc,
    n: &Network,
    ns: &str,
    touched: &Touched,
) -> Result<Option<String>, EnsureError> {
    let served: Vec<&Subnet> = doc.subnets_of(&n.id).filter(|s| s.dhcp_served()).collect();
    let device = device_id(&dp.settings.host, &n.id);
    let dhcp_port = doc.ports_of_device(&device).find(|p| p.device_owner == doc::OWNER_DHCP && p.network_id == n.id);
    let d = dir(dp, ns);
    if let Some(port) = dhcp_port.filter(|_| !touched.settings(&n.id)) {
        if sys::pid_running(&d.join("pid"), "dnsmasq").is_some() {
            let subnets: Vec<&Subnet> =
                served.into_iter().filter(|s| port.fixed_ips.iter().any(|f| f.subnet_id == s.id)).collect();
            let ports: Vec<&String> = touched.ports.iter().collect();
            sync_hosts(&d, doc, &n.id, &subnets, &ports, ns).await?;
            return Ok(Some(port.id.clone()));
        }
    }
    let Some(port) = dhcp_port else {
        dp.ask_dhcp_port(n, &served).await?;
        return Ok(None);
    };
    dp.dhcp_port_seen(&n.id);
    let fixed: BTreeMap<&str, &str> =
        port.fixed_ips.iter().map(|f| (f.subnet_id.as_str(), f.ip_address.as_str())).collect();
    // A subnet added since the port was made: the port is given an address on it (as
    // Neutron's DHCP agent does); dnsmasq answers on a subnet once its interface has one.
    let missing: Vec<&Subnet> = served.iter().copied().filter(|s| !fixed.contains_key(s.id.as_str())).collect();
    if missing.is_empty() {
        dp.dhcp_port_complete(&port.id);
    } else if let Err(e) = dp.widen_dhcp_port(doc, port, &missing).await {
        // The other subnets are served meanwhile; the next pass asks again.
        tracing::warn!(network = %n.id, error = %haneul_core::service::chain(&e), "no DHCP address on a new subnet yet");
    }
    let subnets: Vec<&Subnet> = served.into_iter().filter(|s| fixed.contains_key(s.id.as_str())).collect();
    sys::add_namespace(ns).await?;
    let inner = dp.plumb(doc, ns, port, "ns-", &[format!("{METADATA_IP}/32")]).await?;

    std::fs::create_dir_all(&d).map_err(FileError::at("creating", &d))?;
    // dnsmasq reads its files as nobody.
    open_up(&d, &dp.settings.state_dir);
    let routed = doc.routed(&n.id);
    let mut opts = String::new();
    let mut ranges = Vec::new();
    for (i, s) in subnets.iter().enumerate() {
        let tag = format!("subnet{i}");
        let Some((addr, len)) = s.cidr.split_once('/') else { continue };
        let Ok(len) = len.parse::<u32>() else { continue };
        if s.ip_version == 6 {
            if len < 64 {
                // dnsmasq serves no DHCPv6 on a prefix shorter than /64 (nor does Neutron).
                tracing::warn!(subnet = %s.id, "no DHCPv6 on {}: prefixes shorter than /64 are not served", s.cidr);
                continue;
            }
            // Fixed addresses from the hosts file (stateful), or only the settings below
            // (stateless); the router advertises the subnet and says which.
            ranges.push(format!("--dhcp-range=set:{tag},{addr},static,{len},86400s"));
            let dns: Vec<String> =
                s.dns_nameservers.iter().filter(|d| d.contains(':')).map(|d| format!("[{d}]")).collect();
            if !dns.is_empty() {
                opts.push_str(&format!("tag:{tag},option6:dns-server,{}\n", dns.join(",")));
            }
            continue;
        }
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
    let opts_changed = write_if_changed(&d.join("opts"), &opts)?;
    // The single hosts file of earlier releases: its entries count as the files' before.
    let old_file = d.join("host");
    let before = std::fs::read_to_string(&old_file).unwrap_or_default();
    let _ = std::fs::remove_file(&old_file);
    let hosts = d.join("hosts");
    std::fs::create_dir_all(&hosts).map_err(FileError::at("creating", &hosts))?;
    open_up(&hosts, &dp.settings.state_dir);
    let mut synced = write_hosts(&d, doc, &n.id, &subnets, None)?;
    synced.dropped.push_str(&before);
    let restart = forget_leases(&d, &synced)?;
    let mut args = base_args(&d);
    args.extend([
        format!("--dhcp-hostsdir={}", d.join("hosts").display()),
        format!("--dhcp-optsfile={}", d.join("opts").display()),
        format!("--dhcp-leasefile={}", d.join("leases").display()),
        "--log-dhcp".into(),
        format!("--interface={inner}"),
        "--dhcp-authoritative".into(),
        "--domain=openstacklocal".into(),
    ]);
    args.extend(ranges);
    if !start(ns, &d, &args, restart).await? && (opts_changed || synced.rewritten) {
        sys::signal_pidfile(&d.join("pid"), "dnsmasq", libc::SIGHUP);
    }
    if !dp.has_proxy(ns) {
        let addr: std::net::SocketAddr = format!("{METADATA_IP}:80").parse().expect("a socket address");
        let task = metadata::serve(dp, ns, addr, metadata::Scope::Network(n.id.clone()))
            .map_err(EnsureError::MetadataProxy)?;
        dp.set_proxy(ns, task);
    }
    Ok(Some(port.id.clone()))
}

/// A port's lines for dnsmasq's hosts directory: one per port with addresses DHCP hands
/// out on the network, `<mac>,<name>,<IPv4 address>,[<IPv6 address>]...`, and one more for
/// each further IPv4 address (dnsmasq picks the line whose address is in the subnet asked
/// about); empty when DHCP hands it nothing.
fn host_lines(p: &Port, subnets: &[&Subnet]) -> String {
    let mut hosts = String::new();
    let addrs: Vec<&str> = p
        .fixed_ips
        .iter()
        .filter(|f| subnets.iter().any(|s| s.id == f.subnet_id && s.dhcp_assigns()))
        .map(|f| f.ip_address.as_str())
        .collect();
    let (v4, v6): (Vec<&str>, Vec<&str>) = addrs.iter().partition(|a| !a.contains(':'));
    let Some(first) = v4.first().or(v6.first()) else { return hosts };
    let name = format!("host-{}", first.replace(['.', ':'], "-"));
    let mut line = format!("{},{name}.openstacklocal", p.mac_address);
    if let Some(a) = v4.first() {
        line.push_str(&format!(",{a}"));
    }
    for a in &v6 {
        line.push_str(&format!(",[{a}]"));
    }
    hosts.push_str(&line);
    hosts.push('\n');
    for a in v4.iter().skip(1) {
        hosts.push_str(&format!("{},host-{}.openstacklocal,{a}\n", p.mac_address, a.replace('.', "-")));
    }
    hosts
}

/// What writing the hosts directory did: entries that went (lines of files removed or
/// rewritten), the lines of the files written, and whether a file dnsmasq had read was
/// rewritten or removed (it needs a SIGHUP; a new file it reads by itself).
#[derive(Default)]
struct Synced {
    dropped: String,
    written: String,
    rewritten: bool,
}

/// Brings the hosts directory's files to the picture: those of the ports in `only`, or
/// (none) of every port of the network, removing the files of others. A file is written
/// under a dot name and renamed: dnsmasq skips dot files and reads the renamed one whole.
fn write_hosts(
    d: &Path,
    doc: &Doc,
    network_id: &str,
    subnets: &[&Subnet],
    only: Option<&[&String]>,
) -> Result<Synced, EnsureError> {
    let dir = d.join("hosts");
    let want_of = |p: &Port| Some(host_lines(p, subnets)).filter(|l| !l.is_empty());
    let mut want: BTreeMap<String, Option<String>> = BTreeMap::new();
    match only {
        Some(ids) => {
            for id in ids {
                let line = doc.ports.get(id.as_str()).filter(|p| p.network_id == network_id).and_then(want_of);
                want.insert((*id).clone(), line);
            }
        }
        None => {
            for p in doc.ports_of(network_id) {
                want.insert(p.id.clone(), want_of(p));
            }
            let names = std::fs::read_dir(&dir).map_err(FileError::at("listing", &dir))?;
            for e in names.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                want.entry(name).or_insert(None);
            }
        }
    }
    let mut s = Synced::default();
    for (id, line) in want {
        if id.starts_with('.') || id.contains('/') {
            continue;
        }
        let path = dir.join(&id);
        let had = std::fs::read_to_string(&path).ok();
        if had == line {
            continue;
        }
        if let Some(old) = &had {
            let keep = line.as_deref().unwrap_or_default();
            s.dropped.extend(old.lines().filter(|l| !keep.lines().any(|k| k == *l)).map(|l| format!("{l}\n")));
            s.rewritten = true;
        }
        match line {
            Some(text) => {
                write_via(&dir.join(format!(".{id}")), &path, &text)?;
                s.written.push_str(&text);
            }
            None => std::fs::remove_file(&path).map_err(FileError::at("removing", &path))?,
        }
    }
    Ok(s)
}

/// The host entries of the ports in `only` on a running dnsmasq: their files, the leases of
/// entries that went, and a SIGHUP (or a restart, when leases went) for what it must re-read.
async fn sync_hosts(
    d: &Path,
    doc: &Doc,
    network_id: &str,
    subnets: &[&Subnet],
    only: &[&String],
    ns: &str,
) -> Result<(), EnsureError> {
    let synced = write_hosts(d, doc, network_id, subnets, Some(only))?;
    if forget_leases(d, &synced)? {
        let args = std::fs::read_to_string(d.join("args")).unwrap_or_default();
        let args: Vec<String> = args.lines().map(str::to_owned).collect();
        start(ns, d, &args, true).await?;
    } else if synced.rewritten {
        sys::signal_pidfile(&d.join("pid"), "dnsmasq", libc::SIGHUP);
    }
    Ok(())
}

/// A host entry that went away (a deleted port; its address may come back with another
/// MAC) takes its lease along: dnsmasq would refuse the address to anyone else until the
/// lease ran out. dnsmasq keeps leases in memory, so it is stopped and the lease file
/// written without them; whether it must be started again.
fn forget_leases(d: &Path, synced: &Synced) -> Result<bool, EnsureError> {
    if synced.dropped.is_empty() {
        return Ok(false);
    }
    let leases = std::fs::read_to_string(d.join("leases")).unwrap_or_default();
    let kept: String = leases
        .lines()
        .filter(|l| !lease_dropped(l, &synced.dropped, &synced.written))
        .map(|l| format!("{l}\n"))
        .collect();
    if kept == leases {
        return Ok(false);
    }
    // Stopped first: a dnsmasq still running could write its leases over ours.
    halt(d);
    write_if_changed(&d.join("leases"), &kept)?;
    Ok(true)
}

/// Whether a line of dnsmasq's lease file goes with the host entries `dropped`: an IPv4
/// lease (`<expiry> <mac> <ip> <name> <client id>`) whose MAC and address a dropped entry
/// had and no entry written has; an IPv6 one (`<expiry> <iaid> <ip> <name> <duid>`, no MAC
/// in it) whose address a dropped entry had, unless an entry written gives it to the same
/// MAC; other lines (the server's DUID) stay.
fn lease_dropped(lease: &str, dropped: &str, written: &str) -> bool {
    let f: Vec<&str> = lease.split_whitespace().collect();
    if f.len() < 3 {
        return false;
    }
    if f[2].contains(':') {
        let v6 = format!("[{}]", f[2]);
        return match v6_mac(dropped, &v6) {
            Some(old) => v6_mac(written, &v6) != Some(old),
            None => false,
        };
    }
    let has = |text: &str| {
        text.lines().any(|h| {
            let fields: Vec<&str> = h.split(',').collect();
            fields.first() == Some(&f[1]) && fields.contains(&f[2])
        })
    };
    has(dropped) && !has(written)
}

/// The MAC of the hosts file line that holds `v6` (`[address]`).
fn v6_mac<'a>(hosts: &'a str, v6: &str) -> Option<&'a str> {
    hosts.lines().find(|h| h.split(',').any(|f| f == v6)).and_then(|h| h.split(',').next())
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
/// dnsmasq that advertises (no DNS, no DHCP: it ignores every DHCPv6 request, the
/// network's own DHCP server answers them) on each interface of an IPv6 subnet with an
/// `ipv6_ra_mode`: the prefix for SLAAC (`slaac`), SLAAC with the "other configuration" flag
/// (`dhcpv6-stateless`), or the "managed" flag and the prefix on-link only
/// (`dhcpv6-stateful`). None left: it stops.
pub async fn ensure_ra(dp: &Dataplane, ns: &str, interfaces: &[Advertised]) -> Result<(), EnsureError> {
    let d = dir(dp, ns).join("ra");
    let mut per_interface = Vec::new();
    for a in interfaces {
        let Some((net, len)) = a.cidr.split_once('/') else { continue };
        let kind = match a.mode.as_str() {
            "slaac" => "ra-only",
            "dhcpv6-stateless" => "ra-stateless",
            "dhcpv6-stateful" => "static",
            _ => continue,
        };
        // SLAAC needs a /64; dnsmasq refuses DHCPv6 ranges shorter than that.
        let fits = len.parse::<u32>().is_ok_and(|l| if kind == "static" { l >= 64 } else { l == 64 });
        if !fits {
            tracing::warn!(interface = %a.ifname, "not advertising {} in mode {}: the prefix does not fit it", a.cidr, a.mode);
            continue;
        }
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
    std::fs::create_dir_all(&d).map_err(FileError::at("creating", &d))?;
    open_up(&d, &dp.settings.state_dir);
    let mut args = base_args(&d);
    args.push("--enable-ra".into());
    // No DHCPv6 answers from here (no host is known to this dnsmasq).
    args.push("--dhcp-ignore=tag:!known".into());
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
async fn start(ns: &str, d: &std::path::Path, args: &[String], restart: bool) -> Result<bool, EnsureError> {
    let cmdline = args.join("\n");
    let running = sys::pid_running(&d.join("pid"), "dnsmasq").is_some();
    if running && !restart && std::fs::read_to_string(d.join("args")).is_ok_and(|a| a == cmdline) {
        return Ok(false);
    }
    if running {
        halt(d);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    sys::run_in(Some(ns), "dnsmasq", &refs, None).await?;
    std::fs::write(d.join("args"), &cmdline).map_err(FileError::at("writing", &d.join("args")))?;
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

fn write_if_changed(path: &Path, text: &str) -> Result<bool, EnsureError> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(false);
    }
    write_via(&path.with_extension("tmp"), path, text)?;
    Ok(true)
}

/// Writes `text` to `path` whole: into `tmp` first, renamed over `path`.
fn write_via(tmp: &Path, path: &Path, text: &str) -> Result<(), EnsureError> {
    std::fs::write(tmp, text).and_then(|_| std::fs::rename(tmp, path)).map_err(FileError::at("writing", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Doc {
        use crate::netdp::doc::{FixedIp, Port};
        let subnet = |id: &str, v: u8, cidr: &str, mode: Option<&str>| Subnet {
            id: id.into(),
            network_id: "n".into(),
            ip_version: v,
            cidr: cidr.into(),
            enable_dhcp: true,
            ipv6_ra_mode: mode.map(Into::into),
            ipv6_address_mode: mode.map(Into::into),
            ..Default::default()
        };
        let port = |id: &str, mac: &str, ips: &[(&str, &str)]| Port {
            id: id.into(),
            network_id: "n".into(),
            mac_address: mac.into(),
            fixed_ips: ips.iter().map(|(s, ip)| FixedIp { subnet_id: (*s).into(), ip_address: (*ip).into() }).collect(),
            ..Default::default()
        };
        Doc::from_picture(&crate::netdp::doc::Picture {
            subnets: vec![
                subnet("v4", 4, "10.0.0.0/24", None),
                subnet("v4b", 4, "10.0.1.0/24", None),
                subnet("full", 6, "2001:db8:1::/64", Some("dhcpv6-stateful")),
                subnet("less", 6, "2001:db8:2::/64", Some("dhcpv6-stateless")),
                subnet("slaac", 6, "2001:db8:3::/64", Some("slaac")),
            ],
            ports: vec![
                port(
                    "p1",
                    "fa:16:3e:00:00:01",
                    &[
                        ("v4", "10.0.0.5"),
                        ("full", "2001:db8:1::5"),
                        ("less", "2001:db8:2::f816:3eff:fe00:1"),
                        ("slaac", "2001:db8:3::f816:3eff:fe00:1"),
                        ("v4b", "10.0.1.5"),
                    ],
                ),
                port("p2", "fa:16:3e:00:00:02", &[("full", "2001:db8:1::6")]),
                port("p3", "fa:16:3e:00:00:03", &[("slaac", "2001:db8:3::f816:3eff:fe00:3")]),
            ],
            ..Default::default()
        })
    }

    #[test]
    fn dhcp_serves_ipv4_and_dhcpv6_subnets_and_hands_out_only_assigned_addresses() {
        let d = doc();
        let served: Vec<&Subnet> = d.subnets_of("n").filter(|s| s.dhcp_served()).collect();
        assert_eq!(served.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["full", "less", "v4", "v4b"]);
        let lines: String = d.ports_of("n").map(|p| host_lines(p, &served)).collect();
        assert_eq!(
            lines,
            "fa:16:3e:00:00:01,host-10-0-0-5.openstacklocal,10.0.0.5,[2001:db8:1::5]\n\
             fa:16:3e:00:00:01,host-10-0-1-5.openstacklocal,10.0.1.5\n\
             fa:16:3e:00:00:02,host-2001-db8-1--6.openstacklocal,[2001:db8:1::6]\n"
        );
        assert_eq!(host_lines(d.ports.get("p3").unwrap(), &served), "", "SLAAC only: no entry");
    }

    #[test]
    fn leases_go_with_the_entries_that_went() {
        let written = "fa:16:3e:00:00:01,h.openstacklocal,10.0.0.5,[2001:db8:1::5]\n";
        let dropped = "fa:16:3e:00:00:02,g,10.0.0.6,[2001:db8:1::6]\n";
        assert!(lease_dropped("1700000000 fa:16:3e:00:00:02 10.0.0.6 g *", dropped, written));
        assert!(!lease_dropped("1700000000 fa:16:3e:00:00:01 10.0.0.5 h *", dropped, written));
        assert!(!lease_dropped("1700000000 fa:16:3e:00:00:09 10.0.0.6 h *", dropped, written), "another MAC's");
        assert!(!lease_dropped("1700000000 1040187408 2001:db8:1::5 h 00:01:00:01", dropped, written));
        assert!(lease_dropped("1700000000 1040187408 2001:db8:1::6 g 00:01:00:01", dropped, written));
        // The entry was rewritten with the same MAC and address: the lease stays.
        assert!(!lease_dropped("1700000000 fa:16:3e:00:00:02 10.0.0.6 g *", dropped, dropped));
        // The address went from one port to another: the old lease goes.
        let moved = "fa:16:3e:00:00:01,h.openstacklocal,10.0.0.5,[2001:db8:1::6]\n";
        assert!(lease_dropped("1700000000 1040187408 2001:db8:1::6 g 00:01:00:01", dropped, moved));
        assert!(!lease_dropped("duid 00:01:00:01:32:9b", dropped, written));
    }
}
