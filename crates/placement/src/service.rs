//! Placement's rules: what a provider, an inventory and an allocation may be, and the checks
//! that keep allocations within capacity. Every change runs inside one snapshot write
//! ([`Placement::write`]), so a check and the change it guards are atomic.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::Utc;
use haneul_core::config::Config;
use haneul_core::docstore::{State, Store, StoreError, Txn as DocTxn};
use haneul_core::policy::PolicyFile;

use crate::model::{Consumer, CustomName, CustomTrait, Inventory, Model, Provider};

pub type Txn = DocTxn<Model>;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Placement's error codes (`errors[].code`, microversion 1.23).
pub mod code {
    pub const UNDEFINED: &str = "placement.undefined_code";
    pub const CONCURRENT_UPDATE: &str = "placement.concurrent_update";
    pub const DUPLICATE_NAME: &str = "placement.duplicate_name";
    pub const INVENTORY_INUSE: &str = "placement.inventory.inuse";
    pub const PROVIDER_INUSE: &str = "placement.resource_provider.inuse";
    pub const CANNOT_DELETE_PARENT: &str = "placement.resource_provider.cannot_delete_parent";
    pub const PROVIDER_NOT_FOUND: &str = "placement.resource_provider.not_found";
    pub const DUPLICATE_KEY: &str = "placement.query.duplicate_key";
    pub const BAD_VALUE: &str = "placement.query.bad_value";
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(code::UNDEFINED, msg.into())
}

fn conflict(msg: impl Into<String>) -> Error {
    Error::Conflict(code::UNDEFINED, msg.into())
}

pub struct Placement {
    state: State<Model>,
    pub policy: PolicyFile,
    /// The placement endpoint (`http://host:8778`), for the version document.
    pub public_url: String,
}

impl Placement {
    pub async fn open(config: &Config) -> Result<Arc<Placement>> {
        let store = Store::open(&config.placement_database_url(), "placement", crate::model::TABLES, &[]).await?;
        let state = State::<Model>::open(store).await?;
        let policy = PolicyFile::new(config.placement_policy_file(), crate::policy_defaults::DEFAULT_RULES)
            .map_err(|e| Error::Internal(format!("placement policy could not be loaded: {e}")))?;
        Ok(Arc::new(Placement { state, policy, public_url: config.public_url(config.placement.port) }))
    }

    pub fn model(&self) -> Arc<Model> {
        self.state.model()
    }

    pub async fn write<R>(&self, f: impl FnOnce(&mut Txn) -> Result<R>) -> Result<R> {
        self.state.write(f).await
    }

    pub async fn refresh(&self) -> Result<bool> {
        Ok(self.state.refresh().await?)
    }
}

// ---------------------------------------------------------------------------------------------
// Resource providers

pub fn provider<'a>(m: &'a Model, uuid: &str) -> Result<&'a Arc<Provider>> {
    m.providers.get(uuid).ok_or_else(|| Error::NotFound(format!("No resource provider with uuid {uuid} found")))
}

/// Checks the generation a writer read; placement's 409 when another write came first.
fn check_generation(p: &Provider, generation: i64) -> Result<()> {
    check_generation_saying(p, generation, "resource provider generation conflict")
}

fn check_generation_saying(p: &Provider, generation: i64, message: &str) -> Result<()> {
    if p.generation != generation {
        return Err(Error::Conflict(code::CONCURRENT_UPDATE, message.to_string()));
    }
    Ok(())
}

const GENERATION_CHANGED: &str =
    "Resource provider's generation already changed. Please update the generation and try again.";

/// Stores a changed provider with its generation bumped.
fn save(t: &mut Txn, mut p: Provider) -> Result<Arc<Provider>> {
    p.generation += 1;
    p.updated_at = Utc::now();
    Ok(t.put(p)?)
}

