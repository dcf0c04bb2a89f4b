//! `haneul.toml`: every option with its default, overridable from the environment.
//!
//! An environment variable `HANEUL_<SECTION>__<KEY>` (or `HANEUL_<KEY>` for top-level keys)
//! overrides the file; its value is read as a TOML value when it parses as one (numbers,
//! booleans) and as a string otherwise. Unknown keys in the file are an error, so typos do not
//! pass silently; `HANEUL_*` variables that name no option are reported and ignored (other
//! tools share the prefix).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("invalid config file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        err: toml::de::Error,
    },
    #[error("invalid configuration")]
    Invalid {
        #[source]
        err: toml::de::Error,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where databases, keys and generated credentials live.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub identity: IdentityConfig,
    pub image: ImageConfig,
    pub compute: ComputeConfig,
    pub placement: PlacementConfig,
    pub network: NetworkConfig,
    pub agent: AgentConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the API services listen on.
    pub bind: String,
    /// Host name or address written into catalog endpoints and `clouds.yaml`.
    pub public_host: String,
    /// `tracing` filter, e.g. `info` or `haneul=debug,sqlx=warn`.
    pub log: String,
    /// Largest accepted request body, in bytes (Keystone's default).
    pub max_request_body_size: usize,
    /// The services `haneul serve` runs, in start order: any of identity, image, placement,
    /// compute, network, agent. Identity is always among them (the others validate tokens
    /// in-process); compute needs placement beside it. Without `agent` this host runs no
    /// guests (a controller only).
    pub services: Vec<String>,
}

