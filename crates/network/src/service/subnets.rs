//! Subnets' rules: who sees one, its prefix, gateway and pools checked against each other,
//! a prefix carved from a subnet pool, no overlap on a network, and the addresses a delete
//! takes back.

use haneul_core::auth::AuthContext;

use super::access::owns;
use super::{bad, check_quota, invalid, is_network_owned, not_found, subnetpools, Error, Result, Txn};
use crate::ip::{Addr, Cidr};
use crate::model::{HostRoute, Model, Pool, Port, Std, Subnet};

pub fn visible(m: &Model, ctx: &AuthContext, s: &Subnet) -> bool {
    owns(ctx, &s.project_id)
        || m.networks.get(&s.network_id).is_some_and(|n| crate::service::networks::visible(m, ctx, n))
}

pub fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a Subnet> {
    m.subnets
        .get(id)
        .map(|s| &**s)
        .filter(|s| visible(m, ctx, s))
        .ok_or_else(|| not_found("SubnetNotFound", "Subnet", id))
}

pub fn addr(key: &str, s: &str) -> Result<Addr> {
    Addr::parse(s).ok_or_else(|| bad(format!("Invalid input for {key}. Reason: '{s}' is not a valid IP address.")))
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
fn check_pools(c: Cidr, pools: &[Pool], gateway: Option<Addr>) -> Result<()> {
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

/// A subnet's gateway as asked.
#[derive(Clone, Copy, Debug)]
pub enum Gateway {
    /// Not given: the prefix's first address.
    Default,
    /// `null`: no gateway.
    None,
    Given(Addr),
}

/// A subnet asked for, its attributes checked for syntax.
pub struct SubnetAsk {
    pub project_id: String,
    pub network_id: String,
    pub name: String,
    pub ip_version: u8,
    /// None: carved from `subnetpool_id` (or the default pool of the IP version).
    pub cidr: Option<Cidr>,
    pub subnetpool_id: Option<String>,
    pub prefixlen: Option<u8>,
    pub gateway: Gateway,
    /// None: every address of the prefix but the network's own, the broadcast and the gateway.
    pub allocation_pools: Option<Vec<Pool>>,
    pub dns_nameservers: Vec<String>,
    pub host_routes: Vec<HostRoute>,
    pub enable_dhcp: bool,
    pub ipv6_ra_mode: Option<String>,
    pub ipv6_address_mode: Option<String>,
    pub service_types: Vec<String>,
    pub description: String,
}

/// The subnet `ask` makes on prefix `cidr`: its gateway, IPv6 modes, pools, DNS servers and
/// routes checked against the prefix and its IP version.
pub fn build(ask: &SubnetAsk, cidr: Cidr) -> Result<Subnet> {
    let ip_version = ask.ip_version;
    if (ip_version == 4 && cidr.len > 32) || cidr.len == 0 {
        return Err(invalid(format!("Invalid CIDR {cidr} for IP version {ip_version}")));
    }
    let gateway = match ask.gateway {
        Gateway::None => None,
        Gateway::Given(ga) => {
            if ga.version != ip_version {
                return Err(bad(format!(
                    "Invalid input for gateway_ip. Reason: '{ga}' does not match the subnet's IP version."
                )));
            }
            if cidr.contains(ga) && (ga == cidr.net || (ip_version == 4 && cidr.len < 31 && ga == cidr.last())) {
                return Err(invalid(format!("Gateway is not valid on subnet: {ga}")));
            }
            Some(ga)
        }
        Gateway::Default => cidr.net.offset(1).filter(|g| cidr.contains(*g)),
    };
    let (ra_mode, addr_mode) = (&ask.ipv6_ra_mode, &ask.ipv6_address_mode);
    for (key, v) in [("ipv6_ra_mode", ra_mode), ("ipv6_address_mode", addr_mode)] {
        if v.is_some() && ip_version == 4 {
            return Err(invalid(format!("{key} is not valid when ip_version is 4")));
        }
    }
    if let (Some(r), Some(am)) = (ra_mode, addr_mode) {
        if r != am {
            return Err(invalid(format!("ipv6_ra_mode set to '{r}' with ipv6_address_mode set to '{am}' is not valid. If both attributes are set, they must be the same value")));
        }
    }
    let auto = |m: &Option<String>| matches!(m.as_deref(), Some("slaac" | "dhcpv6-stateless"));
    if (auto(ra_mode) || auto(addr_mode)) && cidr.len != 64 {
        return Err(invalid(format!("Invalid CIDR {cidr} for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64")));
    }
    if !ask.enable_dhcp && (ra_mode.is_some() || addr_mode.is_some()) {
        return Err(invalid("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False"));
    }
    let pools = match &ask.allocation_pools {
        Some(p) => {
            check_pools(cidr, p, gateway)?;
            p.clone()
        }
        None => default_pools(cidr, gateway),
    };
    if ask.dns_nameservers.iter().any(|d| Addr::parse(d).is_some_and(|x| x.version != ip_version)) {
        return Err(bad(
            "Invalid input for dns_nameservers. Reason: the address does not match the subnet's IP version.",
        ));
    }
    for r in &ask.host_routes {
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
        project_id: ask.project_id.clone(),
        network_id: ask.network_id.clone(),
        name: ask.name.clone(),
        ip_version,
        cidr: cidr.to_string(),
        gateway_ip: gateway.map(|g| g.to_string()),
        allocation_pools: pools,
        dns_nameservers: ask.dns_nameservers.clone(),
        host_routes: ask.host_routes.clone(),
        enable_dhcp: ask.enable_dhcp,
        ipv6_ra_mode: ra_mode.clone(),
        ipv6_address_mode: addr_mode.clone(),
        subnetpool_id: ask.subnetpool_id.clone(),
        service_types: ask.service_types.clone(),
        dns_publish_fixed_ip: false,
        std: Std::new(ask.description.clone()),
    })
}

/// A prefix carved for `ask` out of its pool (the named one or the default of its IP version).
fn carve(m: &Model, ctx: &AuthContext, ask: &SubnetAsk) -> Result<(Cidr, String)> {
    let pool = match &ask.subnetpool_id {
        Some(id) => subnetpools::find(m, ctx, id)?,
        None => m
            .subnetpools
            .values()
            .find(|p| p.is_default && p.ip_version == ask.ip_version)
            .map(|p| &**p)
            .ok_or_else(|| bad(format!("No default subnetpool found for IPv{}", ask.ip_version)))?,
    };
    if pool.ip_version != ask.ip_version {
        return Err(bad(format!(
            "Invalid input for operation: ip_version {} does not match subnet pool {}.",
            ask.ip_version, pool.id
        )));
    }
    Ok((subnetpools::allocate(m, pool, ask.prefixlen)?, pool.id.clone()))
}

/// Checks a new subnet against its network: the caller may add to it, and its prefix
/// overlaps none of the network's other subnets.
fn place(m: &Model, ctx: &AuthContext, s: &Subnet) -> Result<()> {
    let network = crate::service::networks::find(m, ctx, &s.network_id)?;
    if !owns(ctx, &network.project_id) {
        return Err(Error::Forbidden("PolicyNotAuthorized", "(rule:create_subnet) is disallowed by policy".into()));
    }
    let cidr = Cidr::parse(&s.cidr, true).ok_or_else(|| Error::Internal(format!("subnet {} has a bad cidr", s.id)))?;
    if let Some(pool_id) = &s.subnetpool_id {
        let pool = subnetpools::find(m, ctx, pool_id)?;
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

/// Creates the subnets asked for, all or none: each prefix given or carved from its pool,
/// checked against the network's other subnets.
pub fn create(t: &mut Txn, ctx: &AuthContext, asks: Vec<SubnetAsk>) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for mut ask in asks {
        let cidr = match ask.cidr {
            Some(c) => c,
            None => {
                let (cidr, pool) = carve(&t.m, ctx, &ask)?;
                ask.subnetpool_id = Some(pool);
                cidr
            }
        };
        let s = build(&ask, cidr)?;
        check_quota(&t.m, &s.project_id, "subnet", 1)?;
        place(&t.m, ctx, &s)?;
        ids.push(s.id.clone());
        t.put(s)?;
    }
    Ok(ids)
}

/// What an update changes (`None`: left as it is).
pub struct SubnetUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub enable_dhcp: Option<bool>,
    /// `Some(None)`: no gateway any more.
    pub gateway_ip: Option<Option<Addr>>,
    pub allocation_pools: Option<Vec<Pool>>,
    pub dns_nameservers: Option<Vec<String>>,
    pub host_routes: Option<Vec<HostRoute>>,
    pub service_types: Option<Vec<String>>,
}

/// Applies an update: a new gateway must be of the subnet's IP version and not an address
/// in use; the pools are checked again against the prefix and the gateway.
pub fn update(t: &mut Txn, id: &str, u: SubnetUpdate) -> Result<()> {
    let mut s = t.edit(&t.m.subnets, "subnet", id)?;
    let cidr = Cidr::parse(&s.cidr, true).ok_or_else(|| Error::Internal(format!("subnet {id} has a bad cidr")))?;
    if let Some(v) = u.name {
        s.name = v;
    }
    if let Some(v) = u.description {
        s.std.description = v;
    }
    if let Some(v) = u.enable_dhcp {
        s.enable_dhcp = v;
    }
    if let Some(g) = u.gateway_ip {
        if let Some(ga) = g {
            if ga.version != s.ip_version {
                return Err(bad(format!(
                    "Invalid input for gateway_ip. Reason: '{ga}' does not match the subnet's IP version."
                )));
            }
            if t.m.used_ips(id).contains(&ga.to_string()) {
                return Err(Error::Conflict(
                    "GatewayIpInUse",
                    format!("Gateway ip {ga} conflicts with an allocated address"),
                ));
            }
        }
        s.gateway_ip = g.map(|g| g.to_string());
    }
    if let Some(p) = u.allocation_pools {
        s.allocation_pools = p;
    }
    let gw = s.gateway_ip.as_deref().and_then(Addr::parse);
    check_pools(cidr, &s.allocation_pools, gw)?;
    if let Some(v) = u.dns_nameservers {
        s.dns_nameservers = v;
    }
    if let Some(v) = u.host_routes {
        s.host_routes = v;
    }
    if let Some(v) = u.service_types {
        s.service_types = v;
    }
    s.std.touch();
    t.put(s)?;
    Ok(())
}

/// Deletes the subnet. Auto-address (SLAAC) addresses and the network's own ports let go of
/// it; anyone else's address (or a router interface) keeps it.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    let m = t.m.clone();
    let s = m.subnets.get(id).ok_or_else(|| not_found("SubnetNotFound", "Subnet", id))?;
    let holders: Vec<&Port> = m.ports_on_subnet(id).collect();
    if !s.is_auto_address()
        && holders.iter().any(|p| !is_network_owned(p) || p.device_owner == "network:router_interface")
    {
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
    t.delete::<Subnet>(id);
    Ok(())
}
