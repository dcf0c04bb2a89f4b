//! The data plane applied change by change equals the data plane applied whole: two agents
//! (a network node each, in network namespaces of their own that stand for two hosts) follow
//! the same random sequence of pictures, one applying each change to what it holds
//! (`Doc::apply` and the touched parts only), the other the whole picture every time; after
//! each step the two hosts' firewall chains, ipsets, bridge rules, DHCP host entries and
//! links must be the same. Needs root (namespaces, iptables, ipset, dnsmasq); removes
//! everything it made, also when it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use haneul_agent::netdp::doc::{self, Doc, FixedIp, Network, Picture, Port, Rule, SecurityGroup, Subnet, Touched};
use haneul_agent::netdp::{Dataplane, Settings};
use haneul_core::service_auth::{Credentials, ServiceToken};
use rand::{Rng, SeedableRng};

const HOST: &str = "h1";

/// Removes the namespaces and dnsmasqs of the test, whatever happened.
struct Cleanup {
    prefix: String,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pidfile in walk(&self.dir).into_iter().filter(|p| p.ends_with("pid")) {
            if let Some(pid) = std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "dnsmasq" {
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
            }
        }
        for ns in std::fs::read_dir("/run/netns").into_iter().flatten().flatten() {
            let name = ns.file_name().to_string_lossy().into_owned();
            if name.starts_with(&self.prefix) {
                let _ = std::process::Command::new("ip").args(["netns", "del", &name]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn sh(ns: &str, cmd: &[&str]) -> String {
    let out = std::process::Command::new("ip").args(["netns", "exec", ns]).args(cmd).output().expect("ip netns exec");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a host's data plane is, in a form two hosts can be compared by: haneul's chains
/// (declarations sorted, each chain's rules in order), its ipsets' members, its bridge
/// rules, its DHCP host files, its bridges and taps.
fn host_state(ns: &str, prefix: &str, state_dir: &Path) -> BTreeMap<String, String> {
    let mut s = BTreeMap::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        let saved = sh(ns, &[tool, "-t", "filter"]);
        let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in saved.lines() {
            if let Some(decl) = line.strip_prefix(':').filter(|l| l.starts_with("haneul-")) {
                chains.entry(decl.split_whitespace().next().unwrap_or_default().to_string()).or_default();
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let chain = rule.split_whitespace().next().unwrap_or_default().to_string();
                if chain.starts_with("haneul-") || rule.contains("haneul-fw") {
                    chains.entry(chain).or_default().push(line.to_string());
                }
            }
        }
        s.insert(tool.to_string(), format!("{chains:#?}"));
    }
    // (A set's hash seed differs from host to host.)
    let mut sets: Vec<String> =
        sh(ns, &["ipset", "save"]).lines().map(|l| l.split(" initval ").next().unwrap_or(l).to_owned()).collect();
    sets.sort();
    s.insert("ipset".into(), sets.join("\n"));
    s.insert("nft".into(), sh(ns, &["nft", "list", "table", "bridge", "haneul"]));
    let links = sh(ns, &["ip", "-o", "link", "show"]);
    let mut names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .filter(|n| n.starts_with("brq") || n.starts_with("tap"))
        .collect();
    names.sort();
    s.insert("links".into(), names.join(" "));
    for f in walk(state_dir) {
        let rel = f.strip_prefix(state_dir).unwrap().to_string_lossy().replacen(prefix, "", 1);
        if rel.contains("/hosts/") {
            s.insert(rel, std::fs::read_to_string(&f).unwrap_or_default());
        }
    }
    s
}

fn id(kind: u32, i: u32) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

/// A random picture of a network node: two DHCP networks with their DHCP ports, guests'
/// ports here and on another host in random groups, rules with and without remote groups.
fn random_picture(rng: &mut rand::rngs::StdRng, version: u32) -> Picture {
    let mut p = Picture { schema: doc::SCHEMA, version: version.to_string(), ..Default::default() };
    let groups: Vec<String> = (0..3).map(|g| id(3, g)).collect();
    for k in 0..2 {
        let net = id(1, k);
        p.networks.push(Network {
            id: net.clone(),
            admin_state_up: true,
            mtu: 1450,
            network_type: "vxlan".into(),
            segmentation_id: Some(100 + k),
            ..Default::default()
        });
        p.subnets.push(Subnet {
            id: id(2, k),
            network_id: net.clone(),
            ip_version: 4,
            cidr: format!("10.{k}.0.0/24"),
            gateway_ip: Some(format!("10.{k}.0.1")),
            enable_dhcp: true,
            ..Default::default()
        });
        p.ports.push(Port {
            id: id(9, k),
            network_id: net.clone(),
            admin_state_up: true,
            mac_address: format!("fa:16:3e:00:09:0{k}"),
            fixed_ips: vec![FixedIp { subnet_id: id(2, k), ip_address: format!("10.{k}.0.2") }],
            device_id: format!("dhcp-{HOST}-{net}"),
            device_owner: doc::OWNER_DHCP.into(),
            host_id: HOST.into(),
            status: "ACTIVE".into(),
            ..Default::default()
        });
    }
    for i in 0..10 {
        if rng.gen_bool(0.4) {
            continue;
        }
        let k = rng.gen_range(0..2u32);
        let mut fixed_ips = vec![FixedIp { subnet_id: id(2, k), ip_address: format!("10.{k}.0.{}", 10 + i) }];
        if rng.gen_bool(0.2) {
            fixed_ips[0].ip_address = format!("10.{k}.0.{}", 100 + i);
        }
        p.ports.push(Port {
            id: id(5, i),
            network_id: id(1, k),
            admin_state_up: true,
            mac_address: format!("fa:16:3e:00:05:{i:02x}"),
            fixed_ips,
            device_id: id(6, i),
            device_owner: "compute:nova".into(),
            security_groups: groups.iter().filter(|_| rng.gen_bool(0.4)).cloned().collect(),
            port_security_enabled: rng.gen_bool(0.85),
            host_id: if rng.gen_bool(0.6) { HOST.into() } else { "h2".into() },
            status: "ACTIVE".into(),
            ..Default::default()
        });
    }
    p.ports.sort_by(|a, b| a.id.cmp(&b.id));
    p.security_groups = groups.iter().map(|g| SecurityGroup { id: g.clone(), stateful: true }).collect();
    for r in 0..6 {
        if rng.gen_bool(0.4) {
            continue;
        }
        p.rules.push(Rule {
            id: id(4, r),
            security_group_id: groups[rng.gen_range(0..3)].clone(),
            direction: if rng.gen_bool(0.7) { "ingress" } else { "egress" }.into(),
            ethertype: "IPv4".into(),
            protocol: Some("tcp".into()),
            port_range_min: Some(20 + r as i64),
            port_range_max: Some(20 + r as i64),
            remote_group_id: rng.gen_bool(0.5).then(|| groups[rng.gen_range(0..3)].clone()),
            ..Default::default()
        });
    }
    p
}

/// The change from `a` to `b` as the network service sends it.
fn change(a: &Picture, b: &Picture) -> Picture {
    fn diff<T: doc::Keyed + Clone + PartialEq>(a: &[T], b: &[T], gone: &mut Vec<String>) -> Vec<T> {
        gone.extend(a.iter().filter(|x| !b.iter().any(|y| y.key() == x.key())).map(|x| x.key().to_string()));
        b.iter().filter(|y| !a.contains(y)).cloned().collect()
    }
    let mut c = Picture {
        schema: doc::SCHEMA,
        base: Some(a.version.clone()),
        version: b.version.clone(),
        ..Default::default()
    };
    c.networks = diff(&a.networks, &b.networks, &mut c.removed.networks);
    c.subnets = diff(&a.subnets, &b.subnets, &mut c.removed.subnets);
    c.ports = diff(&a.ports, &b.ports, &mut c.removed.ports);
    c.security_groups = diff(&a.security_groups, &b.security_groups, &mut c.removed.security_groups);
    c.rules = diff(&a.rules, &b.rules, &mut c.removed.rules);
    c
}

fn agent(name: &str, prefix: &str, dir: &Path) -> Arc<Dataplane> {
    let service = ServiceToken::new(Credentials {
        auth_url: "http://127.0.0.1:9/v3".into(),
        username: "none".into(),
        password: "none".into(),
        project_name: "none".into(),
    });
    let settings = Settings {
        host: HOST.into(),
        host_ns: Some(name.into()),
        prefix: prefix.into(),
        network_node: true,
        mappings: BTreeMap::new(),
        local_ip: None,
        state_dir: dir.to_path_buf(),
        metadata_url: "http://127.0.0.1:9".into(),
        metadata_secret: b"s".to_vec(),
    };
    Dataplane::new(settings, service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_changes_equals_applying_whole_pictures_on_a_host() {
    assert!(unsafe { libc::geteuid() } == 0, "this test makes network namespaces: run it as root");
    let prefix = format!("hdt{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("haneul-deltas-{}", std::process::id()));
    let _cleanup = Cleanup { prefix: prefix.clone(), dir: dir.clone() };
    let (ns_a, ns_b) = (format!("{prefix}a"), format!("{prefix}b"));
    let (pre_a, pre_b) = (format!("{prefix}a-"), format!("{prefix}b-"));
    let (dir_a, dir_b) = (dir.join("a"), dir.join("b"));
    for (ns, d) in [(&ns_a, &dir_a), (&ns_b, &dir_b)] {
        let ok = std::process::Command::new("ip").args(["netns", "add", ns]).status().unwrap().success();
        assert!(ok, "ip netns add {ns}");
        sh(ns, &["ip", "link", "set", "lo", "up"]);
        std::fs::create_dir_all(d).unwrap();
    }
    let by_change = agent(&ns_a, &pre_a, &dir_a);
    let whole = agent(&ns_b, &pre_b, &dir_b);

    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let mut held = Doc::default();
    let mut before = Picture { schema: doc::SCHEMA, ..Default::default() };
    let (mut touched_steps, mut sets_seen) = (0, 0);
    for step in 1..=30u32 {
        let after = random_picture(&mut rng, step);
        let c = if step == 1 { after.clone() } else { change(&before, &after) };
        let touched = held.apply(&c);
        if !touched.whole {
            touched_steps += 1;
        }
        by_change.apply(&held, &touched).await;
        whole.apply(&Doc::from_picture(&after), &Touched::whole()).await;
        let (a, b) = (host_state(&ns_a, &pre_a, &dir_a), host_state(&ns_b, &pre_b, &dir_b));
        for key in a.keys().chain(b.keys()) {
            assert_eq!(a.get(key), b.get(key), "step {step}: {key} differs (by change, whole)");
        }
        if a["iptables-save"].contains("--match-set") && !a["ipset"].is_empty() {
            sets_seen += 1;
        }
        before = after;
    }
    assert!(touched_steps >= 25, "changes applied as changes: {touched_steps}");
    assert!(sets_seen >= 5, "steps with remote-group sets in use: {sets_seen}");
    // Both hosts held guests' chains, sets and host entries along the way.
    let a = host_state(&ns_a, &pre_a, &dir_a);
    assert!(a.keys().any(|k| k.contains("/hosts/")), "no DHCP host entries: {a:?}");
    // Everything goes with an empty picture.
    let empty = Picture { schema: doc::SCHEMA, version: "end".into(), ..Default::default() };
    held.apply(&change(&before, &empty));
    by_change.apply(&held, &Touched::whole()).await;
    let a = host_state(&ns_a, &pre_a, &dir_a);
    assert_eq!(a.get("ipset").map(String::as_str), Some(""), "sets left: {a:?}");
    assert!(!a.keys().any(|k| k.contains("/hosts/")), "host entries left: {a:?}");
}
