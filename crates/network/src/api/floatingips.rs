//! Floating IPs (`/v2.0/floatingips`): an address on an external network, held by a port
//! of its own, associated with a port's fixed IP through the router that joins the two.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use haneul_core::auth::Auth;
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::{
    bad, created_rows, list_response, members, one_member, owns, show_response, standard, ApiResult, Ctx, ListQuery,
};
use crate::ip::Addr;
use crate::model::{FloatingIp, Model};
use crate::service::floating::{self, find, NewFloatingIp};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/floatingips", rule("get_floatingip"), list)
        .post("/floatingips", rule("create_floatingip"), create)
        .get("/floatingips/{id}", rule("get_floatingip"), show)
        .put("/floatingips/{id}", rule("update_floatingip"), update)
        .delete("/floatingips/{id}", rule("delete_floatingip"), delete)
}

fn render(m: &Model, f: &FloatingIp) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(f.id));
    v.insert("floating_ip_address".into(), json!(f.floating_ip_address));
    v.insert("floating_network_id".into(), json!(f.floating_network_id));
    v.insert("router_id".into(), json!(f.router_id));
    v.insert("port_id".into(), json!(f.port_id));
    v.insert("fixed_ip_address".into(), json!(f.fixed_ip_address));
    v.insert("status".into(), json!(if f.port_id.is_some() { "ACTIVE" } else { "DOWN" }));
    let details = f.port_id.as_ref().and_then(|p| m.ports.get(p)).map(|p| {
        json!({
            "name": p.name,
            "network_id": p.network_id,
            "mac_address": p.mac_address,
            "admin_state_up": p.admin_state_up,
            "status": p.status,
            "device_id": p.device_id,
            "device_owner": p.device_owner,
        })
    });
    v.insert("port_details".into(), details.unwrap_or(Value::Null));
    v.insert(
        "port_forwardings".into(),
        json!(f
            .port_forwardings
            .iter()
            .map(|p| json!({
                "protocol": p.protocol, "internal_ip_address": p.internal_ip_address,
                "internal_port": p.internal_port, "external_port": p.external_port,
            }))
            .collect::<Vec<_>>()),
    );
    standard(&mut v, &f.project_id, &f.std);
    Value::Object(v)
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    let items = m.floatingips.values().filter(|f| owns(&ctx, &f.project_id)).map(|f| render(&m, f)).collect();
    list_response(&c, items, &q, "floatingips", &[])
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let m = c.model();
    Ok(show_response("floatingip", render(&m, find(&m, &ctx, &id)?), &q))
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let (items, bulk) = members(&body, "floatingip", "floatingips")?;
    let mut asks = Vec::new();
    for a in &items {
        a.only(&[
            "floating_network_id",
            "port_id",
            "fixed_ip_address",
            "floating_ip_address",
            "subnet_id",
            "description",
            "tenant_id",
            "project_id",
            "dns_name",
            "dns_domain",
        ])?;
        let project_id = a.owner(&ctx)?;
        let network_id = a
            .str("floating_network_id", 36)?
            .ok_or_else(|| bad("Failed to parse request. Required attribute 'floating_network_id' not specified"))?;
        let port_id = a.nullable_str("port_id", 36)?.flatten();
        let fixed = a.nullable_str("fixed_ip_address", 64)?.flatten();
        let address = a.nullable_str("floating_ip_address", 64)?.flatten();
        for ip in [&fixed, &address].into_iter().flatten() {
            if Addr::parse(ip).is_none() {
                return Err(bad(format!("Invalid input for operation: '{ip}' is not a valid IP address.")));
            }
        }
        let subnet = a.nullable_str("subnet_id", 36)?.flatten();
        asks.push(NewFloatingIp {
            project_id,
            network_id,
            port_id,
            fixed_ip_address: fixed,
            floating_ip_address: address,
            subnet_id: subnet,
            description: a.str("description", 255)?.unwrap_or_default(),
        });
    }
    let ids = c.write(|t| floating::create(t, &ctx, asks)).await?;
    let m = c.model();
    let ports: Vec<String> =
        ids.iter().filter_map(|id| m.floatingips.get(id)).filter_map(|f| f.port_id.clone()).collect();
    c.ports_changed(&ports);
    Ok(created_rows(&c, &ids, "floatingip", "floatingips", bulk, |m| &m.floatingips, |m, r| render(m, r)))
}

async fn update(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let a = one_member(&body, "floatingip", "floatingips")?;
    a.only(&["port_id", "fixed_ip_address", "description"])?;
    find(&c.model(), &ctx, &id)?;
    let port = if a.has("port_id") { Some(a.nullable_str("port_id", 36)?.flatten()) } else { None };
    let fixed = a.nullable_str("fixed_ip_address", 64)?.flatten();
    if let Some(ip) = &fixed {
        if Addr::parse(ip).is_none() {
            return Err(bad(format!("Invalid input for fixed_ip_address. Reason: '{ip}' is not a valid IP address.")));
        }
    }
    let description = a.str("description", 255)?;
    let before = c.model().floatingips.get(&id).and_then(|f| f.port_id.clone());
    c.write(|t| floating::update(t, &ctx, &id, port, fixed, description)).await?;
    let m = c.model();
    let after = m.floatingips.get(&id).and_then(|f| f.port_id.clone());
    if before != after {
        c.ports_changed(&before.into_iter().chain(after).collect::<Vec<_>>());
    }
    Ok(show_response("floatingip", render(&m, find(&m, &ctx, &id)?), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    find(&c.model(), &ctx, &id)?;
    let port = c.write(|t| floating::delete(t, &id)).await?;
    c.ports_changed(&port.into_iter().collect::<Vec<_>>());
    Ok(StatusCode::NO_CONTENT.into_response())
}
