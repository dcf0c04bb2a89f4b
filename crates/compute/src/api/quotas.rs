//! Quotas (`os-quota-sets`, `os-quota-class-sets`) and `limits`.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, target, Routes};
use serde_json::{json, Map, Value};

use super::{body_member, enforce, ApiResult, Ctx, Mv};
use crate::service::quotas::{self, class_key, resources_at, user_key};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/os-quota-sets/{project}", target("os_compute_api:os-quota-sets:show"), show)
        .put("/os-quota-sets/{project}", target("os_compute_api:os-quota-sets:update"), update)
        .delete("/os-quota-sets/{project}", target("os_compute_api:os-quota-sets:delete"), delete)
        .get("/os-quota-sets/{project}/defaults", target("os_compute_api:os-quota-sets:defaults"), defaults)
        .get("/os-quota-sets/{project}/detail", target("os_compute_api:os-quota-sets:detail"), detail)
        .get("/os-quota-class-sets/{class}", target("os_compute_api:os-quota-class-sets:show"), show_class)
        .put("/os-quota-class-sets/{class}", target("os_compute_api:os-quota-class-sets:update"), update_class)
        .get("/limits", rule("os_compute_api:limits"), limits)
}

fn key_pairs_default(c: &crate::service::Compute) -> i64 {
    c.settings.key_pairs_quota as i64
}

/// The resources of `values` this microversion shows, as a JSON object.
fn shown(values: &BTreeMap<String, i64>, mv: Mv) -> Map<String, Value> {
    resources_at(mv.0.minor).map(|r| (r.to_string(), json!(values.get(r).copied().unwrap_or(-1)))).collect()
}

fn only(q: &HashMap<String, String>, allowed: &[&str]) -> ApiResult<()> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "Invalid input for query parameters {k}. Value: Additional properties are not allowed."
        ))),
        None => Ok(()),
    }
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path(project): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    enforce(&c, &ctx, "os_compute_api:os-quota-sets:show", &json!({"project_id": project}))?;
    only(&q, &["user_id"])?;
    let m = c.model();
    let limits = quotas::limits(&m, key_pairs_default(&c), &project, q.get("user_id").map(String::as_str));
    let mut set = shown(&limits, mv);
    set.insert("id".into(), json!(project));
    Ok(Json(json!({"quota_set": set})).into_response())
}

async fn detail(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path(project): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    enforce(&c, &ctx, "os_compute_api:os-quota-sets:detail", &json!({"project_id": project}))?;
    only(&q, &["user_id"])?;
    let user = q.get("user_id").map(String::as_str);
    let m = c.model();
    let limits = quotas::limits(&m, key_pairs_default(&c), &project, user);
    let used = quotas::usage(&m, &project, user);
    let mut set: Map<String, Value> = resources_at(mv.0.minor)
        .map(|r| {
            let v = json!({
                "limit": limits.get(r).copied().unwrap_or(-1),
                "in_use": used.get(r).copied().unwrap_or(0),
                "reserved": 0,
            });
            (r.to_string(), v)
        })
        .collect();
    set.insert("id".into(), json!(project));
    Ok(Json(json!({"quota_set": set})).into_response())
}

async fn defaults(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(project): Path<String>) -> ApiResult {
    enforce(&c, &ctx, "os_compute_api:os-quota-sets:defaults", &json!({"project_id": project}))?;
    let m = c.model();
    let mut set = shown(&quotas::defaults(&m, key_pairs_default(&c)), mv);
    set.insert("id".into(), json!(project));
    Ok(Json(json!({"quota_set": set})).into_response())
}

/// The limits of a quota update body: resources of this microversion, integers >= -1.
fn changes(o: &Map<String, Value>, mv: Mv, member: &str) -> ApiResult<(BTreeMap<String, i64>, bool)> {
    let allowed: Vec<&str> = resources_at(mv.0.minor).collect();
    let mut out = BTreeMap::new();
    let mut force = false;
    for (k, v) in o {
        if k == "force" && member == "quota_set" {
            force = match v {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid input for field/attribute force. Value: {v}. {v} is not of type 'boolean', 'string'"
                    )))
                }
            };
            continue;
        }
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {member}. Value: {}. Additional properties are not allowed ('{k}' was unexpected)",
                Value::Object(o.clone())
            )));
        }
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|n| *n >= -1 && *n <= i32::MAX as i64)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid input for field/attribute {k}. Value: {v}. {v} is not valid under any of the given schemas"
            ))
        })?;
        out.insert(k.clone(), n);
    }
    Ok((out, force))
}

