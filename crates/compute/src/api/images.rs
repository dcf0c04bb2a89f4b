//! The image proxy (`/images`, gone from 2.36 as in Nova): the image service's images in
//! Nova's shape, read and changed with the caller's own token, so the image service decides
//! what the caller may see and do. "Metadata" is an image's own properties.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use chrono::DateTime;
use haneul_core::auth::{Auth, RawToken};
use haneul_core::client::ClientError;
use haneul_core::error::ApiError;
use haneul_core::routes::{Access, Routes};
use hyper::Method;
use serde_json::{json, Map, Value};

use super::{links, ApiResult, Ctx, Mv};
use crate::service::Compute;

/// Nova asks no rule for its image proxy: each call goes to the image service with the
/// caller's own token, and the image service's policy decides.
const PROXY: Access = Access::Delegated("image");

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/images", PROXY, list)
        .get("/images/detail", PROXY, list_detail)
        .get("/images/{id}", PROXY, show)
        .delete("/images/{id}", PROXY, delete)
        .get("/images/{id}/metadata", PROXY, list_meta)
        .post("/images/{id}/metadata", PROXY, merge_meta)
        .put("/images/{id}/metadata", PROXY, replace_meta)
        .get("/images/{id}/metadata/{key}", PROXY, show_meta)
        .put("/images/{id}/metadata/{key}", PROXY, put_meta)
        .delete("/images/{id}/metadata/{key}", PROXY, delete_meta)
}

/// The image service's own fields; everything else on an image is a property.
const CORE: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "min_ram",
    "min_disk",
    "created_at",
    "updated_at",
    "tags",
    "self",
    "file",
    "schema",
    "container_format",
    "disk_format",
    "direct_url",
    "locations",
    "os_hidden",
    "stores",
];

/// An image's own properties.
pub fn properties(image: &Value) -> Map<String, Value> {
    image
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, v)| !CORE.contains(&k.as_str()) && !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn proxy_available(mv: Mv) -> ApiResult<()> {
    if mv.at_least(36) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    Ok(())
}

/// A call to the image service as the caller; its faults become Nova's.
async fn glance(c: &Compute, token: &str, method: Method, id: &str, patch: Option<Vec<Value>>) -> ApiResult<Value> {
    let (status, bytes) = c.images.call(token, method, id, patch).await.map_err(image_fault)?;
    let url = c.images.image_url(id);
    match status {
        200..=299 if bytes.is_empty() => Ok(Value::Null),
        200..=299 => serde_json::from_slice(&bytes).map_err(|err| image_fault(ClientError::Json { url, err })),
        404 => Err(ApiError::not_found("Image not found.")),
        403 => Err(ApiError::forbidden("You are not allowed to change this image.")),
        409 => Err(ApiError::conflict("The image cannot be changed in its current state.")),
        413 => Err(ApiError::forbidden("Quota exceeded for metadata items.")),
        400 => Err(ApiError::bad_request(String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>())),
        other => {
            Err(image_fault(ClientError::Status { url, status: other, body: String::from_utf8_lossy(&bytes).into() }))
        }
    }
}

/// An image service call that failed as Nova answers it: the image service's own policy
/// refusal (403) passed on, anything else the service being unavailable.
fn image_fault(e: ClientError) -> ApiError {
    if let ClientError::Status { status: 403, .. } = e {
        return ApiError::forbidden("The image service does not allow this request.");
    }
    tracing::warn!(error = %e, "image service call failed");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The image service could not be reached.")
}

/// Nova's status and progress for an image service status.
fn status(image: &Value) -> (&'static str, u8) {
    match image["status"].as_str().unwrap_or("") {
        "active" => ("ACTIVE", 100),
        "queued" | "importing" | "uploading" => ("SAVING", 25),
        "saving" => ("SAVING", 50),
        "killed" => ("ERROR", 0),
        "deleted" | "pending_delete" => ("DELETED", 0),
        _ => ("UNKNOWN", 0),
    }
}

fn image_links(c: &Compute, id: &str) -> Value {
    let mut l = links(c, &format!("images/{id}"));
    if let Some(a) = l.as_array_mut() {
        a.push(json!({
            "rel": "alternate",
            "type": "application/vnd.openstack.image",
            "href": c.images.bookmark(&id),
        }));
    }
    l
}

fn summary(c: &Compute, image: &Value) -> Value {
    let id = image["id"].as_str().unwrap_or_default();
    json!({"id": id, "name": image["name"], "links": image_links(c, id)})
}

