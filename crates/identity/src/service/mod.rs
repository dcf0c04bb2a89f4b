//! The identity service's state and rules, independent of HTTP.

mod auth;
mod compliance;
mod roles;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use haneul_core::config::Config;
use haneul_core::policy::PolicyFile;

use crate::model::{Model, Record, RevocationEvent};
use crate::store::{Op, Store, StoreError};
use crate::token::{KeyError, KeyRepository, KeyRing};

pub use auth::{parse_expiry, AuthMethod, AuthRequest, AuthScope, IssuedToken, NameOrId, ValidToken};
pub use roles::{effective_assignments, user_roles as roles_on, EffectiveAssignment, RoleTarget};

/// What went wrong, in terms of the identity service; the API layer picks the status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Could not find {kind}: {id}.")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("storage failure")]
    Store(#[from] StoreError),
    #[error("token keys unavailable")]
    Keys(#[from] KeyError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound { kind, id: id.into() }
    }
    pub fn validation(msg: impl Into<String>) -> Self {
        Error::Validation(msg.into())
    }
    pub fn unauthorized() -> Self {
        Error::Unauthorized("The request you have made requires authentication.".into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings the identity service reads from `haneul.toml`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub token_expiration: Duration,
    pub allow_expired_window: Duration,
    pub password_hash_rounds: u32,
    pub list_limit: usize,
    /// `http://host:5000`, without a path.
    pub public_url: String,
    pub region: String,
    pub lockout_failure_attempts: u32,
    pub lockout_duration: Duration,
    pub unique_last_password_count: usize,
    pub minimum_password_age: Duration,
    pub password_expires_days: u32,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            token_expiration: Duration::from_secs(c.identity.token_expiration),
            allow_expired_window: Duration::from_secs(c.identity.allow_expired_window),
            password_hash_rounds: c.identity.password_hash_rounds.clamp(4, 31),
            list_limit: c.identity.list_limit,
            public_url: c.public_url(c.identity.port),
            region: c.identity.region.clone(),
            lockout_failure_attempts: c.identity.lockout_failure_attempts,
            lockout_duration: Duration::from_secs(c.identity.lockout_duration),
            unique_last_password_count: c.identity.unique_last_password_count,
            minimum_password_age: Duration::from_secs(u64::from(c.identity.minimum_password_age) * 86_400),
            password_expires_days: c.identity.password_expires_days,
        }
    }
}

/// The identity service.
pub struct Identity {
    model: RwLock<Arc<Model>>,
    /// The database revision the model reflects.
    revision: Mutex<i64>,
    write_lock: tokio::sync::Mutex<()>,
    store: Store,
    keys: RwLock<Arc<KeyRing>>,
    key_repo: KeyRepository,
    key_fingerprint: Mutex<Vec<u32>>,
    /// Bumped when the key ring changes.
    keys_generation: std::sync::atomic::AtomicU64,
    /// Tokens already validated against a given model and key ring.
    token_cache: Mutex<std::collections::HashMap<String, (u64, u64, Arc<ValidToken>)>>,
    pub policy: PolicyFile,
    pub settings: Settings,
}

/// A write in progress: the next model and the changes that make it.
pub struct Txn {
    pub m: Model,
    ops: Vec<Op>,
}

impl Txn {
    /// Inserts or replaces a record, refusing one whose unique key another record holds.
    pub fn put<T: Record>(&mut self, v: T) -> Result<Arc<T>> {
        if let Some(key) = v.unique_key() {
            let clash = T::table(&self.m).values().any(|o| o.id() != v.id() && o.unique_key().as_deref() == Some(&key));
            if clash {
                return Err(Error::Conflict(format!(
                    "Conflict occurred attempting to store {} - Duplicate entry.",
                    T::TABLE.trim_end_matches('s')
                )));
            }
        }
        self.ops.push(Op::put(&v));
        let v = Arc::new(v);
        T::table_mut(&mut self.m).insert(v.id().to_string(), v.clone());
        Ok(v)
    }

    /// A copy of a record to change and `put` back; Keystone's 404 when it does not exist.
    pub fn edit<T: Record>(&self, table: &crate::model::Table<T>, kind: &'static str, id: &str) -> Result<T> {
        table.get(id).map(|v| (**v).clone()).ok_or_else(|| Error::not_found(kind, id))
    }

    pub fn delete<T: Record>(&mut self, id: &str) -> Option<Arc<T>> {
        let old = T::table_mut(&mut self.m).remove(id);
        if old.is_some() {
            self.ops.push(Op::delete::<T>(id));
        }
        old
    }

    /// Removes every record of a kind that matches `pred`.
    pub fn delete_where<T: Record>(&mut self, pred: impl Fn(&T) -> bool) {
        let ids: Vec<String> = T::table(&self.m).values().filter(|v| pred(v)).map(|v| v.id().to_string()).collect();
        for id in ids {
            self.delete::<T>(&id);
        }
    }

