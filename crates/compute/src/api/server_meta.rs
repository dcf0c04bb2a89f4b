//! A server's metadata (`/servers/{id}/metadata`) and tags (`/servers/{id}/tags`, 2.26).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::error::ApiError;
use haneul_core::routes::{target, Routes};
use serde_json::{json, Map, Value};

use super::servers::find;
use super::{enforce, ApiResult, Ctx, Mv};
use crate::model::Server;
use crate::service::{Compute, Error};

/// Most tags per server, as Nova.
pub const MAX_TAGS: usize = 50;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/servers/{id}/metadata", target("os_compute_api:server-metadata:index"), list_meta)
        .post("/servers/{id}/metadata", target("os_compute_api:server-metadata:create"), merge_meta)
        .put("/servers/{id}/metadata", target("os_compute_api:server-metadata:update_all"), replace_meta)
        .get("/servers/{id}/metadata/{key}", target("os_compute_api:server-metadata:show"), show_meta)
        .put("/servers/{id}/metadata/{key}", target("os_compute_api:server-metadata:update"), put_meta)
        .delete("/servers/{id}/metadata/{key}", target("os_compute_api:server-metadata:delete"), delete_meta)
        .get("/servers/{id}/tags", target("os_compute_api:os-server-tags:index"), list_tags)
        .put("/servers/{id}/tags", target("os_compute_api:os-server-tags:update_all"), replace_tags)
        .delete("/servers/{id}/tags", target("os_compute_api:os-server-tags:delete_all"), delete_tags)
        .get("/servers/{id}/tags/{tag}", target("os_compute_api:os-server-tags:show"), show_tag)
        .put("/servers/{id}/tags/{tag}", target("os_compute_api:os-server-tags:update"), put_tag)
        .delete("/servers/{id}/tags/{tag}", target("os_compute_api:os-server-tags:delete"), delete_tag)
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

fn allowed(c: &Compute, ctx: &AuthContext, s: &Server, rule: &str) -> ApiResult<()> {
    enforce(c, ctx, rule, &json!({"project_id": s.project_id, "user_id": s.user_id}))
}

/// A metadata object: string keys of 1–255 and string values up to 255 characters.
pub fn metadata_object(v: &Value, field: &str) -> ApiResult<BTreeMap<String, String>> {
    let o = v.as_object().ok_or_else(|| {
        bad(format!("Invalid input for field/attribute {field}. Value: {v}. {v} is not of type 'object'"))
    })?;
    o.iter()
        .map(|(k, v)| match v {
            Value::String(s) if !k.is_empty() && k.chars().count() <= 255 && s.chars().count() <= 255 => Ok((k.clone(), s.clone())),
            _ if k.is_empty() || k.chars().count() > 255 => Err(bad(format!(
                "Invalid input for field/attribute {field}. Value: {}. Additional properties are not allowed ('{k}' was unexpected)",
                Value::Object(o.clone())
            ))),
            _ => Err(bad(format!("Invalid input for field/attribute {k}. Value: {v}. {v} is not of type 'string'"))),
        })
        .collect()
}

fn body_object(body: &[u8]) -> ApiResult<Map<String, Value>> {
    match haneul_core::http::parse_json::<Value>(body)? {
        Value::Object(o) => Ok(o),
        _ => Err(bad("The request body must be a JSON object.")),
    }
}

/// Refuses changes to a locked server, except by an admin (Nova's 409).
pub fn unlocked(ctx: &AuthContext, s: &Server) -> ApiResult<()> {
    if s.locked && !super::is_admin(ctx) {
        return Err(ApiError::conflict(format!("Instance {} is locked", s.id)));
    }
    Ok(())
}

/// Writes new metadata for a server, within the metadata-items quota.
async fn write_meta(
    c: &Compute,
    id: &str,
    f: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), Error>,
) -> ApiResult<BTreeMap<String, String>> {
    let kp = c.settings.key_pairs_quota as i64;
    let md = c
        .write(|t| {
            let mut s = t.edit(&t.m.servers, "server", id)?;
            f(&mut s.metadata)?;
            let limit = crate::service::quotas::limits(&t.m, kp, &s.project_id, Some(&s.user_id))["metadata_items"];
            if limit >= 0 && s.metadata.len() as i64 > limit {
                return Err(Error::Forbidden(format!("Maximum number of metadata items exceeds {limit}")));
            }
            s.updated_at = chrono::Utc::now();
            let md = s.metadata.clone();
            t.put(s)?;
            Ok(md)
        })
        .await?;
    Ok(md)
}

