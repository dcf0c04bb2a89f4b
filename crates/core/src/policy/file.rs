//! A policy file beside its defaults: reloaded when it changes, a bad file reported once and
//! the last good rules kept.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::{Policy, PolicyError};

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Defaults plus an overrides file, reloaded when its mtime or size changes, looked at no
/// more than once per check interval (one second unless set). A missing file means the
/// defaults alone; an invalid one keeps the last good policy, and its error is handed out
/// once by [`PolicyFile::take_reload_error`].
pub struct PolicyFile {
    path: PathBuf,
    defaults: Policy,
    interval: Duration,
    epoch: Instant,
    next_check_ms: AtomicU64,
    /// `(mtime, len)` of the file last read; `None` when it was absent.
    seen: Mutex<Option<(SystemTime, u64)>>,
    error: Mutex<Option<PolicyError>>,
    current: RwLock<Arc<Policy>>,
}

impl PolicyFile {
    /// Parses the defaults and loads the file now; an invalid default or file is an error.
    pub fn new(path: impl Into<PathBuf>, defaults: &[(&str, &str)]) -> Result<Self, PolicyError> {
        let defaults = Policy::new(defaults)?;
        let file = PolicyFile {
            path: path.into(),
            current: RwLock::new(Arc::new(defaults.clone())),
            defaults,
            interval: Duration::ZERO,
            epoch: Instant::now(),
            next_check_ms: AtomicU64::new(0),
            seen: Mutex::new(None),
            error: Mutex::new(None),
        };
        file.reload()?;
        Ok(file.with_check_interval(Duration::from_secs(1)))
    }

    /// Sets how often [`PolicyFile::current`] may look at the file; the next look is due
    /// one interval from now.
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        let next = self.now_ms().saturating_add(millis(interval));
        self.next_check_ms = AtomicU64::new(next);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    /// The policy in force, after reloading the file if a look is due and it changed.
    pub fn current(&self) -> Arc<Policy> {
        let (now, due) = (self.now_ms(), self.next_check_ms.load(Ordering::Acquire));
        let next = now.saturating_add(millis(self.interval));
        let claimed =
            now >= due && (self.next_check_ms).compare_exchange(due, next, Ordering::AcqRel, Ordering::Relaxed).is_ok();
        if claimed {
            if let Err(e) = self.reload() {
                *lock(&self.error) = Some(e);
            }
        }
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Looks at the file now; `Ok(true)` when the policy in force changed.
    pub fn reload(&self) -> Result<bool, PolicyError> {
        let io = |e| PolicyError::Io { path: self.path.clone(), source: Arc::new(e) };
        let mut seen = lock(&self.seen);
        let fingerprint = match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.modified().map_err(io)?, m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        if fingerprint == *seen {
            return Ok(false);
        }
        let policy = match fingerprint {
            None => self.defaults.clone(),
            Some(_) => {
                let text = std::fs::read_to_string(&self.path).map_err(io)?;
                // Remember a bad file too, so that it is reported once, not every interval.
                *seen = fingerprint;
                let file_error = |e| PolicyError::File { path: self.path.clone(), source: Box::new(e) };
                self.defaults.with_overrides(&text).map_err(file_error)?
            }
        };
        *seen = fingerprint;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
        Ok(true)
    }

    /// Asks `rule` for the caller on `target` (an API target: nulls left out, see
    /// [`Policy::allows`]); the service's 403 (`denied`) when the rule does not allow it.
    /// What every service's handlers call when a rule needs the resource.
    pub fn require(
        &self,
        ctx: &crate::auth::AuthContext,
        rule: &str,
        target: &Value,
        denied: fn(&str) -> crate::error::ApiError,
    ) -> Result<(), crate::error::ApiError> {
        if self.current().allows(rule, target, ctx.policy_credentials()) {
            Ok(())
        } else {
            Err(denied(rule))
        }
    }

    /// The error of the last failed automatic reload, if not taken yet.
    pub fn take_reload_error(&self) -> Option<PolicyError> {
        lock(&self.error).take()
    }
}
