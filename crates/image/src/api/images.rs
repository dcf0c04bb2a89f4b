//! Images: create, show, update (JSON patch), delete, tags, deactivate/reactivate (the list is
//! `image_list`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::Utc;
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, target, Routes};
use serde_json::{json, Map, Value};

use super::schemas::{CONTAINER_FORMATS, DISK_FORMATS};
use super::{enforce, image_for, image_target, no_content, ts, ApiResult, Ctx};
use crate::model::{Image, Member, Model, Status, Visibility};
use crate::service::{is_admin, Error, Images};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .post("/v2/images", rule("add_image"), create)
        .get("/v2/images/{id}", target("get_image"), show)
        .patch("/v2/images/{id}", target("modify_image"), update)
        .delete("/v2/images/{id}", target("delete_image"), delete)
        .put("/v2/images/{id}/tags/{tag}", target("modify_image"), add_tag)
        .delete("/v2/images/{id}/tags/{tag}", target("modify_image"), delete_tag)
        .get("/v2/images/{id}/tasks", target("get_image"), image_tasks)
        .post("/v2/images/{id}/actions/deactivate", target("deactivate"), deactivate)
        .post("/v2/images/{id}/actions/reactivate", target("reactivate"), reactivate)
}

/// Attributes only the service sets.
const READ_ONLY: &[&str] = &[
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "size",
    "virtual_size",
    "direct_url",
    "self",
    "file",
    "schema",
    "id",
    "os_hash_algo",
    "os_hash_value",
    "stores",
    "locations",
];

/// The image as the API shows it.
pub fn render(img: &Image) -> Value {
    let mut o = Map::new();
    for (k, v) in &img.properties {
        o.insert(k.clone(), json!(v));
    }
    let base = json!({
        "id": img.id,
        "name": img.name,
        "status": img.status.as_str(),
        "visibility": img.visibility.as_str(),
        "protected": img.protected,
        "os_hidden": img.os_hidden,
        "owner": img.owner,
        "disk_format": img.disk_format,
        "container_format": img.container_format,
        "min_disk": img.min_disk,
        "min_ram": img.min_ram,
        "size": img.size,
        "virtual_size": img.virtual_size,
        "checksum": img.checksum,
        "os_hash_algo": img.os_hash_algo,
        "os_hash_value": img.os_hash_value,
        "tags": img.tags,
        "created_at": ts(&img.created_at),
        "updated_at": ts(&img.updated_at),
        "self": format!("/v2/images/{}", img.id),
        "file": format!("/v2/images/{}/file", img.id),
        "schema": "/v2/schemas/image",
    });
    if let Value::Object(b) = base {
        o.extend(b);
    }
    Value::Object(o)
}

pub(super) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok() && s.len() == 36
}

/// Checks one attribute's value against the image schema; Glance's 400 when it does not fit.
fn validate(key: &str, v: &Value) -> ApiResult<()> {
    let invalid = |why: &str| bad(format!("Provided object does not match schema 'image': {why}"));
    let string_max = |max: usize, nullable: bool| -> ApiResult<()> {
        match v {
            Value::Null if nullable => Ok(()),
            Value::String(s) if s.chars().count() <= max => Ok(()),
            Value::String(_) => Err(invalid(&format!("'{key}' is too long (at most {max} characters)"))),
            _ => Err(invalid(&format!("{v} is not of type 'string' for '{key}'"))),
        }
    };
    let one_of = |allowed: &[&str], nullable: bool| -> ApiResult<()> {
        match v {
            Value::Null if nullable => Ok(()),
            Value::String(s) if allowed.contains(&s.as_str()) => Ok(()),
            _ => Err(invalid(&format!("{v} is not one of {allowed:?} for '{key}'"))),
        }
    };
    match key {
        "id" => match v.as_str() {
            Some(s) if is_uuid(s) => Ok(()),
            _ => Err(invalid(&format!("{v} does not match the UUID pattern for 'id'"))),
        },
        "name" | "owner" => string_max(255, true),
        "visibility" => one_of(&["community", "public", "private", "shared"], false),
        "protected" | "os_hidden" => match v {
            Value::Bool(_) => Ok(()),
            _ => Err(invalid(&format!("{v} is not of type 'boolean' for '{key}'"))),
        },
        "container_format" => one_of(CONTAINER_FORMATS, true),
        "disk_format" => one_of(DISK_FORMATS, true),
        "min_ram" | "min_disk" => match v.as_i64() {
            Some(n) if n >= 0 && !v.is_f64() => Ok(()),
            Some(_) => Err(invalid(&format!("{v} is less than the minimum of 0 for '{key}'"))),
            None => Err(invalid(&format!("{v} is not of type 'integer' for '{key}'"))),
        },
        "tags" => match v {
            Value::Array(a) if a.iter().all(|t| t.as_str().is_some_and(|s| s.chars().count() <= 255)) => Ok(()),
            _ => Err(invalid("tags must be a list of strings of at most 255 characters")),
        },
        "kernel_id" | "ramdisk_id" => match v {
            Value::Null => Ok(()),
            Value::String(s) if is_uuid(s) => Ok(()),
            _ => Err(invalid(&format!("{v} does not match the UUID pattern for '{key}'"))),
        },
        "cinder_encryption_key_deletion_policy" => one_of(&["on_image_deletion", "do_not_delete"], false),
        _ => {
            if key.chars().count() > 255 {
                return Err(bad(format!("Attribute name '{key}' is too long (at most 255 characters).")));
            }
            match v {
                Value::String(_) => Ok(()),
                _ => Err(invalid(&format!("{v} is not of type 'string' for '{key}'"))),
            }
        }
    }
}

