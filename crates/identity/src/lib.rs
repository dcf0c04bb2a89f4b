//! The identity service: OpenStack Keystone v3.
//!
//! Layers, top to bottom: [`api`] (routes, request and response shapes, policy checks) →
//! [`service`] (the rules: authentication, role resolution, revocation, and a module per
//! resource with the rules of its changes) → [`model`] (the in-memory snapshot) and [`store`]
//! (its tables).
//!
//! Invariants:
//! - Reads see one consistent [`model::Model`] snapshot; a write builds the next snapshot,
//!   persists its changes in one transaction, and only then publishes it. A failed write
//!   leaves both the database and memory as they were.
//! - Writes are serialized by one lock; password hashing happens before it is taken.
//! - A handler changes state only through one service function run in the write; every check
//!   that reads the state a change depends on runs in that same write.
//! - A token is valid only while its user, scope, domain and roles are; revocation events
//!   and the current model are checked on every validation.

pub mod api;
pub mod bootstrap;
pub mod model;
pub mod policy_defaults;
pub mod service;
pub mod serving;
pub mod store;
pub mod token;

pub use service::{Error, Identity};
