//! API errors and the fault bodies each OpenStack service writes.
//!
//! Domain code returns its own error type; the API layer converts it into an [`ApiError`]
//! (a status and a message) and the service's [`FaultStyle`] decides the JSON shape.

use axum::http::StatusCode;
use serde_json::json;

/// How a service shapes its error bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStyle {
    /// Keystone: `{"error": {"code": 404, "title": "Not Found", "message": "..."}}`
    Identity,
    /// Nova and Cinder: `{"itemNotFound": {"code": 404, "message": "..."}}`
    Compute,
    /// Neutron: `{"NeutronError": {"type": "...", "message": "...", "detail": ""}}`
    Network,
    /// Glance: plain text-ish HTML in OpenStack, but JSON `{"code":..,"title":..,"message":..}` is accepted by clients.
    Image,
    /// Placement: `{"errors": [{"status": 404, "title": "Not Found", "detail": "...", "code": "placement.undefined_code"}]}`;
    /// `kind` carries the error code.
    Placement,
}

/// An error on its way to the client: a status, a message and, for some services, a type name.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Neutron's exception type name (e.g. `NetworkNotFound`); ignored by other styles.
    pub kind: Option<&'static str>,
    pub style: FaultStyle,
    /// Extra headers, e.g. `WWW-Authenticate` on a 401.
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), kind: None, style: FaultStyle::Identity, headers: Vec::new() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    pub fn with_style(mut self, style: FaultStyle) -> Self {
        self.style = style;
        self
    }
    pub fn with_kind(mut self, kind: &'static str) -> Self {
        self.kind = Some(kind);
        self
    }
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The JSON body for this error in its service's style.
    pub fn body(&self) -> serde_json::Value {
        let code = self.status.as_u16();
        let title = self.status.canonical_reason().unwrap_or("Error");
        match self.style {
            FaultStyle::Identity => json!({
                "error": {"code": code, "title": title, "message": self.message}
            }),
            FaultStyle::Compute => json!({
                compute_fault_name(self.status): {"code": code, "message": self.message}
            }),
            FaultStyle::Network => json!({
                "NeutronError": {
                    "type": self.kind.unwrap_or_else(|| network_fault_type(self.status)),
                    "message": self.message,
                    "detail": ""
                }
            }),
            FaultStyle::Image => json!({
                "code": code, "title": title, "message": self.message
            }),
            FaultStyle::Placement => json!({
                "errors": [{
                    "status": code,
                    "title": title,
                    "detail": self.message,
                    "code": self.kind.unwrap_or("placement.undefined_code"),
                }]
            }),
        }
    }
}

/// Nova's fault key for a status, as `nova.api.openstack.wsgi` names them.
fn compute_fault_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 => "overLimit",
        415 => "badMediaType",
        429 => "overLimit",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    }
}

fn network_fault_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequest",
        401 => "NotAuthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        413 => "RequestEntityTooLarge",
        _ => "NeutronException",
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_fault_has_code_title_message() {
        let e = ApiError::not_found("Could not find user: x.");
        assert_eq!(
            e.body(),
            json!({"error": {"code": 404, "title": "Not Found", "message": "Could not find user: x."}})
        );
    }

    #[test]
    fn compute_fault_is_keyed_by_nova_name() {
        let e = ApiError::conflict("busy").with_style(FaultStyle::Compute);
        assert_eq!(e.body(), json!({"conflictingRequest": {"code": 409, "message": "busy"}}));
    }

    #[test]
    fn network_fault_carries_type() {
        let e = ApiError::not_found("Network x could not be found.")
            .with_style(FaultStyle::Network)
            .with_kind("NetworkNotFound");
        assert_eq!(e.body()["NeutronError"]["type"], "NetworkNotFound");
    }
}

/// An operation on a file or directory that failed: what was done, to which, and why. The
/// one shape every layer's error type uses for files (`#[error(transparent)] File(FileError)`).
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", .path.display())]
pub struct FileError {
    pub what: &'static str,
    pub path: std::path::PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    /// The error of `what` failing on `path`, for `map_err`.
    pub fn at(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> FileError {
        let path = path.to_path_buf();
        move |source| FileError { what, path, source }
    }
}
