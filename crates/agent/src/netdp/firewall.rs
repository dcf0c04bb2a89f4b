//! Security groups: stateful iptables chains on the bridged traffic of each guest port
//! (br_netfilter makes bridged frames pass iptables' FORWARD; physdev names the tap;
//! conntrack keeps the state), as Neutron's iptables firewall driver does:
//!
//! - `FORWARD -i brq+ -m physdev --physdev-is-bridged -j haneul-fw`; `haneul-fw` sends what a
//!   guest sends through `haneul-o<port>` and what it receives through `haneul-i<port>`, then
//!   accepts what they let through.
//! - `haneul-o<port>`: DHCP requests, then `haneul-s<port>` (the port's own MAC and
//!   addresses, and its allowed address pairs, else drop: no spoofing), no DHCP server, the
//!   established, the egress rules, drop.
//! - `haneul-i<port>`: the established, DHCP answers, the ingress rules, drop.
//!
//! ARP and MAC anti-spoofing are bridge rules in nftables ([`arp_ruleset`]).
//!
//! The same chains guard IPv6 in ip6tables, with what IPv6 needs besides: a guest may send
//! neighbour discovery and router solicitations (also from `::` while it checks for a
//! duplicate address) and DHCPv6 requests, from its link-local address (EUI-64 of its MAC)
//! and its own addresses only, and never router advertisements or DHCPv6 answers; it
//! receives neighbour discovery, router advertisements and DHCPv6 answers.
//!
//! A rule naming a remote group matches an ipset of the group's addresses (`hn4-`/`hn6-`
//! and 24 characters of the group's id), as Neutron's ipset mode does: a port joining or
//! leaving a group changes the set, not the chains of every port guarded by it.
//!
//! One `iptables-restore --noflush` (and one `ip6tables-restore`) writes the chains of the
//! ports a change concerns (all of them for a whole picture) and the dispatch chain; chains
//! of ports that went away are removed after, and sets no rule uses any more last.

use std::collections::BTreeSet;

use super::doc::{Doc, Port, Rule, Touched};
use super::{doc, sys, Dataplane};

const FW: &str = "haneul-fw";
const JUMP: &[&str] = &["FORWARD", "-i", "brq+", "-m", "physdev", "--physdev-is-bridged", "-j", FW];

fn chain(kind: char, port_id: &str) -> String {
    format!("haneul-{kind}{}", &port_id[..port_id.len().min(10)])
}

/// Which of the two tables: iptables for IPv4, ip6tables for IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn ethertype(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
    fn has(self, ip: &str) -> bool {
        ip.contains(':') == (self == Family::V6)
    }
    fn host(self) -> &'static str {
        match self {
            Family::V4 => "/32",
            Family::V6 => "/128",
        }
    }
    /// DHCP's client and server ports.
    fn dhcp_ports(self) -> (u16, u16) {
        match self {
            Family::V4 => (68, 67),
            Family::V6 => (546, 547),
        }
    }
    fn tools(self) -> (&'static str, &'static str) {
        match self {
            Family::V4 => ("iptables", "iptables-restore"),
            Family::V6 => ("ip6tables", "ip6tables-restore"),
        }
    }
    fn set_prefix(self) -> &'static str {
        match self {
            Family::V4 => "hn4-",
            Family::V6 => "hn6-",
        }
    }
    fn set_family(self) -> &'static str {
        match self {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        }
    }
}

const FAMILIES: [Family; 2] = [Family::V4, Family::V6];

/// The ipset of group `group`'s addresses of `family`: the prefix and 24 hex digits of the
/// id's SHA-256 (31 characters at most, with room for the `-n` of the set a refill is built
/// in; any id, not only a UUID, gets a name of its own).
pub fn set_name(group: &str, family: Family) -> String {
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(group.as_bytes()).iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("{}{hex}", family.set_prefix())
}

/// Group `group`'s sets, one per family.
fn set_names(group: &str) -> [String; 2] {
    FAMILIES.map(|f| set_name(group, f))
}

