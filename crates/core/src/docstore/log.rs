//! Records kept only in the database: what grows without bound (a server's instance
//! actions, what stays of deleted servers) is written in a snapshot write's transaction but
//! never held in memory; requests read it with queries that touch only what they ask for.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::Row;

use super::{Op, Store, StoreError};

/// A record kind kept in a log table: `(id, parent, at, data)`, listed by `parent` (a
/// server's id, a project's) newest first, and purged by `at`.
pub trait Logged: Serialize + DeserializeOwned + Send + Sync + 'static {
    const TABLE: &'static str;
    fn id(&self) -> &str;
    /// What it is listed under.
    fn parent(&self) -> &str;
    /// When it last changed: the order of a listing and the age a purge goes by.
    fn at(&self) -> DateTime<Utc>;
}

/// `at` as stored: RFC 3339 in UTC with microseconds, so that text order is time order.
pub(super) fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Op {
    pub fn log<T: Logged>(v: &T) -> Op {
        Op::Log {
            table: T::TABLE,
            id: v.id().to_string(),
            parent: v.parent().to_string(),
            at: stamp(v.at()),
            // Serializing our own plain structs cannot fail.
            data: serde_json::to_string(v).unwrap_or_default(),
        }
    }
}

/// How often an update retries when another writer changed the row between its read and
/// its write.
const UPDATE_TRIES: usize = 20;

