//! `/v3/roles`, implied roles, grants (role assignments on projects, domains and the system,
//! direct and inherited) and `/v3/role_assignments`.

use std::collections::HashMap;

use axum::extract::{MatchedPath, Path, State};
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::http::Json as Body;
use haneul_core::routes::{target, Access, Routes};
use haneul_core::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    check_name, created, enforce, list_response, member, no_content, not_found, parse, self_link, text_filter,
    with_extra, ApiResult, Ctx, Params,
};
use crate::model::{ActorKind, Assignment, Extra, Model, Role, TargetKind};
use crate::service::assignments::Grant;
use crate::service::roles::RolePatch;
use crate::service::{self, effective_assignments, new_id};

pub fn routes() -> Routes<Ctx> {
    let mut r = Routes::new()
        .get("/roles", Access::TargetAny(&["identity:list_roles", "identity:list_domain_roles"]), list)
        .post("/roles", Access::TargetAny(&["identity:create_role", "identity:create_domain_role"]), create)
        .get("/roles/{id}", Access::TargetAny(&["identity:get_role", "identity:get_domain_role"]), show)
        .patch("/roles/{id}", Access::TargetAny(&["identity:update_role", "identity:update_domain_role"]), update)
        .delete("/roles/{id}", Access::TargetAny(&["identity:delete_role", "identity:delete_domain_role"]), delete)
        .get("/roles/{prior}/implies", target("identity:list_implied_roles"), list_implied)
        .put("/roles/{prior}/implies/{implied}", target("identity:create_implied_role"), put_implied)
        .get("/roles/{prior}/implies/{implied}", target("identity:get_implied_role"), get_implied)
        .head("/roles/{prior}/implies/{implied}", target("identity:check_implied_role"), check_implied)
        .delete("/roles/{prior}/implies/{implied}", target("identity:delete_implied_role"), delete_implied)
        .get("/role_inferences", target("identity:list_role_inference_rules"), role_inferences)
        .get("/role_assignments", target("identity:list_role_assignments"), role_assignments);
    // Grants: Keystone's rules for project and domain grants (inherited ones too), and the
    // system's own per actor kind.
    for (base, suffix, list, [create, check, revoke]) in GRANT_ROUTES {
        let one = format!("{base}/{{role}}{suffix}");
        r = r
            .get(&format!("{base}{suffix}"), target(list), list_grants)
            .put(&one, target(create), put_grant)
            .get(&one, target(check), check_grant)
            .head(&one, target(check), check_grant)
            .delete(&one, target(revoke), delete_grant);
    }
    r
}

const PROJECT_OR_DOMAIN: [&str; 3] = ["identity:create_grant", "identity:check_grant", "identity:revoke_grant"];
const INHERITED: &str = "/inherited_to_projects";

/// (a grant list's path, the suffix of inherited grants, the list's rule, and the
/// create/check/revoke rules of one grant)
const GRANT_ROUTES: &[(&str, &str, &str, [&str; 3])] = &[
    ("/projects/{target}/users/{actor}/roles", "", "identity:list_grants", PROJECT_OR_DOMAIN),
    ("/projects/{target}/groups/{actor}/roles", "", "identity:list_grants", PROJECT_OR_DOMAIN),
    ("/domains/{target}/users/{actor}/roles", "", "identity:list_grants", PROJECT_OR_DOMAIN),
    ("/domains/{target}/groups/{actor}/roles", "", "identity:list_grants", PROJECT_OR_DOMAIN),
    (
        "/system/users/{actor}/roles",
        "",
        "identity:list_system_grants_for_user",
        [
            "identity:create_system_grant_for_user",
            "identity:check_system_grant_for_user",
            "identity:revoke_system_grant_for_user",
        ],
    ),
    (
        "/system/groups/{actor}/roles",
        "",
        "identity:list_system_grants_for_group",
        [
            "identity:create_system_grant_for_group",
            "identity:check_system_grant_for_group",
            "identity:revoke_system_grant_for_group",
        ],
    ),
    ("/OS-INHERIT/domains/{target}/users/{actor}/roles", INHERITED, "identity:list_grants", PROJECT_OR_DOMAIN),
    ("/OS-INHERIT/domains/{target}/groups/{actor}/roles", INHERITED, "identity:list_grants", PROJECT_OR_DOMAIN),
    ("/OS-INHERIT/projects/{target}/users/{actor}/roles", INHERITED, "identity:list_grants", PROJECT_OR_DOMAIN),
    ("/OS-INHERIT/projects/{target}/groups/{actor}/roles", INHERITED, "identity:list_grants", PROJECT_OR_DOMAIN),
];

