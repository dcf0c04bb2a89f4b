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
    bad, created_rows, list_response, members, one_member, owns, show_response, standard, ApiResult, Attrs, Ctx,
    ListQuery,
};
use crate::ip::{Addr, Cidr};
use crate::model::{HostRoute, Model, Pool, Std, Subnet};
use crate::service::{check_quota, invalid, is_network_owned, not_found, Error};

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

pub fn visible(m: &Model, ctx: &AuthContext, s: &Subnet) -> bool {
    owns(ctx, &s.project_id) || m.networks.get(&s.network_id).is_some_and(|n| crate::service::networks::visible(m, ctx, n))
}

pub fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a Subnet, Error> {
    m.subnets
        .get(id)
        .map(|s| &**s)
        .filter(|s| visible(m, ctx, s))
        .ok_or_else(|| not_found("SubnetNotFound", "Subnet", id))
}

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

fn addr(key: &str, s: &str) -> Result<Addr, Error> {
    Addr::parse(s).ok_or_else(|| {
        crate::service::bad(format!("Invalid input for {key}. Reason: '{s}' is not a valid IP address."))
    })
}

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

/// The default pools: every address but the network's own, the IPv4 broadcast and the
/// gateway.
fn default_pools(c: Cidr, gateway: Option<Addr>) -> Vec<Pool> {
    let (first, last) = if c.version() == 4 && c.len < 31 {
        (c.net.offset(1), c.last().offset(-1))
    } else if c.version() == 6 && c.len < 127 {
        (c.net.offset(1), Some(c.last()))
    } else {
        (Some(c.net), Some(c.last()))
    };
    let (Some(first), Some(last)) = (first, last) else { return Vec::new() };
    let mut out = Vec::new();
    let mut push = |a: Option<Addr>, b: Option<Addr>| {
        if let (Some(a), Some(b)) = (a, b) {
            if a <= b {
                out.push(Pool { start: a.to_string(), end: b.to_string() });
            }
        }
    };
    match gateway {
        Some(g) if g >= first && g <= last => {
            push(Some(first), g.offset(-1));
            push(g.offset(1), Some(last));
        }
        _ => push(Some(first), Some(last)),
    }
    out
}

