//! The compute service's state: flavors, their access lists and key pairs, one snapshot
//! written through to the database (`core::docstore`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use haneul_core::docstore::Table;
use serde::{Deserialize, Serialize};

/// Nova's `default_availability_zone` and `internal_service_availability_zone`.
pub const DEFAULT_ZONE: &str = "nova";
pub const INTERNAL_ZONE: &str = "internal";

/// Every table of this service, for the check that services sharing a database name none alike.
pub const TABLES: &[&str] = <Model as haneul_core::docstore::Snapshot>::TABLES;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flavor {
    /// The flavor id clients see (Nova's `flavorid`): any string.
    pub id: String,
    pub name: String,
    pub ram: i64,
    pub vcpus: i64,
    pub disk: i64,
    pub ephemeral: i64,
    /// MiB; 0 = none.
    pub swap: i64,
    pub rxtx_factor: f64,
    pub is_public: bool,
    pub disabled: bool,
    pub description: Option<String>,
    pub extra_specs: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

/// A project allowed to use a private flavor.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlavorAccess {
    /// `<flavor id>/<project id>`.
    pub id: String,
    pub flavor_id: String,
    pub project_id: String,
}

impl FlavorAccess {
    pub fn key(flavor_id: &str, project_id: &str) -> String {
        format!("{flavor_id}/{project_id}")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Keypair {
    /// `<user id>/<name>`: names are unique per user.
    pub id: String,
    /// A number, as Nova shows it.
    pub serial: i64,
    pub user_id: String,
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
    /// `ssh` or `x509`.
    pub kind: String,
    pub created_at: DateTime<Utc>,
}

impl Keypair {
    pub fn key(user_id: &str, name: &str) -> String {
        format!("{user_id}/{name}")
    }
}

/// The flavor a server was built with, copied into it (a flavor may change or go later).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlavorCopy {
    pub id: String,
    pub name: String,
    pub ram: i64,
    pub vcpus: i64,
    pub disk: i64,
    pub ephemeral: i64,
    pub swap: i64,
    pub extra_specs: BTreeMap<String, String>,
}

impl FlavorCopy {
    /// What a server keeps of the flavor it was made (or resized) with.
    pub fn of(f: &Flavor) -> FlavorCopy {
        FlavorCopy {
            id: f.id.clone(),
            name: f.name.clone(),
            ram: f.ram,
            vcpus: f.vcpus,
            disk: f.disk,
            ephemeral: f.ephemeral,
            swap: f.swap,
            extra_specs: f.extra_specs.clone(),
        }
    }
}

/// Why a server is in ERROR.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    pub code: u16,
    pub message: String,
    pub created: DateTime<Utc>,
}

