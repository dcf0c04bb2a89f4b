//! Routes that say what they ask.
//!
//! A service declares each of its routes together with the policy rule that guards it
//! ([`Access`]); the router is built from that declaration, so a route cannot exist without
//! one. The same declaration is the route table ([`RouteSpec`]) that `haneul policy routes`
//! prints and the RBAC matrix test walks.
//!
//! Before a handler runs, the [`Guard`] answers 401 to a caller without a token (unless the
//! route is [`Access::Public`]), 403 to a token of a scope the service does not serve (a
//! system- or domain-scoped token on a project-scoped service, as oslo.policy's
//! `enforce_scope`), and asks the route's rule:
//!
//! - [`Access::Token`]: no rule, as upstream asks none (said why where the route is declared).
//! - [`Access::Delegated`]: no rule here; the named service, called with the caller's token,
//!   decides.
//! - [`Access::Filter`]: a list that asks the rule of each item and leaves out what it denies.
//! - [`Access::Rule`]: the guard asks it, with the caller's own project, user and domain as
//!   the target. Whether the caller may touch a particular resource (its own project's, or
//!   any as admin) is the handler's visibility check, which answers 404 as Nova and Neutron do.
//! - [`Access::Actions`]: `POST .../action`: the body's first key names the action; the guard
//!   asks that action's rule, and refuses an action the route does not list.
//! - [`Access::Target`] (or [`Access::TargetAny`], one of several): the rule needs the
//!   resource (its owner, visibility, ...), so the
//!   handler asks it once it has loaded the resource. The guard records every rule asked
//!   while the handler runs ([`crate::policy`] reports each evaluation) and turns a successful
//!   answer that never asked the route's rule into a 500, logged as a bug: a handler that
//!   forgets its check fails closed for reads and fails the RBAC matrix test for all.
//!
//! Invariants: every route built by [`Routes::into_router`] has an [`Access`]; a non-public
//! route never reaches its handler without a token; an action not listed never reaches it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;
use serde_json::{json, Value};

use crate::auth::{unauthenticated, AuthContext, Scope};
use crate::error::{ApiError, FaultStyle};
use crate::policy::Policy;

