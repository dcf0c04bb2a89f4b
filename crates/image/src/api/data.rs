//! Image data: upload (`PUT /file`), download (`GET /file`, with ranges), and the
//! `glance-direct` import (`PUT /stage`, then `POST /import`).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures_util::StreamExt;
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::error::ApiError;
use haneul_core::routes::{target, Routes};
use serde_json::Value;

use super::{image_for, no_content, ApiResult, Ctx};
use crate::model::{Image, Status};
use crate::service::{is_admin, Error, Images};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .put("/v2/images/{id}/file", target("upload_image"), upload)
        .get("/v2/images/{id}/file", target("download_image"), download)
        .put("/v2/images/{id}/stage", target("upload_image"), stage)
        .post("/v2/images/{id}/import", target("import_image"), import)
}

fn require_octet_stream(headers: &HeaderMap) -> ApiResult<()> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.split(';').next().unwrap_or("").trim() != "application/octet-stream" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be application/octet-stream, not '{ct}'."),
        ));
    }
    Ok(())
}

fn declared_size(headers: &HeaderMap) -> u64 {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Puts an image whose transfer did not finish back to `queued`, also when the request is
/// dropped mid-way (the client went away): the guard's `Drop` does it.
struct Revert {
    svc: Arc<Images>,
    id: String,
    armed: bool,
}

impl Revert {
    fn new(svc: &Arc<Images>, id: &str) -> Revert {
        Revert { svc: svc.clone(), id: id.to_string(), armed: true }
    }
    fn disarm(mut self) {
        self.armed = false;
    }
    /// Reverts now, before the error is answered, so that the client sees the image queued.
    async fn now(mut self) {
        self.armed = false;
        revert(self.svc.clone(), std::mem::take(&mut self.id)).await;
    }
}

impl Drop for Revert {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let svc = self.svc.clone();
        let id = std::mem::take(&mut self.id);
        tokio::spawn(revert(svc, id));
    }
}

async fn revert(svc: Arc<Images>, id: String) {
    let r = svc
        .update(&id, |img| {
            if img.status.is_transient() {
                img.clear_data();
            }
            Ok(())
        })
        .await;
    match r {
        Ok(_) => tracing::info!(image = %id, "transfer did not complete; image is queued again"),
        Err(Error::NotFound(_)) => {}
        Err(e) => tracing::error!(image = %id, error = ?e, "could not put an interrupted image back to queued"),
    }
    let _ = svc.staging.delete(&id).await;
}

/// Moves a queued image into `to`, checking Glance's preconditions in its order.
async fn begin_transfer(svc: &Images, ctx: &AuthContext, id: &str, to: Status) -> ApiResult<Arc<Image>> {
    let project = ctx.project_id().map(str::to_owned);
    let img = svc
        .write(|t| {
            let mut img = t.edit(&t.m.images, "image", id)?;
            if !img.status.can_become(to) || img.status != Status::Queued {
                return Err(Error::Conflict(format!(
                    "Image status transition from {} to {} is not allowed",
                    img.status.as_str(),
                    to.as_str()
                )));
            }
            if to == Status::Saving && (img.disk_format.is_none() || img.container_format.is_none()) {
                return Err(Error::BadRequest(
                    "Properties disk_format, container_format must be set prior to saving data.".into(),
                ));
            }
            if let Some(owner) = img.owner.clone().or(project) {
                svc.check_quota(&t.m, &owner, "image_count_uploading", 1)?;
            }
            img.status = to;
            img.updated_at = Utc::now();
            Ok(t.put(img)?)
        })
        .await?;
    Ok(img)
}

/// Glance's checks before any byte of an upload or a stage is read, in its order: content
/// type, visibility, the size quota `resource` against the declared length, policy. The
/// snapshot checked and the image's owner.
fn precheck(
    svc: &Images,
    ctx: &AuthContext,
    id: &str,
    headers: &HeaderMap,
    resource: &str,
) -> ApiResult<(Arc<crate::model::Model>, String)> {
    require_octet_stream(headers)?;
    let m = svc.model();
    let img = super::find_image(svc, &m, ctx, id)?;
    let owner = img.owner.clone().unwrap_or_default();
    svc.check_quota(&m, &owner, resource, declared_size(headers) >> 20)?;
    image_for(svc, &m, ctx, id, "upload_image")?;
    Ok((m, owner))
}

