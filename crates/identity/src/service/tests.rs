//! The rules of the service modules, each run in a real write on a fresh SQLite database.

use std::path::PathBuf;
use std::sync::Arc;

use haneul_core::docstore::State;

use super::assignments::Grant;
use super::projects::ProjectPatch;
use super::{
    assignments, domain_config, domains, groups, limits, new_id, projects, roles, trusts, users, Error, Result,
    RoleRef, Settings, Txn,
};
use crate::model::{ActorKind, Document, Domain, Group, Model, Project, Role, TargetKind, User};

/// A database of its own, removed when dropped.
struct Db {
    dir: PathBuf,
    state: State<Model>,
}

impl Drop for Db {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

impl Db {
    async fn new() -> Db {
        let dir = std::env::temp_dir().join(format!("haneul-identity-service-{}", new_id()));
        let url = format!("sqlite://{}/identity.db", dir.display());
        let state = State::open(crate::store::open(&url).await.unwrap()).await.unwrap();
        Db { dir, state }
    }

    async fn write<R>(&self, f: impl FnOnce(&mut Txn) -> Result<R>) -> Result<R> {
        self.state.write(f).await
    }

    fn model(&self) -> Arc<Model> {
        self.state.model()
    }
}

fn domain(id: &str) -> Domain {
    Domain {
        id: id.into(),
        name: id.into(),
        description: String::new(),
        enabled: true,
        tags: vec![],
        options: Default::default(),
        extra: Default::default(),
    }
}

fn project(id: &str, domain_id: &str, parent: Option<&str>) -> Project {
    Project {
        id: id.into(),
        name: id.into(),
        domain_id: domain_id.into(),
        parent_id: parent.map(Into::into),
        description: String::new(),
        enabled: true,
        tags: vec![],
        options: Default::default(),
        extra: Default::default(),
    }
}

fn role(id: &str, domain_id: Option<&str>) -> Role {
    Role {
        id: id.into(),
        name: id.into(),
        domain_id: domain_id.map(Into::into),
        description: None,
        options: Default::default(),
        extra: Default::default(),
    }
}

fn user_grant(user: &str, project: &str) -> Grant {
    Grant {
        target_kind: TargetKind::Project,
        target_id: project.into(),
        actor_kind: ActorKind::User,
        actor_id: user.into(),
        inherited: false,
    }
}

/// Domain `d` with project `p` and user `u`.
async fn seeded() -> Db {
    let db = Db::new().await;
    db.write(|t| {
        domains::create(t, domain("d"))?;
        projects::create(t, project("p", "d", None))?;
        users::create(t, User::new("u".into(), "u".into(), "d".into(), None))?;
        Ok(())
    })
    .await
    .unwrap();
    db
}

fn message<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.expect_err("the change should be refused").to_string()
}

#[tokio::test]
async fn a_project_under_a_disabled_parent_is_refused() {
    let db = seeded().await;
    let off = ProjectPatch { enabled: Some(false), ..Default::default() };
    db.write(|t| projects::update(t, "p", off)).await.unwrap();
    let r = db.write(|t| projects::create(t, project("c", "d", Some("p")))).await;
    assert_eq!(message(r), "Cannot create project, since its parent p is disabled.");
}

#[tokio::test]
async fn a_project_deeper_than_the_limit_is_refused() {
    let db = seeded().await;
    let mut parent = "p".to_string();
    for depth in 2..=projects::MAX_DEPTH {
        let id = format!("p{depth}");
        db.write(|t| projects::create(t, project(&id, "d", Some(&parent)))).await.unwrap();
        parent = id;
    }
    let r = db.write(|t| projects::create(t, project("deep", "d", Some(&parent)))).await;
    assert_eq!(message(r), format!("Max hierarchy depth reached for {parent} branch."));
}

#[tokio::test]
async fn a_project_name_is_unique_in_its_domain() {
    let db = seeded().await;
    let mut again = project("p2", "d", None);
    again.name = "p".into();
    let r = db.write(|t| projects::create(t, again)).await;
    assert!(matches!(r, Err(Error::Conflict(_))), "{r:?}");
}

#[tokio::test]
async fn a_project_with_children_is_not_deleted() {
    let db = seeded().await;
    db.write(|t| projects::create(t, project("c", "d", Some("p")))).await.unwrap();
    let r = db.write(|t| projects::delete(t, "p")).await;
    assert!(matches!(r, Err(Error::Forbidden(_))), "{r:?}");
    db.write(|t| projects::delete(t, "c")).await.unwrap();
    assert!(!db.model().projects.contains_key("c"));
}

#[tokio::test]
async fn deleting_a_project_deletes_its_assignments_and_revokes_its_tokens() {
    let db = seeded().await;
    db.write(|t| {
        roles::create(t, role("r", None))?;
        assignments::grant(t, &user_grant("u", "p"), "r")
    })
    .await
    .unwrap();
    let events = db.model().revocation_events.len();
    db.write(|t| projects::delete(t, "p")).await.unwrap();
    let m = db.model();
    assert!(m.assignments.is_empty());
    assert_eq!(m.revocation_events.len(), events + 1);
}

