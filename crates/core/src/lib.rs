//! Shared plumbing for every haneul service.
//!
//! What lives here is what each OpenStack-style API needs in the same way: configuration,
//! the mapping of errors to each service's fault body, request ids, query encoding, microversion
//! parsing, the authentication context that token validation produces, the oslo.policy engine,
//! request body limits and the database handle with its migration runner.
//!
//! Invariants:
//! - Every response leaving a router built with [`http::service_layers`] carries
//!   `x-openstack-request-id`, and every error body is the fault shape of its service.
//! - Nothing here knows a particular service's resources; services depend on `core`, never
//!   the other way around.

pub mod auth;
pub mod client;
pub mod config;
pub mod db;
pub mod docstore;
pub mod error;
pub mod http;
pub mod image_api;
pub mod limits;
pub mod microversion;
pub mod policy;
pub mod qemu_img;
pub mod routes;
pub mod service;
pub mod service_auth;
pub mod url;

pub use error::{ApiError, FaultStyle};
