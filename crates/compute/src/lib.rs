//! The compute service: OpenStack Nova v2.1 (issue 4, in progress), the controller's half
//! of it: the API, the scheduler (with placement), and the host agents' registry. Instances
//! run on the hosts' agents (`haneul_agent`), which this service drives over their REST API
//! with instance specs and which report back ([`agents`]).
//!
//! Layers as in every service: [`api`] → [`service`] → [`model`] (a `core::docstore` snapshot).

pub mod actions;
pub mod agents;
pub mod aggregates;
pub mod api;
pub mod hosts;
pub mod keygen;
pub mod metadata;
pub mod model;
pub mod network;
pub mod policy_defaults;
pub mod quotas;
pub mod scheduler;
pub mod servers;
pub mod service;
pub mod serving;
pub mod workflow;

pub use service::Compute;