/// The groups that rules guarding `ports` name as remote.
pub fn remote_groups(doc: &Doc, ports: &[&Port]) -> BTreeSet<String> {
    let groups: BTreeSet<&String> =
        ports.iter().filter(|p| p.port_security_enabled).flat_map(|p| &p.security_groups).collect();
    doc.rules
        .values()
        .filter(|r| groups.contains(&r.security_group_id))
        .filter_map(|r| r.remote_group_id.clone())
        .collect()
}

/// `ipset restore` input that makes each of `groups`' sets hold exactly its members'
/// addresses: filled anew under another name and swapped in, so a rule never sees a
/// half-filled set. A /0 member (an allowed address pair of any address) is both halves.
pub fn sets_text(doc: &Doc, groups: &BTreeSet<String>) -> String {
    let mut text = String::new();
    for g in groups {
        for family in FAMILIES {
            let name = set_name(g, family);
            let kind = format!("hash:net family {}", family.set_family());
            text.push_str(&format!("create {name} {kind} -exist\ncreate {name}-n {kind} -exist\nflush {name}-n\n"));
            for ip in members(doc, g, family) {
                let halves: Vec<String> = match (ip.as_str(), family) {
                    ("0.0.0.0/0", _) => vec!["0.0.0.0/1".into(), "128.0.0.0/1".into()],
                    ("::/0", _) => vec!["::/1".into(), "8000::/1".into()],
                    _ => vec![ip],
                };
                for h in halves {
                    text.push_str(&format!("add {name}-n {h} -exist\n"));
                }
            }
            text.push_str(&format!("swap {name}-n {name}\ndestroy {name}-n\n"));
        }
    }
    text
}

/// The link-local address a guest makes from its MAC (EUI-64).
pub fn link_local(mac: &str) -> Option<String> {
    let b: Vec<u8> = mac.split(':').map(|x| u8::from_str_radix(x, 16)).collect::<Result<_, _>>().ok()?;
    let [a, b1, c, d, e, f] = <[u8; 6]>::try_from(b).ok()?;
    let ip = std::net::Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([a ^ 0x02, b1]),
        u16::from_be_bytes([c, 0xff]),
        u16::from_be_bytes([0xfe, d]),
        u16::from_be_bytes([e, f]),
    );
    Some(ip.to_string())
}

/// The addresses of `family` of the ports in `group`.
fn members(doc: &Doc, group: &str, family: Family) -> BTreeSet<String> {
    doc.members(group)
        .flat_map(|p| {
            p.fixed_ips
                .iter()
                .map(|f| f.ip_address.clone())
                .chain(p.allowed_address_pairs.iter().map(|a| a.ip_address.clone()))
        })
        .filter(|ip| family.has(ip))
        .collect()
}

/// A rule's matches for the table of `family` (one line per remote address), none when
/// the rule is for the other family.
fn matches(r: &Rule, family: Family) -> Vec<String> {
    if r.ethertype != family.ethertype() {
        return Vec::new();
    }
    let mut m = String::new();
    let proto = r.protocol.as_deref().map(str::to_ascii_lowercase);
    let proto = match (proto.as_deref(), family) {
        (None | Some("any") | Some(""), _) => None,
        (Some("6"), _) => Some("tcp".to_string()),
        (Some("17"), _) => Some("udp".to_string()),
        (Some("132"), _) => Some("sctp".to_string()),
        (Some("icmp" | "1"), Family::V4) => Some("icmp".to_string()),
        // Neutron takes `icmp` in an IPv6 rule as ICMPv6.
        (Some("icmp" | "ipv6-icmp" | "icmpv6" | "58"), Family::V6) => Some("ipv6-icmp".to_string()),
        (Some("ipv6-icmp" | "icmpv6" | "58"), Family::V4) => return Vec::new(),
        (Some(p), _) => Some(p.to_string()),
    };
    if let Some(p) = &proto {
        m.push_str(&format!(" -p {p}"));
        match p.as_str() {
            "tcp" | "udp" | "sctp" | "dccp" | "udplite" => {
                if let Some(min) = r.port_range_min {
                    let max = r.port_range_max.unwrap_or(min);
                    let range = if max > min { format!("{min}:{max}") } else { min.to_string() };
                    m.push_str(&format!(" -m {p} --dport {range}"));
                }
            }
            "icmp" | "ipv6-icmp" => {
                let (module, option) = if p == "icmp" { ("icmp", "--icmp-type") } else { ("icmp6", "--icmpv6-type") };
                if let Some(t) = r.port_range_min {
                    match r.port_range_max {
                        Some(c) => m.push_str(&format!(" -m {module} {option} {t}/{c}")),
                        None => m.push_str(&format!(" -m {module} {option} {t}")),
                    }
                }
            }
            _ => {}
        }
    }
    let side = if r.direction == "ingress" { "-s" } else { "-d" };
    if let Some(prefix) = &r.remote_ip_prefix {
        if !family.has(prefix) {
            return Vec::new();
        }
        return vec![format!("{side} {prefix}{m}")];
    }
    if let Some(group) = &r.remote_group_id {
        let dir = if r.direction == "ingress" { "src" } else { "dst" };
        return vec![format!("-m set --match-set {} {dir}{m}", set_name(group, family))];
    }
    vec![m.trim_start().to_string()]
}