pub fn create_provider(
    t: &mut Txn,
    uuid: Option<String>,
    name: String,
    parent: Option<String>,
) -> Result<Arc<Provider>> {
    let uuid = uuid.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if t.m.providers.contains_key(&uuid) {
        return Err(Error::Conflict(
            code::DUPLICATE_NAME,
            format!("Conflicting resource provider uuid: {uuid} already exists."),
        ));
    }
    if t.m.providers.values().any(|p| p.name == name) {
        return Err(Error::Conflict(
            code::DUPLICATE_NAME,
            format!("Conflicting resource provider name: {name} already exists."),
        ));
    }
    let root = match &parent {
        None => uuid.clone(),
        Some(pp) => match t.m.providers.get(pp) {
            Some(p) => p.root.clone(),
            None => {
                return Err(bad(format!(
                    "Unable to create resource provider \"{name}\", {uuid}: Object action create failed because: parent provider UUID does not exist."
                )))
            }
        },
    };
    let now = Utc::now();
    Ok(t.put(Provider {
        id: uuid,
        name,
        generation: 0,
        parent,
        root,
        inventories: BTreeMap::new(),
        traits: BTreeSet::new(),
        aggregates: BTreeSet::new(),
        created_at: now,
        updated_at: now,
    })?)
}

/// Renames a provider and sets its parent. Before 1.37 a parent, once set, stays.
pub fn update_provider(
    t: &mut Txn,
    uuid: &str,
    name: String,
    parent: Option<String>,
    allow_reparent: bool,
) -> Result<Arc<Provider>> {
    let mut p = (**provider(&t.m, uuid)?).clone();
    if t.m.providers.values().any(|o| o.name == name && o.id != uuid) {
        return Err(Error::Conflict(
            code::DUPLICATE_NAME,
            format!("Conflicting resource provider {name} already exists."),
        ));
    }
    let refuse =
        |why: &str| bad(format!("Unable to save resource provider {uuid}: Object action update failed because: {why}"));
    if parent != p.parent {
        if p.parent.is_some() && !allow_reparent {
            return Err(refuse(if parent.is_some() {
                "re-parenting a provider is not currently allowed."
            } else {
                "un-parenting a provider is not currently allowed."
            }));
        }
        if let Some(pp) = &parent {
            if !t.m.providers.contains_key(pp) {
                return Err(bad(format!(
                    "Unable to save resource provider {uuid}: Object action create failed because: parent provider UUID does not exist."
                )));
            }
            if t.m.is_ancestor_or_self(uuid, pp) {
                return Err(refuse("creating loop in the provider tree is not allowed."));
            }
        }
        p.parent = parent;
        let new_root = match &p.parent {
            None => p.id.clone(),
            Some(pp) => t.m.providers[pp].root.clone(),
        };
        if new_root != p.root {
            // The whole subtree moves with it.
            let subtree: Vec<String> =
                t.m.providers
                    .values()
                    .filter(|o| t.m.is_ancestor_or_self(uuid, &o.id) && o.id != uuid)
                    .map(|o| o.id.clone())
                    .collect();
            for id in subtree {
                let mut c = (*t.m.providers[&id]).clone();
                c.root = new_root.clone();
                save(t, c)?;
            }
            p.root = new_root;
        }
    }
    p.name = name;
    save(t, p)
}

pub fn delete_provider(t: &mut Txn, uuid: &str) -> Result<()> {
    provider(&t.m, uuid)?;
    if t.m.consumers.any_by("provider", uuid) {
        return Err(Error::Conflict(
            code::PROVIDER_INUSE,
            format!("Unable to delete resource provider {uuid}: Resource provider has allocations."),
        ));
    }
    if t.m.providers.values().any(|c| c.parent.as_deref() == Some(uuid)) {
        return Err(Error::Conflict(
            code::CANNOT_DELETE_PARENT,
            format!("Unable to delete parent resource provider {uuid}: It has child resource providers."),
        ));
    }
    t.delete::<Provider>(uuid);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inventories

/// An inventory as a client gives it; fields left out take placement's defaults.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryIn {
    pub total: i64,
    #[serde(default)]
    pub reserved: Option<i64>,
    #[serde(default)]
    pub min_unit: Option<i64>,
    #[serde(default)]
    pub max_unit: Option<i64>,
    #[serde(default)]
    pub step_size: Option<i64>,
    #[serde(default)]
    pub allocation_ratio: Option<f64>,
}

/// Largest integer placement accepts in inventory fields (a 32-bit column in placement).
pub const MAX_INT: i64 = 2_147_483_647;

