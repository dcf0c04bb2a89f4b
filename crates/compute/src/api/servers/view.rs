//! Servers as Nova shows them: list (filters, paging), show, addresses and the password.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::DateTime;
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::error::ApiError;
use serde_json::{json, Value};

use super::common::*;
use crate::api::{enforce, is_admin, links, ApiResult, Ctx, Mv};
use crate::model::Server;
use crate::service::Compute;

/// `GET /servers/{id}/os-server-password`: the encrypted password the guest posted to the
/// metadata service (empty when none), as Nova.
pub(super) async fn show_password(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    enforce(&c, &ctx, "os_compute_api:os-server-password:show", &json!({"project_id": s.project_id}))?;
    Ok(Json(json!({"password": s.password})).into_response())
}

/// `DELETE /servers/{id}/os-server-password`: forgets it (the guest's password stays).
pub(super) async fn clear_password(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    enforce(&c, &ctx, "os_compute_api:os-server-password:clear", &json!({"project_id": s.project_id}))?;
    c.set_state(&id, |cur| cur.password.clear()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /servers/{id}/ips`: the server's addresses by network.
pub(super) async fn ips(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    Ok(Json(json!({"addresses": crate::service::network::addresses(&s.ports, false)})).into_response())
}

/// `GET /servers/{id}/ips/{network}`: its addresses on one network (by name).
pub(super) async fn ips_of_network(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path((id, network)): Path<(String, String)>,
) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    let all = crate::service::network::addresses(&s.ports, false);
    let on = all.get(&network).cloned().ok_or_else(|| {
        ApiError::not_found(format!("Instance {id} is not attached to network {network}.")).with_kind("itemNotFound")
    })?;
    Ok(Json(json!({network: on})).into_response())
}

/// Which answer a server is rendered for. Before 2.75 Nova's update and rebuild answers
/// leave out the extended attributes (zone, states, key name, usage times, volumes);
/// list entries never carry `server_groups`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum View {
    Show,
    Detail,
    Update,
    Rebuild,
}

pub(super) fn render(c: &Compute, mv: Mv, ctx: &AuthContext, s: &Server, view: View) -> Value {
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
        "addresses": crate::service::network::addresses(&s.ports, extended),
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

/// The server's image: a bookmark, with the image's properties from 2.98.
pub(super) fn image_ref(c: &Compute, mv: Mv, s: &Server) -> Value {
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
pub(super) fn host_id(project: &str, host: &str) -> String {
    use sha1::Digest;
    let h = sha1::Sha1::digest(format!("{project}{host}").as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn summary(c: &Compute, s: &Server) -> Value {
    json!({"id": s.id, "name": s.name, "links": links(c, &format!("servers/{}", s.id))})
}

/// Whether an admin asked for every project's servers (`all_tenants`, not false).
fn all_tenants(ctx: &AuthContext, q: &HashMap<String, String>) -> bool {
    is_admin(ctx) && q.get("all_tenants").is_some_and(|v| !matches!(v.as_str(), "0" | "false" | "False"))
}

pub(super) fn listed(c: &Compute, ctx: &AuthContext, q: &HashMap<String, String>) -> Vec<Arc<Server>> {
    let all = all_tenants(ctx, q);
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

/// A page of the listing without filters (only `limit`, `marker`, `all_tenants`), newest
/// first, read from the creation-time index from the marker on: it costs the page, not the
/// project's or the cloud's servers. None when the query asks for more than that.
pub(super) fn quick_page(
    c: &Compute,
    ctx: &AuthContext,
    q: &HashMap<String, String>,
    collection: &str,
) -> Option<ApiResult<(Vec<Arc<Server>>, Option<Value>)>> {
    if q.keys().any(|k| !matches!(k.as_str(), "limit" | "marker" | "all_tenants")) {
        return None;
    }
    let all = all_tenants(ctx, q);
    let m = c.model();
    let (index, prefix) = match (all, ctx.project_id()) {
        (true, _) => (crate::model::SERVER_CREATED, String::new()),
        (false, Some(p)) => (crate::model::SERVER_PROJECT_CREATED, format!("{p}/")),
        (false, None) => return Some(Ok((Vec::new(), None))),
    };
    let limit = match page_limit(q) {
        Ok(l) => l,
        Err(e) => return Some(Err(e)),
    };
    let before = match q.get("marker") {
        None => None,
        Some(mk) => match m.servers.get(mk).filter(|s| all || ctx.project_id() == Some(s.project_id.as_str())) {
            Some(s) => Some((format!("{prefix}{}", s.created_key()), s.id.clone())),
            None => return Some(Err(bad(format!("marker [{mk}] not found")))),
        },
    };
    let page: Vec<Arc<Server>> = m
        .servers
        .by_prefix_rev(index, &prefix, before.as_ref().map(|(k, id)| (k.as_str(), id.as_str())))
        .take(limit)
        .cloned()
        .collect();
    let links = next_link(c, q, &page, limit, collection);
    Some(Ok((page, links)))
}

fn page_limit(q: &HashMap<String, String>) -> ApiResult<usize> {
    let limit = match q.get("limit") {
        None => 1000,
        Some(l) => l.parse::<usize>().map_err(|_| {
            bad(format!("Invalid input for query parameters limit. Value: {l}. '{l}' does not match '^[0-9]*$'"))
        })?,
    };
    Ok(limit.min(1000))
}

/// Nova's `servers_links` when a page is full: the same query with the last as marker.
fn next_link(
    c: &Compute,
    q: &HashMap<String, String>,
    page: &[Arc<Server>],
    limit: usize,
    collection: &str,
) -> Option<Value> {
    let full = limit > 0 && page.len() >= limit;
    full.then(|| page.last()).flatten().map(|last| {
        let mut params: Vec<(String, String)> =
            q.iter().filter(|(k, _)| *k != "marker").map(|(k, v)| (k.clone(), v.clone())).collect();
        params.sort();
        params.push(("marker".into(), last.id.clone()));
        let query: Vec<String> =
            params.iter().map(|(k, v)| format!("{k}={}", haneul_core::url::encode_form(v))).collect();
        json!([{"rel": "next", "href": format!("{}/v2.1/{collection}?{}", c.settings.public_url, query.join("&"))}])
    })
}

/// `limit` and `marker` over a listing, with Nova's `servers_links` when the page is full.
pub(super) fn paged(
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
    let limit = page_limit(q)?;
    all.truncate(limit);
    let links = next_link(c, q, &all, limit, collection);
    Ok((all, links))
}

pub(super) async fn list(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let (page, links) = match quick_page(&c, &ctx, &q, "servers") {
        Some(answer) => answer?,
        None => paged(&c, &q, listed(&c, &ctx, &q), "servers")?,
    };
    let mut body = json!({"servers": page.iter().map(|s| summary(&c, s)).collect::<Vec<_>>()});
    if let Some(l) = links {
        body["servers_links"] = l;
    }
    Ok(Json(body).into_response())
}

pub(super) async fn list_detail(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let (page, links) = match quick_page(&c, &ctx, &q, "servers/detail") {
        Some(answer) => answer?,
        None => paged(&c, &q, listed(&c, &ctx, &q), "servers/detail")?,
    };
    let mut body = json!({"servers": page.iter().map(|s| render(&c, mv, &ctx, s, View::Detail)).collect::<Vec<_>>()});
    if let Some(l) = links {
        body["servers_links"] = l;
    }
    Ok(Json(body).into_response())
}

pub(super) async fn show(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(id): Path<String>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    Ok(Json(json!({"server": render(&c, mv, &ctx, &s, View::Show)})).into_response())
}