async fn list_meta(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    allowed(&c, &ctx, &s, "os_compute_api:server-metadata:index")?;
    Ok(Json(json!({"metadata": s.metadata})).into_response())
}

async fn merge_meta(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    set_all_meta(&c, &ctx, &id, &body, false).await
}

async fn replace_meta(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    set_all_meta(&c, &ctx, &id, &body, true).await
}

/// `POST` merges the body's `metadata` into the server's, `PUT` replaces it.
async fn set_all_meta(c: &Compute, ctx: &AuthContext, id: &str, body: &[u8], replace: bool) -> ApiResult {
    let s = find(c, ctx, id)?;
    let rule =
        if replace { "os_compute_api:server-metadata:update_all" } else { "os_compute_api:server-metadata:create" };
    allowed(c, ctx, &s, rule)?;
    unlocked(ctx, &s)?;
    let o = body_object(body)?;
    let new = metadata_object(
        o.get("metadata").ok_or_else(|| bad("Malformed request body: 'metadata' is a required property"))?,
        "metadata",
    )?;
    let md = write_meta(c, id, |m| {
        if replace {
            *m = new;
        } else {
            m.extend(new);
        }
        Ok(())
    })
    .await?;
    Ok(Json(json!({"metadata": md})).into_response())
}

async fn show_meta(State(c): State<Ctx>, Auth(ctx): Auth, Path((id, key)): Path<(String, String)>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    allowed(&c, &ctx, &s, "os_compute_api:server-metadata:show")?;
    let v = s.metadata.get(&key).ok_or_else(|| ApiError::not_found("Metadata item was not found"))?;
    Ok(Json(json!({"meta": {key: v}})).into_response())
}

async fn put_meta(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    allowed(&c, &ctx, &s, "os_compute_api:server-metadata:update")?;
    unlocked(&ctx, &s)?;
    let o = body_object(&body)?;
    let meta = metadata_object(
        o.get("meta").ok_or_else(|| bad("Malformed request body: 'meta' is a required property"))?,
        "meta",
    )?;
    if meta.len() > 1 {
        return Err(bad("Request body contains too many items"));
    }
    let Some((k, v)) = meta.into_iter().next() else {
        return Err(bad("Malformed request body: 'meta' must have one item"));
    };
    if k != key {
        return Err(bad("Request body and URI mismatch"));
    }
    write_meta(&c, &id, |m| {
        m.insert(k.clone(), v.clone());
        Ok(())
    })
    .await?;
    Ok(Json(json!({"meta": {k: v}})).into_response())
}

