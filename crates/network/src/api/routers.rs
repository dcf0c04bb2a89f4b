//! Routers (`/v2.0/routers`): the external gateway (with SNAT on or off and its fixed IPs),
//! interfaces added and removed by subnet or port, and static routes (`extraroute`).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::{
    bad, created_rows, enforce, is_admin, list_response, members, one_member, owns, show_response, standard, ApiResult,
    Attrs, Ctx, ListQuery,
};
use crate::ip::{Addr, Cidr};
use crate::model::{HostRoute, Model, Port, Router as L3Router, Std};
use crate::service::routers::{self, find, gateway_port, GatewayAsk, Interface, RouterUpdate};
use crate::service::{IpRequest, Networking};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/routers", rule("get_router"), list)
        .post("/routers", rule("create_router"), create)
        .get("/routers/{id}", rule("get_router"), show)
        .put("/routers/{id}", rule("update_router"), update)
        .delete("/routers/{id}", rule("delete_router"), delete)
        .put("/routers/{id}/add_router_interface", rule("add_router_interface"), add_interface)
        .put("/routers/{id}/remove_router_interface", rule("remove_router_interface"), remove_interface)
}

fn render(m: &Model, ctx: &AuthContext, r: &L3Router) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(r.id));
    v.insert("name".into(), json!(r.name));
    v.insert("admin_state_up".into(), json!(r.admin_state_up));
    v.insert("status".into(), json!("ACTIVE"));
    let gw = r.gateway.as_ref().map(|g| {
        json!({
            "network_id": g.network_id,
            "enable_snat": g.enable_snat,
            "external_fixed_ips": gateway_port(m, &r.id).map(|p| json!(p.fixed_ips)).unwrap_or(json!([])),
        })
    });
    v.insert("external_gateway_info".into(), gw.unwrap_or(Value::Null));
    v.insert("routes".into(), json!(r.routes));
    v.insert("availability_zone_hints".into(), json!(r.availability_zone_hints));
    v.insert("availability_zones".into(), json!(["nova"]));
    v.insert("flavor_id".into(), Value::Null);
    if is_admin(ctx) {
        v.insert("distributed".into(), json!(r.distributed));
        v.insert("ha".into(), json!(r.ha));
    }
    standard(&mut v, &r.project_id, &r.std);
    Value::Object(v)
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    let items = m.routers.values().filter(|r| owns(&ctx, &r.project_id)).map(|r| render(&m, &ctx, r)).collect();
    list_response(&c, items, &q, "routers", &[])
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let m = c.model();
    Ok(show_response("router", render(&m, &ctx, find(&m, &ctx, &id)?), &q))
}

fn parse_gateway(
    c: &Networking,
    ctx: &AuthContext,
    a: &Attrs,
    owner: &str,
    verb: &str,
) -> ApiResult<Option<Option<GatewayAsk>>> {
    let g = match a.get("external_gateway_info") {
        None => return Ok(None),
        Some(Value::Null) => return Ok(Some(None)),
        Some(Value::Object(g)) if g.is_empty() => return Ok(Some(None)),
        Some(Value::Object(g)) => g.clone(),
        Some(other) => {
            return Err(bad(format!("Invalid input for external_gateway_info. Reason: '{other}' is not a dictionary.")))
        }
    };
    for k in g.keys() {
        if !["network_id", "enable_snat", "external_fixed_ips", "qos_policy_id"].contains(&k.as_str()) {
            return Err(bad(format!(
                "Invalid input for external_gateway_info. Reason: Unexpected keys supplied: {k}."
            )));
        }
    }
    let g = Attrs(g);
    let target = json!({"project_id": owner, "tenant_id": owner});
    if g.has("enable_snat") {
        enforce(c, ctx, &format!("{verb}_router:external_gateway_info:enable_snat"), &target)?;
    }
    if g.has("external_fixed_ips") {
        enforce(c, ctx, &format!("{verb}_router:external_gateway_info:external_fixed_ips"), &target)?;
    }
    let network_id = g
        .str("network_id", 36)?
        .ok_or_else(|| bad("Invalid input for external_gateway_info. Reason: network_id is required."))?;
    let fixed_ips = match g.obj_list("external_fixed_ips")? {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|f| IpRequest {
                    subnet_id: f.get("subnet_id").and_then(Value::as_str).map(str::to_string),
                    ip_address: f.get("ip_address").and_then(Value::as_str).map(str::to_string),
                    ..Default::default()
                })
                .collect(),
        ),
    };
    Ok(Some(Some(GatewayAsk { network_id, enable_snat: g.bool("enable_snat")?, fixed_ips })))
}

fn parse_routes(a: &Attrs) -> ApiResult<Option<Vec<HostRoute>>> {
    let Some(list) = a.obj_list("routes")? else { return Ok(None) };
    let mut out: Vec<HostRoute> = Vec::new();
    for r in &list {
        let (Some(Value::String(d)), Some(Value::String(n))) = (r.get("destination"), r.get("nexthop")) else {
            return Err(bad("Invalid input for routes. Reason: each route needs a destination and a nexthop."));
        };
        let dest = Cidr::parse(d, false)
            .ok_or_else(|| bad(format!("Invalid input for routes. Reason: '{d}' is not a valid IP subnet.")))?;
        Addr::parse(n)
            .ok_or_else(|| bad(format!("Invalid input for routes. Reason: '{n}' is not a valid IP address.")))?;
        let route = HostRoute { destination: dest.to_string(), nexthop: n.clone() };
        if out.contains(&route) {
            return Err(bad(format!("Invalid input for routes. Reason: Duplicate route {d} via {n}.")));
        }
        out.push(route);
    }
    Ok(Some(out))
}

