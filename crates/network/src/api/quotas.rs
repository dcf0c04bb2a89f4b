//! Quotas (`/v2.0/quotas`, with `quota_details`): per-project limits over Neutron's defaults.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::routes::{rule, target, Routes};
use serde_json::{json, Map, Value};

use super::{bad, is_admin, ApiResult, Ctx};
use crate::service::quotas::{self, quota_limit, quota_used, DEFAULT_QUOTAS};
use crate::service::Error;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/quotas", rule("context_is_admin"), list) // Neutron: admins only (`_check_admin`)
        .get("/quotas/{project}", target("get_quota"), show)
        .put("/quotas/{project}", rule("update_quota"), update)
        .delete("/quotas/{project}", rule("delete_quota"), reset)
        .get("/quotas/{project}/default", target("get_quota"), defaults)
        .get("/quotas/{project}/details", target("get_quota"), details)
}

fn forbidden() -> Error {
    Error::Forbidden("PolicyNotAuthorized", "(rule:get_quota) is disallowed by policy".into())
}

/// `get_quota` with the quota's project as the target (Neutron's default: admins, and the
/// project's own managers).
fn may_read(c: &crate::Networking, ctx: &AuthContext, project: &str) -> ApiResult<()> {
    super::enforce(c, ctx, "get_quota", &json!({"project_id": project, "tenant_id": project}))
}

fn limits(m: &crate::model::Model, project: &str) -> Map<String, Value> {
    DEFAULT_QUOTAS.iter().map(|(r, _)| (r.to_string(), json!(quota_limit(m, project, r)))).collect()
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth) -> ApiResult {
    if !is_admin(&ctx) {
        return Err(forbidden().into());
    }
    let m = c.model();
    let items: Vec<Value> = m
        .quotas
        .values()
        .map(|q| {
            let mut v = limits(&m, &q.id);
            v.insert("project_id".into(), json!(q.id));
            v.insert("tenant_id".into(), json!(q.id));
            Value::Object(v)
        })
        .collect();
    Ok(Json(json!({"quotas": items})).into_response())
}

async fn show(State(c): State<Ctx>, Auth(ctx): Auth, Path(project): Path<String>) -> ApiResult {
    may_read(&c, &ctx, &project)?;
    Ok(Json(json!({"quota": limits(&c.model(), &project)})).into_response())
}

async fn defaults(State(c): State<Ctx>, Auth(ctx): Auth, Path(project): Path<String>) -> ApiResult {
    may_read(&c, &ctx, &project)?;
    let _ = c;
    let v: Map<String, Value> = DEFAULT_QUOTAS.iter().map(|(r, d)| (r.to_string(), json!(d))).collect();
    Ok(Json(json!({"quota": v})).into_response())
}

async fn details(State(c): State<Ctx>, Auth(ctx): Auth, Path(project): Path<String>) -> ApiResult {
    may_read(&c, &ctx, &project)?;
    let m = c.model();
    let v: Map<String, Value> = DEFAULT_QUOTAS
        .iter()
        .map(|(r, _)| {
            (
                r.to_string(),
                json!({"limit": quota_limit(&m, &project, r), "used": quota_used(&m, &project, r), "reserved": 0}),
            )
        })
        .collect();
    Ok(Json(json!({"quota": v})).into_response())
}

async fn update(State(c): State<Ctx>, Auth(ctx): Auth, Path(project): Path<String>, body: Bytes) -> ApiResult {
    if !is_admin(&ctx) {
        return Err(
            Error::Forbidden("PolicyNotAuthorized", "(rule:update_quota) is disallowed by policy".into()).into()
        );
    }
    let v: Value = haneul_core::http::parse_json(&body).map_err(|e| bad(e.message))?;
    let Some(Value::Object(asked)) = v.get("quota") else {
        return Err(bad("Invalid input: the body needs a 'quota' object."));
    };
    let mut changes = BTreeMap::new();
    for (k, v) in asked {
        if k == "force" || k == "check_limit" {
            continue;
        }
        if !DEFAULT_QUOTAS.iter().any(|(r, _)| r == k) {
            return Err(bad(format!("Unrecognized attribute(s) '{k}'")));
        }
        let n = v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
        match n {
            Some(n) if n >= -1 => {
                changes.insert(k.clone(), n);
            }
            _ => {
                return Err(bad(format!(
                    "Invalid input for {k}. Reason: '{v}' is not a valid quota (an integer of -1 or more)."
                )))
            }
        }
    }
    c.write(|t| quotas::set(t, &project, changes)).await?;
    Ok(Json(json!({"quota": limits(&c.model(), &project)})).into_response())
}

async fn reset(State(c): State<Ctx>, Auth(ctx): Auth, Path(project): Path<String>) -> ApiResult<Response> {
    if !is_admin(&ctx) {
        return Err(
            Error::Forbidden("PolicyNotAuthorized", "(rule:delete_quota) is disallowed by policy".into()).into()
        );
    }
    c.write(|t| quotas::reset(t, &project)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