/// The chains of every guarded port in `ports`: haneul's whole part of the `filter` table
/// of `family` for `iptables-restore --noflush` (or `ip6tables-restore`); the chains.
pub fn ruleset(doc: &Doc, ports: &[&Port], family: Family) -> (String, BTreeSet<String>) {
    ruleset_of(doc, ports, None, family)
}

/// The dispatch chain to every guarded port of `ports`, and the chains of those in
/// `rewrite` (all, with none), for `iptables-restore --noflush`: the chains it names are
/// flushed and written; others stay as they are. Also the chains of every guarded port.
pub fn ruleset_of(
    doc: &Doc,
    ports: &[&Port],
    rewrite: Option<&BTreeSet<String>>,
    family: Family,
) -> (String, BTreeSet<String>) {
    let guarded: Vec<&&Port> = ports.iter().filter(|p| p.port_security_enabled).collect();
    let mut chains = BTreeSet::from([FW.to_string()]);
    let mut declared = BTreeSet::from([FW.to_string()]);
    let mut rules = String::new();
    for p in &guarded {
        let tap = doc::tap_name(&p.id);
        let (i, o, s) = (chain('i', &p.id), chain('o', &p.id), chain('s', &p.id));
        rules.push_str(&format!("-A {FW} -m physdev --physdev-in {tap} --physdev-is-bridged -j {o}\n"));
        rules.push_str(&format!("-A {FW} -m physdev --physdev-out {tap} --physdev-is-bridged -j {i}\n"));
        chains.extend([i.clone(), o.clone(), s.clone()]);
        if rewrite.is_some_and(|only| !only.contains(&p.id)) {
            continue;
        }
        declared.extend([i.clone(), o.clone(), s.clone()]);
        // Anti-spoofing: the port's MAC with its addresses (and, for IPv6, its link-local
        // one), and its allowed pairs.
        let host = family.host();
        let mut own: Vec<String> = p
            .fixed_ips
            .iter()
            .filter(|f| family.has(&f.ip_address))
            .map(|f| format!("{}{host}", f.ip_address))
            .collect();
        if family == Family::V6 {
            own.extend(link_local(&p.mac_address).map(|ll| format!("{ll}{host}")));
        }
        for ip in own {
            rules.push_str(&format!("-A {s} -s {ip} -m mac --mac-source {} -j RETURN\n", p.mac_address));
        }
        for a in p.allowed_address_pairs.iter().filter(|a| family.has(&a.ip_address)) {
            let mac = if a.mac_address.is_empty() { &p.mac_address } else { &a.mac_address };
            let ip = if a.ip_address.contains('/') { a.ip_address.clone() } else { format!("{}{host}", a.ip_address) };
            rules.push_str(&format!("-A {s} -s {ip} -m mac --mac-source {mac} -j RETURN\n"));
        }
        rules.push_str(&format!("-A {s} -j DROP\n"));
        let (client, server) = family.dhcp_ports();
        let dhcp_request = format!("-p udp -m udp --sport {client} --dport {server}");
        let dhcp_answer = format!("-p udp -m udp --sport {server} --dport {client}");
        let icmp6 = |chain: &str, from: &str, t: &u16| {
            format!("-A {chain} {from}-p ipv6-icmp -m icmp6 --icmpv6-type {t} -j RETURN\n")
        };
        match family {
            // A DHCP request comes from 0.0.0.0: before the source check.
            Family::V4 => rules.push_str(&format!("-A {o} {dhcp_request} -j RETURN\n-A {o} -j {s}\n")),
            Family::V6 => {
                // Duplicate address detection and multicast listener reports come from `::`.
                DAD_TYPES.iter().for_each(|t| rules.push_str(&icmp6(&o, "-s ::/128 ", t)));
                rules.push_str(&format!("-A {o} -j {s}\n"));
                NDP_OUT_TYPES.iter().for_each(|t| rules.push_str(&icmp6(&o, "", t)));
                rules.push_str(&format!("-A {o} -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP\n"));
                rules.push_str(&format!("-A {o} {dhcp_request} -j RETURN\n"));
            }
        }
        rules.push_str(&format!("-A {o} {dhcp_answer} -j DROP\n"));
        // Neighbour discovery is stateless to conntrack: before the state checks.
        if family == Family::V6 {
            NDP_IN_TYPES.iter().for_each(|t| rules.push_str(&icmp6(&i, "", t)));
        }
        for chain in [&o, &i] {
            rules.push_str(&format!("-A {chain} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN\n"));
            rules.push_str(&format!("-A {chain} -m conntrack --ctstate INVALID -j DROP\n"));
        }
        rules.push_str(&format!("-A {i} {dhcp_answer} -j RETURN\n"));
        for r in doc.rules.values().filter(|r| p.security_groups.contains(&r.security_group_id)) {
            let to = if r.direction == "ingress" { &i } else { &o };
            for m in matches(r, family) {
                rules.push_str(&format!("-A {to} {m} -j RETURN\n").replace("  ", " "));
            }
        }
        rules.push_str(&format!("-A {o} -j DROP\n"));
        rules.push_str(&format!("-A {i} -j DROP\n"));
    }
    rules.push_str(&format!("-A {FW} -j ACCEPT\n"));
    let mut text = String::from("*filter\n");
    for c in &declared {
        text.push_str(&format!(":{c} - [0:0]\n"));
    }
    text.push_str(&rules);
    text.push_str("COMMIT\n");
    (text, chains)
}

