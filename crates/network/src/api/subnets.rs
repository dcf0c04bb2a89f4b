//! Subnets (`/v2.0/subnets`): IPv4 and IPv6 prefixes on a network with their gateway,
//! allocation pools, DNS servers, host routes and IPv6 address modes.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::{
    bad, created_rows, list_page, list_response, members, one_member, owns, show_response, standard, ApiResult, Attrs,
    Ctx, ListQuery,
};
use crate::ip::Cidr;
use crate::model::{HostRoute, Pool, Subnet};
use crate::service::subnets::{self, addr, find, visible, Gateway, SubnetAsk, SubnetUpdate};
use crate::service::Error;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/subnets", rule("get_subnet"), list)
        .post("/subnets", rule("create_subnet"), create)
        .get("/subnets/{id}", rule("get_subnet"), show)
        .put("/subnets/{id}", rule("update_subnet"), update)
        .delete("/subnets/{id}", rule("delete_subnet"), delete)
}

const MAX_DNS: usize = 5;
const MAX_ROUTES: usize = 20;
const V6_MODES: &[&str] = &["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];

pub fn render(s: &Subnet) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(s.id));
    v.insert("name".into(), json!(s.name));
    v.insert("network_id".into(), json!(s.network_id));
    v.insert("ip_version".into(), json!(s.ip_version));
    v.insert("cidr".into(), json!(s.cidr));
    v.insert("gateway_ip".into(), json!(s.gateway_ip));
    v.insert("allocation_pools".into(), json!(s.allocation_pools));
    v.insert("dns_nameservers".into(), json!(s.dns_nameservers));
    v.insert("host_routes".into(), json!(s.host_routes));
    v.insert("enable_dhcp".into(), json!(s.enable_dhcp));
    v.insert("ipv6_ra_mode".into(), json!(s.ipv6_ra_mode));
    v.insert("ipv6_address_mode".into(), json!(s.ipv6_address_mode));
    v.insert("subnetpool_id".into(), json!(s.subnetpool_id));
    v.insert("service_types".into(), json!(s.service_types));
    standard(&mut v, &s.project_id, &s.std);
    Value::Object(v)
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    if q.pages_by_id(&m.subnets) {
        let rows: Box<dyn Iterator<Item = &Subnet>> = match q.single("network_id") {
            Some(network) => Box::new(m.subnets.by_after("network_id", network, q.marker.as_deref())),
            None => Box::new(m.subnets.after(q.marker.as_deref()).map(|s| &**s)),
        };
        return list_page(&c, rows, &q, "subnets", &[], |s| visible(&m, &ctx, s), render);
    }
    let items = m.subnets.values().filter(|s| visible(&m, &ctx, s)).map(|s| render(s)).collect();
    list_response(&c, items, &q, "subnets", &[])
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let m = c.model();
    Ok(show_response("subnet", render(find(&m, &ctx, &id)?), &q))
}

const CREATE_ATTRS: &[&str] = &[
    "network_id",
    "cidr",
    "ip_version",
    "name",
    "gateway_ip",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "enable_dhcp",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "subnetpool_id",
    "prefixlen",
    "use_default_subnetpool",
    "tenant_id",
    "project_id",
    "description",
    "service_types",
    "segment_id",
];