/// Fills in defaults and checks ranges. `reserved == total` is allowed from 1.26.
pub fn inventory(rp: &str, rc: &str, i: &InventoryIn, reserved_may_equal_total: bool) -> Result<Inventory> {
    let inv = Inventory {
        total: i.total,
        reserved: i.reserved.unwrap_or(0),
        min_unit: i.min_unit.unwrap_or(1),
        max_unit: i.max_unit.unwrap_or(MAX_INT),
        step_size: i.step_size.unwrap_or(1),
        allocation_ratio: i.allocation_ratio.unwrap_or(1.0),
    };
    let in_range = |name: &str, v: i64, min: i64| -> Result<()> {
        if v < min || v > MAX_INT {
            return Err(bad(format!(
                "JSON does not validate: {v} is not a valid {name} for resource class {rc}: it must be between {min} and {MAX_INT}."
            )));
        }
        Ok(())
    };
    in_range("total", inv.total, 1)?;
    in_range("reserved", inv.reserved, 0)?;
    in_range("min_unit", inv.min_unit, 1)?;
    in_range("max_unit", inv.max_unit, 1)?;
    in_range("step_size", inv.step_size, 1)?;
    if !(inv.allocation_ratio > 0.0 && inv.allocation_ratio <= 3.40282e38) {
        return Err(bad(format!(
            "JSON does not validate: allocation_ratio {} must be greater than 0.",
            inv.allocation_ratio
        )));
    }
    if inv.reserved > inv.total || (inv.reserved == inv.total && !reserved_may_equal_total) {
        return Err(bad(format!(
            "Unable to update inventory for resource provider {rp}: Invalid inventory for '{rc}' on resource provider '{rp}'. The reserved value is greater than or equal to total."
        )));
    }
    if inv.min_unit > inv.max_unit {
        return Err(bad(format!(
            "Unable to update inventory for resource provider {rp}: Invalid inventory for '{rc}' on resource provider '{rp}'. The min_unit value is greater than the max_unit value."
        )));
    }
    Ok(inv)
}

/// Replaces a provider's inventories, refusing to remove a class that has allocations.
pub fn set_inventories(
    t: &mut Txn,
    uuid: &str,
    generation: i64,
    inventories: BTreeMap<String, Inventory>,
) -> Result<Arc<Provider>> {
    let p = provider(&t.m, uuid)?;
    check_generation(p, generation)?;
    let mut p = (**p).clone();
    for rc in inventories.keys() {
        if !t.m.class_exists(rc) {
            return Err(bad(format!(
                "Unknown resource class in inventory for resource provider {uuid}: No such resource class {rc}."
            )));
        }
    }
    let used = t.m.provider_usage(uuid);
    for (rc, n) in &used {
        if *n > 0 && !inventories.contains_key(rc) {
            return Err(Error::Conflict(
                code::INVENTORY_INUSE,
                format!("update conflict: Inventory for '{rc}' on resource provider '{uuid}' in use."),
            ));
        }
    }
    p.inventories = inventories;
    save(t, p)
}

pub fn delete_inventory(t: &mut Txn, uuid: &str, rc: &str, generation: Option<i64>) -> Result<Arc<Provider>> {
    let p = provider(&t.m, uuid)?;
    if let Some(g) = generation {
        check_generation(p, g)?;
    }
    if !p.inventories.contains_key(rc) {
        return Err(Error::NotFound(format!(
            "No inventory of class {rc} found for delete: No inventory of class {rc} found for delete"
        )));
    }
    if t.m.provider_usage(uuid).get(rc).copied().unwrap_or(0) > 0 {
        // Placement answers this one with the concurrent-update code.
        return Err(Error::Conflict(
            code::CONCURRENT_UPDATE,
            format!(
                "Unable to delete inventory of class {rc}: Inventory for '{rc}' on resource provider '{uuid}' in use."
            ),
        ));
    }
    let mut p = (**p).clone();
    p.inventories.remove(rc);
    save(t, p)
}

// ---------------------------------------------------------------------------------------------
// Traits and aggregates

pub fn set_provider_traits(
    t: &mut Txn,
    uuid: &str,
    generation: i64,
    traits: BTreeSet<String>,
) -> Result<Arc<Provider>> {
    let p = provider(&t.m, uuid)?;
    check_generation_saying(p, generation, GENERATION_CHANGED)?;
    let missing: Vec<&str> = traits.iter().filter(|n| !t.m.trait_exists(n)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(bad(format!("No such trait {}", missing.join(", "))));
    }
    let mut p = (**p).clone();
    p.traits = traits;
    save(t, p)
}

