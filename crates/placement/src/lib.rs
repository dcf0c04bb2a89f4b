//! The placement service: OpenStack Placement 1.0–1.39.
//!
//! Resource providers (compute hosts and what nests under them) with inventories of resource
//! classes, traits and aggregates; consumers (servers) with allocations against them; and the
//! allocation-candidate query the compute scheduler asks before it claims. A claim is one
//! write of the service's snapshot: capacity is checked and the allocation recorded under
//! the write lock (and the database revision row across processes), so two concurrent claims
//! can never overcommit a provider.
//!
//! Layers as in every service: [`api`] → [`service`] (rules, candidates) → [`model`].

pub mod api;
pub mod candidates;
pub mod model;
pub mod policy_defaults;
pub mod service;
pub mod serving;

pub use service::Placement;
