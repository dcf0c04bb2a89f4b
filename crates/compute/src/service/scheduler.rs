//! Choosing a host for a server and claiming its resources, in one placement write.
//!
//! Each host (its agent's reports) is a resource provider (VCPU, MEMORY_MB, DISK_GB with the
//! configured allocation ratios and reservations). A server's request (its flavor, plus
//! `resources:*` and `trait:*` extra specs and image properties) becomes an allocation
//! candidate query; candidates on hosts that compute does not run are dropped, the rest
//! filtered (availability zone, image properties) and weighed (most free memory first, as
//! Nova's RAM weigher spreads), and the first is claimed. Query and claim run inside one
//! placement write, so two concurrent builds can never both take the last room on a host.
//!
//! Placement is called in-process: both services live in `haneul serve` (the same shortcut
//! as identity's limits; the REST API serves every other client).

use std::collections::{BTreeMap, BTreeSet};

use haneul_placement::candidates::{self, Group, Query};
use haneul_placement::service::{self as placement, ConsumerAllocations};
use serde_json::Value;

use crate::model::{AgentInfo, Server};
use crate::service::{Compute, Error, Result};

/// Nova's message for a server that fits nowhere.
pub const NO_VALID_HOST: &str = "No valid host was found. There are not enough hosts available.";

/// Why no host takes a server; its message is Nova's fault text.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// No host has room, or none passes the filters.
    #[error("{NO_VALID_HOST}")]
    NoValidHost,
    /// The claim could not be written.
    #[error("{NO_VALID_HOST}")]
    Claim(#[source] haneul_placement::service::Error),
    #[error("{NO_VALID_HOST} No host runs guests of architecture {0}.")]
    Architecture(String),
}

/// The traits a host's provider carries.
const HOST_TRAITS: &[&str] =
    &["COMPUTE_NODE", "HW_ARCH_X86_64", "COMPUTE_IMAGE_TYPE_QCOW2", "COMPUTE_IMAGE_TYPE_RAW", "COMPUTE_DEVICE_TAGGING"];

/// A host compute can run servers on.
#[derive(Clone, Debug)]
pub struct Host {
    pub name: String,
    /// Its resource provider's uuid.
    pub provider: String,
}

impl Compute {
    /// Registers a host in placement from its agent's report (creating its provider the
    /// first time, keeping its inventory in step with the host), then claims for any server
    /// on it that has no allocation yet (servers created before placement existed).
    pub async fn register_host(&self, name: &str, agent: &AgentInfo) -> Result<()> {
        let s = &self.settings;
        let inv = |total: i64, reserved: i64, ratio: f64| haneul_placement::model::Inventory {
            total: total.max(1),
            reserved: reserved.clamp(0, total.max(1) - 1),
            min_unit: 1,
            max_unit: total.max(1),
            step_size: 1,
            allocation_ratio: ratio,
        };
        let wanted: BTreeMap<String, haneul_placement::model::Inventory> = [
            ("VCPU".to_string(), inv(agent.vcpus, 0, s.cpu_allocation_ratio)),
            ("MEMORY_MB".to_string(), inv(agent.memory_mb, s.reserved_host_memory_mb, s.ram_allocation_ratio)),
            (
                "DISK_GB".to_string(),
                inv(agent.disk_gb, (s.reserved_host_disk_mb + 1023) / 1024, s.disk_allocation_ratio),
            ),
        ]
        .into();
        let provider = agent.provider.clone();
        let disabled = crate::service::hosts::compute_service(&self.model(), name).is_some_and(|s| s.disabled);
        let servers: Vec<Server> = self
            .model()
            .servers
            .values()
            .filter(|s| s.host.as_deref() == Some(name) && s.vm_state != "error")
            .map(|s| (**s).clone())
            .collect();
        let name = name.to_string();
        self.placement
            .write(|t| {
                if !t.m.providers.contains_key(&provider) {
                    let earlier = t.m.providers.values().find(|p| p.name == name).map(|p| p.id.clone());
                    if let Some(old) = earlier {
                        // A provider of this name from an earlier install: take its place.
                        placement::delete_provider(t, &old)?;
                    }
                    placement::create_provider(t, Some(provider.clone()), name.clone(), None)?;
                }
                let p = placement::provider(&t.m, &provider)?.clone();
                if p.inventories != wanted {
                    placement::set_inventories(t, &provider, p.generation, wanted)?;
                }
                let p = placement::provider(&t.m, &provider)?.clone();
                let mut traits = p.traits.clone();
                traits.extend(HOST_TRAITS.iter().map(|t| t.to_string()));
                if disabled {
                    traits.insert("COMPUTE_STATUS_DISABLED".into());
                }
                if traits != p.traits {
                    placement::set_provider_traits(t, &provider, p.generation, traits)?;
                }
                let unclaimed: Vec<&Server> = servers.iter().filter(|s| !t.m.consumers.contains_key(&s.id)).collect();
                for s in unclaimed {
                    let claim = ConsumerAllocations {
                        consumer: s.id.clone(),
                        project_id: s.project_id.clone(),
                        user_id: s.user_id.clone(),
                        generation: Some(None),
                        consumer_type: Some("INSTANCE".into()),
                        allocations: [(provider.clone(), resources(s))].into(),
                    };
                    if let Err(e) = placement::set_allocations(t, vec![claim]) {
                        tracing::warn!(server = %s.id, error = %e, "could not record the allocation of an existing server");
                    }
                }
                Ok(())
            })
            .await
            .map_err(|source| Error::Placement { what: format!("registering host {name} in placement"), source })?;
        tracing::info!(host = %name, provider = %agent.provider, vcpus = agent.vcpus, memory_mb = agent.memory_mb, disk_gb = agent.disk_gb, "host registered in placement");
        Ok(())
    }