async fn upload(
    State(svc): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let (m, owner) = precheck(&svc, &ctx, &id, &headers, "image_size_total")?;
    let img = begin_transfer(&svc, &ctx, &id, Status::Saving).await?;
    let guard = Revert::new(&svc, &id);

    let headroom = svc.size_headroom(&m, &owner);
    let limit = headroom.map_or(svc.settings.size_cap, |h| h.min(svc.settings.size_cap));
    let note = headroom.filter(|h| *h < svc.settings.size_cap).map(|_| {
        format!("Denying attempt to upload image because it exceeds the quota: project {owner} has no more image_size_total left.")
    });
    let ingested = match svc.ingest(&img, body.into_data_stream(), limit, note.as_deref()).await {
        Ok(i) => i,
        Err(e) => {
            guard.now().await;
            return Err(e.into());
        }
    };
    let stored = ingested.stored;
    let result = svc
        .update(&id, |img| {
            if img.status != Status::Saving {
                return Err(Error::Conflict(format!(
                    "Image {id} changed status to {} during upload",
                    img.status.as_str()
                )));
            }
            img.status = Status::Active;
            img.size = Some(stored.size);
            img.virtual_size = ingested.virtual_size;
            img.checksum = Some(stored.md5.clone());
            img.os_hash_algo = Some("sha512".into());
            img.os_hash_value = Some(stored.sha512.clone());
            Ok(())
        })
        .await;
    match result {
        Ok(_) => {
            guard.disarm();
            Ok(no_content())
        }
        Err(e) => {
            // Deleted (or reset) while the data arrived: the data has no image.
            let _ = svc.store.delete(&id).await;
            Err(match e {
                Error::NotFound(_) => Error::Gone(format!(
                    "Image {id} could not be found after upload. The image may have been deleted during the upload."
                ))
                .into(),
                e => e.into(),
            })
        }
    }
}

/// `bytes=a-b`, `a-` or `-n` (also the old `Content-Range: bytes a-b/*` request header):
/// the inclusive start and end within `size`; 416 when nothing of it is in the image.
fn parse_range(raw: &str, size: u64) -> ApiResult<(u64, u64)> {
    let unsatisfiable = || {
        ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, format!("Requested range {raw} not satisfiable"))
            .with_header("content-range", format!("bytes */{size}"))
    };
    let spec = raw.trim().strip_prefix("bytes").map(|s| s.trim_start_matches(['=', ' '])).ok_or_else(unsatisfiable)?;
    let spec = spec.split('/').next().unwrap_or("");
    if spec.contains(',') {
        return Err(ApiError::bad_request("Multiple ranges are not supported."));
    }
    let (a, b) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| unsatisfiable());
    let (start, end) = match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, false) => {
            let n = num(b)?;
            if n == 0 {
                return Err(unsatisfiable());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (false, true) => (num(a)?, size.saturating_sub(1)),
        (false, false) => (num(a)?, num(b)?.min(size.saturating_sub(1))),
        (true, true) => return Err(unsatisfiable()),
    };
    if start >= size || start > end {
        return Err(unsatisfiable());
    }
    Ok((start, end))
}