/// Every service `haneul serve` knows, in the order it opens them.
pub const SERVICES: &[&str] = &["identity", "image", "placement", "network", "compute", "agent"];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    pub port: u16,
    /// Database URL: `sqlite:///path/identity.db` or `postgres://user:pw@host/db`.
    /// Empty means `identity.db` in the data directory.
    pub database_url: String,
    /// Token lifetime in seconds.
    pub token_expiration: u64,
    /// Extra seconds a token may be used after expiry to be exchanged (`allow_expired`).
    pub allow_expired_window: u64,
    /// bcrypt cost for new password hashes (Keystone's default is 12).
    pub password_hash_rounds: u32,
    /// Number of token keys kept: primary, secondaries and the staged key.
    pub max_active_keys: usize,
    /// Directory of token keys; empty means `fernet-keys` in the data directory.
    pub key_repository: String,
    /// Region the bootstrap creates and catalog entries use.
    pub region: String,
    /// Password of the bootstrap `admin` user; empty means generate one on first start.
    pub admin_password: String,
    /// oslo.policy overrides (YAML or JSON); empty means `policy.yaml` in the data directory.
    /// A missing file means the defaults. The file is re-read when it changes.
    pub policy_file: String,
    /// Most entries a list call returns (`truncated` is set past it); 0 means no limit.
    pub list_limit: usize,
    /// Security compliance (Keystone's `[security_compliance]`): failed password
    /// authentications before a user is locked out; 0 turns lockout off.
    pub lockout_failure_attempts: u32,
    /// Seconds a locked-out user stays locked.
    pub lockout_duration: u64,
    /// A new self-service password must differ from this many latest passwords (the current
    /// one included); 0 or 1 turns the check off.
    pub unique_last_password_count: usize,
    /// Days a password must be kept before its user may change it again; 0 = no minimum.
    pub minimum_password_age: u32,
    /// Days after which a password expires; 0 = never.
    pub password_expires_days: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    pub port: u16,
    /// Database URL as for identity; empty means `image.db` in the data directory.
    pub database_url: String,
    /// Directory of image data; empty means `images` in the data directory.
    pub store_dir: String,
    /// Largest image accepted, in bytes (Glance's `image_size_cap`, 1 TiB).
    pub image_size_cap: u64,
    /// Most members, extra properties and tags per image (Glance's `image_*_quota`).
    pub image_member_quota: usize,
    pub image_property_quota: usize,
    pub image_tag_quota: usize,
    /// Run `qemu-img info` (under limits) on uploads of inspectable formats, as a second opinion.
    pub qemu_img_check: bool,
    /// oslo.policy overrides for the image API; empty means `image-policy.yaml` in the data directory.
    pub policy_file: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeConfig {
    pub port: u16,
    /// Database URL as for identity; empty means `compute.db` in the data directory.
    pub database_url: String,
    /// oslo.policy overrides for the compute API; empty means `compute-policy.yaml` in the data directory.
    pub policy_file: String,
    /// Key pairs per user (Nova's `key_pairs` quota).
    pub key_pairs_quota: usize,
    /// Where instance disks, config drives, sockets and console logs live, and the image
    /// cache (`_base`); empty means `instances` in the data directory.
    pub instances_dir: String,
    /// `tcg`, `kvm`, or `auto`: KVM only when `probe_kernel` and `probe_initrd` (a guest that
    /// prints `HANEUL-TESTIMG: booted`, such as the test image's) boot under it, else TCG.
    pub accel: String,
    pub probe_kernel: String,
    pub probe_initrd: String,
    /// Largest console log kept per instance, in bytes.
    pub console_log_max: u64,
    /// How much guests yield the CPU to the host's own work: the nice value (0..19) of each
    /// QEMU and of its session's scheduling group (autogroup). Guests still get every idle
    /// cycle; under contention the control plane, DHCP and the agent go first.
    pub guest_nice: i32,
    /// This host's name as compute knows it (services, hypervisors, placement provider);
    /// empty means the kernel's host name.
    pub host: String,
    /// Overcommit of this host's resources, as Nova's `initial_*_allocation_ratio`.
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    /// Memory (MiB) and disk (MiB) kept for the host itself.
    pub reserved_host_memory_mb: i64,
    pub reserved_host_disk_mb: i64,
    /// Port of the metadata service (what guests reach as 169.254.169.254 through a proxy).
    pub metadata_port: u16,
    /// Secret the metadata proxies sign instance ids with (Nova's
    /// `metadata_proxy_shared_secret`); empty means one generated into the data directory.
    pub metadata_proxy_shared_secret: String,
    /// Seconds without a report after which a compute service is down (Nova's `service_down_time`).
    pub service_down_time: u64,
    /// A guest image `serve` offers as a public image on its first start with the file in
    /// place (as Packstack's demo provisioning uploads CirrOS); empty means
    /// `<data_dir>/haneul-testimg.qcow2` (what `tools/build-test-image.sh` builds).
    pub demo_image: String,
    /// The name it gets.
    pub demo_image_name: String,
}

