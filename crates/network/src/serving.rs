//! The network service as [`haneul_core::service::Service`]: its API, its refresh
//! from the database and its policy reload.

use std::sync::Arc;

use haneul_core::auth::TokenValidator;
use haneul_core::config::Config;
use haneul_core::policy::PolicyFile;
use haneul_core::service::{Api, BoxError, BoxFuture, CatalogEntry, Service};

use crate::Networking;

/// The network endpoint the catalog lists.
pub fn catalog_entry(cfg: &Config) -> CatalogEntry {
    CatalogEntry {
        kind: crate::service::SERVICE_TYPE,
        name: "neutron",
        url: cfg.public_url(cfg.network.port),
        limits: &[],
    }
}

pub fn serving(state: Arc<Networking>, validator: Arc<dyn TokenValidator>, cfg: &Config) -> Arc<dyn Service> {
    Arc::new(Serving { state, validator, body_limit: cfg.server.max_request_body_size })
}

struct Serving {
    state: Arc<Networking>,
    validator: Arc<dyn TokenValidator>,
    body_limit: usize,
}

impl Service for Serving {
    fn name(&self) -> &'static str {
        "network"
    }
    fn apis(&self) -> Vec<Api> {
        vec![Api {
            name: "network",
            router: crate::api::router(self.state.clone(), self.validator.clone(), self.body_limit),
        }]
    }
    fn refresh(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async { Ok(self.state.refresh().await?) })
    }
    fn policy(&self) -> Option<&PolicyFile> {
        Some(&self.state.policy)
    }
    /// Ends the agents' long polls, so that the listener can close.
    fn stop(&self) {
        self.state.stop();
    }
}
