//! Server groups (`os-server-groups`): affinity and anti-affinity policies the scheduler
//! honours for the group's members.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use haneul_core::auth::Auth;
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, target, Routes};
use serde_json::{json, Value};

use super::{body_member, enforce, is_admin, ApiResult, Ctx, Mv};
use crate::model::ServerGroup;
use crate::service::Error;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/os-server-groups", rule("os_compute_api:os-server-groups:index"), list)
        .post("/os-server-groups", rule("os_compute_api:os-server-groups:create"), create)
        .get("/os-server-groups/{id}", target("os_compute_api:os-server-groups:show"), show)
        .delete("/os-server-groups/{id}", target("os_compute_api:os-server-groups:delete"), delete)
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

pub fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Instance group {id} could not be found."))
}

fn render(g: &ServerGroup, mv: Mv) -> Value {
    let mut v = json!({"id": g.id, "name": g.name, "members": g.members});
    if mv.at_least(64) {
        v["policy"] = json!(g.policy);
        v["rules"] = match g.max_server_per_host {
            Some(n) => json!({"max_server_per_host": n}),
            None => json!({}),
        };
    } else {
        v["policies"] = json!([g.policy]);
        v["metadata"] = json!({});
    }
    if mv.at_least(13) {
        v["project_id"] = json!(g.project_id);
        v["user_id"] = json!(g.user_id);
    }
    v
}

fn valid_policy(p: &str, mv: Mv) -> bool {
    matches!(p, "affinity" | "anti-affinity")
        || (mv.at_least(15) && matches!(p, "soft-affinity" | "soft-anti-affinity"))
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, body: Bytes) -> ApiResult {
    let Some(project) = ctx.project_id().map(str::to_owned) else {
        return Err(ApiError::forbidden("Server groups are created with a project-scoped token."));
    };
    enforce(&c, &ctx, "os_compute_api:os-server-groups:create", &json!({"project_id": project}))?;
    let o = body_member(&body, "server_group")?;
    let allowed: &[&str] = if mv.at_least(64) { &["name", "policy", "rules"] } else { &["name", "policies"] };
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "Invalid input for field/attribute server_group. Value: {}. Additional properties are not allowed ('{k}' was unexpected)",
            Value::Object(o.clone())
        )));
    }
    let name = match o.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => n.clone(),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute name. Value: {v}."))),
        None => {
            return Err(bad("Invalid input for field/attribute server_group. Value: 'name' is a required property"))
        }
    };
    let (policy, max_per_host) = if mv.at_least(64) {
        let policy = match o.get("policy") {
            Some(Value::String(p)) if valid_policy(p, mv) => p.clone(),
            Some(v) => return Err(bad(format!("Invalid input for field/attribute policy. Value: {v}. {v} is not one of ['anti-affinity', 'affinity', 'soft-anti-affinity', 'soft-affinity']"))),
            None => return Err(bad("Invalid input for field/attribute server_group. Value: 'policy' is a required property")),
        };
        let max = match o.get("rules") {
            None => None,
            Some(Value::Object(r)) if r.is_empty() => None,
            Some(Value::Object(r)) => {
                if policy != "anti-affinity" {
                    return Err(bad(format!("Only anti-affinity policy supports rules.")));
                }
                if let Some(k) = r.keys().find(|k| *k != "max_server_per_host") {
                    return Err(bad(format!("Invalid input for field/attribute rules. Value: {}. Additional properties are not allowed ('{k}' was unexpected)", Value::Object(r.clone()))));
                }
                match r.get("max_server_per_host") {
                    Some(v) => match v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
                        Some(n) if n >= 1 => Some(n),
                        _ => {
                            return Err(bad(format!(
                                "Invalid input for field/attribute max_server_per_host. Value: {v}."
                            )))
                        }
                    },
                    None => None,
                }
            }
            Some(v) => {
                return Err(bad(format!(
                    "Invalid input for field/attribute rules. Value: {v}. {v} is not of type 'object'"
                )))
            }
        };
        (policy, max)
    } else {
        match o.get("policies") {
            Some(Value::Array(ps)) if ps.len() == 1 && ps[0].as_str().is_some_and(|p| valid_policy(p, mv)) => {
                (ps[0].as_str().unwrap_or_default().to_string(), None)
            }
            Some(v) => return Err(bad(format!("Invalid input for field/attribute policies. Value: {v}."))),
            None => {
                return Err(bad(
                    "Invalid input for field/attribute server_group. Value: 'policies' is a required property",
                ))
            }
        }
    };
    let kp = c.settings.key_pairs_quota as i64;
    let user = ctx.user.id.clone();
    let group = c
        .write(|t| {
            let limit = crate::service::quotas::limits(&t.m, kp, &project, Some(&user))["server_groups"];
            let used = crate::service::quotas::usage(&t.m, &project, None)["server_groups"];
            if limit >= 0 && used >= limit {
                return Err(Error::Forbidden("Quota exceeded, too many server groups.".into()));
            }
            Ok(t.put(ServerGroup {
                id: uuid::Uuid::new_v4().to_string(),
                name,
                policy,
                max_server_per_host: max_per_host,
                project_id: project.clone(),
                user_id: user.clone(),
                members: Vec::new(),
                created_at: Utc::now(),
            })?)
        })
        .await?;
    Ok(Json(json!({"server_group": render(&group, mv)})).into_response())
}

fn visible(ctx: &haneul_core::auth::AuthContext, g: &ServerGroup) -> bool {
    is_admin(ctx) || ctx.project_id() == Some(g.project_id.as_str())
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let own = ctx.project_id().unwrap_or_default().to_string();
    enforce(&c, &ctx, "os_compute_api:os-server-groups:index", &json!({"project_id": own}))?;
    let all =
        q.get("all_projects").is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "no" | "off"));
    if all {
        enforce(&c, &ctx, "os_compute_api:os-server-groups:index:all_projects", &json!({"project_id": own}))?;
    }
    let number = |k: &str| -> ApiResult<Option<usize>> {
        q.get(k)
            .map(|v| {
                v.parse::<usize>().map_err(|_| bad(format!("Invalid input for query parameters {k}. Value: {v}.")))
            })
            .transpose()
    };
    let (limit, offset) = (number("limit")?, number("offset")?.unwrap_or(0));
    let m = c.model();
    let mut groups: Vec<&ServerGroup> =
        m.server_groups.values().map(|g| &**g).filter(|g| if all { true } else { g.project_id == own }).collect();
    groups.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let items: Vec<Value> =
        groups.into_iter().skip(offset).take(limit.unwrap_or(usize::MAX)).map(|g| render(g, mv)).collect();
    Ok(Json(json!({"server_groups": items})).into_response())
}

async fn show(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(id): Path<String>) -> ApiResult {
    let m = c.model();
    let g = m.server_groups.get(&id).filter(|g| visible(&ctx, g)).ok_or_else(|| not_found(&id))?;
    enforce(&c, &ctx, "os_compute_api:os-server-groups:show", &json!({"project_id": g.project_id}))?;
    Ok(Json(json!({"server_group": render(g, mv)})).into_response())
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let m = c.model();
    let g = m.server_groups.get(&id).filter(|g| visible(&ctx, g)).ok_or_else(|| not_found(&id))?;
    enforce(&c, &ctx, "os_compute_api:os-server-groups:delete", &json!({"project_id": g.project_id}))?;
    c.write(|t| {
        t.delete::<ServerGroup>(&id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
