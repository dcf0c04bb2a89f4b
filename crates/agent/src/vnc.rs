//! The remote console proxy (nova-novncproxy's place), one per host, on `agent.console_port`:
//! a browser loads noVNC from here and opens a websocket back (`/?token=...`); the token is
//! one the compute API handed out (`os-getVNCConsole`, `remote-consoles`), checked with the
//! controller, and names an instance on this host, whose QEMU serves VNC on a Unix socket in
//! the instance's directory. Bytes then flow both ways: RFB inside binary websocket frames.
//!
//! The websocket (RFC 6455) is done here by hand: the handshake, and frames in both
//! directions (masked from the client, unmasked from us; ping, pong, close).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use haneul_core::service_auth::ServiceToken;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::instances::Instances;

/// The GUID every websocket handshake hashes with the client's key (RFC 6455 §1.3).
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest frame a client may send (RFB client messages are small).
const MAX_FRAME: u64 = 1 << 20;

pub struct Proxy {
    pub instances: Arc<Instances>,
    pub service: Arc<ServiceToken>,
    /// noVNC's files (Debian's `novnc` package puts them in `/usr/share/novnc`).
    pub novnc_dir: PathBuf,
}

pub fn router(proxy: Arc<Proxy>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/websockify", get(websocket))
        .route("/{*path}", get(file))
        .with_state(proxy)
}

/// `/`: the websocket when asked to upgrade (noVNC's `path=?token=...`), else the viewer.
async fn root(
    state: State<Arc<Proxy>>,
    headers: HeaderMap,
    q: Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    if headers.get(header::UPGRADE).is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket")) {
        return websocket(state, headers, q, req).await;
    }
    viewer(&state.novnc_dir, "vnc_lite.html")
}

async fn file(State(p): State<Arc<Proxy>>, axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    let safe = !path.is_empty()
        && path.split('/').all(|part| !part.is_empty() && part != ".." && part != ".")
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
    if !safe {
        return StatusCode::NOT_FOUND.into_response();
    }
    if matches!(path.as_str(), "vnc_lite.html" | "vnc_auto.html" | "vnc.html") {
        return viewer(&p.novnc_dir, &path);
    }
    match tokio::fs::read(p.novnc_dir.join(&path)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(&path))], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript",
        "css" => "text/css",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// noVNC's viewer page, or (noVNC not installed) a page that says what is missing.
fn viewer(novnc_dir: &Path, page: &str) -> Response {
    let html = std::fs::read_to_string(novnc_dir.join(page)).unwrap_or_else(|_| {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>noVNC</title></head>\n<body>\n\
             <p id=\"status\">noVNC is not installed on this host ({}): install it (Debian: apt install novnc) \
             to use this console in a browser. The websocket is served here all the same.</p>\n\
             <script type=\"module\">\nimport RFB from './core/rfb.js';\n\
             const path = new URLSearchParams(location.search).get('path') || 'websockify';\n\
             const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/' + path;\n\
             new RFB(document.body, url);\n</script>\n</body>\n</html>\n",
            novnc_dir.display()
        )
    });
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// A refusal that closes the connection with nothing in it (what a client sees of a bad
/// token: the connection ends).
fn refuse(status: StatusCode) -> Response {
    (status, [(header::CONNECTION, "close")], Body::empty()).into_response()
}

async fn websocket(
    State(p): State<Arc<Proxy>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    mut req: Request,
) -> Response {
    let Some(key) = headers.get("sec-websocket-key").and_then(|k| k.to_str().ok()).map(str::to_owned) else {
        return refuse(StatusCode::BAD_REQUEST);
    };
    let token = q.get("token").cloned().or_else(|| cookie_token(&headers));
    let Some(token) = token else { return refuse(StatusCode::FORBIDDEN) };
    let uuid = match p.validate(&token).await {
        Ok(uuid) => uuid,
        Err(e) => {
            tracing::info!(error = %haneul_core::service::chain(&e), "console connection refused");
            return refuse(StatusCode::FORBIDDEN);
        }
    };
    let socket = p.instances.vnc_socket(&uuid);
    let vnc = match UnixStream::connect(&socket).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(instance = %uuid, error = %e, "the guest's VNC socket does not answer");
            return refuse(StatusCode::NOT_FOUND);
        }
    };
    let accept = {
        use sha1::Digest;
        let digest = sha1::Sha1::digest(format!("{key}{WS_GUID}").as_bytes());
        base64::engine::general_purpose::STANDARD.encode(digest)
    };
    let binary = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "binary"));
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                tracing::info!(instance = %uuid, "console connected");
                if let Err(e) = pump(TokioIo::new(upgraded), vnc).await {
                    tracing::debug!(instance = %uuid, error = %e, "console connection ended");
                }
            }
            Err(e) => tracing::warn!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header("sec-websocket-accept", accept);
    if binary {
        resp = resp.header("sec-websocket-protocol", "binary");
    }
    resp.body(Body::empty()).unwrap_or_else(|_| refuse(StatusCode::INTERNAL_SERVER_ERROR))
}

