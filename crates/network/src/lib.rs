//! The network service: OpenStack Networking (Neutron v2.0), its API and IP address
//! management (issue 5, in progress). The data plane (bridges, namespaces, DHCP, firewall)
//! is the host agent's.
//!
//! Layers as in every service: [`api`] → [`service`] → [`model`] (a `core::docstore` snapshot).

pub mod api;
pub mod free;
pub mod ip;
pub mod model;
pub mod picture;
pub mod policy_defaults;
pub mod service;
pub mod serving;

pub use service::Networking;
