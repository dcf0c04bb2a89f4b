//! First start: the default domain, the admin and service projects, the admin user, the
//! default roles, the region and the catalog entries; then `keystonerc_admin` and
//! `clouds.yaml` for the operator. Every step is "ensure": running it again changes nothing
//! that exists, except the admin password when one is configured.

use std::path::{Path, PathBuf};

use rand::Rng;

use crate::model::{
    ActorKind, Assignment, Domain, Endpoint, ImpliedRole, Project, Region, Role, Service, TargetKind, User,
};
use crate::service::{new_id, Error, Identity, Result};

pub use haneul_core::service::CatalogEntry;

pub struct BootstrapReport {
    pub admin_password: Option<String>,
    pub keystonerc: PathBuf,
    pub clouds_yaml: PathBuf,
    pub created: bool,
}

pub const DEFAULT_DOMAIN: &str = "default";
pub const ROLES: &[&str] = &["admin", "manager", "member", "reader", "service"];
pub const IMPLIED: &[(&str, &str)] = &[("admin", "manager"), ("manager", "member"), ("member", "reader")];

fn random_password() -> String {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..24).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect()
}

/// Ensures the bootstrap resources exist and writes the credential files into `data_dir`.
///
/// A configured password is set on an existing admin only when `reset_password` is true
/// (`haneul bootstrap`), so that `serve` starts without a bcrypt round.
pub async fn bootstrap(
    ident: &Identity,
    data_dir: &Path,
    configured_password: &str,
    reset_password: bool,
    catalog: &[CatalogEntry],
) -> Result<BootstrapReport> {
    let m = ident.model();
    let admin_exists = m.users.values().any(|u| u.domain_id == DEFAULT_DOMAIN && u.name == "admin");
    let rc_path = data_dir.join("keystonerc_admin");
    let (password, new_hash) = if !configured_password.is_empty() && (!admin_exists || reset_password) {
        let p = configured_password.to_string();
        (Some(p.clone()), Some(ident.hash_password(p).await?))
    } else if !configured_password.is_empty() {
        (Some(configured_password.to_string()), None)
    } else if !admin_exists {
        let p = random_password();
        (Some(p.clone()), Some(ident.hash_password(p).await?))
    } else {
        (read_rc_password(&rc_path), None)
    };
    let region = ident.settings.region.clone();
    let catalog = catalog.to_vec();
    let created = ident
        .write(|t| {
            let mut created = false;
            if !t.m.domains.contains_key(DEFAULT_DOMAIN) {
                t.put(Domain {
                    id: DEFAULT_DOMAIN.into(),
                    name: "Default".into(),
                    description: "The default domain".into(),
                    enabled: true,
                    tags: vec![],
                    options: Default::default(),
                    extra: Default::default(),
                })?;
                created = true;
            }
            let mut role_ids = std::collections::HashMap::new();
            for name in ROLES {
                let id = match t.m.role_by_name(name) {
                    Some(r) => r.id.clone(),
                    None => {
                        let r = Role {
                            id: new_id(),
                            name: (*name).into(),
                            domain_id: None,
                            description: None,
                            options: Default::default(),
                            extra: Default::default(),
                        };
                        t.put(r)?.id.clone()
                    }
                };
                role_ids.insert(*name, id);
            }
            for (prior, implied) in IMPLIED {
                let ir = ImpliedRole::new(&role_ids[prior], &role_ids[implied]);
                if !t.m.implied_roles.contains_key(&ir.id) {
                    t.put(ir)?;
                }
            }
            let project_id = |t: &mut crate::service::Txn, name: &str, description: &str| -> Result<String> {
                if let Some(p) = t.m.projects.values().find(|p| p.domain_id == DEFAULT_DOMAIN && p.name == name) {
                    return Ok(p.id.clone());
                }
                let p = Project {
                    id: new_id(),
                    name: name.into(),
                    domain_id: DEFAULT_DOMAIN.into(),
                    parent_id: None,
                    description: description.into(),
                    enabled: true,
                    tags: vec![],
                    options: Default::default(),
                    extra: Default::default(),
                };
                Ok(t.put(p)?.id.clone())
            };
            let admin_project = project_id(t, "admin", "Bootstrap project for initializing the cloud.")?;
            project_id(t, "service", "Project of the service users.")?;
            let demo_project = project_id(t, "demo", "Demo project, as Packstack and DevStack make it.")?;
            let found = t.m.users.values().find(|u| u.domain_id == DEFAULT_DOMAIN && u.name == "admin").cloned();
            let admin_user = match found {
                Some(u) => {
                    if let Some(h) = &new_hash {
                        let mut u = (*u).clone();
                        ident.set_password(&mut u, h.clone());
                        u.enabled = true;
                        t.put(u)?;
                    }
                    u.id.clone()
                }
                None => {
                    let mut u = User::new(new_id(), "admin".into(), DEFAULT_DOMAIN.into(), new_hash.clone());
                    u.default_project_id = Some(admin_project.clone());
                    t.put(u)?.id.clone()
                }
            };
            let found =
                t.m.users.values().find(|u| u.domain_id == DEFAULT_DOMAIN && u.name == "demo").map(|u| u.id.clone());
            let demo_user = match found {
                Some(id) => id,
                None => {
                    let mut u = User::new(new_id(), "demo".into(), DEFAULT_DOMAIN.into(), new_hash.clone());
                    u.default_project_id = Some(demo_project.clone());
                    t.put(u)?.id.clone()
                }
            };
            let grants = [
                (&admin_user, TargetKind::Project, admin_project.as_str(), "admin"),
                (&admin_user, TargetKind::System, "all", "admin"),
                (&demo_user, TargetKind::Project, demo_project.as_str(), "member"),
            ];
            for (user, kind, target, role) in grants {
                let a = Assignment::new(ActorKind::User, user, kind, target, &role_ids[role], false);
                if !t.m.assignments.contains_key(&a.id) {
                    t.put(a)?;
                }
            }
            if !t.m.regions.contains_key(&region) {
                t.put(Region {
                    id: region.clone(),
                    description: String::new(),
                    parent_region_id: None,
                    extra: Default::default(),
                })?;
            }
            for entry in &catalog {
                let found = t.m.services.values().find(|s| s.kind == entry.kind).map(|s| s.id.clone());
                let service_id = match found {
                    Some(id) => id,
                    None => {
                        let s = Service {
                            id: new_id(),
                            kind: entry.kind.into(),
                            name: Some(entry.name.into()),
                            description: None,
                            enabled: true,
                            extra: Default::default(),
                        };
                        t.put(s)?.id.clone()
                    }
                };
                for (resource, default) in entry.limits {
                    let mut body = crate::model::Extra::new();
                    body.insert("service_id".into(), service_id.clone().into());
                    body.insert("region_id".into(), region.clone().into());
                    body.insert("resource_name".into(), (*resource).into());
                    let uniq = crate::service::limits::key(&body);
                    if !t.m.registered_limits.values().any(|l| l.0.uniq.as_deref() == Some(uniq.as_str())) {
                        body.insert("default_limit".into(), (*default).into());
                        body.insert("description".into(), serde_json::Value::Null);
                        t.put(crate::model::RegisteredLimit(crate::model::Document {
                            id: new_id(),
                            uniq: Some(uniq),
                            body,
                        }))?;
                    }
                }
                for interface in ["public", "internal", "admin"] {
                    let existing =
                        t.m.endpoints
                            .values()
                            .find(|e| {
                                e.service_id == service_id
                                    && e.interface == interface
                                    && e.region_id.as_deref() == Some(region.as_str())
                            })
                            .map(|e| (**e).clone());
                    match existing {
                        Some(mut e) if e.url != entry.url => {
                            e.url = entry.url.clone();
                            t.put(e)?;
                        }
                        Some(_) => {}
                        None => {
                            t.put(Endpoint {
                                id: new_id(),
                                service_id: service_id.clone(),
                                interface: interface.into(),
                                region_id: Some(region.clone()),
                                url: entry.url.clone(),
                                enabled: true,
                                extra: Default::default(),
                            })?;
                        }
                    }
                }
            }
            Ok(created)
        })
        .await?;

    let auth_url = format!("{}/v3", ident.settings.public_url);
    let clouds_path = data_dir.join("clouds.yaml");
    if let Some(pw) = &password {
        write_private(&rc_path, &keystonerc(&auth_url, "admin", "admin", pw, &ident.settings.region))?;
        write_private(
            &data_dir.join("keystonerc_demo"),
            &keystonerc(&auth_url, "demo", "demo", pw, &ident.settings.region),
        )?;
        write_private(&clouds_path, &clouds_yaml(&auth_url, pw, &ident.settings.region))?;
    }
    Ok(BootstrapReport {
        admin_password: if created { password } else { None },
        keystonerc: rc_path,
        clouds_yaml: clouds_path,
        created,
    })
}