fn parse_pools(a: &Attrs) -> ApiResult<Option<Vec<Pool>>> {
    let Some(list) = a.obj_list("allocation_pools")? else { return Ok(None) };
    list.iter()
        .map(|p| {
            let (Some(Value::String(start)), Some(Value::String(end))) = (p.get("start"), p.get("end")) else {
                return Err(bad("Invalid input for allocation_pools. Reason: each pool needs a start and an end."));
            };
            if p.len() != 2 {
                return Err(bad("Invalid input for allocation_pools. Reason: a pool has only 'start' and 'end'."));
            }
            addr("allocation_pools", start)?;
            addr("allocation_pools", end)?;
            Ok(Pool { start: start.clone(), end: end.clone() })
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Some)
}

fn parse_dns(a: &Attrs) -> ApiResult<Option<Vec<String>>> {
    let Some(list) = a.str_list("dns_nameservers")? else { return Ok(None) };
    if list.len() > MAX_DNS {
        return Err(Error::BadRequest(
            "DNSNameServersExhausted",
            format!("Unable to complete operation for the subnet. The number of DNS nameservers exceeds the limit {MAX_DNS}."),
        )
        .into());
    }
    for (i, d) in list.iter().enumerate() {
        addr("dns_nameservers", d)?;
        if list[..i].contains(d) {
            return Err(bad(format!("Invalid input for dns_nameservers. Reason: Duplicate nameserver '{d}'.")));
        }
    }
    Ok(Some(list))
}

fn parse_routes(a: &Attrs) -> ApiResult<Option<Vec<HostRoute>>> {
    let Some(list) = a.obj_list("host_routes")? else { return Ok(None) };
    if list.len() > MAX_ROUTES {
        return Err(Error::BadRequest(
            "HostRoutesExhausted",
            format!("Unable to complete operation for the subnet. The number of host routes exceeds the limit {MAX_ROUTES}."),
        )
        .into());
    }
    list.iter()
        .map(|r| {
            let (Some(Value::String(dest)), Some(Value::String(hop))) = (r.get("destination"), r.get("nexthop")) else {
                return Err(bad(
                    "Invalid input for host_routes. Reason: each route needs a destination and a nexthop.",
                ));
            };
            let d = Cidr::parse(dest, false).ok_or_else(|| {
                bad(format!("Invalid input for host_routes. Reason: '{dest}' is not a valid IP subnet."))
            })?;
            addr("host_routes", hop)?;
            Ok(HostRoute { destination: d.to_string(), nexthop: hop.clone() })
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Some)
}

/// A subnet as asked, its attributes checked for syntax; the service checks them against
/// the prefix ([`subnets::build`]) and the network.
fn parse(ctx: &AuthContext, a: &Attrs) -> ApiResult<SubnetAsk> {
    a.only(CREATE_ATTRS)?;
    let project_id = a.owner(ctx)?;
    let network_id = a
        .str("network_id", 36)?
        .ok_or_else(|| bad("Failed to parse request. Required attribute 'network_id' not specified"))?;
    let ip_version = match a.int("ip_version")?.flatten() {
        Some(4) => 4u8,
        Some(6) => 6u8,
        Some(v) => return Err(bad(format!("Invalid input for ip_version. Reason: '{v}' is not in [4, 6]."))),
        None => return Err(bad("Failed to parse request. Required attribute 'ip_version' not specified")),
    };
    let subnetpool_id = a.nullable_str("subnetpool_id", 36)?.flatten();
    let cidr = match a.str("cidr", 64)? {
        Some(text) => {
            let cidr = Cidr::parse(&text, false)
                .ok_or_else(|| bad(format!("Invalid input for cidr. Reason: '{text}' is not a valid IP subnet.")))?;
            if cidr.to_string() != text && Cidr::parse(&text, true).is_none() {
                return Err(bad(format!(
                    "Invalid input for cidr. Reason: '{text}' isn't a recommended CIDR, '{cidr}' is recommended"
                )));
            }
            if cidr.version() != ip_version {
                return Err(bad(format!(
                    "Invalid input for operation: cidr '{cidr}' does not match ip_version '{ip_version}'."
                )));
            }
            Some(cidr)
        }
        // The prefix comes from the pool, inside the write.
        None if subnetpool_id.is_some() || a.bool("use_default_subnetpool")?.unwrap_or(false) => None,
        None => return Err(bad("a cidr must be provided in the absence of a subnet pool")),
    };
    let prefixlen = match a.int("prefixlen")?.flatten() {
        None => None,
        Some(n) if (0..=128).contains(&n) => Some(n as u8),
        Some(n) => {
            return Err(bad(format!("Invalid input for prefixlen. Reason: '{n}' is not a valid prefix length.")))
        }
    };
    let gateway = match a.get("gateway_ip") {
        None => Gateway::Default,
        Some(Value::Null) => Gateway::None,
        Some(Value::String(g)) => Gateway::Given(subnets::addr("gateway_ip", g)?),
        Some(other) => {
            return Err(bad(format!("Invalid input for gateway_ip. Reason: '{other}' is not a valid IP address.")))
        }
    };
    let ipv6_ra_mode = a.nullable_str("ipv6_ra_mode", 32)?.flatten();
    let ipv6_address_mode = a.nullable_str("ipv6_address_mode", 32)?.flatten();
    for (key, v) in [("ipv6_ra_mode", &ipv6_ra_mode), ("ipv6_address_mode", &ipv6_address_mode)] {
        if let Some(v) = v {
            if !V6_MODES.contains(&v.as_str()) {
                return Err(bad(format!("Invalid input for {key}. Reason: '{v}' is not in {V6_MODES:?}.")));
            }
        }
    }
    Ok(SubnetAsk {
        project_id,
        network_id,
        name: a.str("name", 255)?.unwrap_or_default(),
        ip_version,
        cidr,
        subnetpool_id,
        prefixlen,
        gateway,
        allocation_pools: parse_pools(a)?,
        dns_nameservers: parse_dns(a)?.unwrap_or_default(),
        host_routes: parse_routes(a)?.unwrap_or_default(),
        enable_dhcp: a.bool("enable_dhcp")?.unwrap_or(true),
        ipv6_ra_mode,
        ipv6_address_mode,
        service_types: a.str_list("service_types")?.unwrap_or_default(),
        description: a.str("description", 255)?.unwrap_or_default(),
    })
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let (items, bulk) = members(&body, "subnet", "subnets")?;
    let asks = items.iter().map(|a| parse(&ctx, a)).collect::<ApiResult<Vec<_>>>()?;
    // A given prefix is checked before the write; a pool's inside it, once carved.
    for ask in &asks {
        if let Some(cidr) = ask.cidr {
            subnets::build(ask, cidr)?;
        }
    }
    let ids = c.write(|t| subnets::create(t, &ctx, asks)).await?;
    Ok(created_rows(&c, &ids, "subnet", "subnets", bulk, |m| &m.subnets, |_, r| render(r)))
}

async fn update(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let a = one_member(&body, "subnet", "subnets")?;
    for ro in [
        "cidr",
        "ip_version",
        "network_id",
        "tenant_id",
        "project_id",
        "ipv6_ra_mode",
        "ipv6_address_mode",
        "subnetpool_id",
    ] {
        if a.has(ro) {
            return Err(bad(format!("Cannot update read-only attribute {ro}")));
        }
    }
    a.only(&[
        "name",
        "gateway_ip",
        "allocation_pools",
        "dns_nameservers",
        "host_routes",
        "enable_dhcp",
        "description",
        "service_types",
    ])?;
    {
        let m = c.model();
        let s = find(&m, &ctx, &id)?;
        if !owns(&ctx, &s.project_id) {
            return Err(
                Error::Forbidden("PolicyNotAuthorized", "(rule:update_subnet) is disallowed by policy".into()).into()
            );
        }
    }
    let name = a.str("name", 255)?;
    let description = a.str("description", 255)?;
    let enable_dhcp = a.bool("enable_dhcp")?;
    let pools = parse_pools(&a)?;
    let dns = parse_dns(&a)?;
    let routes = parse_routes(&a)?;
    let service_types = a.str_list("service_types")?;
    let gateway_ip = match a.get("gateway_ip") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(g)) => Some(Some(subnets::addr("gateway_ip", g)?)),
        Some(other) => {
            return Err(bad(format!("Invalid input for gateway_ip. Reason: '{other}' is not a valid IP address.")))
        }
    };
    let u = SubnetUpdate {
        name,
        description,
        enable_dhcp,
        gateway_ip,
        allocation_pools: pools,
        dns_nameservers: dns,
        host_routes: routes,
        service_types,
    };
    c.write(|t| subnets::update(t, &id, u)).await?;
    let m = c.model();
    Ok(show_response("subnet", render(find(&m, &ctx, &id)?), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    {
        let m = c.model();
        let s = find(&m, &ctx, &id)?;
        if !owns(&ctx, &s.project_id) {
            return Err(
                Error::Forbidden("PolicyNotAuthorized", "(rule:delete_subnet) is disallowed by policy".into()).into()
            );
        }
    }
    c.write(|t| subnets::delete(t, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
