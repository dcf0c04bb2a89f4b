//! The placement service as [`haneul_core::service::Service`]: its API, its refresh
//! from the database and its policy reload.

use std::sync::Arc;

use haneul_core::auth::TokenValidator;
use haneul_core::config::Config;
use haneul_core::policy::PolicyFile;
use haneul_core::service::{Api, BoxError, BoxFuture, CatalogEntry, Service};

use crate::Placement;

/// The placement endpoint the catalog lists.
pub fn catalog_entry(cfg: &Config) -> CatalogEntry {
    CatalogEntry { kind: "placement", name: "placement", url: cfg.public_url(cfg.placement.port), limits: &[] }
}

pub fn serving(state: Arc<Placement>, validator: Arc<dyn TokenValidator>, cfg: &Config) -> Arc<dyn Service> {
    Arc::new(Serving { state, validator, body_limit: cfg.server.max_request_body_size })
}

struct Serving {
    state: Arc<Placement>,
    validator: Arc<dyn TokenValidator>,
    body_limit: usize,
}

impl Service for Serving {
    fn name(&self) -> &'static str {
        "placement"
    }
    fn apis(&self) -> Vec<Api> {
        vec![Api {
            name: "placement",
            router: crate::api::router(self.state.clone(), self.validator.clone(), self.body_limit),
        }]
    }
    fn refresh(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async { Ok(self.state.refresh().await?) })
    }
    fn policy(&self) -> Option<&PolicyFile> {
        Some(&self.state.policy)
    }
}