/// The host agent (`haneul agent`, or the one inside `haneul serve`). Host-side settings
/// (host name, instances directory, accelerator, allocation ratios) are in `[compute]`, as
/// they are in nova-compute's configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Port of the agent's internal API, which the controller calls.
    pub port: u16,
    /// Where the controller reaches this agent; empty means `http://<public_host>:<port>`.
    pub url: String,
    /// The controller's identity endpoint (`http://controller:5000/v3`); empty means this
    /// host's own (`serve`).
    pub auth_url: String,
    /// The service user the agent and the controller act as between each other.
    pub username: String,
    /// Its password; empty means the one `serve` keeps in `<data_dir>/service-password`.
    pub password: String,
    pub project_name: String,
    /// Seconds between reports to the controller (Nova's `report_interval`).
    pub report_interval: u64,
    /// Port of this host's remote console proxy (Nova's novncproxy, 6080).
    pub console_port: u16,
    /// Where browsers reach that proxy; empty means `http://<public_host>:<console_port>`.
    pub console_url: String,
    /// noVNC's files, served by the proxy (Debian's `novnc` package).
    pub novnc_dir: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            port: 8790,
            url: String::new(),
            auth_url: String::new(),
            username: "nova".into(),
            password: String::new(),
            project_name: "service".into(),
            report_interval: 10,
            console_port: 6080,
            console_url: String::new(),
            novnc_dir: "/usr/share/novnc".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PlacementConfig {
    pub port: u16,
    /// Database URL as for identity; empty means `placement.db` in the data directory.
    pub database_url: String,
    /// oslo.policy overrides for the placement API; empty means `placement-policy.yaml` in the
    /// data directory.
    pub policy_file: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    pub port: u16,
    /// Database URL as for identity; empty means `network.db` in the data directory.
    pub database_url: String,
    /// oslo.policy overrides for the network API; empty means `network-policy.yaml` in the
    /// data directory.
    pub policy_file: String,
    /// MTU of the underlay; tenant (VXLAN) networks get 50 bytes less, flat ones all of it.
    pub global_physnet_mtu: u32,
    /// The DNS domain ports' host names are in (Neutron's `dns_domain`).
    pub dns_domain: String,
    /// Whether this host's agent builds the data plane (bridges, taps, namespaces, dnsmasq,
    /// firewall); off, servers still get ports but no wire.
    pub dataplane: bool,
    /// Whether this host is also the network node: DHCP servers, routers and metadata
    /// proxies run here (the all-in-one host is).
    pub network_node: bool,
    /// A network namespace the data plane takes for "the host": its bridges and taps go
    /// there and guests run in it. Empty: the host itself. The tests set one they made.
    pub host_namespace: String,
    /// Put before the names of the namespaces the data plane makes (`qdhcp-...`,
    /// `qrouter-...`), so that two clouds (or a test's) on one host keep theirs apart.
    pub namespace_prefix: String,
    /// Physical networks on real NICs, `physnet:interface,...` (Neutron's
    /// `physical_interface_mappings`): the network's bridge takes in that NIC. A flat
    /// external network on a physical network not listed here is bridged to the host
    /// instead, which gets the subnets' gateway addresses on that bridge (DevStack's
    /// `br-ex`): floating IPs answer from the host.
    pub physical_interface_mappings: String,
    /// This host's address for VXLAN tunnels to the other hosts (Neutron's `local_ip`):
    /// tenant networks reach hosts through it. Empty: no tunnels (one host is enough).
    pub local_ip: String,
    /// Where the metadata proxies send guests' requests; empty means this host's metadata
    /// service (`http://<public_host>:<compute.metadata_port>`).
    pub metadata_url: String,
    /// Where the data plane keeps dnsmasq's files (readable by `nobody`, as dnsmasq drops
    /// to it).
    pub state_dir: String,
    /// `serve` makes Packstack's demo layout on its first start: an external `public`
    /// network (flat, physical network `public`) with `demo_public_cidr`, and in the demo
    /// project a `private` network (`demo_private_cidr`) joined to it by `router1`; the demo
    /// project's default security group also lets ping and SSH in.
    pub demo_layout: bool,
    pub demo_public_cidr: String,
    pub demo_private_cidr: String,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            port: 9696,
            database_url: String::new(),
            policy_file: String::new(),
            global_physnet_mtu: 1500,
            dns_domain: "openstacklocal.".into(),
            dataplane: true,
            network_node: true,
            host_namespace: String::new(),
            namespace_prefix: String::new(),
            physical_interface_mappings: String::new(),
            local_ip: String::new(),
            metadata_url: String::new(),
            state_dir: "/run/haneul/network".into(),
            demo_layout: true,
            demo_public_cidr: "172.24.4.0/24".into(),
            demo_private_cidr: "10.0.0.0/24".into(),
        }
    }
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig { port: 8778, database_url: String::new(), policy_file: String::new() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("/var/lib/haneul"),
            server: ServerConfig::default(),
            identity: IdentityConfig::default(),
            image: ImageConfig::default(),
            compute: ComputeConfig::default(),
            placement: PlacementConfig::default(),
            network: NetworkConfig::default(),
            agent: AgentConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "0.0.0.0".into(),
            public_host: "127.0.0.1".into(),
            log: "info".into(),
            max_request_body_size: 114_688,
            services: SERVICES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            port: 5000,
            database_url: String::new(),
            token_expiration: 3600,
            allow_expired_window: 172_800,
            password_hash_rounds: 12,
            max_active_keys: 3,
            key_repository: String::new(),
            region: "RegionOne".into(),
            admin_password: String::new(),
            policy_file: String::new(),
            list_limit: 0,
            lockout_failure_attempts: 0,
            lockout_duration: 1800,
            unique_last_password_count: 0,
            minimum_password_age: 0,
            password_expires_days: 0,
        }
    }
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            port: 9292,
            database_url: String::new(),
            store_dir: String::new(),
            image_size_cap: 1 << 40,
            image_member_quota: 128,
            image_property_quota: 128,
            image_tag_quota: 128,
            qemu_img_check: true,
            policy_file: String::new(),
        }
    }
}