fn reserved(key: &str) -> bool {
    matches!(key, "location" | "deleted" | "deleted_at") || key.starts_with("os_glance")
}

const BASE: &[&str] = &[
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "owner",
    "container_format",
    "disk_format",
    "min_ram",
    "min_disk",
    "tags",
];

/// Sets a writable attribute (validated already); extra properties become strings.
fn set_attr(img: &mut Image, key: &str, v: Value) {
    match key {
        "name" => img.name = v.as_str().map(str::to_owned),
        "visibility" => img.visibility = v.as_str().and_then(Visibility::parse).unwrap_or(img.visibility),
        "protected" => img.protected = v.as_bool().unwrap_or(false),
        "os_hidden" => img.os_hidden = v.as_bool().unwrap_or(false),
        "owner" => img.owner = v.as_str().map(str::to_owned),
        "container_format" => img.container_format = v.as_str().map(str::to_owned),
        "disk_format" => img.disk_format = v.as_str().map(str::to_owned),
        "min_ram" => img.min_ram = v.as_i64().unwrap_or(0),
        "min_disk" => img.min_disk = v.as_i64().unwrap_or(0),
        "tags" => {
            img.tags.clear();
            for t in v.as_array().into_iter().flatten().filter_map(|t| t.as_str()) {
                if !img.tags.iter().any(|x| x == t) {
                    img.tags.push(t.to_string());
                }
            }
        }
        _ => match v {
            Value::String(s) => {
                img.properties.insert(key.to_string(), s);
            }
            _ => {
                img.properties.remove(key);
            }
        },
    }
}

/// Checks what only some callers may set: another owner, public or community visibility.
fn check_privileged(svc: &Images, ctx: &AuthContext, img: &Image, changed: &[&str], m: &Model) -> ApiResult<()> {
    if changed.contains(&"owner") && !is_admin(ctx) && img.owner.as_deref() != ctx.project_id() {
        return Err(ApiError::forbidden("Owner must be specified to create or modify images owned by others."));
    }
    if changed.contains(&"visibility") {
        let target = image_target(m, ctx, img);
        match img.visibility {
            Visibility::Public => enforce(svc, ctx, "publicize_image", &target)?,
            Visibility::Community => enforce(svc, ctx, "communitize_image", &target)?,
            _ => {}
        }
    }
    Ok(())
}

fn check_counts(svc: &Images, img: &Image) -> ApiResult<()> {
    if img.properties.len() > svc.settings.property_quota {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Maximum number of properties ({}) exceeded.", svc.settings.property_quota),
        ));
    }
    if img.tags.len() > svc.settings.tag_quota {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Maximum number of tags ({}) exceeded.", svc.settings.tag_quota),
        ));
    }
    Ok(())
}

// --------------------------------------------------------------------------- create

