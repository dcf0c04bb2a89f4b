//! The `haneul` binary: the all-in-one cloud (`serve`), first-time setup (`bootstrap`) and
//! operator commands (`token-keys rotate`).
//!
//! This crate only wires things together: configuration, logging, which services a process
//! runs and on which ports. Every rule lives in a service crate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use haneul_core::config::Config;
use haneul_core::service::{CatalogEntry, Listeners, Service};
use haneul_core::service_auth::{Credentials, RemoteValidator, ServiceToken};
use haneul_identity::bootstrap::bootstrap;
use haneul_identity::token::KeyRepository;
use haneul_identity::Identity;

mod logging;
mod policy_cmd;

const DEFAULT_CONFIG: &str = "/etc/haneul/haneul.toml";

#[derive(Parser)]
#[command(name = "haneul", version, about = "A private cloud that speaks the OpenStack APIs")]
struct Cli {
    /// Configuration file (default: /etc/haneul/haneul.toml when it exists, else built-in defaults).
    #[arg(long, global = true, env = "HANEUL_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (databases, token keys, generated credentials); overrides the config file.
    #[arg(long, global = true, env = "HANEUL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the all-in-one cloud: every configured API service in this process, and this
    /// host's agent.
    Serve,
    /// Run a compute node: this host's agent, reporting to the controller at
    /// `agent.auth_url` as the service user (`agent.username`, `agent.password`).
    Agent,
    /// Create the default domain, admin and demo projects and users, roles and catalog;
    /// write keystonerc_admin, keystonerc_demo and clouds.yaml. Safe to run again.
    Bootstrap,
    /// Manage the keys that seal tokens.
    TokenKeys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// The API's access rules.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// This host's network data plane.
    Network {
        #[command(subcommand)]
        action: NetworkAction,
    },
    /// The services' databases.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
}

#[derive(Subcommand)]
enum DbAction {
    /// Delete what stays of deleted servers (their usage records and instance actions)
    /// older than a date, as `nova-manage db purge --before` does; live servers' actions stay.
    Purge {
        /// A date (`2026-12-01`) or a time (RFC 3339, `2026-12-01T12:00:00Z`), in UTC.
        #[arg(long)]
        before: String,
    },
}

#[derive(Subcommand)]
enum NetworkAction {
    /// Walk the path of a server's (or one port's) traffic on this host (port, bridge, tap,
    /// DHCP, metadata, router, NAT, security group) and say where it breaks.
    Diagnose {
        /// A server id or a port id.
        target: String,
    },
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Print every route of every service (JSON) with the rule it asks and what each persona
    /// (system admin, project admin/manager/member/reader, another project's member,
    /// anonymous) gets from it under the effective policy.
    Routes,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Promote the staged key to primary and stage a new one; old keys keep validating
    /// until they age out of `identity.max_active_keys`.
    Rotate,
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let path = match &cli.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    };
    let (mut cfg, ignored) =
        Config::load_reporting(path.as_deref(), std::env::vars()).context("loading configuration")?;
    if let Some(d) = &cli.data_dir {
        cfg.data_dir = d.clone();
    }
    for name in ignored {
        eprintln!("haneul: ignoring environment variable {name}: it names no configuration option");
    }
    Ok(cfg)
}

fn init_logging(cfg: &Config) -> logging::BufferedStdout {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| format!("{},sqlx=warn", cfg.server.log));
    let out = logging::BufferedStdout::start();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(out.clone())
        .init();
    out
}