/// Checks pools against the prefix, each other and the gateway.
fn check_pools(c: Cidr, pools: &[Pool], gateway: Option<Addr>) -> Result<(), Error> {
    let mut ranges = Vec::new();
    for p in pools {
        let (s, e) = (addr("allocation_pools", &p.start)?, addr("allocation_pools", &p.end)?);
        if s.version != c.version() || e.version != c.version() || !c.contains(s) || !c.contains(e) || s > e {
            return Err(Error::BadRequest(
                "InvalidAllocationPool",
                format!("The allocation pool {}-{} spans beyond the subnet cidr {c}.", p.start, p.end),
            ));
        }
        if c.version() == 4 && c.len < 31 && (s == c.net || e == c.last()) {
            return Err(Error::BadRequest(
                "InvalidAllocationPool",
                format!("The allocation pool {}-{} spans beyond the subnet cidr {c}.", p.start, p.end),
            ));
        }
        if let Some(g) = gateway {
            if g >= s && g <= e {
                return Err(Error::Conflict(
                    "GatewayConflictWithAllocationPools",
                    format!("Gateway ip {g} conflicts with allocation pool {}-{}", p.start, p.end),
                ));
            }
        }
        ranges.push((s, e, p));
    }
    for (i, (s1, e1, p1)) in ranges.iter().enumerate() {
        for (s2, e2, p2) in &ranges[i + 1..] {
            if s1 <= e2 && s2 <= e1 {
                return Err(Error::Conflict(
                    "OverlappingAllocationPools",
                    format!(
                        "Found overlapping allocation pools: {}-{} and {}-{} for subnet {c}.",
                        p1.start, p1.end, p2.start, p2.end
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A subnet as asked, its attributes checked; [`place`] checks it against the network.
fn parse(ctx: &AuthContext, a: &Attrs) -> ApiResult<Subnet> {
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
    let cidr_text = match a.str("cidr", 64)? {
        Some(t) => t,
        // The prefix comes from the pool, inside the write ([`from_pool`]).
        None if subnetpool_id.is_some() || a.bool("use_default_subnetpool")?.unwrap_or(false) => String::new(),
        None => return Err(bad("a cidr must be provided in the absence of a subnet pool")),
    };
    if cidr_text.is_empty() {
        return Ok(Subnet {
            id: uuid::Uuid::new_v4().to_string(),
            project_id,
            network_id,
            name: String::new(),
            ip_version,
            cidr: String::new(),
            gateway_ip: None,
            allocation_pools: Vec::new(),
            dns_nameservers: Vec::new(),
            host_routes: Vec::new(),
            enable_dhcp: true,
            ipv6_ra_mode: None,
            ipv6_address_mode: None,
            subnetpool_id,
            service_types: Vec::new(),
            dns_publish_fixed_ip: false,
            std: Std::default(),
        });
    }
    let cidr = Cidr::parse(&cidr_text, false)
        .ok_or_else(|| bad(format!("Invalid input for cidr. Reason: '{cidr_text}' is not a valid IP subnet.")))?;
    if cidr.to_string() != cidr_text && Cidr::parse(&cidr_text, true).is_none() {
        return Err(bad(format!(
            "Invalid input for cidr. Reason: '{cidr_text}' isn't a recommended CIDR, '{cidr}' is recommended"
        )));
    }
    if cidr.version() != ip_version {
        return Err(bad(format!(
            "Invalid input for operation: cidr '{cidr}' does not match ip_version '{ip_version}'."
        )));
    }
    if (ip_version == 4 && cidr.len > 32) || cidr.len == 0 {
        return Err(invalid(format!("Invalid CIDR {cidr} for IP version {ip_version}")).into());
    }
    let gateway = match a.get("gateway_ip") {
        Some(Value::Null) => None,
        Some(Value::String(g)) => {
            let ga = addr("gateway_ip", g)?;
            if ga.version != ip_version {
                return Err(bad(format!(
                    "Invalid input for gateway_ip. Reason: '{g}' does not match the subnet's IP version."
                )));
            }
            if cidr.contains(ga) && (ga == cidr.net || (ip_version == 4 && cidr.len < 31 && ga == cidr.last())) {
                return Err(invalid(format!("Gateway is not valid on subnet: {g}")).into());
            }
            Some(ga)
        }
        Some(other) => {
            return Err(bad(format!("Invalid input for gateway_ip. Reason: '{other}' is not a valid IP address.")))
        }
        None => cidr.net.offset(1).filter(|g| cidr.contains(*g)),
    };
    let ra_mode = a.nullable_str("ipv6_ra_mode", 32)?.flatten();
    let addr_mode = a.nullable_str("ipv6_address_mode", 32)?.flatten();
    for (key, v) in [("ipv6_ra_mode", &ra_mode), ("ipv6_address_mode", &addr_mode)] {
        if let Some(v) = v {
            if !V6_MODES.contains(&v.as_str()) {
                return Err(bad(format!("Invalid input for {key}. Reason: '{v}' is not in {V6_MODES:?}.")));
            }
            if ip_version == 4 {
                return Err(invalid(format!("{key} is not valid when ip_version is 4")).into());
            }
        }
    }
    if let (Some(r), Some(am)) = (&ra_mode, &addr_mode) {
        if r != am {
            return Err(invalid(format!("ipv6_ra_mode set to '{r}' with ipv6_address_mode set to '{am}' is not valid. If both attributes are set, they must be the same value")).into());
        }
    }
    let auto = |m: &Option<String>| matches!(m.as_deref(), Some("slaac" | "dhcpv6-stateless"));
    if (auto(&ra_mode) || auto(&addr_mode)) && cidr.len != 64 {
        return Err(invalid(format!("Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64")).into());
    }
    let enable_dhcp = a.bool("enable_dhcp")?.unwrap_or(true);
    if !enable_dhcp && (ra_mode.is_some() || addr_mode.is_some()) {
        return Err(invalid("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False").into());
    }
    let pools = match parse_pools(a)? {
        Some(p) => {
            check_pools(cidr, &p, gateway)?;
            p
        }
        None => default_pools(cidr, gateway),
    };
    let dns = parse_dns(a)?.unwrap_or_default();
    if dns.iter().any(|d| Addr::parse(d).is_some_and(|x| x.version != ip_version)) {
        return Err(bad(
            "Invalid input for dns_nameservers. Reason: the address does not match the subnet's IP version.",
        ));
    }
    let routes = parse_routes(a)?.unwrap_or_default();
    for r in &routes {
        if Addr::parse(&r.nexthop).is_some_and(|x| x.version != ip_version)
            || Cidr::parse(&r.destination, true).is_some_and(|d| d.version() != ip_version)
        {
            return Err(bad(
                "Invalid input for host_routes. Reason: the route does not match the subnet's IP version.",
            ));
        }
    }
    Ok(Subnet {
        id: uuid::Uuid::new_v4().to_string(),
        project_id,
        network_id,
        name: a.str("name", 255)?.unwrap_or_default(),
        ip_version,
        cidr: cidr.to_string(),
        gateway_ip: gateway.map(|g| g.to_string()),
        allocation_pools: pools,
        dns_nameservers: dns,
        host_routes: routes,
        enable_dhcp,
        ipv6_ra_mode: ra_mode,
        ipv6_address_mode: addr_mode,
        subnetpool_id,
        service_types: a.str_list("service_types")?.unwrap_or_default(),
        dns_publish_fixed_ip: false,
        std: Std::new(a.str("description", 255)?.unwrap_or_default()),
    })
}

/// Checks a new subnet against its network: the caller may add to it, and its prefix
/// overlaps none of the network's other subnets.
fn place(m: &Model, ctx: &AuthContext, s: &Subnet) -> Result<(), Error> {
    let network = crate::service::networks::find(m, ctx, &s.network_id)?;
    if !owns(ctx, &network.project_id) {
        return Err(Error::Forbidden("PolicyNotAuthorized", "(rule:create_subnet) is disallowed by policy".into()));
    }
    let cidr = Cidr::parse(&s.cidr, true).ok_or_else(|| Error::Internal(format!("subnet {} has a bad cidr", s.id)))?;
    if let Some(pool_id) = &s.subnetpool_id {
        let pool = super::subnetpools::find(m, ctx, pool_id)?;
        let inside = pool
            .prefixes
            .iter()
            .filter_map(|p| Cidr::parse(p, true))
            .any(|p| p.len <= cidr.len && p.contains(cidr.net));
        let clash = m.subnets.values().any(|o| {
            o.subnetpool_id.as_deref() == Some(pool_id.as_str())
                && Cidr::parse(&o.cidr, true).is_some_and(|o| o.overlaps(cidr))
        });
        if !inside || clash {
            return Err(Error::Conflict(
                "SubnetAllocationError",
                format!("Failed to allocate subnet: Cidr {cidr} is not free in subnet pool {pool_id}."),
            ));
        }
    }
    if let Some(other) =
        m.subnets_of(&s.network_id).find(|o| Cidr::parse(&o.cidr, true).is_some_and(|o| o.overlaps(cidr)))
    {
        return Err(invalid(format!(
            "Requested subnet with cidr: {cidr} for network: {} overlaps with another subnet {}",
            s.network_id, other.id
        )));
    }
    Ok(())
}

/// A subnet asked of a pool: its prefix carved out of the pool (the named one or the default
/// of its IP version), then every attribute checked as for a given CIDR.
fn from_pool(m: &Model, ctx: &AuthContext, a: &Attrs, asked: &Subnet) -> Result<Subnet, Error> {
    let pool = match &asked.subnetpool_id {
        Some(id) => super::subnetpools::find(m, ctx, id)?,
        None => {
            m.subnetpools.values().find(|p| p.is_default && p.ip_version == asked.ip_version).map(|p| &**p).ok_or_else(
                || crate::service::bad(format!("No default subnetpool found for IPv{}", asked.ip_version)),
            )?
        }
    };
    if pool.ip_version != asked.ip_version {
        return Err(crate::service::bad(format!(
            "Invalid input for operation: ip_version {} does not match subnet pool {}.",
            asked.ip_version, pool.id
        )));
    }
    let prefixlen = match a.int("prefixlen")?.flatten() {
        None => None,
        Some(n) if (0..=128).contains(&n) => Some(n as u8),
        Some(n) => {
            return Err(crate::service::bad(format!(
                "Invalid input for prefixlen. Reason: '{n}' is not a valid prefix length."
            )))
        }
    };
    let cidr = super::subnetpools::allocate(m, pool, prefixlen)?;
    let mut with_cidr = Attrs(a.0.clone());
    with_cidr.0.insert("cidr".into(), json!(cidr.to_string()));
    with_cidr.0.insert("subnetpool_id".into(), json!(pool.id));
    with_cidr.0.remove("prefixlen");
    with_cidr.0.remove("use_default_subnetpool");
    let mut s = parse(ctx, &with_cidr)?;
    s.id = asked.id.clone();
    Ok(s)
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let (items, bulk) = members(&body, "subnet", "subnets")?;
    let asks = items.iter().map(|a| parse(&ctx, a)).collect::<ApiResult<Vec<_>>>()?;
    let ids = c
        .write(|t| {
            let mut ids = Vec::new();
            for (s, a) in asks.into_iter().zip(&items) {
                let s = if s.cidr.is_empty() { from_pool(&t.m, &ctx, a, &s)? } else { s };
                check_quota(&t.m, &s.project_id, "subnet", 1)?;
                place(&t.m, &ctx, &s)?;
                ids.push(s.id.clone());
                t.put(s)?;
            }
            Ok(ids)
        })
        .await?;
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
    let gateway: Option<Option<String>> = match a.get("gateway_ip") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(g)) => {
            addr("gateway_ip", g)?;
            Some(Some(g.clone()))
        }
        Some(other) => {
            return Err(bad(format!("Invalid input for gateway_ip. Reason: '{other}' is not a valid IP address.")))
        }
    };
    c.write(|t| {
        let mut s = t.edit(&t.m.subnets, "subnet", &id)?;
        let cidr = Cidr::parse(&s.cidr, true).ok_or_else(|| Error::Internal(format!("subnet {id} has a bad cidr")))?;
        if let Some(v) = name {
            s.name = v;
        }
        if let Some(v) = description {
            s.std.description = v;
        }
        if let Some(v) = enable_dhcp {
            s.enable_dhcp = v;
        }
        if let Some(g) = gateway {
            if let Some(g) = &g {
                let ga = addr("gateway_ip", g)?;
                if ga.version != s.ip_version {
                    return Err(crate::service::bad(format!(
                        "Invalid input for gateway_ip. Reason: '{g}' does not match the subnet's IP version."
                    )));
                }
                if t.m.used_ips(&id).contains(g) {
                    return Err(Error::Conflict(
                        "GatewayIpInUse",
                        format!("Gateway ip {g} conflicts with an allocated address"),
                    ));
                }
            }
            s.gateway_ip = g;
        }
        if let Some(p) = pools {
            s.allocation_pools = p;
        }
        let gw = s.gateway_ip.as_deref().and_then(Addr::parse);
        check_pools(cidr, &s.allocation_pools, gw)?;
        if let Some(v) = dns {
            s.dns_nameservers = v;
        }
        if let Some(v) = routes {
            s.host_routes = v;
        }
        if let Some(v) = service_types {
            s.service_types = v;
        }
        s.std.touch();
        t.put(s)?;
        Ok(())
    })
    .await?;
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
    c.write(|t| {
        let m = t.m.clone();
        let s = m.subnets.get(&id).ok_or_else(|| not_found("SubnetNotFound", "Subnet", &id))?;
        let holders: Vec<&crate::model::Port> =
            m.ports.values().filter(|p| p.fixed_ips.iter().any(|f| f.subnet_id == id)).map(|p| &**p).collect();
        // Auto-address (SLAAC) addresses and the network's own ports let go of the subnet;
        // anyone else's address keeps it.
        if !s.is_auto_address() && holders.iter().any(|p| !is_network_owned(p) || p.device_owner == "network:router_interface") {
            return Err(Error::Conflict(
                "SubnetInUse",
                format!("Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."),
            ));
        }
        for p in holders {
            let mut p = p.clone();
            p.fixed_ips.retain(|f| f.subnet_id != id);
            p.std.touch();
            t.put(p)?;
        }
        t.delete::<Subnet>(&id);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
