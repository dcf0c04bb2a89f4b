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
use crate::model::{ExternalGateway, HostRoute, Model, Port, Router as L3Router, Std};
use crate::service::{allocate_ips, check_quota, invalid, new_mac, not_found, Error, IpRequest, Networking, Txn};

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

pub const INTERFACE: &str = "network:router_interface";
pub const GATEWAY: &str = "network:router_gateway";

fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a L3Router, Error> {
    m.routers
        .get(id)
        .map(|r| &**r)
        .filter(|r| owns(ctx, &r.project_id))
        .ok_or_else(|| not_found("RouterNotFound", "Router", id))
}

fn gateway_port<'a>(m: &'a Model, router_id: &str) -> Option<&'a Port> {
    m.ports.values().find(|p| p.device_id == router_id && p.device_owner == GATEWAY).map(|p| &**p)
}

/// The router's interface ports.
pub fn interfaces<'a>(m: &'a Model, router_id: &'a str) -> impl Iterator<Item = &'a Port> + 'a {
    m.ports.values().filter(move |p| p.device_id == router_id && p.device_owner == INTERFACE).map(|p| &**p)
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

/// `external_gateway_info` as asked: None = not given, Some(None) = no gateway.
struct GatewayAsk {
    network_id: String,
    enable_snat: Option<bool>,
    fixed_ips: Option<Vec<IpRequest>>,
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

/// Sets, changes or clears the router's gateway in `t`, with its port on the external
/// network.
fn set_gateway(
    t: &mut Txn,
    ctx: &AuthContext,
    router_id: &str,
    ask: Option<GatewayAsk>,
) -> Result<Option<ExternalGateway>, Error> {
    let old = gateway_port(&t.m, router_id).cloned();
    let Some(ask) = ask else {
        if let Some(p) = old {
            let fips_use_it = t.m.floatingips.values().any(|f| f.router_id.as_deref() == Some(router_id));
            if fips_use_it {
                return Err(Error::Conflict(
                    "RouterExternalGatewayInUseByFloatingIp",
                    format!("Gateway cannot be updated for router {router_id}, since a gateway to external network {} is required by one or more floating IPs.", p.network_id),
                ));
            }
            t.delete::<Port>(&p.id);
        }
        return Ok(None);
    };
    let network =
        t.m.networks.get(&ask.network_id).ok_or_else(|| not_found("NetworkNotFound", "Network", &ask.network_id))?;
    if !crate::service::networks::external_for(&t.m, ctx, network) {
        return Err(Error::BadRequest(
            "BadRequest",
            format!("Bad router request: Network {} is not an external network.", ask.network_id),
        ));
    }
    let enable_snat = ask.enable_snat.unwrap_or(true);
    if let Some(p) = &old {
        if p.network_id == ask.network_id && ask.fixed_ips.is_none() {
            return Ok(Some(ExternalGateway { network_id: ask.network_id, enable_snat }));
        }
        t.delete::<Port>(&p.id);
    }
    for r in ask.fixed_ips.iter().flatten() {
        if let Some(sid) = &r.subnet_id {
            let s = t.m.subnets.get(sid).ok_or_else(|| not_found("SubnetNotFound", "Subnet", sid))?;
            if s.network_id != ask.network_id {
                return Err(invalid(format!("Subnet {sid} is not on external network {}", ask.network_id)));
            }
            if let (Some(ip), Some(gw)) = (&r.ip_address, &s.gateway_ip) {
                if ip == gw {
                    return Err(crate::service::bad(format!(
                        "Bad router request: IP address {ip} is the gateway of subnet {sid}."
                    )));
                }
            }
        }
    }
    let mac = new_mac(&t.m, &ask.network_id);
    let fixed_ips = allocate_ips(&t.m, &ask.network_id, &mac, ask.fixed_ips.as_deref(), None)?;
    let _ = ctx;
    t.put(network_port(&ask.network_id, mac, fixed_ips, router_id, GATEWAY, ""))?;
    Ok(Some(ExternalGateway { network_id: ask.network_id, enable_snat }))
}

/// A port the network service owns (router gateway or interface, floating IP).
pub fn network_port(
    network_id: &str,
    mac: String,
    fixed_ips: Vec<crate::model::FixedIp>,
    device_id: &str,
    owner: &str,
    project_id: &str,
) -> Port {
    Port {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: project_id.into(),
        network_id: network_id.into(),
        name: String::new(),
        admin_state_up: true,
        mac_address: mac,
        fixed_ips,
        device_id: device_id.into(),
        device_owner: owner.into(),
        status: if owner == "network:floatingip" { "N/A".into() } else { "ACTIVE".into() },
        security_groups: Vec::new(),
        port_security_enabled: false,
        allowed_address_pairs: Vec::new(),
        extra_dhcp_opts: Vec::new(),
        host_id: String::new(),
        vnic_type: "normal".into(),
        profile: json!({}),
        std: Std::new(String::new()),
    }
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

/// Static routes must lead through a subnet the router is on.
fn check_routes(m: &Model, router_id: &str, routes: &[HostRoute]) -> Result<(), Error> {
    for r in routes {
        let hop = Addr::parse(&r.nexthop).ok_or_else(|| crate::service::bad("bad nexthop"))?;
        let connected = interfaces(m, router_id)
            .chain(gateway_port(m, router_id))
            .flat_map(|p| p.fixed_ips.iter())
            .filter_map(|f| m.subnets.get(&f.subnet_id))
            .any(|s| Cidr::parse(&s.cidr, true).is_some_and(|c| c.contains(hop)));
        if !connected {
            return Err(Error::BadRequest(
                "InvalidRoutes",
                format!("Invalid format for routes: {r:?}, the nexthop {} is not connected with router", r.nexthop),
            ));
        }
    }
    Ok(())
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
    let ids = c
        .write(|t| {
            let mut ids = Vec::new();
            for (mut router, gateway) in asks {
                check_quota(&t.m, &router.project_id, "router", 1)?;
                router.gateway = set_gateway(t, &ctx, &router.id, gateway)?;
                ids.push(router.id.clone());
                t.put(router)?;
            }
            Ok(ids)
        })
        .await?;
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
    c.write(|t| {
        let mut r = t.edit(&t.m.routers, "router", &id)?;
        if let Some(g) = gateway {
            r.gateway = set_gateway(t, &ctx, &id, g)?;
        }
        if let Some(v) = name {
            r.name = v;
        }
        if let Some(v) = description {
            r.std.description = v;
        }
        if let Some(v) = admin_state_up {
            r.admin_state_up = v;
        }
        if let Some(v) = distributed {
            r.distributed = v;
        }
        if let Some(v) = ha {
            r.ha = v;
        }
        if let Some(v) = routes {
            check_routes(&t.m, &id, &v)?;
            r.routes = v;
        }
        r.std.touch();
        t.put(r)?;
        Ok(())
    })
    .await?;
    let m = c.model();
    Ok(show_response("router", render(&m, &ctx, find(&m, &ctx, &id)?), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    find(&c.model(), &ctx, &id)?;
    c.write(|t| {
        let ports: Vec<String> = interfaces(&t.m, &id).map(|p| p.id.clone()).collect();
        if !ports.is_empty() {
            return Err(Error::Conflict("RouterInUse", format!("Router {id} still has ports: {}", ports.join(", "))));
        }
        if let Some(p) = gateway_port(&t.m, &id).map(|p| p.id.clone()) {
            t.delete::<Port>(&p);
        }
        t.delete::<L3Router>(&id).ok_or_else(|| not_found("RouterNotFound", "Router", &id))?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Interfaces

fn interface_body(body: &[u8]) -> ApiResult<(Option<String>, Option<String>)> {
    let v: Value = haneul_core::http::parse_json(body).map_err(|e| bad(e.message))?;
    let Value::Object(m) = v else { return Err(bad("Request body must be a JSON object.")) };
    let get = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let (subnet, port) = (get("subnet_id"), get("port_id"));
    match (&subnet, &port) {
        (Some(_), Some(_)) => Err(bad("Bad router request: Cannot specify both subnet-id and port-id")),
        (None, None) => Err(bad("Bad router request: Either subnet_id or port_id must be specified")),
        _ => Ok((subnet, port)),
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

/// A new interface's subnets must not overlap the router's other subnets.
fn check_overlap(m: &Model, router_id: &str, subnet_ids: &[String]) -> Result<(), Error> {
    for sid in subnet_ids {
        let Some(new) = m.subnets.get(sid) else { continue };
        let Some(nc) = Cidr::parse(&new.cidr, true) else { continue };
        for p in interfaces(m, router_id) {
            for f in &p.fixed_ips {
                if &f.subnet_id == sid {
                    return Err(Error::BadRequest(
                        "BadRequest",
                        format!("Bad router request: Router already has a port on subnet {sid}."),
                    ));
                }
                if let Some(o) = m.subnets.get(&f.subnet_id) {
                    if Cidr::parse(&o.cidr, true).is_some_and(|oc| oc.overlaps(nc)) {
                        return Err(Error::BadRequest(
                            "BadRequest",
                            format!(
                                "Bad router request: Cidr {} of subnet {sid} overlaps with cidr {} of subnet {}.",
                                new.cidr, o.cidr, o.id
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

async fn add_interface(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let (subnet_id, port_id) = interface_body(&body)?;
    find(&c.model(), &ctx, &id)?;
    let port = c
        .write(|t| {
            let router = t.m.routers.get(&id).cloned().ok_or_else(|| not_found("RouterNotFound", "Router", &id))?;
            match (&subnet_id, &port_id) {
                (Some(sid), _) => {
                    let s = crate::service::subnets::find(&t.m, &ctx, sid)?.clone();
                    if !owns(&ctx, &s.project_id) && !t.m.networks.get(&s.network_id).is_some_and(|n| owns(&ctx, &n.project_id) || n.shared) {
                        return Err(not_found("SubnetNotFound", "Subnet", sid));
                    }
                    let Some(gw) = s.gateway_ip.clone() else {
                        return Err(Error::BadRequest("BadRequest", "Bad router request: Subnet for router interface must have a gateway IP.".into()));
                    };
                    check_overlap(&t.m, &id, std::slice::from_ref(sid))?;
                    let mac = new_mac(&t.m, &s.network_id);
                    let req = [IpRequest { subnet_id: Some(sid.clone()), ip_address: Some(gw), gateway: true }];
                    let fixed = allocate_ips(&t.m, &s.network_id, &mac, Some(&req), None)?;
                    let p = network_port(&s.network_id, mac, fixed, &id, INTERFACE, &router.project_id);
                    t.put(p.clone())?;
                    Ok((router, p))
                }
                (None, Some(pid)) => {
                    let mut p = crate::service::ports::find(&t.m, &ctx, pid)?.clone();
                    if !p.device_id.is_empty() || !p.device_owner.is_empty() {
                        return Err(Error::Conflict("PortInUse", format!("Unable to complete operation on port {pid} for network {}. Port already has an attached device {}.", p.network_id, p.device_id)));
                    }
                    if p.fixed_ips.is_empty() {
                        return Err(Error::BadRequest("BadRequest", "Bad router request: Router port must have at least one fixed IP.".into()));
                    }
                    let subnets: Vec<String> = p.fixed_ips.iter().map(|f| f.subnet_id.clone()).collect();
                    check_overlap(&t.m, &id, &subnets)?;
                    p.device_id = id.clone();
                    p.device_owner = INTERFACE.into();
                    p.status = "ACTIVE".into();
                    p.security_groups.clear();
                    p.std.touch();
                    t.put(p.clone())?;
                    Ok((router, p))
                }
                (None, None) => unreachable!("checked by interface_body"),
            }
        })
        .await?;
    Ok(Json(interface_info(&port.0, &port.1)).into_response())
}

async fn remove_interface(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let (subnet_id, port_id) = interface_body(&body)?;
    find(&c.model(), &ctx, &id)?;
    let (router, port) = c
        .write(|t| {
            let router = t.m.routers.get(&id).cloned().ok_or_else(|| not_found("RouterNotFound", "Router", &id))?;
            let port = match (&subnet_id, &port_id) {
                (Some(sid), _) => interfaces(&t.m, &id).find(|p| p.fixed_ips.iter().any(|f| &f.subnet_id == sid)).cloned().ok_or_else(|| {
                    Error::NotFound("RouterInterfaceNotFoundForSubnet", format!("Router {id} has no interface on subnet {sid}"))
                })?,
                (None, Some(pid)) => interfaces(&t.m, &id).find(|p| &p.id == pid).cloned().ok_or_else(|| {
                    Error::NotFound("RouterInterfaceNotFound", format!("Router {id} does not have an interface with id {pid}"))
                })?,
                (None, None) => unreachable!("checked by interface_body"),
            };
            let subnets: Vec<&str> = port.fixed_ips.iter().map(|f| f.subnet_id.as_str()).collect();
            let in_use = t.m.floatingips.values().any(|f| {
                f.router_id.as_deref() == Some(id.as_str())
                    && f.port_id.as_ref().and_then(|p| t.m.ports.get(p)).is_some_and(|p| p.fixed_ips.iter().any(|x| subnets.contains(&x.subnet_id.as_str())))
            });
            if in_use {
                return Err(Error::Conflict(
                    "RouterInterfaceInUseByFloatingIP",
                    format!("Router interface for subnet {} on router {id} cannot be deleted, as it is required by one or more floating IPs.", subnets.first().unwrap_or(&"")),
                ));
            }
            t.delete::<Port>(&port.id);
            Ok((router, port))
        })
        .await?;
    Ok(Json(interface_info(&router, &port)).into_response())
}
