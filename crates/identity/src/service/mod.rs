//! The identity service's state and rules, independent of HTTP.
//!
//! The modules by resource hold the rules of each change as functions of a write in progress
//! ([`Txn`]): `ident.write(|t| service::projects::create(t, project))`. Every check that reads
//! the state a change depends on (a free name, an enabled parent, a resource that must exist)
//! runs in that write, so it holds when the change is stored; cascades and revocation events
//! go in the same write.

pub mod appcreds;
pub mod assignments;
mod auth;
pub mod catalog;
mod compliance;
pub mod credentials;
pub mod domain_config;
pub mod domains;
pub mod endpoints;
pub mod groups;
pub mod limits;
pub mod projects;
pub mod registry;
pub mod roles;
#[cfg(test)]
mod tests;
pub mod trusts;
pub mod users;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use std::time::Duration;

use chrono::Utc;
use haneul_core::config::Config;
use haneul_core::policy::PolicyFile;

use crate::model::{Model, RevocationEvent};
use crate::token::{KeyError, KeyRepository, KeyRing};
use haneul_core::docstore::{State, StoreError};

pub use auth::{parse_expiry, AuthMethod, AuthRequest, AuthScope, IssuedToken, NameOrId, ValidToken};
pub use roles::{effective_assignments, user_roles as roles_on, EffectiveAssignment, RoleRef, RoleTarget};

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
    Store(#[source] StoreError),
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

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::Duplicate { table } => Error::Conflict(format!(
                "Conflict occurred attempting to store {} - Duplicate entry.",
                table.trim_end_matches('s')
            )),
            StoreError::NotFound { kind, id } => Error::NotFound { kind, id },
            StoreError::Stale { .. } => {
                Error::Conflict("The identity data changed concurrently; retry the request.".into())
            }
            other => Error::Store(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A write in progress on the identity model.
pub type Txn = haneul_core::docstore::Txn<Model>;

/// Recording revocation events in a write.
pub trait Revoke {
    /// Records a revocation event issued now.
    fn revoke(&mut self, ev: RevocationEvent);
}

impl Revoke for Txn {
    fn revoke(&mut self, mut ev: RevocationEvent) {
        let now = Utc::now();
        ev.id = uuid::Uuid::new_v4().simple().to_string();
        ev.issued_before = now;
        ev.revoked_at = now;
        // A revocation event has no unique key, so putting it cannot clash.
        let _ = self.put(ev);
    }
}

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
    state: State<Model>,
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

impl Identity {
    /// Opens the database and the key repository and loads the model.
    pub async fn open(config: &Config) -> Result<Arc<Identity>> {
        let store = crate::store::open(&config.identity_database_url()).await?;
        let key_repo = KeyRepository::new(config.key_repository(), config.identity.max_active_keys);
        key_repo.ensure()?;
        let keys = key_repo.load()?;
        let fingerprint = key_repo.fingerprint()?;
        let state = State::open(store).await?;
        let policy = PolicyFile::new(config.policy_file(), crate::policy_defaults::DEFAULT_RULES)
            .map_err(|e| Error::Internal(format!("policy could not be loaded: {e}")))?;
        Ok(Arc::new(Identity {
            state,
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
        self.state.model()
    }

    /// Runs `f` on a copy of the model; persists and publishes its changes if it succeeds.
    pub async fn write<R>(&self, f: impl FnOnce(&mut Txn) -> Result<R>) -> Result<R> {
        self.state.write(f).await
    }

    /// Reloads the model if another process sharing the database wrote to it.
    pub async fn refresh(&self) -> Result<bool> {
        Ok(self.state.refresh().await?)
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

/// Other services read their quota limits from the unified limits held here, in-process.
impl haneul_core::limits::LimitSource for Identity {
    fn limit(&self, service_type: &str, project_id: &str, resource: &str) -> Option<i64> {
        let m = self.model();
        let str_of = |o: &crate::model::Extra, k: &str| o.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let services: Vec<&str> =
            m.services.values().filter(|s| s.kind == service_type).map(|s| s.id.as_str()).collect();
        let is_ours = |o: &crate::model::Extra| {
            str_of(o, "service_id").is_some_and(|s| services.contains(&s.as_str()))
                && str_of(o, "resource_name").as_deref() == Some(resource)
                && str_of(o, "region_id").is_none_or(|r| r == self.settings.region)
        };
        let own = m
            .limits
            .values()
            .map(|l| &l.0.body)
            .find(|o| is_ours(o) && str_of(o, "project_id").as_deref() == Some(project_id));
        if let Some(o) = own {
            return o.get("resource_limit").and_then(|v| v.as_i64());
        }
        let registered = m
            .registered_limits
            .values()
            .map(|l| &l.0.body)
            .find(|o| is_ours(o))
            .and_then(|o| o.get("default_limit").and_then(|v| v.as_i64()));
        registered
    }
}
