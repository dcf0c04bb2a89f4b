//! Servers (in progress): create, list, show, delete and the console log, on this host.
//! Networking (`networks` other than `none`), actions other than `os-getConsoleOutput`,
//! scheduling over several hosts and quotas come later.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::Engine;
use chrono::{DateTime, Utc};
use haneul_core::auth::{Auth, AuthContext, RawToken};
use haneul_core::error::ApiError;
use haneul_core::http::RequestId;
use haneul_core::routes::{rule, target, Access, Routes};
use serde_json::{json, Map, Value};

use super::{body_member, enforce, is_admin, links, ApiResult, Ctx, Mv};
use crate::model::{FlavorAccess, FlavorCopy, Server};
use crate::servers::BuildRequest;
use crate::service::Compute;

/// The server actions served, each with Nova's rule (`POST /servers/{id}/action`).
pub const ACTIONS: &[(&str, &str)] = &[
    ("os-getConsoleOutput", "os_compute_api:os-console-output"),
    ("os-getVNCConsole", "os_compute_api:os-remote-consoles"),
    ("lock", "os_compute_api:os-lock-server:lock"),
    ("unlock", "os_compute_api:os-lock-server:unlock"),
    ("addSecurityGroup", "os_compute_api:os-security-groups:add"),
    ("removeSecurityGroup", "os_compute_api:os-security-groups:remove"),
    ("addFloatingIp", "os_compute_api:os-floating-ips:add"),
    ("removeFloatingIp", "os_compute_api:os-floating-ips:remove"),
    ("addFixedIp", "os_compute_api:os-multinic:add"),
    ("removeFixedIp", "os_compute_api:os-multinic:remove"),
    ("createImage", "os_compute_api:servers:create_image"),
    ("createBackup", "os_compute_api:os-create-backup"),
    ("rebuild", "os_compute_api:servers:rebuild"),
    ("resize", "os_compute_api:servers:resize"),
    ("confirmResize", "os_compute_api:servers:confirm_resize"),
    ("revertResize", "os_compute_api:servers:revert_resize"),
    ("rescue", "os_compute_api:os-rescue"),
    ("unrescue", "os_compute_api:os-unrescue"),
    ("os-stop", "os_compute_api:servers:stop"),
    ("os-start", "os_compute_api:servers:start"),
    ("reboot", "os_compute_api:servers:reboot"),
    ("pause", "os_compute_api:os-pause-server:pause"),
    ("unpause", "os_compute_api:os-pause-server:unpause"),
    ("suspend", "os_compute_api:os-suspend-server:suspend"),
    ("resume", "os_compute_api:os-suspend-server:resume"),
];

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/servers", rule("os_compute_api:servers:index"), list)
        .post("/servers", rule("os_compute_api:servers:create"), create)
        .get("/servers/detail", rule("os_compute_api:servers:detail"), list_detail)
        .get("/servers/{id}", rule("os_compute_api:servers:show"), show)
        .put("/servers/{id}", target("os_compute_api:servers:update"), update)
        .delete("/servers/{id}", rule("os_compute_api:servers:delete"), delete)
        .post("/servers/{id}/action", Access::Actions(ACTIONS), action)
        .get("/servers/{id}/ips", rule("os_compute_api:ips:index"), ips)
        .get("/servers/{id}/ips/{network}", rule("os_compute_api:ips:show"), ips_of_network)
        .get("/servers/{id}/os-server-password", target("os_compute_api:os-server-password:show"), show_password)
        .delete("/servers/{id}/os-server-password", target("os_compute_api:os-server-password:clear"), clear_password)
}

/// `GET /servers/{id}/os-server-password`: the encrypted password the guest posted to the
/// metadata service (empty when none), as Nova.
async fn show_password(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    enforce(&c, &ctx, "os_compute_api:os-server-password:show", &json!({"project_id": s.project_id}))?;
    Ok(Json(json!({"password": s.password})).into_response())
}

