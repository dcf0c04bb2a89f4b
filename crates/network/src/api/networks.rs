//! Networks (`/v2.0/networks`): tenant networks (VXLAN), provider networks (flat), shared and
//! external ones, with MTU and port security.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::{
    bad, created_rows, enforce, is_admin, list_page, list_response, members, one_member, owns, require_owner,
    show_response, standard, ApiResult, Attrs, Ctx, ListQuery,
};
use crate::model::{Model, Network};
use crate::service::networks::{self, external_for, find, usable, visible, NetworkUpdate, NewNetwork};
use crate::service::Networking;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/networks", rule("get_network"), list)
        .post("/networks", rule("create_network"), create)
        .get("/networks/{id}", rule("get_network"), show)
        .put("/networks/{id}", rule("update_network"), update)
        .delete("/networks/{id}", rule("delete_network"), delete)
}

pub fn render(m: &Model, ctx: &AuthContext, n: &Network) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(n.id));
    v.insert("name".into(), json!(n.name));
    v.insert("admin_state_up".into(), json!(n.admin_state_up));
    v.insert("status".into(), json!("ACTIVE"));
    v.insert("subnets".into(), json!(m.subnets_of(&n.id).map(|s| s.id.clone()).collect::<Vec<_>>()));
    v.insert("shared".into(), json!(n.shared || (!owns(ctx, &n.project_id) && usable(m, ctx, n))));
    v.insert("router:external".into(), json!(external_for(m, ctx, n)));
    v.insert("mtu".into(), json!(n.mtu));
    v.insert("port_security_enabled".into(), json!(n.port_security_enabled));
    v.insert("availability_zone_hints".into(), json!(n.availability_zone_hints));
    v.insert("availability_zones".into(), json!(["nova"]));
    v.insert("ipv4_address_scope".into(), Value::Null);
    v.insert("ipv6_address_scope".into(), Value::Null);
    v.insert("l2_adjacency".into(), json!(true));
    v.insert("is_default".into(), json!(false));
    if is_admin(ctx) {
        v.insert("provider:network_type".into(), json!(n.network_type));
        v.insert("provider:physical_network".into(), json!(n.physical_network));
        v.insert("provider:segmentation_id".into(), json!(n.segmentation_id));
    }
    standard(&mut v, &n.project_id, &n.std);
    Value::Object(v)
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    if q.pages_by_id(&m.networks) {
        let rows = m.networks.after(q.marker.as_deref()).map(|n| &**n);
        return list_page(&c, rows, &q, "networks", &[], |n| visible(&m, &ctx, n), |n| render(&m, &ctx, n));
    }
    let items = m.networks.values().filter(|n| visible(&m, &ctx, n)).map(|n| render(&m, &ctx, n)).collect();
    list_response(&c, items, &q, "networks", &[])
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let m = c.model();
    let n = find(&m, &ctx, &id)?;
    Ok(show_response("network", render(&m, &ctx, n), &q))
}

const CREATE_ATTRS: &[&str] = &[
    "name",
    "admin_state_up",
    "shared",
    "router:external",
    "tenant_id",
    "project_id",
    "description",
    "mtu",
    "port_security_enabled",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    "availability_zone_hints",
    "dns_domain",
];

fn parse_new(c: &Networking, ctx: &AuthContext, a: &Attrs) -> ApiResult<NewNetwork> {
    a.only(CREATE_ATTRS)?;
    let project_id = a.owner(ctx)?;
    let target = json!({"project_id": project_id, "tenant_id": project_id});
    for (attr, rule) in [
        ("shared", "create_network:shared"),
        ("router:external", "create_network:router:external"),
        ("provider:network_type", "create_network:provider:network_type"),
        ("provider:physical_network", "create_network:provider:physical_network"),
        ("provider:segmentation_id", "create_network:provider:segmentation_id"),
    ] {
        let asked = match attr {
            "shared" | "router:external" => a.bool(attr)?.unwrap_or(false),
            _ => a.get(attr).is_some_and(|v| !v.is_null()),
        };
        if asked {
            enforce(c, ctx, rule, &target)?;
        }
    }
    let mtu = match a.int("mtu")? {
        Some(Some(m)) if (68..=65535).contains(&m) => Some(m as u32),
        Some(Some(m)) => return Err(bad(format!("Invalid input for mtu. Reason: '{m}' is too small or too large."))),
        _ => None,
    };
    let segmentation_id = match a.int("provider:segmentation_id")? {
        Some(Some(s)) if (1..=16_777_215).contains(&s) => Some(s as u32),
        Some(Some(s)) => {
            return Err(bad(format!("Invalid input for provider:segmentation_id. Reason: {s} is out of range.")))
        }
        _ => None,
    };
    Ok(NewNetwork {
        project_id,
        name: a.str("name", 255)?.unwrap_or_default(),
        admin_state_up: a.bool("admin_state_up")?.unwrap_or(true),
        shared: a.bool("shared")?.unwrap_or(false),
        external: a.bool("router:external")?.unwrap_or(false),
        mtu,
        port_security_enabled: a.bool("port_security_enabled")?.unwrap_or(true),
        network_type: a.str("provider:network_type", 255)?,
        physical_network: a.str("provider:physical_network", 64)?,
        segmentation_id,
        availability_zone_hints: {
            let hints = a.str_list("availability_zone_hints")?.unwrap_or_default();
            super::extensions::check_zone_hints(&hints)?;
            hints
        },
        dns_domain: a.str("dns_domain", 255)?.unwrap_or_default(),
        description: a.str("description", 255)?.unwrap_or_default(),
    })
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let (items, bulk) = members(&body, "network", "networks")?;
    let asks = items.iter().map(|a| parse_new(&c, &ctx, a)).collect::<ApiResult<Vec<_>>>()?;
    let ids = c.write(|t| networks::create(t, &c.settings, asks)).await?;
    Ok(created_rows(&c, &ids, "network", "networks", bulk, |m| &m.networks, |m, r| render(m, &ctx, r)))
}

async fn update(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let a = one_member(&body, "network", "networks")?;
    a.only(&[
        "name",
        "admin_state_up",
        "shared",
        "router:external",
        "description",
        "mtu",
        "port_security_enabled",
        "dns_domain",
        "availability_zone_hints",
    ])?;
    {
        let m = c.model();
        let n = find(&m, &ctx, &id)?;
        require_owner(&ctx, &n.project_id, "update_network")?;
        let target = json!({"project_id": n.project_id, "tenant_id": n.project_id});
        if a.has("shared") {
            enforce(&c, &ctx, "update_network:shared", &target)?;
        }
        if a.has("router:external") {
            enforce(&c, &ctx, "update_network:router:external", &target)?;
        }
        if a.has("availability_zone_hints") {
            return Err(bad("Cannot update read-only attribute availability_zone_hints"));
        }
    }
    let u = NetworkUpdate {
        name: a.str("name", 255)?,
        description: a.str("description", 255)?,
        admin_state_up: a.bool("admin_state_up")?,
        shared: a.bool("shared")?,
        external: a.bool("router:external")?,
        port_security_enabled: a.bool("port_security_enabled")?,
        dns_domain: a.str("dns_domain", 255)?,
        mtu: a.int("mtu")?.flatten(),
    };
    c.write(|t| networks::update(t, &c.settings, &id, u)).await?;
    let m = c.model();
    let n = find(&m, &ctx, &id)?;
    Ok(show_response("network", render(&m, &ctx, n), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    {
        let m = c.model();
        let n = find(&m, &ctx, &id)?;
        require_owner(&ctx, &n.project_id, "delete_network")?;
    }
    c.write(|t| networks::delete(t, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
