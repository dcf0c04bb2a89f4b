//! The network service as a [`haneul_core::service::Service`]: its API, its refresh
//! from the database and its policy reload ([`Stateful`]).

use std::sync::Arc;

use haneul_core::auth::TokenValidator;
use haneul_core::config::Config;
use haneul_core::policy::PolicyFile;
use haneul_core::service::{Api, BoxError, BoxFuture, CatalogEntry, Service, ServiceState, Stateful};

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
    let body_limit = cfg.server.max_request_body_size;
    Stateful::serve("network", state, move |s| {
        vec![Api { name: "network", router: crate::api::router(s.clone(), validator.clone(), body_limit) }]
    })
}

impl ServiceState for Networking {
    fn refresh_state(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async { Ok(Networking::refresh(self).await?) })
    }
    fn policy_file(&self) -> &PolicyFile {
        &self.policy
    }
    /// Ends the agents' long polls, so that the listener can close.
    fn stop(&self) {
        Networking::stop(self);
    }
}
