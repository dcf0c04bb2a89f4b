//! The `haneul` binary: the all-in-one cloud (`serve`), first-time setup (`bootstrap`) and
//! operator commands (`token-keys rotate`).
//!
//! This crate only wires things together: configuration, logging, which services a process
//! runs and on which ports. Every rule lives in a service crate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use haneul_core::config::Config;
use haneul_core::service_auth::{Credentials, RemoteValidator, ServiceToken};
use haneul_identity::bootstrap::{bootstrap, CatalogEntry};
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
    vec![
        CatalogEntry {
            kind: "identity",
            name: "keystone",
            url: format!("{}/v3", cfg.public_url(cfg.identity.port)),
            limits: &[],
        },
        CatalogEntry {
            kind: "compute",
            name: "nova",
            url: format!("{}/v2.1", cfg.public_url(cfg.compute.port)),
            limits: &[],
        },
        CatalogEntry { kind: "placement", name: "placement", url: cfg.public_url(cfg.placement.port), limits: &[] },
        CatalogEntry {
            kind: haneul_network::service::SERVICE_TYPE,
            name: "neutron",
            url: cfg.public_url(cfg.network.port),
            limits: &[],
        },
        CatalogEntry {
            kind: haneul_image::service::SERVICE_TYPE,
            name: "glance",
            url: cfg.public_url(cfg.image.port),
            limits: haneul_image::service::DEFAULT_LIMITS,
        },
    ]
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

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    // Bind first: a port in use is reported before anything is written.
    let addr = format!("{}:{}", cfg.server.bind, cfg.identity.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    let image_addr = format!("{}:{}", cfg.server.bind, cfg.image.port);
    let image_listener =
        tokio::net::TcpListener::bind(&image_addr).await.with_context(|| format!("binding {image_addr}"))?;
    let compute_addr = format!("{}:{}", cfg.server.bind, cfg.compute.port);
    let compute_listener =
        tokio::net::TcpListener::bind(&compute_addr).await.with_context(|| format!("binding {compute_addr}"))?;
    let placement_addr = format!("{}:{}", cfg.server.bind, cfg.placement.port);
    let placement_listener =
        tokio::net::TcpListener::bind(&placement_addr).await.with_context(|| format!("binding {placement_addr}"))?;
    let network_addr = format!("{}:{}", cfg.server.bind, cfg.network.port);
    let network_listener =
        tokio::net::TcpListener::bind(&network_addr).await.with_context(|| format!("binding {network_addr}"))?;
    let metadata_addr = format!("{}:{}", cfg.server.bind, cfg.compute.metadata_port);
    let metadata_listener =
        tokio::net::TcpListener::bind(&metadata_addr).await.with_context(|| format!("binding {metadata_addr}"))?;
    let agent_addr = format!("{}:{}", cfg.server.bind, cfg.agent.port);
    let agent_listener =
        tokio::net::TcpListener::bind(&agent_addr).await.with_context(|| format!("binding {agent_addr}"))?;
    let console_addr = format!("{}:{}", cfg.server.bind, cfg.agent.console_port);
    let console_listener =
        tokio::net::TcpListener::bind(&console_addr).await.with_context(|| format!("binding {console_addr}"))?;
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
    let app = haneul_identity::api::router(ident.clone(), cfg.server.max_request_body_size);
    let images = haneul_image::Images::open(&cfg, ident.clone()).await.context("opening the image service")?;
    let image_app = haneul_image::api::router(
        images.clone(),
        haneul_identity::api::validator(ident.clone()),
        cfg.server.max_request_body_size,
    );
    let placement = haneul_placement::Placement::open(&cfg).await.context("opening the placement service")?;
    let placement_app = haneul_placement::api::router(
        placement.clone(),
        haneul_identity::api::validator(ident.clone()),
        cfg.server.max_request_body_size,
    );
    let network = haneul_network::Networking::open(&cfg).await.context("opening the network service")?;
    network.notify_compute_with(service.clone());
    let network_app = haneul_network::api::router(
        network.clone(),
        haneul_identity::api::validator(ident.clone()),
        cfg.server.max_request_body_size,
    );
    let compute = haneul_compute::Compute::open(&cfg, placement.clone(), service.clone())
        .await
        .context("opening the compute service")?;
    let instances = haneul_agent::open(&cfg, service.clone()).await.context("opening this host's agent")?;
    let agent_app = haneul_agent::api::router(instances.clone(), haneul_identity::api::validator(ident.clone()));
    let console_app = haneul_agent::vnc::router(Arc::new(haneul_agent::vnc::Proxy {
        instances: instances.clone(),
        service: service.clone(),
        novnc_dir: cfg.agent.novnc_dir.clone().into(),
    }));
    let dataplane = haneul_agent::open_dataplane(&cfg, service.clone(), &instances);
    let reporter = haneul_agent::report::Reporter {
        instances,
        service: service.clone(),
        url: cfg.agent_url(),
        console_url: cfg.console_url(),
        every: Duration::from_secs(cfg.agent.report_interval.max(1)),
    };
    let compute_app = haneul_compute::api::router(
        compute.clone(),
        haneul_identity::api::validator(ident.clone()),
        cfg.server.max_request_body_size,
    );

    let metadata_app = haneul_compute::metadata::router(compute.clone());

    // Keys rotated by `haneul token-keys rotate`, and identity data written by other processes
    // on the same database, are picked up without a restart.
    let keys_ident = ident.clone();
    let images_bg = images.clone();
    let compute_bg = compute.clone();
    let placement_bg = placement.clone();
    let network_bg = network.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            match keys_ident.reload_keys_if_changed() {
                Ok(true) => tracing::info!("token keys reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = ?e, "token keys could not be reloaded"),
            }
            match keys_ident.refresh().await {
                Ok(true) => tracing::info!("identity data changed by another process; reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = ?e, "identity data could not be refreshed"),
            }
            if let Some(e) = keys_ident.policy.take_reload_error() {
                tracing::warn!(error = %e, "policy file not reloaded; keeping the previous rules");
            }
            match images_bg.refresh().await {
                Ok(true) => tracing::info!("image data changed by another process; reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = ?e, "image data could not be refreshed"),
            }
            match compute_bg.refresh().await {
                Ok(true) => tracing::info!("compute data changed by another process; reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = ?e, "compute data could not be refreshed"),
            }
            match placement_bg.refresh().await {
                Ok(true) => tracing::info!("placement data changed by another process; reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = ?e, "placement data could not be refreshed"),
            }
            match network_bg.refresh().await {
                Ok(true) => tracing::info!("network data changed by another process; reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = ?e, "network data could not be refreshed"),
            }
            if let Some(e) = network_bg.policy.take_reload_error() {
                tracing::warn!(error = %e, "network policy file not reloaded; keeping the previous rules");
            }
            if let Some(e) = placement_bg.policy.take_reload_error() {
                tracing::warn!(error = %e, "placement policy file not reloaded; keeping the previous rules");
            }
            if let Err(e) = compute_bg.heartbeat_if_due().await {
                tracing::warn!(error = ?e, "compute services could not report alive");
            }
            if let Some(e) = compute_bg.policy.take_reload_error() {
                tracing::warn!(error = %e, "compute policy file not reloaded; keeping the previous rules");
            }
            if let Some(e) = images_bg.policy.take_reload_error() {
                tracing::warn!(error = %e, "image policy file not reloaded; keeping the previous rules");
            }
        }
    });
    let prune_ident = ident.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            if let Err(e) = prune_ident.prune_revocations().await {
                tracing::warn!(error = ?e, "pruning revocation events failed");
            }
        }
    });

    tracing::info!(
        identity = %addr, image = %image_addr, compute = %compute_addr, placement = %placement_addr, network = %network_addr, metadata = %metadata_addr, agent = %agent_addr,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "services listening"
    );
    // This host's first report goes in directly, so that the host takes servers as soon as
    // the APIs answer; the agent reports over REST from then on.
    let first = reporter
        .body()
        .await
        .and_then(|b| serde_json::from_value::<haneul_compute::agents::ReportBody>(b).map_err(|e| e.to_string()));
    match first {
        Ok(b) => compute.agent_report(&cfg.compute_host(), b.agent).await.context("registering this host")?,
        Err(e) => tracing::warn!(error = %e, "this host's agent could not describe the host"),
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let network_stop = network.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        network_stop.stop();
        let _ = stop_tx.send(true);
    });
    let mut servers = tokio::task::JoinSet::new();
    for (name, listener, app) in [
        ("identity", listener, app),
        ("image", image_listener, image_app),
        ("compute", compute_listener, compute_app),
        ("placement", placement_listener, placement_app),
        ("network", network_listener, network_app),
        ("metadata", metadata_listener, metadata_app),
        ("agent", agent_listener, agent_app),
        ("console", console_listener, console_app),
    ] {
        let mut rx = stop_rx.clone();
        let stopped = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        servers.spawn(async move { haneul_core::http::serve(listener, app, stopped).await.map_err(|e| (name, e)) });
    }
    tokio::spawn(reporter.run());
    if let Some(dp) = dataplane {
        tokio::spawn(dp.run());
    }
    let seed_cfg = cfg.clone();
    tokio::spawn(async move {
        if seed_cfg.network.demo_layout {
            if let Err(e) = seed_demo_network(&seed_cfg, service.clone()).await {
                tracing::warn!(error = format!("{e:#}"), "could not make the demo networks");
            }
        }
        if let Err(e) = seed_demo_image(&seed_cfg, service).await {
            tracing::warn!(error = format!("{e:#}"), "could not offer the demo image");
        }
    });
    while let Some(done) = servers.join_next().await {
        if let Ok(Err((name, e))) = done {
            return Err(anyhow::Error::new(e).context(format!("serving {name}")));
        }
    }
    tracing::info!("stopped");
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
    let doc = dp.fetch_now().await.map_err(anyhow::Error::msg).context("asking the network service")?;
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

