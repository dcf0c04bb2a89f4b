//! `/v3/users` and `/v3/groups`, group membership and self-service password change.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::http::Json as Body;
use haneul_core::routes::{target, Access, Routes};
use haneul_core::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    check_name, created, enforce, list_response, member, no_content, not_found, parse, query_bool, self_link,
    text_filter, with_extra, ApiResult, Ctx, Params,
};
use crate::model::{Extra, Group, TargetKind, User};
use crate::service::groups::GroupPatch;
use crate::service::users::UserPatch;
use crate::service::{self, effective_assignments, new_id, Error};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/users", target("identity:list_users"), list)
        .post("/users", target("identity:create_user"), create)
        .get("/users/{id}", target("identity:get_user"), show)
        .patch("/users/{id}", target("identity:update_user"), update)
        .delete("/users/{id}", target("identity:delete_user"), delete)
        .post(
            "/users/{id}/password",
            Access::Public("the original password in the body authenticates"),
            change_password,
        )
        .get("/users/{id}/groups", target("identity:list_groups_for_user"), user_groups)
        .get("/users/{id}/projects", target("identity:list_user_projects"), user_projects)
        .get("/groups", target("identity:list_groups"), list_groups)
        .post("/groups", target("identity:create_group"), create_group)
        .get("/groups/{id}", target("identity:get_group"), show_group)
        .patch("/groups/{id}", target("identity:update_group"), update_group)
        .delete("/groups/{id}", target("identity:delete_group"), delete_group)
        .get("/groups/{id}/users", target("identity:list_users_in_group"), group_users)
        .put("/groups/{gid}/users/{uid}", target("identity:add_user_to_group"), add_member)
        .get("/groups/{gid}/users/{uid}", target("identity:check_user_in_group"), check_member)
        .head("/groups/{gid}/users/{uid}", target("identity:check_user_in_group"), check_member)
        .delete("/groups/{gid}/users/{uid}", target("identity:remove_user_from_group"), remove_member)
}

pub fn render(ident: &Ctx, u: &User) -> Value {
    let mut v = json!({
        "id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
        "password_expires_at": u.password_expires_at.map(super::auth::ts), "options": u.options,
        "links": self_link(ident, &format!("users/{}", u.id)),
    });
    if let Some(p) = &u.default_project_id {
        v["default_project_id"] = json!(p);
    }
    if let Some(d) = &u.description {
        v["description"] = json!(d);
    }
    with_extra(v, &u.extra)
}

fn user_target(u: &User) -> Value {
    json!({"target": {"user": {"id": u.id, "domain_id": u.domain_id}}})
}

#[derive(Deserialize)]
struct UserBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    domain_id: Option<String>,
    #[serde(default)]
    password: Option<Option<String>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    default_project_id: Option<Option<String>>,
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
    let domain_filter = params.get("domain_id").cloned().or_else(|| auth.0.domain_id().map(str::to_string));
    enforce(&ident, &auth.0, "identity:list_users", &json!({"target": {"domain_id": domain_filter}}))?;
    let m = ident.model();
    // An exact name reads the users of that name only.
    let candidates: Box<dyn Iterator<Item = &crate::model::User>> = match params.get("name") {
        Some(name) => Box::new(m.users.by("name", name)),
        None => Box::new(m.users.values().map(|u| &**u)),
    };
    let items = candidates
        .filter(|u| domain_filter.as_ref().is_none_or(|d| &u.domain_id == d))
        .filter(|u| text_filter(&params, "name", &u.name))
        .filter(|u| params.get("enabled").is_none_or(|e| u.enabled == query_bool(e)))
        .map(|u| render(&ident, u))
        .collect();
    Ok(list_response(&ident, "users", items, "users"))
}

async fn show(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    let m = ident.model();
    let u = m.users.get(&id);
    let t = u.map(|u| user_target(u)).unwrap_or_else(|| json!({"target": {"user": {"id": id}}}));
    enforce(&ident, &auth.0, "identity:get_user", &t)?;
    let u = u.ok_or_else(|| not_found("user", &id))?;
    Ok(Json(json!({"user": render(&ident, u)})).into_response())
}