#[tokio::test]
async fn tags_are_added_to_the_stored_ones_up_to_the_limit() {
    let db = seeded().await;
    let tags: Vec<String> = (1..projects::MAX_TAGS).map(|n| format!("t{n}")).collect();
    db.write(|t| projects::set_tags(t, "p", tags)).await.unwrap();
    db.write(|t| projects::add_tag(t, "p", "last".into())).await.unwrap();
    // Adding a tag the project has changes nothing, even at the limit.
    db.write(|t| projects::add_tag(t, "p", "last".into())).await.unwrap();
    let r = db.write(|t| projects::add_tag(t, "p", "one-too-many".into())).await;
    assert!(matches!(r, Err(Error::Validation(_))), "{r:?}");
    assert_eq!(db.model().projects["p"].tags.len(), projects::MAX_TAGS);
    let r = db.write(|t| projects::remove_tag(t, "p", "absent")).await;
    assert_eq!(message(r), "Could not find project tag: absent.");
}

#[tokio::test]
async fn an_enabled_domain_is_not_deleted_and_a_disabled_one_takes_its_contents_along() {
    let db = seeded().await;
    let r = db.write(|t| domains::delete(t, "d")).await;
    assert!(matches!(r, Err(Error::Forbidden(_))), "{r:?}");
    let off = domains::DomainPatch { enabled: Some(false), ..Default::default() };
    db.write(|t| domains::update(t, "d", off)).await.unwrap();
    db.write(|t| domains::delete(t, "d")).await.unwrap();
    let m = db.model();
    assert!(m.domains.is_empty() && m.projects.is_empty() && m.users.is_empty());
}

#[tokio::test]
async fn a_domain_name_is_unique_whatever_its_case() {
    let db = seeded().await;
    let mut other = domain("e");
    other.name = "D".into();
    let r = db.write(|t| domains::create(t, other)).await;
    assert_eq!(message(r), "Conflict occurred attempting to store domain - Duplicate entry found with name D.");
}

#[tokio::test]
async fn a_domain_role_is_granted_only_inside_its_domain() {
    let db = seeded().await;
    db.write(|t| {
        domains::create(t, domain("e"))?;
        projects::create(t, project("q", "e", None))?;
        roles::create(t, role("dr", Some("d")))
    })
    .await
    .unwrap();
    db.write(|t| assignments::grant(t, &user_grant("u", "p"), "dr")).await.unwrap();
    let r = db.write(|t| assignments::grant(t, &user_grant("u", "q"), "dr")).await;
    assert_eq!(message(r), "The role dr belongs to domain d and cannot be granted outside it.");
    let r = db.write(|t| assignments::grant(t, &user_grant("nobody", "p"), "dr")).await;
    assert_eq!(message(r), "Could not find user: nobody.");
}

#[tokio::test]
async fn revoking_a_grant_revokes_the_users_tokens_on_the_project() {
    let db = seeded().await;
    db.write(|t| {
        roles::create(t, role("r", None))?;
        assignments::grant(t, &user_grant("u", "p"), "r")
    })
    .await
    .unwrap();
    db.write(|t| assignments::revoke(t, &user_grant("u", "p"), "r")).await.unwrap();
    let m = db.model();
    assert!(m.assignments.is_empty());
    let ev = m.revocation_events.values().next().expect("a revocation event");
    assert_eq!((ev.user_id.as_deref(), ev.project_id.as_deref()), (Some("u"), Some("p")));
    let r = db.write(|t| assignments::revoke(t, &user_grant("u", "p"), "r")).await;
    assert_eq!(message(r), "Could not find role assignment: r.");
}

#[tokio::test]
async fn implied_roles_make_no_cycle_and_removing_a_missing_one_says_so() {
    let db = seeded().await;
    db.write(|t| {
        roles::create(t, role("a", None))?;
        roles::create(t, role("b", None))?;
        roles::add_implied(t, "a", "b")
    })
    .await
    .unwrap();
    let r = db.write(|t| roles::add_implied(t, "b", "a")).await;
    assert_eq!(message(r), "Implying a from b would make a cycle of implied roles.");
    assert!(db.write(|t| roles::remove_implied(t, "a", "b")).await.unwrap());
    assert!(!db.write(|t| roles::remove_implied(t, "a", "b")).await.unwrap());
}

#[tokio::test]
async fn a_group_needs_its_domain_and_a_member_needs_to_exist() {
    let db = seeded().await;
    let g = |id: &str, d: &str| Group {
        id: id.into(),
        name: id.into(),
        domain_id: d.into(),
        description: String::new(),
        extra: Default::default(),
    };
    let r = db.write(|t| groups::create(t, g("g", "nowhere"))).await;
    assert_eq!(message(r), "Could not find domain: nowhere.");
    db.write(|t| groups::create(t, g("g", "d"))).await.unwrap();
    let r = db.write(|t| groups::add_member(t, "g", "nobody")).await;
    assert_eq!(message(r), "Could not find user: nobody.");
    db.write(|t| groups::add_member(t, "g", "u")).await.unwrap();
    db.write(|t| groups::remove_member(t, "g", "u")).await.unwrap();
    let r = db.write(|t| groups::remove_member(t, "g", "u")).await;
    assert_eq!(message(r), "Could not find membership: user u in group g.");
}

