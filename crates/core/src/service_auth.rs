//! Service users between haneul's processes: a token for calls to another service (the
//! controller calling an agent, an agent reporting to the controller or fetching an image),
//! and a [`TokenValidator`] that asks the identity API, for a process that has no identity
//! service of its own (`haneul agent` on a compute node).
//!
//! Both talk to Keystone's public API only: `POST /v3/auth/tokens` with a password, and
//! `GET /v3/auth/tokens` with the token to check as `X-Subject-Token`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use hyper::Method;
use serde_json::{json, Value};

use crate::auth::{AuthContext, NamedRef, Scope, TokenValidator};
use crate::client::{self, ClientError};
use crate::error::ApiError;

/// Who a service acts as: a user in the `service` project, as OpenStack's service users.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Keystone's v3 URL, `http://host:5000/v3`.
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
}

/// A token of the service user, renewed before it expires, with the catalog it came with.
pub struct ServiceToken {
    creds: Credentials,
    cached: tokio::sync::Mutex<Option<Issued>>,
}

#[derive(Clone)]
struct Issued {
    token: String,
    expires_at: DateTime<Utc>,
    catalog: Arc<Value>,
}

impl ServiceToken {
    pub fn new(creds: Credentials) -> Arc<ServiceToken> {
        Arc::new(ServiceToken { creds, cached: tokio::sync::Mutex::new(None) })
    }

    pub fn auth_url(&self) -> &str {
        &self.creds.auth_url
    }

    /// A token valid for at least five more minutes.
    pub async fn token(&self) -> Result<String, ClientError> {
        Ok(self.issued().await?.token)
    }

    /// The public URL of a service of `kind` in the catalog (`compute`, `image`, ...).
    pub async fn endpoint(&self, kind: &str) -> Result<String, ClientError> {
        let issued = self.issued().await?;
        issued
            .catalog
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["type"] == kind)
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .find(|e| e["interface"] == "public")
            .and_then(|e| e["url"].as_str().map(|u| u.trim_end_matches('/').to_string()))
            .ok_or_else(|| ClientError::Url(format!("no public {kind} endpoint in the catalog")))
    }

    /// A JSON call as the service user to `path` under the catalog's public endpoint of
    /// `kind`; a 401 (the token revoked, or the keys rotated away) gets a new token and one
    /// retry.
    pub async fn call(
        &self,
        kind: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.endpoint(kind).await?);
        self.call_url(method, &url, body).await
    }

    /// [`ServiceToken::call`] to a URL not in the catalog (a host agent's own).
    pub async fn call_url(&self, method: Method, url: &str, body: Option<Value>) -> Result<Value, ClientError> {
        let mut retried = false;
        loop {
            let token = self.token().await?;
            match client::json(method.clone(), url, &[("x-auth-token", token.as_str())], body.clone()).await {
                Err(ClientError::Status { status: 401, .. }) if !retried => {
                    self.invalidate().await;
                    retried = true;
                }
                other => return other,
            }
        }
    }

    /// Forgets the token (after a 401: it was revoked, or the keys rotated away).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn issued(&self) -> Result<Issued, ClientError> {
        let mut cached = self.cached.lock().await;
        if let Some(i) = cached.as_ref() {
            if i.expires_at - Utc::now() > Duration::minutes(5) {
                return Ok(i.clone());
            }
        }
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": self.creds.username, "domain": {"id": "default"}, "password": self.creds.password}}},
            "scope": {"project": {"name": self.creds.project_name, "domain": {"id": "default"}}},
        }});
        let url = format!("{}/auth/tokens", self.creds.auth_url.trim_end_matches('/'));
        let call = client::send(Method::POST, &url, &[], Some(body.to_string().into_bytes()));
        let resp = tokio::time::timeout(std::time::Duration::from_secs(30), call)
            .await
            .map_err(|_| ClientError::Url(format!("{url} did not answer within 30 s")))??;
        let status = resp.status();
        let token = resp.headers().get("x-subject-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = http_body_util::BodyExt::collect(resp.into_body()).await?.to_bytes();
        if !status.is_success() {
            return Err(ClientError::Status {
                url,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).chars().take(300).collect(),
            });
        }
        let doc: Value = serde_json::from_slice(&bytes).map_err(|err| ClientError::Json { url: url.clone(), err })?;
        let token = token.ok_or_else(|| ClientError::Url(format!("{url} issued no X-Subject-Token")))?;
        let expires_at = doc["token"]["expires_at"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_else(|| Utc::now() + Duration::minutes(10));
        let issued = Issued { token, expires_at, catalog: Arc::new(doc["token"]["catalog"].clone()) };
        *cached = Some(issued.clone());
        Ok(issued)
    }
}

