//! What the server handlers share: lookups with Nova's 404, states, the disk config and admin
//! password arguments, image checks, and the start of an action.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use haneul_core::auth::AuthContext;
use haneul_core::error::ApiError;
use serde_json::{Map, Value};

use crate::api::{is_admin, ApiResult};
use crate::model::Server;
use crate::service::Compute;

pub(super) fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

pub(super) fn ts(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Nova's status from the server's states.
pub(super) fn status(s: &Server) -> &'static str {
    match (s.vm_state.as_str(), s.task_state.as_deref()) {
        (_, Some("deleting")) => "ACTIVE",
        ("building", _) => "BUILD",
        (_, Some("rebuilding")) => "REBUILD",
        (_, Some("resize_prep" | "resize_migrating" | "resize_migrated" | "resize_finish")) => "RESIZE",
        (_, Some("rebooting")) => "REBOOT",
        (_, Some("rebooting_hard")) => "HARD_REBOOT",
        ("active", _) => "ACTIVE",
        ("stopped", _) => "SHUTOFF",
        ("paused", _) => "PAUSED",
        ("suspended", _) => "SUSPENDED",
        ("rescued", _) | (_, Some("rescuing")) => "RESCUE",
        ("resized", Some("resize_reverting")) => "REVERT_RESIZE",
        ("resized", _) => "VERIFY_RESIZE",
        ("error", _) => "ERROR",
        _ => "UNKNOWN",
    }
}

pub(super) fn visible(ctx: &AuthContext, s: &Server) -> bool {
    is_admin(ctx) || ctx.project_id() == Some(s.project_id.as_str())
}

pub(in crate::api) fn find(c: &Compute, ctx: &AuthContext, id: &str) -> ApiResult<Arc<Server>> {
    c.model()
        .servers
        .get(id)
        .filter(|s| visible(ctx, s))
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("Instance {id} could not be found.")))
}

pub(super) fn disk_config(auto: bool) -> &'static str {
    if auto {
        "AUTO"
    } else {
        "MANUAL"
    }
}

/// `OS-DCF:diskConfig` as given (None when absent; Nova's 400 for anything but AUTO/MANUAL).
pub(super) fn disk_config_arg(o: &Map<String, Value>) -> ApiResult<Option<bool>> {
    match o.get("OS-DCF:diskConfig") {
        None => Ok(None),
        Some(Value::String(d)) if d == "AUTO" => Ok(Some(true)),
        Some(Value::String(d)) if d == "MANUAL" => Ok(Some(false)),
        Some(d) => Err(bad(format!(
            "Invalid input for field/attribute OS-DCF:diskConfig. Value: {d}. {d} is not one of ['AUTO', 'MANUAL']"
        ))),
    }
}

/// The disk config a server gets from an image: as asked, else the image's
/// `auto_disk_config` property (Nova's 400 when the image disables it and AUTO is asked).
pub(super) fn image_disk_config(
    image_id: &str,
    properties: &BTreeMap<String, String>,
    asked: Option<bool>,
) -> ApiResult<bool> {
    let property = properties.get("auto_disk_config").map(|v| v.to_ascii_lowercase());
    match (asked, property.as_deref()) {
        (Some(true), Some("disabled")) => {
            Err(bad(format!("Requested image {image_id} has automatic disk resize disabled.")))
        }
        (Some(auto), _) => Ok(auto),
        (None, Some(p)) => Ok(matches!(p, "true" | "1" | "yes" | "on" | "y" | "t")),
        (None, None) => Ok(false),
    }
}

/// `adminPass` as given (None when absent).
pub(super) fn admin_pass_arg(o: &Map<String, Value>) -> ApiResult<Option<String>> {
    match o.get("adminPass") {
        None => Ok(None),
        Some(Value::String(p)) => Ok(Some(p.clone())),
        Some(v) => Err(bad(format!("Invalid input for field/attribute adminPass. Value: {v}."))),
    }
}

/// A generated admin password (Nova makes one when none is given; this guest ignores it).
pub(super) fn new_admin_pass() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// The image a server boots: it must exist, be visible to the caller, be active, boot here
/// (qcow2 or raw) and fit the flavor. Its document and disk format.
pub(super) async fn bootable_image(
    c: &Compute,
    token: &str,
    image_ref: &str,
    disk_gb: i64,
    ram: i64,
) -> ApiResult<(Value, String)> {
    let image = c.images.show(token, image_ref).await.map_err(|e| match e {
        haneul_core::client::ClientError::Status { status: 404, .. } => {
            bad(format!("Image {image_ref} could not be found."))
        }
        e => {
            tracing::warn!(error = %e, "image service unreachable");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The image service could not be reached.")
        }
    })?;
    if image["status"] != "active" {
        return Err(bad(format!("Image {image_ref} is not active.")));
    }
    let disk_format = image["disk_format"].as_str().unwrap_or("raw").to_string();
    if !matches!(disk_format.as_str(), "qcow2" | "raw") {
        return Err(bad(format!("Image {image_ref} has disk format {disk_format}; qcow2 and raw images boot here.")));
    }
    let virtual_size = image["virtual_size"].as_u64().or(image["size"].as_u64()).unwrap_or(0);
    if disk_gb > 0 && virtual_size > (disk_gb as u64) << 30 {
        return Err(bad(format!(
            "Flavor's disk is too small for requested image. Flavor disk is {} bytes, image is {virtual_size} bytes.",
            (disk_gb as u64) << 30
        )));
    }
    if image["min_ram"].as_i64().unwrap_or(0) > ram {
        return Err(bad("Flavor's memory is too small for requested image."));
    }
    Ok((image, disk_format))
}

