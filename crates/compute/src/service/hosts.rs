//! Compute services and their heartbeats, and what `os-hypervisors` reports of each host.
//!
//! The controller runs `nova-scheduler` and `nova-conductor` (in the `internal` zone) and
//! heartbeats them itself; each host agent's reports are its `nova-compute` heartbeats
//! (`crate::service::agents`). A service not seen for `compute.service_down_time` is down. Disabling a
//! compute service marks its provider with `COMPUTE_STATUS_DISABLED`, which the scheduler's
//! query forbids, as Nova does.

use chrono::{DateTime, Duration, Utc};
use haneul_placement::service as placement;

use crate::model::{Model, Service};
use crate::service::{Compute, Error, Result};

/// How often the controller reports its own services alive.
pub const HEARTBEAT_EVERY: Duration = Duration::seconds(10);

/// The `nova-compute` service of a host.
pub fn compute_service<'a>(m: &'a Model, host: &str) -> Option<&'a Service> {
    m.services.values().map(|s| &**s).find(|s| s.binary == "nova-compute" && s.host == host)
}

impl Compute {
    /// Whether a service has been seen recently enough (and is not forced down).
    pub fn is_up(&self, s: &Service, now: DateTime<Utc>) -> bool {
        !s.forced_down && now - s.last_seen < Duration::seconds(self.settings.service_down_time as i64)
    }

    /// Records that the controller's services are alive (creating them on first start).
    pub async fn heartbeat(&self) -> Result<()> {
        let host = self.controller_host.clone();
        let services = [("nova-scheduler", "internal"), ("nova-conductor", "internal")];
        self.write(|t| {
            let now = Utc::now();
            for (binary, zone) in services {
                let existing = t.m.services.values().find(|s| s.binary == binary && s.host == host).cloned();
                let s = match existing {
                    Some(s) => Service { last_seen: now, ..(*s).clone() },
                    None => Service {
                        id: uuid::Uuid::new_v4().to_string(),
                        number: t.m.services.values().map(|s| s.number).max().unwrap_or(0) + 1,
                        binary: binary.into(),
                        host: host.clone(),
                        zone: zone.into(),
                        disabled: false,
                        disabled_reason: None,
                        forced_down: false,
                        created_at: now,
                        last_seen: now,
                        agent: None,
                    },
                };
                t.put(s)?;
            }
            Ok(())
        })
        .await
    }

    /// Heartbeats when one is due.
    pub async fn heartbeat_if_due(&self) -> Result<()> {
        let m = self.model();
        let mine = m.services.values().find(|s| s.binary == "nova-conductor" && s.host == self.controller_host);
        let due = match mine {
            Some(s) => Utc::now() - s.last_seen >= HEARTBEAT_EVERY,
            None => true,
        };
        if due {
            self.heartbeat().await?;
        }
        Ok(())
    }

    /// Enables or disables a service, force-downs it, and keeps the host's provider trait in
    /// step for a compute service.
    pub async fn update_service(
        &self,
        id: &str,
        disabled: Option<bool>,
        reason: Option<Option<String>>,
        forced_down: Option<bool>,
    ) -> Result<Service> {
        let s = self
            .write(|t| {
                let mut s = t
                    .edit(&t.m.services, "service", id)
                    .map_err(|_| Error::NotFound(format!("Service {id} could not be found.")))?;
                if let Some(d) = disabled {
                    s.disabled = d;
                    if !d {
                        s.disabled_reason = None;
                    }
                }
                if let Some(r) = reason {
                    s.disabled_reason = r;
                }
                if let Some(f) = forced_down {
                    s.forced_down = f;
                }
                Ok(t.put(s)?)
            })
            .await?;
        if s.binary == "nova-compute" {
            self.mark_provider_disabled(&s.host, s.disabled).await?;
        }
        Ok((*s).clone())
    }

    async fn mark_provider_disabled(&self, host: &str, disabled: bool) -> Result<()> {
        let Some(h) = self.hosts().into_iter().find(|h| h.name == host) else { return Ok(()) };
        self.placement
            .write(|t| {
                let Some(p) = t.m.providers.get(&h.provider).cloned() else { return Ok(()) };
                let mut traits = p.traits.clone();
                if disabled {
                    traits.insert("COMPUTE_STATUS_DISABLED".into());
                } else {
                    traits.remove("COMPUTE_STATUS_DISABLED");
                }
                if traits != p.traits {
                    placement::set_provider_traits(t, &p.id, p.generation, traits)?;
                }
                Ok(())
            })
            .await
            .map_err(|source| Error::Placement { what: format!("updating the provider of host {host}"), source })
    }

    /// Removes a service record (an operator retiring a host).
    pub async fn delete_service(&self, id: &str) -> Result<()> {
        self.write(|t| {
            let s =
                t.m.services
                    .get(id)
                    .cloned()
                    .ok_or_else(|| Error::NotFound(format!("Service {id} could not be found.")))?;
            if s.binary == "nova-compute" && t.m.servers.values().any(|v| v.host.as_deref() == Some(s.host.as_str())) {
                return Err(Error::Conflict(format!(
                    "Unable to delete compute service that is hosting instances. Migrate or delete the instances first."
                )));
            }
            t.delete::<Service>(id);
            Ok(())
        })
        .await
    }
}
