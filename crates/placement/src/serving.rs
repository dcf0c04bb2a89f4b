//! The placement service as a [`haneul_core::service::Service`]: its API, its refresh
//! from the database and its policy reload ([`Stateful`]).

use std::sync::Arc;

use haneul_core::auth::TokenValidator;
use haneul_core::config::Config;
use haneul_core::policy::PolicyFile;
use haneul_core::service::{Api, BoxError, BoxFuture, CatalogEntry, Service, ServiceState, Stateful};

use crate::Placement;

/// The placement endpoint the catalog lists.
pub fn catalog_entry(cfg: &Config) -> CatalogEntry {
    CatalogEntry { kind: "placement", name: "placement", url: cfg.public_url(cfg.placement.port), limits: &[] }
}

pub fn serving(state: Arc<Placement>, validator: Arc<dyn TokenValidator>, cfg: &Config) -> Arc<dyn Service> {
    let body_limit = cfg.server.max_request_body_size;
    Stateful::serve("placement", state, move |s| {
        vec![Api { name: "placement", router: crate::api::router(s.clone(), validator.clone(), body_limit) }]
    })
}

impl ServiceState for Placement {
    fn refresh_state(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async { Ok(Placement::refresh(self).await?) })
    }
    fn policy_file(&self) -> &PolicyFile {
        &self.policy
    }
}