pub fn set_provider_aggregates(
    t: &mut Txn,
    uuid: &str,
    generation: Option<i64>,
    aggregates: BTreeSet<String>,
) -> Result<Arc<Provider>> {
    let p = provider(&t.m, uuid)?;
    if let Some(g) = generation {
        check_generation_saying(p, g, GENERATION_CHANGED)?;
    }
    let mut p = (**p).clone();
    p.aggregates = aggregates;
    if generation.is_none() {
        // Before 1.19 aggregates do not move the generation.
        return Ok(t.put(p)?);
    }
    save(t, p)
}

pub fn is_custom(name: &str) -> bool {
    name.len() > "CUSTOM_".len()
        && name.len() <= 255
        && name.starts_with("CUSTOM_")
        && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Creates a custom resource class; `Ok(false)` when it exists already.
pub fn create_class(t: &mut Txn, name: &str) -> Result<bool> {
    if t.m.class_exists(name) {
        return Ok(false);
    }
    t.put(CustomName { id: name.to_string(), created_at: Utc::now() })?;
    Ok(true)
}

pub fn delete_class(t: &mut Txn, name: &str) -> Result<()> {
    if crate::model::STANDARD_CLASSES.contains(&name) {
        return Err(bad(format!("Error in delete resource class: Cannot delete standard resource class {name}.")));
    }
    if !t.m.classes.contains_key(name) {
        return Err(Error::NotFound(format!("No such resource class {name}.")));
    }
    if t.m.providers.values().any(|p| p.inventories.contains_key(name)) {
        return Err(conflict(format!(
            "Error in delete resource class: Cannot delete resource class {name}. Class is in use in inventory."
        )));
    }
    t.delete::<CustomName>(name);
    Ok(())
}

/// Creates a custom trait; `Ok(false)` when it exists already.
pub fn create_trait(t: &mut Txn, name: &str) -> Result<bool> {
    if t.m.trait_exists(name) {
        return Ok(false);
    }
    t.put(CustomTrait { id: name.to_string(), created_at: Utc::now() })?;
    Ok(true)
}

pub fn delete_trait(t: &mut Txn, name: &str) -> Result<()> {
    if crate::model::STANDARD_TRAITS.binary_search(&name).is_ok() {
        return Err(bad(format!("Cannot delete standard trait {name}.")));
    }
    if !t.m.traits.contains_key(name) {
        return Err(Error::NotFound(format!("No such trait(s): {name}.")));
    }
    if t.m.providers.values().any(|p| p.traits.contains(name)) {
        return Err(conflict(format!("The trait {name} is in use by a resource provider.")));
    }
    t.delete::<CustomTrait>(name);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Allocations

/// What to record for one consumer: its allocations replace the ones it had.
#[derive(Clone, Debug)]
pub struct ConsumerAllocations {
    pub consumer: String,
    pub project_id: String,
    pub user_id: String,
    /// `None`: not checked (before 1.28). `Some(None)`: the consumer must be new.
    pub generation: Option<Option<i64>>,
    pub consumer_type: Option<String>,
    pub allocations: BTreeMap<String, BTreeMap<String, i64>>,
}

/// Replaces the allocations of each consumer, all or none, checking every amount against
/// the provider's inventory and capacity. A consumer left without allocations is deleted.
/// Every provider whose allocations change gets a new generation.
pub fn set_allocations(t: &mut Txn, requests: Vec<ConsumerAllocations>) -> Result<()> {
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for r in requests {
        let existing = t.m.consumers.get(&r.consumer).cloned();
        if let Some(expected) = r.generation {
            let actual = existing.as_ref().map(|c| c.generation);
            if expected != actual {
                let show = |g: Option<i64>| g.map_or("None".to_string(), |g| g.to_string());
                let detail = if actual.is_none() {
                    format!("consumer generation conflict - expected null but got {}", show(expected))
                } else {
                    format!("consumer generation conflict - expected {} but got {}", show(actual), show(expected))
                };
                return Err(Error::Conflict(code::CONCURRENT_UPDATE, detail));
            }
        }
        for (rp, res) in &r.allocations {
            let Some(p) = t.m.providers.get(rp) else {
                return Err(bad(format!("Allocation for resource provider '{rp}' that does not exist.")));
            };
            for (rc, n) in res {
                if !t.m.class_exists(rc) {
                    return Err(bad(format!(
                        "Unable to allocate inventory for consumer {}: No such resource class {rc}.",
                        r.consumer
                    )));
                }
                let Some(inv) = p.inventories.get(rc) else {
                    return Err(conflict(format!(
                        "Unable to allocate inventory: Inventory for '{rc}' on resource provider '{rp}' invalid."
                    )));
                };
                if *n < inv.min_unit || *n > inv.max_unit || *n % inv.step_size != 0 {
                    return Err(conflict(format!(
                        "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would violate inventory constraints."
                    )));
                }
            }
        }
        if let Some(old) = &existing {
            touched.extend(old.allocations.keys().cloned());
        }
        touched.extend(r.allocations.keys().cloned());
        let allocations: BTreeMap<String, BTreeMap<String, i64>> =
            r.allocations.into_iter().filter(|(_, res)| !res.is_empty()).collect();
        if allocations.is_empty() {
            t.delete::<Consumer>(&r.consumer);
            continue;
        }
        let now = Utc::now();
        let (generation, created_at, old_type) = match &existing {
            Some(c) => (c.generation + 1, c.created_at, Some(c.consumer_type.clone())),
            None => (1, now, None),
        };
        t.put(Consumer {
            id: r.consumer,
            project_id: r.project_id,
            user_id: r.user_id,
            generation,
            consumer_type: r.consumer_type.or(old_type).unwrap_or_else(|| "unknown".to_string()),
            allocations,
            created_at,
            updated_at: now,
        })?;
    }
    // Capacity, with every consumer's new allocations in place.
    for rp in &touched {
        let Some(p) = t.m.providers.get(rp) else { continue };
        {
            let used = t.m.provider_usage(rp);
            for (rc, n) in &used {
                let capacity = p.inventories.get(rc).map_or(0, Inventory::capacity);
                if *n > capacity {
                    return Err(conflict(format!(
                        "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would exceed the capacity."
                    )));
                }
            }
        }
    }
    for rp in touched {
        if let Some(p) = t.m.providers.get(&rp) {
            let p = (**p).clone();
            save(t, p)?;
        }
    }
    Ok(())
}

pub fn delete_allocations(t: &mut Txn, consumer: &str) -> Result<()> {
    let Some(c) = t.m.consumers.get(consumer).cloned() else {
        return Err(Error::NotFound(format!("No allocations for consumer '{consumer}'")));
    };
    t.delete::<Consumer>(consumer);
    for rp in c.allocations.keys() {
        if let Some(p) = t.m.providers.get(rp) {
            let p = (**p).clone();
            save(t, p)?;
        }
    }
    Ok(())
}

/// Moves inventories and allocations in one step (`POST /reshaper`): providers' inventories
/// are replaced, then the consumers' allocations, and only the end state must fit.
pub fn reshape(
    t: &mut Txn,
    inventories: Vec<(String, i64, BTreeMap<String, Inventory>)>,
    requests: Vec<ConsumerAllocations>,
) -> Result<()> {
    for (rp, g, new) in &inventories {
        check_generation(provider(&t.m, rp)?, *g)?;
        if let Some(rc) = new.keys().find(|rc| !t.m.class_exists(rc)) {
            return Err(bad(format!("Unknown resource class in inventory for resource provider {rp}: {rc}")));
        }
    }
    let changed: Vec<String> = inventories.iter().map(|(rp, _, _)| rp.clone()).collect();
    for (rp, _, new) in inventories {
        let mut p = (*t.m.providers[&rp]).clone();
        p.inventories = new;
        save(t, p)?;
    }
    set_allocations(t, requests)?;
    for rp in &changed {
        let p = &t.m.providers[rp];
        for (rc, n) in &t.m.provider_usage(rp) {
            match p.inventories.get(rc) {
                None => {
                    return Err(Error::Conflict(
                        code::INVENTORY_INUSE,
                        format!("Inventory for '{rc}' on resource provider '{rp}' in use."),
                    ))
                }
                Some(inv) if *n > inv.capacity() => {
                    return Err(conflict(format!(
                        "Unable to allocate inventory: Unable to create allocation for '{rc}' on resource provider '{rp}'. The requested amount would exceed the capacity."
                    )))
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}