pub(super) fn last_segment(r: &str) -> &str {
    r.trim_end_matches('/').rsplit('/').next().unwrap_or(r)
}

/// An image's own properties as strings, those whose names Nova's 2.98 view allows.
pub(super) fn image_properties(image: &Value) -> BTreeMap<String, String> {
    let key_ok = |k: &str| k.len() <= 255 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:. ".contains(&b));
    super::super::images::properties(image)
        .into_iter()
        .filter(|(k, _)| key_ok(k))
        .map(|(k, v)| {
            let text = match v {
                Value::String(t) => t,
                other => other.to_string(),
            };
            (k, text.chars().take(255).collect())
        })
        .collect()
}

/// Nova's 409 for an action on a server in a state it does not start from, or busy with
/// another task.
pub(in crate::api) fn check_state(cur: &Server, action: &str, sources: &[&str]) -> Result<(), crate::service::Error> {
    if cur.task_state.is_none() && sources.contains(&cur.vm_state.as_str()) {
        return Ok(());
    }
    Err(crate::service::Error::Conflict(format!(
        "Cannot '{action}' instance {} while it is in vm_state {}{}",
        cur.id,
        cur.vm_state,
        cur.task_state.as_deref().map(|t| format!(" and task_state {t}")).unwrap_or_default()
    )))
}

/// Starts an action on a server in one write: Nova's 409 (naming the action as `names.0`)
/// unless the server is in one of `sources` with no task running, then `change` (the task
/// state and whatever else the action sets, with the transaction for checks), and the
/// instance action (`names.1`) under the request id. The server as saved.
pub(super) async fn start_action(
    c: &Compute,
    ctx: &AuthContext,
    id: &str,
    request_id: &str,
    names: (&str, &str),
    sources: &[&str],
    change: impl FnOnce(&crate::service::Txn, &mut Server) -> crate::service::Result<()> + Send,
) -> crate::service::Result<Arc<Server>> {
    c.write(|t| {
        let mut cur = t.edit(&t.m.servers, "server", id)?;
        check_state(&cur, names.0, sources)?;
        change(t, &mut cur)?;
        cur.updated_at = Utc::now();
        let cur = t.put(cur)?;
        let project = ctx.project_id().unwrap_or(&cur.project_id);
        crate::service::actions::record(t, request_id, &cur, names.1, &ctx.user.id, project)?;
        Ok(cur)
    })
    .await
}

/// What an update or a rebuild may change besides its own fields (`None`: unchanged).
pub(super) struct Edits {
    pub(super) name: Option<String>,
    pub(super) description: Option<Option<String>>,
    pub(super) access_ipv4: Option<String>,
    pub(super) access_ipv6: Option<String>,
}

impl Edits {
    pub(super) fn apply(self, s: &mut Server) {
        if let Some(n) = self.name {
            s.name = n;
        }
        if let Some(d) = self.description {
            s.description = d;
        }
        if let Some(a) = self.access_ipv4 {
            s.access_ipv4 = a;
        }
        if let Some(a) = self.access_ipv6 {
            s.access_ipv6 = a;
        }
    }
}

/// `accessIPv4` / `accessIPv6`: an address of that family (kept in its canonical form, as
/// Nova's database does), or empty.
pub(super) fn access_ip(o: &Map<String, Value>, field: &str, v6: bool) -> ApiResult<Option<String>> {
    let canonical = |a: &str| {
        if v6 {
            a.parse::<std::net::Ipv6Addr>().ok().map(|ip| ip.to_string())
        } else {
            a.parse::<std::net::Ipv4Addr>().ok().map(|ip| ip.to_string())
        }
    };
    match o.get(field) {
        None => Ok(None),
        Some(Value::String(a)) if a.is_empty() => Ok(Some(String::new())),
        Some(Value::String(a)) if let Some(ip) = canonical(a) => Ok(Some(ip)),
        Some(v) => Err(bad(format!(
            "Invalid input for field/attribute {field}. Value: {v}. {v} is not a '{}'",
            if v6 { "ipv6" } else { "ipv4" }
        ))),
    }
}

/// A guest host name (2.90/2.94): letters, digits, hyphens and dots, up to 63 characters
/// per label.
pub(super) fn hostname_arg(v: &Value) -> ApiResult<String> {
    match v {
        Value::String(h)
            if !h.is_empty()
                && h.len() <= 255
                && h.split('.').all(|l| {
                    !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
                && !h.starts_with('-') =>
        {
            Ok(h.clone())
        }
        v => Err(bad(format!("Invalid input for field/attribute hostname. Value: {v}."))),
    }
}

/// A `metadata` argument: string keys (1–255) to strings (up to 255).
pub(super) fn metadata_arg(v: &Value) -> ApiResult<BTreeMap<String, String>> {
    match v {
        Value::Object(md) => md
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) if k.len() <= 255 && s.len() <= 255 && !k.is_empty() => Ok((k.clone(), s.clone())),
                _ => Err(bad(format!("Invalid input for field/attribute metadata. Value: {k}."))),
            })
            .collect(),
        _ => Err(bad("Invalid input for field/attribute metadata. Value: must be an object.")),
    }
}