async fn download(State(svc): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, headers: HeaderMap) -> ApiResult {
    let m = svc.model();
    let img = image_for(&svc, &m, &ctx, &id, "download_image")?;
    if img.status == Status::Deactivated && !is_admin(&ctx) {
        return Err(ApiError::forbidden("The requested image has been deactivated. Image data download is forbidden."));
    }
    let (Some(size), Some(md5)) = (img.size, img.checksum.as_deref()) else {
        return Ok(no_content());
    };
    if !matches!(img.status, Status::Active | Status::Deactivated) {
        return Ok(no_content());
    }
    let range = headers
        .get(header::RANGE)
        .or_else(|| headers.get(header::CONTENT_RANGE))
        .and_then(|v| v.to_str().ok())
        .map(|r| parse_range(r, size))
        .transpose()?;
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let len = if size == 0 { 0 } else { end - start + 1 };
    let stream = svc.store.read(&id, start, len).await.map_err(Error::from)?;
    let mut resp = Response::new(Body::from_stream(stream.map(|r| r.map(Bytes::from))));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(md5) {
        h.insert("content-md5", v);
    }
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

async fn stage(
    State(svc): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    precheck(&svc, &ctx, &id, &headers, "image_stage_total")?;
    begin_transfer(&svc, &ctx, &id, Status::Uploading).await?;
    let guard = Revert::new(&svc, &id);
    let staged = match stage_data(&svc, &id, body).await {
        Ok(s) => s,
        Err(e) => {
            guard.now().await;
            return Err(e.into());
        }
    };
    svc.update(&id, |img| {
        if img.status != Status::Uploading {
            return Err(Error::Conflict(format!("Image {id} changed status to {} while staging", img.status.as_str())));
        }
        img.staged = true;
        img.size = Some(staged.size);
        Ok(())
    })
    .await?;
    guard.disarm();
    Ok(no_content())
}

async fn stage_data(svc: &Images, id: &str, body: Body) -> Result<crate::store::Stored, Error> {
    let mut upload = svc.staging.begin(id, svc.settings.size_cap).await?;
    let mut body = body.into_data_stream();
    let idle = crate::service::IDLE_TIMEOUT;
    while let Some(chunk) = tokio::time::timeout(idle, body.next())
        .await
        .map_err(|_| Error::Interrupted(format!("no data for {} seconds", idle.as_secs())))?
    {
        let chunk = chunk.map_err(|e| Error::Interrupted(e.to_string()))?;
        upload.write(chunk).await.map_err(|e| match e {
            crate::store::StoreError::TooLarge { limit } => {
                Error::OverLimit(format!("Image exceeds the size cap of {limit} bytes."))
            }
            e => Error::Data(e),
        })?;
    }
    Ok(upload.commit().await?)
}

async fn import(State(svc): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let m = svc.model();
    let img = image_for(&svc, &m, &ctx, &id, "import_image")?;
    let body: Value = haneul_core::http::parse_json(&body)?;
    let method = body.get("method").and_then(|m| m.get("name")).and_then(|n| n.as_str());
    match method {
        Some("glance-direct") => {}
        Some(other) => return Err(ApiError::bad_request(format!("Import method {other} is not valid at this site."))),
        None => return Err(ApiError::bad_request("Import request requires a 'method' with a 'name'.")),
    }
    if body.get("all_stores_must_succeed") == Some(&Value::Bool(false)) {
        return Err(ApiError::bad_request(
            "This cloud has a single store; all_stores_must_succeed=false does not apply.",
        ));
    }
    if body.get("stores").is_some_and(|s| !s.as_array().is_some_and(|a| a.is_empty())) {
        return Err(ApiError::bad_request("Multi backend is not supported at this site; do not name stores."));
    }
    if img.status == Status::Active {
        return Err(ApiError::conflict(format!("Image {id} is already active; it cannot be imported again.")));
    }
    if img.disk_format.is_none() || img.container_format.is_none() {
        return Err(ApiError::conflict(
            "Properties disk_format, container_format must be set prior to importing data.",
        ));
    }
    svc.update(&id, |img| {
        if img.status != Status::Uploading || !img.staged {
            return Err(Error::Conflict("Image needs to be staged before 'glance-direct' method can be used".into()));
        }
        img.status = Status::Importing;
        Ok(())
    })
    .await?;
    let svc2 = svc.clone();
    tokio::spawn(async move { run_import(svc2, id).await });
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Moves staged data into the store through the same checks as an upload.
async fn run_import(svc: Arc<Images>, id: String) {
    let guard = Revert::new(&svc, &id);
    let Some(img) = svc.model().images.get(&id).cloned() else { return };
    let staged_size = img.size.unwrap_or(0);
    let data = match svc.staging.read(&id, 0, staged_size).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(image = %id, error = ?e, "staged data could not be read; import failed");
            return;
        }
    };
    let ingested = match svc.ingest(&img, data, svc.settings.size_cap, None).await {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(image = %id, error = %e, "import refused; image is queued again");
            return;
        }
    };
    let stored = ingested.stored;
    let r = svc
        .update(&id, |img| {
            if img.status != Status::Importing {
                return Err(Error::Conflict("image left importing".into()));
            }
            img.status = Status::Active;
            img.staged = false;
            img.size = Some(stored.size);
            img.virtual_size = ingested.virtual_size;
            img.checksum = Some(stored.md5.clone());
            img.os_hash_algo = Some("sha512".into());
            img.os_hash_value = Some(stored.sha512.clone());
            Ok(())
        })
        .await;
    let _ = svc.staging.delete(&id).await;
    match r {
        Ok(_) => {
            guard.disarm();
            tracing::info!(image = %id, "glance-direct import complete");
        }
        Err(e) => {
            let _ = svc.store.delete(&id).await;
            tracing::warn!(image = %id, error = %e, "import finished for an image that changed meanwhile");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_7233() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), (0, 9));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), (90, 99));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), (90, 99));
        assert_eq!(parse_range("bytes=50-500", 100).unwrap(), (50, 99));
        assert_eq!(parse_range("bytes 10-19/100", 100).unwrap(), (10, 19));
        assert_eq!(parse_range("bytes=100-", 100).unwrap_err().status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(parse_range("bytes=5-2", 100).unwrap_err().status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap_err().status, StatusCode::BAD_REQUEST);
    }
}
