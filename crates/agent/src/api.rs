//! The agent's internal REST API, which the controller calls to run instances on this host.
//! Not an OpenStack API: every call needs a token with the `service` (or `admin`) role, that
//! is, the controller's service user, never a cloud user.
//!
//! ```text
//! GET    /v1/host                      this host: name, resources, accelerator
//! GET    /v1/instances                 {"instances": [observed, ...]}
//! GET    /v1/instances/{uuid}          observed
//! PUT    /v1/instances/{uuid}          spec -> observed (idempotent per generation; 409 when stale)
//! DELETE /v1/instances/{uuid}          204, also when there was nothing to remove
//! GET    /v1/instances/{uuid}/console  ?lines=N -> {"output": "..."}
//! POST   /v1/instances/{uuid}/snapshot {"image_id": ...} -> 204 once the disk's copy is uploaded
//! PUT    /v1/images/{id}               204 once the image is in this host's cache
//! ```

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use haneul_core::auth::{auth_layer, Auth, TokenValidator};
use haneul_core::{ApiError, FaultStyle};
use serde::Deserialize;
use serde_json::json;

use crate::instances::{Error, Instances, Spec};

/// Largest request the agent takes (a spec with its config drive files).
const BODY_LIMIT: usize = 4 << 20;

pub fn router(instances: Arc<Instances>, validator: Arc<dyn TokenValidator>) -> Router {
    let app = Router::new()
        .route("/v1/host", get(host))
        .route("/v1/instances", get(list))
        .route("/v1/instances/{id}", get(show).put(ensure).delete(destroy))
        .route("/v1/instances/{id}/console", get(console))
        .route("/v1/instances/{id}/snapshot", axum::routing::post(snapshot))
        .route("/v1/images/{id}", axum::routing::put(cache_image))
        .with_state(instances)
        .layer(auth_layer(validator));
    haneul_core::http::service_layers(app, "agent", FaultStyle::Compute, BODY_LIMIT)
}

fn require_service(auth: &Auth) -> Result<(), ApiError> {
    if auth.0.has_role("service") || auth.0.has_role("admin") {
        Ok(())
    } else {
        Err(ApiError::forbidden("The agent API is for the controller's service user."))
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::BadRequest(m) => ApiError::bad_request(m),
            Error::NotFound(m) => ApiError::not_found(m),
            Error::Stale(m) => ApiError::conflict(m),
            // A failure on this host: the controller is told all of it (the error and its
            // causes), as it records it in the server's fault.
            failed => {
                let message = haneul_core::service::chain(&failed);
                tracing::error!(error = %message, "instance operation failed");
                ApiError::internal(message)
            }
        }
    }
}

async fn host(State(i): State<Arc<Instances>>, auth: Auth) -> Result<Response, ApiError> {
    require_service(&auth)?;
    let r = crate::host::resources(&i.settings.instances_dir)
        .map_err(|e| ApiError::internal(format!("reading this host's resources: {e}")))?;
    Ok(Json(json!({"host": {
        "name": i.settings.host,
        "vcpus": r.vcpus, "memory_mb": r.memory_mb, "disk_gb": r.disk_gb,
        "accel": format!("{:?}", i.settings.accel).to_lowercase(),
    }}))
    .into_response())
}

async fn list(State(i): State<Arc<Instances>>, auth: Auth) -> Result<Response, ApiError> {
    require_service(&auth)?;
    Ok(Json(json!({"instances": i.list().await})).into_response())
}

async fn show(State(i): State<Arc<Instances>>, auth: Auth, Path(id): Path<String>) -> Result<Response, ApiError> {
    require_service(&auth)?;
    match i.observe(&id).await {
        Some(o) => Ok(Json(o).into_response()),
        None => Err(ApiError::not_found(format!("no instance {id} on this host"))),
    }
}

async fn ensure(
    State(i): State<Arc<Instances>>,
    auth: Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_service(&auth)?;
    let spec: Spec = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("bad spec: {e}")))?;
    let observed = i.ensure(&id, spec).await?;
    Ok(Json(observed).into_response())
}

async fn destroy(State(i): State<Arc<Instances>>, auth: Auth, Path(id): Path<String>) -> Result<Response, ApiError> {
    require_service(&auth)?;
    i.destroy(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ConsoleQuery {
    lines: Option<usize>,
}

async fn console(
    State(i): State<Arc<Instances>>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ConsoleQuery>,
) -> Result<Response, ApiError> {
    require_service(&auth)?;
    Ok(Json(json!({"output": i.console(&id, q.lines)?})).into_response())
}

async fn cache_image(
    State(i): State<Arc<Instances>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_service(&auth)?;
    i.cache_image(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotRequest {
    image_id: String,
}

async fn snapshot(
    State(i): State<Arc<Instances>>,
    auth: Auth,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    require_service(&auth)?;
    let req: SnapshotRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("bad snapshot request: {e}")))?;
    i.snapshot(&id, &req.image_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_on_the_host_is_a_500_that_carries_its_causes() {
        let source = std::io::Error::other("no space left on device");
        let e = Error::File(haneul_core::error::FileError {
            what: "creating",
            path: "/var/lib/haneul/instances/x".into(),
            source,
        });
        let a = ApiError::from(e);
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(a.message, "creating /var/lib/haneul/instances/x: no space left on device");
        let plug =
            Error::Plug(crate::netdp::sys::SysError::Failed { command: "ip link".into(), stderr: "busy".into() });
        assert_eq!(ApiError::from(plug).message, "plugging the guest's ports: `ip link` failed: busy");
    }

    #[test]
    fn what_the_caller_got_wrong_keeps_its_status() {
        assert_eq!(ApiError::from(Error::Stale("older".into())).status, StatusCode::CONFLICT);
        assert_eq!(ApiError::from(Error::BadRequest("bad".into())).status, StatusCode::BAD_REQUEST);
        assert_eq!(ApiError::from(Error::NotFound("gone".into())).status, StatusCode::NOT_FOUND);
    }
}