/// A server (instance). `vm_state`, `task_state` and `power_state` are Nova's; the API status
/// is derived from them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub flavor: FlavorCopy,
    pub image_id: String,
    pub key_name: Option<String>,
    pub key_data: Option<String>,
    /// Base64, as given.
    pub user_data: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub description: Option<String>,
    /// building, active, stopped, paused, error
    pub vm_state: String,
    /// spawning, deleting, powering-off, ... or none
    pub task_state: Option<String>,
    /// 0 no state, 1 running, 3 paused, 4 shutdown
    pub power_state: u8,
    pub host: Option<String>,
    pub availability_zone: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub launched_at: Option<DateTime<Utc>>,
    pub fault: Option<Fault>,
    /// The server group it was created in (`os:scheduler_hints` `group`).
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Locked servers refuse changes from anyone but an admin.
    #[serde(default)]
    pub locked: bool,
    #[serde(default)]
    pub locked_reason: Option<String>,
    /// `owner` when locked from the server's own project, else `admin` (Nova's `locked_by`).
    #[serde(default)]
    pub locked_by: Option<String>,
    /// The zone asked for at create (Nova's pinned zone), and a host an admin forced.
    #[serde(default)]
    pub requested_zone: Option<String>,
    #[serde(default)]
    pub forced_host: Option<String>,
    /// The generation of the spec last sent to the host's agent, and the reboots asked of
    /// it (the agent compares counters, so a replayed spec reboots nobody twice).
    #[serde(default)]
    pub generation: u64,
    /// The image's disk format (`qcow2` or `raw`), which backs the instance's overlay.
    #[serde(default)]
    pub image_format: String,
    #[serde(default)]
    pub reboots: u64,
    #[serde(default)]
    pub hard_reboots: u64,
    /// Bumped by each rebuild: the agent makes the root disk anew.
    #[serde(default)]
    pub rebuilds: u64,
    /// Addresses the user says the server is reached at (Nova stores them, nothing more).
    #[serde(default)]
    pub access_ipv4: String,
    #[serde(default)]
    pub access_ipv6: String,
    /// The scheduler hints given at create, as given (shown from 2.100).
    #[serde(default)]
    pub scheduler_hints: serde_json::Map<String, serde_json::Value>,
    /// The image's own properties at boot (shown from 2.98).
    #[serde(default)]
    pub image_properties: BTreeMap<String, String>,
    /// The servers of one multiple create share a reservation id; each has its index.
    #[serde(default)]
    pub reservation_id: String,
    #[serde(default)]
    pub launch_index: u32,
    /// The guest's host name (from the name, or set from 2.90).
    #[serde(default)]
    pub hostname: String,
    /// A resize in progress or waiting to be confirmed or reverted.
    #[serde(default)]
    pub resize: Option<Resize>,
    /// Bumped by each revert of a resize: the agent puts the kept disk back.
    #[serde(default)]
    pub reverts: u64,
    /// While rescued: the image the guest boots from (id and disk format).
    #[serde(default)]
    pub rescue_image: Option<(String, String)>,
    /// The networks and ports asked for at create; made into ports when the build has a host.
    #[serde(default)]
    pub requested_networks: Vec<NetRequest>,
    /// The security groups asked for at create (names or ids; none: the project's default).
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// The server's ports on the network service.
    #[serde(default)]
    pub ports: Vec<ServerPort>,
    /// `OS-DCF:diskConfig` AUTO (Nova's `auto_disk_config`): kept and shown; the guest
    /// grows its own file system, so nothing else changes.
    #[serde(default)]
    pub auto_disk_config: bool,
    /// The guest's encrypted password as it posted it to the metadata service
    /// (`os-server-password`); empty when none or cleared.
    #[serde(default)]
    pub password: String,
}

/// A resize: its migration (the placement consumer that holds the old flavor's resources
/// meanwhile), the flavor before, and whether the server was stopped (it stays so).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resize {
    pub migration_id: String,
    pub old_flavor: FlavorCopy,
    pub was_stopped: bool,
    pub created_at: DateTime<Utc>,
}

/// A server group: servers placed together (affinity) or apart (anti-affinity), strictly or
/// as a preference (`soft-`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerGroup {
    pub id: String,
    pub name: String,
    pub policy: String,
    /// `max_server_per_host` of an anti-affinity group (microversion 2.64).
    pub max_server_per_host: Option<i64>,
    pub project_id: String,
    pub user_id: String,
    pub members: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// Quota limits set by an operator: for a project (`id` = project id), a user in a project
/// (`<project>/<user>`), or a quota class (`class:<name>`, `class:default` for everyone).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuotaLimits {
    pub id: String,
    pub limits: BTreeMap<String, i64>,
}

/// A compute service: `nova-compute` on each host, `nova-scheduler` and `nova-conductor` on
/// the controller. Heartbeats move `last_seen`; one older than the service down time is down.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Service {
    /// uuid (microversion 2.53 shows it; older ones show `number`).
    pub id: String,
    pub number: i64,
    pub binary: String,
    pub host: String,
    pub zone: String,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    pub forced_down: bool,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// For `nova-compute`: the host's agent, as its last report described it.
    #[serde(default)]
    pub agent: Option<AgentInfo>,
}

/// A host agent: where its API is, its placement provider, and what the host offers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub url: String,
    /// Where browsers reach the host's console proxy.
    #[serde(default)]
    pub console_url: String,
    /// The uuid of the host's resource provider.
    pub provider: String,
    pub accel: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub disk_gb: i64,
}

/// A host aggregate: a named set of hosts with metadata; the `availability_zone` key makes it
/// an availability zone. Mirrored into placement as a provider aggregate of each member host.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Aggregate {
    /// The uuid (microversion 2.41 shows it; the integer `number` is the id clients use).
    pub id: String,
    pub number: i64,
    pub name: String,
    pub hosts: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl Aggregate {
    pub fn zone(&self) -> Option<&str> {
        self.metadata.get("availability_zone").map(String::as_str)
    }
}

