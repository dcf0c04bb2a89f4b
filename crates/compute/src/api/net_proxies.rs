//! Nova's network faces: the server actions that change a server's security groups and
//! floating IPs, the list of a server's groups, and the deprecated proxies
//! `/os-security-groups` and `/os-floating-ips` (up to 2.35, 404 from 2.36 as Nova). All of
//! them call the network service with the caller's own token, so its policy decides what
//! the caller may see and change.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use haneul_core::auth::{Auth, AuthContext, RawToken};
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, target, Routes};
use haneul_core::url::encode as query_value;
use hyper::Method;
use serde_json::{json, Map, Value};

use super::servers::find;
use super::{enforce, ApiResult, Ctx, Mv};
use crate::model::Server;
use crate::service::network::NetError;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/os-security-groups", rule("os_compute_api:os-security-groups:get"), list_groups)
        .post("/os-security-groups", rule("os_compute_api:os-security-groups:create"), create_group)
        .get("/os-security-groups/{id}", rule("os_compute_api:os-security-groups:show"), show_group)
        .put("/os-security-groups/{id}", rule("os_compute_api:os-security-groups:update"), update_group)
        .delete("/os-security-groups/{id}", rule("os_compute_api:os-security-groups:delete"), delete_group)
        .post("/os-security-group-rules", rule("os_compute_api:os-security-groups:rule:create"), create_rule)
        .delete("/os-security-group-rules/{id}", rule("os_compute_api:os-security-groups:rule:delete"), delete_rule)
        .get("/servers/{id}/os-security-groups", target("os_compute_api:os-security-groups:list"), server_groups)
        .get("/os-floating-ips", rule("os_compute_api:os-floating-ips:list"), list_fips)
        .post("/os-floating-ips", rule("os_compute_api:os-floating-ips:create"), create_fip)
        .get("/os-floating-ips/{id}", rule("os_compute_api:os-floating-ips:show"), show_fip)
        .delete("/os-floating-ips/{id}", rule("os_compute_api:os-floating-ips:delete"), delete_fip)
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// The proxies stop at 2.35: from 2.36 Nova answers 404 as for an unknown resource.
fn proxy_version(mv: Mv) -> ApiResult<()> {
    if mv.at_least(36) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    Ok(())
}

/// A network service error as the proxies answer it: 404 and 400 pass through with the
/// network service's message, no answer is a 503, the rest a 400 (Nova's translation).
fn net_error(e: NetError) -> ApiError {
    match e.status() {
        None => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.message()),
        Some(404) => ApiError::not_found(e.message()),
        Some(_) => bad(e.message()),
    }
}

/// `net_error`, with the network service's 404 answered as Nova's message for `what`.
fn or_not_found(what: String) -> impl FnOnce(NetError) -> ApiError {
    move |e| if e.status() == Some(404) { ApiError::not_found(what) } else { net_error(e) }
}

