//! The network service's rules that are not HTTP: quotas, the default security group of a
//! project, and IP address management. Every change runs inside one snapshot write
//! ([`Networking::write`]), so a check and the change it guards are atomic: two ports
//! created at once never get the same address.

pub mod access;
pub mod floating;
pub mod ipam;
pub mod networks;
pub mod ports;
pub mod quotas;
pub mod rbac;
pub mod routers;
pub mod security_groups;
pub mod subnetpools;
pub mod subnets;
pub mod tags;

use std::collections::BTreeMap;
use std::sync::Arc;

use haneul_core::config::Config;
use haneul_core::docstore::{State, Store, StoreError, Txn as DocTxn};
use haneul_core::policy::PolicyFile;

use crate::model::{Model, Port};

pub use ipam::{allocate_ips, new_mac, IpRequest};
pub use quotas::{check_quota, DEFAULT_QUOTAS};
pub use security_groups::default_group;

pub type Txn = DocTxn<Model>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The catalog's service type.
pub const SERVICE_TYPE: &str = "network";

/// A Neutron error: its HTTP class, its exception type name (`NeutronError.type`) and message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{1}")]
    NotFound(&'static str, String),
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("{1}")]
    Forbidden(&'static str, String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Neutron's 400 for a malformed or invalid attribute.
pub fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest("HTTPBadRequest", msg.into())
}

/// Neutron's `InvalidInput` (a 400 raised by the plugin, not the attribute checks).
pub fn invalid(msg: impl Into<String>) -> Error {
    Error::BadRequest("InvalidInput", format!("Invalid input for operation: {}.", msg.into()))
}

pub fn not_found(kind: &'static str, what: &str, id: &str) -> Error {
    Error::NotFound(kind, format!("{what} {id} could not be found."))
}

pub struct Settings {
    /// The network endpoint (`http://host:9696`), for links.
    pub public_url: String,
    pub global_physnet_mtu: u32,
    pub dns_domain: String,
}

#[derive(Clone, Debug)]
pub struct AgentSeen {
    pub started: chrono::DateTime<chrono::Utc>,
    pub last: chrono::DateTime<chrono::Utc>,
    pub network_node: bool,
    /// The address its VXLAN tunnels start from (`network.local_ip`), if it has one.
    pub tunnel_ip: Option<String>,
}

pub struct Networking {
    state: State<Model>,
    pub policy: PolicyFile,
    pub settings: Settings,
    /// The snapshot's generation, published after each change (agents wait on it).
    changed: tokio::sync::watch::Sender<u64>,
    /// Tells this process's generations apart from an earlier one's.
    boot: u128,
    /// Each host's agent: when it first and last asked for its data plane, and whether it
    /// is a network node.
    agents: std::sync::Mutex<BTreeMap<String, AgentSeen>>,
    stopping: std::sync::atomic::AtomicBool,
    /// Bumped when an agent's tunnel address appears or changes: part of the version, so
    /// every agent learns its VXLAN peers.
    tunnels: std::sync::atomic::AtomicU64,
    agent_overrides: std::sync::Mutex<BTreeMap<String, (bool, Option<String>)>>,
    /// The service user that tells the compute service of changed server ports (Neutron's
    /// nova notifier); none where no compute service is reachable.
    compute_notifier: std::sync::OnceLock<Arc<haneul_core::service_auth::ServiceToken>>,
    /// What each host's agent was last sent, by host: the versions it may ask with next.
    sent: std::sync::Mutex<BTreeMap<String, Vec<Sent>>>,
}

/// A version a host's agent holds and the snapshot its picture was made from: its next
/// change is worked out against that snapshot. Snapshots share what they did not change,
/// so one kept costs what changed since.
struct Sent {
    version: String,
    network_node: bool,
    model: Arc<Model>,
    at: std::time::Instant,
}

/// Versions kept per host (an answer lost on the way, and the agent asks with the one before).
const SENT_KEPT: usize = 3;
/// A version not asked with for this long is forgotten (its host's agent is gone); one that
/// comes back gets a whole picture.
const SENT_FORGOTTEN: std::time::Duration = std::time::Duration::from_secs(120);

