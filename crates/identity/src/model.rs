//! The identity resources as stored, and the in-memory model that holds all of them.
//!
//! Identity data is small (thousands of rows, not millions) and read on every request, so the
//! whole of it lives in memory as an immutable [`Model`] snapshot, kept by
//! [`haneul_core::docstore`]: writes build the next snapshot and persist their changes in one
//! database transaction before it is published. Each resource kind is its own table of JSON
//! documents (`id`, `uniq`, `data`); `uniq` holds the key the database must keep unique (a
//! user's name within its domain, ...).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub type Extra = Map<String, Value>;

pub use haneul_core::docstore::{Record, Table};

macro_rules! record {
    ($ty:ty, $table:literal, $field:ident) => {
        impl Record for $ty {
            type Model = Model;
            const TABLE: &'static str = $table;
            fn id(&self) -> &str {
                &self.id
            }
            fn table(model: &Model) -> &Table<Self> {
                &model.$field
            }
            fn table_mut(model: &mut Model) -> &mut Table<Self> {
                &mut model.$field
            }
        }
    };
    ($ty:ty, $table:literal, $field:ident, indexes: $with:ident) => {
        impl Record for $ty {
            type Model = Model;
            const TABLE: &'static str = $table;
            fn id(&self) -> &str {
                &self.id
            }
            fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
                Self::$with(self, f)
            }
            fn table(model: &Model) -> &Table<Self> {
                &model.$field
            }
            fn table_mut(model: &mut Model) -> &mut Table<Self> {
                &mut model.$field
            }
        }
    };
    ($ty:ty, $table:literal, $field:ident, |$s:ident| $uniq:expr $(, indexes: $with:ident)?) => {
        impl Record for $ty {
            type Model = Model;
            const TABLE: &'static str = $table;
            fn id(&self) -> &str {
                &self.id
            }
            fn unique_key(&self) -> Option<String> {
                let $s = self;
                $uniq
            }
            $(fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
                Self::$with(self, f)
            })?
            fn table(model: &Model) -> &Table<Self> {
                &model.$field
            }
            fn table_mut(model: &mut Model) -> &mut Table<Self> {
                &mut model.$field
            }
        }
    };
}

/// Every table, in the order they are created and loaded.
/// Every table of this service, for the check that services sharing a database name none alike.
pub const TABLES: &[&str] = <Model as haneul_core::docstore::Snapshot>::TABLES;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Domain {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub options: Extra,
    #[serde(default)]
    pub extra: Extra,
}
record!(Domain, "domains", domains, |d| Some(d.name.to_lowercase()));

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    /// The parent project, or `None` for a top-level project (whose API `parent_id` is its domain).
    pub parent_id: Option<String>,
    #[serde(default)]
    pub description: String,
    pub enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub options: Extra,
    #[serde(default)]
    pub extra: Extra,
}
record!(Project, "projects", projects, |p| Some(Project::unique(&p.domain_id, &p.name)), indexes: index_keys);

impl Project {
    /// The unique key of a project name in a domain (names are unique whatever their case).
    pub fn unique(domain_id: &str, name: &str) -> String {
        format!("{domain_id}/{}", name.to_lowercase())
    }

    /// Projects by parent (the children of a project read only them).
    fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
        if let Some(p) = &self.parent_id {
            f("parent_id", p);
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub enabled: bool,
    #[serde(default)]
    pub default_project_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// bcrypt hash; `None` for a user without a password.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub password_expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub password_created_at: Option<DateTime<Utc>>,
    /// Earlier password hashes, newest first, kept for `unique_last_password_count`.
    #[serde(default)]
    pub password_history: Vec<String>,
    /// Consecutive failed password authentications (counted only when lockout is on).
    #[serde(default)]
    pub failed_auth_count: u32,
    #[serde(default)]
    pub failed_auth_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub options: Extra,
    /// Other attributes the client set (e.g. `email`), returned as given.
    #[serde(default)]
    pub extra: Extra,
    pub created_at: DateTime<Utc>,
}
record!(User, "users", users, |u| Some(format!("{}/{}", u.domain_id, u.name)), indexes: index_keys);

impl User {
    /// Users by name (a list filtered on `name` reads only them).
    fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
        f("name", &self.name);
    }
}

