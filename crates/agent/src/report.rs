//! Agent → controller: every `report_interval` the agent tells the compute service that it is
//! alive, where its API is, what the host offers and what each instance is. The controller
//! registers the host (its `nova-compute` service, its placement provider) from the first
//! report and marks the service down when reports stop.

use std::sync::Arc;
use std::time::Duration;

use haneul_contracts::agent::{Report, ReportBody};
use haneul_core::service_auth::ServiceToken;
use hyper::Method;

use crate::instances::Instances;

#[derive(Clone)]
pub struct Reporter {
    pub instances: Arc<Instances>,
    pub service: Arc<ServiceToken>,
    /// Where the controller reaches this agent's API.
    pub url: String,
    /// Where browsers reach this host's console proxy.
    pub console_url: String,
    pub every: Duration,
}

impl Reporter {
    /// What the next report says.
    pub async fn describe(&self) -> Result<Report, String> {
        let i = &self.instances;
        let resources =
            crate::host::resources(&i.settings.instances_dir).map_err(|e| format!("reading the host: {e}"))?;
        Ok(Report {
            url: self.url.clone(),
            console_url: self.console_url.clone(),
            accel: format!("{:?}", i.settings.accel).to_lowercase(),
            resources,
            instances: i.list().await,
        })
    }

    /// One report; the controller's answer is not needed.
    pub async fn report(&self) -> Result<(), String> {
        let body = serde_json::to_value(ReportBody { agent: self.describe().await? }).map_err(|e| e.to_string())?;
        let path = format!("/internal/agents/{}", self.instances.settings.host);
        self.service.call("compute", Method::PUT, &path, Some(body)).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Reports forever; failures are logged and retried at the next tick.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            match self.report().await {
                Ok(()) if failing => {
                    tracing::info!("reporting to the controller again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "could not report to the controller; retrying");
                    failing = true;
                }
                Err(e) => tracing::debug!(error = %e, "still cannot report to the controller"),
            }
        }
    }
}
