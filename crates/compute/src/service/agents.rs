//! The controller's side of the host agents (`haneul_agent`): their reports come in here,
//! and the controller's wishes go out as instance specs over the agent's REST API, with the
//! service user's token.
//!
//! A report registers or refreshes the host: its `nova-compute` service (alive until reports
//! stop for `service_down_time`), its placement provider (inventory from the host's
//! resources) and what each instance is. From that the power states follow the guests (one
//! that powered itself off becomes SHUTOFF), and instances the controller does not know
//! (their server was deleted while the agent was away) are removed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use haneul_contracts::agent::{ImageRef, Nic, Observed, Power, Spec};
use hyper::Method;
use serde_json::Value;

use crate::model::{AgentInfo, Server, Service};
use crate::service::{Compute, Error, Result};

pub use haneul_contracts::agent::{Report, ReportBody, Resources};

/// Why a call to a host's agent did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("host {host} has no agent")]
    NoAgent { host: String },
    #[error("server {server} has no host")]
    NoHost { server: String },
    #[error("the agent of host {host} did not answer in time")]
    Timeout { host: String },
    /// The agent answered with a fault; its message says why.
    #[error("{message}")]
    Refused { host: String, message: String },
    #[error("the agent of host {host} is unreachable")]
    Unreachable {
        host: String,
        #[source]
        source: haneul_core::client::ClientError,
    },
    #[error("the agent answered an odd state")]
    Answer(#[source] serde_json::Error),
    #[error("the server's new generation could not be recorded")]
    Store(#[source] Box<Error>),
}

impl AgentError {
    /// The message for a server's fault or an action event: the error and its causes.
    pub fn fault(&self) -> String {
        haneul_core::service::chain(self)
    }
}

/// How long one call to an agent may take (a stop waits up to Nova's 60 s for the guest).
const CALL_TIMEOUT: Duration = Duration::from_secs(180);

impl Compute {
    /// Takes an agent's report (see the module's description).
    pub async fn agent_report(self: &Arc<Self>, host: &str, r: Report) -> Result<()> {
        if host.is_empty() || host.len() > 255 || !host.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Error::BadRequest(format!("{host} is not a host name")));
        }
        if !r.url.starts_with("http://") {
            return Err(Error::BadRequest(format!("agent URL {} is not http://", r.url)));
        }
        let known = crate::service::hosts::compute_service(&self.model(), host).and_then(|s| s.agent.clone());
        let provider = known.as_ref().map_or_else(|| self.provider_for(host), |a| a.provider.clone());
        let info = AgentInfo {
            url: r.url.trim_end_matches('/').to_string(),
            console_url: r.console_url.trim_end_matches('/').to_string(),
            provider,
            accel: r.accel.clone(),
            vcpus: r.resources.vcpus,
            memory_mb: r.resources.memory_mb,
            disk_gb: r.resources.disk_gb,
        };
        if known.as_ref() != Some(&info) {
            self.register_host(host, &info).await?;
            tracing::info!(host, url = %info.url, "compute host registered");
        }
        let host_name = host.to_string();
        self.write(|t| {
            let now = Utc::now();
            let s = match t.m.services.values().find(|s| s.binary == "nova-compute" && s.host == host_name) {
                Some(s) => Service { last_seen: now, agent: Some(info), ..(**s).clone() },
                None => Service {
                    id: uuid::Uuid::new_v4().to_string(),
                    number: t.m.services.values().map(|s| s.number).max().unwrap_or(0) + 1,
                    binary: "nova-compute".into(),
                    host: host_name.clone(),
                    zone: "nova".into(),
                    disabled: false,
                    disabled_reason: None,
                    forced_down: false,
                    created_at: now,
                    last_seen: now,
                    agent: Some(info),
                },
            };
            t.put(s)?;
            Ok(())
        })
        .await?;
        self.reconcile_host(host, &r.instances).await
    }

    /// The provider uuid a new host gets: the one of an earlier registration of the same
    /// name if placement has it, else a new one.
    fn provider_for(&self, host: &str) -> String {
        let pm = self.placement.model();
        let earlier = pm.providers.values().find(|p| p.name == host).map(|p| p.id.clone());
        earlier.unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    }

    /// Power states follow what the agent saw; instances of deleted servers go.
    async fn reconcile_host(self: &Arc<Self>, host: &str, instances: &[Observed]) -> Result<()> {
        let m = self.model();
        let mut off = Vec::new();
        for o in instances {
            match m.servers.get(&o.uuid) {
                None => {
                    tracing::info!(host, instance = %o.uuid, "removing an instance whose server is gone");
                    let (c, host, id) = (self.clone(), host.to_string(), o.uuid.clone());
                    tokio::spawn(async move {
                        if let Err(e) = c.agent_call(&host, Method::DELETE, &format!("/v1/instances/{id}"), None).await
                        {
                            tracing::warn!(%host, instance = %id, error = %e.fault(), "could not remove an orphan instance");
                        }
                    });
                }
                Some(s) => {
                    let settled = s.task_state.is_none() && o.generation == s.generation;
                    if settled && matches!(s.vm_state.as_str(), "active" | "paused") && o.power == Power::Shutoff {
                        off.push(s.id.clone());
                    }
                }
            }
        }
        for id in off {
            tracing::info!(server = %id, "guest powered off; server is SHUTOFF");
            self.set_state(&id, |s| {
                if s.task_state.is_none() {
                    s.vm_state = "stopped".into();
                    s.power_state = 4;
                }
            })
            .await?;
        }
        Ok(())
    }

    /// The agent of `host`: its URL, if it ever reported.
    fn agent_url(&self, host: &str) -> std::result::Result<String, AgentError> {
        crate::service::hosts::compute_service(&self.model(), host)
            .and_then(|s| s.agent.as_ref().map(|a| a.url.clone()))
            .ok_or_else(|| AgentError::NoAgent { host: host.to_string() })
    }

    /// One call to a host's agent.
    pub async fn agent_call(
        &self,
        host: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> std::result::Result<Value, AgentError> {
        self.agent_call_within(host, method, path, body, CALL_TIMEOUT).await
    }

    /// [`Compute::agent_call`] for work that takes longer than a call usually may (a disk
    /// copied and uploaded).
    pub async fn agent_call_within(
        &self,
        host: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        timeout: Duration,
    ) -> std::result::Result<Value, AgentError> {
        let url = format!("{}{path}", self.agent_url(host)?);
        let host = host.to_string();
        match tokio::time::timeout(timeout, self.service.call_url(method, &url, body)).await {
            Err(_) => Err(AgentError::Timeout { host }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => match (e.status(), e.fault_message()) {
                (Some(_), Some(message)) => Err(AgentError::Refused { host, message }),
                _ => Err(AgentError::Unreachable { host, source: e }),
            },
        }
    }

    /// Sends the server's spec to its host's agent with the next generation: `power` as
    /// wanted, `change` applied to the server first (a reboot counter, ...).
    pub async fn push(
        &self,
        id: &str,
        power: Power,
        change: impl FnOnce(&mut Server) + Send,
    ) -> std::result::Result<Observed, AgentError> {
        let s = self
            .write(|t| {
                let mut s = t.edit(&t.m.servers, "server", id)?;
                change(&mut s);
                s.generation += 1;
                Ok(t.put(s)?)
            })
            .await
            .map_err(|e| AgentError::Store(Box::new(e)))?;
        let host = s.host.clone().ok_or_else(|| AgentError::NoHost { server: id.to_string() })?;
        let spec = self.spec(&s, power);
        let body = serde_json::to_value(&spec).map_err(AgentError::Answer)?;
        let v = self.agent_call(&host, Method::PUT, &format!("/v1/instances/{id}"), Some(body)).await?;
        serde_json::from_value(v).map_err(AgentError::Answer)
    }

    /// What the server's instance should be.
    pub fn spec(&self, s: &Server, power: Power) -> Spec {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let files: BTreeMap<String, String> = crate::service::configdrive::config_drive_files(s)
            .into_iter()
            .map(|(name, bytes)| (name, b64(&bytes)))
            .collect();
        Spec {
            generation: s.generation,
            memory_mib: s.flavor.ram.max(16) as u64,
            vcpus: s.flavor.vcpus.max(1) as u32,
            disk_gb: s.flavor.disk.max(0) as u64,
            image: ImageRef {
                id: s.image_id.clone(),
                disk_format: if s.image_format.is_empty() { "qcow2".into() } else { s.image_format.clone() },
            },
            config_drive: Some(files),
            power,
            reboots: s.reboots,
            hard_reboots: s.hard_reboots,
            rebuilds: s.rebuilds,
            resize_backup: s.resize.is_some(),
            reverts: s.reverts,
            rescue: s
                .rescue_image
                .as_ref()
                .map(|(id, format)| ImageRef { id: id.clone(), disk_format: format.clone() }),
            nics: s
                .ports
                .iter()
                .map(|p| Nic {
                    port_id: p.port_id.clone(),
                    network_id: p.network_id.clone(),
                    mac: p.mac.clone(),
                    mtu: p.mtu,
                    slot: p.slot,
                })
                .collect(),
        }
    }
}