fn read_rc_password(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.strip_prefix("export OS_PASSWORD=")).map(|v| v.trim_matches('\'').to_string())
}

fn keystonerc(auth_url: &str, user: &str, project: &str, password: &str, region: &str) -> String {
    format!(
        "unset OS_SERVICE_TOKEN\n\
         export OS_USERNAME={user}\n\
         export OS_PASSWORD='{password}'\n\
         export OS_REGION_NAME={region}\n\
         export OS_AUTH_URL={auth_url}\n\
         export PS1='[\\u@\\h \\W(keystone_{user})]\\$ '\n\
         export OS_PROJECT_NAME={project}\n\
         export OS_USER_DOMAIN_NAME=Default\n\
         export OS_PROJECT_DOMAIN_NAME=Default\n\
         export OS_IDENTITY_API_VERSION=3\n"
    )
}

fn clouds_yaml(auth_url: &str, password: &str, region: &str) -> String {
    format!(
        "clouds:\n\
         \x20 haneul:\n\
         \x20   auth:\n\
         \x20     auth_url: {auth_url}\n\
         \x20     username: demo\n\
         \x20     password: '{password}'\n\
         \x20     project_name: demo\n\
         \x20     user_domain_name: Default\n\
         \x20     project_domain_name: Default\n\
         \x20   region_name: {region}\n\
         \x20   identity_api_version: 3\n\
         \x20 haneul-admin:\n\
         \x20   auth:\n\
         \x20     auth_url: {auth_url}\n\
         \x20     username: admin\n\
         \x20     password: '{password}'\n\
         \x20     project_name: admin\n\
         \x20     user_domain_name: Default\n\
         \x20     project_domain_name: Default\n\
         \x20   region_name: {region}\n\
         \x20   identity_api_version: 3\n\
         \x20 haneul-system-admin:\n\
         \x20   auth:\n\
         \x20     auth_url: {auth_url}\n\
         \x20     username: admin\n\
         \x20     password: '{password}'\n\
         \x20     user_domain_name: Default\n\
         \x20     system_scope: all\n\
         \x20   region_name: {region}\n\
         \x20   identity_api_version: 3\n"
    )
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let res = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    res.map_err(|e| Error::Internal(format!("failed to write {}: {e}", path.display())))
}