const CREATE_ATTRS: &[&str] = &[
    "name",
    "admin_state_up",
    "external_gateway_info",
    "tenant_id",
    "project_id",
    "description",
    "distributed",
    "ha",
    "availability_zone_hints",
    "flavor_id",
];

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let (items, bulk) = members(&body, "router", "routers")?;
    let mut asks = Vec::new();
    for a in &items {
        a.only(CREATE_ATTRS)?;
        let project_id = a.owner(&ctx)?;
        let target = json!({"project_id": project_id, "tenant_id": project_id});
        for attr in ["distributed", "ha"] {
            if a.has(attr) {
                enforce(&c, &ctx, &format!("create_router:{attr}"), &target)?;
            }
        }
        if a.get("flavor_id").is_some_and(|v| !v.is_null()) {
            return Err(bad("Router flavors are not supported."));
        }
        let gateway = parse_gateway(&c, &ctx, a, &project_id, "create")?.flatten();
        let router = L3Router {
            id: uuid::Uuid::new_v4().to_string(),
            project_id,
            name: a.str("name", 255)?.unwrap_or_default(),
            admin_state_up: a.bool("admin_state_up")?.unwrap_or(true),
            gateway: None,
            routes: Vec::new(),
            distributed: a.bool("distributed")?.unwrap_or(false),
            ha: a.bool("ha")?.unwrap_or(false),
            availability_zone_hints: {
                let hints = a.str_list("availability_zone_hints")?.unwrap_or_default();
                super::extensions::check_zone_hints(&hints)?;
                hints
            },
            std: Std::new(a.str("description", 255)?.unwrap_or_default()),
        };
        asks.push((router, gateway));
    }
    let ids = c.write(|t| routers::create(t, &ctx, asks)).await?;
    Ok(created_rows(&c, &ids, "router", "routers", bulk, |m| &m.routers, |m, r| render(m, &ctx, r)))
}

async fn update(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let a = one_member(&body, "router", "routers")?;
    a.only(&["name", "admin_state_up", "external_gateway_info", "description", "routes", "distributed", "ha"])?;
    let owner = find(&c.model(), &ctx, &id)?.project_id.clone();
    let target = json!({"project_id": owner, "tenant_id": owner});
    for attr in ["distributed", "ha"] {
        if a.has(attr) {
            enforce(&c, &ctx, &format!("update_router:{attr}"), &target)?;
        }
    }
    let gateway = parse_gateway(&c, &ctx, &a, &owner, "update")?;
    let name = a.str("name", 255)?;
    let description = a.str("description", 255)?;
    let admin_state_up = a.bool("admin_state_up")?;
    let routes = parse_routes(&a)?;
    let distributed = a.bool("distributed")?;
    let ha = a.bool("ha")?;
    let u = RouterUpdate { gateway, name, description, admin_state_up, routes, distributed, ha };
    c.write(|t| routers::update(t, &ctx, &id, u)).await?;
    let m = c.model();
    Ok(show_response("router", render(&m, &ctx, find(&m, &ctx, &id)?), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    find(&c.model(), &ctx, &id)?;
    c.write(|t| routers::delete(t, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Interfaces

fn interface_body(body: &[u8]) -> ApiResult<Interface> {
    let v: Value = haneul_core::http::parse_json(body).map_err(|e| bad(e.message))?;
    let Value::Object(m) = v else { return Err(bad("Request body must be a JSON object.")) };
    let get = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let (subnet, port) = (get("subnet_id"), get("port_id"));
    match (subnet, port) {
        (Some(_), Some(_)) => Err(bad("Bad router request: Cannot specify both subnet-id and port-id")),
        (None, None) => Err(bad("Bad router request: Either subnet_id or port_id must be specified")),
        (Some(s), None) => Ok(Interface::Subnet(s)),
        (None, Some(p)) => Ok(Interface::Port(p)),
    }
}

fn interface_info(router: &L3Router, p: &Port) -> Value {
    let subnets: Vec<&str> = p.fixed_ips.iter().map(|f| f.subnet_id.as_str()).collect();
    json!({
        "id": router.id,
        "tenant_id": router.project_id,
        "project_id": router.project_id,
        "port_id": p.id,
        "network_id": p.network_id,
        "subnet_id": subnets.first(),
        "subnet_ids": subnets,
    })
}

async fn add_interface(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let which = interface_body(&body)?;
    find(&c.model(), &ctx, &id)?;
    let (router, port) = c.write(|t| routers::add_interface(t, &ctx, &id, which)).await?;
    Ok(Json(interface_info(&router, &port)).into_response())
}

async fn remove_interface(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let which = interface_body(&body)?;
    find(&c.model(), &ctx, &id)?;
    let (router, port) = c.write(|t| routers::remove_interface(t, &id, which)).await?;
    Ok(Json(interface_info(&router, &port)).into_response())
}
