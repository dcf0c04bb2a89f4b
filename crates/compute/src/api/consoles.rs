//! Remote consoles: `os-getVNCConsole` (before 2.6) and `POST /servers/{id}/remote-consoles`
//! hand out a short-lived token and the URL of the server's host's console proxy (noVNC);
//! the proxy checks the token with `GET /os-console-auth-tokens/{token}` (admins, so the
//! host agents' service user). Only VNC (`novnc`) consoles exist here.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{Duration, Utc};
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, target, Routes};
use serde_json::{json, Value};

use super::{enforce, ApiResult, Ctx, Mv};
use crate::model::Server;
use crate::service::{Compute, ConsoleToken};

/// How long a console token is good for (Nova's `consoleauth.token_ttl`).
const TOKEN_TTL: i64 = 600;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .post("/servers/{id}/remote-consoles", target("os_compute_api:os-remote-consoles"), remote_console)
        .get("/os-console-auth-tokens/{token}", rule("os_compute_api:os-console-auth-tokens"), show_token)
}

/// A console for `s`: a new token, and the URL a browser opens.
pub fn vnc_console(c: &Compute, ctx: &AuthContext, s: &Server, kind: &str) -> ApiResult<String> {
    enforce(c, ctx, "os_compute_api:os-remote-consoles", &json!({"project_id": s.project_id, "user_id": s.user_id}))?;
    if kind != "novnc" {
        return Err(ApiError::bad_request(format!("Unavailable console type {kind}.")));
    }
    if !matches!(s.vm_state.as_str(), "active" | "rescued" | "resized") || s.task_state.is_some() {
        return Err(ApiError::conflict(format!("Instance {} is not ready", s.id)));
    }
    let host = s.host.clone().ok_or_else(|| ApiError::conflict(format!("Instance {} is not ready", s.id)))?;
    let m = c.model();
    let base = crate::service::hosts::compute_service(&m, &host)
        .and_then(|svc| svc.agent.as_ref())
        .map(|a| a.console_url.clone())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("The server's host has no console proxy."))?;
    let token = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let mut tokens = c.consoles.lock().unwrap_or_else(|e| e.into_inner());
    tokens.retain(|_, t| t.expires > now);
    tokens.insert(
        token.clone(),
        ConsoleToken { instance_uuid: s.id.clone(), host, expires: now + Duration::seconds(TOKEN_TTL) },
    );
    Ok(format!("{base}/vnc_lite.html?path=%3Ftoken%3D{token}"))
}

async fn remote_console(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    if !mv.at_least(6) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    let s = super::servers::find(&c, &ctx, &id)?;
    let o = super::body_member(&body, "remote_console")?;
    if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "protocol" | "type")) {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute remote_console. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let field = |k: &str| match o.get(k) {
        Some(Value::String(v)) => Ok(v.clone()),
        _ => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute remote_console. Value: '{k}' is a required property"
        ))),
    };
    let (protocol, kind) = (field("protocol")?, field("type")?);
    let known = matches!(
        (protocol.as_str(), kind.as_str()),
        ("vnc", "novnc" | "xvpvnc")
            | ("spice", "spice-html5")
            | ("rdp", "rdp-html5")
            | ("serial", "serial")
            | ("mks", "webmks")
    );
    if !known {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute type. Value: {kind}. '{kind}' is not one of the {protocol} console types"
        )));
    }
    if protocol != "vnc" {
        return Err(ApiError::bad_request(format!("Unavailable console type {kind}.")));
    }
    let url = vnc_console(&c, &ctx, &s, &kind)?;
    Ok(Json(json!({"remote_console": {"protocol": protocol, "type": kind, "url": url}})).into_response())
}

async fn show_token(State(c): State<Ctx>, mv: Mv, Path(token): Path<String>) -> ApiResult {
    let invalid = || ApiError::not_found(format!("The token '{token}' is invalid or has expired"));
    let t = {
        let tokens = c.consoles.lock().unwrap_or_else(|e| e.into_inner());
        tokens.get(&token).filter(|t| t.expires > Utc::now()).cloned()
    };
    let t = t.ok_or_else(invalid)?;
    // Before 2.31 only RDP tokens could be shown (Nova's rule); VNC ones from 2.31.
    if !mv.at_least(31) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "The type of the console is not supported at this version.",
        ));
    }
    Ok(Json(json!({"console": {
        "instance_uuid": t.instance_uuid,
        "host": t.host,
        "port": 5900,
        "internal_access_path": "vnc.sock",
    }}))
    .into_response())
}