async fn create(State(svc): State<Ctx>, Auth(ctx): Auth, headers: HeaderMap, body: Bytes) -> ApiResult {
    if !headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Content-Type; use application/json.",
        ));
    }
    let Value::Object(body) = haneul_core::http::parse_json::<Value>(&body)? else {
        return Err(bad("Request body must be a JSON object."));
    };
    for k in ["direct_url", "self", "file", "schema", "stores"] {
        if body.contains_key(k) {
            return Err(ApiError::forbidden(format!("Attribute '{k}' is read-only.")));
        }
    }
    for (k, v) in &body {
        validate(k, v)?;
    }
    for k in READ_ONLY {
        if *k != "id" && body.contains_key(*k) {
            return Err(ApiError::forbidden(format!("Attribute '{k}' is read-only.")));
        }
    }
    for k in body.keys() {
        if reserved(k) {
            return Err(ApiError::forbidden(format!("Attribute '{k}' is reserved.")));
        }
    }
    let id = body.get("id").and_then(|v| v.as_str()).map(str::to_lowercase);
    let now = Utc::now();
    let mut img =
        Image::new(id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()), ctx.project_id().map(str::to_owned), now);
    let mut changed = Vec::new();
    for (k, v) in body {
        if k == "id" {
            continue;
        }
        if BASE.contains(&k.as_str()) {
            changed.push(BASE[BASE.iter().position(|b| *b == k).unwrap_or(0)]);
        }
        set_attr(&mut img, &k, v);
    }
    check_counts(&svc, &img)?;
    let m = svc.model();
    enforce(&svc, &ctx, "add_image", &json!({"project_id": img.owner, "visibility": img.visibility.as_str()}))?;
    check_privileged(&svc, &ctx, &img, &changed, &m)?;
    let saved = svc
        .write(|t| {
            if t.m.images.contains_key(&img.id) {
                return Err(Error::Conflict(format!("An image with identifier {} already exists", img.id)));
            }
            if let Some(owner) = &img.owner {
                svc.check_quota(&t.m, owner, "image_count_total", 1)?;
            }
            Ok(t.put(img)?)
        })
        .await?;
    let mut resp = (StatusCode::CREATED, Json(render(&saved))).into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, format!("/v2/images/{}", saved.id).parse().expect("an image path is a valid header"));
    h.insert("openstack-image-import-methods", "glance-direct".parse().expect("static header"));
    Ok(resp)
}

// --------------------------------------------------------------------------- show, delete

async fn show(State(svc): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let m = svc.model();
    let img = image_for(&svc, &m, &ctx, &id, "get_image")?;
    Ok(Json(render(&img)).into_response())
}

/// `GET /v2/images/{id}/tasks` (2.12): the image's asynchronous tasks. Imports here finish
/// within their request and leave no task records, so the list is empty.
async fn image_tasks(State(svc): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let m = svc.model();
    image_for(&svc, &m, &ctx, &id, "get_image")?;
    Ok(Json(serde_json::json!({"tasks": []})).into_response())
}

async fn delete(State(svc): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let m = svc.model();
    image_for(&svc, &m, &ctx, &id, "delete_image")?;
    let removed = svc
        .write(|t| {
            let img =
                t.m.images.get(&id).cloned().ok_or_else(|| Error::NotFound(format!("No image found with ID {id}")))?;
            if img.protected {
                return Err(Error::Forbidden(format!("Image {id} is protected and cannot be deleted.")));
            }
            t.delete::<Image>(&id);
            // Its members go with it (their keys are `<image>/<member>`: a range, not a scan).
            let members: Vec<String> =
                haneul_core::docstore::children(&t.m.members, &id).map(|mem| mem.id.clone()).collect();
            for key in members {
                t.delete::<Member>(&key);
            }
            Ok(img)
        })
        .await?;
    if let Err(e) = svc.store.delete(&removed.id).await {
        tracing::warn!(image = %id, error = ?e, "image data could not be removed; it is removed on the next start");
    }
    if removed.staged {
        let _ = svc.staging.delete(&removed.id).await;
    }
    Ok(no_content())
}

// --------------------------------------------------------------------------- actions

async fn deactivate(State(svc): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    change_activation(svc, ctx, id, "deactivate", Status::Active, Status::Deactivated).await
}

async fn reactivate(State(svc): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    change_activation(svc, ctx, id, "reactivate", Status::Deactivated, Status::Active).await
}