/// What a route asks of its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// No token needed; the string says why (version discovery, token issue, ...).
    Public(&'static str),
    /// Any valid token, of any scope, and no rule: the service's upstream asks none here
    /// (Nova's flavor list, its image proxy). The string says why.
    Token(&'static str),
    /// Any valid token, and no rule here: the call goes on to the named service with the
    /// caller's own token, whose policy decides (Nova's image proxy).
    Delegated(&'static str),
    /// The rule, asked by the guard with the caller's own scope as the target.
    Rule(Cow<'static, str>),
    /// The rule, asked by the handler with the resource as the target; the guard checks that
    /// it was asked before a successful answer.
    Target(Cow<'static, str>),
    /// As [`Access::Target`], where the handler asks one of these by the resource (Keystone's
    /// project or domain roles, say).
    TargetAny(&'static [&'static str]),
    /// A list whose handler asks the rule of each item it could return and leaves out those
    /// it denies (Keystone's credential list): an empty list asks nothing.
    Filter(&'static str),
    /// `(body key, rule)` for each action the route serves; the guard asks the rule.
    Actions(&'static [(&'static str, &'static str)]),
}

/// `Access::Rule` of a static rule name.
pub const fn rule(name: &'static str) -> Access {
    Access::Rule(Cow::Borrowed(name))
}

/// `Access::Target` of a static rule name.
pub const fn target(name: &'static str) -> Access {
    Access::Target(Cow::Borrowed(name))
}

/// One row of a service's route table.
#[derive(Clone, Debug)]
pub struct RouteSpec {
    pub method: Method,
    pub path: String,
    pub access: Access,
}

impl RouteSpec {
    /// The table row as JSON: `{method, path, access, rules}`.
    pub fn to_json(&self) -> Value {
        let (kind, rules) = match &self.access {
            Access::Public(why) => ("public", json!([{"why": why}])),
            Access::Token(why) => ("token", json!([{"why": why}])),
            Access::Delegated(to) => ("delegated", json!([{"service": to}])),
            Access::Rule(r) => ("rule", json!([{"rule": r}])),
            Access::Target(r) => ("target", json!([{"rule": r}])),
            Access::TargetAny(rs) => ("target", rs.iter().map(|r| json!({"rule": r})).collect()),
            Access::Filter(r) => ("filter", json!([{"rule": r}])),
            Access::Actions(a) => ("actions", a.iter().map(|(k, r)| json!({"action": k, "rule": r})).collect()),
        };
        json!({"method": self.method.as_str(), "path": self.path, "access": kind, "rules": rules})
    }
}

/// How a service answers a denial, and which policy it asks.
#[derive(Clone)]
pub struct Guard {
    policy: Arc<dyn Fn() -> Arc<Policy> + Send + Sync>,
    style: FaultStyle,
    denied: fn(&str) -> ApiError,
    project_scoped: bool,
    owner_keys: &'static [&'static str],
}

impl Guard {
    /// `policy` hands out the service's current policy (defaults plus its file); `denied`
    /// makes the service's 403 for a rule.
    pub fn new(
        style: FaultStyle,
        denied: fn(&str) -> ApiError,
        policy: impl Fn() -> Arc<Policy> + Send + Sync + 'static,
    ) -> Self {
        Guard { policy: Arc::new(policy), style, denied, project_scoped: true, owner_keys: &[] }
    }

    /// For a service whose rules also serve system- and domain-scoped tokens (identity).
    pub fn any_scope(mut self) -> Self {
        self.project_scoped = false;
        self
    }

    /// Target keys that name a parent resource's project (Neutron's `network:project_id`):
    /// asked without a resource, they hold the caller's own project too.
    pub fn owner_keys(mut self, keys: &'static [&'static str]) -> Self {
        self.owner_keys = keys;
        self
    }

    fn deny(&self, rule: &str) -> Response {
        (self.denied)(rule).with_style(self.style).into_response()
    }

    /// Whether `rule` allows the caller on its own project (no resource): the guard's own
    /// question, and what a resource rule answers for the caller's own resources.
    pub fn allows(&self, ctx: &AuthContext, rule: &str) -> bool {
        let mut target = own_target(ctx);
        for key in self.owner_keys {
            target[*key] = json!(ctx.project_id());
        }
        (self.policy)().allows(rule, &target, ctx.policy_credentials())
    }

    /// What the guard decides for a caller (None: no token) on a route, before the handler;
    /// `action` is the body's key on an [`Access::Actions`] route. For [`Access::Target`]
    /// routes an allow here still leaves the rule to the handler.
    pub fn decide(&self, ctx: Option<&AuthContext>, access: &Access, action: Option<&str>) -> Decision {
        let rule = match access {
            Access::Public(_) => return Decision::Allow,
            _ if ctx.is_none() => return Decision::Unauthenticated,
            Access::Token(_) | Access::Delegated(_) => return Decision::Allow,
            Access::Rule(r) | Access::Target(r) => r.as_ref(),
            Access::TargetAny(rs) => rs.first().copied().unwrap_or_default(),
            Access::Filter(r) => r,
            Access::Actions(actions) => match actions.iter().find(|(k, _)| Some(*k) == action) {
                Some((_, r)) => r,
                None => return Decision::NoSuchAction,
            },
        };
        let ctx = ctx.expect("checked above");
        if self.project_scoped && !matches!(ctx.scope, Scope::Project { .. }) {
            return Decision::Deny(rule.to_owned());
        }
        if matches!(access, Access::Target(_) | Access::TargetAny(_) | Access::Filter(_)) || self.allows(ctx, rule) {
            Decision::Allow
        } else {
            Decision::Deny(rule.to_owned())
        }
    }

    async fn check(self, access: Arc<Access>, req: Request, next: Next) -> Response {
        let ctx = req.extensions().get::<Arc<AuthContext>>().cloned();
        let (req, action) = match &*access {
            Access::Actions(_) if ctx.is_some() => match action_key(req).await {
                Ok(v) => v,
                Err(e) => return e.with_style(self.style).into_response(),
            },
            _ => (req, None),
        };
        match self.decide(ctx.as_deref(), &access, action.as_deref()) {
            Decision::Unauthenticated => return unauthenticated().with_style(self.style).into_response(),
            Decision::Deny(rule) => return self.deny(&rule),
            Decision::NoSuchAction => {
                let name = action.unwrap_or_default();
                return ApiError::bad_request(format!("There is no such action: {name}"))
                    .with_style(self.style)
                    .into_response();
            }
            Decision::Allow => {}
        }
        let rules: Vec<&str> = match &*access {
            Access::Target(rule) => vec![rule],
            Access::TargetAny(rules) => rules.to_vec(),
            _ => return next.run(req).await,
        };
        let (resp, asked) = crate::policy::recording(next.run(req)).await;
        let ok = resp.status().is_success() || resp.status().is_redirection();
        if ok && !asked.iter().any(|a| rules.contains(&a.as_str())) {
            let rule = rules.join(" or ");
            tracing::error!(rule = %rule, asked = ?asked, "a route answered without asking its policy rule");
            return ApiError::internal(format!("The request was answered without asking its policy rule {rule}."))
                .with_style(self.style)
                .into_response();
        }
        resp
    }
}

/// The routes of `table` that name a rule `defaults` does not define, as `METHOD path rule`
/// (each service's unit test asks that there are none), or the defaults' parse error.
pub fn unknown_rules(table: &[RouteSpec], defaults: &[(&str, &str)]) -> Vec<String> {
    if let Err(e) = Policy::new(defaults) {
        return vec![format!("the default rules do not parse: {e}")];
    }
    let known = |r: &str| defaults.iter().any(|(name, _)| *name == r);
    let mut out = Vec::new();
    for route in table {
        let rules: Vec<&str> = match &route.access {
            Access::Public(_) | Access::Token(_) | Access::Delegated(_) => vec![],
            Access::Rule(r) | Access::Target(r) => vec![r],
            Access::TargetAny(rs) => rs.to_vec(),
            Access::Filter(r) => vec![r],
            Access::Actions(a) => a.iter().map(|(_, r)| *r).collect(),
        };
        out.extend(rules.into_iter().filter(|r| !known(r)).map(|r| format!("{} {} {r}", route.method, route.path)));
    }
    out
}

/// What the guard decides before a handler runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// On to the handler (which asks an [`Access::Target`] rule itself).
    Allow,
    /// 401: no token.
    Unauthenticated,
    /// 403: the rule (or the token's scope) denies.
    Deny(String),
    /// 400: an action the route does not serve.
    NoSuchAction,
}

/// The target of a rule asked without a resource: the caller's own project, user and domain.
pub fn own_target(ctx: &AuthContext) -> Value {
    let project = ctx.project_id();
    let domain = match &ctx.scope {
        Scope::Project { domain, .. } => Some(domain.id.as_str()),
        Scope::Domain(d) => Some(d.id.as_str()),
        _ => None,
    };
    json!({
        "project_id": project,
        "tenant_id": project,
        "user_id": ctx.user.id,
        "domain_id": domain,
    })
}

/// Action bodies are small; a larger one is refused before it is read in full.
const ACTION_BODY_MAX: usize = 1 << 20;

/// The first key of the request's JSON body object, and the request with its body put back.
async fn action_key(req: Request) -> Result<(Request, Option<String>), ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, ACTION_BODY_MAX)
        .await
        .map_err(|_| ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "Request is too large."))?;
    let v: Value = crate::http::parse_json(&bytes)?;
    let Value::Object(o) = v else {
        return Err(ApiError::bad_request("The request body must be a JSON object."));
    };
    let key = o.keys().next().cloned();
    Ok((Request::from_parts(parts, Body::from(bytes)), key))
}

