//! `/servers/{id}/os-interface`: the server's ports as Nova lists them, and ports plugged
//! into (or taken out of) a server that is running, paused or stopped. An attach answers once
//! the port is bound to the server's host and, for a running guest, its NIC is hot-plugged
//! (PCI, ACPI); a detach is accepted (202) and done in the background, as Nova does.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::error::ApiError;
use haneul_core::http::RequestId;
use haneul_core::routes::{target, Routes};
use haneul_core::service::chain;
use hyper::Method;
use serde_json::{json, Value};

use super::servers::{check_state, find};
use super::{enforce, ApiResult, Ctx, Mv};
use crate::model::Server;
use crate::service::network::{NetError, NetRequest, NetworksArg, NetworksError};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/servers/{id}/os-interface", target("os_compute_api:os-attach-interfaces:list"), list)
        .post("/servers/{id}/os-interface", target("os_compute_api:os-attach-interfaces:create"), attach)
        .get("/servers/{id}/os-interface/{port_id}", target("os_compute_api:os-attach-interfaces:show"), show)
        .delete("/servers/{id}/os-interface/{port_id}", target("os_compute_api:os-attach-interfaces:delete"), detach)
}

/// The states a server takes or gives up a port in (Nova's).
const SOURCES: &[&str] = &["active", "paused", "stopped"];

fn policy(c: &Ctx, ctx: &AuthContext, s: &Server, what: &str) -> ApiResult<()> {
    enforce(c, ctx, &format!("os_compute_api:os-attach-interfaces:{what}"), &json!({"project_id": s.project_id}))
}

/// A port as an interface attachment (with its tag from 2.70).
fn view(port: &Value, s: &Server, mv: Mv) -> Value {
    let fixed_ips: Vec<Value> = port["fixed_ips"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| json!({"subnet_id": f["subnet_id"], "ip_address": f["ip_address"]}))
        .collect();
    let mut v = json!({
        "net_id": port["network_id"],
        "port_id": port["id"],
        "mac_addr": port["mac_address"],
        "port_state": port["status"],
        "fixed_ips": fixed_ips,
    });
    if mv.at_least(70) {
        let tag = s.ports.iter().find(|p| port["id"] == json!(p.port_id)).and_then(|p| p.tag.clone());
        v["tag"] = json!(tag);
    }
    v
}

/// The network service could not be asked: a 503 with why.
fn unavailable(e: impl std::error::Error + 'static) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, chain(&e))
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(id): Path<String>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    policy(&c, &ctx, &s, "list")?;
    let v = c.network_call(Method::GET, &format!("/ports?device_id={id}"), None).await.map_err(unavailable)?;
    let list: Vec<Value> = v["ports"].as_array().into_iter().flatten().map(|p| view(p, &s, mv)).collect();
    Ok(Json(json!({"interfaceAttachments": list})).into_response())
}

async fn show(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path((id, port_id)): Path<(String, String)>) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    policy(&c, &ctx, &s, "show")?;
    let port = port_of(&c, &s, &port_id).await?;
    Ok(Json(json!({"interfaceAttachment": view(&port, &s, mv)})).into_response())
}

/// The server's port `port_id` as the network service has it (Nova's 404s otherwise).
async fn port_of(c: &Ctx, s: &Server, port_id: &str) -> ApiResult<Value> {
    let port = match c.network_call(Method::GET, &format!("/ports/{port_id}"), None).await {
        Ok(v) => v["port"].clone(),
        Err(e) if e.status() == Some(404) => {
            return Err(ApiError::not_found(format!("Port id {port_id} could not be found.")))
        }
        Err(e) => return Err(unavailable(e)),
    };
    if port["device_id"] != json!(s.id) {
        return Err(ApiError::not_found(format!("Instance {} does not have a port with id {port_id}", s.id)));
    }
    Ok(port)
}