/// ARP and MAC anti-spoofing: nftables table `bridge haneul` (bridge filtering needs no
/// connection state, so nft does it): a guest's frames must carry its MAC, and its ARP its
/// MAC and addresses (allowed address pairs included). The table is rewritten whole.
/// ICMPv6 a guest may send from `::` (multicast listener report, neighbour solicitation,
/// MLDv2 report: duplicate address detection).
const DAD_TYPES: &[u16] = &[131, 135, 143];
/// ICMPv6 a guest may send from its own addresses whatever its groups say (multicast
/// listener query/report/done, router solicitation, neighbour solicitation and
/// advertisement, MLDv2 report).
const NDP_OUT_TYPES: &[u16] = &[130, 131, 132, 133, 135, 136, 143];
/// ICMPv6 a guest receives whatever its groups say (the same, and router advertisements).
const NDP_IN_TYPES: &[u16] = &[130, 131, 132, 134, 135, 136, 143];

pub fn arp_ruleset(ports: &[&Port]) -> String {
    let mut rules = String::new();
    for p in ports.iter().filter(|p| p.port_security_enabled) {
        let tap = doc::tap_name(&p.id);
        let mut macs: BTreeSet<String> = BTreeSet::from([p.mac_address.to_ascii_lowercase()]);
        let mut ips: BTreeSet<String> = p.fixed_ips.iter().map(|f| f.ip_address.clone()).collect();
        for a in &p.allowed_address_pairs {
            if !a.mac_address.is_empty() {
                macs.insert(a.mac_address.to_ascii_lowercase());
            }
            ips.insert(a.ip_address.clone());
        }
        let v4: Vec<String> = ips.into_iter().filter(|ip| !ip.contains(':')).collect();
        let macs: Vec<String> = macs.into_iter().collect();
        rules.push_str(&format!("    iifname \"{tap}\" ether saddr != {{ {} }} drop\n", macs.join(", ")));
        rules.push_str(&format!("    iifname \"{tap}\" arp saddr ether != {{ {} }} drop\n", macs.join(", ")));
        if v4.is_empty() {
            rules.push_str(&format!("    iifname \"{tap}\" ether type arp drop\n"));
        } else {
            rules.push_str(&format!("    iifname \"{tap}\" arp saddr ip != {{ {} }} drop\n", v4.join(", ")));
        }
    }
    format!(
        "table bridge haneul\ndelete table bridge haneul\ntable bridge haneul {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n{rules}  }}\n}}\n"
    )
}

