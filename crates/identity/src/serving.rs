//! The identity service as [`haneul_core::service::Service`]: its API, its refresh and
//! policy reload, the token keys picked up when `haneul token-keys rotate` changes them, and
//! the pruning of revocation events past every token's expiry.

use std::sync::Arc;
use std::time::Duration;

use haneul_core::config::Config;
use haneul_core::policy::PolicyFile;
use haneul_core::service::{Api, BoxError, BoxFuture, CatalogEntry, Service};

use crate::Identity;

/// The identity endpoint the catalog lists.
pub fn catalog_entry(cfg: &Config) -> CatalogEntry {
    CatalogEntry {
        kind: "identity",
        name: "keystone",
        url: format!("{}/v3", cfg.public_url(cfg.identity.port)),
        limits: &[],
    }
}

pub fn serving(ident: Arc<Identity>, cfg: &Config) -> Arc<dyn Service> {
    Arc::new(Serving { ident, body_limit: cfg.server.max_request_body_size })
}

struct Serving {
    ident: Arc<Identity>,
    body_limit: usize,
}

impl Service for Serving {
    fn name(&self) -> &'static str {
        "identity"
    }
    fn apis(&self) -> Vec<Api> {
        vec![Api { name: "identity", router: crate::api::router(self.ident.clone(), self.body_limit) }]
    }
    fn refresh(&self) -> BoxFuture<'_, Result<bool, BoxError>> {
        Box::pin(async { Ok(self.ident.refresh().await?) })
    }
    fn policy(&self) -> Option<&PolicyFile> {
        Some(&self.ident.policy)
    }
    fn tick(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async {
            if self.ident.reload_keys_if_changed()? {
                tracing::info!("token keys reloaded");
            }
            Ok(())
        })
    }
    fn tasks(&self) -> Vec<BoxFuture<'static, ()>> {
        let ident = self.ident.clone();
        vec![Box::pin(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(600));
            loop {
                tick.tick().await;
                if let Err(e) = ident.prune_revocations().await {
                    tracing::warn!(error = ?e, "pruning revocation events failed");
                }
            }
        })]
    }
}