    /// Records a revocation event issued now.
    pub fn revoke(&mut self, mut ev: RevocationEvent) {
        let now = Utc::now();
        ev.id = uuid::Uuid::new_v4().simple().to_string();
        ev.issued_before = now;
        ev.revoked_at = now;
        // Putting a revocation event cannot clash: it has no unique key.
        let _ = self.put(ev);
    }
}

impl Identity {
    /// Opens the database and the key repository and loads the model.
    pub async fn open(config: &Config) -> Result<Arc<Identity>> {
        let store = Store::open(&config.identity_database_url()).await?;
        let key_repo = KeyRepository::new(config.key_repository(), config.identity.max_active_keys);
        key_repo.ensure()?;
        let keys = key_repo.load()?;
        let fingerprint = key_repo.fingerprint()?;
        let revision = store.revision().await?;
        let model = store.load().await?;
        let policy = PolicyFile::new(config.policy_file(), crate::policy_defaults::DEFAULT_RULES)
            .map_err(|e| Error::Internal(format!("policy could not be loaded: {e}")))?;
        Ok(Arc::new(Identity {
            model: RwLock::new(Arc::new(model)),
            revision: Mutex::new(revision),
            write_lock: tokio::sync::Mutex::new(()),
            store,
            keys: RwLock::new(Arc::new(keys)),
            key_repo,
            key_fingerprint: Mutex::new(fingerprint),
            keys_generation: std::sync::atomic::AtomicU64::new(0),
            token_cache: Mutex::new(std::collections::HashMap::new()),
            policy,
            settings: Settings::from_config(config),
        }))
    }

    /// The current snapshot.
    pub fn model(&self) -> Arc<Model> {
        self.model.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `f` on a copy of the model; persists and publishes its changes if it succeeds.
    ///
    /// Another process writing to the same database between this process's last look and
    /// the commit makes the write fail with a conflict (the client may retry); the model
    /// is brought up to date first, so such races need two writers within milliseconds.
    pub async fn write<R>(&self, f: impl FnOnce(&mut Txn) -> Result<R>) -> Result<R> {
        let _guard = self.write_lock.lock().await;
        self.refresh_locked().await?;
        let base = *self.revision.lock().unwrap_or_else(|e| e.into_inner());
        let mut txn = Txn { m: (*self.model()).clone(), ops: Vec::new() };
        txn.m.generation += 1;
        let r = f(&mut txn)?;
        let new_revision = self.store.apply(base, &txn.ops).await.map_err(|e| match e {
            StoreError::Duplicate { table } => Error::Conflict(format!(
                "Conflict occurred attempting to store {} - Duplicate entry.",
                table.trim_end_matches('s')
            )),
            StoreError::Stale { .. } => {
                Error::Conflict("The identity data changed concurrently; retry the request.".into())
            }
            other => Error::Store(other),
        })?;
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(txn.m);
        *self.revision.lock().unwrap_or_else(|e| e.into_inner()) = new_revision;
        Ok(r)
    }

    /// Reloads the model if another process sharing the database wrote to it.
    pub async fn refresh(&self) -> Result<bool> {
        let _guard = self.write_lock.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<bool> {
        let current = self.store.revision().await?;
        if current == *self.revision.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(false);
        }
        let mut model = self.store.load().await?;
        model.generation = self.model().generation + 1;
        *self.model.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(model);
        *self.revision.lock().unwrap_or_else(|e| e.into_inner()) = current;
        Ok(true)
    }

    pub fn keys(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Picks up keys rotated by `haneul token-keys rotate` while the service runs.
    pub fn reload_keys_if_changed(&self) -> Result<bool> {
        let fp = self.key_repo.fingerprint()?;
        let mut current = self.key_fingerprint.lock().unwrap_or_else(|e| e.into_inner());
        if *current == fp {
            return Ok(false);
        }
        let ring = self.key_repo.load()?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ring);
        self.keys_generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        *current = fp;
        Ok(true)
    }

    pub fn key_repository(&self) -> PathBuf {
        self.key_repo.dir().to_path_buf()
    }

    /// Drops revocation events older than any token they could match.
    pub async fn prune_revocations(&self) -> Result<usize> {
        let horizon = Utc::now()
            - chrono::Duration::from_std(self.settings.token_expiration + self.settings.allow_expired_window)
                .unwrap_or(chrono::Duration::days(3));
        let stale: Vec<String> =
            self.model().revocation_events.values().filter(|e| e.revoked_at < horizon).map(|e| e.id.clone()).collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let n = stale.len();
        self.write(|t| {
            for id in &stale {
                t.delete::<RevocationEvent>(id);
            }
            Ok(())
        })
        .await?;
        Ok(n)
    }

    /// Hashes a password with bcrypt at the configured cost, off the async threads.
    pub async fn hash_password(&self, password: String) -> Result<String> {
        let cost = self.settings.password_hash_rounds;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    }

    /// Checks a password against a bcrypt hash, off the async threads.
    pub async fn verify_password(&self, password: String, hash: String) -> bool {
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false)).await.unwrap_or(false)
    }
}

/// A new random id, as Keystone makes them (uuid4 hex).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
