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
    bad, created_rows, enforce, is_admin, list_response, members, one_member, owns, require_owner, show_response,
    standard, ApiResult, Attrs, Ctx, ListQuery,
};
use crate::model::{Model, Network, Std};
use crate::service::{check_quota, is_network_owned, not_found, Error, Networking};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/networks", rule("get_network"), list)
        .post("/networks", rule("create_network"), create)
        .get("/networks/{id}", rule("get_network"), show)
        .put("/networks/{id}", rule("update_network"), update)
        .delete("/networks/{id}", rule("delete_network"), delete)
}

/// Overhead of VXLAN over IPv4 (outer Ethernet, IP, UDP and VXLAN headers).
const VXLAN_OVERHEAD: u32 = 50;

/// Whether the caller sees the network: its own, shared, external, shared with or made
/// external for its project by an RBAC policy, or as admin.
pub fn visible(m: &Model, ctx: &AuthContext, n: &Network) -> bool {
    owns(ctx, &n.project_id)
        || n.shared
        || n.external
        || super::rbac::grants(m, &n.id, ctx.project_id(), "access_as_shared")
        || super::rbac::grants(m, &n.id, ctx.project_id(), "access_as_external")
}

/// Whether the caller may put ports on the network: its own, or shared with it.
pub fn usable(m: &Model, ctx: &AuthContext, n: &Network) -> bool {
    owns(ctx, &n.project_id) || n.shared || super::rbac::grants(m, &n.id, ctx.project_id(), "access_as_shared")
}

/// Whether the network is external for the caller (floating IPs, router gateways).
pub fn external_for(m: &Model, ctx: &AuthContext, n: &Network) -> bool {
    n.external || super::rbac::grants(m, &n.id, ctx.project_id(), "access_as_external")
}