pub fn render(ident: &Ctx, r: &Role) -> Value {
    let mut v = json!({"id": r.id, "name": r.name, "domain_id": r.domain_id, "options": r.options, "links": self_link(ident, &format!("roles/{}", r.id))});
    if let Some(d) = &r.description {
        v["description"] = json!(d);
    }
    with_extra(v, &r.extra)
}

fn brief(ident: &Ctx, r: &Role) -> Value {
    json!({"id": r.id, "name": r.name, "links": self_link(ident, &format!("roles/{}", r.id))})
}

fn role_target(r: &Role) -> Value {
    json!({"target": {"role": {"id": r.id, "name": r.name, "domain_id": r.domain_id}}})
}

/// Domain-specific roles have their own rule names.
fn rule(r_domain: Option<&str>, action: &str) -> String {
    match r_domain {
        Some(_) => format!("identity:{action}_domain_role"),
        None => format!("identity:{action}_role"),
    }
}

#[derive(Deserialize)]
struct RoleBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    domain_id: Option<Option<String>>,
    #[serde(default)]
    description: Option<Option<String>>,
    #[serde(default)]
    options: Option<Extra>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(flatten)]
    extra: Extra,
}

async fn list(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    let domain = params.get("domain_id").cloned();
    let rule_name = if domain.is_some() { "identity:list_domain_roles" } else { "identity:list_roles" };
    enforce(&ident, &auth.0, rule_name, &json!({"target": {"domain_id": domain}}))?;
    let m = ident.model();
    let items = m
        .roles
        .values()
        .filter(|r| r.domain_id == domain)
        .filter(|r| text_filter(&params, "name", &r.name))
        .map(|r| render(&ident, r))
        .collect();
    Ok(list_response(&ident, "roles", items, "roles"))
}

async fn show(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    let m = ident.model();
    let r = m.roles.get(&id);
    let (rn, t) = match r {
        Some(r) => (rule(r.domain_id.as_deref(), "get"), role_target(r)),
        None => ("identity:get_role".into(), json!({"target": {"role": {"id": id}}})),
    };
    enforce(&ident, &auth.0, &rn, &t)?;
    let r = r.ok_or_else(|| not_found("role", &id))?;
    Ok(Json(json!({"role": render(&ident, r)})).into_response())
}

async fn create(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    let b: RoleBody = parse("role", member(body, "role")?)?;
    if b.id.is_some() {
        return Err(ApiError::bad_request("Invalid input for field 'id': a role's id cannot be chosen."));
    }
    let name = b.name.ok_or_else(|| ApiError::bad_request("'name' is a required property"))?;
    check_name("name", &name, 255)?;
    let domain_id = b.domain_id.flatten();
    enforce(
        &ident,
        &auth.0,
        &rule(domain_id.as_deref(), "create"),
        &json!({"target": {"role": {"name": name, "domain_id": domain_id}}}),
    )?;
    let role = Role {
        id: new_id(),
        name,
        domain_id,
        description: b.description.flatten(),
        options: b.options.unwrap_or_default(),
        extra: b.extra,
    };
    let saved = ident.write(|t| service::roles::create(t, role)).await?;
    Ok(created(json!({"role": render(&ident, &saved)})))
}

async fn update(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>) -> ApiResult {
    let b: RoleBody = parse("role", member(body, "role")?)?;
    {
        let m = ident.model();
        let r = m.roles.get(&id).ok_or_else(|| not_found("role", &id))?;
        enforce(&ident, &auth.0, &rule(r.domain_id.as_deref(), "update"), &role_target(r))?;
        if b.domain_id.as_ref().is_some_and(|d| d != &r.domain_id) {
            return Err(ApiError::bad_request("Cannot change the domain_id of a role."));
        }
    }
    if let Some(n) = &b.name {
        check_name("name", n, 255)?;
    }
    let patch = RolePatch { name: b.name, description: b.description, options: b.options, extra: b.extra };
    let saved = ident.write(|t| service::roles::update(t, &id, patch)).await?;
    Ok(Json(json!({"role": render(&ident, &saved)})).into_response())
}

