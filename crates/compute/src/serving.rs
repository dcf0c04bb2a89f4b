//! The compute service as a [`haneul_core::service::Service`]: its API and the metadata API guests ask, its hosts' heartbeat, its refresh
//! from the database and its policy reload ([`Stateful`]).

use std::sync::Arc;

use haneul_core::auth::TokenValidator;
use haneul_core::config::Config;
use haneul_core::policy::PolicyFile;
use haneul_core::service::{Api, BoxError, BoxFuture, CatalogEntry, Service, ServiceState, Stateful};

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
    let body_limit = cfg.server.max_request_body_size;
    Stateful::serve("compute", state, move |s| {
        vec![
            Api { name: "compute", router: crate::api::router(s.clone(), validator.clone(), body_limit) },
            Api { name: "metadata", router: crate::metadata::router(s.clone()) },
        ]
    })
}

impl ServiceState for Compute {
    fn refresh_state(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async { Ok(Compute::refresh(self).await?) })
    }
    fn policy_file(&self) -> &PolicyFile {
        &self.policy
    }
    fn tick(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async { Ok(self.heartbeat_if_due().await?) })
    }
}