/// The user haneul's own processes act as between each other: `name` (`nova`) in the
/// `service` project with the `service` and `admin` roles, as OpenStack's service users.
/// Its password is `configured`, else the one kept in `<data_dir>/service-password`, else a
/// new one written there on first start. The file records the password in effect, so a
/// change of the configured one is applied once, at the next start.
pub async fn ensure_service_user(ident: &Identity, data_dir: &Path, name: &str, configured: &str) -> Result<String> {
    let path = data_dir.join("service-password");
    let kept = std::fs::read_to_string(&path).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let password = match (configured.is_empty(), &kept) {
        (false, _) => configured.to_string(),
        (true, Some(k)) => k.clone(),
        (true, None) => random_password(),
    };
    let exists = ident.model().users.values().any(|u| u.domain_id == DEFAULT_DOMAIN && u.name == name);
    let new_hash = if !exists || kept.as_deref() != Some(&password) {
        Some(ident.hash_password(password.clone()).await?)
    } else {
        None
    };
    let name = name.to_string();
    ident
        .write(|t| {
            let project =
                t.m.projects
                    .values()
                    .find(|p| p.domain_id == DEFAULT_DOMAIN && p.name == "service")
                    .map(|p| p.id.clone())
                    .ok_or_else(|| Error::Internal("the service project is missing; bootstrap first".into()))?;
            let existing = t.m.users.values().find(|u| u.domain_id == DEFAULT_DOMAIN && u.name == name).cloned();
            let user = match (existing, new_hash) {
                (Some(u), None) => u.id.clone(),
                (Some(u), Some(h)) => {
                    let mut u = (*u).clone();
                    ident.set_password(&mut u, h);
                    u.enabled = true;
                    t.put(u)?.id.clone()
                }
                (None, h) => {
                    let mut u = User::new(new_id(), name.clone(), DEFAULT_DOMAIN.into(), h);
                    u.default_project_id = Some(project.clone());
                    u.description = Some("haneul's service user (controller and agents)".into());
                    for option in [
                        "ignore_password_expiry",
                        "ignore_lockout_failure_attempts",
                        "ignore_change_password_upon_first_use",
                    ] {
                        u.options.insert(option.into(), serde_json::Value::Bool(true));
                    }
                    t.put(u)?.id.clone()
                }
            };
            for role in ["service", "admin"] {
                let role_id =
                    t.m.role_by_name(role)
                        .map(|r| r.id.clone())
                        .ok_or_else(|| Error::Internal(format!("the {role} role is missing; bootstrap first")))?;
                let a = Assignment::new(ActorKind::User, &user, TargetKind::Project, &project, &role_id, false);
                if !t.m.assignments.contains_key(&a.id) {
                    t.put(a)?;
                }
            }
            Ok(())
        })
        .await?;
    if kept.as_deref() != Some(&password) {
        write_private(&path, &format!("{password}\n"))?;
    }
    Ok(password)
}