async fn delete(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    {
        let m = ident.model();
        let r = m.roles.get(&id).ok_or_else(|| not_found("role", &id))?;
        enforce(&ident, &auth.0, &rule(r.domain_id.as_deref(), "delete"), &role_target(r))?;
    }
    ident.write(|t| service::roles::delete(t, &id)).await?;
    Ok(no_content())
}

// ------------------------------------------------------------------------------ implied roles

fn inference(ident: &Ctx, m: &Model, prior: &str, implied: &str) -> ApiResult<Value> {
    let p = m.roles.get(prior).ok_or_else(|| not_found("role", prior))?;
    let i = m.roles.get(implied).ok_or_else(|| not_found("role", implied))?;
    Ok(json!({
        "role_inference": {"prior_role": brief(ident, p), "implies": brief(ident, i)},
        "links": self_link(ident, &format!("roles/{prior}/implies/{implied}")),
    }))
}

async fn put_implied(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((prior, implied)): Path<(String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_implied_role", &json!({}))?;
    ident.write(|t| service::roles::add_implied(t, &prior, &implied)).await?;
    let m = ident.model();
    Ok(created(inference(&ident, &m, &prior, &implied)?))
}

fn find_inference(m: &Model, prior: &str, implied: &str) -> ApiResult<()> {
    m.roles.get(prior).ok_or_else(|| not_found("role", prior))?;
    m.roles.get(implied).ok_or_else(|| not_found("role", implied))?;
    if m.implied_roles.contains_key(&format!("{prior}/{implied}")) {
        Ok(())
    } else {
        Err(not_implied(prior, implied))
    }
}

fn not_implied(prior: &str, implied: &str) -> ApiError {
    ApiError::not_found(format!("{prior} does not imply {implied}."))
}

async fn get_implied(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((prior, implied)): Path<(String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_implied_role", &json!({}))?;
    let m = ident.model();
    find_inference(&m, &prior, &implied)?;
    Ok(Json(inference(&ident, &m, &prior, &implied)?).into_response())
}

async fn check_implied(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((prior, implied)): Path<(String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:check_implied_role", &json!({}))?;
    find_inference(&ident.model(), &prior, &implied)?;
    Ok(no_content())
}

async fn delete_implied(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((prior, implied)): Path<(String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_implied_role", &json!({}))?;
    if !ident.write(|t| service::roles::remove_implied(t, &prior, &implied)).await? {
        return Err(not_implied(&prior, &implied));
    }
    Ok(no_content())
}

fn implies_of(ident: &Ctx, m: &Model, prior: &Role) -> Value {
    let implies: Vec<Value> = m
        .implied_roles
        .values()
        .filter(|ir| ir.prior_role_id == prior.id)
        .filter_map(|ir| m.roles.get(&ir.implied_role_id))
        .map(|r| brief(ident, r))
        .collect();
    json!({"prior_role": brief(ident, prior), "implies": implies})
}

async fn list_implied(State(ident): State<Ctx>, auth: Auth, Path(prior): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_implied_roles", &json!({}))?;
    let m = ident.model();
    let p = m.roles.get(&prior).ok_or_else(|| not_found("role", &prior))?;
    Ok(Json(json!({"role_inference": implies_of(&ident, &m, p), "links": self_link(&ident, &format!("roles/{prior}/implies"))})).into_response())
}

async fn role_inferences(State(ident): State<Ctx>, auth: Auth) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_role_inference_rules", &json!({}))?;
    let m = ident.model();
    let mut priors: Vec<&String> = m.implied_roles.values().map(|ir| &ir.prior_role_id).collect();
    priors.sort();
    priors.dedup();
    let items: Vec<Value> =
        priors.into_iter().filter_map(|p| m.roles.get(p)).map(|p| implies_of(&ident, &m, p)).collect();
    Ok(Json(json!({"role_inferences": items, "links": self_link(&ident, "role_inferences")})).into_response())
}

// ------------------------------------------------------------------------------------- grants

/// Which grant a URL names.
fn grant_path(matched: &MatchedPath, p: &HashMap<String, String>) -> Grant {
    let tpl = matched.as_str();
    let target_kind = if tpl.contains("/system/") {
        TargetKind::System
    } else if tpl.contains("/projects/") {
        TargetKind::Project
    } else {
        TargetKind::Domain
    };
    Grant {
        target_id: if target_kind == TargetKind::System {
            "all".into()
        } else {
            p.get("target").cloned().unwrap_or_default()
        },
        target_kind,
        actor_kind: if tpl.contains("/groups/") { ActorKind::Group } else { ActorKind::User },
        actor_id: p.get("actor").cloned().unwrap_or_default(),
        inherited: tpl.contains("OS-INHERIT"),
    }
}

/// Checks the policy for a grant call.
fn authorize_grant(ident: &Ctx, auth: &Auth, g: &Grant, role_id: Option<&str>, action: &str) -> ApiResult<()> {
    let m = ident.model();
    let actor_name = match g.actor_kind {
        ActorKind::User => "user",
        ActorKind::Group => "group",
    };
    let actor_domain = match g.actor_kind {
        ActorKind::User => m.users.get(&g.actor_id).map(|u| u.domain_id.clone()),
        ActorKind::Group => m.groups.get(&g.actor_id).map(|x| x.domain_id.clone()),
    };
    let role = role_id.and_then(|r| m.roles.get(r));
    let mut target = json!({
        actor_name: {"id": g.actor_id, "domain_id": actor_domain},
        "role": {"id": role_id, "name": role.map(|r| r.name.clone()), "domain_id": role.and_then(|r| r.domain_id.clone())},
    });
    let rule = match g.target_kind {
        TargetKind::System if action == "list" => format!("identity:list_system_grants_for_{actor_name}"),
        TargetKind::System => format!("identity:{action}_system_grant_for_{actor_name}"),
        TargetKind::Project => {
            target["project"] =
                json!({"id": g.target_id, "domain_id": m.projects.get(&g.target_id).map(|p| p.domain_id.clone())});
            format!("identity:{action}_grant")
        }
        TargetKind::Domain => {
            target["domain"] = json!({"id": g.target_id});
            format!("identity:{action}_grant")
        }
    };
    let rule =
        if action == "list" && g.target_kind != TargetKind::System { "identity:list_grants".into() } else { rule };
    let rule =
        if action == "create" && g.target_kind != TargetKind::System { "identity:create_grant".into() } else { rule };
    enforce(ident, &auth.0, &rule, &json!({"target": target}))
}

async fn put_grant(
    State(ident): State<Ctx>,
    auth: Auth,
    matched: MatchedPath,
    Path(p): Path<HashMap<String, String>>,
) -> ApiResult {
    let g = grant_path(&matched, &p);
    let role = p.get("role").cloned().unwrap_or_default();
    authorize_grant(&ident, &auth, &g, Some(&role), "create")?;
    ident.write(|t| service::assignments::grant(t, &g, &role)).await?;
    Ok(no_content())
}

async fn check_grant(
    State(ident): State<Ctx>,
    auth: Auth,
    matched: MatchedPath,
    Path(p): Path<HashMap<String, String>>,
) -> ApiResult {
    let g = grant_path(&matched, &p);
    let role = p.get("role").cloned().unwrap_or_default();
    authorize_grant(&ident, &auth, &g, Some(&role), "check")?;
    let m = ident.model();
    service::assignments::check(&m, &g, Some(&role))?;
    if m.assignments.contains_key(&g.assignment(&role).id) {
        Ok(no_content())
    } else {
        Err(not_found("role assignment", &role))
    }
}

async fn delete_grant(
    State(ident): State<Ctx>,
    auth: Auth,
    matched: MatchedPath,
    Path(p): Path<HashMap<String, String>>,
) -> ApiResult {
    let g = grant_path(&matched, &p);
    let role = p.get("role").cloned().unwrap_or_default();
    authorize_grant(&ident, &auth, &g, Some(&role), "revoke")?;
    ident.write(|t| service::assignments::revoke(t, &g, &role)).await?;
    Ok(no_content())
}

async fn list_grants(
    State(ident): State<Ctx>,
    auth: Auth,
    matched: MatchedPath,
    Path(p): Path<HashMap<String, String>>,
) -> ApiResult {
    let g = grant_path(&matched, &p);
    authorize_grant(&ident, &auth, &g, None, "list")?;
    let m = ident.model();
    service::assignments::check(&m, &g, None)?;
    let items = m
        .assignments
        .values()
        .filter(|a| {
            a.actor_kind == g.actor_kind
                && a.actor_id == g.actor_id
                && a.target_kind == g.target_kind
                && a.target_id == g.target_id
                && a.inherited == g.inherited
        })
        .filter_map(|a| m.roles.get(&a.role_id))
        .map(|r| render(&ident, r))
        .collect();
    let path = matched.as_str().trim_start_matches("/v3/").to_string();
    Ok(list_response(&ident, "roles", items, &path))
}

// ---------------------------------------------------------------------------- role_assignments

fn scope_value(m: &Model, kind: &TargetKind, id: &str, inherited: bool, names: bool) -> Value {
    let mut s = match kind {
        TargetKind::Project => {
            let mut p = json!({"id": id});
            if names {
                if let Some(pr) = m.projects.get(id) {
                    p["name"] = json!(pr.name);
                    p["domain"] =
                        json!({"id": pr.domain_id, "name": m.domains.get(&pr.domain_id).map(|d| d.name.clone())});
                }
            }
            json!({"project": p})
        }
        TargetKind::Domain => {
            let mut d = json!({"id": id});
            if names {
                d["name"] = json!(m.domains.get(id).map(|d| d.name.clone()));
            }
            json!({"domain": d})
        }
        TargetKind::System => json!({"system": {"all": true}}),
    };
    if inherited {
        s["OS-INHERIT:inherited_to"] = json!("projects");
    }
    s
}

fn actor_value(m: &Model, kind: &ActorKind, id: &str, names: bool) -> (String, Value) {
    let (key, name, domain) = match kind {
        ActorKind::User => {
            ("user", m.users.get(id).map(|u| u.name.clone()), m.users.get(id).map(|u| u.domain_id.clone()))
        }
        ActorKind::Group => {
            ("group", m.groups.get(id).map(|g| g.name.clone()), m.groups.get(id).map(|g| g.domain_id.clone()))
        }
    };
    let mut v = json!({"id": id});
    if names {
        v["name"] = json!(name);
        if let Some(d) = domain {
            v["domain"] = json!({"id": d, "name": m.domains.get(&d).map(|x| x.name.clone())});
        }
    }
    (key.into(), v)
}

fn role_value(m: &Model, id: &str, names: bool) -> Value {
    let mut v = json!({"id": id});
    if names {
        if let Some(r) = m.roles.get(id) {
            v["name"] = json!(r.name);
            if let Some(d) = &r.domain_id {
                v["domain"] = json!({"id": d, "name": m.domains.get(d).map(|x| x.name.clone())});
            }
        }
    }
    v
}

fn assignment_link(ident: &Ctx, a: &Assignment) -> String {
    let actor = match a.actor_kind {
        ActorKind::User => "users",
        ActorKind::Group => "groups",
    };
    let base = &ident.settings.public_url;
    match (&a.target_kind, a.inherited) {
        (TargetKind::System, _) => format!("{base}/v3/system/{actor}/{}/roles/{}", a.actor_id, a.role_id),
        (TargetKind::Project, false) => {
            format!("{base}/v3/projects/{}/{actor}/{}/roles/{}", a.target_id, a.actor_id, a.role_id)
        }
        (TargetKind::Domain, false) => {
            format!("{base}/v3/domains/{}/{actor}/{}/roles/{}", a.target_id, a.actor_id, a.role_id)
        }
        (TargetKind::Project, true) => {
            format!(
                "{base}/v3/OS-INHERIT/projects/{}/{actor}/{}/roles/{}/inherited_to_projects",
                a.target_id, a.actor_id, a.role_id
            )
        }
        (TargetKind::Domain, true) => {
            format!(
                "{base}/v3/OS-INHERIT/domains/{}/{actor}/{}/roles/{}/inherited_to_projects",
                a.target_id, a.actor_id, a.role_id
            )
        }
    }
}

async fn role_assignments(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    let flag = |k: &str| params.get(k).is_some_and(|v| v.is_empty() || super::query_bool(v));
    let domain_filter = params.get("scope.domain.id").cloned();
    enforce(&ident, &auth.0, "identity:list_role_assignments", &json!({"target": {"domain_id": domain_filter}}))?;
    let effective = flag("effective");
    let names = flag("include_names");
    let subtree = flag("include_subtree");
    if effective && params.contains_key("group.id") {
        return Err(ApiError::bad_request("Combining effective and group filter will always result in an empty list."));
    }
    if subtree && !params.contains_key("scope.project.id") {
        return Err(ApiError::bad_request("scope.project.id must be specified if include_subtree is also specified"));
    }
    let m = ident.model();
    let mut projects: Option<Vec<String>> = params.get("scope.project.id").map(|p| vec![p.clone()]);
    if subtree {
        if let Some(p) = params.get("scope.project.id") {
            let mut all = vec![p.clone()];
            all.extend(m.project_subtree(p).iter().map(|x| x.id.clone()));
            projects = Some(all);
        }
    }
    let want_system = params.get("scope.system").is_some();
    let inherited_filter = params.get("scope.OS-INHERIT:inherited_to").is_some();
    let scope_ok = |kind: &TargetKind, id: &str, inherited: bool| -> bool {
        if let Some(ps) = &projects {
            if !(*kind == TargetKind::Project && ps.iter().any(|p| p == id)) {
                return false;
            }
        }
        if let Some(d) = &domain_filter {
            if !(*kind == TargetKind::Domain && id == d) {
                return false;
            }
        }
        if want_system && *kind != TargetKind::System {
            return false;
        }
        if inherited_filter && !inherited {
            return false;
        }
        true
    };
    let user_filter = params.get("user.id");
    let group_filter = params.get("group.id");
    let role_filter = params.get("role.id");
    let mut items: Vec<Value> = Vec::new();
    if effective {
        for e in effective_assignments(&m) {
            if !scope_ok(&e.target_kind, &e.target_id, false)
                || user_filter.is_some_and(|u| u != &e.user_id)
                || role_filter.is_some_and(|r| r != &e.role_id)
            {
                continue;
            }
            if m.roles.get(&e.role_id).is_some_and(|r| r.domain_id.is_some()) {
                continue;
            }
            let (_, user) = actor_value(&m, &ActorKind::User, &e.user_id, names);
            let mut links = json!({"assignment": assignment_link(&ident, &e.source)});
            if let Some(g) = &e.via_group {
                links["membership"] = json!(format!("{}/v3/groups/{g}/users/{}", ident.settings.public_url, e.user_id));
            }
            if let Some(p) = &e.prior_role {
                links["prior_role"] = json!(format!("{}/v3/roles/{p}", ident.settings.public_url));
            }
            items.push(json!({
                "role": role_value(&m, &e.role_id, names),
                "user": user,
                "scope": scope_value(&m, &e.target_kind, &e.target_id, false, names),
                "links": links,
            }));
        }
        let mut seen = std::collections::HashSet::new();
        items.retain(|v| seen.insert(v.to_string()));
    } else {
        // The assignments of the actor or the projects asked about, from their index; all
        // of them otherwise.
        use crate::model::{actor_key, target_key};
        let candidates: Vec<&crate::model::Assignment> = match (user_filter, group_filter, &projects) {
            (Some(u), _, _) => m.assignments.by("actor", &actor_key(&ActorKind::User, u)).collect(),
            (None, Some(g), _) => m.assignments.by("actor", &actor_key(&ActorKind::Group, g)).collect(),
            (None, None, Some(ps)) => {
                ps.iter().flat_map(|p| m.assignments.by("target", &target_key(&TargetKind::Project, p))).collect()
            }
            (None, None, None) => m.assignments.values().map(|a| &**a).collect(),
        };
        for a in candidates {
            if !scope_ok(&a.target_kind, &a.target_id, a.inherited) || role_filter.is_some_and(|r| r != &a.role_id) {
                continue;
            }
            match a.actor_kind {
                ActorKind::User if group_filter.is_some() || user_filter.is_some_and(|u| u != &a.actor_id) => continue,
                ActorKind::Group if user_filter.is_some() || group_filter.is_some_and(|g| g != &a.actor_id) => continue,
                _ => {}
            }
            let (key, actor) = actor_value(&m, &a.actor_kind, &a.actor_id, names);
            items.push(json!({
                "role": role_value(&m, &a.role_id, names),
                key: actor,
                "scope": scope_value(&m, &a.target_kind, &a.target_id, a.inherited, names),
                "links": {"assignment": assignment_link(&ident, a)},
            }));
        }
    }
    Ok(list_response(&ident, "role_assignments", items, "role_assignments"))
}