/// haneul's chains now in the host's filter table of `family`.
async fn existing(ns: Option<&str>, family: Family) -> sys::Result<BTreeSet<String>> {
    let out = sys::run_in(ns, family.tools().0, &["-w", "-S"], None).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.strip_prefix("-N "))
        .filter(|c| c.starts_with("haneul-"))
        .map(str::to_owned)
        .collect())
}

/// What the firewall holds on the host, as the last apply left it.
#[derive(Default)]
pub struct Held {
    /// The guarded ports with chains.
    ports: BTreeSet<String>,
    /// The groups with sets.
    sets: BTreeSet<String>,
}

/// Whether a change concerns the firewall of the host's guest ports `ports`: a port of
/// theirs (or one that had chains) changed, or a group guarding them, or a group their
/// rules name as remote.
pub fn concerned(dp: &Dataplane, doc: &Doc, ports: &[&Port], touched: &Touched) -> bool {
    if touched.whole {
        return true;
    }
    let held = dp.firewall.lock().unwrap_or_else(|e| e.into_inner());
    touched.ports.iter().any(|id| held.ports.contains(id) || ports.iter().any(|p| &p.id == id))
        || touched.groups.iter().any(|g| held.sets.contains(g))
        || ports.iter().any(|p| p.security_groups.iter().any(|g| touched.group_rules.contains(g)))
        || remote_groups(doc, ports).iter().any(|g| touched.groups.contains(g))
}

