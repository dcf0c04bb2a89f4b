//! The host agent (`nova-compute`'s place): everything that touches this host's hypervisor
//! and network data plane (and later its volumes). Side effects on the host live here and
//! nowhere else.
//!
//! - [`instances`]: desired state in, observed state out: the controller says what each
//!   instance should be (with a generation), the agent makes it so and reports what it is.
//! - [`api`]: the internal REST API the controller calls, for its service user only.
//! - [`report`]: the heartbeat with host resources and instance states, to the controller.
//! - [`virt`]: the QEMU driver: one QEMU process per instance, controlled over QMP,
//!   surviving the agent's restart (instances are adopted, not restarted).
//! - [`netdp`]: the network data plane: bridges, taps, DHCP, routers, security groups,
//!   metadata proxies, following the network service.
//! - [`host`]: what this host offers guests.
//! - [`vnc`]: the remote console proxy: noVNC's page and a websocket to a guest's VNC.
//!
//! `haneul agent` runs this alone on a compute node; `haneul serve` runs it beside the
//! controller, and the two still talk over the REST API.

pub mod api;
pub mod host;
pub mod instances;
pub mod netdp;
pub mod report;
pub mod serving;
pub mod virt;
pub mod vnc;

use std::sync::Arc;

use haneul_core::config::Config;
use haneul_core::service_auth::ServiceToken;

/// The instances of this host, with the instances directory made and the accelerator chosen.
pub async fn open(config: &Config, service: Arc<ServiceToken>) -> std::io::Result<Arc<instances::Instances>> {
    let instances_dir = config.instances_dir();
    std::fs::create_dir_all(&instances_dir)?;
    let accel = choose_accel(config, &instances_dir).await;
    tracing::info!(?accel, "guests run with this accelerator");
    Ok(instances::Instances::new(
        instances::Settings {
            host: config.compute_host(),
            instances_dir,
            accel,
            console_log_max: config.compute.console_log_max,
            guest_nice: config.compute.guest_nice.clamp(0, 19),
        },
        service,
    ))
}

/// `compute.accel`: `kvm`, `tcg`, or `auto` (KVM only when the probe guest boots with it).
async fn choose_accel(config: &Config, instances_dir: &std::path::Path) -> virt::Accel {
    use virt::{qemu, Accel};
    match config.compute.accel.as_str() {
        "kvm" => Accel::Kvm,
        "tcg" => Accel::Tcg,
        _ => {
            let (kernel, initrd) = (&config.compute.probe_kernel, &config.compute.probe_initrd);
            if kernel.is_empty() || initrd.is_empty() {
                tracing::info!("no probe guest configured (compute.probe_kernel/probe_initrd): using TCG");
                return Accel::Tcg;
            }
            qemu::probe_accel_cached(
                &instances_dir.join(".accel"),
                std::path::Path::new(kernel),
                std::path::Path::new(initrd),
                "HANEUL-TESTIMG: booted",
                std::time::Duration::from_secs(20),
            )
            .await
        }
    }
}

/// This host's network data plane (`network.dataplane`), given to `instances` for guests'
/// interfaces; [`netdp::Dataplane::run`] makes it follow the network service.
pub fn open_dataplane(
    config: &Config,
    service: Arc<ServiceToken>,
    instances: &instances::Instances,
) -> Option<Arc<netdp::Dataplane>> {
    if !config.network.dataplane {
        return None;
    }
    let dp = netdp::Dataplane::new(dataplane_settings(config), service);
    instances.set_dataplane(dp.clone());
    Some(dp)
}

/// The data plane's settings from the configuration.
pub fn dataplane_settings(config: &Config) -> netdp::Settings {
    let n = &config.network;
    let mappings = n
        .physical_interface_mappings
        .split(',')
        .filter_map(|pair| pair.trim().split_once(':'))
        .map(|(net, nic)| (net.trim().to_string(), nic.trim().to_string()))
        .collect();
    let metadata_url = if n.metadata_url.is_empty() {
        config.public_url(config.compute.metadata_port)
    } else {
        n.metadata_url.clone()
    };
    let secret = if config.compute.metadata_proxy_shared_secret.is_empty() {
        std::fs::read_to_string(config.metadata_secret_file()).unwrap_or_default().trim().to_string()
    } else {
        config.compute.metadata_proxy_shared_secret.clone()
    };
    if secret.is_empty() {
        tracing::warn!("no metadata proxy secret (compute.metadata_proxy_shared_secret): guests' metadata requests will be refused");
    }
    netdp::Settings {
        host: config.compute_host(),
        host_ns: Some(n.host_namespace.clone()).filter(|s| !s.is_empty()),
        prefix: n.namespace_prefix.clone(),
        network_node: n.network_node,
        mappings,
        local_ip: Some(n.local_ip.trim().to_string()).filter(|s| !s.is_empty()),
        state_dir: n.state_dir.clone().into(),
        metadata_url,
        metadata_secret: secret.into_bytes(),
    }
}
