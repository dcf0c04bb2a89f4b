//! The network data plane of this host, made to match what the network service says
//! (desired state, as for instances): a Linux bridge per network, a tap per guest port, and
//! on the network node a `qdhcp-` namespace per network with dnsmasq, a `qrouter-` namespace
//! per router with its NAT, metadata proxies, and the security groups as iptables chains on
//! the bridged traffic (physdev + conntrack through br_netfilter, as Neutron's iptables
//! firewall).
//!
//! The agent asks the network service for the whole picture ([`doc::Doc`]) and waits for the
//! next change (a long poll); each answer is applied in full: what is missing is made, what
//! is no longer wanted is removed, and what already matches is left alone. The host itself
//! is the record: nothing is remembered between applies, so a restarted agent (or a host
//! someone changed by hand) is brought back the same way.
//!
//! Names: bridges `brq<network>`, taps and the bridge ends of veths `tap<port>`, their other
//! ends `ns-`/`qr-`/`qg-<port>` (11 characters of the ids), namespaces
//! `<prefix>qdhcp-<network>` and `<prefix>qrouter-<router>`, iptables chains `haneul-...`.

pub mod dhcp;
pub mod diagnose;
pub mod doc;
pub mod firewall;
pub mod metadata;
pub mod router;
pub mod sys;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use haneul_core::service::chain;
use haneul_core::service_auth::ServiceToken;
use hyper::Method;

use doc::{Doc, Port, Touched};
use sys::Link;

/// The routing protocol number of the host routes the agent adds (to routers' IPv6 subnets
/// on external bridges): only routes with it are the agent's to remove.
const HOST_ROUTE_PROTO: &str = "86";

/// Gives `dev` (in `ns`) exactly the addresses `want` (`addr/len`; link-local ones aside),
/// removing others first. IPv6 addresses go on without duplicate address detection: the
/// network service handed each out once, and DAD would keep it unusable for a second or two.
async fn sync_addresses(ns: Option<&str>, dev: &str, want: &BTreeSet<String>) -> sys::Result<()> {
    let have: BTreeSet<String> =
        sys::addresses(ns, dev).await?.into_iter().map(|a| format!("{}/{}", a.local, a.prefixlen)).collect();
    let mut cmds: Vec<String> = have.difference(want).map(|a| format!("addr del {a} dev {dev}")).collect();
    for a in want.difference(&have) {
        let nodad = if a.contains(':') { " nodad" } else { "" };
        cmds.push(format!("addr add {a} dev {dev}{nodad}"));
    }
    sys::ip_batch(ns, &cmds).await
}

pub struct Settings {
    pub host: String,
    /// The namespace taken for the host (tests); none: the host itself.
    pub host_ns: Option<String>,
    pub prefix: String,
    pub network_node: bool,
    /// Physical network → NIC (`physical_interface_mappings`).
    pub mappings: BTreeMap<String, String>,
    /// This host's VXLAN tunnel address (`network.local_ip`); none: no tunnels.
    pub local_ip: Option<String>,
    /// dnsmasq's files, one directory per namespace.
    pub state_dir: PathBuf,
    /// The metadata service the proxies forward to.
    pub metadata_url: String,
    /// What the proxies sign instance ids with.
    pub metadata_secret: Vec<u8>,
}

pub use haneul_contracts::agent::Nic;