async fn change_activation(
    svc: Ctx,
    ctx: Arc<AuthContext>,
    id: String,
    rule: &str,
    from: Status,
    to: Status,
) -> ApiResult {
    let m = svc.model();
    let img = image_for(&svc, &m, &ctx, &id, rule)?;
    if img.status == to {
        return Ok(no_content());
    }
    svc.update(&id, |img| {
        if img.status != from {
            return Err(Error::Forbidden(format!("Not allowed to {rule} image in status '{}'", img.status.as_str())));
        }
        img.status = to;
        Ok(())
    })
    .await?;
    Ok(no_content())
}

// --------------------------------------------------------------------------- tags

async fn add_tag(State(svc): State<Ctx>, Auth(ctx): Auth, Path((id, tag)): Path<(String, String)>) -> ApiResult {
    let m = svc.model();
    image_for(&svc, &m, &ctx, &id, "modify_image")?;
    if tag.chars().count() > 255 {
        return Err(bad("Provided object does not match schema 'image': tag is too long (at most 255 characters)"));
    }
    let quota = svc.settings.tag_quota;
    svc.update(&id, |img| {
        if !img.tags.contains(&tag) {
            if img.tags.len() >= quota {
                return Err(Error::OverLimit(format!("Maximum number of tags ({quota}) exceeded.")));
            }
            img.tags.push(tag.clone());
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}

async fn delete_tag(State(svc): State<Ctx>, Auth(ctx): Auth, Path((id, tag)): Path<(String, String)>) -> ApiResult {
    let m = svc.model();
    image_for(&svc, &m, &ctx, &id, "modify_image")?;
    svc.update(&id, |img| {
        let before = img.tags.len();
        img.tags.retain(|t| *t != tag);
        if img.tags.len() == before {
            return Err(Error::NotFound(format!("Tag {tag} not found")));
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}

// --------------------------------------------------------------------------- update

const PATCH_20: &str = "application/openstack-images-v2.0-json-patch";
const PATCH_21: &str = "application/openstack-images-v2.1-json-patch";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

struct Change {
    op: Op,
    key: String,
    value: Option<Value>,
}

/// Parses a JSON pointer of one level; Glance's 400 for anything else.
fn pointer(path: &str) -> ApiResult<String> {
    let invalid = || bad(format!("Invalid JSON pointer for this resource: '{path}'"));
    let rest = path.strip_prefix('/').ok_or_else(invalid)?;
    if rest.is_empty() || rest.contains('/') {
        return Err(invalid());
    }
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err(invalid()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn parse_patch(content_type: &str, body: &[u8]) -> ApiResult<(bool, Vec<Change>)> {
    let v21 = content_type == PATCH_21;
    let Value::Array(items) = haneul_core::http::parse_json::<Value>(body)? else {
        return Err(bad("Request body must be a JSON array of operation objects."));
    };
    let mut out = Vec::new();
    for item in items {
        let Value::Object(o) = item else { return Err(bad("Operations must be JSON objects.")) };
        let (op, path) =
            if v21 {
                let op = match o.get("op").and_then(|v| v.as_str()) {
                    Some("add") => Op::Add,
                    Some("replace") => Op::Replace,
                    Some("remove") => Op::Remove,
                    Some(other) => {
                        return Err(bad(format!(
                    "Operation objects must contain exactly one of \"add\", \"remove\", or \"replace\"; got '{other}'."
                )))
                    }
                    None => return Err(bad("Operation objects must contain a string member named \"op\".")),
                };
                let path = o
                    .get("path")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| bad("Unable to find 'path' in JSON Schema change"))?;
                (op, path.to_string())
            } else {
                let found: Vec<(Op, &Value)> = [("add", Op::Add), ("replace", Op::Replace), ("remove", Op::Remove)]
                    .iter()
                    .filter_map(|(k, op)| o.get(*k).map(|p| (*op, p)))
                    .collect();
                match found.as_slice() {
                    [(op, Value::String(p))] => (*op, p.clone()),
                    _ => return Err(bad(
                        "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
                    )),
                }
            };
        let value = o.get("value").cloned();
        if op != Op::Remove && value.is_none() {
            return Err(bad("Operation objects must contain a member named \"value\"."));
        }
        out.push(Change { op, key: pointer(&path)?, value });
    }
    Ok((v21, out))
}

async fn update(
    State(svc): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ct = ct.split(';').next().unwrap_or("").trim();
    if ct != PATCH_20 && ct != PATCH_21 {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("Unsupported Content-Type {ct}"))
            .with_header("accept-patch", format!("{PATCH_20}, {PATCH_21}")));
    }
    let m = svc.model();
    image_for(&svc, &m, &ctx, &id, "modify_image")?;
    let (v21, changes) = parse_patch(ct, &body)?;
    for c in &changes {
        if READ_ONLY.contains(&c.key.as_str()) {
            return Err(ApiError::forbidden(format!("Attribute '{}' is read-only.", c.key)));
        }
        if reserved(&c.key) {
            return Err(ApiError::forbidden(format!("Attribute '{}' is reserved.", c.key)));
        }
        if let Some(v) = &c.value {
            validate(&c.key, v)?;
        }
    }
    let before =
        m.images.get(&id).cloned().ok_or_else(|| ApiError::not_found(format!("No image found with ID {id}")))?;
    let mut img = (*before).clone();
    let mut changed: Vec<&str> = Vec::new();
    for c in changes {
        let base = BASE.iter().find(|b| **b == c.key).copied();
        match (c.op, base) {
            (Op::Remove, Some(_)) => {
                return Err(ApiError::forbidden(format!("Properties {} cannot be removed.", c.key)))
            }
            (Op::Remove, None) => {
                if img.properties.remove(&c.key).is_none() {
                    return Err(ApiError::conflict(format!("Property {} does not exist.", c.key)));
                }
            }
            (op, base) => {
                if base.is_none() {
                    let exists = img.properties.contains_key(&c.key);
                    if op == Op::Replace && !exists {
                        return Err(ApiError::conflict(format!("Property {} does not exist.", c.key)));
                    }
                    if op == Op::Add && exists && !v21 {
                        return Err(ApiError::conflict(format!("Property {} already present.", c.key)));
                    }
                }
                if let Some(b) = base {
                    if matches!(b, "disk_format" | "container_format")
                        && !matches!(img.status, Status::Queued | Status::Importing)
                    {
                        return Err(ApiError::forbidden(format!(
                            "Attribute {b} can be only replaced for a queued image."
                        )));
                    }
                    changed.push(b);
                }
                set_attr(&mut img, &c.key, c.value.unwrap_or(Value::Null));
            }
        }
    }
    check_counts(&svc, &img)?;
    check_privileged(&svc, &ctx, &img, &changed, &m)?;
    let saved = svc
        .write(|t| {
            if !t.m.images.contains_key(&id) {
                return Err(Error::NotFound(format!("No image found with ID {id}")));
            }
            // Data fields may have changed meanwhile (an upload finishing): keep them.
            let current = t.edit(&t.m.images, "image", &id)?;
            img.status = current.status;
            img.size = current.size;
            img.virtual_size = current.virtual_size;
            img.checksum = current.checksum;
            img.os_hash_algo = current.os_hash_algo;
            img.os_hash_value = current.os_hash_value;
            img.staged = current.staged;
            img.updated_at = Utc::now();
            Ok(t.put(img)?)
        })
        .await?;
    Ok(Json(render(&saved)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_one_level_with_escapes() {
        assert_eq!(pointer("/a~1b~0c").unwrap(), "a/b~c");
        assert!(pointer("a").is_err());
        assert!(pointer("/a/b").is_err());
        assert!(pointer("/").is_err());
        assert!(pointer("/a~2").is_err());
    }

    #[test]
    fn both_patch_dialects_parse() {
        let (_, c) = parse_patch(PATCH_20, br#"[{"replace": "/name", "value": "x"}]"#).unwrap();
        assert_eq!((c[0].op, c[0].key.as_str()), (Op::Replace, "name"));
        let (_, c) = parse_patch(PATCH_21, br#"[{"op": "remove", "path": "/foo"}]"#).unwrap();
        assert_eq!((c[0].op, c[0].key.as_str()), (Op::Remove, "foo"));
        assert!(parse_patch(PATCH_21, br#"[{"op": "move", "path": "/a", "from": "/b"}]"#).is_err());
        assert!(parse_patch(PATCH_21, br#"[{"op": "add", "path": "/a"}]"#).is_err());
        assert!(parse_patch(PATCH_20, br#"[{"add": "/a", "remove": "/b", "value": 1}]"#).is_err());
        assert!(parse_patch(PATCH_21, br#"{"op": "add"}"#).is_err());
    }
}