fn uuid_like(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

// ---------------------------------------------------------------------------------- groups

/// A Neutron group in Nova's format: its ingress rules only, ports as Nova shows them.
fn nova_group(g: &Value, all: &[Value]) -> Value {
    let rules: Vec<Value> = g["security_group_rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["direction"] == "ingress")
        .map(|r| nova_rule(r, all))
        .collect();
    json!({
        "id": g["id"],
        "name": g["name"],
        "description": g["description"].as_str().unwrap_or_default(),
        "tenant_id": g["project_id"],
        "rules": rules,
    })
}

fn nova_rule(r: &Value, all: &[Value]) -> Value {
    let protocol = r["protocol"].as_str();
    let port = |k: &str| match (r[k].as_i64(), protocol) {
        (Some(p), _) => p,
        (None, Some("tcp" | "udp")) if k == "port_range_min" => 1,
        (None, Some("tcp" | "udp")) => 65535,
        (None, _) => -1,
    };
    let (group, ip_range) = match r["remote_group_id"].as_str() {
        Some(gid) => {
            let remote = all.iter().find(|g| g["id"] == json!(gid));
            (json!({"name": remote.map_or(json!(gid), |g| g["name"].clone()), "tenant_id": r["project_id"]}), json!({}))
        }
        None => (json!({}), json!({"cidr": r["remote_ip_prefix"].as_str().unwrap_or("0.0.0.0/0")})),
    };
    json!({
        "id": r["id"],
        "parent_group_id": r["security_group_id"],
        "ip_protocol": protocol,
        "from_port": port("port_range_min"),
        "to_port": port("port_range_max"),
        "group": group,
        "ip_range": ip_range,
    })
}

async fn groups_visible(c: &Ctx, token: &str) -> ApiResult<Vec<Value>> {
    let v = c.network_call_as(token, Method::GET, "/security-groups", None).await.map_err(net_error)?;
    Ok(v["security_groups"].as_array().cloned().unwrap_or_default())
}

fn sorted(mut groups: Vec<Value>) -> Vec<Value> {
    let key = |g: &Value| {
        (g["tenant_id"].as_str().unwrap_or_default().to_string(), g["name"].as_str().unwrap_or_default().to_string())
    };
    groups.sort_by_key(key);
    groups
}

async fn list_groups(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Extension(t): Extension<RawToken>) -> ApiResult {
    proxy_version(mv)?;
    let all = groups_visible(&c, &t.0).await?;
    let project = ctx.project_id().unwrap_or_default();
    let mine: Vec<Value> =
        all.iter().filter(|g| g["project_id"] == json!(project)).map(|g| nova_group(g, &all)).collect();
    Ok(Json(json!({"security_groups": sorted(mine)})).into_response())
}

async fn show_group(
    State(c): State<Ctx>,
    mv: Mv,
    Extension(t): Extension<RawToken>,
    Path(id): Path<String>,
) -> ApiResult {
    proxy_version(mv)?;
    if !uuid_like(&id) {
        return Err(bad("Security group id should be uuid"));
    }
    let g = c
        .network_call_as(&t.0, Method::GET, &format!("/security-groups/{id}"), None)
        .await
        .map_err(or_not_found(format!("Security group {id} not found.")))?;
    let all = groups_visible(&c, &t.0).await?;
    Ok(Json(json!({"security_group": nova_group(&g["security_group"], &all)})).into_response())
}

/// `POST /os-security-groups`: 200 (not 201) with the new group, as Nova.
async fn create_group(State(c): State<Ctx>, mv: Mv, Extension(t): Extension<RawToken>, body: Bytes) -> ApiResult {
    proxy_version(mv)?;
    let (name, description) = group_fields(&body)?;
    let made = c
        .network_call_as(
            &t.0,
            Method::POST,
            "/security-groups",
            Some(json!({"security_group": {"name": name, "description": description}})),
        )
        .await
        .map_err(|e| if e.status() == Some(409) { ApiError::forbidden(e.message()) } else { net_error(e) })?;
    let g = &made["security_group"];
    Ok(Json(json!({"security_group": nova_group(g, std::slice::from_ref(g))})).into_response())
}

/// A create's or update's `security_group`: its name and description (both required).
fn group_fields(body: &Bytes) -> ApiResult<(String, String)> {
    let o: Map<String, Value> = super::body_member(body, "security_group")?;
    let field = |k: &str| match o.get(k) {
        Some(Value::String(s)) if s.chars().count() <= 255 => Ok(s.clone()),
        Some(v) => Err(bad(format!("Invalid input for field/attribute {k}. Value: {v}."))),
        None => {
            Err(bad(format!("Invalid input for field/attribute security_group. Value: '{k}' is a required property")))
        }
    };
    Ok((field("name")?, field("description")?))
}

/// `PUT /os-security-groups/{id}`: a new name and description.
async fn update_group(
    State(c): State<Ctx>,
    mv: Mv,
    Extension(t): Extension<RawToken>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    proxy_version(mv)?;
    if !uuid_like(&id) {
        return Err(bad("Security group id should be uuid"));
    }
    let (name, description) = group_fields(&body)?;
    let body = json!({"security_group": {"name": name, "description": description}});
    let g = c
        .network_call_as(&t.0, Method::PUT, &format!("/security-groups/{id}"), Some(body))
        .await
        .map_err(or_not_found(format!("Security group {id} not found.")))?;
    let all = groups_visible(&c, &t.0).await?;
    Ok(Json(json!({"security_group": nova_group(&g["security_group"], &all)})).into_response())
}

/// A rule's port as given (a number or a numeric string).
fn port_number(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `POST /os-security-group-rules`: an ingress rule in Nova's terms (protocol, port range,
/// a CIDR or a source group) made as a network service rule; 200 with it, as Nova.
async fn create_rule(State(c): State<Ctx>, mv: Mv, Extension(t): Extension<RawToken>, body: Bytes) -> ApiResult {
    proxy_version(mv)?;
    let o: Map<String, Value> = super::body_member(&body, "security_group_rule")?;
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    let parent = match o.get("parent_group_id") {
        Some(Value::String(p)) if uuid_like(p) => p.clone(),
        Some(_) => return Err(bad("Security group id should be uuid")),
        None => return Err(bad(
            "Invalid input for field/attribute security_group_rule. Value: 'parent_group_id' is a required property",
        )),
    };
    let group_id = match o.get("group_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(g)) if uuid_like(g) => Some(g.clone()),
        Some(_) => return Err(bad("Security group id should be uuid")),
    };
    let protocol = text("ip_protocol").map(|p| p.to_lowercase());
    let (from, to) = (port_number(o.get("from_port")), port_number(o.get("to_port")));
    let range = |f: &str| {
        bad(format!(
            "Invalid port range {}:{}. {f}",
            o.get("from_port").unwrap_or(&Value::Null),
            o.get("to_port").unwrap_or(&Value::Null)
        ))
    };
    let (min, max) = match protocol.as_deref() {
        Some(p @ ("tcp" | "udp")) => {
            let (Some(f), Some(t)) = (from, to) else { return Err(range("Valid ports should be integers")) };
            if !(1..=65535).contains(&f) || !(1..=65535).contains(&t) {
                return Err(range(&format!("Valid {} ports should be between 1-65535", p.to_uppercase())));
            }
            if f > t {
                return Err(range("Former value cannot be greater than the later"));
            }
            (Some(f), Some(t))
        }
        Some("icmp") => {
            let (Some(f), Some(t)) = (from, to) else { return Err(range("Valid ports should be integers")) };
            if !(-1..=255).contains(&f) || !(-1..=255).contains(&t) {
                return Err(range("For ICMP, the type:code must be valid"));
            }
            ((f >= 0).then_some(f), (f >= 0 && t >= 0).then_some(t))
        }
        Some(p) => return Err(bad(format!("Invalid IP protocol {p}."))),
        None => (None, None),
    };
    let cidr = match (&group_id, text("cidr")) {
        (Some(_), _) => None,
        (None, None) => Some("0.0.0.0/0".to_string()),
        (None, Some(cidr)) => {
            let valid = cidr.split_once('/').is_some_and(|(a, m)| {
                a.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| m.parse::<u8>().is_ok_and(|m| m <= if ip.is_ipv4() { 32 } else { 128 }))
            });
            if !valid {
                return Err(bad(format!("Invalid cidr {cidr}.")));
            }
            Some(cidr)
        }
    };
    let not_found = |id: &str| format!("Security group {id} not found.");
    c.network_call_as(&t.0, Method::GET, &format!("/security-groups/{parent}"), None)
        .await
        .map_err(or_not_found(not_found(&parent)))?;
    if let Some(g) = &group_id {
        c.network_call_as(&t.0, Method::GET, &format!("/security-groups/{g}"), None)
            .await
            .map_err(or_not_found(not_found(g)))?;
    }
    let ethertype = if cidr.as_deref().is_some_and(|c| c.contains(':')) { "IPv6" } else { "IPv4" };
    let rule = json!({"security_group_rule": {
        "security_group_id": parent, "direction": "ingress", "ethertype": ethertype, "protocol": protocol,
        "port_range_min": min, "port_range_max": max, "remote_ip_prefix": cidr, "remote_group_id": group_id,
    }});
    let made = c.network_call_as(&t.0, Method::POST, "/security-group-rules", Some(rule)).await.map_err(|e| {
        if e.status() == Some(409) {
            bad(format!("This rule already exists in group {parent}"))
        } else {
            net_error(e)
        }
    })?;
    let all = groups_visible(&c, &t.0).await?;
    Ok(Json(json!({"security_group_rule": nova_rule(&made["security_group_rule"], &all)})).into_response())
}

/// `DELETE /os-security-group-rules/{id}`: 202.
async fn delete_rule(
    State(c): State<Ctx>,
    mv: Mv,
    Extension(t): Extension<RawToken>,
    Path(id): Path<String>,
) -> ApiResult {
    let path = format!("/security-group-rules/{id}");
    proxied_delete(&c, mv, &t.0, &id, &path, ("Security group rule", format!("Rule ({id}) not found"))).await
}

/// A proxied delete (its rule asked by the route's guard): 202, the id checked first, the
/// network service's 404 as Nova's message (`what.1`).
async fn proxied_delete(c: &Ctx, mv: Mv, token: &str, id: &str, path: &str, what: (&str, String)) -> ApiResult {
    proxy_version(mv)?;
    if !uuid_like(id) {
        return Err(bad(format!("{} id should be uuid", what.0)));
    }
    c.network_call_as(token, Method::DELETE, path, None).await.map_err(or_not_found(what.1))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `DELETE /os-security-groups/{id}`: 202; a group in use is Nova's 400.
async fn delete_group(
    State(c): State<Ctx>,
    mv: Mv,
    Extension(t): Extension<RawToken>,
    Path(id): Path<String>,
) -> ApiResult {
    let path = format!("/security-groups/{id}");
    proxied_delete(&c, mv, &t.0, &id, &path, ("Security group", format!("Security group {id} not found."))).await
}

/// `GET /servers/{id}/os-security-groups`: the groups of the server's ports (any version).
async fn server_groups(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Extension(t): Extension<RawToken>,
    Path(id): Path<String>,
) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    enforce(&c, &ctx, "os_compute_api:os-security-groups:list", &json!({"project_id": s.project_id}))?;
    let ports = server_ports(&c, &s).await?;
    let all = groups_visible(&c, &t.0).await?;
    let mut ids: Vec<&str> = Vec::new();
    for p in &ports {
        for g in p["security_groups"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if !ids.contains(&g) {
                ids.push(g);
            }
        }
    }
    let groups: Vec<Value> =
        ids.iter().filter_map(|id| all.iter().find(|g| g["id"] == json!(id))).map(|g| nova_group(g, &all)).collect();
    Ok(Json(json!({"security_groups": sorted(groups)})).into_response())
}

/// The server's ports as the network service has them now.
async fn server_ports(c: &Ctx, s: &Server) -> ApiResult<Vec<Value>> {
    let v = c.network_call(Method::GET, &format!("/ports?device_id={}", s.id), None).await.map_err(net_error)?;
    Ok(v["ports"].as_array().cloned().unwrap_or_default())
}

/// The group a server action names (by name or id) in the server's project.
async fn named_group(c: &Ctx, s: &Server, arg: &Value, action: &str) -> ApiResult<(String, String)> {
    let o = arg.as_object().ok_or_else(|| bad(format!("Invalid input for field/attribute {action}. Value: {arg}.")))?;
    if let Some(k) = o.keys().find(|k| k.as_str() != "name") {
        return Err(bad(format!(
            "Invalid input for field/attribute {action}. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let name = match o.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.trim().to_string(),
        Some(Value::String(_)) => return Err(bad("Security group name cannot be empty")),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute name. Value: {v}."))),
        None => return Err(bad("Security group not specified")),
    };
    let path = format!("/security-groups?project_id={}", query_value(&s.project_id));
    let v = c.network_call(Method::GET, &path, None).await.map_err(net_error)?;
    let found: Vec<&Value> = v["security_groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| g["id"] == json!(name) || g["name"] == json!(name))
        .collect();
    match found.as_slice() {
        [g] => Ok((g["id"].as_str().unwrap_or_default().to_string(), name)),
        [] => Err(ApiError::not_found(format!("Security group {name} is not found for project {}", s.project_id))),
        _ => Err(ApiError::conflict(format!("Multiple security groups named {name}; use the group's id."))),
    }
}

/// `addSecurityGroup` / `removeSecurityGroup`: the group added to (or taken from) every port
/// of the server, in any server state, as Nova.
pub async fn change_group(c: &Ctx, ctx: &AuthContext, s: &Server, arg: &Value, add: bool) -> ApiResult<Response> {
    let (action, rule) = if add {
        ("addSecurityGroup", "os_compute_api:os-security-groups:add")
    } else {
        ("removeSecurityGroup", "os_compute_api:os-security-groups:remove")
    };
    enforce(c, ctx, rule, &json!({"project_id": s.project_id, "user_id": s.user_id}))?;
    let (gid, name) = named_group(c, s, arg, action).await?;
    let ports = server_ports(c, s).await?;
    if ports.is_empty() {
        return Err(ApiError::not_found(format!("instance_id {} could not be found as device id on any ports", s.id)));
    }
    let mut changed = Vec::new();
    for p in &ports {
        let mut groups: Vec<String> = p["security_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        if add {
            if p["port_security_enabled"] == json!(false) || p["fixed_ips"].as_array().is_none_or(|f| f.is_empty()) {
                return Err(bad(
                    "Network requires port_security_enabled and subnet associated in order to apply security groups.",
                ));
            }
            if groups.contains(&gid) {
                continue;
            }
            groups.push(gid.clone());
        } else if groups.contains(&gid) {
            groups.retain(|g| g != &gid);
        } else {
            continue;
        }
        let pid = p["id"].as_str().unwrap_or_default();
        let body = json!({"port": {"security_groups": groups}});
        let updated = c.network_call(Method::PUT, &format!("/ports/{pid}"), Some(body)).await.map_err(|e| {
            if e.status() == Some(409) {
                ApiError::conflict(e.message())
            } else {
                net_error(e)
            }
        })?;
        changed.push(updated["port"].clone());
    }
    if !add && changed.is_empty() {
        return Err(ApiError::not_found(format!("Security group {name} not associated with the instance {}", s.id)));
    }
    // The server view's names follow its ports.
    let mut names = Vec::new();
    for p in &changed {
        names.push((p["id"].as_str().unwrap_or_default().to_string(), c.group_names(p).await));
    }
    c.set_state(&s.id, |cur| {
        for (pid, n) in &names {
            if let Some(port) = cur.ports.iter_mut().find(|p| &p.port_id == pid) {
                port.security_groups = n.clone();
            }
        }
    })
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

// ------------------------------------------------------------------------------ floating IPs

/// A Neutron floating IP in Nova's format (`pool` is the external network's name).
async fn nova_fip(c: &Ctx, token: &str, f: &Value) -> Value {
    let net = f["floating_network_id"].as_str().unwrap_or_default();
    let pool = c
        .network_call_as(token, Method::GET, &format!("/networks/{net}"), None)
        .await
        .ok()
        .and_then(|n| n["network"]["name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| net.to_string());
    let instance = match f["port_id"].as_str() {
        Some(pid) => c
            .network_call(Method::GET, &format!("/ports/{pid}"), None)
            .await
            .ok()
            .and_then(|p| p["port"]["device_id"].as_str().filter(|d| !d.is_empty()).map(str::to_owned)),
        None => None,
    };
    json!({
        "id": f["id"],
        "pool": pool,
        "instance_id": instance,
        "ip": f["floating_ip_address"],
        "fixed_ip": f["fixed_ip_address"],
    })
}

async fn list_fips(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Extension(t): Extension<RawToken>) -> ApiResult {
    proxy_version(mv)?;
    let path = format!("/floatingips?project_id={}", query_value(ctx.project_id().unwrap_or_default()));
    let v = c.network_call_as(&t.0, Method::GET, &path, None).await.map_err(net_error)?;
    let mut out = Vec::new();
    for f in v["floatingips"].as_array().into_iter().flatten() {
        out.push(nova_fip(&c, &t.0, f).await);
    }
    Ok(Json(json!({"floating_ips": out})).into_response())
}

async fn show_fip(
    State(c): State<Ctx>,
    mv: Mv,
    Extension(t): Extension<RawToken>,
    Path(id): Path<String>,
) -> ApiResult {
    proxy_version(mv)?;
    let f = c
        .network_call_as(&t.0, Method::GET, &format!("/floatingips/{id}"), None)
        .await
        .map_err(or_not_found(format!("Floating IP {id} could not be found")))?;
    Ok(Json(json!({"floating_ip": nova_fip(&c, &t.0, &f["floatingip"]).await})).into_response())
}

/// `POST /os-floating-ips {"pool": ...}`: an address from the external network named (or
/// the only one), 200 as Nova.
async fn create_fip(State(c): State<Ctx>, mv: Mv, Extension(t): Extension<RawToken>, body: Bytes) -> ApiResult {
    proxy_version(mv)?;
    let v: Value = if body.is_empty() { Value::Null } else { haneul_core::http::parse_json(&body)? };
    let pool = match v.get("pool") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(p) => return Err(bad(format!("Invalid input for field/attribute pool. Value: {p}."))),
    };
    let nets = c.network_call(Method::GET, "/networks?router:external=true", None).await.map_err(net_error)?;
    let nets: Vec<&Value> = nets["networks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| pool.as_ref().is_none_or(|p| n["id"] == json!(p) || n["name"] == json!(p)))
        .collect();
    let [net] = nets.as_slice() else {
        return Err(ApiError::not_found("Floating IP pool not found."));
    };
    let pool_name = net["name"].as_str().unwrap_or_default().to_string();
    let body = json!({"floatingip": {"floating_network_id": net["id"]}});
    let made =
        c.network_call_as(&t.0, Method::POST, "/floatingips", Some(body)).await.map_err(|e| match e.status() {
            Some(409) if e.message().contains("No more IP addresses") || e.message().contains("exhausted") => {
                ApiError::not_found(format!("No more floating IPs in pool {pool_name}."))
            }
            Some(409) => ApiError::forbidden(format!("IP allocation over quota in pool {pool_name}.")),
            _ => net_error(e),
        })?;
    Ok(Json(json!({"floating_ip": nova_fip(&c, &t.0, &made["floatingip"]).await})).into_response())
}

/// `DELETE /os-floating-ips/{id}`: released (disassociated first), 202.
async fn delete_fip(
    State(c): State<Ctx>,
    mv: Mv,
    Extension(t): Extension<RawToken>,
    Path(id): Path<String>,
) -> ApiResult {
    proxy_version(mv)?;
    c.network_call_as(&t.0, Method::DELETE, &format!("/floatingips/{id}"), None)
        .await
        .map_err(or_not_found(format!("Floating IP {id} could not be found")))?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// The floating IP with this address, as the caller sees it.
async fn fip_by_address(c: &Ctx, token: &str, address: &str) -> ApiResult<Value> {
    let path = format!("/floatingips?floating_ip_address={}", query_value(address));
    let v = c.network_call_as(token, Method::GET, &path, None).await.map_err(net_error)?;
    v["floatingips"]
        .as_array()
        .and_then(|l| l.first())
        .cloned()
        .ok_or_else(|| ApiError::not_found("floating IP not found"))
}

fn address_arg(o: &Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match o.get(key) {
        None => Ok(None),
        Some(Value::String(a)) if a.parse::<std::net::IpAddr>().is_ok() => Ok(Some(a.clone())),
        Some(v) => Err(bad(format!("Invalid input for field/attribute {key}. Value: {v}."))),
    }
}

/// `addFloatingIp` (up to 2.43): the address on the server's port that holds
/// `fixed_address` (or its first IPv4 address).
pub async fn add_fip(c: &Ctx, ctx: &AuthContext, mv: Mv, s: &Server, arg: &Value, token: &str) -> ApiResult<Response> {
    if mv.at_least(44) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    enforce(c, ctx, "os_compute_api:os-floating-ips:add", &json!({"project_id": s.project_id, "user_id": s.user_id}))?;
    let o = arg
        .as_object()
        .ok_or_else(|| bad(format!("Invalid input for field/attribute addFloatingIp. Value: {arg}.")))?;
    if let Some(k) = o.keys().find(|k| !matches!(k.as_str(), "address" | "fixed_address")) {
        return Err(bad(format!(
            "Invalid input for field/attribute addFloatingIp. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let address = address_arg(o, "address")?.ok_or_else(|| {
        bad("Invalid input for field/attribute addFloatingIp. Value: 'address' is a required property")
    })?;
    let fixed = address_arg(o, "fixed_address")?;
    if s.ports.is_empty() {
        return Err(bad("Instance network is not ready yet"));
    }
    let target = match &fixed {
        Some(f) => s
            .ports
            .iter()
            .find_map(|p| p.ips.iter().find(|ip| *ip == f).map(|ip| (p, ip.clone())))
            .ok_or_else(|| bad("Specified fixed address not assigned to instance"))?,
        None => s
            .ports
            .iter()
            .find_map(|p| p.ips.iter().find(|ip| !ip.contains(':')).map(|ip| (p, ip.clone())))
            .ok_or_else(|| bad("No fixed IPs associated to instance"))?,
    };
    let f = fip_by_address(c, token, &address).await?;
    let fid = f["id"].as_str().unwrap_or_default();
    let body = json!({"floatingip": {"port_id": target.0.port_id, "fixed_ip_address": target.1}});
    c.network_call_as(token, Method::PUT, &format!("/floatingips/{fid}"), Some(body)).await.map_err(|e| {
        if e.status() == Some(404) {
            ApiError::not_found("floating IP not found")
        } else {
            bad(format!("Error. Unable to associate floating IP: {}", e.message()))
        }
    })?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `removeFloatingIp` (up to 2.43): 409 unless the address is on this server.
pub async fn remove_fip(
    c: &Ctx,
    ctx: &AuthContext,
    mv: Mv,
    s: &Server,
    arg: &Value,
    token: &str,
) -> ApiResult<Response> {
    if mv.at_least(44) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    enforce(
        c,
        ctx,
        "os_compute_api:os-floating-ips:remove",
        &json!({"project_id": s.project_id, "user_id": s.user_id}),
    )?;
    let o = arg
        .as_object()
        .ok_or_else(|| bad(format!("Invalid input for field/attribute removeFloatingIp. Value: {arg}.")))?;
    let address = address_arg(o, "address")?.ok_or_else(|| {
        bad("Invalid input for field/attribute removeFloatingIp. Value: 'address' is a required property")
    })?;
    let f = fip_by_address(c, token, &address).await?;
    let on_server = f["port_id"].as_str().is_some_and(|pid| s.ports.iter().any(|p| p.port_id == pid));
    if !on_server {
        return Err(ApiError::conflict(format!("Floating IP {address} is not associated with instance {}.", s.id)));
    }
    let fid = f["id"].as_str().unwrap_or_default();
    let body = json!({"floatingip": {"port_id": null}});
    c.network_call_as(token, Method::PUT, &format!("/floatingips/{fid}"), Some(body)).await.map_err(net_error)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

// ------------------------------------------------------------------------------- fixed IPs

/// `addFixedIp` / `removeFixedIp` (Nova's multinic actions, up to 2.43): one more address
/// for the server's port on a network (from the first of its subnets with one free), or one
/// address taken off the port that has it.
pub async fn change_fixed_ip(
    c: &Ctx,
    ctx: &AuthContext,
    mv: Mv,
    s: &Server,
    arg: &Value,
    add: bool,
) -> ApiResult<Response> {
    if mv.at_least(44) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    let (action, key, rule) = if add {
        ("addFixedIp", "networkId", "os_compute_api:os-multinic:add")
    } else {
        ("removeFixedIp", "address", "os_compute_api:os-multinic:remove")
    };
    enforce(c, ctx, rule, &json!({"project_id": s.project_id, "user_id": s.user_id}))?;
    let o = arg.as_object().ok_or_else(|| bad(format!("Invalid input for field/attribute {action}. Value: {arg}.")))?;
    if let Some(k) = o.keys().find(|k| k.as_str() != key) {
        return Err(bad(format!(
            "Invalid input for field/attribute {action}. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let value = match o.get(key) {
        Some(Value::String(v)) if !v.is_empty() => v.clone(),
        Some(Value::Number(n)) if add => n.to_string(),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute {key}. Value: {v}."))),
        None => {
            return Err(bad(format!(
                "Invalid input for field/attribute {action}. Value: '{key}' is a required property"
            )))
        }
    };
    let port = if add {
        s.ports
            .iter()
            .find(|p| p.network_id == value)
            .ok_or_else(|| bad(format!("Network could not be found for instance {}.", s.id)))?
    } else {
        s.ports
            .iter()
            .find(|p| p.ips.contains(&value))
            .ok_or_else(|| bad(format!("Instance {} does not have fixed IP '{value}'.", s.id)))?
    };
    let current = c.network_call(Method::GET, &format!("/ports/{}", port.port_id), None).await.map_err(net_error)?;
    let mut fixed: Vec<Value> = current["port"]["fixed_ips"].as_array().cloned().unwrap_or_default();
    let updated = if add {
        let network = c.network_call(Method::GET, &format!("/networks/{value}"), None).await.map_err(net_error)?;
        let subnets: Vec<String> = network["network"]["subnets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let mut done = None;
        for subnet in subnets {
            let mut with = fixed.clone();
            with.push(json!({"subnet_id": subnet}));
            let body = json!({"port": {"fixed_ips": with}});
            if let Ok(v) = c.network_call(Method::PUT, &format!("/ports/{}", port.port_id), Some(body)).await {
                done = Some(v);
                break;
            }
        }
        done.ok_or_else(|| bad(format!("No fixed IP addresses available for network: {value}")))?
    } else {
        fixed.retain(|f| f["ip_address"] != json!(value));
        let body = json!({"port": {"fixed_ips": fixed}});
        c.network_call(Method::PUT, &format!("/ports/{}", port.port_id), Some(body)).await.map_err(net_error)?
    };
    let ips: Vec<String> = updated["port"]["fixed_ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["ip_address"].as_str().map(str::to_owned))
        .collect();
    let pid = port.port_id.clone();
    c.set_state(&s.id, move |s| {
        if let Some(p) = s.ports.iter_mut().find(|p| p.port_id == pid) {
            p.ips = ips;
        }
    })
    .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
