//! A small HTTP/1.1 client for calls between services (plain HTTP, one connection per
//! request): the compute service reading images, later placement and the network service.

use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("bad URL {0}")]
    Url(String),
    #[error("connecting to {addr}: {err}")]
    Connect { addr: String, err: std::io::Error },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("building the request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("{url} answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{url} answered something that is not JSON: {err}")]
    Json { url: String, err: serde_json::Error },
}

impl ClientError {
    /// The message of an OpenStack fault body the other service answered (Nova's and
    /// Cinder's `{"<kind>": {"message"}}`, Neutron's `{"NeutronError": {"message"}}`,
    /// Keystone's `{"error": {"message"}}`, Glance's `{"message"}`, placement's
    /// `{"errors": [{"detail"}]}`); the body as it is when it is none of those; `None` for
    /// an error that is not an answer.
    pub fn fault_message(&self) -> Option<String> {
        let ClientError::Status { body, .. } = self else { return None };
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let found = v["errors"][0]["detail"]
            .as_str()
            .or_else(|| v["message"].as_str())
            .or_else(|| v.as_object().and_then(|o| o.values().find_map(|f| f["message"].as_str())));
        Some(found.map_or_else(|| body.clone(), str::to_owned))
    }

    /// The status the other service answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Sends a request to an `http://host:port/path` URL; the response with its streaming body.
/// A body is JSON unless `headers` name another content type.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Result<Response<Incoming>, ClientError> {
    let typed = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    match body {
        Some(b) if typed => send_body(method, url, headers, Body::from(b)).await,
        Some(b) => {
            let mut with_type = headers.to_vec();
            with_type.push(("content-type", "application/json"));
            send_body(method, url, &with_type, Body::from(b)).await
        }
        None => send_body(method, url, headers, Body::empty()).await,
    }
}

/// A file's contents as a request body, read as it is sent (for uploads of any size).
pub async fn file_body(path: &std::path::Path) -> std::io::Result<Body> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok(Body::from_stream(chunks))
}

/// Uploads a file as an image's data (`PUT .../v2/images/{id}/file`), streamed; a non-2xx
/// answer is an error carrying its body.
pub async fn upload_file(url: &str, token: &str, path: &std::path::Path) -> Result<(), ClientError> {
    let body = file_body(path)
        .await
        .map_err(|err| ClientError::Connect { addr: format!("(reading {})", path.display()), err })?;
    let headers = [("x-auth-token", token), ("content-type", "application/octet-stream")];
    let resp = send_body(Method::PUT, url, &headers, body).await?;
    let status = resp.status();
    if !status.is_success() {
        let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        return Err(ClientError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
        });
    }
    Ok(())
}

/// Sends a request with any body; `headers` carry its content type.
pub async fn send_body(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> Result<Response<Incoming>, ClientError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| ClientError::Url(url.to_string()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|err| ClientError::Connect { addr: authority.to_string(), err })?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "client connection ended");
        }
    });
    let mut req = Request::builder().method(method).uri(path).header("host", authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body)?;
    Ok(sender.send_request(req).await?)
}

/// A GET (or other call) whose JSON answer is wanted; a non-2xx status is an error carrying
/// the body.
pub async fn json(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, ClientError> {
    let resp = send(method, url, headers, body.map(|b| b.to_string().into_bytes())).await?;
    let status = resp.status();
    let bytes: Bytes = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(ClientError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
        });
    }
    if bytes.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|err| ClientError::Json { url: url.to_string(), err })
}

#[cfg(test)]
mod fault_tests {
    use super::ClientError;

    fn answered(body: &str) -> ClientError {
        ClientError::Status { url: "http://x/".into(), status: 400, body: body.into() }
    }

    #[test]
    fn every_services_fault_body_gives_its_message() {
        let message = |b: &str| answered(b).fault_message().unwrap();
        assert_eq!(message(r#"{"itemNotFound": {"code": 404, "message": "no server"}}"#), "no server");
        assert_eq!(message(r#"{"NeutronError": {"type": "X", "message": "no net", "detail": ""}}"#), "no net");
        assert_eq!(message(r#"{"error": {"code": 403, "title": "Forbidden", "message": "nope"}}"#), "nope");
        assert_eq!(message(r#"{"errors": [{"status": 409, "detail": "busy", "title": "Conflict"}]}"#), "busy");
        assert_eq!(message(r#"{"code": 400, "title": "Bad Request", "message": "bad image"}"#), "bad image");
        assert_eq!(message("plain text"), "plain text");
        assert_eq!(ClientError::Url("x".into()).fault_message(), None);
    }
}