/// `DELETE /servers/{id}/os-server-password`: forgets it (the guest's password stays).
async fn clear_password(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    enforce(&c, &ctx, "os_compute_api:os-server-password:clear", &json!({"project_id": s.project_id}))?;
    c.set_state(&id, |cur| cur.password.clear()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /servers/{id}/ips`: the server's addresses by network.
async fn ips(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    Ok(Json(json!({"addresses": crate::network::addresses(&s.ports, false)})).into_response())
}

/// `GET /servers/{id}/ips/{network}`: its addresses on one network (by name).
async fn ips_of_network(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path((id, network)): Path<(String, String)>,
) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    let all = crate::network::addresses(&s.ports, false);
    let on = all.get(&network).cloned().ok_or_else(|| {
        ApiError::not_found(format!("Instance {id} is not attached to network {network}.")).with_kind("itemNotFound")
    })?;
    Ok(Json(json!({network: on})).into_response())
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

fn ts(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Nova's status from the server's states.
fn status(s: &Server) -> &'static str {
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

fn visible(ctx: &AuthContext, s: &Server) -> bool {
    is_admin(ctx) || ctx.project_id() == Some(s.project_id.as_str())
}

pub(super) fn find(c: &Compute, ctx: &AuthContext, id: &str) -> ApiResult<Arc<Server>> {
    c.model()
        .servers
        .get(id)
        .filter(|s| visible(ctx, s))
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("Instance {id} could not be found.")))
}

/// Which answer a server is rendered for. Before 2.75 Nova's update and rebuild answers
/// leave out the extended attributes (zone, states, key name, usage times, volumes);
/// list entries never carry `server_groups`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum View {
    Show,
    Detail,
    Update,
    Rebuild,
}

fn render(c: &Compute, mv: Mv, ctx: &AuthContext, s: &Server, view: View) -> Value {
    let extended = matches!(view, View::Show | View::Detail) || mv.at_least(75);
    let flavor = if mv.at_least(47) {
        let mut f = json!({
            "vcpus": s.flavor.vcpus, "ram": s.flavor.ram, "disk": s.flavor.disk,
            "ephemeral": s.flavor.ephemeral, "swap": s.flavor.swap, "original_name": s.flavor.name,
        });
        if enforce(c, ctx, "os_compute_api:os-flavor-extra-specs:index", &json!({"project_id": ctx.project_id()}))
            .is_ok()
        {
            f["extra_specs"] = json!(s.flavor.extra_specs);
        }
        f
    } else {
        json!({"id": s.flavor.id, "links": [{"rel": "bookmark", "href": format!("{}/flavors/{}", c.settings.public_url, s.flavor.id)}]})
    };
    let mut v = json!({
        "id": s.id,
        "name": s.name,
        "status": status(s),
        "tenant_id": s.project_id,
        "user_id": s.user_id,
        "metadata": s.metadata,
        "hostId": s.host.as_deref().map(|h| host_id(&s.project_id, h)).unwrap_or_default(),
        "image": image_ref(c, mv, s),
        "flavor": flavor,
        "created": ts(&s.created_at),
        "updated": ts(&s.updated_at),
        "addresses": crate::network::addresses(&s.ports, extended),
        "accessIPv4": s.access_ipv4,
        "accessIPv6": s.access_ipv6,
        "links": links(c, &format!("servers/{}", s.id)),
        "OS-DCF:diskConfig": disk_config(s.auto_disk_config),
    });
    // As Nova: progress only while the server is (or becomes) usable.
    if matches!(v["status"].as_str(), Some("ACTIVE" | "BUILD" | "REBUILD" | "RESIZE" | "VERIFY_RESIZE" | "MIGRATING")) {
        v["progress"] = json!(0);
    }
    // The groups of its ports, one entry per port and group (Nova's view); none, no key.
    if extended && s.ports.iter().any(|p| !p.security_groups.is_empty()) {
        let groups: Vec<Value> = s.ports.iter().flat_map(|p| &p.security_groups).map(|n| json!({"name": n})).collect();
        v["security_groups"] = json!(groups);
    }
    if extended {
        let more = json!({
            "OS-EXT-AZ:availability_zone": s.availability_zone,
            "config_drive": "True",
            "key_name": s.key_name,
            "OS-SRV-USG:launched_at": s.launched_at.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()),
            "OS-SRV-USG:terminated_at": null,
            "OS-EXT-STS:task_state": s.task_state,
            "OS-EXT-STS:vm_state": s.vm_state,
            "OS-EXT-STS:power_state": s.power_state,
            "os-extended-volumes:volumes_attached": [],
        });
        v.as_object_mut().expect("object").extend(more.as_object().expect("object").clone());
        if is_admin(ctx) {
            v["OS-EXT-SRV-ATTR:host"] = json!(s.host);
            v["OS-EXT-SRV-ATTR:hypervisor_hostname"] = json!(s.host);
            v["OS-EXT-SRV-ATTR:instance_name"] = json!(format!("instance-{}", &s.id[..8]));
            if mv.at_least(3) {
                v["OS-EXT-SRV-ATTR:reservation_id"] = json!(s.reservation_id);
                v["OS-EXT-SRV-ATTR:launch_index"] = json!(s.launch_index);
                v["OS-EXT-SRV-ATTR:kernel_id"] = json!("");
                v["OS-EXT-SRV-ATTR:ramdisk_id"] = json!("");
                v["OS-EXT-SRV-ATTR:root_device_name"] = json!("/dev/vda");
                if view != View::Rebuild {
                    v["OS-EXT-SRV-ATTR:user_data"] = json!(s.user_data);
                }
            }
        }
        if mv.at_least(90) || (mv.at_least(3) && is_admin(ctx)) {
            v["OS-EXT-SRV-ATTR:hostname"] = json!(s.hostname);
        }
    } else if view == View::Rebuild && mv.at_least(54) {
        v["key_name"] = json!(s.key_name);
    }
    if view == View::Rebuild && mv.at_least(57) {
        v["user_data"] = json!(s.user_data);
    }
    // As Nova: a fault is shown while the server is in ERROR.
    if let (Some(f), "error") = (&s.fault, s.vm_state.as_str()) {
        v["fault"] = json!({"code": f.code, "message": f.message, "created": ts(&f.created)});
    }
    if mv.at_least(9) {
        v["locked"] = json!(s.locked);
    }
    if mv.at_least(19) {
        v["description"] = json!(s.description);
    }
    if mv.at_least(26) {
        v["tags"] = json!(s.tags);
    }
    if mv.at_least(63) {
        v["trusted_image_certificates"] = Value::Null;
    }
    if mv.at_least(73) {
        v["locked_reason"] = json!(s.locked_reason);
    }
    if mv.at_least(71) && view != View::Detail {
        v["server_groups"] = json!(s.group.iter().collect::<Vec<_>>());
    }
    if mv.at_least(96) {
        v["pinned_availability_zone"] = json!(s.requested_zone);
    }
    if mv.at_least(100) {
        v["scheduler_hints"] = json!(s.scheduler_hints);
    }
    v
}

fn disk_config(auto: bool) -> &'static str {
    if auto {
        "AUTO"
    } else {
        "MANUAL"
    }
}

/// `OS-DCF:diskConfig` as given (None when absent; Nova's 400 for anything but AUTO/MANUAL).
fn disk_config_arg(o: &Map<String, Value>) -> ApiResult<Option<bool>> {
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
fn image_disk_config(image_id: &str, properties: &BTreeMap<String, String>, asked: Option<bool>) -> ApiResult<bool> {
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
fn admin_pass_arg(o: &Map<String, Value>) -> ApiResult<Option<String>> {
    match o.get("adminPass") {
        None => Ok(None),
        Some(Value::String(p)) => Ok(Some(p.clone())),
        Some(v) => Err(bad(format!("Invalid input for field/attribute adminPass. Value: {v}."))),
    }
}

/// A generated admin password (Nova makes one when none is given; this guest ignores it).
fn new_admin_pass() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// The server's image: a bookmark, with the image's properties from 2.98.
fn image_ref(c: &Compute, mv: Mv, s: &Server) -> Value {
    let mut image = json!({
        "id": s.image_id,
        "links": [{"rel": "bookmark", "href": format!("{}/images/{}", c.settings.public_url, s.image_id)}],
    });
    if mv.at_least(98) {
        image["properties"] = json!(s.image_properties);
    }
    image
}

/// Nova's hostId: a hash of the project and host, so that a project can tell whether two of
/// its servers share a host without learning the host.
fn host_id(project: &str, host: &str) -> String {
    use sha1::Digest;
    let h = sha1::Sha1::digest(format!("{project}{host}").as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn summary(c: &Compute, s: &Server) -> Value {
    json!({"id": s.id, "name": s.name, "links": links(c, &format!("servers/{}", s.id))})
}

fn listed(c: &Compute, ctx: &AuthContext, q: &HashMap<String, String>) -> Vec<Arc<Server>> {
    let all = is_admin(ctx) && q.get("all_tenants").is_some_and(|v| !matches!(v.as_str(), "0" | "false" | "False"));
    let tag_filter = |k: &str| -> Option<Vec<String>> {
        q.get(k).map(|v| v.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect())
    };
    // Nova matches `name` as a regular expression (a plain name is one); one that does not
    // compile matches as a literal.
    let name = q.get("name").map(|n| {
        regex_lite::Regex::new(n).unwrap_or_else(|_| regex_lite::Regex::new(&regex_lite::escape(n)).expect("escaped"))
    });
    let (tags, tags_any, not_tags, not_tags_any) =
        (tag_filter("tags"), tag_filter("tags-any"), tag_filter("not-tags"), tag_filter("not-tags-any"));
    // `ip` and `ip6`: regular expressions on the server's addresses, as Nova matches them.
    let address = |k: &str| {
        q.get(k).map(|n| {
            regex_lite::Regex::new(n)
                .unwrap_or_else(|_| regex_lite::Regex::new(&regex_lite::escape(n)).expect("escaped"))
        })
    };
    let (ip4, ip6) = (address("ip"), address("ip6"));
    let has_ip = |s: &Server, re: &Option<regex_lite::Regex>, v6: bool| {
        re.as_ref()
            .is_none_or(|re| s.ports.iter().flat_map(|p| &p.ips).any(|ip| ip.contains(':') == v6 && re.is_match(ip)))
    };
    let mut out: Vec<Arc<Server>> = c
        .model()
        .servers
        .values()
        .filter(|s| if all { true } else { ctx.project_id() == Some(s.project_id.as_str()) })
        .filter(|s| name.as_ref().is_none_or(|re| re.is_match(&s.name)))
        .filter(|s| has_ip(s, &ip4, false) && has_ip(s, &ip6, true))
        .filter(|s| q.get("flavor").is_none_or(|f| s.flavor.id == last_segment(f)))
        .filter(|s| q.get("image").is_none_or(|i| s.image_id == last_segment(i)))
        .filter(|s| q.get("status").is_none_or(|st| st.eq_ignore_ascii_case(status(s))))
        .filter(|s| q.get("reservation_id").is_none_or(|r| &s.reservation_id == r))
        .filter(|s| tags.as_ref().is_none_or(|ts| ts.iter().all(|t| s.tags.contains(t))))
        .filter(|s| tags_any.as_ref().is_none_or(|ts| ts.iter().any(|t| s.tags.contains(t))))
        .filter(|s| not_tags.as_ref().is_none_or(|ts| !ts.iter().all(|t| s.tags.contains(t))))
        .filter(|s| not_tags_any.as_ref().is_none_or(|ts| !ts.iter().any(|t| s.tags.contains(t))))
        .cloned()
        .collect();
    out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    out
}

/// `limit` and `marker` over a listing, with Nova's `servers_links` when the page is full.
fn paged(
    c: &Compute,
    q: &HashMap<String, String>,
    mut all: Vec<Arc<Server>>,
    collection: &str,
) -> ApiResult<(Vec<Arc<Server>>, Option<Value>)> {
    if let Some(since) = q.get("changes-since") {
        let t = DateTime::parse_from_rfc3339(since).map_err(|_| {
            bad(format!(
                "Invalid input for query parameters changes-since. Value: {since}. '{since}' is not a 'date-time'"
            ))
        })?;
        all.retain(|s| s.updated_at >= t);
    }
    if let Some(marker) = q.get("marker") {
        let at = all.iter().position(|s| &s.id == marker).ok_or_else(|| bad(format!("marker [{marker}] not found")))?;
        all.drain(..=at);
    }
    let limit = match q.get("limit") {
        None => 1000,
        Some(l) => l.parse::<usize>().map_err(|_| {
            bad(format!("Invalid input for query parameters limit. Value: {l}. '{l}' does not match '^[0-9]*$'"))
        })?,
    }
    .min(1000);
    let full = limit > 0 && all.len() >= limit;
    all.truncate(limit);
    let links = full.then(|| all.last()).flatten().map(|last| {
        let mut params: Vec<(String, String)> =
            q.iter().filter(|(k, _)| *k != "marker").map(|(k, v)| (k.clone(), v.clone())).collect();
        params.sort();
        params.push(("marker".into(), last.id.clone()));
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", super::query_encode(v))).collect();
        json!([{"rel": "next", "href": format!("{}/v2.1/{collection}?{}", c.settings.public_url, query.join("&"))}])
    });
    Ok((all, links))
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let (page, links) = paged(&c, &q, listed(&c, &ctx, &q), "servers")?;
    let mut body = json!({"servers": page.iter().map(|s| summary(&c, s)).collect::<Vec<_>>()});
    if let Some(l) = links {
        body["servers_links"] = l;
    }
    Ok(Json(body).into_response())
}

async fn list_detail(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let (page, links) = paged(&c, &q, listed(&c, &ctx, &q), "servers/detail")?;
    let mut body = json!({"servers": page.iter().map(|s| render(&c, mv, &ctx, s, View::Detail)).collect::<Vec<_>>()});
    if let Some(l) = links {
        body["servers_links"] = l;
    }
    Ok(Json(body).into_response())
}

async fn show(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(id): Path<String>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    Ok(Json(json!({"server": render(&c, mv, &ctx, &s, View::Show)})).into_response())
}

/// The request's scheduler hints (`os:scheduler_hints`), and the server group they name.
fn scheduler_hints(c: &Compute, ctx: &AuthContext, body: &[u8]) -> ApiResult<(Map<String, Value>, Option<String>)> {
    let v: Value = haneul_core::http::parse_json(body)?;
    let hints = match v.get("os:scheduler_hints").or_else(|| v.get("OS-SCH-HNT:scheduler_hints")) {
        None => return Ok((Map::new(), None)),
        Some(Value::Object(h)) => h.clone(),
        Some(h) => {
            return Err(bad(format!(
                "Invalid input for field/attribute os:scheduler_hints. Value: {h}. {h} is not of type 'object'"
            )))
        }
    };
    let Some(group) = hints.get("group") else { return Ok((hints, None)) };
    let id = group.as_str().ok_or_else(|| bad(format!("Invalid input for field/attribute group. Value: {group}.")))?;
    let m = c.model();
    match m.server_groups.get(id) {
        Some(g) if is_admin(ctx) || ctx.project_id() == Some(g.project_id.as_str()) => {
            let id = id.to_string();
            Ok((hints, Some(id)))
        }
        _ => Err(bad(format!("Instance group {id} could not be found."))),
    }
}

/// What an update or a rebuild may change besides its own fields (`None`: unchanged).
struct Edits {
    name: Option<String>,
    description: Option<Option<String>>,
    access_ipv4: Option<String>,
    access_ipv6: Option<String>,
}

impl Edits {
    fn apply(self, s: &mut Server) {
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
fn access_ip(o: &Map<String, Value>, field: &str, v6: bool) -> ApiResult<Option<String>> {
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

/// `min_count` / `max_count`: a whole number of at least 1 (or a string of digits).
fn count_arg(o: &Map<String, Value>, field: &str) -> ApiResult<Option<u32>> {
    let n = match o.get(field) {
        None => return Ok(None),
        Some(Value::Number(n)) if n.is_u64() => n.as_u64(),
        Some(Value::String(t)) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) => t.parse::<u64>().ok(),
        Some(v) => {
            return Err(bad(format!(
                "Invalid input for field/attribute {field}. Value: {v}. {v} is not of type 'integer', 'string'"
            )))
        }
    };
    match n {
        Some(0) => {
            Err(bad(format!("Invalid input for field/attribute {field}. Value: 0. 0 is less than the minimum of 1")))
        }
        Some(n) if n <= 1000 => Ok(Some(n as u32)),
        _ => Err(bad(format!("Invalid input for field/attribute {field}. Value: {}.", o[field]))),
    }
}

/// A guest host name (2.90/2.94): letters, digits, hyphens and dots, up to 63 characters
/// per label.
fn hostname_arg(v: &Value) -> ApiResult<String> {
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

/// A server's `availability_zone`: `zone`, or (admins) `zone:host`, `zone:host:node`,
/// `zone::node` to force a host. A zone must be one some enabled service is in.
fn requested_zone(c: &Compute, ctx: &AuthContext, v: Option<&Value>) -> ApiResult<(Option<String>, Option<String>)> {
    let az = match v {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 255 && s.trim() == s => s.clone(),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute availability_zone. Value: {v}."))),
    };
    let parts: Vec<&str> = az.split(':').collect();
    if parts.len() > 3 {
        return Err(bad("Invalid input received: Unable to parse availability_zone"));
    }
    let zone = Some(parts[0].to_string()).filter(|z| !z.is_empty());
    let host = parts.get(1).filter(|h| !h.is_empty()).map(|h| h.to_string());
    let node = parts.get(2).filter(|n| !n.is_empty()).map(|n| n.to_string());
    let forced = host.or(node);
    if forced.is_some() {
        super::enforce(c, ctx, "os_compute_api:servers:create:forced_host", &json!({"project_id": ctx.project_id()}))?;
        return Ok((zone, forced));
    }
    if let Some(z) = &zone {
        let m = c.model();
        let known = m.services.values().filter(|s| !s.disabled).any(|s| &m.service_zone(s) == z);
        if !known {
            return Err(bad("The requested availability zone is not available"));
        }
    }
    Ok((zone, None))
}

/// A `metadata` argument: string keys (1–255) to strings (up to 255).
fn metadata_arg(v: &Value) -> ApiResult<BTreeMap<String, String>> {
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

/// The image a server boots: it must exist, be visible to the caller, be active, boot here
/// (qcow2 or raw) and fit the flavor. Its document and disk format.
async fn bootable_image(
    c: &Compute,
    token: &str,
    image_ref: &str,
    disk_gb: i64,
    ram: i64,
) -> ApiResult<(Value, String)> {
    let url = format!("{}/v2/images/{image_ref}", c.settings.image_url);
    let image = haneul_core::client::json(hyper::Method::GET, &url, &[("x-auth-token", token)], None).await.map_err(
        |e| match e {
            haneul_core::client::ClientError::Status { status: 404, .. } => {
                bad(format!("Image {image_ref} could not be found."))
            }
            e => {
                tracing::warn!(error = %e, "image service unreachable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "The image service could not be reached.")
            }
        },
    )?;
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

fn last_segment(r: &str) -> &str {
    r.trim_end_matches('/').rsplit('/').next().unwrap_or(r)
}

async fn create(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Extension(token): Extension<RawToken>,
    Extension(rid): Extension<RequestId>,
    body: Bytes,
) -> ApiResult {
    let Some(project) = ctx.project_id().map(str::to_owned) else {
        return Err(ApiError::forbidden("Servers are created with a project-scoped token."));
    };
    let o: Map<String, Value> = body_member(&body, "server")?;
    let (hints, group) = scheduler_hints(&c, &ctx, &body)?;
    let access_ipv4 = access_ip(&o, "accessIPv4", false)?.unwrap_or_default();
    let access_ipv6 = access_ip(&o, "accessIPv6", true)?.unwrap_or_default();
    let (min_count, max_count) = (count_arg(&o, "min_count")?, count_arg(&o, "max_count")?);
    let (min_count, max_count) = match (min_count, max_count) {
        (None, None) => (1, 1),
        (Some(n), None) => (n, n),
        (None, Some(x)) => (1, x),
        (Some(n), Some(x)) if n > x => return Err(bad("min_count must be <= max_count")),
        (Some(n), Some(x)) => (n, x),
    };
    let return_reservation_id = match o.get("return_reservation_id") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(t))
            if matches!(t.to_ascii_lowercase().as_str(), "true" | "false" | "1" | "0" | "yes" | "no") =>
        {
            matches!(t.to_ascii_lowercase().as_str(), "true" | "1" | "yes")
        }
        Some(v) => return Err(bad(format!("Invalid input for field/attribute return_reservation_id. Value: {v}."))),
    };
    let hostname = match o.get("hostname") {
        Some(h) if mv.at_least(90) => Some(hostname_arg(h)?),
        Some(_) => {
            return Err(bad(
                "Invalid input for field/attribute server. Additional properties are not allowed ('hostname' was unexpected)",
            ))
        }
        None => None,
    };
    if hostname.is_some() && max_count > 1 {
        return Err(bad("Cannot use hostname with multiple instances: only max_count=1 is allowed."));
    }
    let tags = match o.get("tags") {
        Some(t) if mv.at_least(52) => super::server_meta::tag_list(t)?,
        _ => Vec::new(),
    };
    let name = match o.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() && n.chars().count() <= 255 => n.clone(),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute name. Value: {v}."))),
        None => return Err(bad("Invalid input for field/attribute server. Value: 'name' is a required property")),
    };
    let flavor_ref = match o.get("flavorRef") {
        Some(Value::String(f)) if !f.is_empty() => last_segment(f).to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(bad("Invalid input for field/attribute server. Value: 'flavorRef' is a required property")),
    };
    let image_ref = match o.get("imageRef") {
        Some(Value::String(i)) if !i.is_empty() => last_segment(i).to_string(),
        _ => return Err(bad("Block device mapping is not supported yet: imageRef is required.")),
    };
    let networks = crate::network::parse_networks(o.get("networks"), mv.at_least(37)).map_err(bad)?;
    let security_groups: Vec<String> = match o.get("security_groups") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|g| {
                g.get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| bad(format!("Invalid input for field/attribute security_groups. Value: {g}.")))
            })
            .collect::<ApiResult<Vec<_>>>()?,
        Some(v) => return Err(bad(format!("Invalid input for field/attribute security_groups. Value: {v}."))),
    };
    // Nova checks the groups before anything is made ("default" is always there).
    if security_groups.iter().any(|g| g != "default") {
        c.group_ids(&project, &security_groups).await.map_err(bad)?;
    }
    let auto_disk_config = disk_config_arg(&o)?;
    let admin_pass = admin_pass_arg(&o)?.unwrap_or_else(new_admin_pass);
    let requested_networks =
        c.check_networks(&project, networks, is_admin(&ctx)).await.map_err(|(status, message)| match status {
            409 => ApiError::conflict(message),
            503 => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message),
            _ => bad(message),
        })?;
    if requested_networks.iter().filter(|r| r.port_id.is_some()).count() > 0 && max_count > 1 {
        return Err(bad("Unable to launch multiple instances with a single configured port ID. Please launch your instance one by one with different ports."));
    }
    let (requested_zone, forced_host) = requested_zone(&c, &ctx, o.get("availability_zone"))?;
    let m = c.model();
    let flavor = m
        .flavors
        .get(&flavor_ref)
        .filter(|f| f.is_public || is_admin(&ctx) || m.flavor_access.contains_key(&FlavorAccess::key(&f.id, &project)))
        .ok_or_else(|| bad(format!("Flavor {flavor_ref} could not be found.")))?;
    let (key_name, key_data) = match o.get("key_name") {
        None | Some(Value::Null) => (None, None),
        Some(Value::String(k)) => {
            let pair = m
                .keypairs
                .get(&crate::model::Keypair::key(&ctx.user.id, k))
                .ok_or_else(|| bad(format!("Invalid key_name provided.")))?;
            (Some(k.clone()), Some(pair.public_key.clone()))
        }
        Some(v) => return Err(bad(format!("Invalid input for field/attribute key_name. Value: {v}."))),
    };
    let user_data = match o.get("user_data") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => {
            base64::engine::general_purpose::STANDARD
                .decode(u)
                .map_err(|_| bad("User data needs to be valid base 64."))?;
            if u.len() > 65535 {
                return Err(bad(
                    "User data too large. User data must be no larger than 65535 bytes once base64 encoded.",
                ));
            }
            Some(u.clone())
        }
        Some(v) => return Err(bad(format!("Invalid input for field/attribute user_data. Value: {v}."))),
    };
    let metadata = o.get("metadata").map(metadata_arg).transpose()?.unwrap_or_default();
    let (image, disk_format) = bootable_image(&c, &token.0, &image_ref, flavor.disk, flavor.ram).await?;
    let image_properties = image_properties(&image);
    let auto_disk_config = image_disk_config(&image_ref, &image_properties, auto_disk_config)?;
    let now = Utc::now();
    let reservation_id: String = format!("r-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let template = Server {
        id: String::new(),
        hostname: hostname.unwrap_or_else(|| crate::servers::hostname(&name)),
        name,
        project_id: project,
        user_id: ctx.user.id.clone(),
        flavor: FlavorCopy {
            id: flavor.id.clone(),
            name: flavor.name.clone(),
            ram: flavor.ram,
            vcpus: flavor.vcpus,
            disk: flavor.disk,
            ephemeral: flavor.ephemeral,
            swap: flavor.swap,
            extra_specs: flavor.extra_specs.clone(),
        },
        image_id: image_ref,
        key_name,
        key_data,
        user_data,
        metadata,
        description: o.get("description").and_then(|d| d.as_str()).map(str::to_owned),
        vm_state: "building".into(),
        task_state: Some("scheduling".into()),
        power_state: 0,
        host: None,
        availability_zone: requested_zone.clone().unwrap_or_default(),
        requested_zone,
        forced_host,
        created_at: now,
        updated_at: now,
        launched_at: None,
        fault: None,
        group: group.clone(),
        tags,
        locked: false,
        locked_reason: None,
        locked_by: None,
        generation: 0,
        image_format: disk_format,
        reboots: 0,
        hard_reboots: 0,
        rebuilds: 0,
        access_ipv4,
        access_ipv6,
        scheduler_hints: hints,
        image_properties,
        reservation_id: reservation_id.clone(),
        launch_index: 0,
        resize: None,
        reverts: 0,
        rescue_image: None,
        requested_networks,
        security_groups: security_groups.clone(),
        ports: Vec::new(),
        auto_disk_config,
        password: String::new(),
    };
    let kp = c.settings.key_pairs_quota as i64;
    let saved = c
        .write(|t| {
            let limits = crate::quotas::limits(&t.m, kp, &template.project_id, Some(&template.user_id));
            let meta_limit = limits["metadata_items"];
            if meta_limit >= 0 && template.metadata.len() as i64 > meta_limit {
                return Err(crate::service::Error::Forbidden(format!(
                    "Maximum number of metadata items exceeds {meta_limit}"
                )));
            }
            // As many as the quota allows, from max_count down to min_count (Nova's rule).
            let f = &template.flavor;
            let mut count = max_count;
            loop {
                let n = count as i64;
                let wanted = [("instances", n), ("cores", n * f.vcpus), ("ram", n * f.ram)];
                match crate::quotas::check(t, kp, &template.project_id, &template.user_id, &wanted) {
                    Ok(()) => break,
                    Err(e) if count <= min_count => return Err(e),
                    Err(_) => count -= 1,
                }
            }
            let mut saved = Vec::new();
            for i in 0..count {
                let mut server = template.clone();
                server.id = uuid::Uuid::new_v4().to_string();
                server.launch_index = i;
                if count > 1 {
                    server.name = format!("{}-{}", template.name, i + 1);
                    server.hostname = crate::servers::hostname(&server.name);
                }
                if let Some(g) = &server.group {
                    let mut g = t.edit(&t.m.server_groups, "server group", g)?;
                    let limit = limits["server_group_members"];
                    if limit >= 0 && g.members.len() as i64 >= limit {
                        return Err(crate::service::Error::Forbidden(
                            "Quota exceeded, too many servers in group".into(),
                        ));
                    }
                    g.members.push(server.id.clone());
                    t.put(g)?;
                }
                let s = t.put(server)?;
                crate::actions::record(t, &rid.0, &s, "create", &ctx.user.id, &s.project_id)?;
                saved.push(s);
            }
            Ok(saved)
        })
        .await?;
    for s in &saved {
        let build = BuildRequest { server_id: s.id.clone(), request_id: rid.0.clone(), image: image.clone() };
        tokio::spawn(c.clone().build(build));
    }
    if return_reservation_id {
        return Ok((StatusCode::ACCEPTED, Json(json!({"reservation_id": reservation_id}))).into_response());
    }
    let first = &saved[0];
    let body = json!({"server": {
        "id": first.id,
        "links": links(&c, &format!("servers/{}", first.id)),
        "OS-DCF:diskConfig": disk_config(first.auto_disk_config),
        "security_groups": if security_groups.is_empty() { json!([{"name": "default"}]) } else { json!(security_groups.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()) },
        "adminPass": admin_pass,
    }});
    let mut resp = (StatusCode::ACCEPTED, Json(body)).into_response();
    if let Ok(v) = format!("{}/v2.1/servers/{}", c.settings.public_url, first.id).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// An image's own properties as strings, those whose names Nova's 2.98 view allows.
fn image_properties(image: &Value) -> BTreeMap<String, String> {
    let key_ok = |k: &str| k.len() <= 255 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_:. ".contains(&b));
    super::images::properties(image)
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

/// `PUT /servers/{id}`: the name, access addresses, description (2.19) and host name (2.90).
async fn update(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
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

async fn delete(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    super::server_meta::unlocked(&ctx, &s)?;
    c.write(|t| {
        let mut cur = t.edit(&t.m.servers, "server", &id)?;
        cur.task_state = Some("deleting".into());
        cur.updated_at = Utc::now();
        let cur = t.put(cur)?;
        crate::actions::record(t, &rid.0, &cur, "delete", &ctx.user.id, ctx.project_id().unwrap_or(&cur.project_id))
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

async fn action(
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
    if let Some(arg) = v.get("os-getConsoleOutput") {
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
        let output = c
            .agent_call(&host, hyper::Method::GET, &path, None)
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("Guest console unavailable: {e}")))?;
        return Ok(Json(json!({"output": output["output"]})).into_response());
    }
    if let Some(arg) = v.get("os-getVNCConsole") {
        let kind = arg.get("type").and_then(|t| t.as_str()).unwrap_or_default();
        let url = super::consoles::vnc_console(&c, &ctx, &s, kind)?;
        return Ok(Json(json!({"console": {"type": kind, "url": url}})).into_response());
    }
    if v.get("lock").is_some() || v.get("unlock").is_some() {
        return lock(&c, &ctx, mv, &s, &v, &rid.0).await;
    }
    for (key, add) in [("addSecurityGroup", true), ("removeSecurityGroup", false)] {
        if let Some(arg) = v.get(key) {
            return super::net_proxies::change_group(&c, &ctx, &s, arg, add).await;
        }
    }
    if let Some(arg) = v.get("addFloatingIp") {
        return super::net_proxies::add_fip(&c, &ctx, mv, &s, arg, &token.0).await;
    }
    for (key, add) in [("addFixedIp", true), ("removeFixedIp", false)] {
        if let Some(arg) = v.get(key) {
            return super::net_proxies::change_fixed_ip(&c, &ctx, mv, &s, arg, add).await;
        }
    }
    if let Some(arg) = v.get("removeFloatingIp") {
        return super::net_proxies::remove_fip(&c, &ctx, mv, &s, arg, &token.0).await;
    }
    for action in ["createImage", "createBackup"] {
        if let Some(arg) = v.get(action) {
            return create_image(&c, &ctx, mv, &s, action, arg, &token.0, &rid.0).await;
        }
    }
    super::server_meta::unlocked(&ctx, &s)?;
    if let Some(arg) = v.get("rebuild") {
        return rebuild(&c, &ctx, mv, &s, arg, &token.0, &rid.0).await;
    }
    if let Some(arg) = v.get("resize") {
        return resize(&c, &ctx, &s, arg, &rid.0).await;
    }
    if let Some(arg) = v.get("rescue") {
        return rescue(&c, &ctx, &s, arg, &token.0, &rid.0).await;
    }
    if v.get("unrescue").is_some() {
        return unrescue(&c, &ctx, &s, &rid.0).await;
    }
    for (key, revert) in [("confirmResize", false), ("revertResize", true)] {
        if v.get(key).is_some() {
            return finish_resize(&c, &ctx, &s, key, revert, &rid.0).await;
        }
    }
    use crate::servers::PowerAction;
    let action = if v.get("os-stop").is_some() {
        PowerAction::Stop
    } else if v.get("os-start").is_some() {
        PowerAction::Start
    } else if v.get("pause").is_some() {
        PowerAction::Pause
    } else if v.get("unpause").is_some() {
        PowerAction::Unpause
    } else if v.get("suspend").is_some() {
        PowerAction::Suspend
    } else if v.get("resume").is_some() {
        PowerAction::Resume
    } else if let Some(r) = v.get("reboot") {
        match r.get("type").and_then(|t| t.as_str()).map(str::to_ascii_uppercase).as_deref() {
            Some("SOFT") => PowerAction::RebootSoft,
            Some("HARD") => PowerAction::RebootHard,
            _ => return Err(bad("Invalid input for field/attribute type. Value: must be SOFT or HARD.")),
        }
    } else {
        let name = v.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default();
        return Err(bad(format!("Server action {name} is not available yet.")));
    };
    let (task, sources) = action.task_and_sources();
    let name = v.as_object().and_then(|o| o.keys().next().cloned()).unwrap_or_default();
    start_action(&c, &ctx, &id, &rid.0, (&name, action.action()), sources, |_, cur| {
        cur.task_state = Some(task.into());
        Ok(())
    })
    .await?;
    tokio::spawn(c.clone().power(id, action, rid.0));
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `rebuild`: a new root disk from an image (the same or another), keeping the server's id,
/// host, flavor and power state; optionally a new name, metadata, description (2.19).
async fn rebuild(
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

/// Nova's 409 for an action on a server in a state it does not start from, or busy with
/// another task.
pub(super) fn check_state(cur: &Server, action: &str, sources: &[&str]) -> Result<(), crate::service::Error> {
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
async fn start_action(
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
        crate::actions::record(t, request_id, &cur, names.1, &ctx.user.id, project)?;
        Ok(cur)
    })
    .await
}

/// `resize`: to another flavor, on the server's own host; the server then waits in
/// VERIFY_RESIZE for `confirmResize` or `revertResize`.
async fn resize(c: &Ctx, ctx: &AuthContext, s: &Server, arg: &Value, rid: &str) -> ApiResult<Response> {
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
    let new = FlavorCopy {
        id: flavor.id.clone(),
        name: flavor.name.clone(),
        ram: flavor.ram,
        vcpus: flavor.vcpus,
        disk: flavor.disk,
        ephemeral: flavor.ephemeral,
        swap: flavor.swap,
        extra_specs: flavor.extra_specs.clone(),
    };
    let id = s.id.clone();
    let kp = c.settings.key_pairs_quota as i64;
    start_action(c, ctx, &id, rid, ("resize", "resize"), &["active", "stopped"], |t, cur| {
        let more = [("cores", new.vcpus - cur.flavor.vcpus), ("ram", new.ram - cur.flavor.ram)];
        let more: Vec<(&str, i64)> = more.into_iter().filter(|(_, n)| *n > 0).collect();
        crate::quotas::check(t, kp, &cur.project_id, &cur.user_id, &more)?;
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
async fn finish_resize(
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
async fn rescue(c: &Ctx, ctx: &AuthContext, s: &Server, arg: &Value, token: &str, rid: &str) -> ApiResult<Response> {
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
async fn unrescue(c: &Ctx, ctx: &AuthContext, s: &Server, rid: &str) -> ApiResult<Response> {
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
async fn create_image(
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
    let limit = crate::quotas::limits(&c.model(), kp, &s.project_id, None)["metadata_items"];
    if limit >= 0 && metadata.len() as i64 > limit {
        return Err(ApiError::forbidden(format!("Maximum number of metadata items exceeds {limit}")));
    }
    const SOURCES: &[&str] = &["active", "stopped", "paused", "suspended"];
    check_state(s, action, SOURCES)?;
    // The base image's minimum RAM carries over (if the image is still there to ask).
    let base_url = format!("{}/v2/images/{}", c.settings.image_url, s.image_id);
    let base = haneul_core::client::json(hyper::Method::GET, &base_url, &[("x-auth-token", token)], None).await.ok();
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
    let url = format!("{}/v2/images", c.settings.image_url);
    let image =
        haneul_core::client::json(hyper::Method::POST, &url, &[("x-auth-token", token)], Some(Value::Object(doc)))
            .await
            .map_err(|e| match e {
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
    if let Ok(v) = format!("{}/images/{image_id}", c.settings.image_url).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `lock` (with `locked_reason` from 2.73) and `unlock`. As Nova: a lock placed from the
/// server's own project is the owner's; one placed from another project (an admin's) is
/// lifted from the server's project only with `unlock_override` (admins, by default).
async fn lock(c: &Compute, ctx: &AuthContext, mv: Mv, s: &Server, v: &Value, rid: &str) -> ApiResult<Response> {
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
        crate::actions::record(t, rid, &cur, if locking { "lock" } else { "unlock" }, &ctx.user.id, project)
    })
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
