//! What changes an existing server: update, delete and the actions of `POST /servers/{id}/action`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use haneul_core::auth::{Auth, AuthContext, RawToken};
use haneul_core::error::ApiError;
use haneul_core::http::RequestId;
use serde_json::{json, Map, Value};

use super::common::*;
use super::view::*;
use crate::api::{body_member, enforce, is_admin, ApiResult, Ctx, Mv};
use crate::model::{FlavorAccess, FlavorCopy, Server};
use crate::service::Compute;

/// `PUT /servers/{id}`: the name, access addresses, description (2.19) and host name (2.90).
pub(super) async fn update(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    enforce(&c, &ctx, "os_compute_api:servers:update", &json!({"project_id": s.project_id, "user_id": s.user_id}))?;
    let o: Map<String, Value> = body_member(&body, "server")?;
    let mut allowed = vec!["name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"];
    if mv.at_least(19) {
        allowed.push("description");
    }
    if mv.at_least(90) {
        allowed.push("hostname");
    }
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "Invalid input for field/attribute server. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let name = match o.get("name") {
        None => None,
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 && n.trim() == n => Some(n.clone()),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute name. Value: {v}."))),
    };
    let description = match o.get("description") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(d)) if d.chars().count() <= 255 => Some(Some(d.clone())),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute description. Value: {v}."))),
    };
    let hostname = o.get("hostname").map(hostname_arg).transpose()?;
    let edits = Edits {
        name,
        description,
        access_ipv4: access_ip(&o, "accessIPv4", false)?,
        access_ipv6: access_ip(&o, "accessIPv6", true)?,
    };
    let auto_disk_config = disk_config_arg(&o)?;
    let saved = c
        .write(|t| {
            let mut cur = t.edit(&t.m.servers, "server", &id)?;
            edits.apply(&mut cur);
            if let Some(auto) = auto_disk_config {
                cur.auto_disk_config = auto;
            }
            if let Some(h) = hostname {
                cur.hostname = h;
            }
            cur.updated_at = Utc::now();
            Ok(t.put(cur)?)
        })
        .await?;
    Ok(Json(json!({"server": render(&c, mv, &ctx, &saved, View::Update)})).into_response())
}