pub async fn apply(dp: &Dataplane, doc: &Doc, ports: &[&Port], touched: &Touched) -> sys::Result<()> {
    let ns = dp.settings.host_ns.as_deref();
    let guarded: BTreeSet<String> = ports.iter().filter(|p| p.port_security_enabled).map(|p| p.id.clone()).collect();
    let sets = remote_groups(doc, ports);
    let (held_ports, held_sets) = {
        let held = dp.firewall.lock().unwrap_or_else(|e| e.into_inner());
        (held.ports.clone(), held.sets.clone())
    };
    let whole = touched.whole;
    // The chains and sets there are: for a whole apply, listed on the host (an agent that
    // restarted, a host changed by hand); for a change, those the last apply left.
    let (had, had_sets) = if whole {
        let v4 = existing(ns, Family::V4).await?;
        if ports.is_empty() && v4.is_empty() {
            // Nothing to guard and nothing there (the chains of both families and the
            // table are made together): the common case of a host without guests.
            *dp.firewall.lock().unwrap_or_else(|e| e.into_inner()) = Held::default();
            return Ok(());
        }
        let v6 = existing(ns, Family::V6).await?;
        let listed = sys::run_in(ns, "ipset", &["list", "-n"], None).await.unwrap_or_default();
        let ours: BTreeSet<String> =
            listed.lines().filter(|l| l.starts_with("hn4-") || l.starts_with("hn6-")).map(str::to_owned).collect();
        ([v4, v6], ours)
    } else {
        let chains: BTreeSet<String> = held_ports.iter().flat_map(|p| ['i', 'o', 's'].map(|k| chain(k, p))).collect();
        ([chains.clone(), chains], held_sets.iter().flat_map(|g| set_names(g)).collect())
    };
    if ports.is_empty() {
        let _ = sys::run_in(ns, "nft", &["delete", "table", "bridge", "haneul"], None).await;
        for (family, chains) in FAMILIES.iter().zip(&had) {
            let mut del = vec!["-w", "-D"];
            del.extend(JUMP);
            let _ = sys::run_in(ns, family.tools().0, &del, None).await;
            let mut all = chains.clone();
            all.insert(FW.to_string());
            remove(ns, *family, &all).await;
        }
        destroy_sets(ns, had_sets.into_iter()).await;
        *dp.firewall.lock().unwrap_or_else(|e| e.into_inner()) = Held::default();
        return Ok(());
    }
    // Sets first: the rules written next match them.
    let refill: BTreeSet<String> = if whole {
        sets.clone()
    } else {
        sets.iter().filter(|g| touched.groups.contains(*g) || !held_sets.contains(*g)).cloned().collect()
    };
    if !refill.is_empty() {
        sys::run_in(ns, "ipset", &["restore"], Some(&sets_text(doc, &refill))).await?;
    }
    // The ports whose chains this change concerns.
    let rewrite: Option<BTreeSet<String>> = (!whole).then(|| {
        ports
            .iter()
            .filter(|p| {
                touched.ports.contains(&p.id)
                    || !held_ports.contains(&p.id)
                    || p.security_groups.iter().any(|g| touched.group_rules.contains(g))
            })
            .map(|p| p.id.clone())
            .collect()
    });
    if whole {
        sys::sysctl(ns, "net.bridge.bridge-nf-call-iptables", "1").await?;
        sys::sysctl(ns, "net.bridge.bridge-nf-call-ip6tables", "1").await?;
    }
    // The bridge rules and the two families' chains are apart: written side by side.
    let family = |family: Family, had: BTreeSet<String>| {
        let rewrite = rewrite.as_ref();
        let check_jump = whole || held_ports.is_empty();
        async move {
            let (tool, restore) = family.tools();
            let (text, chains) = ruleset_of(doc, ports, rewrite, family);
            sys::run_in(ns, restore, &["-w", "--noflush"], Some(&text)).await?;
            if check_jump {
                let mut check = vec!["-w", "-C"];
                check.extend(JUMP);
                if sys::run_in(ns, tool, &check, None).await.is_err() {
                    let mut insert = vec!["-w", "-I", "FORWARD", "1"];
                    insert.extend(&JUMP[1..]);
                    sys::run_in(ns, tool, &insert, None).await?;
                }
            }
            let stale: BTreeSet<String> = had.difference(&chains).filter(|c| c.as_str() != FW).cloned().collect();
            remove(ns, family, &stale).await;
            Ok::<(), sys::SysError>(())
        }
    };
    let [had4, had6] = had;
    let arp = arp_ruleset(ports);
    let (a, v4, v6) = tokio::join!(
        sys::run_in(ns, "nft", &["-f", "-"], Some(&arp)),
        family(Family::V4, had4),
        family(Family::V6, had6)
    );
    a?;
    v4?;
    v6?;
    // Sets no rule names any more, last (a set in use cannot go).
    let wanted: BTreeSet<String> = sets.iter().flat_map(|g| set_names(g)).collect();
    destroy_sets(ns, had_sets.into_iter().filter(|s| !wanted.contains(s))).await;
    *dp.firewall.lock().unwrap_or_else(|e| e.into_inner()) = Held { ports: guarded, sets };
    Ok(())
}

/// Destroys each set, one at a time: one still in use (by rules of someone else's) stays
/// without stopping the others.
async fn destroy_sets(ns: Option<&str>, sets: impl Iterator<Item = String>) {
    for name in sets {
        let _ = sys::run_in(ns, "ipset", &["destroy", &name], None).await;
    }
}

