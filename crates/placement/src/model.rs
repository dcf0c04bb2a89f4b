//! Placement's state: resource providers (with their inventories, traits and aggregates),
//! consumers (with their allocations), custom resource classes and custom traits; one
//! snapshot written through to the database (`core::docstore`).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use haneul_core::docstore::Table;
use serde::{Deserialize, Serialize};

/// Prefixed: several services may share one PostgreSQL database (identity has `consumers`).
/// Every table of this service, for the check that services sharing a database name none alike.
pub const TABLES: &[&str] = <Model as haneul_core::docstore::Snapshot>::TABLES;

/// One resource class a provider has, and how much of it may be allocated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub total: i64,
    pub reserved: i64,
    pub min_unit: i64,
    pub max_unit: i64,
    pub step_size: i64,
    pub allocation_ratio: f64,
}

impl Inventory {
    /// What may be allocated in all: `(total - reserved) * allocation_ratio`, as placement
    /// computes it.
    pub fn capacity(&self) -> i64 {
        ((self.total - self.reserved) as f64 * self.allocation_ratio) as i64
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Provider {
    /// The provider's uuid.
    pub id: String,
    pub name: String,
    /// Bumped by every change to the provider, its inventories, traits, aggregates and
    /// allocations against it; writers name the generation they read.
    pub generation: i64,
    pub parent: Option<String>,
    pub root: String,
    pub inventories: BTreeMap<String, Inventory>,
    pub traits: BTreeSet<String>,
    pub aggregates: BTreeSet<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Whatever holds allocations: a server, a migration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Consumer {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub generation: i64,
    pub consumer_type: String,
    /// provider uuid → resource class → amount.
    pub allocations: BTreeMap<String, BTreeMap<String, i64>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A `CUSTOM_` resource class or trait; the standard ones are built in.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CustomName {
    pub id: String,
    pub created_at: DateTime<Utc>,
}

/// A custom trait (a table of its own, apart from custom resource classes).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CustomTrait {
    pub id: String,
    pub created_at: DateTime<Utc>,
}

haneul_core::record!(Model; Provider, "placement_providers", providers, unique: name);
haneul_core::record!(Model; Consumer, "placement_consumers", consumers, indexes: index_keys);

impl Consumer {
    /// Consumers are indexed by the providers they hold allocations from.
    fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
        for rp in self.allocations.keys() {
            f("provider", rp);
        }
    }
}
haneul_core::record!(Model; CustomName, "placement_classes", classes);
haneul_core::record!(Model; CustomTrait, "placement_traits", traits);

#[derive(Clone, Default)]
pub struct Model {
    pub generation: u64,
    pub providers: Table<Provider>,
    pub consumers: Table<Consumer>,
    pub classes: Table<CustomName>,
    pub traits: Table<CustomTrait>,
}

haneul_core::snapshot!(Model; Provider, Consumer, CustomName, CustomTrait);

impl Model {
    /// How much of each resource class is allocated from each provider.
    pub fn usages(&self) -> BTreeMap<&str, BTreeMap<&str, i64>> {
        let mut out: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
        for c in self.consumers.values() {
            for (rp, res) in &c.allocations {
                let u = out.entry(rp.as_str()).or_default();
                for (rc, n) in res {
                    *u.entry(rc.as_str()).or_default() += n;
                }
            }
        }
        out
    }

    /// How much of each resource class is allocated from one provider.
    pub fn provider_usage(&self, rp: &str) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for c in self.consumers.by("provider", rp) {
            if let Some(res) = c.allocations.get(rp) {
                for (rc, n) in res {
                    *out.entry(rc.clone()).or_default() += n;
                }
            }
        }
        out
    }

    pub fn class_exists(&self, name: &str) -> bool {
        STANDARD_CLASSES.contains(&name) || self.classes.contains_key(name)
    }

    pub fn trait_exists(&self, name: &str) -> bool {
        STANDARD_TRAITS.binary_search(&name).is_ok() || self.traits.contains_key(name)
    }

    /// The providers of the tree rooted at `root`.
    pub fn tree<'a>(&'a self, root: &'a str) -> impl Iterator<Item = &'a Provider> + 'a {
        self.providers.values().filter(move |p| p.root == root).map(|p| &**p)
    }

    /// `ancestor` is `p` or one of its ancestors.
    pub fn is_ancestor_or_self(&self, ancestor: &str, p: &str) -> bool {
        let mut cur = Some(p.to_string());
        while let Some(id) = cur {
            if id == ancestor {
                return true;
            }
            cur = self.providers.get(&id).and_then(|p| p.parent.clone());
        }
        false
    }
}

/// The standard resource classes (`os-resource-classes`), in their fixed order.
pub const STANDARD_CLASSES: &[&str] = &[
    "VCPU",
    "MEMORY_MB",
    "DISK_GB",
    "PCI_DEVICE",
    "SRIOV_NET_VF",
    "NUMA_SOCKET",
    "NUMA_CORE",
    "NUMA_THREAD",
    "NUMA_MEMORY_MB",
    "IPV4_ADDRESS",
    "VGPU",
    "VGPU_DISPLAY_HEAD",
    "NET_BW_EGR_KILOBIT_PER_SEC",
    "NET_BW_IGR_KILOBIT_PER_SEC",
    "PCPU",
    "MEM_ENCRYPTION_CONTEXT",
    "FPGA",
    "PGPU",
    "NET_PACKET_RATE_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC",
];

/// The standard traits (`os-traits`), sorted.
pub const STANDARD_TRAITS: &[&str] = &include!("standard_traits.in");