impl Networking {
    pub async fn open(config: &Config) -> Result<Arc<Networking>> {
        let store = Store::open(&config.network_database_url(), "network", crate::model::TABLES, &[]).await?;
        let state = State::<Model>::open(store).await?;
        let policy = PolicyFile::new(config.network_policy_file(), crate::policy_defaults::DEFAULT_RULES)
            .map_err(|e| Error::Internal(format!("network policy could not be loaded: {e}")))?;
        let (changed, _) = tokio::sync::watch::channel(state.model().generation);
        let boot = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        Ok(Arc::new(Networking {
            state,
            changed,
            boot,
            agents: Default::default(),
            stopping: Default::default(),
            tunnels: Default::default(),
            agent_overrides: Default::default(),
            compute_notifier: Default::default(),
            sent: Default::default(),
            policy,
            settings: Settings {
                public_url: config.public_url(config.network.port),
                global_physnet_mtu: config.network.global_physnet_mtu,
                dns_domain: config.network.dns_domain.clone(),
            },
        }))
    }

    /// Tells the compute service (found in the catalog of `service`'s token) when a server's
    /// port changes, as Neutron's nova notifier does.
    pub fn notify_compute_with(&self, service: Arc<haneul_core::service_auth::ServiceToken>) {
        let _ = self.compute_notifier.set(service);
    }