/// The services this process serves, as the catalog lists them.
fn catalog(cfg: &Config) -> Vec<CatalogEntry> {
    let entry = |name: &str| match name {
        "identity" => Some(haneul_identity::serving::catalog_entry(cfg)),
        "image" => Some(haneul_image::serving::catalog_entry(cfg)),
        "placement" => Some(haneul_placement::serving::catalog_entry(cfg)),
        "network" => Some(haneul_network::serving::catalog_entry(cfg)),
        "compute" => Some(haneul_compute::serving::catalog_entry(cfg)),
        _ => None,
    };
    cfg.server.services.iter().filter_map(|s| entry(s)).collect()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = load_config(&cli)?;
    let log = init_logging(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = match cli.command {
        Command::Serve => rt.block_on(serve(cfg)),
        Command::Agent => rt.block_on(agent(cfg)),
        Command::Bootstrap => rt.block_on(run_bootstrap(cfg)),
        Command::Policy { action: PolicyAction::Routes } => policy_cmd::routes(&cfg),
        Command::Network { action: NetworkAction::Diagnose { ref target } } => rt.block_on(diagnose(cfg, target)),
        Command::Db { action: DbAction::Purge { ref before } } => rt.block_on(purge(cfg, before)),
        Command::TokenKeys { action: KeysAction::Rotate } => {
            let repo = KeyRepository::new(cfg.key_repository(), cfg.identity.max_active_keys);
            let primary = repo.rotate().context("rotating token keys")?;
            println!(
                "Token keys in {} rotated: key {primary} is now primary; running services pick it up within seconds.",
                repo.dir().display()
            );
            Ok(())
        }
    };
    log.flush();
    result
}

async fn open_and_bootstrap(cfg: &Config, reset_password: bool) -> anyhow::Result<Arc<Identity>> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    let ident = Identity::open(cfg).await.context("opening the identity service")?;
    let report = bootstrap(&ident, &cfg.data_dir, &cfg.identity.admin_password, reset_password, &catalog(cfg))
        .await
        .context("bootstrap")?;
    if report.created {
        logging::flush();
        println!("haneul is set up.");
        if let Some(pw) = &report.admin_password {
            println!("  admin password: {pw}");
        }
        println!("  credentials:    source {}", report.keystonerc.display());
        println!(
            "  clouds.yaml:    {}  (clouds: haneul, haneul-admin, haneul-system-admin)",
            report.clouds_yaml.display()
        );
        println!("  try:            source {} && openstack token issue", report.keystonerc.display());
    }
    Ok(ident)
}

async fn run_bootstrap(cfg: Config) -> anyhow::Result<()> {
    open_and_bootstrap(&cfg, true).await?;
    println!("bootstrap complete; credentials in {}", cfg.data_dir.join("keystonerc_admin").display());
    Ok(())
}

