//! The compute service: OpenStack Nova v2.1 (issue 4, in progress).
//!
//! So far: version discovery and microversion negotiation (2.1–2.100), flavors with extra
//! specs and access lists, key pairs; the default flavors on first start. Servers, the
//! scheduler, placement and the QEMU driver follow.
//!
//! Layers as in every service: [`api`] → [`service`] → [`model`] (a `core::docstore` snapshot).

pub mod api;
pub mod hosts;
pub mod metadata;
pub mod model;
pub mod policy_defaults;
pub mod quotas;
pub mod scheduler;
pub mod servers;
pub mod service;

pub use service::Compute;
