//! The compute service as [`haneul_core::service::Service`]: its API and the metadata API guests ask, its hosts' heartbeat, its refresh
//! from the database and its policy reload.

use std::sync::Arc;

use haneul_core::auth::TokenValidator;
use haneul_core::config::Config;
use haneul_core::policy::PolicyFile;
use haneul_core::service::{Api, BoxError, BoxFuture, CatalogEntry, Service};

use crate::Compute;

/// The compute endpoint the catalog lists.
pub fn catalog_entry(cfg: &Config) -> CatalogEntry {
    CatalogEntry {
        kind: "compute",
        name: "nova",
        url: format!("{}/v2.1", cfg.public_url(cfg.compute.port)),
        limits: &[],
    }
}

pub fn serving(state: Arc<Compute>, validator: Arc<dyn TokenValidator>, cfg: &Config) -> Arc<dyn Service> {
    Arc::new(Serving { state, validator, body_limit: cfg.server.max_request_body_size })
}

struct Serving {
    state: Arc<Compute>,
    validator: Arc<dyn TokenValidator>,
    body_limit: usize,
}

impl Service for Serving {
    fn name(&self) -> &'static str {
        "compute"
    }
    fn apis(&self) -> Vec<Api> {
        vec![
            Api {
                name: "compute",
                router: crate::api::router(self.state.clone(), self.validator.clone(), self.body_limit),
            },
            Api { name: "metadata", router: crate::metadata::router(self.state.clone()) },
        ]
    }
    fn refresh(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async { Ok(self.state.refresh().await?) })
    }
    fn policy(&self) -> Option<&PolicyFile> {
        Some(&self.state.policy)
    }
    fn tick(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async { Ok(self.state.heartbeat_if_due().await?) })
    }
}
