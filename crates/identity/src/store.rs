//! The identity database: one document table per resource kind (see `model::TABLES`).

use haneul_core::docstore::{Store, StoreError};

use crate::model;

/// Opens (and migrates) the identity database.
pub async fn open(url: &str) -> Result<Store, StoreError> {
    Store::open(url, "identity", model::TABLES, &[]).await
}
