//! Persistence of the identity model: one table per resource kind, rows of JSON documents.

use haneul_core::db::{Db, DbError, Migration};
use sqlx::Row;

use crate::model::{self, Model, Record};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a {table} row with the same unique key already exists")]
    Duplicate { table: &'static str },
    #[error("another process changed the identity data since revision {expected}")]
    Stale { expected: i64 },
    #[error("database error on table {table}")]
    Sql {
        table: &'static str,
        #[source]
        err: sqlx::Error,
    },
    #[error("stored {table} row {id} is not valid")]
    Corrupt {
        table: &'static str,
        id: String,
        #[source]
        err: serde_json::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// One change to persist.
#[derive(Debug, Clone)]
pub enum Op {
    Put { table: &'static str, id: String, uniq: Option<String>, data: String },
    Delete { table: &'static str, id: String },
}

impl Op {
    pub fn put<T: Record>(v: &T) -> Op {
        Op::Put {
            table: T::TABLE,
            id: v.id().to_string(),
            uniq: v.unique_key(),
            // Serializing our own plain structs cannot fail.
            data: serde_json::to_string(v).unwrap_or_default(),
        }
    }
    pub fn delete<T: Record>(id: &str) -> Op {
        Op::Delete { table: T::TABLE, id: id.to_string() }
    }
}

fn migrations() -> Vec<Migration> {
    // Table names are constants of ours, never client input.
    let sql: String = model::TABLES
        .iter()
        .map(|t| format!("CREATE TABLE {t} (id TEXT PRIMARY KEY, uniq TEXT UNIQUE, data TEXT NOT NULL);"))
        .collect();
    vec![
        Migration { version: 1, name: "initial identity tables", sql: Box::leak(sql.into_boxed_str()) },
        Migration {
            version: 2,
            name: "revision counter shared by processes on one database",
            sql: "CREATE TABLE identity_revision (id INTEGER PRIMARY KEY, value BIGINT NOT NULL); \
                  INSERT INTO identity_revision (id, value) VALUES (1, 0)",
        },
    ]
}

#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let db = Db::open(url).await?;
        db.migrate("identity", &migrations()).await?;
        Ok(Store { db })
    }

    pub fn backend(&self) -> haneul_core::db::Backend {
        self.db.backend
    }

    /// The revision of the stored data: every committed write adds one.
    pub async fn revision(&self) -> Result<i64, StoreError> {
        let row: (i64,) = sqlx::query_as("SELECT value FROM identity_revision WHERE id = 1")
            .fetch_one(&self.db.pool)
            .await
            .map_err(|err| StoreError::Sql { table: "identity_revision", err })?;
        Ok(row.0)
    }

    /// Writes `ops` in one transaction, all or nothing, if the data is still at revision
    /// `base`; returns the new revision. The revision row also serializes writers from
    /// several processes on one PostgreSQL database.
    pub async fn apply(&self, base: i64, ops: &[Op]) -> Result<i64, StoreError> {
        if ops.is_empty() {
            return Ok(base);
        }
        let sql_err = |table: &'static str| {
            move |err: sqlx::Error| {
                if err.as_database_error().is_some_and(|d| d.is_unique_violation()) {
                    StoreError::Duplicate { table }
                } else {
                    StoreError::Sql { table, err }
                }
            }
        };
        let mut tx = self.db.pool.begin().await.map_err(sql_err("(begin)"))?;
        let bumped = sqlx::query("UPDATE identity_revision SET value = value + 1 WHERE id = 1 AND value = $1")
            .bind(base)
            .execute(&mut *tx)
            .await
            .map_err(sql_err("identity_revision"))?;
        if bumped.rows_affected() != 1 {
            return Err(StoreError::Stale { expected: base });
        }
        for op in ops {
            match op {
                Op::Put { table, id, uniq, data } => {
                    sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(sql_err(table))?;
                    sqlx::query(&format!("INSERT INTO {table} (id, uniq, data) VALUES ($1, $2, $3)"))
                        .bind(id)
                        .bind(uniq.as_deref())
                        .bind(data)
                        .execute(&mut *tx)
                        .await
                        .map_err(sql_err(table))?;
                }
                Op::Delete { table, id } => {
                    sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(sql_err(table))?;
                }
            }
        }
        tx.commit().await.map_err(sql_err("(commit)"))?;
        Ok(base + 1)
    }

    /// Reads every table into a fresh model.
    pub async fn load(&self) -> Result<Model, StoreError> {
        let mut m = Model::default();
        self.load_table::<model::Domain>(&mut m).await?;
        self.load_table::<model::Project>(&mut m).await?;
        self.load_table::<model::User>(&mut m).await?;
        self.load_table::<model::Group>(&mut m).await?;
        self.load_table::<model::Membership>(&mut m).await?;
        self.load_table::<model::Role>(&mut m).await?;
        self.load_table::<model::ImpliedRole>(&mut m).await?;
        self.load_table::<model::Assignment>(&mut m).await?;
        self.load_table::<model::Credential>(&mut m).await?;
        self.load_table::<model::ApplicationCredential>(&mut m).await?;
        self.load_table::<model::AccessRule>(&mut m).await?;
        self.load_table::<model::Trust>(&mut m).await?;
        self.load_table::<model::Region>(&mut m).await?;
        self.load_table::<model::Service>(&mut m).await?;
        self.load_table::<model::Endpoint>(&mut m).await?;
        self.load_table::<model::EndpointGroup>(&mut m).await?;
        self.load_table::<model::ProjectEndpoint>(&mut m).await?;
        self.load_table::<model::RegisteredLimit>(&mut m).await?;
        self.load_table::<model::Limit>(&mut m).await?;
        self.load_table::<model::DomainConfig>(&mut m).await?;
        self.load_table::<model::IdentityProvider>(&mut m).await?;
        self.load_table::<model::Mapping>(&mut m).await?;
        self.load_table::<model::FederationProtocol>(&mut m).await?;
        self.load_table::<model::ServiceProvider>(&mut m).await?;
        self.load_table::<model::PolicyBlob>(&mut m).await?;
        self.load_table::<model::Consumer>(&mut m).await?;
        self.load_table::<model::RevocationEvent>(&mut m).await?;
        Ok(m)
    }

    async fn load_table<T: Record>(&self, m: &mut Model) -> Result<(), StoreError> {
        let rows = sqlx::query(&format!("SELECT id, data FROM {}", T::TABLE))
            .fetch_all(&self.db.pool)
            .await
            .map_err(|err| StoreError::Sql { table: T::TABLE, err })?;
        let table = T::table_mut(m);
        for row in rows {
            let id: String = row.try_get(0).map_err(|err| StoreError::Sql { table: T::TABLE, err })?;
            let data: String = row.try_get(1).map_err(|err| StoreError::Sql { table: T::TABLE, err })?;
            let v: T = serde_json::from_str(&data).map_err(|err| StoreError::Corrupt {
                table: T::TABLE,
                id: id.clone(),
                err,
            })?;
            table.insert(id, std::sync::Arc::new(v));
        }
        Ok(())
    }
}
