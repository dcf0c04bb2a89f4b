//! This host's agent as [`haneul_core::service::Service`]: its API (the controller's
//! instance specs) and its console proxy, with the reporter and the network data plane as
//! its long-running tasks. `haneul serve` runs it beside the API services; `haneul agent`
//! runs it alone on a compute node.

use std::sync::Arc;
use std::time::Duration;

use haneul_core::auth::TokenValidator;
use haneul_core::config::Config;
use haneul_core::service::{Api, BoxFuture, Service};
use haneul_core::service_auth::ServiceToken;

use crate::instances::Instances;
use crate::netdp::Dataplane;
use crate::report::Reporter;

pub struct Agent {
    pub instances: Arc<Instances>,
    service: Arc<ServiceToken>,
    validator: Arc<dyn TokenValidator>,
    novnc_dir: std::path::PathBuf,
    dataplane: Option<Arc<Dataplane>>,
    reporter: Reporter,
    /// Whether [`Service::tasks`] started the reporter (it runs once).
    reporting: std::sync::atomic::AtomicBool,
}

/// Opens this host's agent (its instances, its data plane when `network.dataplane` is on).
/// `validator` checks the tokens of the calls to its API.
pub async fn open(
    cfg: &Config,
    service: Arc<ServiceToken>,
    validator: Arc<dyn TokenValidator>,
) -> std::io::Result<Arc<Agent>> {
    let instances = crate::open(cfg, service.clone()).await?;
    let dataplane = crate::open_dataplane(cfg, service.clone(), &instances);
    let reporter = Reporter {
        instances: instances.clone(),
        service: service.clone(),
        url: cfg.agent_url(),
        console_url: cfg.console_url(),
        every: Duration::from_secs(cfg.agent.report_interval.max(1)),
    };
    Ok(Arc::new(Agent {
        instances,
        service,
        validator,
        novnc_dir: cfg.agent.novnc_dir.clone().into(),
        dataplane,
        reporter,
        reporting: Default::default(),
    }))
}

impl Agent {
    /// What the next report will say, for a controller in the same process that registers
    /// its own host before the first report goes over REST.
    pub async fn report(&self) -> Result<haneul_contracts::agent::Report, crate::report::ReportError> {
        self.reporter.describe().await
    }
}

impl Service for Agent {
    fn name(&self) -> &'static str {
        "agent"
    }
    fn apis(&self) -> Vec<Api> {
        let proxy = crate::vnc::Proxy {
            instances: self.instances.clone(),
            service: self.service.clone(),
            novnc_dir: self.novnc_dir.clone(),
        };
        vec![
            Api { name: "agent", router: crate::api::router(self.instances.clone(), self.validator.clone()) },
            Api { name: "console", router: crate::vnc::router(Arc::new(proxy)) },
        ]
    }
    fn tasks(&self) -> Vec<BoxFuture<'static, ()>> {
        let mut out: Vec<BoxFuture<'static, ()>> = Vec::new();
        if !self.reporting.swap(true, std::sync::atomic::Ordering::SeqCst) {
            out.push(Box::pin(self.reporter.clone().run()));
        }
        if let Some(dp) = &self.dataplane {
            out.push(Box::pin(dp.clone().run()));
        }
        out
    }
}