/// The attach request: a port, or a network (with an address on it), or neither (the one
/// network the project may use); a device tag from 2.49.
fn parse(body: &Value, mv: Mv) -> ApiResult<NetRequest> {
    let bad = |m: String| ApiError::bad_request(m);
    let Some(o) = body.as_object() else {
        return Err(bad(format!("Invalid input for field/attribute body. Value: {body}.")));
    };
    if let Some(k) = o.keys().find(|k| k.as_str() != "interfaceAttachment") {
        return Err(bad(format!("Additional properties are not allowed ('{k}' was unexpected)")));
    }
    let Some(a) = o.get("interfaceAttachment") else {
        return Err(bad(
            "Invalid input for field/attribute body. Value: 'interfaceAttachment' is a required property".into()
        ));
    };
    let Some(a) = a.as_object() else {
        return Err(bad(format!("Invalid input for field/attribute interfaceAttachment. Value: {a}.")));
    };
    let allowed: &[&str] =
        if mv.at_least(49) { &["net_id", "port_id", "fixed_ips", "tag"] } else { &["net_id", "port_id", "fixed_ips"] };
    if let Some(k) = a.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "Invalid input for field/attribute interfaceAttachment. Additional properties are not allowed ('{k}' was unexpected)"
        )));
    }
    let uuid = |k: &str| -> ApiResult<Option<String>> {
        match a.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) if uuid::Uuid::parse_str(v).is_ok() => Ok(Some(v.clone())),
            Some(v) => Err(bad(format!("Invalid input for field/attribute {k}. Value: {v}. {v} is not a 'uuid'"))),
        }
    };
    let network_id = uuid("net_id")?;
    let port_id = uuid("port_id")?;
    let fixed_ip = match a.get("fixed_ips") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) if list.len() == 1 => match list[0].get("ip_address") {
            Some(Value::String(ip))
                if ip.parse::<std::net::IpAddr>().is_ok() && list[0].as_object().is_some_and(|o| o.len() == 1) =>
            {
                Some(ip.clone())
            }
            _ => return Err(bad(format!("Invalid input for field/attribute fixed_ips. Value: {}.", list[0]))),
        },
        Some(v) => return Err(bad(format!("Invalid input for field/attribute fixed_ips. Value: {v}."))),
    };
    let tag = match a.get("tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) if !t.is_empty() && t.len() <= 60 && !t.contains(['/', ',']) => Some(t.clone()),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute tag. Value: {v}."))),
    };
    if network_id.is_some() && port_id.is_some() {
        return Err(bad("Must not input both network_id and port_id".into()));
    }
    if fixed_ip.is_some() && network_id.is_none() {
        return Err(bad("Must input network_id when request IP address".into()));
    }
    Ok(NetRequest { network_id, port_id, fixed_ip, tag })
}

async fn attach(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Extension(rid): Extension<RequestId>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    policy(&c, &ctx, &s, "create")?;
    let body: Value = if body.is_empty() {
        json!({"interfaceAttachment": {}})
    } else {
        serde_json::from_slice(&body).map_err(|_| ApiError::bad_request("Malformed request body"))?
    };
    let asked = parse(&body, mv)?;
    super::server_meta::unlocked(&ctx, &s)?;
    check_state(&s, "attach_interface", SOURCES)?;
    let asked = match (&asked.port_id, &asked.network_id) {
        (None, None) => {
            let auto = c.check_networks(&s.project_id, NetworksArg::Auto { required: true }, false).await;
            match auto {
                Ok(mut one) if one.len() == 1 => NetRequest { tag: asked.tag, ..one.remove(0) },
                Err(NetworksError::Ambiguous) => return Err(ApiError::bad_request(
                    "More than one possible network found. Specify network ID(s) to select which one(s) to connect to.",
                )),
                Err(e @ NetworksError::Network(NetError::Unavailable(_))) => return Err(unavailable(e)),
                Ok(_) | Err(_) => {
                    return Err(ApiError::bad_request(format!(
                        "No specific network was requested and none are available for project '{}'.",
                        s.project_id
                    )))
                }
            }
        }
        _ => {
            // The create's checks, with the answers an attach gives (404 for what is not there).
            match c.check_networks(&s.project_id, NetworksArg::List(vec![asked.clone()]), super::is_admin(&ctx)).await {
                Ok(_) => asked,
                Err(e @ (NetworksError::Ambiguous | NetworksError::PortInUse(_))) => {
                    return Err(ApiError::conflict(e.to_string()))
                }
                Err(e @ NetworksError::Network(NetError::Unavailable(_))) => return Err(unavailable(e)),
                Err(e) => {
                    let m = chain(&e);
                    return Err(if m.ends_with("could not be found.") {
                        ApiError::not_found(m)
                    } else {
                        ApiError::bad_request(m)
                    });
                }
            }
        }
    };
    let project = ctx.project_id().unwrap_or(&s.project_id).to_string();
    let port = c.attach_interface(&id, asked, &rid.0, &ctx.user.id, &project).await?;
    let s = find(&c, &ctx, &id)?;
    Ok(Json(json!({"interfaceAttachment": view(&port, &s, mv)})).into_response())
}

async fn detach(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Extension(rid): Extension<RequestId>,
    Path((id, port_id)): Path<(String, String)>,
) -> ApiResult {
    let s = find(&c, &ctx, &id)?;
    policy(&c, &ctx, &s, "delete")?;
    super::server_meta::unlocked(&ctx, &s)?;
    check_state(&s, "detach_interface", SOURCES)?;
    if !s.ports.iter().any(|p| p.port_id == port_id) {
        return Err(ApiError::not_found(format!("Port {port_id} is not attached")));
    }
    let project = ctx.project_id().unwrap_or(&s.project_id).to_string();
    c.start_detach(&id, &port_id, &rid.0, &ctx.user.id, &project).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