/// A compute node: the agent alone, its API on `agent.port`, reporting to the controller.
async fn agent(cfg: Config) -> anyhow::Result<()> {
    let addr = format!("{}:{}", cfg.server.bind, cfg.agent.port);
    let listener = tokio::net::TcpListener::bind(&addr).await.with_context(|| format!("binding {addr}"))?;
    let console_addr = format!("{}:{}", cfg.server.bind, cfg.agent.console_port);
    let console_listener =
        tokio::net::TcpListener::bind(&console_addr).await.with_context(|| format!("binding {console_addr}"))?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    let service = ServiceToken::new(service_credentials(&cfg)?);
    let instances = haneul_agent::open(&cfg, service.clone()).await.context("opening this host's agent")?;
    let app = haneul_agent::api::router(instances.clone(), RemoteValidator::new(service.clone()));
    let console_app = haneul_agent::vnc::router(Arc::new(haneul_agent::vnc::Proxy {
        instances: instances.clone(),
        service: service.clone(),
        novnc_dir: cfg.agent.novnc_dir.clone().into(),
    }));
    let dataplane = haneul_agent::open_dataplane(&cfg, service.clone(), &instances);
    let reporter = haneul_agent::report::Reporter {
        instances,
        service,
        url: cfg.agent_url(),
        console_url: cfg.console_url(),
        every: Duration::from_secs(cfg.agent.report_interval.max(1)),
    };
    tokio::spawn(reporter.run());
    if let Some(dp) = dataplane {
        tokio::spawn(dp.run());
    }
    tracing::info!(agent = %addr, host = %cfg.compute_host(), controller = %cfg.agent_auth_url(), "agent listening");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (api, console) = tokio::join!(
        haneul_core::http::serve(listener, app, stopped(stop_rx.clone())),
        haneul_core::http::serve(console_listener, console_app, stopped(stop_rx)),
    );
    api.context("serving the agent API")?;
    console.context("serving the console proxy")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
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