    /// Nova's `network-changed` for each of `ports` that a server holds (device owner
    /// `compute:*`), sent in the background: a lost notice leaves the server's addresses as
    /// they were until the next one, not the change undone.
    pub fn ports_changed(&self, ports: &[String]) {
        let Some(service) = self.compute_notifier.get().cloned() else { return };
        let m = self.model();
        let events: Vec<serde_json::Value> = ports
            .iter()
            .filter_map(|id| m.ports.get(id))
            .filter(|p| p.device_owner.starts_with("compute:") && !p.device_id.is_empty())
            .map(|p| serde_json::json!({"name": "network-changed", "server_uuid": p.device_id, "tag": p.id}))
            .collect();
        if events.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let body = serde_json::json!({"events": events});
            let sent =
                service.call("compute", axum::http::Method::POST, "/os-server-external-events", Some(body)).await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "the compute service was not told of changed ports");
            }
        });
    }

    pub fn model(&self) -> Arc<Model> {
        self.state.model()
    }

    pub async fn write<R>(&self, f: impl FnOnce(&mut Txn) -> Result<R>) -> Result<R> {
        let r = self.state.write(f).await;
        self.changed.send_replace(self.model().generation);
        r
    }

    pub async fn refresh(&self) -> Result<bool> {
        let changed = self.state.refresh().await?;
        if changed {
            self.changed.send_replace(self.model().generation);
        }
        Ok(changed)
    }

    /// Ends waiting asks for changes (the process is stopping): their answers go out now
    /// instead of holding the server's graceful stop.
    pub fn stop(&self) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.changed.send_modify(|_| {});
    }

    pub fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Wakes on every change of the snapshot.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The version of snapshot `m` as agents know it: this process, the snapshot's
    /// generation, the tunnel addresses' count of changes.
    pub fn version_of(&self, m: &Model) -> String {
        let tunnels = self.tunnels.load(std::sync::atomic::Ordering::SeqCst);
        format!("{:x}-{}-{tunnels}", self.boot, m.generation)
    }

    /// Whether version `v` was made with the tunnel addresses as they are now.
    pub fn tunnels_current(&self, v: &str) -> bool {
        v.rsplit('-').next() == Some(self.tunnels.load(std::sync::atomic::Ordering::SeqCst).to_string().as_str())
    }

    /// The snapshot `host`'s picture at `version` was made from, if it is still kept.
    pub fn sent(&self, host: &str, version: &str, network_node: bool) -> Option<Arc<Model>> {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let s = sent.get(host)?.iter().find(|s| s.version == version && s.network_node == network_node)?;
        Some(s.model.clone())
    }

    /// Notes that `host`'s agent holds `version`, made from snapshot `model`; forgets
    /// versions no agent asked with for a while.
    pub fn remember_sent(&self, host: &str, version: &str, network_node: bool, model: Arc<Model>) {
        let now = std::time::Instant::now();
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let kept = sent.entry(host.to_string()).or_default();
        kept.retain(|s| s.version != version);
        kept.push(Sent { version: version.to_string(), network_node, model, at: now });
        if kept.len() > SENT_KEPT {
            kept.remove(0);
        }
        sent.retain(|_, kept| {
            kept.retain(|s| now.duration_since(s.at) < SENT_FORGOTTEN);
            !kept.is_empty()
        });
    }

    /// Notes that `host`'s agent is alive (and, when it says, whether it is a network node
    /// and where its tunnels start). A new tunnel address wakes every agent's wait.
    pub fn agent_seen(&self, host: &str, network_node: Option<bool>, tunnel_ip: Option<&str>) {
        let now = chrono::Utc::now();
        let mut agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        let a = agents.entry(host.to_string()).or_insert(AgentSeen {
            started: now,
            last: now,
            network_node: false,
            tunnel_ip: None,
        });
        a.last = now;
        if let Some(n) = network_node {
            a.network_node = n;
        }
        if let Some(ip) = tunnel_ip.filter(|ip| !ip.is_empty()) {
            if a.tunnel_ip.as_deref() != Some(ip) {
                a.tunnel_ip = Some(ip.to_string());
                self.tunnels.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                self.changed.send_modify(|_| {});
            }
        }
    }

    /// Each host's tunnel address (VXLAN peers), of agents that said one.
    pub fn tunnel_endpoints(&self) -> BTreeMap<String, String> {
        let agents = self.agents.lock().unwrap_or_else(|e| e.into_inner());
        agents.iter().filter_map(|(h, a)| Some((h.clone(), a.tunnel_ip.clone()?))).collect()
    }

    /// An agent's `admin_state_up` and `description` as set through the API.
    pub fn agent_override(&self, id: &str) -> (bool, Option<String>) {
        let o = self.agent_overrides.lock().unwrap_or_else(|e| e.into_inner());
        o.get(id).cloned().unwrap_or((true, None))
    }

    pub fn set_agent_override(&self, id: &str, admin_state_up: Option<bool>, description: Option<String>) {
        let mut o = self.agent_overrides.lock().unwrap_or_else(|e| e.into_inner());
        let e = o.entry(id.to_string()).or_insert((true, None));
        if let Some(a) = admin_state_up {
            e.0 = a;
        }
        if description.is_some() {
            e.1 = description;
        }
    }

    /// The hosts whose agents asked for their data plane.
    pub fn agents(&self) -> BTreeMap<String, AgentSeen> {
        self.agents.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The ports bound to `host` go `ACTIVE` when listed in `up` (their devices are plugged)
    /// and `DOWN` otherwise; unbound ports the host plumbed (a router's) go `ACTIVE` too.
    /// Nothing is written when nothing changes.
    pub async fn set_ports_up(&self, host: &str, up: &[String]) -> Result<()> {
        let up_set: std::collections::BTreeSet<&str> = up.iter().map(String::as_str).collect();
        let status = |p: &Port| if up_set.contains(p.id.as_str()) && p.admin_state_up { "ACTIVE" } else { "DOWN" };
        let stale = |m: &Model| -> Vec<String> {
            let unbound_up = up.iter().filter_map(|id| m.ports.get(id)).filter(|p| p.host_id.is_empty());
            m.ports_on_host(host)
                .chain(unbound_up.map(|p| &**p))
                .filter(|p| p.status != status(p))
                .map(|p| p.id.clone())
                .collect()
        };
        if stale(&self.model()).is_empty() {
            return Ok(());
        }
        self.write(|t| {
            for id in stale(&t.m) {
                let mut p = (**t.m.ports.get(&id).expect("listed from this snapshot")).clone();
                p.status = status(&p).into();
                t.put(p)?;
            }
            Ok(())
        })
        .await
    }

    /// Makes the project's default security group if it has none yet (Neutron makes it the
    /// first time a project uses security groups or ports).
    pub async fn ensure_default_group(&self, project_id: &str) -> Result<()> {
        if project_id.is_empty() || self.model().default_group(project_id).is_some() {
            return Ok(());
        }
        self.write(|t| {
            default_group(t, project_id)?;
            Ok(())
        })
        .await
    }
}

/// Whether a port's device owner is one of Neutron's own (router interfaces, DHCP, ...).
pub fn is_network_owned(p: &Port) -> bool {
    p.device_owner.starts_with("network:")
}