impl User {
    /// A new user with the given password hash (or none) and no history.
    pub fn new(id: String, name: String, domain_id: String, password_hash: Option<String>) -> User {
        User {
            id,
            name,
            domain_id,
            enabled: true,
            default_project_id: None,
            description: None,
            password_created_at: password_hash.as_ref().map(|_| Utc::now()),
            password_hash,
            password_expires_at: None,
            password_history: Vec::new(),
            failed_auth_count: 0,
            failed_auth_at: None,
            options: Default::default(),
            extra: Default::default(),
            created_at: Utc::now(),
        }
    }

    pub fn option_set(&self, name: &str) -> bool {
        self.options.get(name).and_then(serde_json::Value::as_bool) == Some(true)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub extra: Extra,
}
record!(Group, "groups", groups, |g| Some(format!("{}/{}", g.domain_id, g.name)));

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Membership {
    /// `group_id/user_id`
    pub id: String,
    pub group_id: String,
    pub user_id: String,
}
record!(Membership, "memberships", memberships, indexes: index_keys);

impl Membership {
    /// Memberships are indexed by user.
    fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
        f("user_id", &self.user_id);
    }
}

impl Membership {
    pub fn new(group_id: &str, user_id: &str) -> Self {
        Membership { id: format!("{group_id}/{user_id}"), group_id: group_id.into(), user_id: user_id.into() }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Role {
    pub id: String,
    pub name: String,
    /// Domain-specific roles belong to a domain; global roles have none.
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub options: Extra,
    #[serde(default)]
    pub extra: Extra,
}
record!(Role, "roles", roles, |r| Some(format!("{}/{}", r.domain_id.as_deref().unwrap_or("<<null>>"), r.name)));

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImpliedRole {
    /// `prior/implied`
    pub id: String,
    pub prior_role_id: String,
    pub implied_role_id: String,
}
record!(ImpliedRole, "implied_roles", implied_roles);

impl ImpliedRole {
    pub fn new(prior: &str, implied: &str) -> Self {
        ImpliedRole { id: format!("{prior}/{implied}"), prior_role_id: prior.into(), implied_role_id: implied.into() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    User,
    Group,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Project,
    Domain,
    /// The whole deployment (`system: {all: true}`); the target id is `all`.
    System,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Assignment {
    /// `actor_kind/actor_id/target_kind/target_id/role_id/inherited`
    pub id: String,
    pub actor_kind: ActorKind,
    pub actor_id: String,
    pub target_kind: TargetKind,
    pub target_id: String,
    pub role_id: String,
    /// Inherited assignments apply to the projects below the target, not to the target itself.
    pub inherited: bool,
}
record!(Assignment, "assignments", assignments, indexes: index_keys);

impl Assignment {
    /// Assignments are indexed by actor (`user/<id>`, `group/<id>`) and by target
    /// ([`target_key`]).
    fn index_keys(&self, f: &mut dyn FnMut(&'static str, &str)) {
        f("actor", &actor_key(&self.actor_kind, &self.actor_id));
        f("target", &target_key(&self.target_kind, &self.target_id));
    }
}

/// The key of a target in the assignments' `target` index.
pub fn target_key(kind: &TargetKind, id: &str) -> String {
    match kind {
        TargetKind::Project => format!("project/{id}"),
        TargetKind::Domain => format!("domain/{id}"),
        TargetKind::System => format!("system/{id}"),
    }
}

/// The key of an actor in the assignments' `actor` index.
pub fn actor_key(kind: &ActorKind, id: &str) -> String {
    match kind {
        ActorKind::User => format!("user/{id}"),
        ActorKind::Group => format!("group/{id}"),
    }
}

impl Assignment {
    pub fn new(
        actor_kind: ActorKind,
        actor_id: &str,
        target_kind: TargetKind,
        target_id: &str,
        role_id: &str,
        inherited: bool,
    ) -> Self {
        let id = format!("{actor_kind:?}/{actor_id}/{target_kind:?}/{target_id}/{role_id}/{inherited}").to_lowercase();
        Assignment {
            id,
            actor_kind,
            actor_id: actor_id.into(),
            target_kind,
            target_id: target_id.into(),
            role_id: role_id.into(),
            inherited,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credential {
    pub id: String,
    pub user_id: String,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub blob: String,
    #[serde(default)]
    pub extra: Extra,
}
record!(Credential, "credentials", credentials);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Region {
    pub id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parent_region_id: Option<String>,
    #[serde(default)]
    pub extra: Extra,
}
record!(Region, "regions", regions);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub enabled: bool,
    #[serde(default)]
    pub extra: Extra,
}
record!(Service, "services", services);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub service_id: String,
    pub interface: String,
    #[serde(default)]
    pub region_id: Option<String>,
    pub url: String,
    pub enabled: bool,
    #[serde(default)]
    pub extra: Extra,
}
record!(Endpoint, "endpoints", endpoints);

/// A stored resource whose body is kept as the client gave it (after validation): endpoint
/// groups, federation registries, domain configurations, policies, limits and the like.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    #[serde(default)]
    pub uniq: Option<String>,
    pub body: Extra,
}

/// A record kind stored as a [`Document`].
pub trait DocRecord: Record<Model = Model> {
    fn doc(&self) -> &Document;
    fn from_doc(d: Document) -> Self;
}

/// Typed wrappers so each document kind has its own table.
macro_rules! document {
    ($name:ident, $table:literal, $field:ident) => {
        #[derive(Clone, Debug, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Document);
        impl DocRecord for $name {
            fn doc(&self) -> &Document {
                &self.0
            }
            fn from_doc(d: Document) -> Self {
                $name(d)
            }
        }
        impl Record for $name {
            type Model = Model;
            const TABLE: &'static str = $table;
            fn id(&self) -> &str {
                &self.0.id
            }
            fn unique_key(&self) -> Option<String> {
                self.0.uniq.clone()
            }
            fn table(model: &Model) -> &Table<Self> {
                &model.$field
            }
            fn table_mut(model: &mut Model) -> &mut Table<Self> {
                &mut model.$field
            }
        }
    };
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApplicationCredential {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub user_id: String,
    pub project_id: String,
    pub secret_hash: String,
    /// As the client wrote it (clients compare the echo with what they sent).
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Delegated role ids.
    pub roles: Vec<String>,
    pub unrestricted: bool,
    #[serde(default)]
    pub access_rules: Vec<String>,
}
record!(ApplicationCredential, "application_credentials", application_credentials, |a| Some(format!(
    "{}/{}",
    a.user_id, a.name
)));

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AccessRule {
    pub id: String,
    pub user_id: String,
    pub service: String,
    pub path: String,
    pub method: String,
}
record!(AccessRule, "access_rules", access_rules);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trust {
    pub id: String,
    pub trustor_user_id: String,
    pub trustee_user_id: String,
    #[serde(default)]
    pub project_id: Option<String>,
    pub impersonation: bool,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub remaining_uses: Option<i64>,
    /// Delegated role ids.
    pub roles: Vec<String>,
    #[serde(default)]
    pub allow_redelegation: bool,
    #[serde(default)]
    pub redelegation_count: Option<i64>,
    #[serde(default)]
    pub redelegated_trust_id: Option<String>,
}
record!(Trust, "trusts", trusts);
document!(EndpointGroup, "endpoint_groups", endpoint_groups);
document!(ProjectEndpoint, "project_endpoints", project_endpoints);
document!(RegisteredLimit, "registered_limits", registered_limits);
document!(Limit, "limits", limits);
document!(DomainConfig, "domain_configs", domain_configs);
document!(IdentityProvider, "identity_providers", identity_providers);
document!(Mapping, "mappings", mappings);
document!(FederationProtocol, "federation_protocols", federation_protocols);
document!(ServiceProvider, "service_providers", service_providers);
document!(PolicyBlob, "policies", policies);
document!(Consumer, "consumers", consumers);

/// A revocation event: tokens matching every set field and issued at or before
/// `issued_before` are invalid.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RevocationEvent {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_chain_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_credential_id: Option<String>,
    pub issued_before: DateTime<Utc>,
    pub revoked_at: DateTime<Utc>,
}
record!(RevocationEvent, "revocation_events", revocation_events);

/// Everything the identity service knows, as one consistent snapshot.
#[derive(Clone, Default)]
pub struct Model {
    /// Bumped by every published change; caches derived from a model key on it.
    pub generation: u64,
    pub domains: Table<Domain>,
    pub projects: Table<Project>,
    pub users: Table<User>,
    pub groups: Table<Group>,
    pub memberships: Table<Membership>,
    pub roles: Table<Role>,
    pub implied_roles: Table<ImpliedRole>,
    pub assignments: Table<Assignment>,
    pub credentials: Table<Credential>,
    pub application_credentials: Table<ApplicationCredential>,
    pub access_rules: Table<AccessRule>,
    pub trusts: Table<Trust>,
    pub regions: Table<Region>,
    pub services: Table<Service>,
    pub endpoints: Table<Endpoint>,
    pub endpoint_groups: Table<EndpointGroup>,
    pub project_endpoints: Table<ProjectEndpoint>,
    pub registered_limits: Table<RegisteredLimit>,
    pub limits: Table<Limit>,
    pub domain_configs: Table<DomainConfig>,
    pub identity_providers: Table<IdentityProvider>,
    pub mappings: Table<Mapping>,
    pub federation_protocols: Table<FederationProtocol>,
    pub service_providers: Table<ServiceProvider>,
    pub policies: Table<PolicyBlob>,
    pub consumers: Table<Consumer>,
    pub revocation_events: Table<RevocationEvent>,
}

haneul_core::snapshot!(
    Model;
    Domain,
    Project,
    User,
    Group,
    Membership,
    Role,
    ImpliedRole,
    Assignment,
    Credential,
    ApplicationCredential,
    AccessRule,
    Trust,
    Region,
    Service,
    Endpoint,
    EndpointGroup,
    ProjectEndpoint,
    RegisteredLimit,
    Limit,
    DomainConfig,
    IdentityProvider,
    Mapping,
    FederationProtocol,
    ServiceProvider,
    PolicyBlob,
    Consumer,
    RevocationEvent,
);

impl Model {
    pub fn domain_by_name(&self, name: &str) -> Option<&Arc<Domain>> {
        self.domains.values().find(|d| d.name.eq_ignore_ascii_case(name))
    }

    pub fn role_by_name(&self, name: &str) -> Option<&Arc<Role>> {
        self.roles.values().find(|r| r.domain_id.is_none() && r.name == name)
    }

    /// The chain of parents of a project, nearest first.
    pub fn project_parents(&self, project: &Project) -> Vec<Arc<Project>> {
        let mut out = Vec::new();
        let mut next = project.parent_id.clone();
        while let Some(pid) = next {
            match self.projects.get(&pid) {
                Some(p) if !out.iter().any(|q: &Arc<Project>| q.id == p.id) => {
                    next = p.parent_id.clone();
                    out.push(p.clone());
                }
                _ => break,
            }
        }
        out
    }

    /// Every project below `project_id`, in no particular order.
    pub fn project_subtree(&self, project_id: &str) -> Vec<Arc<Project>> {
        let mut out: Vec<Arc<Project>> = Vec::new();
        let mut frontier = vec![project_id.to_string()];
        while let Some(id) = frontier.pop() {
            for p in self.projects.ids_by("parent_id", &id).filter_map(|c| self.projects.get(c)) {
                if !out.iter().any(|q| q.id == p.id) {
                    frontier.push(p.id.clone());
                    out.push(p.clone());
                }
            }
        }
        out
    }

    /// The groups a user belongs to.
    pub fn user_groups(&self, user_id: &str) -> Vec<&str> {
        self.memberships.by("user_id", user_id).map(|m| m.group_id.as_str()).collect()
    }

    /// `role_ids` and every role they imply, transitively, without duplicates.
    pub fn expand_implied(&self, role_ids: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut stack: Vec<String> = role_ids.into_iter().collect();
        while let Some(r) = stack.pop() {
            if out.contains(&r) {
                continue;
            }
            for ir in self.implied_roles.values().filter(|ir| ir.prior_role_id == r) {
                stack.push(ir.implied_role_id.clone());
            }
            out.push(r);
        }
        out
    }
}
