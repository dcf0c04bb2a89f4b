//! The state store every service builds on: the service's data held in memory as one
//! immutable snapshot, written through to its database.
//!
//! - Each resource kind is a table of JSON documents `(id, uniq, data)`; `uniq` is a key the
//!   database keeps unique (a name within a domain, ...). Kinds are typed [`Record`]s.
//! - Reads take the current snapshot ([`State::model`]), an `Arc`: cheap, consistent, and
//!   never waiting on the database.
//! - A write ([`State::write`]) takes the write lock, copies the snapshot into a [`Txn`],
//!   lets the caller change it (each change recorded as a row operation), commits the
//!   operations in one transaction and only then publishes the new snapshot. A failed write
//!   leaves database and memory as they were.
//! - A revision row (`<service>_revision`) counts committed writes, so several processes on
//!   one database notice each other's writes ([`State::refresh`]) and never commit on a stale
//!   base.

mod log;
mod table;

use std::sync::{Arc, Mutex, RwLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, DbError, Migration};

pub use log::Logged;
pub use table::{time_key, Table};

/// The records of a table keyed `<parent>/<child>` that belong to `parent` (image members of
/// an image, key pairs of a user, ...), in key order.
pub fn children<'a, T>(table: &'a Table<T>, parent: &str) -> impl Iterator<Item = &'a T> + 'a {
    let prefix = format!("{parent}/");
    table.range(prefix.clone()..).take_while(move |(k, _)| k.starts_with(&prefix)).map(|(_, v)| &**v)
}

/// Implements [`Record`] for a stored type whose id is its `id` field, kept in the snapshot
/// `$model`'s field `$field` and the table `$table` (with `unique: f` the database keeps the
/// string field `f` unique; with `index: [a, b]` the string fields `a` and `b` are indexed
/// under their names, with `indexes: g` the type's own `fn g(&self, f)` files the keys):
/// `record!(Model; Flavor, "flavors", flavors);`.
#[macro_export]
macro_rules! record {
    ($model:ty; $ty:ty, $table:literal, $field:ident $(, unique: $uniq:ident)? $(, index: [$($ix:ident),+ $(,)?])? $(, indexes: $with:ident)? $(, derive: $derive:path)?) => {
        impl $crate::docstore::Record for $ty {
            type Model = $model;
            const TABLE: &'static str = $table;
            fn id(&self) -> &str {
                &self.id
            }
            $(fn unique_key(&self) -> Option<String> {
                Some(self.$uniq.clone())
            })?
            $(fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
                $(f(stringify!($ix), &self.$ix);)+
            })?
            $(fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
                Self::$with(self, f)
            })?
            $(fn derive(m: &mut $model, old: Option<&Self>, new: Option<&Self>) {
                $derive(m, old, new)
            })?
            fn table(m: &$model) -> &$crate::docstore::Table<Self> {
                &m.$field
            }
            fn table_mut(m: &mut $model) -> &mut $crate::docstore::Table<Self> {
                &mut m.$field
            }
        }
    };
}

/// Implements [`Snapshot`] for a model struct that has a `generation: u64` field and one
/// table per record kind, loaded in the order given:
/// `snapshot!(Model; Flavor, FlavorAccess, Keypair);`.
#[macro_export]
macro_rules! snapshot {
    ($model:ty; $($rec:ty),+ $(,)?) => {
        impl $crate::docstore::Snapshot for $model {
            const TABLES: &'static [&'static str] = &[$(<$rec as $crate::docstore::Record>::TABLE),+];
            fn generation(&self) -> u64 {
                self.generation
            }
            fn set_generation(&mut self, g: u64) {
                self.generation = g;
            }
            async fn load(store: &$crate::docstore::Store) -> Result<Self, $crate::docstore::StoreError> {
                let mut m = <$model>::default();
                $(store.load_table::<$rec>(&mut m).await?;)+
                Ok(m)
            }
        }
    };
}