    /// Every host an agent has registered, up or not.
    pub fn hosts(&self) -> Vec<Host> {
        let m = self.model();
        let mut hosts: Vec<Host> = m
            .services
            .values()
            .filter(|s| s.binary == "nova-compute")
            .filter_map(|s| Some(Host { name: s.host.clone(), provider: s.agent.as_ref()?.provider.clone() }))
            .collect();
        hosts.sort_by(|a, b| a.name.cmp(&b.name));
        hosts
    }

    /// Picks a host for `s` and claims its resources there; `Err` carries the fault message.
    pub async fn schedule(&self, s: &Server, image: &Value) -> std::result::Result<Host, ScheduleError> {
        let query = request(s, image)?;
        // Nova's ComputeFilter: only hosts whose service is up (disabled ones are forbidden
        // by their provider's trait in the query).
        let now = chrono::Utc::now();
        let m = self.model();
        let hosts: Vec<Host> = self
            .hosts()
            .into_iter()
            .filter(|h| crate::service::hosts::compute_service(&m, &h.name).is_some_and(|s| self.is_up(s, now)))
            // The zone asked for (hosts in its aggregates), or the host an admin forced.
            .filter(|h| s.requested_zone.as_ref().is_none_or(|z| m.host_zone(&h.name) == *z))
            .filter(|h| s.forced_host.as_ref().is_none_or(|f| *f == h.name))
            .collect();
        let group = s.group.as_ref().and_then(|g| self.model().server_groups.get(g).cloned());
        let claimed = self
            .placement
            .write(|t| {
                // Where the other members of the server's group are: their claims, in this same
                // write, so that concurrent members see each other.
                let members_on = |root: &str| match &group {
                    Some(g) => g
                        .members
                        .iter()
                        .filter(|m| **m != s.id)
                        .filter(|m| t.m.consumers.get(*m).is_some_and(|c| c.allocations.contains_key(root)))
                        .count() as i64,
                    None => 0,
                };
                let placed_anywhere = hosts.iter().any(|h| members_on(&h.provider) > 0);
                let mut found: Vec<((i64, i64), candidates::Candidate, Host)> = candidates::candidates(&t.m, &query)
                    .into_iter()
                    .filter_map(|c| {
                        let host = hosts.iter().find(|h| h.provider == c.root)?.clone();
                        let on = members_on(&c.root);
                        let (fits, group_weight) = match group.as_ref().map(|g| g.policy.as_str()) {
                            Some("affinity") => (!placed_anywhere || on > 0, 0),
                            Some("anti-affinity") => {
                                let max = group.as_ref().and_then(|g| g.max_server_per_host).unwrap_or(1);
                                (on < max, 0)
                            }
                            Some("soft-affinity") => (true, on),
                            Some("soft-anti-affinity") => (true, -on),
                            _ => (true, 0),
                        };
                        fits.then(|| ((group_weight, free(&t.m, &c.root, "MEMORY_MB")), c, host))
                    })
                    .collect();
                // Group preference first, then the most free memory (spreading, as Nova's RAM weigher).
                found.sort_by(|a, b| b.0.cmp(&a.0));
                let Some((_, c, host)) = found.into_iter().next() else { return Ok(None) };
                placement::set_allocations(
                    t,
                    vec![ConsumerAllocations {
                        consumer: s.id.clone(),
                        project_id: s.project_id.clone(),
                        user_id: s.user_id.clone(),
                        generation: Some(None),
                        consumer_type: Some("INSTANCE".into()),
                        allocations: c.allocations,
                    }],
                )?;
                Ok(Some(host))
            })
            .await;
        match claimed {
            Ok(Some(host)) => Ok(host),
            Ok(None) => Err(ScheduleError::NoValidHost),
            Err(e) => {
                tracing::warn!(server = %s.id, error = %e, "claim failed");
                Err(ScheduleError::Claim(e))
            }
        }
    }

