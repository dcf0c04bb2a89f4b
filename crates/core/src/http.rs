//! HTTP plumbing shared by every API: request ids, request logs, fault rendering, JSON bodies.

use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FaultStyle};

pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";

/// The request id of the request being served, inserted into its extensions.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Wraps a service's router with what every OpenStack API needs: a request id on every
/// response, one log line per request, error bodies in the service's fault style, a body
/// size limit, and OpenStack's 404/405 faults for unknown paths and methods.
pub fn service_layers(router: Router, service: &'static str, style: FaultStyle, body_limit: usize) -> Router {
    router
        .fallback(|| async { ApiError::not_found("The resource could not be found.") })
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| finish_response(req, next, service, style)))
}

async fn finish_response(mut req: Request, next: Next, service: &'static str, style: FaultStyle) -> Response {
    let started = Instant::now();
    // From the thread-local generator: no system call per request.
    let request_id = format!("req-{}", uuid::Builder::from_random_bytes(rand::random()).into_uuid());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let has_body = req.headers().get(header::TRANSFER_ENCODING).is_some()
        || req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() != "0");

    let mut resp = next.run(req).await;
    if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        // An error may come before the request's body was read (an upload refused at
        // once); the connection then ends after the answer, and the client must know not
        // to send its next request on it.
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }

    if let Some(err) = resp.extensions_mut().remove::<ApiError>() {
        resp = render_fault(err.with_style(style), resp);
    } else if (resp.status().is_client_error() || resp.status().is_server_error()) && !is_json(&resp) {
        // A rejection from the framework itself (bad path parameter, body over the limit,
        // wrong method): give it the service's fault body too.
        let status = resp.status();
        let message = match status {
            StatusCode::METHOD_NOT_ALLOWED => "The method is not allowed for the requested URL.".to_string(),
            StatusCode::PAYLOAD_TOO_LARGE => "Request is too large.".to_string(),
            _ => {
                let (parts, body) = resp.into_parts();
                let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
                resp = Response::from_parts(parts, Body::empty());
                let text = String::from_utf8_lossy(&text).trim().to_string();
                if text.is_empty() {
                    status.canonical_reason().unwrap_or("Error").to_string()
                } else {
                    text
                }
            }
        };
        resp = render_fault(ApiError::new(status, message).with_style(style), resp);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        if service == "compute" {
            // Nova sends the id under its older name too (tempest reads this one).
            resp.headers_mut().insert("x-compute-request-id", v.clone());
        }
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let status = resp.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(target: "haneul::request", service, request_id = %request_id, %method, path = %path, status, elapsed_ms = format_args!("{elapsed_ms:.2}"));
    resp
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn render_fault(err: ApiError, old: Response) -> Response {
    let (mut parts, _) = old.into_parts();
    let body = serde_json::to_vec(&err.body()).unwrap_or_default();
    parts.status = err.status;
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &err.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            parts.headers.insert(*name, v);
        }
    }
    if err.status.is_server_error() {
        tracing::error!(status = err.status.as_u16(), message = %err.message, "request failed");
    }
    Response::from_parts(parts, Body::from(body))
}

/// Errors become a response that carries the error itself; [`service_layers`] renders the
/// body in the service's style.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = self.status;
        resp.extensions_mut().insert(self);
        resp
    }
}

/// A JSON request body parsed into `T`, with OpenStack-style 400/413 errors instead of axum's
/// plain-text rejections.
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request is too large.")
            } else {
                ApiError::bad_request(format!("Could not read the request body: {}", rej.body_text()))
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON body, naming the problem the way a client can act on.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request("The request body is empty; a JSON object was expected."));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request(format!("Malformed request body: {e}"))
            }
            Category::Data => ApiError::bad_request(format!("Invalid input: {e}")),
        }
    })
}

/// A JSON response with a status.
pub fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    (status, axum::Json(value)).into_response()
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        // Responses are small and written whole; do not let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
