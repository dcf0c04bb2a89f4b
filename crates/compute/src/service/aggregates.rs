//! Host aggregates and the availability zones they make, with Nova's rules: a host is in at
//! most one zone, a zone is never taken off an aggregate, and a host with servers does not
//! change zone. Members are mirrored into placement as aggregates of the host's provider, as
//! Nova does.

use std::collections::BTreeMap;

use chrono::Utc;
use haneul_placement::service as placement;

use crate::model::{Aggregate, Model};
use crate::service::{Compute, Error, Result};

/// Why a zone change is refused (Nova's `is_safe_to_update_az`), or `None`.
fn zone_change_refused(
    m: &Model,
    a: &Aggregate,
    new_zone: Option<&str>,
    hosts: &[String],
    instances: bool,
) -> Option<String> {
    let Some(zone) = new_zone.filter(|z| !z.is_empty()) else {
        return Some(format!("Aggregate {} does not support empty named availability zone.", a.name));
    };
    let mut others: Vec<String> = m
        .aggregates
        .values()
        .filter(|o| o.id != a.id && o.hosts.iter().any(|h| hosts.contains(h)))
        .filter_map(|o| o.zone().filter(|z| *z != zone).map(|z| format!("'{z}'")))
        .collect();
    others.sort();
    others.dedup();
    if !others.is_empty() {
        return Some(format!("One or more hosts already in availability zone(s) [{}].", others.join(", ")));
    }
    if instances && a.zone() != Some(zone) && hosts.iter().any(|h| servers_on(m, h) > 0) {
        return Some("One or more hosts contain instances in this zone.".into());
    }
    None
}

fn servers_on(m: &Model, host: &str) -> usize {
    m.servers_on(host).count()
}

fn zone_move(action: &str, verb: &str, id: i64, old: &str, new: &str, n: usize) -> Error {
    Error::Conflict(format!(
        "Cannot {action} host {verb} aggregate {id}. Reason: The host cannot be {}ed {verb} the aggregate as the \
         availability zone of the host would change from '{old}' to '{new}' but the host already has {n} instance(s). \
         Changing the AZ of an existing instance is not supported by this action. Move the instances away from this \
         host then try again. If you need to move the instances between AZs then you can use shelve_offload and \
         unshelve to achieve this..",
        if action == "add" { "add" } else { "remov" }
    ))
}

/// The zone a host has when `without` is not counted.
fn zone_without(m: &Model, host: &str, without: &str) -> Option<String> {
    let mut aggs: Vec<&Aggregate> = m.aggregates.values().map(|a| &**a).filter(|a| a.id != without).collect();
    aggs.sort_by_key(|a| a.number);
    aggs.into_iter().filter(|a| a.hosts.iter().any(|h| h == host)).find_map(|a| a.zone().map(str::to_owned))
}

pub fn not_found(id: &str) -> Error {
    Error::NotFound(format!("Aggregate {id} could not be found."))
}

/// The aggregate of an id as clients give it (Nova's integer id).
pub fn find<'a>(m: &'a Model, id: &str) -> Result<&'a Aggregate> {
    let n: i64 = id.parse().map_err(|_| Error::BadRequest("Invalid input received: id must be an integer".into()))?;
    m.aggregates.values().map(|a| &**a).find(|a| a.number == n).ok_or_else(|| not_found(id))
}

impl Compute {
    pub async fn create_aggregate(&self, name: String, zone: Option<String>) -> Result<Aggregate> {
        self.write(|t| {
            if t.m.aggregates.values().any(|a| a.name == name) {
                return Err(Error::Conflict(format!("Aggregate {name} already exists.")));
            }
            let mut metadata = BTreeMap::new();
            if let Some(z) = zone.filter(|z| !z.is_empty()) {
                metadata.insert("availability_zone".to_string(), z);
            }
            let a = Aggregate {
                id: uuid::Uuid::new_v4().to_string(),
                number: t.m.aggregates.values().map(|a| a.number).max().unwrap_or(0) + 1,
                name,
                hosts: vec![],
                metadata,
                created_at: Utc::now(),
                updated_at: None,
            };
            Ok((*t.put(a)?).clone())
        })
        .await
    }

    /// PUT: a new name and/or zone. As in Nova, a rename is kept even when the zone change
    /// after it is refused.
    pub async fn update_aggregate(
        &self,
        id: &str,
        name: Option<String>,
        zone: Option<Option<String>>,
    ) -> Result<Aggregate> {
        if let Some(name) = name {
            self.write(|t| {
                let a = find(&t.m, id)?.clone();
                if t.m.aggregates.values().any(|o| o.name == name && o.id != a.id) {
                    return Err(Error::Conflict(format!("Aggregate {name} already exists.")));
                }
                t.put(Aggregate { name, updated_at: Some(Utc::now()), ..a })?;
                Ok(())
            })
            .await?;
        }
        self.write(|t| {
            let mut a = find(&t.m, id)?.clone();
            if let Some(z) = zone {
                if let Some(reason) = zone_change_refused(&t.m, &a, z.as_deref(), &a.hosts, true) {
                    return Err(Error::BadRequest(format!("Cannot update aggregate {id}. Reason: {reason}")));
                }
                a.metadata.insert("availability_zone".into(), z.unwrap_or_default());
            }
            a.updated_at = Some(Utc::now());
            Ok((*t.put(a)?).clone())
        })
        .await
    }