/// `token=` in a `Cookie` header (noVNC before 1.1 sent it there).
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == "token").map(|(_, v)| v.to_string())
}

/// Why a console token opens nothing on this host.
#[derive(Debug, thiserror::Error)]
enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("the controller could not be asked about the token")]
    Controller(#[source] haneul_core::client::ClientError),
    #[error("the controller named no instance")]
    NoInstance,
    #[error("instance {uuid} is not on this host")]
    NotHere { uuid: String },
}

impl Proxy {
    /// The instance a console token is for, as the controller says; it must be on this host.
    async fn validate(&self, token: &str) -> Result<String, TokenError> {
        if token.is_empty() || token.len() > 128 || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(TokenError::Malformed);
        }
        let compute = self.service.endpoint("compute").await.map_err(TokenError::Controller)?;
        let service_token = self.service.token().await.map_err(TokenError::Controller)?;
        let url = format!("{compute}/os-console-auth-tokens/{token}");
        let headers = [("x-auth-token", service_token.as_str()), ("openstack-api-version", "compute 2.31")];
        let v = haneul_core::client::json(hyper::Method::GET, &url, &headers, None)
            .await
            .map_err(TokenError::Controller)?;
        let uuid = v["console"]["instance_uuid"].as_str().ok_or(TokenError::NoInstance)?.to_string();
        if !self.instances.dir(&uuid).is_dir() {
            return Err(TokenError::NotHere { uuid });
        }
        Ok(uuid)
    }
}

/// Carries RFB between the websocket and the guest's VNC socket until either side ends.
async fn pump<W: AsyncRead + AsyncWrite + Unpin + Send + 'static>(ws: W, vnc: UnixStream) -> std::io::Result<()> {
    let (mut ws_read, ws_write) = tokio::io::split(ws);
    let (mut vnc_read, mut vnc_write) = vnc.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u8, Vec<u8>)>(16);
    // One writer for the websocket: data from the guest and control replies.
    let writer = tokio::spawn(async move {
        let mut ws_write = ws_write;
        while let Some((opcode, payload)) = rx.recv().await {
            ws_write.write_all(&frame_header(opcode, payload.len())).await?;
            ws_write.write_all(&payload).await?;
            ws_write.flush().await?;
            if opcode == 0x8 {
                break;
            }
        }
        let _ = ws_write.shutdown().await;
        Ok::<(), std::io::Error>(())
    });
    let to_client = tx.clone();
    let from_guest = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = vnc_read.read(&mut buf).await?;
            if n == 0 || to_client.send((0x2, buf[..n].to_vec())).await.is_err() {
                let _ = to_client.send((0x8, Vec::new())).await;
                return Ok::<(), std::io::Error>(());
            }
        }
    });
    let result = async {
        loop {
            let (opcode, payload) = read_frame(&mut ws_read).await?;
            match opcode {
                0x0..=0x2 => vnc_write.write_all(&payload).await?,
                0x8 => {
                    let _ = tx.send((0x8, Vec::new())).await;
                    return Ok(());
                }
                0x9 => {
                    let _ = tx.send((0xA, payload)).await;
                }
                _ => {}
            }
        }
    }
    .await;
    from_guest.abort();
    drop(tx);
    let _ = writer.await;
    result
}

/// A frame header from the server: final, unmasked.
fn frame_header(opcode: u8, len: usize) -> Vec<u8> {
    let mut h = vec![0x80 | opcode];
    if len < 126 {
        h.push(len as u8);
    } else if len <= u16::MAX as usize {
        h.push(126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    h
}

/// One frame from the client: its opcode and unmasked payload.
async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).await?;
            u16::from_be_bytes(b) as u64
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).await?;
            u64::from_be_bytes(b)
        }
        n => n as u64,
    };
    if len > MAX_FRAME {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "websocket frame too large"));
    }
    let mut mask = [0u8; 4];
    if masked {
        r.read_exact(&mut mask).await?;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((opcode, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_unmasked_and_headers_carry_the_length() {
        // A masked client frame as RFC 6455 §5.7 shows it: "Hello".
        let bytes: Vec<u8> = vec![0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
        let (opcode, payload) = read_frame(&mut bytes.as_slice()).await.unwrap();
        assert_eq!((opcode, payload.as_slice()), (0x1, b"Hello".as_slice()));
        assert_eq!(frame_header(0x2, 5), vec![0x82, 5]);
        assert_eq!(frame_header(0x2, 300), vec![0x82, 126, 1, 44]);
        assert_eq!(frame_header(0x2, 70_000)[..2], [0x82, 127]);
        let huge: Vec<u8> = vec![0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(read_frame(&mut huge.as_slice()).await.is_err());
    }
}
