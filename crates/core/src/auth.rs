//! The authentication context of a request and the middleware that produces it.
//!
//! A service never parses tokens itself: it installs [`auth_layer`] with a [`TokenValidator`]
//! (the identity service in-process, or a remote one through the identity API), and its
//! handlers take [`Auth`], which is a 401 when the request carried no valid token.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::error::ApiError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedRef {
    pub id: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Unscoped,
    Project { project: NamedRef, domain: NamedRef },
    Domain(NamedRef),
    System,
}

/// Who is calling, on what scope, with which roles: the result of validating a token.
#[derive(Clone, Debug)]
pub struct AuthContext {
    pub user: NamedRef,
    pub user_domain: NamedRef,
    pub scope: Scope,
    /// Effective roles on the scope, implied roles included.
    pub roles: Vec<NamedRef>,
    pub methods: Vec<String>,
    pub audit_ids: Vec<String>,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub trust_id: Option<String>,
    pub application_credential_id: Option<String>,
    /// Whether the project scope is the cloud's admin project.
    pub is_admin_project: bool,
    /// The policy credentials, built once per context (contexts are cached with their token).
    pub creds: std::sync::OnceLock<Value>,
}

impl AuthContext {
    /// A context for `user` on `scope` holding `roles` (ids and names alike), issued now, by
    /// password: what policy tools and tests ask the rules about, not a validated token.
    pub fn synthetic(user: &str, scope: Scope, roles: &[&str]) -> AuthContext {
        let named = |n: &str| NamedRef { id: n.into(), name: n.into() };
        let now = Utc::now();
        AuthContext {
            user: named(user),
            user_domain: named("default"),
            scope,
            roles: roles.iter().map(|n| named(n)).collect(),
            methods: vec!["password".into()],
            audit_ids: vec![],
            issued_at: now,
            expires_at: now,
            trust_id: None,
            application_credential_id: None,
            is_admin_project: false,
            creds: Default::default(),
        }
    }

    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|r| r.name.eq_ignore_ascii_case(name))
    }

    pub fn project_id(&self) -> Option<&str> {
        match &self.scope {
            Scope::Project { project, .. } => Some(&project.id),
            _ => None,
        }
    }

    pub fn domain_id(&self) -> Option<&str> {
        match &self.scope {
            Scope::Domain(d) => Some(&d.id),
            _ => None,
        }
    }

    pub fn is_system(&self) -> bool {
        self.scope == Scope::System
    }

    /// The credentials as oslo.policy rules see them, with the parts of the token Keystone's
    /// rules reach through `token.*`.
    pub fn policy_credentials(&self) -> &Value {
        self.creds.get_or_init(|| self.build_credentials())
    }

    fn build_credentials(&self) -> Value {
        let (project_id, project_domain_id) = match &self.scope {
            Scope::Project { project, domain } => (Some(project.id.as_str()), Some(domain.id.as_str())),
            _ => (None, None),
        };
        let token = match &self.scope {
            Scope::Project { project, domain } => {
                json!({"project": {"id": project.id, "domain": {"id": domain.id}}, "is_admin_project": self.is_admin_project})
            }
            Scope::Domain(d) => json!({"domain": {"id": d.id}}),
            _ => json!({}),
        };
        json!({
            "user_id": self.user.id,
            "user_domain_id": self.user_domain.id,
            "project_id": project_id,
            "project_domain_id": project_domain_id,
            "domain_id": self.domain_id(),
            "system_scope": if self.is_system() { Some("all") } else { None },
            "roles": self.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            "is_admin_project": self.is_admin_project,
            "trust_id": self.trust_id,
            "token": token,
        })
    }
}

/// Turns a token into an [`AuthContext`].
pub trait TokenValidator: Send + Sync + 'static {
    fn validate<'a>(
        &'a self,
        token: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<AuthContext>, ApiError>> + Send + 'a>>;
}

pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";

/// Validates `X-Auth-Token` when present and stores the context in the request; an invalid
/// token is a 401 right away, a missing one is left to the handler (some calls need none).
pub fn auth_layer(
    validator: Arc<dyn TokenValidator>,
) -> axum::middleware::FromFnLayer<
    impl Fn(Request, Next) -> Pin<Box<dyn Future<Output = Response> + Send>> + Clone,
    (),
    (Request,),
> {
    axum::middleware::from_fn(move |mut req: Request, next: Next| {
        let validator = validator.clone();
        Box::pin(async move {
            let token = req.headers().get(AUTH_TOKEN_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
            if let Some(token) = token {
                match validator.validate(&token).await {
                    Ok(ctx) => {
                        req.extensions_mut().insert(ctx);
                        req.extensions_mut().insert(RawToken(token));
                    }
                    Err(e) => return reject_unread(req, e).await,
                }
            }
            next.run(req).await
        }) as Pin<Box<dyn Future<Output = Response> + Send>>
    })
}

/// Answers `err` to a request whose body was not read. The body is drained first (up to
/// 1 MiB) so that the client's keep-alive connection stays usable; past that the connection
/// is closed, and the response says so.
async fn reject_unread(req: Request, err: ApiError) -> Response {
    const DRAIN_MAX: usize = 1 << 20;
    let drained = axum::body::to_bytes(req.into_body(), DRAIN_MAX).await.is_ok();
    let mut resp = err.into_response();
    if !drained {
        resp.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    }
    resp
}

/// The token the request was authenticated with.
#[derive(Clone, Debug)]
pub struct RawToken(pub String);

/// The caller's context; extracting it fails with a 401 when the request had no token.
pub struct Auth(pub Arc<AuthContext>);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Arc<AuthContext>>().cloned().map(Auth).ok_or_else(unauthenticated)
    }
}

/// Keystone's 401 for a request without valid credentials.
pub fn unauthenticated() -> ApiError {
    ApiError::unauthorized("The request you have made requires authentication.")
        .with_header("www-authenticate", "Keystone uri=\"\"")
}