/// Why a call to the network service did not give what the data plane asked.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the network service did not answer in time")]
    Timeout,
    #[error("calling the network service")]
    Call(#[source] haneul_core::client::ClientError),
    #[error("the network service sends pictures of schema {theirs}, this agent reads schema {ours}: run the same release on both")]
    Schema { theirs: String, ours: u32 },
    #[error("the network service answered an odd picture")]
    Picture(#[source] serde_json::Error),
}

/// Why a namespace (a network's DHCP server, a router) is not what the picture says.
#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    #[error(transparent)]
    Sys(#[from] sys::SysError),
    #[error(transparent)]
    Call(#[from] CallError),
    /// A file or directory of the namespace's dnsmasq.
    #[error(transparent)]
    File(#[from] haneul_core::error::FileError),
    #[error("metadata proxy")]
    MetadataProxy(#[source] std::io::Error),
}

pub struct Dataplane {
    me: std::sync::Weak<Dataplane>,
    pub settings: Settings,
    service: Arc<ServiceToken>,
    /// The picture last fetched.
    doc: RwLock<Arc<Doc>>,
    /// One apply (or plug) at a time.
    busy: tokio::sync::Mutex<()>,
    /// The metadata proxies running, by namespace.
    proxies: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
    /// DHCP ports asked of the network service and not seen yet, by network.
    dhcp_asked: Mutex<BTreeSet<String>>,
    /// The ports each namespace (a DHCP server, a router) had in place at its last ensure.
    ns_up: Mutex<BTreeMap<String, Vec<String>>>,
    /// What the last apply could not do, for `diagnose`.
    pub problems: Mutex<Vec<String>>,
    /// What the firewall holds on the host.
    firewall: Mutex<firewall::Held>,
}

impl Dataplane {
    pub fn new(settings: Settings, service: Arc<ServiceToken>) -> Arc<Dataplane> {
        Arc::new_cyclic(|me| Dataplane {
            me: me.clone(),
            settings,
            service,
            doc: RwLock::new(Arc::new(Doc::default())),
            busy: tokio::sync::Mutex::new(()),
            proxies: Mutex::new(BTreeMap::new()),
            dhcp_asked: Mutex::new(BTreeSet::new()),
            ns_up: Mutex::new(BTreeMap::new()),
            firewall: Mutex::new(firewall::Held::default()),
            problems: Mutex::new(Vec::new()),
        })
    }

    pub fn me(&self) -> std::sync::Weak<Dataplane> {
        self.me.clone()
    }

    pub fn doc(&self) -> Arc<Doc> {
        self.doc.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn host_ns(&self) -> Option<&str> {
        self.settings.host_ns.as_deref()
    }

    pub fn dhcp_ns(&self, network_id: &str) -> String {
        format!("{}qdhcp-{network_id}", self.settings.prefix)
    }

    pub fn router_ns(&self, router_id: &str) -> String {
        format!("{}qrouter-{router_id}", self.settings.prefix)
    }

    /// Follows the network service forever: fetch, apply, report; wait for the next change
    /// (or the end of the service's wait, 25 s).
    pub async fn run(self: Arc<Self>) {
        let mut failing = false;
        loop {
            let held = self.doc();
            match self.fetch(&held.version).await {
                Ok(change) => {
                    if failing {
                        tracing::info!("following the network service again");
                        failing = false;
                    }
                    let mut doc = (*held).clone();
                    let touched = match &change.base {
                        Some(base) if *base != held.version => {
                            // Not a change of what this agent holds: start over whole.
                            *self.doc.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Doc::default());
                            continue;
                        }
                        _ => doc.apply(&change),
                    };
                    // An answer without change (the wait ran out) applies whole: what was
                    // changed or broken on the host by hand is put back.
                    let touched = if touched.is_empty() { Touched::whole() } else { touched };
                    let doc = Arc::new(doc);
                    *self.doc.write().unwrap_or_else(|e| e.into_inner()) = doc.clone();
                    let up = self.apply(&doc, &touched).await;
                    if let Err(e) = self.report_up(&up).await {
                        tracing::warn!(error = %chain(&e), "could not report ports up");
                    }
                }
                Err(e) => {
                    if !failing {
                        let error = chain(&e);
                        tracing::warn!(%error, "could not reach the network service; retrying");
                        failing = true;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, CallError> {
        let path = format!("/v2.0{path}");
        let call = self.service.call("network", method, &path, body);
        match tokio::time::timeout(Duration::from_secs(40), call).await {
            Err(_) => Err(CallError::Timeout),
            Ok(answer) => answer.map_err(CallError::Call),
        }
    }

    /// The network service's whole picture now (no waiting).
    pub async fn fetch_now(&self) -> Result<Doc, CallError> {
        Ok(Doc::from_picture(&self.fetch("").await?))
    }

    /// The changes since `version` (waiting for the next one), or the whole picture when
    /// `version` is empty or no longer known to the network service.
    async fn fetch(&self, version: &str) -> Result<doc::Picture, CallError> {
        let q = format!(
            "/internal/dataplane?host={}&version={}&network_node={}&tunnel_ip={}",
            haneul_core::url::encode(&self.settings.host),
            haneul_core::url::encode(version),
            self.settings.network_node,
            haneul_core::url::encode(self.settings.local_ip.as_deref().unwrap_or_default())
        );
        let v = self.call(Method::GET, &q, None).await?;
        let schema = v.get("schema").and_then(serde_json::Value::as_u64);
        if schema != Some(u64::from(doc::SCHEMA)) {
            let theirs = schema.map_or_else(|| "none".into(), |s| s.to_string());
            return Err(CallError::Schema { theirs, ours: doc::SCHEMA });
        }
        serde_json::from_value(v).map_err(CallError::Picture)
    }

    async fn report_up(&self, up: &[String]) -> Result<(), CallError> {
        let body = serde_json::json!({"host": self.settings.host, "up": up});
        self.call(Method::PUT, "/internal/dataplane/ports", Some(body)).await.map(|_| ())
    }

    /// Makes the guest interfaces of an instance about to start: each NIC's tap, on its
    /// network's bridge. The firewall and the rest follow from the network service's picture.
    pub async fn plug(&self, nics: &[Nic]) -> sys::Result<()> {
        if nics.is_empty() {
            return Ok(());
        }
        let _busy = self.busy.lock().await;
        let mut links = sys::links(self.host_ns()).await?;
        let mut changed = false;
        // Each network once: two NICs on one network share its bridge.
        let networks: BTreeMap<&str, u32> = nics.iter().map(|n| (n.network_id.as_str(), n.mtu)).collect();
        for (network_id, mtu) in networks {
            changed |= self.ensure_bridge(&links, network_id, mtu).await?;
        }
        if changed {
            // Once more: the taps go on the bridges just made.
            links = sys::links(self.host_ns()).await?;
        }
        for nic in nics {
            self.ensure_tap(&links, &nic.port_id, &nic.network_id, nic.mtu, &nic.mac).await?;
        }
        Ok(())
    }

    /// Brings the host to the picture, redoing what `touched` names (everything, for a
    /// whole picture); the ports whose devices are in place.
    pub async fn apply(&self, doc: &Doc, touched: &Touched) -> Vec<String> {
        let _busy = self.busy.lock().await;
        let started = std::time::Instant::now();
        let mut problems = Vec::new();
        let mut up = Vec::new();
        let host = &self.settings.host;
        let local: Vec<&Port> = doc.ports_on(host).filter(|p| doc::is_instance_port(p)).collect();
        // The networks this host carries, with their MTU.
        let mut networks: BTreeMap<String, u32> = BTreeMap::new();
        let mut want = |id: &str| {
            if let Some(n) = doc.network(id) {
                networks.insert(n.id.clone(), n.mtu.max(576));
            }
        };
        for p in &local {
            want(&p.network_id);
        }
        let dhcp_networks: Vec<&doc::Network> = if self.settings.network_node {
            doc.networks
                .values()
                .filter(|n| n.admin_state_up && doc.subnets_of(&n.id).any(|s| s.dhcp_served()))
                .collect()
        } else {
            Vec::new()
        };
        let routers: Vec<&doc::Router> = if self.settings.network_node {
            doc.routers.values().filter(|r| r.admin_state_up).collect()
        } else {
            Vec::new()
        };
        for n in &dhcp_networks {
            want(&n.id);
        }
        for r in &routers {
            for p in doc.router_ports(&r.id) {
                want(&p.network_id);
            }
        }
        if self.settings.network_node {
            // External networks are always carried: floating IPs answer on them.
            for n in doc.networks.values().filter(|n| n.external) {
                want(&n.id);
            }
        }

        let mut links = match sys::links(self.host_ns()).await {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("cannot list the host's links: {}", chain(&e)));
                *self.problems.lock().unwrap_or_else(|e| e.into_inner()) = problems;
                return up;
            }
        };
        // A change of guests' ports alone leaves the networks' uplinks and tunnels as they are.
        let settings_changed = touched.whole || touched.routing || touched.tunnels || !touched.settings.is_empty();
        // Whether the links changed since they were listed (a bridge made, an uplink set).
        let mut relist = false;
        for (id, mtu) in &networks {
            match self.ensure_bridge(&links, id, *mtu).await {
                Ok(changed) => relist |= changed,
                Err(e) => problems.push(format!("network {id}: bridge: {}", chain(&e))),
            }
            if let Some(n) = doc.network(id).filter(|_| settings_changed) {
                relist = true;
                if let Err(e) = self.ensure_uplink(doc, n).await {
                    problems.push(format!("network {id}: uplink: {}", chain(&e)));
                }
            }
        }
        if relist {
            if let Ok(l) = sys::links(self.host_ns()).await {
                links = l;
            }
        }
        // Tenant (VXLAN) networks reach the other hosts through a tunnel device on their
        // bridge, flooding to every peer's tunnel address (the bridge learns the rest).
        let mut tunnels: BTreeSet<String> = BTreeSet::new();
        if let Some(local_ip) = &self.settings.local_ip {
            let peers: BTreeSet<&str> =
                doc.tunnel_endpoints.values().map(String::as_str).filter(|ip| ip != local_ip).collect();
            for (id, mtu) in &networks {
                let Some(vni) = doc.network(id).filter(|n| n.network_type == "vxlan").and_then(|n| n.segmentation_id)
                else {
                    continue;
                };
                let dev = format!("vxlan-{vni}");
                tunnels.insert(dev.clone());
                if !(touched.settings(id) || touched.tunnels) && links.iter().any(|l| l.ifname == dev) {
                    continue;
                }
                if let Err(e) = self.ensure_vxlan(&links, &dev, vni, local_ip, id, *mtu, &peers).await {
                    problems.push(format!("network {id}: VXLAN: {}", chain(&e)));
                }
            }
        }
        for p in &local {
            let mtu = networks.get(&p.network_id).copied().unwrap_or(1500);
            match self.ensure_tap(&links, &p.id, &p.network_id, mtu, &p.mac_address).await {
                Ok(()) => up.push(p.id.clone()),
                Err(e) => problems.push(format!("port {}: tap: {}", p.id, chain(&e))),
            }
        }

        // The guests' firewall and the namespaces (DHCP servers, routers) are apart: made
        // side by side, so a port's change costs the longer of its two, not their sum.
        let firewall = async {
            if !firewall::concerned(self, doc, &local, touched) {
                return None;
            }
            firewall::apply(self, doc, &local, touched).await.err().map(|e| format!("security groups: {}", chain(&e)))
        };
        let ((keep_ns, ns_problems), fw_problem) =
            tokio::join!(self.ensure_namespaces(doc, touched, &dhcp_networks, &routers, settings_changed), firewall);
        problems.extend(ns_problems);
        problems.extend(fw_problem);
        up.extend(self.ns_up.lock().unwrap_or_else(|e| e.into_inner()).values().flatten().cloned());
        // What may have to go: a change that took a port or a network off this host, or
        // changed a router (a guest's port changed in place leaves nothing behind).
        let may_remove = touched.whole
            || settings_changed
            || touched.ports.iter().any(|id| !local.iter().any(|p| &p.id == id))
            || touched.networks.iter().any(|n| !networks.contains_key(n));
        if may_remove {
            self.remove_unwanted(&networks, &tunnels, &local, doc, &keep_ns, &mut problems).await;
        }

        for p in &problems {
            tracing::warn!(problem = %p, "data plane");
        }
        let ms = started.elapsed().as_millis() as u64;
        if touched.whole {
            tracing::info!(version = %doc.version, networks = networks.len(), ports = local.len(), ms, "data plane applied");
        } else {
            tracing::debug!(version = %doc.version, ports = touched.ports.len(), ms, "data plane change applied");
        }
        *self.problems.lock().unwrap_or_else(|e| e.into_inner()) = problems;
        up
    }

    /// The DHCP servers and routers of the picture, those `touched` concerns redone (all,
    /// for a whole picture); the namespaces to keep, and what could not be done. Each
    /// namespace's ports in place at its last ensure stay in `ns_up`: what a namespace this
    /// change does not concern reports.
    async fn ensure_namespaces(
        &self,
        doc: &Doc,
        touched: &Touched,
        dhcp_networks: &[&doc::Network],
        routers: &[&doc::Router],
        settings_changed: bool,
    ) -> (BTreeSet<String>, Vec<String>) {
        let mut keep_ns: BTreeSet<String> = BTreeSet::new();
        let mut problems = Vec::new();
        let mut ns_up = self.ns_up.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for n in dhcp_networks {
            let ns = self.dhcp_ns(&n.id);
            keep_ns.insert(ns.clone());
            if !touched.network(&n.id) && ns_up.contains_key(&ns) {
                continue;
            }
            match dhcp::ensure(self, doc, n, &ns, touched).await {
                Ok(port) => {
                    ns_up.insert(ns, port.into_iter().collect());
                }
                Err(e) => {
                    ns_up.remove(&ns);
                    problems.push(format!("network {}: DHCP: {}", n.id, chain(&e)));
                }
            }
        }
        for r in routers {
            let ns = self.router_ns(&r.id);
            keep_ns.insert(ns.clone());
            if !settings_changed && ns_up.contains_key(&ns) {
                continue;
            }
            match router::ensure(self, doc, r, &ns).await {
                Ok(ports) => {
                    ns_up.insert(ns, ports);
                }
                Err(e) => {
                    ns_up.remove(&ns);
                    problems.push(format!("router {}: {}", r.id, chain(&e)));
                }
            }
        }
        ns_up.retain(|ns, _| keep_ns.contains(ns));
        *self.ns_up.lock().unwrap_or_else(|e| e.into_inner()) = ns_up;
        (keep_ns, problems)
    }

    /// Whether the bridge had to be made or changed.
    async fn ensure_bridge(&self, links: &[Link], network_id: &str, mtu: u32) -> sys::Result<bool> {
        let br = doc::bridge_name(network_id);
        let ns = self.host_ns();
        match links.iter().find(|l| l.ifname == br) {
            Some(l) if l.is_up() && l.mtu == mtu => Ok(false),
            Some(_) => sys::ip(ns, &["link", "set", &br, "mtu", &mtu.to_string(), "up"]).await.map(|_| true),
            None => sys::ip_batch(
                ns,
                &[
                    format!("link add {br} mtu {mtu} type bridge forward_delay 0 stp_state 0"),
                    format!("link set {br} up"),
                ],
            )
            .await
            .map(|_| true),
        }
    }

    /// The network's VXLAN device `dev` (VNI `vni`, from `local_ip`) on its bridge, with one
    /// all-zeros forwarding entry per peer (head-end replication of broadcasts; learning on).
    #[allow(clippy::too_many_arguments)]
    async fn ensure_vxlan(
        &self,
        links: &[Link],
        dev: &str,
        vni: u32,
        local_ip: &str,
        network_id: &str,
        mtu: u32,
        peers: &BTreeSet<&str>,
    ) -> sys::Result<()> {
        let ns = self.host_ns();
        let br = doc::bridge_name(network_id);
        match links.iter().find(|l| l.ifname == dev) {
            Some(l) if l.master.as_deref() == Some(br.as_str()) && l.is_up() => {}
            Some(_) => sys::ip(ns, &["link", "set", dev, "master", &br, "up"]).await.map(|_| ())?,
            None => {
                sys::ip_batch(
                    ns,
                    &[
                        format!("link add {dev} mtu {mtu} type vxlan id {vni} local {local_ip} dstport 4789"),
                        format!("link set {dev} master {br} up"),
                    ],
                )
                .await?
            }
        }
        let shown = sys::run_in(ns, "bridge", &["fdb", "show", "dev", dev], None).await?;
        let have: BTreeSet<String> = shown
            .lines()
            .filter(|l| l.starts_with("00:00:00:00:00:00 "))
            .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "dst").nth(1).map(str::to_owned))
            .collect();
        for peer in peers.iter().filter(|p| !have.contains(**p)) {
            sys::run_in(ns, "bridge", &["fdb", "append", "00:00:00:00:00:00", "dev", dev, "dst", peer], None).await?;
        }
        for gone in have.iter().filter(|h| !peers.contains(h.as_str())) {
            sys::run_in(ns, "bridge", &["fdb", "del", "00:00:00:00:00:00", "dev", dev, "dst", gone], None).await?;
        }
        Ok(())
    }

    /// A flat or external network's way out: the mapped NIC in its bridge, or (an external
    /// network on an unmapped physical network) the subnets' gateway addresses on the bridge
    /// itself, so the host is the gateway.
    async fn ensure_uplink(&self, doc: &Doc, n: &doc::Network) -> sys::Result<()> {
        let br = doc::bridge_name(&n.id);
        let ns = self.host_ns();
        let physnet = n.physical_network.clone().unwrap_or_default();
        if n.network_type == "flat" {
            if let Some(nic) = self.settings.mappings.get(&physnet) {
                return sys::ip(ns, &["link", "set", nic, "master", &br, "up"]).await.map(|_| ());
            }
        }
        if !n.external || !self.settings.network_node {
            return Ok(());
        }
        let want: BTreeSet<String> = doc
            .subnets_of(&n.id)
            .filter_map(|s| s.gateway_ip.as_ref().filter(|gw| !doc::is_link_local(gw)).zip(doc::prefix_len(&s.cidr)))
            .map(|(gw, len)| format!("{gw}/{len}"))
            .collect();
        sync_addresses(ns, &br, &want).await?;
        // Routers' IPv6 subnets, routed (not translated) to the routers' gateway addresses;
        // ours carry protocol number HOST_ROUTE_PROTO, and those no longer wanted go.
        let want = router::v6_routes(doc, &n.id);
        let listed = sys::ip(ns, &["-6", "-j", "route", "show", "dev", &br, "proto", HOST_ROUTE_PROTO]).await?;
        let have: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap_or_default();
        let mut cmds = Vec::new();
        for rt in &have {
            let (Some(dst), Some(via)) = (rt["dst"].as_str(), rt["gateway"].as_str()) else { continue };
            if !want.iter().any(|(d, v)| d == dst && v == via) {
                cmds.push(format!("route del {dst} via {via} dev {br} proto {HOST_ROUTE_PROTO}"));
            }
        }
        for (dst, via) in &want {
            if !have.iter().any(|rt| rt["dst"].as_str() == Some(dst) && rt["gateway"].as_str() == Some(via)) {
                cmds.push(format!("route replace {dst} via {via} dev {br} proto {HOST_ROUTE_PROTO}"));
            }
        }
        sys::ip_batch(ns, &cmds).await
    }

    async fn ensure_tap(
        &self,
        links: &[Link],
        port_id: &str,
        network_id: &str,
        mtu: u32,
        mac: &str,
    ) -> sys::Result<()> {
        let tap = doc::tap_name(port_id);
        let br = doc::bridge_name(network_id);
        let ns = self.host_ns();
        match links.iter().find(|l| l.ifname == tap) {
            Some(l) if l.master.as_deref() == Some(br.as_str()) && l.is_up() && l.mtu == mtu => Ok(()),
            Some(_) => {
                sys::ip(ns, &["link", "set", &tap, "master", &br, "mtu", &mtu.to_string(), "up"]).await.map(|_| ())
            }
            None => {
                // The host's end of the guest's NIC must not look like the guest (a bridge
                // learning the guest's MAC on it would loop): Neutron's fe: prefix.
                let host_mac = format!("fe{}", mac.get(2..).unwrap_or(":16:3e:00:00:00"));
                sys::ip_batch(
                    ns,
                    &[
                        format!("tuntap add dev {tap} mode tap"),
                        format!("link set {tap} address {host_mac} mtu {mtu} master {br} up"),
                    ],
                )
                .await
            }
        }
    }

    /// Plumbs a network port into namespace `ns`: a veth `tap<port>` (on the network's
    /// bridge) ↔ `<kind><port>` (in `ns`, with the port's MAC and addresses, plus `extra`).
    pub async fn plumb(&self, doc: &Doc, ns: &str, port: &Port, kind: &str, extra: &[String]) -> sys::Result<String> {
        let tap = doc::tap_name(&port.id);
        let inner = doc::inner_name(kind, &port.id);
        let br = doc::bridge_name(&port.network_id);
        let mtu = doc.network(&port.network_id).map_or(1500, |n| n.mtu.max(576));
        let host = self.host_ns();
        let inner_links = sys::links(Some(ns)).await?;
        if !inner_links.iter().any(|l| l.ifname == inner) {
            // A half-made pair (the namespace was remade) goes first.
            let _ = sys::ip(host, &["link", "del", &tap]).await;
            sys::ip(
                host,
                &["link", "add", &tap, "mtu", &mtu.to_string(), "type", "veth", "peer", "name", &inner, "netns", ns],
            )
            .await?;
        }
        sys::ip(host, &["link", "set", &tap, "master", &br, "mtu", &mtu.to_string(), "up"]).await?;
        sys::ip(Some(ns), &["link", "set", &inner, "address", &port.mac_address, "mtu", &mtu.to_string(), "up"])
            .await?;
        let mut want: BTreeSet<String> = port
            .fixed_ips
            .iter()
            .filter_map(|f| Some(format!("{}/{}", f.ip_address, doc::prefix_len(&doc.subnet(&f.subnet_id)?.cidr)?)))
            .collect();
        want.extend(extra.iter().cloned());
        sync_addresses(Some(ns), &inner, &want).await?;
        Ok(inner)
    }

    /// Removes what this host no longer carries: namespaces (their dnsmasq and proxies
    /// first), taps, bridges.
    async fn remove_unwanted(
        &self,
        networks: &BTreeMap<String, u32>,
        tunnels: &BTreeSet<String>,
        local: &[&Port],
        doc: &Doc,
        keep_ns: &BTreeSet<String>,
        problems: &mut Vec<String>,
    ) {
        let prefix = &self.settings.prefix;
        for ns in sys::namespaces() {
            let ours =
                ns.strip_prefix(prefix.as_str()).is_some_and(|r| r.starts_with("qdhcp-") || r.starts_with("qrouter-"));
            if !ours || keep_ns.contains(&ns) {
                continue;
            }
            self.stop_proxy(&ns);
            dhcp::stop(self, &ns);
            if let Err(e) = sys::delete_namespace(&ns).await {
                problems.push(format!("removing namespace {ns}: {}", chain(&e)));
            }
        }
        let Ok(links) = sys::links(self.host_ns()).await else { return };
        let taps: BTreeSet<String> = local
            .iter()
            .map(|p| doc::tap_name(&p.id))
            // The DHCP and router ports' veths (a port nothing uses, one let go by a server
            // among them, has no device here).
            .chain(doc.service_ports().map(|p| doc::tap_name(&p.id)))
            .collect();
        let bridges: BTreeSet<String> = networks.keys().map(|n| doc::bridge_name(n)).collect();
        let mapped: BTreeSet<&String> = self.settings.mappings.values().collect();
        let mut cmds = Vec::new();
        for l in &links {
            let is_ours = |prefix: &str| {
                l.ifname.len() == 14
                    && l.ifname
                        .strip_prefix(prefix)
                        .is_some_and(|r| r.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
            };
            // A tap a QEMU holds (carrier on) stays: its port may be newer than the picture
            // this apply works from; it goes at an apply after its guest let go of it.
            let held = l.kind() == "tun" && l.flags.iter().any(|f| f == "LOWER_UP");
            if is_ours("tap") && matches!(l.kind(), "tun" | "veth") && !taps.contains(&l.ifname) && !held {
                cmds.push(format!("link del {}", l.ifname));
            } else if l.kind() == "vxlan"
                && l.ifname.strip_prefix("vxlan-").is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()))
                && l.master.as_deref().is_some_and(|m| m.starts_with("brq"))
                && !tunnels.contains(&l.ifname)
            {
                cmds.push(format!("link del {}", l.ifname));
            } else if is_ours("brq") && l.kind() == "bridge" && !bridges.contains(&l.ifname) {
                for nic in links.iter().filter(|m| m.master.as_ref() == Some(&l.ifname) && mapped.contains(&m.ifname)) {
                    cmds.push(format!("link set {} nomaster", nic.ifname));
                }
                cmds.push(format!("link del {}", l.ifname));
            }
        }
        for c in cmds {
            if let Err(e) = sys::ip_batch(self.host_ns(), std::slice::from_ref(&c)).await {
                problems.push(format!("{c}: {}", chain(&e)));
            }
        }
    }

    pub fn has_proxy(&self, ns: &str) -> bool {
        self.proxies.lock().unwrap_or_else(|e| e.into_inner()).get(ns).is_some_and(|h| !h.is_finished())
    }

    pub fn set_proxy(&self, ns: &str, task: tokio::task::JoinHandle<()>) {
        if let Some(old) = self.proxies.lock().unwrap_or_else(|e| e.into_inner()).insert(ns.to_string(), task) {
            old.abort();
        }
    }

    fn stop_proxy(&self, ns: &str) {
        if let Some(t) = self.proxies.lock().unwrap_or_else(|e| e.into_inner()).remove(ns) {
            t.abort();
        }
    }

    /// Asks the network service for network `n`'s DHCP port on this host (as Neutron's
    /// DHCP agent does), once until it shows up.
    pub async fn ask_dhcp_port(&self, n: &doc::Network, subnets: &[&doc::Subnet]) -> Result<(), CallError> {
        if !self.dhcp_asked.lock().unwrap_or_else(|e| e.into_inner()).insert(n.id.clone()) {
            return Ok(());
        }
        let body = serde_json::json!({"port": {
            "network_id": n.id,
            "device_owner": doc::OWNER_DHCP,
            "device_id": dhcp::device_id(&self.settings.host, &n.id),
            "binding:host_id": self.settings.host,
            "fixed_ips": subnets.iter().map(|s| serde_json::json!({"subnet_id": s.id})).collect::<Vec<_>>(),
            "name": "",
        }});
        let r = self.call(Method::POST, "/ports", Some(body)).await.map(|_| ());
        if r.is_err() {
            self.dhcp_asked.lock().unwrap_or_else(|e| e.into_inner()).remove(&n.id);
        }
        r
    }

    /// Asks for addresses on `subnets` for the network's DHCP port (once per port and set of
    /// subnets until the picture shows them).
    pub async fn widen_dhcp_port(
        &self,
        doc: &Doc,
        port: &doc::Port,
        subnets: &[&doc::Subnet],
    ) -> Result<(), CallError> {
        let key = format!("{}:{}", port.id, subnets.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(","));
        if !self.dhcp_asked.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone()) {
            return Ok(());
        }
        // The addresses it has stay; those the guest side makes (SLAAC) are asked for by
        // subnet only, as the network service takes no explicit address there.
        let mut fixed: Vec<serde_json::Value> = port
            .fixed_ips
            .iter()
            .map(|f| match doc.subnet(&f.subnet_id) {
                Some(s) if s.is_auto_address() => serde_json::json!({"subnet_id": f.subnet_id}),
                _ => serde_json::json!({"subnet_id": f.subnet_id, "ip_address": f.ip_address}),
            })
            .collect();
        fixed.extend(subnets.iter().map(|s| serde_json::json!({"subnet_id": s.id})));
        let body = serde_json::json!({"port": {"fixed_ips": fixed}});
        let r = self.call(Method::PUT, &format!("/ports/{}", port.id), Some(body)).await.map(|_| ());
        if r.is_err() {
            self.dhcp_asked.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        }
        r
    }

    /// The DHCP port has an address on every subnet it serves: earlier asks are done.
    pub fn dhcp_port_complete(&self, port_id: &str) {
        let prefix = format!("{port_id}:");
        self.dhcp_asked.lock().unwrap_or_else(|e| e.into_inner()).retain(|k| !k.starts_with(&prefix));
    }

    pub fn dhcp_port_seen(&self, network_id: &str) {
        self.dhcp_asked.lock().unwrap_or_else(|e| e.into_inner()).remove(network_id);
    }
}
