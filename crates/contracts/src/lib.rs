//! The contracts between haneul's processes, typed once and used by both ends.
//!
//! - [`agent`]: the compute service → a host's agent (the instance [`agent::Spec`]) and back
//!   (the agent's [`agent::Report`], each instance's [`agent::Observed`] state).
//! - [`dataplane`]: the network service → the agents (the [`dataplane::Picture`] a host's
//!   bridges, namespaces, DHCP servers and firewall are made from).
//!
//! Both ends depend on this crate and on nothing of each other, so a field cannot be added on
//! one side and forgotten on the other. Fields are required unless they are `Option` or a
//! documented default that an older sender leaves out; every picture carries
//! [`dataplane::SCHEMA`], and an agent refuses a picture of another schema rather than read
//! it half.
//!
//! Growing a contract: add the field as `Option<_>` or with `#[serde(default)]` (an older
//! peer does not send it), say what its absence means, and bump the schema only for a change
//! an older peer would misread.

pub mod agent;
pub mod dataplane;