    /// Merges metadata: a `None` value removes its key.
    pub async fn set_aggregate_metadata(
        &self,
        id: &str,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<Aggregate> {
        self.write(|t| {
            let mut a = find(&t.m, id)?.clone();
            if let Some(z) = changes.get("availability_zone") {
                if let Some(reason) = zone_change_refused(&t.m, &a, z.as_deref(), &a.hosts, true) {
                    return Err(Error::BadRequest(format!(
                        "Cannot update metadata of aggregate {id}. Reason: {reason}"
                    )));
                }
            }
            for (k, v) in changes {
                match v {
                    Some(v) => {
                        a.metadata.insert(k, v);
                    }
                    None => {
                        a.metadata.remove(&k);
                    }
                }
            }
            a.updated_at = Some(Utc::now());
            Ok((*t.put(a)?).clone())
        })
        .await
    }

    pub async fn delete_aggregate(&self, id: &str) -> Result<()> {
        self.write(|t| {
            let a = find(&t.m, id)?.clone();
            if !a.hosts.is_empty() {
                return Err(Error::BadRequest(format!(
                    "Cannot remove host from aggregate {id}. Reason: Host aggregate is not empty."
                )));
            }
            t.delete::<Aggregate>(&a.id);
            Ok(())
        })
        .await
    }

    pub async fn aggregate_add_host(&self, id: &str, host: &str) -> Result<Aggregate> {
        let a = self
            .write(|t| {
                if crate::service::hosts::compute_service(&t.m, host).is_none() {
                    return Err(Error::NotFound(format!("Compute host {host} could not be found.")));
                }
                let mut a = find(&t.m, id)?.clone();
                let hosts = [host.to_string()];
                if let Some(zone) = a.zone() {
                    if let Some(reason) = zone_change_refused(&t.m, &a, Some(zone), &hosts, false) {
                        return Err(Error::Conflict(format!("Cannot add host to aggregate {id}. Reason: {reason}")));
                    }
                    let n = servers_on(&t.m, host);
                    let old = zone_without(&t.m, host, &a.id);
                    if n > 0 && old.as_deref() != Some(zone) {
                        return Err(zone_move("add", "to", a.number, old.as_deref().unwrap_or("None"), zone, n));
                    }
                }
                if a.hosts.iter().any(|h| h == host) {
                    return Err(Error::Conflict(format!("Aggregate {id} already has host {host}.")));
                }
                a.hosts.push(host.to_string());
                a.updated_at = Some(Utc::now());
                Ok((*t.put(a)?).clone())
            })
            .await?;
        self.mirror(host, &a.id, true).await;
        Ok(a)
    }

    pub async fn aggregate_remove_host(&self, id: &str, host: &str) -> Result<Aggregate> {
        let gone = || Error::NotFound(format!("Cannot remove host {host} in aggregate {id}"));
        let a = self
            .write(|t| {
                if crate::service::hosts::compute_service(&t.m, host).is_none() {
                    return Err(gone());
                }
                let mut a = match find(&t.m, id) {
                    Ok(a) => a.clone(),
                    Err(Error::NotFound(_)) => return Err(gone()),
                    Err(e) => return Err(e),
                };
                if !a.hosts.iter().any(|h| h == host) {
                    return Err(gone());
                }
                if let Some(zone) = a.zone() {
                    let n = servers_on(&t.m, host);
                    let after = zone_without(&t.m, host, &a.id).unwrap_or_else(|| crate::model::DEFAULT_ZONE.into());
                    if n > 0 && after != zone {
                        return Err(zone_move("remove", "from", a.number, zone, &after, n));
                    }
                }
                a.hosts.retain(|h| h != host);
                a.updated_at = Some(Utc::now());
                Ok((*t.put(a)?).clone())
            })
            .await?;
        self.mirror(host, &a.id, false).await;
        Ok(a)
    }

    /// Adds or removes the aggregate on the host's placement provider (failures are logged,
    /// as in Nova: the compute aggregate is what scheduling reads here).
    async fn mirror(&self, host: &str, aggregate: &str, member: bool) {
        let Some(provider) = self.hosts().into_iter().find(|h| h.name == host).map(|h| h.provider) else { return };
        let r = self
            .placement
            .write(|t| {
                let p = placement::provider(&t.m, &provider)?.clone();
                let mut aggs = p.aggregates.clone();
                let changed = if member { aggs.insert(aggregate.to_string()) } else { aggs.remove(aggregate) };
                if changed {
                    placement::set_provider_aggregates(t, &provider, Some(p.generation), aggs)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(host, aggregate, error = %e, "could not mirror the aggregate into placement");
        }
    }
}