    /// Claims the resources of `flavor` for a resize of `s` on its own host: the server's
    /// current allocations move to the `migration` consumer (held until the resize is
    /// confirmed or reverted) and the server gets the new flavor's, both in one write, so
    /// the host must have room for both.
    pub async fn claim_resize(
        &self,
        s: &Server,
        flavor: &crate::model::FlavorCopy,
        migration: &str,
    ) -> std::result::Result<(), ScheduleError> {
        let host = s.host.clone().unwrap_or_default();
        let provider = crate::service::hosts::compute_service(&self.model(), &host)
            .and_then(|svc| svc.agent.as_ref().map(|a| a.provider.clone()))
            .ok_or(ScheduleError::NoValidHost)?;
        let wanted = resources(&Server { flavor: flavor.clone(), ..s.clone() });
        let r = self
            .placement
            .write(|t| {
                let current = t.m.consumers.get(&s.id).map(|c| c.allocations.clone()).unwrap_or_default();
                let entry = |consumer: &str, kind: &str, allocations| ConsumerAllocations {
                    consumer: consumer.to_string(),
                    project_id: s.project_id.clone(),
                    user_id: s.user_id.clone(),
                    generation: None,
                    consumer_type: Some(kind.into()),
                    allocations,
                };
                placement::set_allocations(
                    t,
                    vec![
                        entry(migration, "MIGRATION", current),
                        entry(&s.id, "INSTANCE", BTreeMap::from([(provider.clone(), wanted)])),
                    ],
                )
            })
            .await;
        r.map_err(|e| {
            tracing::info!(server = %s.id, error = %e, "no room for the resize");
            ScheduleError::Claim(e)
        })
    }

    /// Ends a resize's claim: confirmed, the migration's resources go back to the host;
    /// reverted, the server gets them back in place of the new flavor's.
    pub async fn end_resize_claim(&self, s: &Server, migration: &str, reverted: bool) {
        let r = self
            .placement
            .write(|t| {
                let Some(held) = t.m.consumers.get(migration).cloned() else { return Ok(()) };
                if !reverted {
                    return placement::delete_allocations(t, migration);
                }
                let entry = |consumer: &str, allocations| ConsumerAllocations {
                    consumer: consumer.to_string(),
                    project_id: s.project_id.clone(),
                    user_id: s.user_id.clone(),
                    generation: None,
                    consumer_type: None,
                    allocations,
                };
                placement::set_allocations(
                    t,
                    vec![entry(migration, BTreeMap::new()), entry(&s.id, held.allocations.clone())],
                )
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(server = %s.id, %migration, error = %e, "the resize's allocations could not be settled");
        }
    }

    /// Gives back a server's resources (deleted, or failed to build).
    pub async fn release(&self, server_id: &str) {
        let r = self
            .placement
            .write(|t| match placement::delete_allocations(t, server_id) {
                Err(placement::Error::NotFound(_)) => Ok(()),
                other => other,
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(server = %server_id, error = %e, "allocations could not be removed");
        }
    }
}

fn free(m: &haneul_placement::model::Model, provider: &str, rc: &str) -> i64 {
    let Some(p) = m.providers.get(provider) else { return 0 };
    let capacity = p.inventories.get(rc).map_or(0, |i| i.capacity());
    capacity - m.provider_usage(provider).get(rc).copied().unwrap_or(0)
}

/// The resources a server takes: its flavor, as Nova turns it into a placement request.
pub fn resources(s: &Server) -> BTreeMap<String, i64> {
    let f = &s.flavor;
    let mut r: BTreeMap<String, i64> = BTreeMap::new();
    r.insert("VCPU".into(), f.vcpus);
    r.insert("MEMORY_MB".into(), f.ram);
    let disk = f.disk + f.ephemeral + (f.swap + 1023) / 1024;
    if disk > 0 {
        r.insert("DISK_GB".into(), disk);
    }
    for (k, v) in &f.extra_specs {
        if let Some(rc) = k.strip_prefix("resources:") {
            match v.parse::<i64>() {
                Ok(0) => {
                    r.remove(rc);
                }
                Ok(n) if n > 0 => {
                    r.insert(rc.to_string(), n);
                }
                _ => {}
            }
        }
    }
    r
}

/// The placement query for a server: its resources, and the traits its flavor's extra
/// specs and its image's properties require (`trait:NAME=required|forbidden`).
fn request(s: &Server, image: &Value) -> std::result::Result<Query, ScheduleError> {
    let mut required = BTreeSet::new();
    let mut forbidden = BTreeSet::new();
    let image_props =
        image.as_object().into_iter().flatten().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()));
    for (k, v) in s.flavor.extra_specs.clone().into_iter().chain(image_props) {
        if let Some(t) = k.strip_prefix("trait:") {
            match v.as_str() {
                "required" => {
                    required.insert(t.to_string());
                }
                "forbidden" => {
                    forbidden.insert(t.to_string());
                }
                _ => {}
            }
        }
    }
    if let Some(arch) = image.get("hw_architecture").or(image.get("architecture")).and_then(Value::as_str) {
        if !matches!(arch, "x86_64" | "i686" | "i386") {
            return Err(ScheduleError::Architecture(arch.to_string()));
        }
    }
    forbidden.insert("COMPUTE_STATUS_DISABLED".into());
    let group = Group {
        suffix: String::new(),
        resources: resources(s),
        required: required.into_iter().map(|t| [t].into()).collect(),
        forbidden,
        ..Default::default()
    };
    Ok(Query { groups: vec![group], ..Default::default() })
}