async fn create(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    let b: UserBody = parse("user", member(body, "user")?)?;
    if b.id.is_some() {
        return Err(ApiError::bad_request("Invalid input for field 'id': a user's id cannot be chosen."));
    }
    let name = b.name.ok_or_else(|| ApiError::bad_request("'name' is a required property"))?;
    check_name("name", &name, 255)?;
    let domain_id =
        b.domain_id.or_else(|| auth.0.domain_id().map(str::to_string)).unwrap_or_else(|| auth.0.user_domain.id.clone());
    enforce(&ident, &auth.0, "identity:create_user", &json!({"target": {"user": {"domain_id": domain_id}}}))?;
    let password_hash = match b.password.flatten() {
        Some(pw) => Some(ident.hash_password(pw).await?),
        None => None,
    };
    let mut user = User::new(new_id(), name, domain_id, None);
    user.enabled = b.enabled.unwrap_or(true);
    user.default_project_id = b.default_project_id.flatten();
    user.description = b.description.flatten();
    user.options = b.options.unwrap_or_default();
    user.extra = b.extra;
    if let Some(h) = password_hash {
        ident.set_password(&mut user, h);
    }
    let saved = ident.write(|t| service::users::create(t, user)).await?;
    Ok(created(json!({"user": render(&ident, &saved)})))
}