impl Default for ComputeConfig {
    fn default() -> Self {
        ComputeConfig {
            port: 8774,
            database_url: String::new(),
            policy_file: String::new(),
            key_pairs_quota: 100,
            instances_dir: String::new(),
            accel: "auto".into(),
            probe_kernel: String::new(),
            probe_initrd: String::new(),
            console_log_max: 4 << 20,
            guest_nice: 10,
            host: String::new(),
            cpu_allocation_ratio: 4.0,
            ram_allocation_ratio: 1.0,
            disk_allocation_ratio: 1.0,
            reserved_host_memory_mb: 512,
            reserved_host_disk_mb: 0,
            metadata_port: 8775,
            metadata_proxy_shared_secret: String::new(),
            service_down_time: 60,
            demo_image: String::new(),
            demo_image_name: "cirros-0.6.3-x86_64-disk".into(),
        }
    }
}

impl Config {
    /// The listeners a service serves its APIs on: `(api name, port)`.
    pub fn listeners(&self, service: &str) -> Vec<(&'static str, u16)> {
        match service {
            "identity" => vec![("identity", self.identity.port)],
            "image" => vec![("image", self.image.port)],
            "placement" => vec![("placement", self.placement.port)],
            "network" => vec![("network", self.network.port)],
            "compute" => vec![("compute", self.compute.port), ("metadata", self.compute.metadata_port)],
            "agent" => vec![("agent", self.agent.port), ("console", self.agent.console_port)],
            _ => Vec::new(),
        }
    }