/// Checks `server.services`: known names, identity among them, compute beside placement.
fn services_to_run(cfg: &Config) -> anyhow::Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for name in &cfg.server.services {
        let known = haneul_core::config::SERVICES.iter().find(|s| **s == name.as_str());
        let Some(known) = known else {
            anyhow::bail!(
                "server.services names {name:?}, which is not a service (known: {})",
                haneul_core::config::SERVICES.join(", ")
            )
        };
        if !out.contains(known) {
            out.push(*known);
        }
    }
    if !out.contains(&"identity") {
        anyhow::bail!("server.services must include identity: the other services validate tokens with it in-process");
    }
    if out.contains(&"compute") && !out.contains(&"placement") {
        anyhow::bail!("server.services names compute without placement: compute claims resources in-process");
    }
    // Open in dependency order whatever order the configuration names them in.
    out.sort_by_key(|s| haneul_core::config::SERVICES.iter().position(|k| k == s));
    Ok(out)
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let names = services_to_run(&cfg)?;
    // Bind first: a port in use is reported before anything is written.
    let ports: Vec<_> = names.iter().flat_map(|n| cfg.listeners(n)).collect();
    let listeners = Listeners::bind(&cfg.server.bind, &ports).await?;
    let ident = open_and_bootstrap(&cfg, false).await?;
    let service_password = haneul_identity::bootstrap::ensure_service_user(
        &ident,
        &cfg.data_dir,
        &cfg.agent.username,
        &cfg.agent.password,
    )
    .await
    .context("creating the service user")?;
    // The controller and this host's agent call each other over REST as the service user,
    // exactly as they do across hosts.
    let service = ServiceToken::new(Credentials {
        auth_url: format!("{}/v3", cfg.public_url(cfg.identity.port)),
        username: cfg.agent.username.clone(),
        password: service_password,
        project_name: cfg.agent.project_name.clone(),
    });
    let validator = haneul_identity::api::validator(ident.clone());
    let mut services: Vec<Arc<dyn Service>> = Vec::new();
    let mut placement = None;
    let mut compute = None;
    let mut agent = None;
    for name in &names {
        let svc = match *name {
            "identity" => haneul_identity::serving::serving(ident.clone(), &cfg),
            "image" => {
                let images =
                    haneul_image::Images::open(&cfg, ident.clone()).await.context("opening the image service")?;
                haneul_image::serving::serving(images, validator.clone(), &cfg)
            }
            "placement" => {
                let p = haneul_placement::Placement::open(&cfg).await.context("opening the placement service")?;
                placement = Some(p.clone());
                haneul_placement::serving::serving(p, validator.clone(), &cfg)
            }
            "network" => {
                let network = haneul_network::Networking::open(&cfg).await.context("opening the network service")?;
                network.notify_compute_with(service.clone());
                haneul_network::serving::serving(network, validator.clone(), &cfg)
            }
            "compute" => {
                let p = placement.clone().context("compute opens after placement")?;
                let c = haneul_compute::Compute::open(&cfg, p, service.clone())
                    .await
                    .context("opening the compute service")?;
                compute = Some(c.clone());
                haneul_compute::serving::serving(c, validator.clone(), &cfg)
            }
            "agent" => {
                let a = haneul_agent::serving::open(&cfg, service.clone(), validator.clone())
                    .await
                    .context("opening this host's agent")?;
                agent = Some(a.clone());
                a
            }
            other => anyhow::bail!("no service {other}"),
        };
        services.push(svc);
    }
    tracing::info!(
        services = names.join(","),
        listening = listeners.describe(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "services open"
    );
    // This host's first report goes in directly, so that the host takes servers as soon as
    // the APIs answer; the agent reports over REST from then on.
    if let (Some(compute), Some(agent)) = (&compute, &agent) {
        match agent.report().await {
            Ok(r) => compute.agent_report(&cfg.compute_host(), r).await.context("registering this host")?,
            Err(e) => {
                tracing::warn!(error = %haneul_core::service::chain(&e), "this host's agent could not describe the host")
            }
        }
    }
    let seed_cfg = cfg.clone();
    let seeds = (names.contains(&"network"), names.contains(&"image"));
    tokio::spawn(async move {
        if seeds.0 && seed_cfg.network.demo_layout {
            if let Err(e) = seed_demo_network(&seed_cfg, service.clone()).await {
                tracing::warn!(error = format!("{e:#}"), "could not make the demo networks");
            }
        }
        if seeds.1 {
            if let Err(e) = seed_demo_image(&seed_cfg, service).await {
                tracing::warn!(error = format!("{e:#}"), "could not offer the demo image");
            }
        }
    });
    haneul_core::service::run(listeners, services).await?;
    Ok(())
}