fn detail(c: &Compute, image: &Value) -> Value {
    let id = image["id"].as_str().unwrap_or_default();
    let (status, progress) = status(image);
    let mut v = json!({
        "id": id,
        "name": image["name"],
        "minRam": image["min_ram"].as_i64().unwrap_or(0),
        "minDisk": image["min_disk"].as_i64().unwrap_or(0),
        "metadata": properties(image),
        "created": image["created_at"],
        "updated": image["updated_at"],
        "status": status,
        "progress": progress,
        "OS-EXT-IMG-SIZE:size": image["size"].as_i64().unwrap_or(0),
        "links": image_links(c, id),
    });
    if let Some(server) = image["instance_uuid"].as_str() {
        v["server"] = json!({"id": server, "links": links(c, &format!("servers/{server}"))});
    }
    v
}

/// Nova's list filters (name, status, changes-since, server, type, minRam, minDisk) and
/// limit/marker paging, over the caller's images.
fn filtered(images: Vec<Value>, q: &HashMap<String, String>) -> ApiResult<Vec<Value>> {
    let since = match q.get("changes-since") {
        None => None,
        Some(t) => Some(DateTime::parse_from_rfc3339(t).map_err(|_| {
            ApiError::bad_request(format!("Invalid input for query parameters changes-since. Value: {t}."))
        })?),
    };
    let at_least = |key: &str, field: &str, image: &Value| {
        q.get(key).and_then(|v| v.parse::<i64>().ok()).is_none_or(|min| image[field].as_i64().unwrap_or(0) >= min)
    };
    let mut out: Vec<Value> = images
        .into_iter()
        .filter(|i| q.get("name").is_none_or(|n| i["name"].as_str() == Some(n)))
        .filter(|i| q.get("status").is_none_or(|s| s.eq_ignore_ascii_case(status(i).0)))
        .filter(|i| {
            q.get("server").is_none_or(|s| {
                let id = s.trim_end_matches('/').rsplit('/').next().unwrap_or(s);
                i["instance_uuid"].as_str() == Some(id)
            })
        })
        .filter(|i| q.get("type").is_none_or(|t| i["image_type"].as_str() == Some(t)))
        .filter(|i| {
            since.is_none_or(|t| {
                i["updated_at"].as_str().and_then(|u| DateTime::parse_from_rfc3339(u).ok()).is_some_and(|u| u >= t)
            })
        })
        .filter(|i| at_least("minRam", "min_ram", i) && at_least("minDisk", "min_disk", i))
        .collect();
    if let Some(marker) = q.get("marker") {
        let at = out
            .iter()
            .position(|i| i["id"].as_str() == Some(marker))
            .ok_or_else(|| ApiError::bad_request(format!("marker [{marker}] not found")))?;
        out.drain(..=at);
    }
    if let Some(l) = q.get("limit") {
        let l = l.parse::<usize>().map_err(|_| ApiError::bad_request(format!("limit param must be an integer")))?;
        out.truncate(l);
    }
    Ok(out)
}

async fn list(
    State(c): State<Ctx>,
    Auth(_): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    listing(&c, mv, &token.0, &q, summary).await
}

async fn list_detail(
    State(c): State<Ctx>,
    Auth(_): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    listing(&c, mv, &token.0, &q, detail).await
}

async fn listing(
    c: &Compute,
    mv: Mv,
    token: &str,
    q: &HashMap<String, String>,
    view: fn(&Compute, &Value) -> Value,
) -> ApiResult {
    proxy_available(mv)?;
    let images = filtered(c.images_visible_to(token).await.map_err(image_fault)?, q)?;
    Ok(Json(json!({"images": images.iter().map(|i| view(c, i)).collect::<Vec<_>>()})).into_response())
}

async fn get_image(c: &Compute, token: &str, id: &str) -> ApiResult<Value> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ApiError::not_found("Image not found."));
    }
    glance(c, token, Method::GET, id, None).await
}

async fn show(
    State(c): State<Ctx>,
    Auth(_): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Path(id): Path<String>,
) -> ApiResult {
    proxy_available(mv)?;
    let image = get_image(&c, &token.0, &id).await?;
    Ok(Json(json!({"image": detail(&c, &image)})).into_response())
}