async fn update(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>) -> ApiResult {
    let b: UserBody = parse("user", member(body, "user")?)?;
    {
        let m = ident.model();
        let u = m.users.get(&id).ok_or_else(|| not_found("user", &id))?;
        enforce(&ident, &auth.0, "identity:update_user", &user_target(u))?;
        if b.domain_id.as_ref().is_some_and(|d| d != &u.domain_id) {
            return Err(ApiError::bad_request("Cannot change the domain_id of a user."));
        }
        if b.id.as_ref().is_some_and(|v| v.as_str() != Some(id.as_str())) {
            return Err(ApiError::bad_request("Cannot change the id of a user."));
        }
    }
    if let Some(n) = &b.name {
        check_name("name", n, 255)?;
    }
    let new_hash = match &b.password {
        Some(Some(pw)) => Some(Some(ident.hash_password(pw.clone()).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let patch = UserPatch {
        name: b.name,
        default_project_id: b.default_project_id,
        description: b.description,
        options: b.options,
        password_hash: new_hash,
        enabled: b.enabled,
        extra: b.extra,
    };
    let saved = ident.write(|t| service::users::update(t, &ident.settings, &id, patch)).await?;
    Ok(Json(json!({"user": render(&ident, &saved)})).into_response())
}

async fn delete(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    {
        let m = ident.model();
        let u = m.users.get(&id).ok_or_else(|| not_found("user", &id))?;
        enforce(&ident, &auth.0, "identity:delete_user", &user_target(u))?;
    }
    ident.write(|t| service::users::delete(t, &id)).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
struct PasswordChange {
    password: String,
    original_password: String,
}

async fn change_password(State(ident): State<Ctx>, Path(id): Path<String>, Body(body): Body<Value>) -> ApiResult {
    let b: PasswordChange = parse("user", member(body, "user")?)?;
    let user = ident.model().users.get(&id).cloned().ok_or_else(|| not_found("user", &id))?;
    let verified = match &user.password_hash {
        Some(h) if ident.verify_password(b.original_password, h.clone()).await => h.clone(),
        _ => return Err(Error::unauthorized().into()),
    };
    if !user.enabled {
        return Err(Error::unauthorized().into());
    }
    ident.check_password_change(&user, &b.password).await?;
    let hash = ident.hash_password(b.password).await?;
    ident.write(|t| service::users::change_password(t, &ident.settings, &id, &verified, hash)).await?;
    Ok(no_content())
}

async fn user_groups(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    let m = ident.model();
    let u = m.users.get(&id);
    let mut t = u.map(|u| user_target(u)).unwrap_or_else(|| json!({"target": {"user": {"id": id}}}));
    t["user_id"] = json!(id);
    enforce(&ident, &auth.0, "identity:list_groups_for_user", &t)?;
    u.ok_or_else(|| not_found("user", &id))?;
    let items = m.user_groups(&id).iter().filter_map(|g| m.groups.get(*g)).map(|g| render_group(&ident, g)).collect();
    Ok(list_response(&ident, "groups", items, &format!("users/{id}/groups")))
}

async fn user_projects(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    let m = ident.model();
    let u = m.users.get(&id);
    let t = u.map(|u| user_target(u)).unwrap_or_else(|| json!({"target": {"user": {"id": id}}}));
    enforce(&ident, &auth.0, "identity:list_user_projects", &t)?;
    u.ok_or_else(|| not_found("user", &id))?;
    let mut ids: Vec<String> = effective_assignments(&m)
        .into_iter()
        .filter(|e| e.user_id == id && e.target_kind == TargetKind::Project)
        .map(|e| e.target_id)
        .collect();
    ids.sort();
    ids.dedup();
    let items = ids.iter().filter_map(|p| m.projects.get(p)).map(|p| super::projects::render(&ident, p)).collect();
    Ok(list_response(&ident, "projects", items, &format!("users/{id}/projects")))
}

// ------------------------------------------------------------------------------------ groups

pub fn render_group(ident: &Ctx, g: &Group) -> Value {
    with_extra(
        json!({"id": g.id, "name": g.name, "domain_id": g.domain_id, "description": g.description, "links": self_link(ident, &format!("groups/{}", g.id))}),
        &g.extra,
    )
}

fn group_target(g: &Group) -> Value {
    json!({"target": {"group": {"id": g.id, "domain_id": g.domain_id}}})
}

#[derive(Deserialize)]
struct GroupBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    domain_id: Option<String>,
    #[serde(default)]
    description: Option<Option<String>>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(flatten)]
    extra: Extra,
}

async fn list_groups(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    let domain_filter = params.get("domain_id").cloned().or_else(|| auth.0.domain_id().map(str::to_string));
    enforce(&ident, &auth.0, "identity:list_groups", &json!({"target": {"group": {"domain_id": domain_filter}}}))?;
    let m = ident.model();
    let items = m
        .groups
        .values()
        .filter(|g| domain_filter.as_ref().is_none_or(|d| &g.domain_id == d))
        .filter(|g| text_filter(&params, "name", &g.name))
        .map(|g| render_group(&ident, g))
        .collect();
    Ok(list_response(&ident, "groups", items, "groups"))
}

async fn show_group(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    let m = ident.model();
    let g = m.groups.get(&id);
    let t = g.map(|g| group_target(g)).unwrap_or_else(|| json!({"target": {"group": {"id": id}}}));
    enforce(&ident, &auth.0, "identity:get_group", &t)?;
    let g = g.ok_or_else(|| not_found("group", &id))?;
    Ok(Json(json!({"group": render_group(&ident, g)})).into_response())
}

async fn create_group(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    let b: GroupBody = parse("group", member(body, "group")?)?;
    if b.id.is_some() {
        return Err(ApiError::bad_request("Invalid input for field 'id': a group's id cannot be chosen."));
    }
    let name = b.name.ok_or_else(|| ApiError::bad_request("'name' is a required property"))?;
    check_name("name", &name, 64)?;
    let domain_id =
        b.domain_id.or_else(|| auth.0.domain_id().map(str::to_string)).unwrap_or_else(|| auth.0.user_domain.id.clone());
    enforce(&ident, &auth.0, "identity:create_group", &json!({"target": {"group": {"domain_id": domain_id}}}))?;
    let g = Group {
        id: new_id(),
        name,
        domain_id,
        description: b.description.flatten().unwrap_or_default(),
        extra: b.extra,
    };
    let saved = ident.write(|t| service::groups::create(t, g)).await?;
    Ok(created(json!({"group": render_group(&ident, &saved)})))
}

async fn update_group(
    State(ident): State<Ctx>,
    auth: Auth,
    Path(id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let b: GroupBody = parse("group", member(body, "group")?)?;
    {
        let m = ident.model();
        let g = m.groups.get(&id).ok_or_else(|| not_found("group", &id))?;
        enforce(&ident, &auth.0, "identity:update_group", &group_target(g))?;
        if b.domain_id.as_ref().is_some_and(|d| d != &g.domain_id) {
            return Err(ApiError::bad_request("Cannot change the domain_id of a group."));
        }
    }
    if let Some(n) = &b.name {
        check_name("name", n, 64)?;
    }
    let patch = GroupPatch { name: b.name, description: b.description, extra: b.extra };
    let saved = ident.write(|t| service::groups::update(t, &id, patch)).await?;
    Ok(Json(json!({"group": render_group(&ident, &saved)})).into_response())
}

async fn delete_group(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    {
        let m = ident.model();
        let g = m.groups.get(&id).ok_or_else(|| not_found("group", &id))?;
        enforce(&ident, &auth.0, "identity:delete_group", &group_target(g))?;
    }
    ident.write(|t| service::groups::delete(t, &id)).await?;
    Ok(no_content())
}

async fn group_users(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, params: Params) -> ApiResult {
    let m = ident.model();
    let g = m.groups.get(&id);
    let t = g.map(|g| group_target(g)).unwrap_or_else(|| json!({"target": {"group": {"id": id}}}));
    enforce(&ident, &auth.0, "identity:list_users_in_group", &t)?;
    g.ok_or_else(|| not_found("group", &id))?;
    let items = m
        .memberships
        .values()
        .filter(|ms| ms.group_id == id)
        .filter_map(|ms| m.users.get(&ms.user_id))
        .filter(|u| text_filter(&params, "name", &u.name))
        .map(|u| render(&ident, u))
        .collect();
    Ok(list_response(&ident, "users", items, &format!("groups/{id}/users")))
}

/// Resolves a group and a user and checks `rule` on both.
fn membership_target(ident: &Ctx, auth: &Auth, gid: &str, uid: &str, rule: &str) -> ApiResult<()> {
    let m = ident.model();
    let g = m.groups.get(gid);
    let u = m.users.get(uid);
    let t = json!({"target": {
        "group": {"id": gid, "domain_id": g.map(|g| g.domain_id.clone())},
        "user": {"id": uid, "domain_id": u.map(|u| u.domain_id.clone())},
    }});
    enforce(ident, &auth.0, rule, &t)?;
    g.ok_or_else(|| not_found("group", gid))?;
    u.ok_or_else(|| not_found("user", uid))?;
    Ok(())
}

async fn add_member(State(ident): State<Ctx>, auth: Auth, Path((gid, uid)): Path<(String, String)>) -> ApiResult {
    membership_target(&ident, &auth, &gid, &uid, "identity:add_user_to_group")?;
    ident.write(|t| service::groups::add_member(t, &gid, &uid)).await?;
    Ok(no_content())
}

async fn check_member(State(ident): State<Ctx>, auth: Auth, Path((gid, uid)): Path<(String, String)>) -> ApiResult {
    membership_target(&ident, &auth, &gid, &uid, "identity:check_user_in_group")?;
    if ident.model().memberships.contains_key(&format!("{gid}/{uid}")) {
        Ok(no_content())
    } else {
        Err(ApiError::not_found(format!("User '{uid}' not found in group '{gid}'.")))
    }
}

async fn remove_member(State(ident): State<Ctx>, auth: Auth, Path((gid, uid)): Path<(String, String)>) -> ApiResult {
    membership_target(&ident, &auth, &gid, &uid, "identity:remove_user_from_group")?;
    ident.write(|t| service::groups::remove_member(t, &gid, &uid)).await?;
    Ok(no_content())
}