/// Makes the demo network layout (`network.demo_layout`), once: a marker in the data
/// directory remembers it was done, so what the operator deletes stays deleted.
async fn seed_demo_network(cfg: &Config, service: Arc<ServiceToken>) -> anyhow::Result<()> {
    use hyper::Method;
    let marker = cfg.data_dir.join(".demo-network-seeded");
    if marker.exists() {
        return Ok(());
    }
    let net = service.endpoint("network").await?;
    let token = service.token().await?;
    let headers = [("x-auth-token", token.as_str())];
    let call = |method: Method, path: &str, body: Option<serde_json::Value>| {
        let url = format!("{}/v2.0{path}", net.trim_end_matches('/'));
        let headers = headers;
        async move { haneul_core::client::json(method, &url, &headers, body).await }
    };
    let projects = haneul_core::client::json(
        Method::GET,
        &format!("{}/projects", service.auth_url().trim_end_matches('/')),
        &headers,
        None,
    )
    .await?;
    let project = |name: &str| -> anyhow::Result<String> {
        projects["projects"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .and_then(|p| p["id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no project {name}"))
    };
    let (admin, demo) = (project("admin")?, project("demo")?);
    let n = &cfg.network;
    let id = |v: serde_json::Value, kind: &str| -> anyhow::Result<String> {
        v[kind]["id"].as_str().map(str::to_owned).with_context(|| format!("the network service made no {kind}"))
    };
    let public = id(
        call(
            Method::POST,
            "/networks",
            Some(serde_json::json!({"network": {
                "name": "public", "project_id": admin, "router:external": true,
                "provider:network_type": "flat", "provider:physical_network": "public",
            }})),
        )
        .await?,
        "network",
    )?;
    let cidr: &str = &n.demo_public_cidr;
    call(
        Method::POST,
        "/subnets",
        Some(serde_json::json!({"subnet": {
            "name": "public_subnet", "project_id": admin, "network_id": public, "ip_version": 4,
            "cidr": cidr, "enable_dhcp": false,
        }})),
    )
    .await?;
    let private = id(
        call(Method::POST, "/networks", Some(serde_json::json!({"network": {"name": "private", "project_id": demo}})))
            .await?,
        "network",
    )?;
    let private_subnet = id(
        call(
            Method::POST,
            "/subnets",
            Some(serde_json::json!({"subnet": {
                "name": "private_subnet", "project_id": demo, "network_id": private, "ip_version": 4,
                "cidr": n.demo_private_cidr,
            }})),
        )
        .await?,
        "subnet",
    )?;
    let router = id(
        call(
            Method::POST,
            "/routers",
            Some(serde_json::json!({"router": {
                "name": "router1", "project_id": demo, "external_gateway_info": {"network_id": public},
            }})),
        )
        .await?,
        "router",
    )?;
    call(
        Method::PUT,
        &format!("/routers/{router}/add_router_interface"),
        Some(serde_json::json!({"subnet_id": private_subnet})),
    )
    .await?;
    // The demo project's default group: ping and SSH from anywhere, so a floating IP answers.
    let groups = call(Method::GET, &format!("/security-groups?project_id={demo}&name=default"), None).await?;
    let group = groups["security_groups"]
        .as_array()
        .and_then(|g| g.first())
        .and_then(|g| g["id"].as_str())
        .context("the demo project has no default security group")?
        .to_string();
    for (proto, port) in [("icmp", None), ("tcp", Some(22))] {
        call(
            Method::POST,
            "/security-group-rules",
            Some(serde_json::json!({"security_group_rule": {
                "security_group_id": group, "project_id": demo, "direction": "ingress", "ethertype": "IPv4",
                "protocol": proto, "port_range_min": port, "port_range_max": port, "remote_ip_prefix": "0.0.0.0/0",
            }})),
        )
        .await?;
    }
    std::fs::write(&marker, &router).with_context(|| format!("writing {}", marker.display()))?;
    tracing::info!(%public, %private, %router, "demo networks made: public, private, router1");
    Ok(())
}

/// Offers the demo guest image (`compute.demo_image`) as a public image, once: on the first
/// start that finds the file, as Packstack's demo provisioning uploads CirrOS. A marker in
/// the data directory remembers it was done (deleting the image later is the operator's
/// choice, and sticks).
async fn seed_demo_image(cfg: &Config, service: Arc<ServiceToken>) -> anyhow::Result<()> {
    let marker = cfg.data_dir.join(".demo-image-seeded");
    let path = cfg.demo_image();
    if marker.exists() {
        return Ok(());
    }
    if !path.exists() {
        tracing::info!(path = %path.display(), "no demo image to offer (tools/build-test-image.sh <data dir> builds one)");
        return Ok(());
    }
    let image_url = service.endpoint("image").await?;
    let token = service.token().await?;
    let name = &cfg.compute.demo_image_name;
    let body = serde_json::json!({
        "name": name, "disk_format": "qcow2", "container_format": "bare", "visibility": "public",
    });
    let headers = [("x-auth-token", token.as_str())];
    let created =
        haneul_core::client::json(hyper::Method::POST, &format!("{image_url}/v2/images"), &headers, Some(body)).await?;
    let id = created["id"].as_str().context("the image service named no image")?.to_string();
    let url = format!("{image_url}/v2/images/{id}/file");
    if let Err(e) = haneul_core::client::upload_file(&url, &token, &path).await {
        let _ =
            haneul_core::client::json(hyper::Method::DELETE, &format!("{image_url}/v2/images/{id}"), &headers, None)
                .await;
        anyhow::bail!("uploading {}: {e}", path.display());
    }
    std::fs::write(&marker, &id).with_context(|| format!("writing {}", marker.display()))?;
    tracing::info!(image = %id, %name, file = %path.display(), "demo image offered as a public image");
    Ok(())
}

/// `haneul network diagnose`: the checks, one line each; fails when one does.
async fn diagnose(cfg: Config, target: &str) -> anyhow::Result<()> {
    let service = ServiceToken::new(service_credentials(&cfg)?);
    let dp = haneul_agent::netdp::Dataplane::new(haneul_agent::dataplane_settings(&cfg), service);
    let doc = dp.fetch_now().await.context("asking the network service")?;
    let steps = haneul_agent::netdp::diagnose::diagnose(&dp, &doc, target).await.map_err(anyhow::Error::msg)?;
    for s in &steps {
        println!("{} {}", if s.ok { "  ok  " } else { "  FAIL" }, s.what);
    }
    match steps.iter().find(|s| !s.ok) {
        Some(s) => anyhow::bail!("the path breaks at: {}", s.what),
        None => {
            println!("the path is whole");
            Ok(())
        }
    }
}

/// The service user's credentials, as an agent has them (`agent.*`, or the password `serve`
/// keeps in the data directory).
fn service_credentials(cfg: &Config) -> anyhow::Result<Credentials> {
    let password = if cfg.agent.password.is_empty() {
        let path = cfg.data_dir.join("service-password");
        std::fs::read_to_string(&path)
            .map(|p| p.trim().to_string())
            .with_context(|| format!("no agent.password configured and none in {}", path.display()))?
    } else {
        cfg.agent.password.clone()
    };
    Ok(Credentials {
        auth_url: cfg.agent_auth_url(),
        username: cfg.agent.username.clone(),
        password,
        project_name: cfg.agent.project_name.clone(),
    })
}

/// A compute node: the agent alone, its API on `agent.port`, reporting to the controller;
/// the same loop as `serve` over one service.
async fn agent(cfg: Config) -> anyhow::Result<()> {
    let listeners = Listeners::bind(&cfg.server.bind, &cfg.listeners("agent")).await?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    let service = ServiceToken::new(service_credentials(&cfg)?);
    let agent = haneul_agent::serving::open(&cfg, service.clone(), RemoteValidator::new(service))
        .await
        .context("opening this host's agent")?;
    tracing::info!(listening = listeners.describe(), host = %cfg.compute_host(), controller = %cfg.agent_auth_url(), "agent listening");
    haneul_core::service::run(listeners, vec![agent]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Services may share one PostgreSQL database: no two may name a table alike.
    #[test]
    fn table_names_are_unique_across_services() {
        let all = [
            haneul_identity::model::TABLES,
            haneul_image::model::TABLES,
            haneul_compute::model::TABLES,
            haneul_placement::model::TABLES,
            haneul_network::model::TABLES,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for t in all.iter().flat_map(|ts| ts.iter()) {
            assert!(seen.insert(*t), "table {t} is used by two services");
        }
    }
}

/// `haneul db purge --before DATE`.
async fn purge(cfg: Config, before: &str) -> anyhow::Result<()> {
    let before = parse_time(before).with_context(|| format!("--before {before}: not a date or an RFC 3339 time"))?;
    let purged = haneul_compute::purge(&cfg, before).await.context("purging the compute database")?;
    println!(
        "Purged from the compute database, last changed before {}: {} deleted servers, {} instance actions of deleted servers.",
        before.to_rfc3339(),
        purged.deleted_servers,
        purged.actions
    );
    Ok(())
}

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}