/// A stored resource kind of the snapshot type `Model`.
pub trait Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    type Model;
    const TABLE: &'static str;
    fn id(&self) -> &str;
    /// A key the database keeps unique across the table, if any.
    fn unique_key(&self) -> Option<String> {
        None
    }
    /// Files the record's secondary index keys: `f(index name, key)`, once per key.
    fn index_keys(&self, _f: &mut dyn FnMut(&'static str, &str)) {}
    /// Keeps state of the model derived from records of this kind (beyond the table's
    /// indexes: a subnet's free address ranges) in step with a change, the table already
    /// changed: the record before and after (none: it did not exist / no longer does).
    /// Called for every change made through a [`Txn`] and every record loaded.
    fn derive(_m: &mut Self::Model, _old: Option<&Self>, _new: Option<&Self>) {}
    fn table(model: &Self::Model) -> &Table<Self>;
    fn table_mut(model: &mut Self::Model) -> &mut Table<Self>;
}

/// A service's whole state, as one snapshot. [`snapshot!`](crate::snapshot) implements it.
pub trait Snapshot: Clone + Default + Send + Sync + 'static {
    /// The tables of its record kinds.
    const TABLES: &'static [&'static str];
    /// Bumped by every published change; caches derived from a snapshot key on it.
    fn generation(&self) -> u64;
    fn set_generation(&mut self, g: u64);
    /// Reads every table.
    fn load(store: &Store) -> impl std::future::Future<Output = Result<Self, StoreError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a {table} row with the same unique key already exists")]
    Duplicate { table: &'static str },
    #[error("Could not find {kind}: {id}.")]
    NotFound { kind: &'static str, id: String },
    #[error("another process changed the data since revision {expected}")]
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
    #[error("the {table} row {id} kept changing under a writer; try again")]
    Busy { table: &'static str, id: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// One change to persist.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        table: &'static str,
        id: String,
        uniq: Option<String>,
        data: String,
    },
    Delete {
        table: &'static str,
        id: String,
    },
    /// A record of a log table ([`Logged`]), written (or replaced) with the snapshot's changes.
    Log {
        table: &'static str,
        id: String,
        parent: String,
        at: String,
        data: String,
    },
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

/// A service's database: its document tables and its revision row.
#[derive(Clone)]
pub struct Store {
    db: Db,
    revision_table: &'static str,
}

impl Store {
    /// Opens the database and applies the migrations: first the document `tables` and the
    /// revision row, then `extra` (numbered from 3).
    pub async fn open(
        url: &str,
        service: &'static str,
        tables: &[&str],
        extra: &[Migration],
    ) -> Result<Store, StoreError> {
        let db = Db::open(url).await?;
        let revision_table: &'static str = Box::leak(format!("{service}_revision").into_boxed_str());
        // Table names are constants of ours, never client input.
        let sql: String = tables
            .iter()
            .map(|t| format!("CREATE TABLE {t} (id TEXT PRIMARY KEY, uniq TEXT UNIQUE, data TEXT NOT NULL);"))
            .collect();
        let revision_sql = format!(
            "CREATE TABLE {revision_table} (id INTEGER PRIMARY KEY, value BIGINT NOT NULL); \
             INSERT INTO {revision_table} (id, value) VALUES (1, 0)"
        );
        let mut migrations = vec![
            Migration { version: 1, name: "document tables", sql: Box::leak(sql.into_boxed_str()) },
            Migration {
                version: 2,
                name: "revision counter shared by processes on one database",
                sql: Box::leak(revision_sql.into_boxed_str()),
            },
        ];
        migrations.extend(extra.iter().map(|m| Migration { version: m.version, name: m.name, sql: m.sql }));
        db.migrate(service, &migrations).await?;
        // A document kind added after the database was created gets its table here.
        for t in tables {
            sqlx::query(&format!(
                "CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, uniq TEXT UNIQUE, data TEXT NOT NULL)"
            ))
            .execute(&db.pool)
            .await
            .map_err(|err| StoreError::Sql { table: "(new document table)", err })?;
        }
        Ok(Store { db, revision_table })
    }

    pub fn backend(&self) -> crate::db::Backend {
        self.db.backend
    }

    /// The revision of the stored data: every committed write adds one.
    pub async fn revision(&self) -> Result<i64, StoreError> {
        let row: (i64,) = sqlx::query_as(&format!("SELECT value FROM {} WHERE id = 1", self.revision_table))
            .fetch_one(&self.db.pool)
            .await
            .map_err(|err| StoreError::Sql { table: self.revision_table, err })?;
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
        let bump = format!("UPDATE {} SET value = value + 1 WHERE id = 1 AND value = $1", self.revision_table);
        let bumped = sqlx::query(&bump).bind(base).execute(&mut *tx).await.map_err(sql_err(self.revision_table))?;
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
                Op::Log { table, id, parent, at, data } => {
                    sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(sql_err(table))?;
                    sqlx::query(&format!("INSERT INTO {table} (id, parent, at, data) VALUES ($1, $2, $3, $4)"))
                        .bind(id)
                        .bind(parent)
                        .bind(at)
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

    /// Reads one table into the snapshot being loaded.
    pub async fn load_table<T: Record>(&self, m: &mut T::Model) -> Result<(), StoreError> {
        let rows = sqlx::query(&format!("SELECT id, data FROM {}", T::TABLE))
            .fetch_all(&self.db.pool)
            .await
            .map_err(|err| StoreError::Sql { table: T::TABLE, err })?;
        for row in rows {
            let id: String = row.try_get(0).map_err(|err| StoreError::Sql { table: T::TABLE, err })?;
            let data: String = row.try_get(1).map_err(|err| StoreError::Sql { table: T::TABLE, err })?;
            let v: T = serde_json::from_str(&data).map_err(|err| StoreError::Corrupt {
                table: T::TABLE,
                id: id.clone(),
                err,
            })?;
            let v = Arc::new(v);
            let old = T::table_mut(m).insert(id, v.clone());
            T::derive(m, old.as_deref(), Some(&v));
        }
        Ok(())
    }
}

/// A write in progress: the next snapshot and the changes that make it.
pub struct Txn<M> {
    pub m: M,
    ops: Vec<Op>,
}

impl<M> Txn<M> {
    /// Inserts or replaces a record, refusing one whose unique key another record holds.
    pub fn put<T: Record<Model = M>>(&mut self, v: T) -> Result<Arc<T>, StoreError> {
        if let Some(key) = v.unique_key() {
            if T::table(&self.m).unique_holder(&key, v.id()).is_some() {
                return Err(StoreError::Duplicate { table: T::TABLE });
            }
        }
        self.ops.push(Op::put(&v));
        let v = Arc::new(v);
        let old = T::table_mut(&mut self.m).insert(v.id().to_string(), v.clone());
        T::derive(&mut self.m, old.as_deref(), Some(&v));
        Ok(v)
    }

    /// Writes a record of a log table in this write's transaction; it is not in the snapshot.
    pub fn log<T: Logged>(&mut self, v: &T) {
        self.ops.push(Op::log(v));
    }

    /// A copy of a record to change and `put` back; not found when it does not exist.
    pub fn edit<T: Record<Model = M>>(&self, table: &Table<T>, kind: &'static str, id: &str) -> Result<T, StoreError> {
        table.get(id).map(|v| (**v).clone()).ok_or_else(|| StoreError::NotFound { kind, id: id.to_string() })
    }

    pub fn delete<T: Record<Model = M>>(&mut self, id: &str) -> Option<Arc<T>> {
        let old = T::table_mut(&mut self.m).remove(id);
        if let Some(o) = &old {
            self.ops.push(Op::delete::<T>(id));
            T::derive(&mut self.m, Some(o), None);
        }
        old
    }

    /// Removes every record of a kind that matches `pred`.
    pub fn delete_where<T: Record<Model = M>>(&mut self, pred: impl Fn(&T) -> bool) {
        let ids: Vec<String> = T::table(&self.m).values().filter(|v| pred(v)).map(|v| v.id().to_string()).collect();
        for id in ids {
            self.delete::<T>(&id);
        }
    }
}

/// The published snapshot of a service and the store behind it.
pub struct State<M> {
    model: RwLock<Arc<M>>,
    write_lock: tokio::sync::Mutex<()>,
    /// The database revision the snapshot reflects.
    revision: Mutex<i64>,
    store: Store,
}

impl<M: Snapshot> State<M> {
    /// Loads the snapshot from `store`.
    pub async fn open(store: Store) -> Result<State<M>, StoreError> {
        let revision = store.revision().await?;
        let model = M::load(&store).await?;
        Ok(State {
            model: RwLock::new(Arc::new(model)),
            write_lock: tokio::sync::Mutex::new(()),
            revision: Mutex::new(revision),
            store,
        })
    }

    /// The current snapshot.
    pub fn model(&self) -> Arc<M> {
        self.model.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `f` on a copy of the snapshot; persists and publishes its changes if it succeeds.
    ///
    /// Another process writing to the same database between this process's last look and
    /// the commit makes the write fail with [`StoreError::Stale`]; the snapshot is brought up
    /// to date first, so such races need two writers within milliseconds.
    pub async fn write<R, E: From<StoreError>>(&self, f: impl FnOnce(&mut Txn<M>) -> Result<R, E>) -> Result<R, E> {
        let _guard = self.write_lock.lock().await;
        self.refresh_locked().await?;
        let base = *self.revision.lock().unwrap_or_else(|e| e.into_inner());
        let mut txn = Txn { m: (*self.model()).clone(), ops: Vec::new() };
        txn.m.set_generation(txn.m.generation() + 1);
        let r = f(&mut txn)?;
        let new_revision = self.store.apply(base, &txn.ops).await?;
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(txn.m);
        *self.revision.lock().unwrap_or_else(|e| e.into_inner()) = new_revision;
        Ok(r)
    }

    /// Reloads the snapshot if another process sharing the database wrote to it.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        let _guard = self.write_lock.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<bool, StoreError> {
        let current = self.store.revision().await?;
        if current == *self.revision.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(false);
        }
        let mut model = M::load(&self.store).await?;
        model.set_generation(self.model().generation() + 1);
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(model);
        *self.revision.lock().unwrap_or_else(|e| e.into_inner()) = current;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    struct Thing {
        id: String,
        name: String,
    }

    #[derive(Clone, Default)]
    struct Things {
        generation: u64,
        things: Table<Thing>,
    }

    impl Record for Thing {
        type Model = Things;
        const TABLE: &'static str = "things";
        fn id(&self) -> &str {
            &self.id
        }
        fn unique_key(&self) -> Option<String> {
            Some(self.name.clone())
        }
        fn table(m: &Things) -> &Table<Thing> {
            &m.things
        }
        fn table_mut(m: &mut Things) -> &mut Table<Thing> {
            &mut m.things
        }
    }

    crate::snapshot!(Things; Thing);

    fn thing(id: &str, name: &str) -> Thing {
        Thing { id: id.into(), name: name.into() }
    }

    async fn open(url: &str) -> State<Things> {
        State::open(Store::open(url, "test", &["things"], &[]).await.unwrap()).await.unwrap()
    }

    fn url() -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("haneul-docstore-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/t.db", dir.display());
        (dir, url)
    }

    #[tokio::test]
    async fn a_write_is_published_and_survives_reopening() {
        let (dir, url) = url();
        let s = open(&url).await;
        s.write(|t| t.put(thing("1", "a")).map(|_| ())).await.unwrap();
        assert_eq!(s.model().things["1"].name, "a");
        assert_eq!(s.model().generation, 1);
        drop(s);
        assert_eq!(open(&url).await.model().things["1"].name, "a");
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_failed_write_changes_neither_memory_nor_database() {
        let (dir, url) = url();
        let s = open(&url).await;
        let r: Result<(), StoreError> = s
            .write(|t| {
                t.put(thing("1", "a"))?;
                Err(StoreError::NotFound { kind: "thing", id: "x".into() })
            })
            .await;
        assert!(r.is_err());
        assert!(s.model().things.is_empty());
        assert!(open(&url).await.model().things.is_empty());
        std::fs::remove_dir_all(dir).ok();
    }

    /// Readers never see half a write: each write moves a pair of records together (one
    /// gone, its successor there), and readers running meanwhile always find exactly one of
    /// each pair, while the snapshot they hold stays as it was.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_during_writes_see_each_write_whole_or_not_at_all() {
        let (dir, url) = url();
        let s = Arc::new(open(&url).await);
        s.write(|t| {
            for i in 0..50 {
                t.put(thing(&format!("a{i}-0"), &format!("a{i}")))?;
            }
            Ok::<(), StoreError>(())
        })
        .await
        .unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (s, stop) = (s.clone(), stop.clone());
            tokio::spawn(async move {
                let mut looks = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let m = s.model();
                    let before = m.things.len();
                    for i in 0..50 {
                        let prefix = format!("a{i}-");
                        let holders =
                            m.things.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)).count();
                        assert_eq!(holders, 1, "pair {i} seen half-moved");
                    }
                    assert_eq!(m.things.len(), before, "a held snapshot changed");
                    looks += 1;
                    tokio::task::yield_now().await;
                }
                looks
            })
        };
        for round in 1..=40 {
            s.write(|t| {
                for i in 0..50 {
                    t.delete::<Thing>(&format!("a{i}-{}", round - 1));
                    t.put(thing(&format!("a{i}-{round}"), &format!("a{i}")))?;
                }
                Ok::<(), StoreError>(())
            })
            .await
            .unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let looks = reader.await.unwrap();
        assert!(looks > 0, "the reader looked while the writes ran");
        assert_eq!(open(&url).await.model().things.len(), 50);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_duplicate_unique_key_is_refused() {
        let (dir, url) = url();
        let s = open(&url).await;
        s.write(|t| t.put(thing("1", "a")).map(|_| ())).await.unwrap();
        let r = s.write(|t| t.put(thing("2", "a")).map(|_| ())).await;
        assert!(matches!(r, Err(StoreError::Duplicate { table: "things" })));
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn another_process_writes_are_seen_after_refresh_and_before_a_write() {
        let (dir, url) = url();
        let a = open(&url).await;
        let b = open(&url).await;
        a.write(|t| t.put(thing("1", "a")).map(|_| ())).await.unwrap();
        assert!(b.model().things.is_empty());
        assert!(b.refresh().await.unwrap());
        assert_eq!(b.model().things.len(), 1);
        // b writes on top of a's latest write without losing it.
        a.write(|t| t.put(thing("2", "b")).map(|_| ())).await.unwrap();
        b.write(|t| t.put(thing("3", "c")).map(|_| ())).await.unwrap();
        assert_eq!(open(&url).await.model().things.len(), 3);
        std::fs::remove_dir_all(dir).ok();
    }

    #[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
    struct Entry {
        id: String,
        server: String,
        at: chrono::DateTime<chrono::Utc>,
        events: Vec<String>,
    }

    impl Logged for Entry {
        const TABLE: &'static str = "test_log";
        fn id(&self) -> &str {
            &self.id
        }
        fn parent(&self) -> &str {
            &self.server
        }
        fn at(&self) -> chrono::DateTime<chrono::Utc> {
            self.at
        }
    }

    fn entry(id: &str, server: &str, secs: i64) -> Entry {
        let at = chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap();
        Entry { id: id.into(), server: server.into(), at, events: vec![] }
    }

    #[tokio::test]
    async fn log_records_go_with_the_write_stay_out_of_memory_and_list_newest_first() {
        let (dir, url) = url();
        let s = open(&url).await;
        s.store().ensure_logs(&["test_log"]).await.unwrap();
        s.write(|t| {
            t.put(thing("1", "a"))?;
            t.log(&entry("e1", "s1", 1));
            t.log(&entry("e2", "s1", 2));
            t.log(&entry("e3", "s2", 3));
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
        // A failed write leaves no log record either.
        let r: Result<(), StoreError> = s
            .write(|t| {
                t.log(&entry("e4", "s1", 4));
                Err(StoreError::NotFound { kind: "thing", id: "x".into() })
            })
            .await;
        assert!(r.is_err());
        let store = s.store();
        let ids: Vec<String> = store.log_of::<Entry>("s1").await.unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["e2", "e1"]);
        assert!(store.log_get::<Entry>("e4").await.unwrap().is_none());
        assert_eq!(store.log_get::<Entry>("e3").await.unwrap().unwrap().server, "s2");
        assert_eq!(store.log_since::<Entry>(entry("x", "", 2).at).await.unwrap().len(), 2);
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn concurrent_log_updates_from_two_processes_lose_nothing() {
        let (dir, url) = url();
        let a = open(&url).await;
        let b = open(&url).await;
        a.store().ensure_logs(&["test_log"]).await.unwrap();
        a.write(|t| {
            t.log(&entry("e1", "s1", 1));
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
        let add = |s: &State<Things>, n: usize| {
            let store = s.store().clone();
            async move {
                for i in 0..10 {
                    let done = store
                        .log_update::<Entry>("e1", |e| {
                            e.events.push(format!("{n}-{i}"));
                            true
                        })
                        .await
                        .unwrap();
                    assert!(done);
                }
            }
        };
        tokio::join!(add(&a, 1), add(&b, 2));
        let e = a.store().log_get::<Entry>("e1").await.unwrap().unwrap();
        assert_eq!(e.events.len(), 20, "{:?}", e.events);
        assert!(!a.store().log_update::<Entry>("missing", |_| true).await.unwrap());
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn a_purge_deletes_what_is_older_and_not_kept() {
        let (dir, url) = url();
        let s = open(&url).await;
        s.store().ensure_logs(&["test_log"]).await.unwrap();
        s.write(|t| {
            for (id, server, at) in [("e1", "gone", 1), ("e2", "live", 1), ("e3", "gone", 10)] {
                t.log(&entry(id, server, at));
            }
            Ok::<_, StoreError>(())
        })
        .await
        .unwrap();
        let n = s.store().log_purge::<Entry>(entry("x", "", 5).at, |parent| parent == "live").await.unwrap();
        assert_eq!(n, 1);
        assert!(s.store().log_get::<Entry>("e1").await.unwrap().is_none());
        assert!(s.store().log_get::<Entry>("e2").await.unwrap().is_some());
        assert!(s.store().log_get::<Entry>("e3").await.unwrap().is_some());
        std::fs::remove_dir_all(dir).ok();
    }
}