impl Store {
    /// Makes the log tables (and their indexes) that do not exist yet.
    pub async fn ensure_logs(&self, tables: &[&'static str]) -> Result<(), StoreError> {
        for t in tables {
            // Table names are constants of ours, never client input.
            for sql in [
                format!("CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, parent TEXT NOT NULL, at TEXT NOT NULL, data TEXT NOT NULL)"),
                format!("CREATE INDEX IF NOT EXISTS {t}_parent ON {t} (parent, at)"),
                format!("CREATE INDEX IF NOT EXISTS {t}_at ON {t} (at)"),
            ] {
                sqlx::query(&sql).execute(&self.db.pool).await.map_err(|err| StoreError::Sql { table: t, err })?;
            }
        }
        Ok(())
    }

    fn decode<T: Logged>(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<T>, StoreError> {
        rows.into_iter()
            .map(|row| {
                let id: String = row.try_get(0).map_err(|err| StoreError::Sql { table: T::TABLE, err })?;
                let data: String = row.try_get(1).map_err(|err| StoreError::Sql { table: T::TABLE, err })?;
                serde_json::from_str(&data).map_err(|err| StoreError::Corrupt { table: T::TABLE, id, err })
            })
            .collect()
    }

    /// One record by id.
    pub async fn log_get<T: Logged>(&self, id: &str) -> Result<Option<T>, StoreError> {
        let rows = sqlx::query(&format!("SELECT id, data FROM {} WHERE id = $1", T::TABLE))
            .bind(id)
            .fetch_all(&self.db.pool)
            .await
            .map_err(|err| StoreError::Sql { table: T::TABLE, err })?;
        Ok(Self::decode(rows)?.pop())
    }

    /// The records under `parent`, newest first (ties by id, descending).
    pub async fn log_of<T: Logged>(&self, parent: &str) -> Result<Vec<T>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT id, data FROM {} WHERE parent = $1 ORDER BY at DESC, id DESC", T::TABLE))
                .bind(parent)
                .fetch_all(&self.db.pool)
                .await
                .map_err(|err| StoreError::Sql { table: T::TABLE, err })?;
        Self::decode(rows)
    }

    /// The records changed at or after `since`, oldest first.
    pub async fn log_since<T: Logged>(&self, since: DateTime<Utc>) -> Result<Vec<T>, StoreError> {
        let rows = sqlx::query(&format!("SELECT id, data FROM {} WHERE at >= $1 ORDER BY at, id", T::TABLE))
            .bind(stamp(since))
            .fetch_all(&self.db.pool)
            .await
            .map_err(|err| StoreError::Sql { table: T::TABLE, err })?;
        Self::decode(rows)
    }

    /// Changes one record with `f` (which may decline with `false`); answers whether it
    /// existed. Another writer's change between the read and the write makes it read again,
    /// so no change is lost, also between processes.
    pub async fn log_update<T: Logged>(&self, id: &str, mut f: impl FnMut(&mut T) -> bool) -> Result<bool, StoreError> {
        let sql_err = |err| StoreError::Sql { table: T::TABLE, err };
        for _ in 0..UPDATE_TRIES {
            let rows = sqlx::query(&format!("SELECT id, data FROM {} WHERE id = $1", T::TABLE))
                .bind(id)
                .fetch_all(&self.db.pool)
                .await
                .map_err(sql_err)?;
            let Some(row) = rows.into_iter().next() else { return Ok(false) };
            let old: String = row.try_get(1).map_err(sql_err)?;
            let mut v: T = serde_json::from_str(&old).map_err(|err| StoreError::Corrupt {
                table: T::TABLE,
                id: id.to_string(),
                err,
            })?;
            if !f(&mut v) {
                return Ok(true);
            }
            let new = serde_json::to_string(&v).unwrap_or_default();
            let done = sqlx::query(&format!(
                "UPDATE {} SET data = $1, at = $2, parent = $3 WHERE id = $4 AND data = $5",
                T::TABLE
            ))
            .bind(&new)
            .bind(stamp(v.at()))
            .bind(v.parent())
            .bind(id)
            .bind(&old)
            .execute(&self.db.pool)
            .await
            .map_err(sql_err)?;
            if done.rows_affected() == 1 {
                return Ok(true);
            }
        }
        Err(StoreError::Busy { table: T::TABLE, id: id.to_string() })
    }

    /// Deletes the records last changed before `before` that `keep` does not keep (given
    /// each one's parent); answers how many went.
    pub async fn log_purge<T: Logged>(
        &self,
        before: DateTime<Utc>,
        keep: impl Fn(&str) -> bool,
    ) -> Result<u64, StoreError> {
        let sql_err = |err| StoreError::Sql { table: T::TABLE, err };
        let rows = sqlx::query(&format!("SELECT id, parent FROM {} WHERE at < $1", T::TABLE))
            .bind(stamp(before))
            .fetch_all(&self.db.pool)
            .await
            .map_err(sql_err)?;
        let mut gone = 0;
        for row in rows {
            let id: String = row.try_get(0).map_err(sql_err)?;
            let parent: String = row.try_get(1).map_err(sql_err)?;
            if keep(&parent) {
                continue;
            }
            let done = sqlx::query(&format!("DELETE FROM {} WHERE id = $1", T::TABLE))
                .bind(&id)
                .execute(&self.db.pool)
                .await
                .map_err(sql_err)?;
            gone += done.rows_affected();
        }
        Ok(gone)
    }

    /// Moves the rows of a document table that held `T` before it became a log (`(id, uniq,
    /// data)`) into its log table, once; a database without that table has nothing to move.
    pub async fn log_adopt<T: Logged>(&self, old_table: &'static str) -> Result<u64, StoreError> {
        let sql_err = |err| StoreError::Sql { table: old_table, err };
        let Ok(rows) = sqlx::query(&format!("SELECT id, data FROM {old_table}")).fetch_all(&self.db.pool).await else {
            return Ok(0);
        };
        let mut moved = 0;
        for row in rows {
            let id: String = row.try_get(0).map_err(sql_err)?;
            let data: String = row.try_get(1).map_err(sql_err)?;
            let v: T = serde_json::from_str(&data).map_err(|err| StoreError::Corrupt {
                table: old_table,
                id: id.clone(),
                err,
            })?;
            let mut tx = self.db.pool.begin().await.map_err(sql_err)?;
            for sql in
                [format!("DELETE FROM {} WHERE id = $1", T::TABLE), format!("DELETE FROM {old_table} WHERE id = $1")]
            {
                sqlx::query(&sql).bind(&id).execute(&mut *tx).await.map_err(sql_err)?;
            }
            sqlx::query(&format!("INSERT INTO {} (id, parent, at, data) VALUES ($1, $2, $3, $4)", T::TABLE))
                .bind(&id)
                .bind(v.parent())
                .bind(stamp(v.at()))
                .bind(&data)
                .execute(&mut *tx)
                .await
                .map_err(sql_err)?;
            tx.commit().await.map_err(sql_err)?;
            moved += 1;
        }
        Ok(moved)
    }
}
