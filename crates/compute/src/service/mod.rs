//! The compute service layer: everything that is not HTTP. [`Compute`] (its state, settings
//! and the clients it calls other services with) and the default flavors here; builds and
//! server operations ([`servers`], [`workflow`]), scheduling and claims ([`scheduler`]),
//! hosts and their agents ([`hosts`], [`agents`]), ports ([`network`]), aggregates, quotas,
//! instance actions and key generation in their modules.

pub mod actions;
pub mod agents;
pub mod aggregates;
pub mod configdrive;
pub mod hosts;
pub mod keygen;
pub mod network;
pub mod quotas;
pub mod scheduler;
pub mod servers;
pub mod workflow;

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use haneul_core::config::Config;
use haneul_core::docstore::{State, StoreError, Txn as DocTxn};
use haneul_core::policy::{PolicyError, PolicyFile};

use crate::model::{Flavor, Model, Setting};

pub type Txn = DocTxn<Model>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the compute service's work comes to when it does not succeed: the outcomes a caller
/// is told (not found, conflict, bad request, forbidden, with Nova's message), and failures
/// of the service, each with its cause. The API layer picks the status and the fault body.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a host's agent could not do it")]
    Agent(#[from] crate::service::agents::AgentError),
    #[error("compute policy could not be loaded")]
    Policy(#[source] PolicyError),
    /// A file of the service (the metadata proxy secret).
    #[error(transparent)]
    File(#[from] haneul_core::error::FileError),
    /// Placement did not take a change to a host's provider; `what` the change was.
    #[error("{what}")]
    Placement {
        what: String,
        #[source]
        source: haneul_placement::service::Error,
    },
    /// Nova's `InterfaceAttachFailed`: the port could not be made, bound or plugged in.
    #[error("Failed to attach network adapter device to {server_id}")]
    AttachFailed {
        server_id: String,
        #[source]
        source: AttachError,
    },
}

/// Why a port made for an attach could not be plugged into the server (the cause of Nova's
/// `InterfaceAttachFailed`). Here rather than in [`network`], which would otherwise
/// depend on [`agents`] (and they on it, through the config drive).
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("no port")]
    NoPort,
    #[error(transparent)]
    Agent(#[from] agents::AgentError),
}

pub struct Settings {
    /// The compute endpoint (`http://host:8774`), for links.
    pub public_url: String,
    pub key_pairs_quota: usize,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    pub reserved_host_memory_mb: i64,
    pub reserved_host_disk_mb: i64,
    /// Seconds without a report after which a compute service is down.
    pub service_down_time: u64,
}

pub struct Compute {
    state: State<Model>,
    pub policy: PolicyFile,
    pub settings: Settings,
    /// Where resources are counted and claimed.
    pub placement: Arc<haneul_placement::Placement>,
    /// The host the controller's own services (scheduler, conductor) run on.
    pub controller_host: String,
    /// The service user's token, for calls to the host agents.
    pub service: Arc<haneul_core::service_auth::ServiceToken>,
    /// The image service (Nova's image proxy, snapshot images, the images a server boots).
    pub images: haneul_core::image_api::ImageApi,
    /// The key metadata proxies sign instance ids with.
    pub metadata_secret: Vec<u8>,
    /// Remote console tokens handed out and not yet expired (kept in memory, as short-lived
    /// as Nova's: a restart ends them).
    pub consoles: std::sync::Mutex<std::collections::HashMap<String, ConsoleToken>>,
    /// One lock per server whose ports are being attached or detached: one change at a time.
    pub interface_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What a console token opens: the instance's VNC on its host, until `expires`.
#[derive(Clone, Debug)]
pub struct ConsoleToken {
    pub instance_uuid: String,
    pub host: String,
    pub expires: chrono::DateTime<Utc>,
}

/// The flavors a new cloud has, as DevStack creates them (id, name, MiB, vCPUs, GiB), plus
/// `m1.nano`, sized for the test image under TCG.
pub const DEFAULT_FLAVORS: &[(&str, &str, i64, i64, i64)] = &[
    ("1", "m1.tiny", 512, 1, 1),
    ("2", "m1.small", 2048, 1, 20),
    ("3", "m1.medium", 4096, 2, 40),
    ("4", "m1.large", 8192, 4, 80),
    ("5", "m1.xlarge", 16384, 8, 160),
    ("42", "m1.nano", 256, 1, 1),
];
const SEEDED: &str = "default_flavors_created";

impl Compute {
    /// Opens the database; on the very first start, creates the default flavors (an
    /// operator who deletes them later does not get them back).
    pub async fn open(
        config: &Config,
        placement: Arc<haneul_placement::Placement>,
        service: Arc<haneul_core::service_auth::ServiceToken>,
    ) -> Result<Arc<Compute>> {
        let db =
            haneul_core::docstore::Store::open(&config.compute_database_url(), "compute", crate::model::TABLES, &[])
                .await?;
        db.ensure_logs(&crate::model::LOGS.iter().map(|(t, _)| *t).collect::<Vec<_>>()).await?;
        let moved = db.log_adopt::<crate::model::InstanceAction>("compute_instance_actions").await?
            + db.log_adopt::<crate::model::DeletedServer>("compute_deleted_servers").await?;
        if moved > 0 {
            tracing::info!(moved, "instance actions and deleted servers moved to their log tables");
        }
        let state = State::<Model>::open(db).await?;
        let policy = PolicyFile::new(config.compute_policy_file(), crate::policy_defaults::DEFAULT_RULES)
            .map_err(Error::Policy)?;
        let metadata_secret = metadata_secret(config)?;
        let compute = Arc::new(Compute {
            state,
            policy,
            settings: Settings {
                public_url: config.public_url(config.compute.port),
                key_pairs_quota: config.compute.key_pairs_quota,
                cpu_allocation_ratio: config.compute.cpu_allocation_ratio,
                ram_allocation_ratio: config.compute.ram_allocation_ratio,
                disk_allocation_ratio: config.compute.disk_allocation_ratio,
                reserved_host_memory_mb: config.compute.reserved_host_memory_mb,
                reserved_host_disk_mb: config.compute.reserved_host_disk_mb,
                service_down_time: config.compute.service_down_time,
            },
            placement,
            controller_host: config.compute_host(),
            service,
            images: haneul_core::image_api::ImageApi::new(&config.public_url(config.image.port)),
            metadata_secret,
            consoles: Default::default(),
            interface_locks: Default::default(),
        });
        if !compute.model().settings.contains_key(SEEDED) {
            compute
                .write(|t| {
                    let now = Utc::now();
                    for (id, name, ram, vcpus, disk) in DEFAULT_FLAVORS {
                        if t.m.flavors.contains_key(*id) || t.m.flavors.values().any(|f| f.name == *name) {
                            continue;
                        }
                        t.put(Flavor {
                            id: id.to_string(),
                            name: name.to_string(),
                            ram: *ram,
                            vcpus: *vcpus,
                            disk: *disk,
                            ephemeral: 0,
                            swap: 0,
                            rxtx_factor: 1.0,
                            is_public: true,
                            disabled: false,
                            description: None,
                            extra_specs: Default::default(),
                            created_at: now,
                        })?;
                    }
                    t.put(Setting { id: SEEDED.into(), value: serde_json::Value::Bool(true) })?;
                    Ok(())
                })
                .await?;
        }
        compute.recover().await?;
        compute.heartbeat().await?;
        Ok(compute)
    }

    pub fn model(&self) -> Arc<Model> {
        self.state.model()
    }

    /// The database, for the records kept there only (instance actions, deleted servers).
    pub fn store(&self) -> &haneul_core::docstore::Store {
        self.state.store()
    }

    pub async fn write<R>(&self, f: impl FnOnce(&mut Txn) -> Result<R>) -> Result<R> {
        self.state.write(f).await
    }

    pub async fn refresh(&self) -> Result<bool> {
        Ok(self.state.refresh().await?)
    }
}

/// The metadata proxy secret: the configured one, else one generated on first start into
/// `<data_dir>/metadata-proxy-secret` (mode 0600) and kept.
fn metadata_secret(config: &Config) -> Result<Vec<u8>> {
    if !config.compute.metadata_proxy_shared_secret.is_empty() {
        return Ok(config.compute.metadata_proxy_shared_secret.as_bytes().to_vec());
    }
    let path = config.metadata_secret_file();
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_error("reading", &path)(e)),
    }
    let secret: String = (0..2).map(|_| uuid::Uuid::new_v4().simple().to_string()).collect();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(file_error("writing", &tmp))?;
    f.write_all(secret.as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(file_error("writing", &path))?;
    Ok(secret.into_bytes())
}

/// `Error::File`: `what` failed on `path`.
fn file_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let at = haneul_core::error::FileError::at(what, path);
    move |source| Error::File(at(source))
}
