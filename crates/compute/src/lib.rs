//! The compute service: OpenStack Nova v2.1 (issue 4, in progress), the controller's half
//! of it: the API, the scheduler (with placement), and the host agents' registry. Instances
//! run on the hosts' agents (`haneul_agent`), which this service drives over their REST API
//! with instance specs and which report back ([`service::agents`]).
//!
//! Layers as in every service: [`api`] (HTTP: parsing, policy, rendering) → [`service`] (the
//! rules: builds as workflows, scheduling, hosts, agents, quotas, instance actions) →
//! [`model`] (a `core::docstore` snapshot); [`serving`] runs it as a `core::service::Service`.

pub mod api;
pub mod metadata;
pub mod model;
pub mod policy_defaults;
pub mod service;
pub mod serving;

pub use service::actions::{purge, Purged};
pub use service::Compute;
