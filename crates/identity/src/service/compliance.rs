//! Security compliance, as Keystone's `[security_compliance]` options: lockout after failed
//! password authentications, password history, minimum password age and expiry. All of it is
//! off by default.

use chrono::Utc;

use super::{Error, Identity, Result, Settings};
use crate::model::User;

/// Gives `user` a new password hash, keeping the history and expiry rules of `settings`.
pub fn set_password(settings: &Settings, user: &mut User, hash: String) {
    let keep = settings.unique_last_password_count.saturating_sub(1);
    if let Some(old) = user.password_hash.take() {
        user.password_history.insert(0, old);
    }
    user.password_history.truncate(keep);
    user.password_hash = Some(hash);
    let now = Utc::now();
    user.password_created_at = Some(now);
    user.password_expires_at = match settings.password_expires_days {
        0 => None,
        _ if user.option_set("ignore_password_expiry") => None,
        days => Some(now + chrono::Duration::days(i64::from(days))),
    };
    user.failed_auth_count = 0;
    user.failed_auth_at = None;
}

impl Identity {
    /// Gives `user` a new password hash, keeping the history and expiry rules.
    pub fn set_password(&self, user: &mut User, hash: String) {
        set_password(&self.settings, user, hash)
    }

    /// The rules a self-service password change must follow: minimum age and history.
    pub async fn check_password_change(&self, user: &User, new_password: &str) -> Result<()> {
        let min_age = self.settings.minimum_password_age;
        if !min_age.is_zero() && !user.option_set("ignore_password_expiry") {
            if let Some(created) = user.password_created_at {
                if Utc::now() < created + chrono::Duration::from_std(min_age).unwrap_or_default() {
                    return Err(Error::validation(format!(
                        "You cannot change your password at this time due to the minimum password age. Once you change your password, it must be used for {} day(s) before it can be changed.",
                        min_age.as_secs() / 86_400
                    )));
                }
            }
        }
        let n = self.settings.unique_last_password_count;
        if n > 1 {
            let recent = user.password_hash.iter().chain(user.password_history.iter()).take(n);
            for hash in recent {
                if self.verify_password(new_password.to_string(), hash.clone()).await {
                    return Err(Error::validation(format!(
                        "The new password cannot be identical to a previous password. The total number which includes the new password must be unique is {n}."
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether a user is locked out after too many failed password authentications.
    pub fn locked_out(&self, user: &User) -> bool {
        let limit = self.settings.lockout_failure_attempts;
        if limit == 0 || user.option_set("ignore_lockout_failure_attempts") || user.failed_auth_count < limit {
            return false;
        }
        let until = user
            .failed_auth_at
            .map(|t| t + chrono::Duration::from_std(self.settings.lockout_duration).unwrap_or_default());
        until.is_some_and(|u| Utc::now() < u)
    }

    /// Counts a failed (or, with `ok`, resets after a successful) password authentication;
    /// writes only when lockout is on and the count changes.
    pub async fn record_password_auth(&self, user_id: &str, ok: bool) -> Result<()> {
        if self.settings.lockout_failure_attempts == 0 {
            return Ok(());
        }
        let needs_write = self.model().users.get(user_id).is_some_and(|u| !ok || u.failed_auth_count > 0);
        if !needs_write {
            return Ok(());
        }
        let duration = chrono::Duration::from_std(self.settings.lockout_duration).unwrap_or_default();
        self.write(|t| {
            let Some(u) = t.m.users.get(user_id) else { return Ok(()) };
            let mut u = (**u).clone();
            if ok {
                u.failed_auth_count = 0;
                u.failed_auth_at = None;
            } else {
                // A lockout that has run out starts counting afresh.
                if u.failed_auth_at.is_some_and(|at| Utc::now() >= at + duration) {
                    u.failed_auth_count = 0;
                }
                u.failed_auth_count += 1;
                u.failed_auth_at = Some(Utc::now());
            }
            Ok(t.put(u).map(|_| ())?)
        })
        .await
    }
}