    /// Reads `path` if given (a missing default file is fine), then applies `env` overrides.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        Self::load_reporting(path, env).map(|(c, _)| c)
    }

    /// As [`Config::load`], also returning the `HANEUL_*` variables that name no option.
    pub fn load_reporting(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let mut table = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|err| ConfigError::Read { path: p.into(), err })?;
                text.parse::<toml::Table>().map_err(|err| ConfigError::Parse { path: p.into(), err })?
            }
            None => toml::Table::new(),
        };
        let ignored = apply_env(&mut table, env);
        let cfg = toml::Value::Table(table).try_into().map_err(|err| ConfigError::Invalid { err })?;
        Ok((cfg, ignored))
    }

    /// The identity database URL, defaulting to SQLite in the data directory.
    pub fn identity_database_url(&self) -> String {
        if self.identity.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("identity.db").display())
        } else {
            self.identity.database_url.clone()
        }
    }

    /// The image database URL, defaulting to SQLite in the data directory.
    pub fn image_database_url(&self) -> String {
        if self.image.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("image.db").display())
        } else {
            self.image.database_url.clone()
        }
    }

    /// The compute database URL, defaulting to SQLite in the data directory.
    pub fn compute_database_url(&self) -> String {
        if self.compute.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("compute.db").display())
        } else {
            self.compute.database_url.clone()
        }
    }

    /// The placement database URL, defaulting to SQLite in the data directory.
    pub fn placement_database_url(&self) -> String {
        if self.placement.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("placement.db").display())
        } else {
            self.placement.database_url.clone()
        }
    }

    pub fn network_database_url(&self) -> String {
        if self.network.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("network.db").display())
        } else {
            self.network.database_url.clone()
        }
    }

    pub fn network_policy_file(&self) -> PathBuf {
        if self.network.policy_file.is_empty() {
            self.data_dir.join("network-policy.yaml")
        } else {
            PathBuf::from(&self.network.policy_file)
        }
    }

    pub fn placement_policy_file(&self) -> PathBuf {
        if self.placement.policy_file.is_empty() {
            self.data_dir.join("placement-policy.yaml")
        } else {
            PathBuf::from(&self.placement.policy_file)
        }
    }

    /// The compute host name: `compute.host`, else the kernel's host name.
    pub fn compute_host(&self) -> String {
        if !self.compute.host.is_empty() {
            return self.compute.host.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    }

    /// The demo image `serve` seeds.
    pub fn demo_image(&self) -> PathBuf {
        if self.compute.demo_image.is_empty() {
            self.data_dir.join("haneul-testimg.qcow2")
        } else {
            PathBuf::from(&self.compute.demo_image)
        }
    }

    pub fn instances_dir(&self) -> PathBuf {
        if self.compute.instances_dir.is_empty() {
            self.data_dir.join("instances")
        } else {
            PathBuf::from(&self.compute.instances_dir)
        }
    }

    pub fn compute_policy_file(&self) -> PathBuf {
        if self.compute.policy_file.is_empty() {
            self.data_dir.join("compute-policy.yaml")
        } else {
            PathBuf::from(&self.compute.policy_file)
        }
    }

    pub fn image_store_dir(&self) -> PathBuf {
        if self.image.store_dir.is_empty() {
            self.data_dir.join("images")
        } else {
            PathBuf::from(&self.image.store_dir)
        }
    }

    pub fn image_policy_file(&self) -> PathBuf {
        if self.image.policy_file.is_empty() {
            self.data_dir.join("image-policy.yaml")
        } else {
            PathBuf::from(&self.image.policy_file)
        }
    }

    pub fn key_repository(&self) -> PathBuf {
        if self.identity.key_repository.is_empty() {
            self.data_dir.join("fernet-keys")
        } else {
            PathBuf::from(&self.identity.key_repository)
        }
    }

    pub fn policy_file(&self) -> PathBuf {
        if self.identity.policy_file.is_empty() {
            self.data_dir.join("policy.yaml")
        } else {
            PathBuf::from(&self.identity.policy_file)
        }
    }

    /// Where the controller reaches this host's agent.
    /// Where `serve` keeps the metadata proxy secret it generated (when
    /// `compute.metadata_proxy_shared_secret` is empty).
    pub fn metadata_secret_file(&self) -> PathBuf {
        self.data_dir.join("metadata-proxy-secret")
    }

    pub fn agent_url(&self) -> String {
        if self.agent.url.is_empty() {
            self.public_url(self.agent.port)
        } else {
            self.agent.url.trim_end_matches('/').to_string()
        }
    }

    /// Where browsers reach this host's console proxy.
    pub fn console_url(&self) -> String {
        if self.agent.console_url.is_empty() {
            self.public_url(self.agent.console_port)
        } else {
            self.agent.console_url.trim_end_matches('/').to_string()
        }
    }

    /// The identity endpoint the agent authenticates against.
    pub fn agent_auth_url(&self) -> String {
        if self.agent.auth_url.is_empty() {
            format!("{}/v3", self.public_url(self.identity.port))
        } else {
            self.agent.auth_url.trim_end_matches('/').to_string()
        }
    }

    /// Base URL of a service on this host, as written into the catalog.
    pub fn public_url(&self, port: u16) -> String {
        let host = &self.server.public_host;
        if host.contains(':') && !host.starts_with('[') {
            format!("http://[{host}]:{port}")
        } else {
            format!("http://{host}:{port}")
        }
    }
}