async fn delete(
    State(c): State<Ctx>,
    Auth(_): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Path(id): Path<String>,
) -> ApiResult {
    proxy_available(mv)?;
    get_image(&c, &token.0, &id).await?;
    glance(&c, &token.0, Method::DELETE, &id, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_meta(
    State(c): State<Ctx>,
    Auth(_): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Path(id): Path<String>,
) -> ApiResult {
    proxy_available(mv)?;
    let image = get_image(&c, &token.0, &id).await?;
    Ok(Json(json!({"metadata": properties(&image)})).into_response())
}

async fn show_meta(
    State(c): State<Ctx>,
    Auth(_): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult {
    proxy_available(mv)?;
    let image = get_image(&c, &token.0, &id).await?;
    let props = properties(&image);
    let value = props.get(&key).ok_or_else(|| ApiError::not_found("Image has no such metadata key"))?;
    Ok(Json(json!({"meta": {key: value}})).into_response())
}

/// A `metadata` (or `meta`) object of string keys (1–255) to string values.
fn metadata_body(body: &[u8], member: &str) -> ApiResult<Map<String, Value>> {
    let v: Value = haneul_core::http::parse_json(body)?;
    match v.get(member) {
        Some(Value::Object(m)) => {
            for (k, val) in m {
                if k.is_empty() || k.chars().count() > 255 || !val.is_string() {
                    return Err(ApiError::bad_request(format!(
                        "Invalid input for field/attribute {member}. Value: {k}."
                    )));
                }
            }
            Ok(m.clone())
        }
        _ => Err(ApiError::bad_request("Malformed request body")),
    }
}

/// Moves the image's properties to `wanted` with one JSON patch; refuses more properties than
/// the `metadata_items` quota.
async fn set_properties(
    c: &Compute,
    token: &str,
    image: &Value,
    wanted: Map<String, Value>,
    project: Option<&str>,
) -> ApiResult<Map<String, Value>> {
    let limit = project
        .map(|p| {
            crate::service::quotas::limits(&c.model(), c.settings.key_pairs_quota as i64, p, None)["metadata_items"]
        })
        .unwrap_or(-1);
    if limit >= 0 && wanted.len() as i64 > limit {
        return Err(ApiError::forbidden("Quota exceeded for metadata items."));
    }
    for k in wanted.keys() {
        if CORE.contains(&k.as_str()) {
            return Err(ApiError::forbidden(format!("Attribute '{k}' is reserved.")));
        }
    }
    let current = properties(image);
    let pointer = |k: &str| format!("/{}", k.replace('~', "~0").replace('/', "~1"));
    let mut ops = Vec::new();
    for k in current.keys().filter(|k| !wanted.contains_key(*k)) {
        ops.push(json!({"op": "remove", "path": pointer(k)}));
    }
    for (k, v) in &wanted {
        match current.get(k) {
            Some(old) if old == v => {}
            Some(_) => ops.push(json!({"op": "replace", "path": pointer(k), "value": v})),
            None => ops.push(json!({"op": "add", "path": pointer(k), "value": v})),
        }
    }
    let id = image["id"].as_str().unwrap_or_default();
    let updated = if ops.is_empty() { image.clone() } else { glance(c, token, Method::PATCH, id, Some(ops)).await? };
    Ok(properties(&updated))
}

async fn replace_meta(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    write_meta(&c, &ctx, mv, &token.0, &id, &body, true).await
}

async fn merge_meta(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    write_meta(&c, &ctx, mv, &token.0, &id, &body, false).await
}

/// `PUT` (`replace`) or `POST` (merge) of an image's metadata.
async fn write_meta(
    c: &Compute,
    ctx: &haneul_core::auth::AuthContext,
    mv: Mv,
    token: &str,
    id: &str,
    body: &[u8],
    replace: bool,
) -> ApiResult {
    proxy_available(mv)?;
    let given = metadata_body(body, "metadata")?;
    let image = get_image(c, token, id).await?;
    let wanted = if replace {
        given
    } else {
        let mut all = properties(&image);
        all.extend(given);
        all
    };
    let md = set_properties(c, token, &image, wanted, ctx.project_id()).await?;
    Ok(Json(json!({"metadata": md})).into_response())
}

async fn put_meta(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    proxy_available(mv)?;
    let meta = metadata_body(&body, "meta")?;
    if meta.len() != 1 {
        return Err(ApiError::bad_request("Request body contains too many items"));
    }
    let Some(value) = meta.get(&key) else {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    };
    let image = get_image(&c, &token.0, &id).await?;
    let mut wanted = properties(&image);
    wanted.insert(key.clone(), value.clone());
    set_properties(&c, &token.0, &image, wanted, ctx.project_id()).await?;
    Ok(Json(json!({"meta": {key: value}})).into_response())
}

async fn delete_meta(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult {
    proxy_available(mv)?;
    let image = get_image(&c, &token.0, &id).await?;
    let mut wanted = properties(&image);
    if wanted.remove(&key).is_none() {
        return Err(ApiError::not_found("Image has no such metadata key"));
    }
    set_properties(&c, &token.0, &image, wanted, ctx.project_id()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