#[tokio::test]
async fn a_password_change_is_refused_when_the_password_changed_since_it_was_verified() {
    let db = seeded().await;
    let settings = Settings::from_config(&haneul_core::config::Config::default());
    let set = users::UserPatch { password_hash: Some(Some("h1".into())), ..Default::default() };
    db.write(|t| users::update(t, &settings, "u", set)).await.unwrap();
    db.write(|t| users::change_password(t, &settings, "u", "h1", "h2".into())).await.unwrap();
    let r = db.write(|t| users::change_password(t, &settings, "u", "h1", "h3".into())).await;
    assert!(matches!(r, Err(Error::Unauthorized(_))), "{r:?}");
    assert_eq!(db.model().users["u"].password_hash.as_deref(), Some("h2"));
}

#[tokio::test]
async fn a_trust_delegates_only_roles_the_trustor_holds() {
    let db = seeded().await;
    db.write(|t| {
        users::create(t, User::new("v".into(), "v".into(), "d".into(), None))?;
        roles::create(t, role("held", None))?;
        roles::create(t, role("other", None))?;
        assignments::grant(t, &user_grant("u", "p"), "held")
    })
    .await
    .unwrap();
    let trust = |role: &str| trusts::NewTrust {
        trustor_user_id: "u".into(),
        trustee_user_id: "v".into(),
        project_id: Some("p".into()),
        impersonation: false,
        expires_at: None,
        remaining_uses: None,
        roles: vec![RoleRef { id: None, name: Some(role.into()) }],
        allow_redelegation: false,
    };
    let r = db.write(|t| trusts::create(t, trust("other"))).await;
    assert_eq!(message(r), "The trustor does not hold role other on project p.");
    let made = db.write(|t| trusts::create(t, trust("held"))).await.unwrap();
    assert_eq!(made.roles, vec!["held".to_string()]);
}

#[tokio::test]
async fn domain_configuration_changes_merge_into_the_stored_one() {
    let db = seeded().await;
    let config = |v: serde_json::Value| v.as_object().cloned().unwrap();
    let first = config(serde_json::json!({"ldap": {"url": "ldap://a"}}));
    assert!(!db.write(|t| domain_config::create(t, "d", first)).await.unwrap());
    let patch = config(serde_json::json!({"ldap": {"user": "admin"}}));
    let merged = db.write(|t| domain_config::update_group(t, "d", "ldap", patch)).await.unwrap();
    assert_eq!(merged, config(serde_json::json!({"ldap": {"url": "ldap://a", "user": "admin"}})));
    let r = db.write(|t| domain_config::delete_group(t, "d", "identity")).await;
    assert_eq!(message(r), "Could not find domain config group: identity of d.");
    let r = db.write(|t| domain_config::delete_group(t, "d", "nonsense")).await;
    assert_eq!(message(r), "Invalid domain specific configuration: group nonsense is not supported");
    db.write(|t| domain_config::delete_option(t, "d", "ldap", "url")).await.unwrap();
    db.write(|t| domain_config::delete_option(t, "d", "ldap", "user")).await.unwrap();
    // The last option gone, so is the configuration.
    assert!(!db.model().domain_configs.contains_key("d"));
}

#[tokio::test]
async fn a_limit_needs_a_registered_limit_which_it_then_keeps() {
    let db = seeded().await;
    db.write(|t| {
        super::catalog::create_service(
            t,
            crate::model::Service {
                id: "s".into(),
                kind: "compute".into(),
                name: None,
                description: None,
                enabled: true,
                extra: Default::default(),
            },
        )
    })
    .await
    .unwrap();
    let doc = |v: serde_json::Value| {
        let body = v.as_object().cloned().unwrap();
        Document { id: new_id(), uniq: Some(limits::key(&body)), body }
    };
    let limit = || doc(serde_json::json!({"service_id": "s", "resource_name": "cores", "project_id": "p"}));
    let r = db.write(|t| limits::create_limits(t, vec![limit()])).await;
    assert_eq!(message(r), "No registered limit for s//cores; register one first.");
    let reg = db
        .write(|t| {
            limits::create_registered(t, vec![doc(serde_json::json!({"service_id": "s", "resource_name": "cores"}))])
        })
        .await
        .unwrap();
    db.write(|t| limits::create_limits(t, vec![limit()])).await.unwrap();
    let reg_id = reg[0].0.id.clone();
    let r = db.write(|t| limits::delete_registered(t, &reg_id)).await;
    assert!(matches!(r, Err(Error::Forbidden(_))), "{r:?}");
}
