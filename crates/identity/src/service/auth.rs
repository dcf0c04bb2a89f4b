//! Authentication: turning credentials into a token, and a token back into who it speaks for.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use haneul_core::auth::{AuthContext, NamedRef, Scope};
use serde::Deserialize;
use serde_json::Value;

use super::roles::{user_roles, RoleTarget};
use super::{Error, Identity, Result, Revoke};
use crate::model::{ApplicationCredential, Model, Project, RevocationEvent, Trust, User};
use crate::token::{self, audit_id_text, new_audit_id, Payload, PayloadScope, TokenError};

/// `{"id": ...}` or `{"name": ..., "domain": {...}}` as Keystone's auth body names things.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct NameOrId {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain: Option<Box<NameOrId>>,
}

#[derive(Debug, Deserialize)]
pub struct AuthRequest {
    pub auth: AuthBody,
}

#[derive(Debug, Deserialize)]
pub struct AuthBody {
    pub identity: IdentityBody,
    #[serde(default)]
    pub scope: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct IdentityBody {
    pub methods: Vec<String>,
    #[serde(default)]
    pub password: Option<PasswordBody>,
    #[serde(default)]
    pub token: Option<TokenBody>,
    #[serde(default)]
    pub application_credential: Option<AppCredBody>,
}

#[derive(Debug, Deserialize)]
pub struct PasswordBody {
    pub user: PasswordUser,
}

#[derive(Debug, Deserialize)]
pub struct PasswordUser {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain: Option<NameOrId>,
    pub password: String,
}

#[derive(Debug, Deserialize)]
pub struct TokenBody {
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub struct AppCredBody {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub user: Option<NameOrId>,
    pub secret: String,
}

/// How the caller proves who it is.
#[derive(Debug)]
pub enum AuthMethod {
    Password { user: NameOrId, password: String },
    Token { id: String },
    ApplicationCredential { id: Option<String>, name: Option<String>, user: Option<NameOrId>, secret: String },
}

/// What the caller wants the token scoped to.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthScope {
    /// No scope asked: the user's default project if it can be used, else unscoped.
    Default,
    Unscoped,
    Project {
        id: Option<String>,
        name: Option<String>,
        domain: Option<(Option<String>, Option<String>)>,
    },
    Domain {
        id: Option<String>,
        name: Option<String>,
    },
    System,
    Trust {
        id: String,
    },
}

impl AuthRequest {
    /// Checks the body's shape and turns it into the method and scope to use.
    pub fn parse(self) -> Result<(AuthMethod, AuthScope)> {
        let id = self.auth.identity;
        if id.methods.is_empty() {
            return Err(Error::validation("Invalid input for field 'identity/methods': [] is too short"));
        }
        let method = match id.methods[0].as_str() {
            "password" => {
                let p = id.password.ok_or_else(|| Error::validation("'password' is a required property"))?;
                let u = p.user;
                if u.id.is_none() && u.name.is_none() {
                    return Err(Error::validation("Expecting to find id or name in user - the server could not comply with the request since it is either malformed or otherwise incorrect."));
                }
                if u.id.is_none() && u.domain.as_ref().is_none_or(|d| d.id.is_none() && d.name.is_none()) {
                    return Err(Error::validation("Expecting to find domain in user - the server could not comply with the request since it is either malformed or otherwise incorrect."));
                }
                AuthMethod::Password {
                    user: NameOrId { id: u.id, name: u.name, domain: u.domain.map(Box::new) },
                    password: u.password,
                }
            }
            "token" => {
                let t = id.token.ok_or_else(|| Error::validation("'token' is a required property"))?;
                AuthMethod::Token { id: t.id }
            }
            "application_credential" => {
                let a = id
                    .application_credential
                    .ok_or_else(|| Error::validation("'application_credential' is a required property"))?;
                if a.id.is_none() && (a.name.is_none() || a.user.is_none()) {
                    return Err(Error::validation(
                        "Could not find application credential: id or name and user must be given.",
                    ));
                }
                AuthMethod::ApplicationCredential { id: a.id, name: a.name, user: a.user, secret: a.secret }
            }
            other => {
                return Err(Error::Unauthorized(format!(
                    "Attempted to authenticate with an unsupported method: {other}."
                )))
            }
        };
        Ok((method, parse_scope(self.auth.scope)?))
    }
}

fn parse_scope(v: Option<Value>) -> Result<AuthScope> {
    let Some(v) = v else { return Ok(AuthScope::Default) };
    if v.as_str() == Some("unscoped") {
        return Ok(AuthScope::Unscoped);
    }
    let obj = v
        .as_object()
        .ok_or_else(|| Error::validation("Invalid input for field 'scope': must be an object or 'unscoped'"))?;
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    if let Some(p) = obj.get("project") {
        let domain = p.get("domain").map(|d| (s(d.get("id")), s(d.get("name"))));
        let (id, name) = (s(p.get("id")), s(p.get("name")));
        if id.is_none() && name.is_none() {
            return Err(Error::validation("Invalid input for field 'scope/project': id or name is required"));
        }
        if id.is_none() && domain.as_ref().is_none_or(|(a, b)| a.is_none() && b.is_none()) {
            return Err(Error::validation("Invalid input for field 'scope/project': a project name needs its domain"));
        }
        return Ok(AuthScope::Project { id, name, domain });
    }
    if let Some(d) = obj.get("domain") {
        let (id, name) = (s(d.get("id")), s(d.get("name")));
        if id.is_none() && name.is_none() {
            return Err(Error::validation("Invalid input for field 'scope/domain': id or name is required"));
        }
        return Ok(AuthScope::Domain { id, name });
    }
    if let Some(sys) = obj.get("system") {
        if sys.get("all").and_then(Value::as_bool) == Some(true) {
            return Ok(AuthScope::System);
        }
        return Err(Error::validation("Invalid input for field 'scope/system': only {\"all\": true} is supported"));
    }
    if let Some(t) = obj.get("OS-TRUST:trust") {
        let id = s(t.get("id"))
            .ok_or_else(|| Error::validation("Invalid input for field 'scope/OS-TRUST:trust': id is required"))?;
        return Ok(AuthScope::Trust { id });
    }
    Err(Error::validation("Invalid input for field 'scope': expected project, domain, system or OS-TRUST:trust"))
}

/// A token that passed validation, with everything needed to render it.
#[derive(Clone, Debug)]
pub struct ValidToken {
    pub payload: Payload,
    pub ctx: Arc<AuthContext>,
    pub password_expires_at: Option<DateTime<Utc>>,
    pub trust: Option<Arc<Trust>>,
    pub app_cred: Option<Arc<ApplicationCredential>>,
    /// The rendered validation body, without and with the catalog, made once per cached token.
    pub rendered: [std::sync::OnceLock<Vec<u8>>; 2],
}

/// Reads an expiry as clients send it: RFC 3339, or a naive ISO time taken as UTC.
pub fn parse_expiry(s: Option<&str>) -> Option<DateTime<Utc>> {
    let s = s?;
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = s.trim_end_matches('Z');
    chrono::NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// A freshly issued token.
pub struct IssuedToken {
    pub id: String,
    pub token: ValidToken,
}

fn domain_ref(m: &Model, id: &str) -> NamedRef {
    NamedRef { id: id.into(), name: m.domains.get(id).map(|d| d.name.clone()).unwrap_or_default() }
}

impl Identity {
    /// Authenticates and issues a token.
    pub async fn issue_token(&self, method: AuthMethod, scope: AuthScope) -> Result<IssuedToken> {
        let now = Utc::now();
        let ttl = chrono::Duration::from_std(self.settings.token_expiration).unwrap_or(chrono::Duration::hours(1));
        let mut app_cred_id = None;
        let (user, methods, mut expires_at, parent_audit) = match method {
            AuthMethod::Password { user, password } => {
                let u = self.find_auth_user(&user)?;
                if self.locked_out(&u) {
                    return Err(Error::Unauthorized(format!("The account is locked for user: {}.", u.id)));
                }
                let ok = match &u.password_hash {
                    Some(h) => self.verify_password(password, h.clone()).await,
                    None => false,
                };
                self.record_password_auth(&u.id, ok).await?;
                if !ok {
                    return Err(Error::unauthorized());
                }
                if u.password_expires_at.is_some_and(|e| e <= now) && !u.option_set("ignore_password_expiry") {
                    return Err(Error::Unauthorized(format!(
                        "The password is expired and needs to be changed for user: {}.",
                        u.id
                    )));
                }
                (u, token::METHOD_PASSWORD, now + ttl, None)
            }
            AuthMethod::Token { id } => {
                // A token that is not valid (any more) is "not found", as Keystone answers.
                let vt = self.validate_token(&id, false)?;
                if vt.payload.app_cred_id.is_some() || matches!(vt.payload.scope, PayloadScope::Trust { .. }) {
                    return Err(Error::Forbidden(
                        "A token from an application credential or a trust cannot be rescoped.".into(),
                    ));
                }
                let u = self.model().users.get(&vt.payload.user_id).cloned().ok_or_else(Error::unauthorized)?;
                let chain = vt.payload.audit_ids.last().copied();
                (u, vt.payload.methods | token::METHOD_TOKEN, vt.payload.expires_at, chain)
            }
            AuthMethod::ApplicationCredential { id, name, user, secret } => {
                let ac = self.find_app_cred(id.as_deref(), name.as_deref(), user.as_ref())?;
                if !self.verify_password(secret, ac.secret_hash.clone()).await {
                    return Err(Error::unauthorized());
                }
                let ac_expiry = parse_expiry(ac.expires_at.as_deref());
                if ac_expiry.is_some_and(|e| e <= now) {
                    return Err(Error::Unauthorized("The application credential has expired.".into()));
                }
                let scope_ok = match &scope {
                    AuthScope::Default | AuthScope::Unscoped => true,
                    AuthScope::Project { id: Some(p), .. } => p == &ac.project_id,
                    _ => false,
                };
                if !scope_ok {
                    return Err(Error::Unauthorized(
                        "An application credential token is scoped to the credential's project only.".into(),
                    ));
                }
                let u = self.model().users.get(&ac.user_id).cloned().ok_or_else(Error::unauthorized)?;
                app_cred_id = Some(ac.id.clone());
                let exp = ac_expiry.map_or(now + ttl, |e| e.min(now + ttl));
                (u, token::METHOD_APP_CRED, exp, None)
            }
        };
        let m = self.model();
        if !user.enabled || !m.domains.get(&user.domain_id).is_some_and(|d| d.enabled) {
            return Err(Error::unauthorized());
        }
        let (user_id, pscope) = match (&app_cred_id, scope) {
            (Some(ac), _) => {
                let project = m.application_credentials.get(ac).map(|a| a.project_id.clone()).unwrap_or_default();
                (user.id.clone(), PayloadScope::Project(project))
            }
            (None, AuthScope::Trust { id }) => {
                let trust = self.consume_trust(&id, &user.id).await?;
                let as_user = if trust.impersonation { trust.trustor_user_id.clone() } else { user.id.clone() };
                if let Some(e) = trust.expires_at {
                    expires_at = expires_at.min(e);
                }
                let project_id = trust.project_id.clone().unwrap_or_default();
                (as_user, PayloadScope::Trust { trust_id: trust.id.clone(), project_id })
            }
            (None, scope) => (user.id.clone(), self.resolve_scope(&m, &user, scope)?),
        };
        let mut audit_ids = vec![new_audit_id()];
        if let Some(p) = parent_audit {
            audit_ids.push(p);
        }
        let payload = Payload { methods, user_id, scope: pscope, issued_at: now, expires_at, audit_ids, app_cred_id };
        let id = self.keys().seal(&payload.encode());
        let m = self.model();
        let token = self.check_payload(&m, payload).map_err(|e| match e {
            Error::NotFound { .. } => Error::Unauthorized("The requested scope grants no roles.".into()),
            other => other,
        })?;
        Ok(IssuedToken { id, token })
    }

    fn find_app_cred(
        &self,
        id: Option<&str>,
        name: Option<&str>,
        user: Option<&NameOrId>,
    ) -> Result<Arc<ApplicationCredential>> {
        let m = self.model();
        let found = match (id, name, user) {
            (Some(id), _, _) => m.application_credentials.get(id).cloned(),
            (None, Some(name), Some(u)) => {
                let user = self.find_auth_user(u)?;
                m.application_credentials.values().find(|a| a.user_id == user.id && a.name == name).cloned()
            }
            _ => None,
        };
        found.ok_or_else(Error::unauthorized)
    }

    /// Checks that `trustee` may use trust `id` now, and uses it up once if it is limited.
    async fn consume_trust(&self, id: &str, trustee: &str) -> Result<Arc<Trust>> {
        let bad = || Error::Forbidden("The trust is not valid for this user.".into());
        let trust = self.model().trusts.get(id).cloned().ok_or_else(|| Error::not_found("trust", id))?;
        if trust.trustee_user_id != trustee {
            return Err(bad());
        }
        if trust.expires_at.is_some_and(|e| e <= Utc::now()) {
            return Err(Error::not_found("trust", id));
        }
        let trustor_ok = self.model().users.get(&trust.trustor_user_id).is_some_and(|u| u.enabled);
        if !trustor_ok {
            return Err(bad());
        }
        if trust.remaining_uses.is_some() {
            let id = id.to_string();
            self.write(|t| {
                let mut tr = (**t.m.trusts.get(&id).ok_or_else(|| Error::not_found("trust", id.clone()))?).clone();
                match tr.remaining_uses {
                    Some(n) if n <= 0 => return Err(Error::Forbidden("The trust has no uses left.".into())),
                    Some(n) => tr.remaining_uses = Some(n - 1),
                    None => {}
                }
                Ok(t.put(tr).map(|_| ())?)
            })
            .await?;
        }
        Ok(trust)
    }

    fn find_auth_user(&self, r: &NameOrId) -> Result<Arc<User>> {
        let m = self.model();
        let found = if let Some(id) = &r.id {
            m.users.get(id).cloned()
        } else {
            let name = r.name.as_deref().unwrap_or_default();
            let domain_id = match r.domain.as_deref() {
                Some(NameOrId { id: Some(id), .. }) => Some(id.clone()),
                Some(NameOrId { name: Some(n), .. }) => m.domain_by_name(n).map(|d| d.id.clone()),
                _ => None,
            };
            domain_id.and_then(|d| m.users.by_unique(&format!("{d}/{name}")).cloned())
        };
        found.ok_or_else(Error::unauthorized)
    }

    fn resolve_scope(&self, m: &Model, user: &User, scope: AuthScope) -> Result<PayloadScope> {
        match scope {
            AuthScope::Unscoped => Ok(PayloadScope::Unscoped),
            AuthScope::Default => {
                let usable = user
                    .default_project_id
                    .as_deref()
                    .and_then(|p| m.projects.get(p))
                    .filter(|p| p.enabled && !user_roles(m, &user.id, RoleTarget::Project(&p.id)).is_empty());
                Ok(match usable {
                    Some(p) => PayloadScope::Project(p.id.clone()),
                    None => PayloadScope::Unscoped,
                })
            }
            AuthScope::Project { id, name, domain } => {
                let project = match id {
                    Some(id) => m.projects.get(&id).cloned(),
                    None => {
                        let name = name.unwrap_or_default();
                        let domain_id = match domain {
                            Some((Some(id), _)) => Some(id),
                            Some((None, Some(n))) => m.domain_by_name(&n).map(|d| d.id.clone()),
                            _ => None,
                        };
                        domain_id.and_then(|d| m.projects.by_unique(&crate::model::Project::unique(&d, &name)).cloned())
                    }
                };
                let project =
                    project.ok_or_else(|| Error::Unauthorized("Could not find the project to scope to.".into()))?;
                if !project.enabled || !m.domains.get(&project.domain_id).is_some_and(|d| d.enabled) {
                    return Err(Error::Unauthorized(format!("Project {} is disabled.", project.id)));
                }
                if user_roles(m, &user.id, RoleTarget::Project(&project.id)).is_empty() {
                    return Err(Error::Unauthorized(format!(
                        "User {} has no access to project {}",
                        user.id, project.id
                    )));
                }
                Ok(PayloadScope::Project(project.id.clone()))
            }
            AuthScope::Domain { id, name } => {
                let domain = match id {
                    Some(id) => m.domains.get(&id).cloned(),
                    None => m.domain_by_name(name.as_deref().unwrap_or_default()).cloned(),
                };
                let domain =
                    domain.ok_or_else(|| Error::Unauthorized("Could not find the domain to scope to.".into()))?;
                if !domain.enabled {
                    return Err(Error::Unauthorized(format!("Domain {} is disabled.", domain.id)));
                }
                if user_roles(m, &user.id, RoleTarget::Domain(&domain.id)).is_empty() {
                    return Err(Error::Unauthorized(format!("User {} has no access to domain {}", user.id, domain.id)));
                }
                Ok(PayloadScope::Domain(domain.id.clone()))
            }
            AuthScope::System => {
                if user_roles(m, &user.id, RoleTarget::System).is_empty() {
                    return Err(Error::Unauthorized(format!("User {} has no access to the system", user.id)));
                }
                Ok(PayloadScope::System)
            }
            AuthScope::Trust { .. } => {
                Err(Error::Unauthorized("Trust-scoped authentication is not available yet.".into()))
            }
        }
    }

    /// Validates a token against the keys, its expiry, revocation events and the current
    /// model. `allow_expired` accepts a token up to `allow_expired_window` past its expiry.
    ///
    /// Results are cached per token for as long as the model and the key ring stay the same:
    /// every change that could invalidate a token (revocation, a disabled user, a removed
    /// role, a rotated-out key) publishes a new generation, which misses the cache.
    pub fn validate_token(&self, token: &str, allow_expired: bool) -> Result<Arc<ValidToken>> {
        // Bounded so that a spray of distinct tokens cannot grow memory: each entry holds a
        // context and up to two rendered bodies (a few KiB with a catalog).
        const CACHE_MAX: usize = 4_096;
        let m = self.model();
        let keys_gen = self.keys_generation.load(std::sync::atomic::Ordering::SeqCst);
        let cached = {
            let cache = self.token_cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.get(token).filter(|(g, k, _)| *g == m.generation && *k == keys_gen).map(|(_, _, vt)| vt.clone())
        };
        let vt = match cached {
            Some(vt) => vt,
            None => {
                let vt = Arc::new(self.validate_uncached(token, &m)?);
                let mut cache = self.token_cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
                cache.insert(token.to_string(), (m.generation, keys_gen, vt.clone()));
                vt
            }
        };
        let mut deadline = vt.payload.expires_at;
        if allow_expired {
            deadline += chrono::Duration::from_std(self.settings.allow_expired_window).unwrap_or_default();
        }
        if Utc::now() >= deadline {
            return Err(Error::not_found("token", ""));
        }
        Ok(vt)
    }

    fn validate_uncached(&self, token: &str, m: &Model) -> Result<ValidToken> {
        let bytes = self.keys().open(token).map_err(|e: TokenError| {
            tracing::debug!(error = %e, "token rejected");
            Error::not_found("token", "")
        })?;
        let payload = Payload::decode(&bytes).map_err(|_| Error::not_found("token", ""))?;
        self.check_payload(m, payload)
    }

    /// Checks a decoded payload against the model and builds its context.
    fn check_payload(&self, m: &Model, payload: Payload) -> Result<ValidToken> {
        let invalid = || Error::not_found("token", "");
        let user = m.users.get(&payload.user_id).ok_or_else(invalid)?;
        let app_cred = match &payload.app_cred_id {
            Some(id) => {
                let ac = m.application_credentials.get(id).ok_or_else(invalid)?;
                if ac.user_id != user.id || parse_expiry(ac.expires_at.as_deref()).is_some_and(|e| e <= Utc::now()) {
                    return Err(invalid());
                }
                Some(ac.clone())
            }
            None => None,
        };
        let trust = match &payload.scope {
            PayloadScope::Trust { trust_id, .. } => {
                let tr = m.trusts.get(trust_id).ok_or_else(invalid)?;
                if tr.expires_at.is_some_and(|e| e <= Utc::now()) {
                    return Err(invalid());
                }
                let trustee_ok = m.users.get(&tr.trustee_user_id).is_some_and(|u| u.enabled);
                let trustor_ok = m.users.get(&tr.trustor_user_id).is_some_and(|u| u.enabled);
                if !trustee_ok || !trustor_ok {
                    return Err(invalid());
                }
                Some(tr.clone())
            }
            _ => None,
        };
        let user_domain = m.domains.get(&user.domain_id).ok_or_else(invalid)?;
        if !user.enabled || !user_domain.enabled {
            return Err(invalid());
        }
        let (scope, roles, project): (Scope, Vec<String>, Option<&Arc<Project>>) = match &payload.scope {
            PayloadScope::Unscoped => (Scope::Unscoped, vec![], None),
            PayloadScope::Project(pid) | PayloadScope::Trust { project_id: pid, .. } => {
                let p = m.projects.get(pid).ok_or_else(invalid)?;
                if !p.enabled || !m.domains.get(&p.domain_id).is_some_and(|d| d.enabled) {
                    return Err(invalid());
                }
                let mut roles = user_roles(m, &user.id, RoleTarget::Project(pid));
                if let Some(ac) = &app_cred {
                    let delegated = m.expand_implied(ac.roles.iter().cloned());
                    roles.retain(|r| delegated.contains(r));
                }
                if let Some(tr) = &trust {
                    let trustor_roles = user_roles(m, &tr.trustor_user_id, RoleTarget::Project(pid));
                    let delegated = m.expand_implied(tr.roles.iter().cloned());
                    roles = trustor_roles.into_iter().filter(|r| delegated.contains(r)).collect();
                }
                let scope = Scope::Project {
                    project: NamedRef { id: p.id.clone(), name: p.name.clone() },
                    domain: domain_ref(m, &p.domain_id),
                };
                (scope, roles, Some(p))
            }
            PayloadScope::Domain(did) => {
                let d = m.domains.get(did).ok_or_else(invalid)?;
                if !d.enabled {
                    return Err(invalid());
                }
                (
                    Scope::Domain(NamedRef { id: d.id.clone(), name: d.name.clone() }),
                    user_roles(m, &user.id, RoleTarget::Domain(did)),
                    None,
                )
            }
            PayloadScope::System => (Scope::System, user_roles(m, &user.id, RoleTarget::System), None),
        };
        if scope != Scope::Unscoped && roles.is_empty() {
            return Err(invalid());
        }
        if self.is_revoked(m, &payload, &user.domain_id, project.map(|p| p.as_ref()), &roles) {
            return Err(invalid());
        }
        let is_admin_project = project.is_some_and(|p| p.name == "admin" && p.domain_id == "default");
        let mut role_refs: Vec<NamedRef> = roles
            .iter()
            .filter_map(|r| m.roles.get(r))
            .map(|r| NamedRef { id: r.id.clone(), name: r.name.clone() })
            .collect();
        role_refs.sort_by(|a, b| a.name.cmp(&b.name));
        let ctx = AuthContext {
            user: NamedRef { id: user.id.clone(), name: user.name.clone() },
            user_domain: NamedRef { id: user_domain.id.clone(), name: user_domain.name.clone() },
            scope,
            roles: role_refs,
            methods: token::method_names(payload.methods),
            audit_ids: payload.audit_ids.iter().map(audit_id_text).collect(),
            issued_at: payload.issued_at,
            expires_at: payload.expires_at,
            trust_id: trust.as_ref().map(|t| t.id.clone()),
            application_credential_id: payload.app_cred_id.clone(),
            is_admin_project,
            creds: Default::default(),
        };
        Ok(ValidToken {
            password_expires_at: user.password_expires_at,
            payload,
            ctx: Arc::new(ctx),
            trust,
            app_cred,
            rendered: Default::default(),
        })
    }

    fn is_revoked(
        &self,
        m: &Model,
        p: &Payload,
        user_domain_id: &str,
        project: Option<&Project>,
        roles: &[String],
    ) -> bool {
        let audit = p.audit_ids.first().map(audit_id_text);
        let chain = p.audit_ids.last().map(audit_id_text);
        let matches = |e: &RevocationEvent| -> bool {
            if p.issued_at > e.issued_before {
                return false;
            }
            let eq = |field: &Option<String>, value: Option<&str>| field.as_deref().is_none_or(|f| Some(f) == value);
            let domain_ok = e.domain_id.as_deref().is_none_or(|d| {
                d == user_domain_id
                    || project.is_some_and(|pr| pr.domain_id == d)
                    || p.scope == PayloadScope::Domain(d.to_string())
            });
            eq(&e.user_id, Some(&p.user_id))
                && eq(&e.project_id, project.map(|pr| pr.id.as_str()))
                && domain_ok
                && e.role_id.as_deref().is_none_or(|r| roles.iter().any(|x| x == r))
                && eq(&e.audit_id, audit.as_deref())
                && eq(&e.audit_chain_id, chain.as_deref())
                && eq(&e.application_credential_id, p.app_cred_id.as_deref())
                && eq(
                    &e.trust_id,
                    match &p.scope {
                        PayloadScope::Trust { trust_id, .. } => Some(trust_id.as_str()),
                        _ => None,
                    },
                )
        };
        m.revocation_events.values().any(|e| matches(e))
    }

    /// Revokes one token (and the tokens rescoped from it share its chain only if asked).
    pub async fn revoke_token(&self, vt: &ValidToken) -> Result<()> {
        let audit_id = vt.ctx.audit_ids.first().cloned();
        self.write(|t| {
            t.revoke(RevocationEvent { audit_id, ..Default::default() });
            Ok(())
        })
        .await
    }
}
