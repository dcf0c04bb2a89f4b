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

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading the host's resources")]
    Host(#[source] std::io::Error),
    #[error("encoding the report")]
    Encode(#[source] serde_json::Error),
    #[error("sending the report to the controller")]
    Send(#[source] haneul_core::client::ClientError),
}

impl Reporter {
    /// What the next report says.
    pub async fn describe(&self) -> Result<Report, ReportError> {
        let i = &self.instances;
        let resources = crate::host::resources(&i.settings.instances_dir).map_err(ReportError::Host)?;
        Ok(Report {
            url: self.url.clone(),
            console_url: self.console_url.clone(),
            accel: format!("{:?}", i.settings.accel).to_lowercase(),
            resources,
            instances: i.list().await,
        })
    }

    /// One report; the controller's answer is not needed.
    pub async fn report(&self) -> Result<(), ReportError> {
        let body = serde_json::to_value(ReportBody { agent: self.describe().await? }).map_err(ReportError::Encode)?;
        let path = format!("/internal/agents/{}", self.instances.settings.host);
        self.service.call("compute", Method::PUT, &path, Some(body)).await.map(|_| ()).map_err(ReportError::Send)
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
                    let error = haneul_core::service::chain(&e);
                    tracing::warn!(%error, "could not report to the controller; retrying");
                    failing = true;
                }
                Err(e) => {
                    tracing::debug!(error = %haneul_core::service::chain(&e), "still cannot report to the controller")
                }
            }
        }
    }
}