async fn update(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path(project): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> ApiResult {
    enforce(&c, &ctx, "os_compute_api:os-quota-sets:update", &json!({"project_id": project}))?;
    only(&q, &["user_id"])?;
    let user = q.get("user_id").cloned();
    let o = body_member(&body, "quota_set")?;
    let (changes, force) = changes(&o, mv, "quota_set")?;
    let kp = key_pairs_default(&c);
    let limits = c
        .write(|t| {
            let used = quotas::usage(&t.m, &project, user.as_deref());
            let key = match &user {
                Some(u) => user_key(&project, u),
                None => project.clone(),
            };
            quotas::set(t, key, changes, &used, force)?;
            Ok(quotas::limits(&t.m, kp, &project, user.as_deref()))
        })
        .await?;
    Ok(Json(json!({"quota_set": shown(&limits, mv)})).into_response())
}

async fn delete(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(project): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    enforce(&c, &ctx, "os_compute_api:os-quota-sets:delete", &json!({"project_id": project}))?;
    only(&q, &["user_id"])?;
    let user = q.get("user_id").cloned();
    c.write(|t| {
        match &user {
            Some(u) => {
                t.delete::<crate::model::QuotaLimits>(&user_key(&project, u));
            }
            None => {
                let prefix = format!("{project}/");
                t.delete_where::<crate::model::QuotaLimits>(|q| q.id == project || q.id.starts_with(&prefix));
            }
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn show_class(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(class): Path<String>) -> ApiResult {
    enforce(&c, &ctx, "os_compute_api:os-quota-class-sets:show", &json!({"quota_class": class}))?;
    let m = c.model();
    let mut values = quotas::defaults(&m, key_pairs_default(&c));
    if class != "default" {
        if let Some(q) = m.quotas.get(&class_key(&class)) {
            values.extend(q.limits.clone());
        }
    }
    let mut set = shown(&values, mv);
    set.insert("id".into(), json!(class));
    Ok(Json(json!({"quota_class_set": set})).into_response())
}

async fn update_class(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path(class): Path<String>,
    body: Bytes,
) -> ApiResult {
    enforce(&c, &ctx, "os_compute_api:os-quota-class-sets:update", &json!({"quota_class": class}))?;
    let o = body_member(&body, "quota_class_set")?;
    let (changes, _) = changes(&o, mv, "quota_class_set")?;
    let kp = key_pairs_default(&c);
    let values = c
        .write(|t| {
            quotas::set(t, class_key(&class), changes, &BTreeMap::new(), true)?;
            let mut values = quotas::defaults(&t.m, kp);
            if let Some(q) = t.m.quotas.get(&class_key(&class)) {
                values.extend(q.limits.clone());
            }
            Ok(values)
        })
        .await?;
    Ok(Json(json!({"quota_class_set": shown(&values, mv)})).into_response())
}

async fn limits(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let own = ctx.project_id().unwrap_or_default().to_string();
    let project = match q.get("tenant_id") {
        Some(t) if *t != own => {
            enforce(&c, &ctx, "os_compute_api:limits:other_project", &json!({"project_id": t}))?;
            t.clone()
        }
        _ => {
            enforce(&c, &ctx, "os_compute_api:limits", &json!({"project_id": own}))?;
            own
        }
    };
    let m = c.model();
    let l = quotas::limits(&m, key_pairs_default(&c), &project, None);
    let u = quotas::usage(&m, &project, None);
    let get = |k: &str| l.get(k).copied().unwrap_or(-1);
    let mut abs = json!({
        "maxTotalInstances": get("instances"),
        "maxTotalCores": get("cores"),
        "maxTotalRAMSize": get("ram"),
        "maxServerMeta": get("metadata_items"),
        "maxTotalKeypairs": get("key_pairs"),
        "maxServerGroups": get("server_groups"),
        "maxServerGroupMembers": get("server_group_members"),
        "totalInstancesUsed": u["instances"],
        "totalCoresUsed": u["cores"],
        "totalRAMUsed": u["ram"],
        "totalServerGroupsUsed": u["server_groups"],
    });
    if !mv.at_least(36) {
        abs["maxSecurityGroups"] = json!(get("security_groups"));
        abs["maxSecurityGroupRules"] = json!(get("security_group_rules"));
        abs["maxTotalFloatingIps"] = json!(get("floating_ips"));
        abs["totalSecurityGroupsUsed"] = json!(0);
        abs["totalFloatingIpsUsed"] = json!(0);
    }
    if !mv.at_least(39) {
        abs["maxImageMeta"] = json!(128);
    }
    if !mv.at_least(57) {
        abs["maxPersonality"] = json!(get("injected_files"));
        abs["maxPersonalitySize"] = json!(get("injected_file_content_bytes"));
    }
    Ok(Json(json!({"limits": {"rate": [], "absolute": abs}})).into_response())
}