/// Validates tokens through the identity API, remembering each answer for a minute (as
/// keystonemiddleware's cache does; a revoked token may live that long here).
pub struct RemoteValidator {
    service: Arc<ServiceToken>,
    cache: Mutex<HashMap<String, (DateTime<Utc>, Arc<AuthContext>)>>,
}

const CACHE_FOR: Duration = Duration::seconds(60);

impl RemoteValidator {
    pub fn new(service: Arc<ServiceToken>) -> Arc<RemoteValidator> {
        Arc::new(RemoteValidator { service, cache: Mutex::new(HashMap::new()) })
    }

    async fn check(&self, token: &str) -> Result<Arc<AuthContext>, ApiError> {
        let now = Utc::now();
        if let Some((at, ctx)) = self.cache.lock().unwrap().get(token) {
            if now - *at < CACHE_FOR && ctx.expires_at > now {
                return Ok(ctx.clone());
            }
        }
        let url = format!("{}/auth/tokens", self.service.auth_url().trim_end_matches('/'));
        let mut retried = false;
        let doc = loop {
            let own =
                self.service.token().await.map_err(|e| ApiError::internal(format!("identity unreachable: {e}")))?;
            match client::json(Method::GET, &url, &[("x-auth-token", &own), ("x-subject-token", token)], None).await {
                Ok(doc) => break doc,
                Err(ClientError::Status { status: 401, .. }) if !retried => {
                    // Our own token may be the stale one.
                    self.service.invalidate().await;
                    retried = true;
                }
                Err(ClientError::Status { status: 401 | 404, .. }) => return Err(crate::auth::unauthenticated()),
                Err(e) => return Err(ApiError::internal(format!("validating a token with identity: {e}"))),
            }
        };
        let ctx = Arc::new(context(&doc["token"]).ok_or_else(crate::auth::unauthenticated)?);
        let mut cache = self.cache.lock().unwrap();
        cache.retain(|_, (at, _)| now - *at < CACHE_FOR);
        cache.insert(token.to_string(), (now, ctx.clone()));
        Ok(ctx)
    }
}

impl TokenValidator for RemoteValidator {
    fn validate<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<AuthContext>, ApiError>> + Send + 'a>> {
        Box::pin(self.check(token))
    }
}

/// An [`AuthContext`] from a token body as Keystone returns it.
pub fn context(t: &Value) -> Option<AuthContext> {
    let named = |v: &Value| -> Option<NamedRef> {
        Some(NamedRef { id: v["id"].as_str()?.to_string(), name: v["name"].as_str().unwrap_or_default().to_string() })
    };
    let time = |v: &Value| v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|d| d.with_timezone(&Utc));
    let scope = if t.get("project").is_some() {
        Scope::Project { project: named(&t["project"])?, domain: named(&t["project"]["domain"])? }
    } else if t.get("domain").is_some() {
        Scope::Domain(named(&t["domain"])?)
    } else if t.get("system").is_some() {
        Scope::System
    } else {
        Scope::Unscoped
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().filter_map(|s| s.as_str().map(str::to_owned)).collect()
    };
    Some(AuthContext {
        user: named(&t["user"])?,
        user_domain: named(&t["user"]["domain"])?,
        scope,
        roles: t["roles"].as_array().into_iter().flatten().filter_map(named).collect(),
        methods: strings(&t["methods"]),
        audit_ids: strings(&t["audit_ids"]),
        issued_at: time(&t["issued_at"])?,
        expires_at: time(&t["expires_at"])?,
        trust_id: t["OS-TRUST:trust"]["id"].as_str().map(str::to_owned),
        application_credential_id: t["application_credential"]["id"].as_str().map(str::to_owned),
        is_admin_project: t["is_admin_project"].as_bool().unwrap_or(false),
        creds: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_token_body_becomes_a_context_with_its_roles() {
        let body = json!({
            "user": {"id": "u1", "name": "nova", "domain": {"id": "default", "name": "Default"}},
            "project": {"id": "p1", "name": "service", "domain": {"id": "default", "name": "Default"}},
            "roles": [{"id": "r1", "name": "service"}, {"id": "r2", "name": "admin"}],
            "methods": ["password"], "audit_ids": ["a"],
            "issued_at": "2026-01-01T00:00:00.000000Z", "expires_at": "2026-01-01T01:00:00.000000Z",
        });
        let ctx = context(&body).unwrap();
        assert_eq!(ctx.project_id(), Some("p1"));
        assert!(ctx.has_role("service") && ctx.has_role("admin") && !ctx.has_role("member"));
        assert_eq!(ctx.user.name, "nova");
    }

    #[test]
    fn a_body_without_a_user_is_no_context() {
        assert!(context(&json!({"roles": []})).is_none());
    }
}