const ENV_PREFIX: &str = "HANEUL_";

/// Applies the overrides that name a known option; returns the names of the others.
fn apply_env(table: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let known = toml::Table::try_from(Config::default()).unwrap_or_default();
    let mut ignored = Vec::new();
    for (key, raw) in env {
        let Some(rest) = key.strip_prefix(ENV_PREFIX) else { continue };
        // The binary's own flags (HANEUL_CONFIG, HANEUL_DATA_DIR handled by clap) are not config keys
        // except data_dir, which is both.
        if rest == "CONFIG" || rest == "FAULT_PAUSE_AT" {
            continue;
        }
        let value = raw
            .parse::<toml::Value>()
            .ok()
            .or_else(|| format!("v = {raw}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v")))
            .unwrap_or(toml::Value::String(raw.clone()));
        let (section, field) = match rest.split_once("__") {
            Some((s, f)) => (Some(s.to_ascii_lowercase()), f.to_ascii_lowercase()),
            None => (None, rest.to_ascii_lowercase()),
        };
        let is_known = match &section {
            Some(s) => known.get(s).and_then(|t| t.as_table()).is_some_and(|t| t.contains_key(&field)),
            None => known.get(&field).is_some_and(|v| !v.is_table()),
        };
        if !is_known {
            ignored.push(key.clone());
            continue;
        }
        // A list option also takes the plain `a,b,c` form.
        let is_list =
            section.as_ref().and_then(|s| known.get(s)).and_then(|t| t.get(&field)).is_some_and(|v| v.is_array());
        let value = match value {
            toml::Value::String(s) if is_list => toml::Value::Array(
                s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(|x| toml::Value::String(x.into())).collect(),
            ),
            v => v,
        };
        match rest.split_once("__") {
            Some((section, field)) => {
                let section = section.to_ascii_lowercase();
                let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(t) = entry {
                    t.insert(field.to_ascii_lowercase(), value);
                }
            }
            None => {
                table.insert(rest.to_ascii_lowercase(), value);
            }
        }
    }
    ignored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_without_a_file() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.identity.port, 5000);
        assert_eq!(c.identity.password_hash_rounds, 12);
        assert_eq!(c.identity_database_url(), "sqlite:///var/lib/haneul/identity.db");
    }

    #[test]
    fn environment_overrides_sections_and_top_level_keys() {
        let env = vec![
            ("HANEUL_IDENTITY__PORT".to_string(), "15000".to_string()),
            ("HANEUL_DATA_DIR".to_string(), "/tmp/x".to_string()),
            ("HANEUL_SERVER__PUBLIC_HOST".to_string(), "10.1.2.3".to_string()),
            ("OTHER".to_string(), "1".to_string()),
        ];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.identity.port, 15000);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.server.public_host, "10.1.2.3");
    }

    #[test]
    fn unknown_environment_keys_are_reported_not_applied() {
        let env = vec![
            ("HANEUL_IDENTITY__PROT".to_string(), "1".to_string()),
            ("HANEUL_TEST_OUT".to_string(), "/tmp".to_string()),
        ];
        let (c, ignored) = Config::load_reporting(None, env).unwrap();
        assert_eq!(c.identity.port, 5000);
        assert_eq!(ignored, vec!["HANEUL_IDENTITY__PROT", "HANEUL_TEST_OUT"]);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = std::env::temp_dir().join(format!("haneul-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("haneul.toml");
        std::fs::write(&path, "[identity]\nprot = 1\n").unwrap();
        assert!(Config::load(Some(&path), Vec::new()).is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
