//! The image service as a [`haneul_core::service::Service`]: its API, its refresh
//! from the database and its policy reload ([`Stateful`]).

use std::sync::Arc;

use haneul_core::auth::TokenValidator;
use haneul_core::config::Config;
use haneul_core::policy::PolicyFile;
use haneul_core::service::{Api, BoxError, BoxFuture, CatalogEntry, Service, ServiceState, Stateful};

use crate::Images;

/// The image endpoint the catalog lists.
pub fn catalog_entry(cfg: &Config) -> CatalogEntry {
    CatalogEntry {
        kind: crate::service::SERVICE_TYPE,
        name: "glance",
        url: cfg.public_url(cfg.image.port),
        limits: crate::service::DEFAULT_LIMITS,
    }
}

pub fn serving(state: Arc<Images>, validator: Arc<dyn TokenValidator>, cfg: &Config) -> Arc<dyn Service> {
    let body_limit = cfg.server.max_request_body_size;
    Stateful::serve("image", state, move |s| {
        vec![Api { name: "image", router: crate::api::router(s.clone(), validator.clone(), body_limit) }]
    })
}

impl ServiceState for Images {
    fn refresh_state(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async { Ok(Images::refresh(self).await?) })
    }
    fn policy_file(&self) -> &PolicyFile {
        &self.policy
    }
}