/// The network if the caller may see it; Neutron's 404 otherwise.
pub fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a Network, Error> {
    m.networks
        .get(id)
        .map(|n| &**n)
        .filter(|n| visible(m, ctx, n))
        .ok_or_else(|| not_found("NetworkNotFound", "Network", id))
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

/// What a create asks for, checked against the policy and the attribute rules.
struct NewNetwork {
    project_id: String,
    name: String,
    admin_state_up: bool,
    shared: bool,
    external: bool,
    mtu: Option<u32>,
    port_security_enabled: bool,
    network_type: Option<String>,
    physical_network: Option<String>,
    segmentation_id: Option<u32>,
    availability_zone_hints: Vec<String>,
    dns_domain: String,
    description: String,
}

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

/// Places a new network: its type (VXLAN for tenant networks, flat or local when asked), its
/// VXLAN id (the lowest free one unless asked), its MTU.
fn build(c: &Networking, m: &Model, n: NewNetwork) -> Result<Network, Error> {
    let network_type = n.network_type.unwrap_or_else(|| "vxlan".into());
    let (physical_network, segmentation_id) = match network_type.as_str() {
        "vxlan" => {
            if n.physical_network.is_some() {
                return Err(crate::service::invalid("provider:physical_network specified for vxlan network"));
            }
            let taken =
                |id: u32| m.networks.values().any(|x| x.network_type == "vxlan" && x.segmentation_id == Some(id));
            let id = match n.segmentation_id {
                Some(id) if taken(id) => {
                    return Err(Error::Conflict(
                        "TunnelIdInUse",
                        format!("Unable to create the network. The tunnel ID {id} is in use."),
                    ))
                }
                Some(id) => id,
                None => (1..=16_777_215u32).find(|id| !taken(*id)).ok_or_else(|| {
                    Error::Conflict(
                        "NoNetworkAvailable",
                        "Unable to create the network. No tenant network is available for allocation.".into(),
                    )
                })?,
            };
            (None, Some(id))
        }
        "flat" => {
            let Some(phys) = n.physical_network else {
                return Err(crate::service::invalid("physical_network required for flat provider network"));
            };
            if n.segmentation_id.is_some() {
                return Err(crate::service::invalid("segmentation_id specified for flat network"));
            }
            if m.networks.values().any(|x| x.network_type == "flat" && x.physical_network.as_deref() == Some(&phys)) {
                return Err(Error::Conflict(
                    "FlatNetworkInUse",
                    format!("Unable to create the flat network. Physical network {phys} is in use."),
                ));
            }
            (Some(phys), None)
        }
        "local" => (None, None),
        other => return Err(crate::service::invalid(format!("network_type value '{other}' not supported"))),
    };
    let max_mtu = match network_type.as_str() {
        "vxlan" => c.settings.global_physnet_mtu - VXLAN_OVERHEAD,
        _ => c.settings.global_physnet_mtu,
    };
    let mtu = match n.mtu {
        Some(m) if m > max_mtu => {
            return Err(crate::service::invalid(format!("Requested MTU is too big, maximum is {max_mtu}")));
        }
        Some(m) => m,
        None => max_mtu,
    };
    Ok(Network {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: n.project_id,
        name: n.name,
        admin_state_up: n.admin_state_up,
        shared: n.shared,
        external: n.external,
        mtu,
        network_type,
        physical_network,
        segmentation_id,
        port_security_enabled: n.port_security_enabled,
        availability_zone_hints: n.availability_zone_hints,
        dns_domain: n.dns_domain,
        std: Std::new(n.description),
    })
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let (items, bulk) = members(&body, "network", "networks")?;
    let asks = items.iter().map(|a| parse_new(&c, &ctx, a)).collect::<ApiResult<Vec<_>>>()?;
    let ids = c
        .write(|t| {
            let mut ids = Vec::new();
            for ask in asks {
                check_quota(&t.m, &ask.project_id, "network", 1)?;
                let n = build(&c, &t.m, ask)?;
                ids.push(n.id.clone());
                if n.shared {
                    super::rbac::grant_all(t, &n.id, &n.project_id, "access_as_shared")?;
                }
                if n.external {
                    super::rbac::grant_all(t, &n.id, &n.project_id, "access_as_external")?;
                }
                t.put(n)?;
            }
            Ok(ids)
        })
        .await?;
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
    let name = a.str("name", 255)?;
    let description = a.str("description", 255)?;
    let admin_state_up = a.bool("admin_state_up")?;
    let shared = a.bool("shared")?;
    let external = a.bool("router:external")?;
    let port_security = a.bool("port_security_enabled")?;
    let dns_domain = a.str("dns_domain", 255)?;
    let mtu = a.int("mtu")?.flatten();
    let global = c.settings.global_physnet_mtu;
    c.write(|t| {
        let mut n = t.edit(&t.m.networks, "network", &id)?;
        if let Some(v) = name {
            n.name = v;
        }
        if let Some(v) = description {
            n.std.description = v;
        }
        if let Some(v) = admin_state_up {
            n.admin_state_up = v;
        }
        if let Some(v) = shared {
            if !v && n.shared && t.m.ports_of(&id).any(|p| p.project_id != n.project_id && !is_network_owned(p)) {
                return Err(Error::Conflict(
                    "InvalidSharedSetting",
                    format!("Unable to reconfigure sharing settings for network {id}. Multiple tenants are using it."),
                ));
            }
            n.shared = v;
            if v {
                super::rbac::grant_all(t, &id, &n.project_id, "access_as_shared")?;
            } else {
                super::rbac::revoke_all(t, &id, "access_as_shared");
            }
        }
        if let Some(v) = external {
            n.external = v;
            if v {
                super::rbac::grant_all(t, &id, &n.project_id, "access_as_external")?;
            } else {
                super::rbac::revoke_all(t, &id, "access_as_external");
            }
        }
        if let Some(v) = port_security {
            n.port_security_enabled = v;
        }
        if let Some(v) = dns_domain {
            n.dns_domain = v;
        }
        if let Some(v) = mtu {
            let max = if n.network_type == "vxlan" { global - VXLAN_OVERHEAD } else { global };
            if v < 68 || v as u32 > max {
                return Err(crate::service::invalid(format!("Requested MTU is too big, maximum is {max}")));
            }
            n.mtu = v as u32;
        }
        n.std.touch();
        t.put(n)?;
        Ok(())
    })
    .await?;
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
    c.write(|t| {
        let m = t.m.clone();
        if !m.networks.contains_key(&id) {
            return Err(not_found("NetworkNotFound", "Network", &id));
        }
        if m.ports_of(&id).any(|p| p.device_owner != "network:dhcp" && p.device_owner != "network:floatingip") {
            return Err(Error::Conflict(
                "NetworkInUse",
                format!("Unable to complete operation on network {id}. There are one or more ports still in use on the network."),
            ));
        }
        for p in m.ports_of(&id) {
            t.delete::<crate::model::Port>(&p.id);
        }
        // Unassociated floating IPs of an external network go with it.
        t.delete_where::<crate::model::FloatingIp>(|f| f.floating_network_id == id);
        for s in m.subnets_of(&id) {
            t.delete::<crate::model::Subnet>(&s.id);
        }
        t.delete_where::<crate::model::RbacPolicy>(|p| p.object_type == "network" && p.object_id == id);
        t.delete::<Network>(&id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