async fn delete_meta(State(c): State<Ctx>, Auth(ctx): Auth, Path((id, key)): Path<(String, String)>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    allowed(&c, &ctx, &s, "os_compute_api:server-metadata:delete")?;
    unlocked(&ctx, &s)?;
    write_meta(&c, &id, |m| match m.remove(&key) {
        Some(_) => Ok(()),
        None => Err(Error::NotFound("Metadata item was not found".into())),
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Tags

/// A tag as Nova accepts it: 1–60 characters, no `/` or `,`.
pub fn check_tag(t: &str) -> ApiResult<()> {
    if t.is_empty() || t.chars().count() > 60 || t.contains('/') || t.contains(',') {
        return Err(bad(format!(
            "Invalid input for field/attribute tags. Value: {t}. '{t}' is not a valid tag: 1 to 60 characters without '/' or ','"
        )));
    }
    Ok(())
}

fn needs_tags(mv: Mv) -> ApiResult<()> {
    if mv.at_least(26) {
        Ok(())
    } else {
        Err(ApiError::not_found("The resource could not be found."))
    }
}

async fn write_tags(c: &Compute, id: &str, f: impl FnOnce(&mut Vec<String>) -> bool) -> ApiResult<(Vec<String>, bool)> {
    let r = c
        .write(|t| {
            let mut s = t.edit(&t.m.servers, "server", id)?;
            let changed = f(&mut s.tags);
            if s.tags.len() > MAX_TAGS {
                return Err(Error::BadRequest(format!("The number of tags exceeded the per-server limit {MAX_TAGS}")));
            }
            let tags = s.tags.clone();
            if changed {
                s.updated_at = chrono::Utc::now();
                t.put(s)?;
            }
            Ok((tags, changed))
        })
        .await?;
    Ok(r)
}

async fn list_tags(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(id): Path<String>) -> ApiResult {
    needs_tags(mv)?;
    let s = find(&c, &ctx, &id)?;
    allowed(&c, &ctx, &s, "os_compute_api:os-server-tags:index")?;
    Ok(Json(json!({"tags": s.tags})).into_response())
}

async fn replace_tags(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
    needs_tags(mv)?;
    let s = find(&c, &ctx, &id)?;
    allowed(&c, &ctx, &s, "os_compute_api:os-server-tags:update_all")?;
    let o = body_object(&body)?;
    let tags = tag_list(
        o.get("tags")
            .ok_or_else(|| bad("Invalid input for field/attribute tags. Value: 'tags' is a required property"))?,
    )?;
    let (tags, _) = write_tags(&c, &id, |t| {
        *t = tags;
        true
    })
    .await?;
    Ok(Json(json!({"tags": tags})).into_response())
}

/// A list of distinct valid tags (at most [`MAX_TAGS`]).
pub fn tag_list(v: &Value) -> ApiResult<Vec<String>> {
    let arr = v.as_array().ok_or_else(|| {
        bad(format!("Invalid input for field/attribute tags. Value: {v}. {v} is not of type 'array'"))
    })?;
    let mut out: Vec<String> = Vec::new();
    for t in arr {
        let t = t.as_str().ok_or_else(|| {
            bad(format!("Invalid input for field/attribute tags. Value: {t}. {t} is not of type 'string'"))
        })?;
        check_tag(t)?;
        if !out.iter().any(|x| x == t) {
            out.push(t.to_string());
        }
    }
    if out.len() > MAX_TAGS {
        return Err(bad(format!("The number of tags exceeded the per-server limit {MAX_TAGS}")));
    }
    Ok(out)
}

async fn delete_tags(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(id): Path<String>) -> ApiResult {
    needs_tags(mv)?;
    let s = find(&c, &ctx, &id)?;
    allowed(&c, &ctx, &s, "os_compute_api:os-server-tags:delete_all")?;
    write_tags(&c, &id, |t| {
        t.clear();
        true
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn show_tag(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path((id, tag)): Path<(String, String)>) -> ApiResult {
    needs_tags(mv)?;
    let s = find(&c, &ctx, &id)?;
    allowed(&c, &ctx, &s, "os_compute_api:os-server-tags:show")?;
    if !s.tags.contains(&tag) {
        return Err(ApiError::not_found(format!("Tag '{tag}' could not be found for instance {id}.")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn put_tag(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    needs_tags(mv)?;
    let s = find(&c, &ctx, &id)?;
    allowed(&c, &ctx, &s, "os_compute_api:os-server-tags:update")?;
    check_tag(&tag)?;
    let (_, added) = write_tags(&c, &id, |t| {
        if t.contains(&tag) {
            false
        } else {
            t.push(tag.clone());
            true
        }
    })
    .await?;
    let location = format!("{}/v2.1/servers/{id}/tags/{tag}", c.settings.public_url);
    let mut resp = if added { StatusCode::CREATED } else { StatusCode::NO_CONTENT }.into_response();
    if let Ok(v) = location.parse() {
        resp.headers_mut().insert("location", v);
    }
    Ok(resp)
}

async fn delete_tag(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult {
    needs_tags(mv)?;
    let s = find(&c, &ctx, &id)?;
    allowed(&c, &ctx, &s, "os_compute_api:os-server-tags:delete")?;
    if !s.tags.contains(&tag) {
        return Err(ApiError::not_found(format!("Tag '{tag}' could not be found for instance {id}.")));
    }
    write_tags(&c, &id, |t| {
        t.retain(|x| *x != tag);
        true
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