/// What was done to a server, by one request (`id` is its request id), with the steps
/// (events) the work went through: `openstack server event list`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstanceAction {
    pub id: String,
    pub server_id: String,
    pub action: String,
    pub project_id: String,
    pub user_id: String,
    pub start_time: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// `Error` once an event failed.
    pub message: Option<String>,
    pub events: Vec<ActionEvent>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ActionEvent {
    pub event: String,
    pub start_time: DateTime<Utc>,
    pub finish_time: Option<DateTime<Utc>>,
    /// `Success` or `Error`, once finished.
    pub result: Option<String>,
    pub details: Option<String>,
    pub host: Option<String>,
}

/// What stays of a deleted server: its instance actions (2.21) and its usage stay visible.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeletedServer {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    pub flavor: FlavorCopy,
    pub launched_at: Option<DateTime<Utc>>,
    pub terminated_at: DateTime<Utc>,
}

/// A move of a server between hosts or flavors, as Nova lists it (`os-migrations`): here the
/// resizes, on the server's own host. Its id is also the placement consumer that holds the
/// old flavor's resources while the resize waits for a confirm or a revert.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Migration {
    pub id: String,
    /// Nova's integer id.
    pub number: i64,
    pub server_id: String,
    pub project_id: String,
    pub user_id: String,
    /// `resize` (Nova's `migration_type`).
    pub kind: String,
    /// migrating, finished (waiting for confirm or revert), confirmed, reverted, error
    pub status: String,
    pub source_compute: String,
    pub dest_compute: String,
    pub old_flavor_id: String,
    pub new_flavor_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Service-wide facts, such as whether the default flavors were created.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Setting {
    pub id: String,
    pub value: serde_json::Value,
}

impl Server {
    /// Servers are indexed by project and by host.
    fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
        f("project_id", &self.project_id);
        if let Some(h) = &self.host {
            f("host", h);
        }
        let created = self.created_key();
        f(SERVER_CREATED, &created);
        f(SERVER_PROJECT_CREATED, &format!("{}/{created}", self.project_id));
    }

    /// The creation time as the listing indexes file it: fixed width, so text order is time
    /// order.
    pub fn created_key(&self) -> String {
        haneul_core::docstore::time_key(&self.created_at)
    }
}

/// Index of servers by creation time (Nova lists newest first), and by project then time.
pub const SERVER_CREATED: &str = "created";
pub const SERVER_PROJECT_CREATED: &str = "project_created";

impl Model {
    /// The servers of a project.
    pub fn servers_of<'a>(&'a self, project_id: &str) -> impl Iterator<Item = &'a Server> + 'a {
        self.servers.by("project_id", project_id)
    }

    /// The servers placed on a host.
    pub fn servers_on<'a>(&'a self, host: &str) -> impl Iterator<Item = &'a Server> + 'a {
        self.servers.by("host", host)
    }
}

haneul_core::record!(Model; Flavor, "flavors", flavors);
haneul_core::record!(Model; FlavorAccess, "flavor_access", flavor_access);
haneul_core::record!(Model; Keypair, "keypairs", keypairs);
haneul_core::record!(Model; Setting, "compute_settings", settings);
haneul_core::record!(Model; Server, "servers", servers, indexes: index_keys);
haneul_core::record!(Model; QuotaLimits, "quota_limits", quotas);
haneul_core::record!(Model; ServerGroup, "server_groups", server_groups);
haneul_core::record!(Model; Service, "compute_services", services);
haneul_core::record!(Model; Aggregate, "compute_aggregates", aggregates);

/// Instance actions grow with every request on a server and stay after it is deleted: kept
/// in the database only, listed by server (ADR 0006).
impl haneul_core::docstore::Logged for InstanceAction {
    const TABLE: &'static str = "compute_action_log";
    fn id(&self) -> &str {
        &self.id
    }
    fn parent(&self) -> &str {
        &self.server_id
    }
    fn at(&self) -> DateTime<Utc> {
        self.updated_at
    }
}

/// What stays of deleted servers grows with every delete: kept in the database only, listed
/// by project, purged by `haneul db purge`.
impl haneul_core::docstore::Logged for DeletedServer {
    const TABLE: &'static str = "compute_deleted_server_log";
    fn id(&self) -> &str {
        &self.id
    }
    fn parent(&self) -> &str {
        &self.project_id
    }
    fn at(&self) -> DateTime<Utc> {
        self.terminated_at
    }
}

/// The log tables of the compute service, and the document tables they replaced.
pub const LOGS: &[(&str, &str)] = &[
    (<InstanceAction as haneul_core::docstore::Logged>::TABLE, "compute_instance_actions"),
    (<DeletedServer as haneul_core::docstore::Logged>::TABLE, "compute_deleted_servers"),
];
haneul_core::record!(Model; Migration, "compute_migrations", migrations);
haneul_core::record!(Model; Workflow, "compute_workflows", workflows);