/// A service's routes, each with its [`Access`], built into a router by [`Routes::into_router`].
pub struct Routes<S> {
    entries: Vec<(String, Method, Access, MethodRouter<S>)>,
}

impl<S> Default for Routes<S> {
    fn default() -> Self {
        Routes { entries: Vec::new() }
    }
}

macro_rules! method_fns {
    ($($name:ident => $method:ident),*) => {$(
        pub fn $name<H, T>(self, path: &str, access: Access, handler: H) -> Self
        where
            H: Handler<T, S>,
            T: 'static,
        {
            self.add(path, Method::$method, access, axum::routing::$name(handler))
        }
    )*};
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    pub fn new() -> Self {
        Self::default()
    }

    method_fns!(get => GET, post => POST, put => PUT, patch => PATCH, delete => DELETE, head => HEAD);

    fn add(mut self, path: &str, method: Method, access: Access, mr: MethodRouter<S>) -> Self {
        self.entries.push((path.to_owned(), method, access, mr));
        self
    }

    /// Adds the routes of `other`.
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.entries.extend(other.entries);
        self
    }

    /// Adds the routes of `other` under `prefix` (`"/v2.1"`).
    pub fn nest(mut self, prefix: &str, other: Routes<S>) -> Self {
        for (path, method, access, mr) in other.entries {
            let path = if path == "/" { prefix.to_owned() } else { format!("{prefix}{path}") };
            self.entries.push((path, method, access, mr));
        }
        self
    }

    /// The route table, in declaration order.
    pub fn table(&self) -> Vec<RouteSpec> {
        self.entries
            .iter()
            .map(|(path, method, access, _)| RouteSpec {
                method: method.clone(),
                path: path.clone(),
                access: access.clone(),
            })
            .collect()
    }

    /// The router: each route behind the guard, asking its own [`Access`].
    pub fn into_router(self, guard: Guard) -> Router<S> {
        let mut by_path: BTreeMap<String, MethodRouter<S>> = BTreeMap::new();
        for (path, _, access, mr) in self.entries {
            let (g, access) = (guard.clone(), Arc::new(access));
            let guarded = mr.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
                g.clone().check(access.clone(), req, next)
            }));
            let slot = by_path.entry(path).or_default();
            *slot = std::mem::take(slot).merge(guarded);
        }
        by_path.into_iter().fold(Router::new(), |router, (path, mr)| router.route(&path, mr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    const RULES: &[(&str, &str)] = &[
        ("reader", "role:reader and project_id:%(project_id)s"),
        ("member", "role:member and project_id:%(project_id)s"),
        ("admin", "role:admin"),
    ];

    fn ctx(roles: &[&str], scope: Scope) -> Arc<AuthContext> {
        Arc::new(AuthContext::synthetic("u1", scope, roles))
    }

    fn project() -> Scope {
        let r = |n: &str| crate::auth::NamedRef { id: n.into(), name: n.into() };
        Scope::Project { project: r("p1"), domain: r("default") }
    }

    async fn ok() -> &'static str {
        "ok"
    }

    async fn asks_member() -> Response {
        let p = Policy::new(RULES).unwrap();
        let _ = p.enforce("member", &json!({}), &json!({}));
        "ok".into_response()
    }

    fn app() -> Router {
        let policy = Arc::new(Policy::new(RULES).unwrap());
        let guard = Guard::new(FaultStyle::Compute, |r| ApiError::forbidden(format!("no {r}")), move || policy.clone());
        Routes::new()
            .get("/", Access::Public("version discovery"), ok)
            .get("/things", rule("reader"), ok)
            .post("/things", rule("member"), ok)
            .get("/forgets", target("member"), ok)
            .get("/asks", target("member"), asks_member)
            .post("/things/{id}/action", Access::Actions(&[("start", "member"), ("purge", "admin")]), ok)
            .into_router(guard)
    }

    async fn call(method: &str, path: &str, who: Option<Arc<AuthContext>>, body: &str) -> StatusCode {
        let mut req = Request::builder().method(method).uri(path).body(Body::from(body.to_owned())).unwrap();
        if let Some(c) = who {
            req.extensions_mut().insert(c);
        }
        app().oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn a_public_route_needs_no_token_and_the_others_answer_401_without_one() {
        assert_eq!(call("GET", "/", None, "").await, StatusCode::OK);
        assert_eq!(call("GET", "/things", None, "").await, StatusCode::UNAUTHORIZED);
        assert_eq!(call("POST", "/things/1/action", None, "{\"start\": null}").await, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_reader_may_read_but_not_write() {
        let reader = ctx(&["reader"], project());
        assert_eq!(call("GET", "/things", Some(reader.clone()), "").await, StatusCode::OK);
        assert_eq!(call("POST", "/things", Some(reader), "").await, StatusCode::FORBIDDEN);
        let member = ctx(&["member", "reader"], project());
        assert_eq!(call("POST", "/things", Some(member), "").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_system_token_is_refused_by_a_project_scoped_service() {
        let admin = ctx(&["admin", "member", "reader"], Scope::System);
        assert_eq!(call("GET", "/things", Some(admin), "").await, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn each_action_asks_its_own_rule_and_unlisted_actions_are_refused() {
        let member = ctx(&["member", "reader"], project());
        assert_eq!(call("POST", "/things/1/action", Some(member.clone()), "{\"start\": null}").await, StatusCode::OK);
        assert_eq!(
            call("POST", "/things/1/action", Some(member.clone()), "{\"purge\": {}}").await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            call("POST", "/things/1/action", Some(member.clone()), "{\"nuke\": {}}").await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(call("POST", "/things/1/action", Some(member), "not json").await, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_handler_that_never_asks_its_rule_fails_closed() {
        let member = ctx(&["member", "reader"], project());
        assert_eq!(call("GET", "/forgets", Some(member.clone()), "").await, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(call("GET", "/asks", Some(member), "").await, StatusCode::OK);
    }

    #[test]
    fn the_table_lists_every_route_with_its_access() {
        let policy = Arc::new(Policy::new(RULES).unwrap());
        let _ = Guard::new(FaultStyle::Compute, |r| ApiError::forbidden(r), move || policy.clone());
        let table = Routes::<()>::new()
            .get("/a", rule("reader"), ok)
            .nest("/v1", Routes::new().post("/b", target("member"), ok))
            .table();
        let rows: Vec<_> = table.iter().map(|r| (r.method.as_str().to_owned(), r.path.clone())).collect();
        assert_eq!(rows, [("GET".to_owned(), "/a".to_owned()), ("POST".to_owned(), "/v1/b".to_owned())]);
    }
}