async fn remove(ns: Option<&str>, family: Family, chains: &BTreeSet<String>) {
    let tool = family.tools().0;
    for c in chains {
        let _ = sys::run_in(ns, tool, &["-w", "-F", c], None).await;
    }
    for c in chains {
        let _ = sys::run_in(ns, tool, &["-w", "-X", c], None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netdp::doc::{AddressPair, FixedIp, Picture};

    fn port(id: &str, ip: &str, groups: &[&str]) -> Port {
        Port {
            id: id.into(),
            network_id: "net".into(),
            admin_state_up: true,
            mac_address: "fa:16:3e:00:00:01".into(),
            fixed_ips: vec![FixedIp { subnet_id: "s".into(), ip_address: ip.into() }],
            device_owner: "compute:nova".into(),
            security_groups: groups.iter().map(|g| g.to_string()).collect(),
            port_security_enabled: true,
            ..Default::default()
        }
    }

    fn rule(group: &str, direction: &str, proto: Option<&str>, ports: Option<(i64, i64)>) -> Rule {
        // Ids in the order made: a test's chains list its rules in that order.
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        Rule {
            id: format!("r{:06}", MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst)),
            security_group_id: group.into(),
            direction: direction.into(),
            ethertype: "IPv4".into(),
            protocol: proto.map(str::to_owned),
            port_range_min: ports.map(|p| p.0),
            port_range_max: ports.map(|p| p.1),
            ..Default::default()
        }
    }

    #[test]
    fn a_group_becomes_chains_that_allow_its_rules_and_drop_the_rest() {
        let a = port("aaaaaaaaaa-1", "10.0.0.3", &["web"]);
        let b = port("bbbbbbbbbb-2", "10.0.0.4", &["web"]);
        let mut remote = rule("web", "ingress", Some("udp"), Some((53, 53)));
        remote.remote_group_id = Some("web".into());
        let doc = Doc::from_picture(&Picture {
            ports: vec![a.clone(), b.clone()],
            rules: vec![
                rule("web", "ingress", Some("tcp"), Some((22, 22))),
                rule("web", "ingress", Some("icmp"), None),
                rule("web", "egress", None, None),
                rule("other", "ingress", Some("tcp"), Some((80, 80))),
                remote,
            ],
            ..Default::default()
        });
        let (text, chains) = ruleset(&doc, &[&a], Family::V4);
        let lines: Vec<&str> = text.lines().collect();
        assert!(chains.contains("haneul-iaaaaaaaaaa") && chains.contains("haneul-oaaaaaaaaaa"));
        assert!(!chains.contains("haneul-ibbbbbbbbbb"), "only the ports asked for get chains");
        let i: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("-A haneul-iaaaaaaaaaa ")).collect();
        assert_eq!(
            i,
            [
                "-A haneul-iaaaaaaaaaa -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
                "-A haneul-iaaaaaaaaaa -m conntrack --ctstate INVALID -j DROP",
                "-A haneul-iaaaaaaaaaa -p udp -m udp --sport 67 --dport 68 -j RETURN",
                &format!(
                    "-A haneul-iaaaaaaaaaa -m set --match-set {} src -p udp -m udp --dport 53 -j RETURN",
                    set_name("web", Family::V4)
                ),
                "-A haneul-iaaaaaaaaaa -p tcp -m tcp --dport 22 -j RETURN",
                "-A haneul-iaaaaaaaaaa -p icmp -j RETURN",
                "-A haneul-iaaaaaaaaaa -j DROP",
            ]
        );
        // The remote group's members are its set's.
        assert_eq!(remote_groups(&doc, &[&a]), BTreeSet::from(["web".to_string()]));
        let sets = sets_text(&doc, &BTreeSet::from(["web".to_string()]));
        let name = set_name("web", Family::V4);
        assert_eq!(name.len(), 28);
        let v4: Vec<&str> = sets.lines().filter(|l| l.starts_with(&format!("add {name}-n "))).collect();
        assert_eq!(v4, [format!("add {name}-n 10.0.0.3 -exist"), format!("add {name}-n 10.0.0.4 -exist")]);
        assert!(sets.contains(&format!("swap {name}-n {name}\ndestroy {name}-n\n")));
        assert!(sets.contains(&format!("create {} ", set_name("web", Family::V6))));
        // A change of one port rewrites its chains and the dispatch chain only.
        let (text, chains) = ruleset_of(&doc, &[&a, &b], Some(&BTreeSet::from([b.id.clone()])), Family::V4);
        assert!(chains.contains("haneul-iaaaaaaaaaa") && text.contains("-A haneul-ibbbbbbbbbb "));
        assert!(!text.contains(":haneul-iaaaaaaaaaa") && !text.contains("-A haneul-iaaaaaaaaaa "), "{text}");
        assert!(text.contains("-A haneul-fw -m physdev --physdev-in tapaaaaaaaaaa"), "{text}");
        assert!(lines.contains(&"-A haneul-oaaaaaaaaaa -j RETURN"), "egress anywhere");
        assert!(lines.contains(&"-A haneul-saaaaaaaaaa -s 10.0.0.3/32 -m mac --mac-source fa:16:3e:00:00:01 -j RETURN"));
        assert!(lines.contains(&"-A haneul-saaaaaaaaaa -j DROP"));
        assert_eq!(lines.last(), Some(&"COMMIT"));
        assert!(lines.contains(&"-A haneul-fw -j ACCEPT"));
    }

    #[test]
    fn ipv6_gets_its_own_chains_with_neighbour_discovery_and_the_link_local_address() {
        assert_eq!(link_local("fa:16:3e:00:00:01").as_deref(), Some("fe80::f816:3eff:fe00:1"));
        let mut a = port("aaaaaaaaaa-1", "10.0.0.3", &["web"]);
        a.fixed_ips.push(FixedIp { subnet_id: "s6".into(), ip_address: "2001:db8::5".into() });
        let mut icmp6 = rule("web", "ingress", Some("icmp"), None);
        icmp6.ethertype = "IPv6".into();
        let mut ssh6 = rule("web", "ingress", Some("tcp"), Some((22, 22)));
        ssh6.ethertype = "IPv6".into();
        ssh6.remote_ip_prefix = Some("2001:db8::/64".into());
        let doc = Doc::from_picture(&Picture {
            ports: vec![a.clone()],
            rules: vec![rule("web", "ingress", Some("tcp"), Some((80, 80))), icmp6, ssh6],
            ..Default::default()
        });
        let (v6, _) = ruleset(&doc, &[&a], Family::V6);
        let lines: Vec<&str> = v6.lines().collect();
        for want in [
            "-A haneul-saaaaaaaaaa -s 2001:db8::5/128 -m mac --mac-source fa:16:3e:00:00:01 -j RETURN",
            "-A haneul-saaaaaaaaaa -s fe80::f816:3eff:fe00:1/128 -m mac --mac-source fa:16:3e:00:00:01 -j RETURN",
            "-A haneul-oaaaaaaaaaa -s ::/128 -p ipv6-icmp -m icmp6 --icmpv6-type 135 -j RETURN",
            "-A haneul-oaaaaaaaaaa -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j DROP",
            "-A haneul-oaaaaaaaaaa -p udp -m udp --sport 546 --dport 547 -j RETURN",
            "-A haneul-iaaaaaaaaaa -p ipv6-icmp -m icmp6 --icmpv6-type 134 -j RETURN",
            "-A haneul-iaaaaaaaaaa -p ipv6-icmp -j RETURN",
            "-A haneul-iaaaaaaaaaa -s 2001:db8::/64 -p tcp -m tcp --dport 22 -j RETURN",
        ] {
            assert!(lines.contains(&want), "{want} missing from\n{v6}");
        }
        assert!(!v6.contains("10.0.0.3") && !v6.contains("--dport 80"), "no IPv4 in ip6tables: {v6}");
        let (v4, _) = ruleset(&doc, &[&a], Family::V4);
        assert!(!v4.contains("2001:db8") && !v4.contains("icmp6") && v4.contains("--dport 80"), "{v4}");
    }

    #[test]
    fn a_port_without_port_security_is_not_filtered_and_pairs_may_send() {
        let mut open = port("cccccccccc-3", "10.0.0.5", &[]);
        open.port_security_enabled = false;
        let mut paired = port("dddddddddd-4", "10.0.0.6", &[]);
        paired.allowed_address_pairs =
            vec![AddressPair { ip_address: "10.0.0.100".into(), mac_address: String::new() }];
        let doc = Doc::from_picture(&Picture { ports: vec![open.clone(), paired.clone()], ..Default::default() });
        let (text, _) = ruleset(&doc, &[&open, &paired], Family::V4);
        assert!(!text.contains("cccccccccc"));
        assert!(text.contains("-A haneul-sdddddddddd -s 10.0.0.100/32 -m mac --mac-source fa:16:3e:00:00:01 -j RETURN"));
        let arp = arp_ruleset(&[&open, &paired]);
        assert!(arp.starts_with("table bridge haneul\ndelete table bridge haneul\n"));
        let tap = doc::tap_name(&paired.id);
        assert!(arp.contains(&format!("iifname \"{tap}\" arp saddr ip != {{ 10.0.0.100, 10.0.0.6 }} drop")), "{arp}");
        assert!(!arp.contains(&doc::tap_name(&open.id)));
    }
}