pub(super) async fn delete(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    super::super::server_meta::unlocked(&ctx, &s)?;
    c.write(|t| {
        let mut cur = t.edit(&t.m.servers, "server", &id)?;
        cur.task_state = Some("deleting".into());
        cur.updated_at = Utc::now();
        let cur = t.put(cur)?;
        crate::service::actions::record(
            t,
            &rid.0,
            &cur,
            "delete",
            &ctx.user.id,
            ctx.project_id().unwrap_or(&cur.project_id),
        )
    })
    .await?;
    let c2 = c.clone();
    tokio::spawn(async move {
        if let Err(e) = c2.destroy(&id, &rid.0).await {
            tracing::error!(server = %id, error = ?e, "delete failed");
            let _ = c2
                .set_state(&id, |s| {
                    s.vm_state = "error".into();
                    s.task_state = None;
                    s.fault = Some(crate::model::Fault { code: 500, message: e.to_string(), created: Utc::now() });
                })
                .await;
        }
    });
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn action(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Extension(rid): Extension<RequestId>,
    Extension(token): Extension<RawToken>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let s = find(&c, &ctx, &id)?;
    let v: Value = haneul_core::http::parse_json(&body)?;
    let action = ServerAction::parse(&v)?;
    if action.needs_unlocked() {
        super::super::server_meta::unlocked(&ctx, &s)?;
    }
    use super::super::net_proxies as net;
    use ServerAction as A;
    let power = match action {
        A::ConsoleOutput(arg) => return console_output(&c, &s, arg).await,
        A::VncConsole(arg) => {
            let kind = arg.get("type").and_then(|t| t.as_str()).unwrap_or_default();
            let url = super::super::consoles::vnc_console(&c, &ctx, &s, kind)?;
            return Ok(Json(json!({"console": {"type": kind, "url": url}})).into_response());
        }
        A::Lock | A::Unlock => return lock(&c, &ctx, mv, &s, &v, &rid.0).await,
        A::AddSecurityGroup(arg) => return net::change_group(&c, &ctx, &s, arg, true).await,
        A::RemoveSecurityGroup(arg) => return net::change_group(&c, &ctx, &s, arg, false).await,
        A::AddFloatingIp(arg) => return net::add_fip(&c, &ctx, mv, &s, arg, &token.0).await,
        A::RemoveFloatingIp(arg) => return net::remove_fip(&c, &ctx, mv, &s, arg, &token.0).await,
        A::AddFixedIp(arg) => return net::change_fixed_ip(&c, &ctx, mv, &s, arg, true).await,
        A::RemoveFixedIp(arg) => return net::change_fixed_ip(&c, &ctx, mv, &s, arg, false).await,
        A::CreateImage(arg) => return create_image(&c, &ctx, mv, &s, "createImage", arg, &token.0, &rid.0).await,
        A::CreateBackup(arg) => return create_image(&c, &ctx, mv, &s, "createBackup", arg, &token.0, &rid.0).await,
        A::Rebuild(arg) => return rebuild(&c, &ctx, mv, &s, arg, &token.0, &rid.0).await,
        A::Resize(arg) => return resize(&c, &ctx, &s, arg, &rid.0).await,
        A::Rescue(arg) => return rescue(&c, &ctx, &s, arg, &token.0, &rid.0).await,
        A::Unrescue => return unrescue(&c, &ctx, &s, &rid.0).await,
        A::ConfirmResize => return finish_resize(&c, &ctx, &s, "confirmResize", false, &rid.0).await,
        A::RevertResize => return finish_resize(&c, &ctx, &s, "revertResize", true, &rid.0).await,
        A::Power(p) => p,
    };
    let (task, sources) = power.task_and_sources();
    let name = v.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default();
    start_action(&c, &ctx, &id, &rid.0, (&name, power.action()), sources, |_, cur| {
        cur.task_state = Some(task.into());
        Ok(())
    })
    .await?;
    tokio::spawn(c.clone().power(id, power, rid.0));
    Ok(StatusCode::ACCEPTED.into_response())
}

/// An action key and how its argument becomes the action.
type WithArg<'a> = (&'static str, fn(&'a Value) -> ServerAction<'a>);

/// A server action (`POST /servers/{id}/action`), one variant per action served, with the
/// body's argument; each action's handler reads its argument's fields.
pub(super) enum ServerAction<'a> {
    ConsoleOutput(&'a Value),
    VncConsole(&'a Value),
    /// `lock` and `unlock` read the whole body (`lock`'s `locked_reason`).
    Lock,
    Unlock,
    AddSecurityGroup(&'a Value),
    RemoveSecurityGroup(&'a Value),
    AddFloatingIp(&'a Value),
    RemoveFloatingIp(&'a Value),
    AddFixedIp(&'a Value),
    RemoveFixedIp(&'a Value),
    CreateImage(&'a Value),
    CreateBackup(&'a Value),
    Rebuild(&'a Value),
    Resize(&'a Value),
    Rescue(&'a Value),
    Unrescue,
    ConfirmResize,
    RevertResize,
    Power(crate::service::servers::PowerAction),
}

impl<'a> ServerAction<'a> {
    /// The action a body names (its key; the first served one in this order when it names
    /// several). An action not served is a 400 (the route's guard has already refused actions
    /// it does not know).
    pub(super) fn parse(v: &'a Value) -> ApiResult<ServerAction<'a>> {
        use crate::service::servers::PowerAction as P;
        let Some(o) = v.as_object() else { return Err(bad("The action body must be an object.")) };
        let arg = |k: &str| o.get(k);
        let with: [WithArg<'a>; 15] = [
            ("os-getConsoleOutput", ServerAction::ConsoleOutput),
            ("os-getVNCConsole", ServerAction::VncConsole),
            ("lock", |_| ServerAction::Lock),
            ("addSecurityGroup", ServerAction::AddSecurityGroup),
            ("removeSecurityGroup", ServerAction::RemoveSecurityGroup),
            ("addFloatingIp", ServerAction::AddFloatingIp),
            ("addFixedIp", ServerAction::AddFixedIp),
            ("removeFixedIp", ServerAction::RemoveFixedIp),
            ("removeFloatingIp", ServerAction::RemoveFloatingIp),
            ("createImage", ServerAction::CreateImage),
            ("createBackup", ServerAction::CreateBackup),
            ("rebuild", ServerAction::Rebuild),
            ("resize", ServerAction::Resize),
            ("rescue", ServerAction::Rescue),
            ("unlock", |_| ServerAction::Unlock),
        ];
        if let Some(a) = with.iter().find_map(|(k, make)| arg(k).map(make)) {
            return Ok(a);
        }
        let bare: [(&str, ServerAction<'a>); 9] = [
            ("unrescue", ServerAction::Unrescue),
            ("confirmResize", ServerAction::ConfirmResize),
            ("revertResize", ServerAction::RevertResize),
            ("os-stop", ServerAction::Power(P::Stop)),
            ("os-start", ServerAction::Power(P::Start)),
            ("pause", ServerAction::Power(P::Pause)),
            ("unpause", ServerAction::Power(P::Unpause)),
            ("suspend", ServerAction::Power(P::Suspend)),
            ("resume", ServerAction::Power(P::Resume)),
        ];
        if let Some((_, a)) = bare.into_iter().find(|(k, _)| o.contains_key(*k)) {
            return Ok(a);
        }
        if let Some(r) = arg("reboot") {
            return match r.get("type").and_then(|t| t.as_str()).map(str::to_ascii_uppercase).as_deref() {
                Some("SOFT") => Ok(ServerAction::Power(P::RebootSoft)),
                Some("HARD") => Ok(ServerAction::Power(P::RebootHard)),
                _ => Err(bad("Invalid input for field/attribute type. Value: must be SOFT or HARD.")),
            };
        }
        let name = o.keys().next().cloned().unwrap_or_default();
        Err(bad(format!("Server action {name} is not available yet.")))
    }

    /// Whether a locked server refuses it (all but reading the console, locking, and the
    /// network and image changes Nova allows on a locked server).
    fn needs_unlocked(&self) -> bool {
        use ServerAction as A;
        matches!(
            self,
            A::Rebuild(_)
                | A::Resize(_)
                | A::Rescue(_)
                | A::Unrescue
                | A::ConfirmResize
                | A::RevertResize
                | A::Power(_)
        )
    }
}

/// `os-getConsoleOutput`: the end of the guest's console log (`length` lines, or all).
async fn console_output(c: &Ctx, s: &Server, arg: &Value) -> ApiResult<Response> {
    let id = &s.id;
    let length = match arg.get("length") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n >= -1) => {
            n.as_i64().filter(|n| *n >= 0).map(|n| n as usize)
        }
        Some(Value::String(s)) if s.parse::<i64>().is_ok_and(|n| n >= -1) => {
            s.parse::<i64>().ok().filter(|n| *n >= 0).map(|n| n as usize)
        }
        Some(v) => return Err(bad(format!("Invalid input for field/attribute length. Value: {v}."))),
    };
    let Some(host) = s.host.clone() else {
        return Err(ApiError::conflict(format!(
            "Cannot 'os-getConsoleOutput' instance {id} while it is in vm_state {}",
            s.vm_state
        )));
    };
    let path = match length {
        Some(n) => format!("/v1/instances/{id}/console?lines={n}"),
        None => format!("/v1/instances/{id}/console"),
    };
    let output = c.agent_call(&host, hyper::Method::GET, &path, None).await.map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("Guest console unavailable: {}", e.fault()))
    })?;
    Ok(Json(json!({"output": output["output"]})).into_response())
}

/// `rebuild`: a new root disk from an image (the same or another), keeping the server's id,
/// host, flavor and power state; optionally a new name, metadata, description (2.19).
pub(super) async fn rebuild(
    c: &Ctx,
    ctx: &AuthContext,
    mv: Mv,
    s: &Server,
    arg: &Value,
    token: &str,
    rid: &str,
) -> ApiResult<Response> {
    enforce(c, ctx, "os_compute_api:servers:rebuild", &json!({"project_id": s.project_id, "user_id": s.user_id}))?;
    let o =
        arg.as_object().ok_or_else(|| bad("Invalid input for field/attribute rebuild. Value: must be an object."))?;
    let image_ref = match o.get("imageRef") {
        Some(Value::String(i)) if !i.is_empty() => last_segment(i).to_string(),
        _ => return Err(bad("Invalid input for field/attribute rebuild. Value: 'imageRef' is a required property")),
    };
    let name = match o.get("name") {
        None => None,
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => Some(n.clone()),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute name. Value: {v}."))),
    };
    let metadata = o.get("metadata").map(metadata_arg).transpose()?;
    let description = match o.get("description") {
        None => None,
        Some(_) if !mv.at_least(19) => {
            return Err(bad("Invalid input for field/attribute rebuild. Additional properties are not allowed ('description' was unexpected)"))
        }
        Some(Value::Null) => Some(None),
        Some(Value::String(d)) if d.chars().count() <= 255 => Some(Some(d.clone())),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute description. Value: {v}."))),
    };
    let edits = Edits {
        name,
        description,
        access_ipv4: access_ip(o, "accessIPv4", false)?,
        access_ipv6: access_ip(o, "accessIPv6", true)?,
    };
    let asked_disk_config = disk_config_arg(o)?;
    let admin_pass = admin_pass_arg(o)?.unwrap_or_else(new_admin_pass);
    let (image, disk_format) = bootable_image(c, token, &image_ref, s.flavor.disk, s.flavor.ram).await?;
    let properties = image_properties(&image);
    let auto_disk_config = image_disk_config(&image_ref, &properties, asked_disk_config)?;
    let id = s.id.clone();
    let saved = start_action(c, ctx, &id, rid, ("rebuild", "rebuild"), &["active", "stopped", "error"], |_, cur| {
        cur.task_state = Some("rebuilding".into());
        cur.image_id = image_ref;
        cur.image_format = disk_format;
        edits.apply(cur);
        if let Some(md) = metadata {
            cur.metadata = md;
        }
        cur.image_properties = properties;
        cur.auto_disk_config = auto_disk_config;
        Ok(())
    })
    .await?;
    tokio::spawn(c.clone().rebuild(id, rid.to_string()));
    let mut body = render(c, mv, ctx, &saved, View::Rebuild);
    body["adminPass"] = json!(admin_pass);
    Ok((StatusCode::ACCEPTED, Json(json!({"server": body}))).into_response())
}

/// `resize`: to another flavor, on the server's own host; the server then waits in
/// VERIFY_RESIZE for `confirmResize` or `revertResize`.
pub(super) async fn resize(c: &Ctx, ctx: &AuthContext, s: &Server, arg: &Value, rid: &str) -> ApiResult<Response> {
    enforce(c, ctx, "os_compute_api:servers:resize", &json!({"project_id": s.project_id, "user_id": s.user_id}))?;
    let o = arg.as_object().ok_or_else(|| {
        bad(format!("Invalid input for field/attribute resize. Value: {arg}. {arg} is not of type 'object'"))
    })?;
    if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "flavorRef" | "OS-DCF:diskConfig")) {
        return Err(bad(format!(
            "Invalid input for field/attribute resize. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let auto_disk_config = disk_config_arg(o)?.unwrap_or(false);
    let flavor_ref = match o.get("flavorRef") {
        Some(Value::String(f)) if !f.is_empty() => last_segment(f).to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute flavorRef. Value: {v}."))),
        None => return Err(bad("Invalid input for field/attribute resize. Value: 'flavorRef' is a required property")),
    };
    let m = c.model();
    let visible = |f: &crate::model::Flavor| {
        f.is_public || is_admin(ctx) || m.flavor_access.contains_key(&FlavorAccess::key(&f.id, &s.project_id))
    };
    let flavor =
        m.flavors.get(&flavor_ref).filter(|f| visible(f)).ok_or_else(|| bad("Unable to locate requested flavor."))?;
    if flavor.id == s.flavor.id {
        return Err(bad("When resizing, instances must change flavor!"));
    }
    if flavor.disk < s.flavor.disk {
        return Err(bad("Resize error: Unable to resize disk down."));
    }
    let new = FlavorCopy::of(&flavor);
    let id = s.id.clone();
    let kp = c.settings.key_pairs_quota as i64;
    start_action(c, ctx, &id, rid, ("resize", "resize"), &["active", "stopped"], |t, cur| {
        let more = [("cores", new.vcpus - cur.flavor.vcpus), ("ram", new.ram - cur.flavor.ram)];
        let more: Vec<(&str, i64)> = more.into_iter().filter(|(_, n)| *n > 0).collect();
        crate::service::quotas::check(t, kp, &cur.project_id, &cur.user_id, &more)?;
        cur.task_state = Some("resize_prep".into());
        // Nova: the resize's disk config, MANUAL when not given.
        cur.auto_disk_config = auto_disk_config;
        Ok(())
    })
    .await?;
    tokio::spawn(c.clone().resize(id, new, rid.to_string()));
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `confirmResize` (204) and `revertResize` (202) of a server in VERIFY_RESIZE.
pub(super) async fn finish_resize(
    c: &Ctx,
    ctx: &AuthContext,
    s: &Server,
    key: &str,
    revert: bool,
    rid: &str,
) -> ApiResult<Response> {
    let rule = if revert { "os_compute_api:servers:revert_resize" } else { "os_compute_api:servers:confirm_resize" };
    enforce(c, ctx, rule, &json!({"project_id": s.project_id, "user_id": s.user_id}))?;
    let id = s.id.clone();
    start_action(c, ctx, &id, rid, (key, key), &["resized"], |_, cur| {
        if cur.resize.is_none() {
            // A server in `resized` always records its resize; refuse as Nova if not.
            check_state(cur, key, &[])?;
        }
        if revert {
            cur.task_state = Some("resize_reverting".into());
        }
        Ok(())
    })
    .await?;
    tokio::spawn(c.clone().finish_resize(id, revert, rid.to_string()));
    Ok(if revert { StatusCode::ACCEPTED } else { StatusCode::NO_CONTENT }.into_response())
}

/// `rescue`: the guest boots from a fresh disk of the rescue image (`rescue_image_ref`, or
/// the server's own image) with its root disk attached second, for repairs. 200 with the
/// admin password, as Nova.
pub(super) async fn rescue(
    c: &Ctx,
    ctx: &AuthContext,
    s: &Server,
    arg: &Value,
    token: &str,
    rid: &str,
) -> ApiResult<Response> {
    enforce(c, ctx, "os_compute_api:os-rescue", &json!({"project_id": s.project_id, "user_id": s.user_id}))?;
    let empty = Map::new();
    let o = match arg {
        Value::Null => &empty,
        Value::Object(o) => o,
        v => {
            return Err(bad(format!(
                "Invalid input for field/attribute rescue. Value: {v}. {v} is not of type 'object', 'null'"
            )))
        }
    };
    if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "adminPass" | "rescue_image_ref")) {
        return Err(bad(format!(
            "Invalid input for field/attribute rescue. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let admin_pass = match o.get("adminPass") {
        None => uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
        Some(Value::String(p)) if p.len() <= 255 => p.clone(),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute adminPass. Value: {v}."))),
    };
    let image_ref = match o.get("rescue_image_ref") {
        None => s.image_id.clone(),
        Some(Value::String(i)) if !i.is_empty() => last_segment(i).to_string(),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute rescue_image_ref. Value: {v}."))),
    };
    let (_, disk_format) = bootable_image(c, token, &image_ref, s.flavor.disk, s.flavor.ram).await?;
    let id = s.id.clone();
    start_action(c, ctx, &id, rid, ("rescue", "rescue"), &["active", "stopped", "error"], |_, cur| {
        cur.task_state = Some("rescuing".into());
        Ok(())
    })
    .await?;
    tokio::spawn(c.clone().rescue(id, Some((image_ref, disk_format)), rid.to_string()));
    Ok(Json(json!({"adminPass": admin_pass})).into_response())
}

/// `unrescue`: the guest boots from its own disk again.
pub(super) async fn unrescue(c: &Ctx, ctx: &AuthContext, s: &Server, rid: &str) -> ApiResult<Response> {
    enforce(c, ctx, "os_compute_api:os-unrescue", &json!({"project_id": s.project_id, "user_id": s.user_id}))?;
    let id = s.id.clone();
    start_action(c, ctx, &id, rid, ("unrescue", "unrescue"), &["rescued"], |_, cur| {
        cur.task_state = Some("unrescuing".into());
        Ok(())
    })
    .await?;
    tokio::spawn(c.clone().rescue(id, None, rid.to_string()));
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `createImage` and `createBackup`: a new image in the image service (the caller's,
/// private) whose data is a copy of the server's root disk, made by the host's agent; Nova's
/// snapshot properties (`image_type`, `instance_uuid`, `base_image_ref`, ...) under the
/// request's `metadata`. A backup is typed (`backup_type`) and only the newest `rotation`
/// backups of that type of the server are kept.
#[allow(clippy::too_many_arguments)]
pub(super) async fn create_image(
    c: &Ctx,
    ctx: &AuthContext,
    mv: Mv,
    s: &Server,
    action: &str,
    arg: &Value,
    token: &str,
    rid: &str,
) -> ApiResult<Response> {
    let backup = action == "createBackup";
    let rule = if backup { "os_compute_api:os-create-backup" } else { "os_compute_api:servers:create_image" };
    enforce(c, ctx, rule, &json!({"project_id": s.project_id, "user_id": s.user_id}))?;
    let o = arg.as_object().ok_or_else(|| {
        bad(format!("Invalid input for field/attribute {action}. Value: {arg}. {arg} is not of type 'object'"))
    })?;
    let known: &[&str] = if backup { &["name", "metadata", "backup_type", "rotation"] } else { &["name", "metadata"] };
    if let Some(k) = o.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(bad(format!(
            "Invalid input for field/attribute {action}. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let required =
        |k: &str| bad(format!("Invalid input for field/attribute {action}. Value: '{k}' is a required property"));
    let name = match o.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 && n.trim() == n => n.clone(),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute name. Value: {v}."))),
        None => return Err(required("name")),
    };
    let rotation = if backup {
        let backup_type = match o.get("backup_type") {
            Some(Value::String(t)) if !t.is_empty() && t.chars().count() <= 255 => t.clone(),
            Some(v) => return Err(bad(format!("Invalid input for field/attribute backup_type. Value: {v}."))),
            None => return Err(required("backup_type")),
        };
        let rotation = match o.get("rotation") {
            Some(Value::Number(n)) if n.is_u64() => n.as_u64().unwrap_or(0),
            Some(Value::String(t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => {
                t.parse().map_err(|_| bad(format!("Invalid input for field/attribute rotation. Value: {t}.")))?
            }
            Some(v) => return Err(bad(format!("Invalid input for field/attribute rotation. Value: {v}."))),
            None => return Err(required("rotation")),
        };
        Some((backup_type, rotation))
    } else {
        None
    };
    let metadata = o.get("metadata").map(metadata_arg).transpose()?.unwrap_or_default();
    let kp = c.settings.key_pairs_quota as i64;
    let limit = crate::service::quotas::limits(&c.model(), kp, &s.project_id, None)["metadata_items"];
    if limit >= 0 && metadata.len() as i64 > limit {
        return Err(ApiError::forbidden(format!("Maximum number of metadata items exceeds {limit}")));
    }
    const SOURCES: &[&str] = &["active", "stopped", "paused", "suspended"];
    check_state(s, action, SOURCES)?;
    // The base image's minimum RAM carries over (if the image is still there to ask).
    let base = c.images.show(token, &s.image_id).await.ok();
    let min_ram = base.as_ref().and_then(|b| b["min_ram"].as_i64()).unwrap_or(0);
    let mut doc = Map::new();
    for (k, v) in &s.image_properties {
        doc.insert(k.clone(), json!(v));
    }
    doc.extend([
        ("image_type".to_string(), json!(if backup { "backup" } else { "snapshot" })),
        ("instance_uuid".to_string(), json!(s.id)),
        ("user_id".to_string(), json!(ctx.user.id)),
        ("base_image_ref".to_string(), json!(s.image_id)),
    ]);
    if let Some((backup_type, _)) = &rotation {
        doc.insert("backup_type".to_string(), json!(backup_type));
    }
    for (k, v) in metadata {
        doc.insert(k, json!(v));
    }
    doc.extend([
        ("name".to_string(), json!(name)),
        ("container_format".to_string(), json!("bare")),
        ("disk_format".to_string(), json!("qcow2")),
        ("visibility".to_string(), json!("private")),
        ("min_disk".to_string(), json!(s.flavor.disk.max(0))),
        ("min_ram".to_string(), json!(min_ram)),
    ]);
    let image = c.images.create(token, Value::Object(doc)).await.map_err(|e| match e {
        haneul_core::client::ClientError::Status { status: 403 | 413, .. } => {
            ApiError::forbidden("The image quota does not allow another image.")
        }
        haneul_core::client::ClientError::Status { status: 400, body, .. } => {
            bad(format!("The image service refused the snapshot's image: {body}"))
        }
        e => {
            tracing::warn!(error = %e, "image service unreachable");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The image service could not be reached.")
        }
    })?;
    let image_id = image["id"].as_str().unwrap_or_default().to_string();
    let id = s.id.clone();
    let started = start_action(c, ctx, &id, rid, (action, action), SOURCES, |_, cur| {
        cur.task_state = Some("image_snapshot".into());
        Ok(())
    })
    .await;
    if let Err(e) = started {
        if let Err(d) = c.delete_image(&image_id).await {
            tracing::warn!(image = %image_id, error = %d, "could not delete an unused snapshot image");
        }
        return Err(e.into());
    }
    tokio::spawn(c.clone().snapshot(id, image_id.clone(), rotation, rid.to_string()));
    if mv.at_least(45) {
        return Ok((StatusCode::ACCEPTED, Json(json!({"image_id": image_id}))).into_response());
    }
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = c.images.bookmark(&image_id).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `lock` (with `locked_reason` from 2.73) and `unlock`. As Nova: a lock placed from the
/// server's own project is the owner's; one placed from another project (an admin's) is
/// lifted from the server's project only with `unlock_override` (admins, by default).
pub(super) async fn lock(
    c: &Compute,
    ctx: &AuthContext,
    mv: Mv,
    s: &Server,
    v: &Value,
    rid: &str,
) -> ApiResult<Response> {
    let target = json!({"project_id": s.project_id, "user_id": s.user_id});
    let locking = v.get("lock").is_some();
    let reason = if locking {
        match v.get("lock") {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) if mv.at_least(73) => {
                if let Some(k) = o.keys().find(|k| *k != "locked_reason") {
                    return Err(bad(format!("Invalid input for field/attribute lock. Additional properties are not allowed ('{k}' was unexpected)")));
                }
                match o.get("locked_reason") {
                    None => None,
                    Some(Value::String(r)) if r.chars().count() <= 255 => Some(r.clone()),
                    Some(r) => {
                        return Err(bad(format!("Invalid input for field/attribute locked_reason. Value: {r}.")))
                    }
                }
            }
            Some(Value::Object(o)) if o.is_empty() => None,
            Some(other) => return Err(bad(format!("Invalid input for field/attribute lock. Value: {other}."))),
        }
    } else {
        None
    };
    if locking {
        enforce(c, ctx, "os_compute_api:os-lock-server:lock", &target)?;
    } else {
        enforce(c, ctx, "os_compute_api:os-lock-server:unlock", &target)?;
        let expected = if ctx.project_id() == Some(s.project_id.as_str()) { "owner" } else { "admin" };
        if s.locked && s.locked_by.as_deref() != Some(expected) {
            enforce(c, ctx, "os_compute_api:os-lock-server:unlock:unlock_override", &target)?;
        }
    }
    let id = s.id.clone();
    c.write(|t| {
        let mut cur = t.edit(&t.m.servers, "server", &id)?;
        cur.locked = locking;
        cur.locked_reason = reason;
        cur.locked_by = locking
            .then(|| if ctx.project_id() == Some(cur.project_id.as_str()) { "owner" } else { "admin" }.to_string());
        cur.updated_at = Utc::now();
        let cur = t.put(cur)?;
        let project = ctx.project_id().unwrap_or(&cur.project_id);
        crate::service::actions::record(t, rid, &cur, if locking { "lock" } else { "unlock" }, &ctx.user.id, project)
    })
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