/// One entry of a create's `networks`: a network, a port, a fixed address on the network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetRequest {
    pub network_id: Option<String>,
    pub port_id: Option<String>,
    pub fixed_ip: Option<String>,
    pub tag: Option<String>,
}

/// A port of a server as its view and its guest need it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerPort {
    pub port_id: String,
    pub network_id: String,
    pub network_name: String,
    pub mac: String,
    pub mtu: u32,
    pub ips: Vec<String>,
    /// A port the user created and named: only let go at delete, not deleted.
    pub preexisting: bool,
    /// The names of the port's security groups (the server view's `security_groups`), as
    /// the port was made or last changed through the server.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// The guest's PCI slot for the port's NIC (see [`crate::service::network::SLOTS`]); none for ports of servers
    /// made before slots were kept.
    #[serde(default)]
    pub slot: Option<u8>,
    /// The floating IPs associated with the port, as the network service last told
    /// (Nova's `network-changed` event) or as they were when the port was plugged.
    #[serde(default)]
    pub floating_ips: Vec<String>,
    /// The device tag the port was asked with (`networks[].tag`, an attach's `tag`).
    #[serde(default)]
    pub tag: Option<String>,
}

/// A workflow under way (see `crate::service::workflow`): its steps and where each stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Started,
    Done,
    Undone,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub state: StepState,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Workflow {
    /// `<kind>/<subject>`: one workflow of a kind per subject at a time.
    pub id: String,
    pub kind: String,
    /// What it works on (the server's id).
    pub subject: String,
    /// The request that began it (its instance action).
    pub request_id: String,
    pub steps: Vec<Step>,
    /// Why it is being undone; none while it goes forward.
    pub failure: Option<String>,
    /// What the steps need beyond the subject's record.
    pub input: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl Workflow {
    pub fn new(kind: &str, subject: &str, request_id: &str, steps: &[&str], input: serde_json::Value) -> Workflow {
        Workflow {
            id: format!("{kind}/{subject}"),
            kind: kind.to_string(),
            subject: subject.to_string(),
            request_id: request_id.to_string(),
            steps: steps.iter().map(|s| Step { name: s.to_string(), state: StepState::Pending }).collect(),
            failure: None,
            input,
            created_at: Utc::now(),
        }
    }
}

#[derive(Clone, Default)]
pub struct Model {
    generation: u64,
    pub flavors: Table<Flavor>,
    pub flavor_access: Table<FlavorAccess>,
    pub keypairs: Table<Keypair>,
    pub settings: Table<Setting>,
    pub servers: Table<Server>,
    pub quotas: Table<QuotaLimits>,
    pub server_groups: Table<ServerGroup>,
    pub services: Table<Service>,
    pub aggregates: Table<Aggregate>,
    pub migrations: Table<Migration>,
    /// Workflows under way (server builds), each step recorded as it goes.
    pub workflows: Table<Workflow>,
}

impl Model {
    pub fn access_of<'a>(&'a self, flavor_id: &str) -> impl Iterator<Item = &'a FlavorAccess> + 'a {
        haneul_core::docstore::children(&self.flavor_access, flavor_id)
    }

    /// The availability zone of a compute host: its aggregate's, else the default zone.
    pub fn host_zone(&self, host: &str) -> String {
        let mut aggs: Vec<&Aggregate> = self.aggregates.values().map(|a| &**a).collect();
        aggs.sort_by_key(|a| a.number);
        aggs.into_iter()
            .filter(|a| a.hosts.iter().any(|h| h == host))
            .find_map(|a| a.zone().map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_ZONE.to_string())
    }

    /// The zone a service is in: its host's for `nova-compute`, `internal` for the others.
    pub fn service_zone(&self, s: &Service) -> String {
        if s.binary == "nova-compute" {
            self.host_zone(&s.host)
        } else {
            INTERNAL_ZONE.to_string()
        }
    }

    pub fn keypairs_of<'a>(&'a self, user_id: &str) -> impl Iterator<Item = &'a Keypair> + 'a {
        haneul_core::docstore::children(&self.keypairs, user_id)
    }
}

haneul_core::snapshot!(
    Model;
    Flavor,
    FlavorAccess,
    Keypair,
    Setting,
    Server,
    QuotaLimits,
    ServerGroup,
    Service,
    Aggregate,
    Migration,
    Workflow,
);
