//! `/v3/domains`.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::http::Json as Body;
use haneul_core::routes::{target, Routes};
use haneul_core::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    check_name, created, enforce, list_response, member, no_content, not_found, parse, query_bool, self_link,
    text_filter, with_extra, ApiResult, Ctx, Params,
};
use crate::model::{Assignment, Domain, Extra, Group, Project, RevocationEvent, Role, TargetKind, User};
use crate::service::{new_id, Error, Revoke};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/domains", target("identity:list_domains"), list)
        .post("/domains", target("identity:create_domain"), create)
        .get("/domains/{id}", target("identity:get_domain"), show)
        .patch("/domains/{id}", target("identity:update_domain"), update)
        .delete("/domains/{id}", target("identity:delete_domain"), delete)
}

pub fn render(ident: &Ctx, d: &Domain) -> Value {
    with_extra(
        json!({
            "id": d.id, "name": d.name, "description": d.description, "enabled": d.enabled,
            "tags": d.tags, "options": d.options, "links": self_link(ident, &format!("domains/{}", d.id)),
        }),
        &d.extra,
    )
}

#[derive(Deserialize)]
struct DomainBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    options: Option<Extra>,
    #[serde(default)]
    explicit_domain_id: Option<String>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(flatten)]
    extra: Extra,
}

async fn list(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_domains", &json!({}))?;
    let m = ident.model();
    let items = m
        .domains
        .values()
        .filter(|d| text_filter(&params, "name", &d.name))
        .filter(|d| params.get("enabled").is_none_or(|e| d.enabled == query_bool(e)))
        .map(|d| render(&ident, d))
        .collect();
    Ok(list_response(&ident, "domains", items, "domains"))
}

async fn show(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_domain", &json!({"target": {"domain": {"id": id}}}))?;
    let m = ident.model();
    let d = m.domains.get(&id).ok_or_else(|| not_found("domain", &id))?;
    Ok(Json(json!({"domain": render(&ident, d)})).into_response())
}

async fn create(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_domain", &json!({}))?;
    let b: DomainBody = parse("domain", member(body, "domain")?)?;
    if b.id.is_some() {
        return Err(ApiError::bad_request(
            "Invalid input for field 'id': use explicit_domain_id to choose a domain's id.",
        ));
    }
    let name = b.name.ok_or_else(|| ApiError::bad_request("'name' is a required property"))?;
    check_name("name", &name, 64)?;
    let d = Domain {
        id: b.explicit_domain_id.unwrap_or_else(new_id),
        name,
        description: b.description.unwrap_or_default(),
        enabled: b.enabled.unwrap_or(true),
        tags: b.tags.unwrap_or_default(),
        options: b.options.unwrap_or_default(),
        extra: b.extra,
    };
    let saved = store_new(&ident, d).await?;
    Ok(created(json!({"domain": render(&ident, &saved)})))
}

/// Stores a new domain: Keystone's 409 for a taken id or (case-insensitively) name. Also
/// used for projects created with `is_domain: true`.
pub async fn store_new(ident: &Ctx, d: Domain) -> ApiResult<std::sync::Arc<Domain>> {
    let saved = ident
        .write(|t| {
            if t.m.domains.contains_key(&d.id) {
                return Err(Error::Conflict(format!(
                    "Conflict occurred attempting to store domain - Duplicate ID, {}.",
                    d.id
                )));
            }
            if t.m.domains.values().any(|x| x.name.eq_ignore_ascii_case(&d.name)) {
                return Err(Error::Conflict(format!(
                    "Conflict occurred attempting to store domain - Duplicate entry found with name {}.",
                    d.name
                )));
            }
            Ok(t.put(d)?)
        })
        .await?;
    Ok(saved)
}

async fn update(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_domain", &json!({"target": {"domain": {"id": id}}}))?;
    let b: DomainBody = parse("domain", member(body, "domain")?)?;
    if b.id.as_ref().is_some_and(|v| v.as_str() != Some(id.as_str())) {
        return Err(ApiError::bad_request("Cannot change the id of a domain."));
    }
    if let Some(n) = &b.name {
        check_name("name", n, 64)?;
    }
    let saved = ident
        .write(|t| {
            let mut d = t.edit(&t.m.domains, "domain", &id)?;
            if let Some(n) = b.name {
                if t.m.domains.values().any(|x| x.id != id && x.name.eq_ignore_ascii_case(&n)) {
                    return Err(Error::Conflict(format!(
                        "Conflict occurred attempting to store domain - Duplicate entry found with name {n}."
                    )));
                }
                d.name = n;
            }
            if let Some(x) = b.description {
                d.description = x;
            }
            if let Some(tags) = b.tags {
                d.tags = tags;
            }
            if let Some(o) = b.options {
                d.options.extend(o);
            }
            if let Some(e) = b.enabled {
                if d.enabled && !e {
                    t.revoke(RevocationEvent { domain_id: Some(id.clone()), ..Default::default() });
                }
                d.enabled = e;
            }
            d.extra.extend(b.extra);
            Ok(t.put(d)?)
        })
        .await?;
    Ok(Json(json!({"domain": render(&ident, &saved)})).into_response())
}

pub async fn delete(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_domain", &json!({"target": {"domain": {"id": id}}}))?;
    ident
        .write(|t| {
            let d = t.m.domains.get(&id).ok_or_else(|| Error::not_found("domain", id.clone()))?.clone();
            if d.enabled {
                return Err(Error::Forbidden(
                    "Cannot delete a domain that is enabled, please disable it first.".into(),
                ));
            }
            let projects: Vec<String> =
                t.m.projects.values().filter(|p| p.domain_id == id).map(|p| p.id.clone()).collect();
            let users: Vec<String> = t.m.users.values().filter(|u| u.domain_id == id).map(|u| u.id.clone()).collect();
            let groups: Vec<String> = t.m.groups.values().filter(|g| g.domain_id == id).map(|g| g.id.clone()).collect();
            let roles: Vec<String> =
                t.m.roles.values().filter(|r| r.domain_id.as_deref() == Some(&id)).map(|r| r.id.clone()).collect();
            t.delete_where::<Assignment>(|a| {
                (a.target_kind == TargetKind::Domain && a.target_id == id)
                    || (a.target_kind == TargetKind::Project && projects.contains(&a.target_id))
                    || users.contains(&a.actor_id)
                    || groups.contains(&a.actor_id)
                    || roles.contains(&a.role_id)
            });
            t.delete_where::<crate::model::Membership>(|ms| {
                users.contains(&ms.user_id) || groups.contains(&ms.group_id)
            });
            t.delete_where::<crate::model::ImpliedRole>(|ir| {
                roles.contains(&ir.prior_role_id) || roles.contains(&ir.implied_role_id)
            });
            t.delete_where::<Project>(|p| p.domain_id == id);
            t.delete_where::<User>(|u| u.domain_id == id);
            t.delete_where::<Group>(|g| g.domain_id == id);
            t.delete_where::<Role>(|r| r.domain_id.as_deref() == Some(&id));
            t.delete::<crate::model::DomainConfig>(&id);
            t.delete::<Domain>(&id);
            t.revoke(RevocationEvent { domain_id: Some(id.clone()), ..Default::default() });
            Ok(())
        })
        .await?;
    Ok(no_content())
}
