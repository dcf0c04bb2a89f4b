//! Ports (`/v2.0/ports`): addresses from IPAM, MAC addresses, security groups, port
//! security, allowed address pairs, extra DHCP options and the binding attributes.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::{
    bad, created_rows, enforce, is_admin, list_page, list_response, members, one_member, owns, show_response, standard,
    ApiResult, Attrs, Ctx, ListQuery,
};
use crate::ip::{Addr, Cidr};
use crate::model::{DhcpOpt, Port, PORT_DEVICE, PORT_NETWORK};
use crate::service::ports::{self, find, visible, NewPort, PortUpdate};
use crate::service::{Error, IpRequest, Networking};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/ports", rule("get_port"), list)
        .post("/ports", rule("create_port"), create)
        .get("/ports/{id}", rule("get_port"), show)
        .put("/ports/{id}", rule("update_port"), update)
        .delete("/ports/{id}", rule("delete_port"), delete)
}

pub fn render(ctx: &AuthContext, p: &Port) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(p.id));
    v.insert("name".into(), json!(p.name));
    v.insert("network_id".into(), json!(p.network_id));
    v.insert("admin_state_up".into(), json!(p.admin_state_up));
    v.insert("mac_address".into(), json!(p.mac_address));
    v.insert("fixed_ips".into(), json!(p.fixed_ips));
    v.insert("device_id".into(), json!(p.device_id));
    v.insert("device_owner".into(), json!(p.device_owner));
    v.insert("status".into(), json!(p.status));
    v.insert("security_groups".into(), json!(p.security_groups));
    v.insert("port_security_enabled".into(), json!(p.port_security_enabled));
    v.insert("allowed_address_pairs".into(), json!(p.allowed_address_pairs));
    v.insert("extra_dhcp_opts".into(), json!(p.extra_dhcp_opts));
    v.insert("binding:vnic_type".into(), json!(p.vnic_type));
    if is_admin(ctx) {
        let bound = !p.host_id.is_empty();
        v.insert("binding:host_id".into(), json!(p.host_id));
        v.insert("binding:profile".into(), p.profile.clone());
        v.insert("binding:vif_type".into(), json!(if bound { "bridge" } else { "unbound" }));
        v.insert(
            "binding:vif_details".into(),
            if bound { json!({"port_filter": true, "connectivity": "l2"}) } else { json!({}) },
        );
    }
    v.insert("ip_allocation".into(), json!("immediate"));
    standard(&mut v, &p.project_id, &p.std);
    Value::Object(v)
}

/// The `fixed_ips` filter: `ip_address=...`, `subnet_id=...` or `ip_address_substr=...`.
fn fixed_ip_filter(p: &Port, wanted: &[String]) -> bool {
    wanted.iter().all(|w| {
        let (k, v) = w.split_once('=').unwrap_or(("ip_address", w.as_str()));
        p.fixed_ips.iter().any(|f| match k {
            "ip_address" => f.ip_address == v,
            "subnet_id" => f.subnet_id == v,
            "ip_address_substr" => f.ip_address.contains(v),
            _ => false,
        })
    })
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    let fixed = q.filter("fixed_ips").map(<[String]>::to_vec);
    let keep = |p: &Port| visible(&m, &ctx, p) && fixed.as_ref().is_none_or(|f| fixed_ip_filter(p, f));
    if q.pages_by_id(&m.ports) {
        let marker = q.marker.as_deref();
        let rows: Box<dyn Iterator<Item = &Port>> = match (q.single("device_id"), q.single("network_id")) {
            (Some(device), _) => Box::new(m.ports.by_after(PORT_DEVICE, device, marker)),
            (None, Some(network)) => Box::new(m.ports.by_after(PORT_NETWORK, network, marker)),
            (None, None) => Box::new(m.ports.after(marker).map(|p| &**p)),
        };
        return list_page(&c, rows, &q, "ports", &["fixed_ips"], keep, |p| render(&ctx, p));
    }
    let items = m
        .ports
        .values()
        .filter(|p| visible(&m, &ctx, p))
        .filter(|p| fixed.as_ref().is_none_or(|f| fixed_ip_filter(p, f)))
        .map(|p| render(&ctx, p))
        .collect();
    list_response(&c, items, &q, "ports", &["fixed_ips"])
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let m = c.model();
    Ok(show_response("port", render(&ctx, find(&m, &ctx, &id)?), &q))
}

const CREATE_ATTRS: &[&str] = &[
    "network_id",
    "name",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "extra_dhcp_opts",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
    "tenant_id",
    "project_id",
    "description",
];

const VNIC_TYPES: &[&str] = &[
    "normal",
    "direct",
    "macvtap",
    "baremetal",
    "direct-physical",
    "virtio-forwarder",
    "smart-nic",
    "remote-managed",
    "vdpa",
];

fn valid_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts.iter().all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        && s != "00:00:00:00:00:00"
        && u8::from_str_radix(parts[0], 16).is_ok_and(|b| b & 1 == 0)
}

fn parse_fixed_ips(a: &Attrs) -> ApiResult<Option<Vec<IpRequest>>> {
    let Some(list) = a.obj_list("fixed_ips")? else { return Ok(None) };
    list.iter()
        .map(|f| {
            for k in f.keys() {
                if k != "subnet_id" && k != "ip_address" {
                    return Err(bad(format!("Invalid input for fixed_ips. Reason: Unrecognized attribute '{k}'.")));
                }
            }
            let get = |k: &str| match f.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => {
                    Err(bad(format!("Invalid input for fixed_ips. Reason: '{other}' is not a valid string.")))
                }
            };
            let r = IpRequest { subnet_id: get("subnet_id")?, ip_address: get("ip_address")?, ..Default::default() };
            if let Some(ip) = &r.ip_address {
                if Addr::parse(ip).is_none() {
                    return Err(bad(format!("Invalid input for fixed_ips. Reason: '{ip}' is not a valid IP address.")));
                }
            }
            Ok(r)
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Some)
}

fn parse_pairs(a: &Attrs) -> ApiResult<Option<Vec<(String, Option<String>)>>> {
    let Some(list) = a.obj_list("allowed_address_pairs")? else { return Ok(None) };
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for p in &list {
        for k in p.keys() {
            if k != "ip_address" && k != "mac_address" {
                return Err(bad(format!("Unrecognized attribute(s) '{k}'")));
            }
        }
        let Some(Value::String(ip)) = p.get("ip_address") else {
            return Err(Error::BadRequest(
                "AllowedAddressPairsMissingIP",
                "AllowedAddressPair must contain ip_address".into(),
            )
            .into());
        };
        if Addr::parse(ip).is_none() && Cidr::parse(ip, false).is_none() {
            return Err(bad(format!(
                "Invalid input for allowed_address_pairs. Reason: '{ip}' is not a valid IP address."
            )));
        }
        let mac = match p.get("mac_address") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) if valid_mac(m) => Some(m.to_lowercase()),
            Some(other) => {
                return Err(bad(format!(
                    "Invalid input for allowed_address_pairs. Reason: '{other}' is not a valid MAC address."
                )))
            }
        };
        if out.iter().any(|(i, m)| i == ip && *m == mac) {
            return Err(Error::BadRequest(
                "DuplicateAddressPairInRequest",
                format!(
                    "Request contains duplicate address pair: mac_address {} ip_address {ip}.",
                    mac.clone().unwrap_or_default()
                ),
            )
            .into());
        }
        out.push((ip.clone(), mac));
    }
    Ok(Some(out))
}

fn parse_dhcp_opts(a: &Attrs) -> ApiResult<Option<Vec<DhcpOpt>>> {
    let Some(list) = a.obj_list("extra_dhcp_opts")? else { return Ok(None) };
    list.iter()
        .map(|o| {
            let name = o.get("opt_name").and_then(Value::as_str).filter(|s| !s.is_empty());
            let Some(name) = name else {
                return Err(bad("Invalid input for extra_dhcp_opts. Reason: opt_name is required."));
            };
            let value = match o.get("opt_value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let ip_version = match o.get("ip_version") {
                Some(v) if v.as_i64() == Some(6) || v.as_str() == Some("6") => 6,
                _ => 4,
            };
            Ok(DhcpOpt { opt_name: name.to_string(), opt_value: value, ip_version })
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Some)
}

fn parse(c: &Networking, ctx: &AuthContext, a: &Attrs) -> ApiResult<NewPort> {
    a.only(CREATE_ATTRS)?;
    let project_id = a.owner(ctx)?;
    let network_id = a
        .str("network_id", 36)?
        .ok_or_else(|| bad("Failed to parse request. Required attribute 'network_id' not specified"))?;
    let target = json!({"project_id": project_id, "tenant_id": project_id});
    for (attr, rule) in
        [("binding:host_id", "create_port:binding:host_id"), ("binding:profile", "create_port:binding:profile")]
    {
        if a.get(attr).is_some_and(|v| !v.is_null() && v != "" && v != &json!({})) {
            enforce(c, ctx, rule, &target)?;
        }
    }
    let mac = match a.str("mac_address", 32)? {
        Some(m) if valid_mac(&m) => Some(m.to_lowercase()),
        Some(m) => {
            return Err(bad(format!("Invalid input for mac_address. Reason: '{m}' is not a valid MAC address.")))
        }
        None => None,
    };
    let vnic_type = a.str("binding:vnic_type", 64)?.unwrap_or_else(|| "normal".into());
    if !VNIC_TYPES.contains(&vnic_type.as_str()) {
        return Err(bad(format!(
            "Invalid input for binding:vnic_type. Reason: '{vnic_type}' is not in {VNIC_TYPES:?}."
        )));
    }
    let profile = match a.get("binding:profile") {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => {
            return Err(bad(format!("Invalid input for binding:profile. Reason: '{other}' is not a dictionary.")))
        }
    };
    Ok(NewPort {
        project_id,
        network_id,
        name: a.str("name", 255)?.unwrap_or_default(),
        admin_state_up: a.bool("admin_state_up")?.unwrap_or(true),
        mac,
        fixed_ips: parse_fixed_ips(a)?,
        device_id: a.str("device_id", 255)?.unwrap_or_default(),
        device_owner: a.str("device_owner", 255)?.unwrap_or_default(),
        security_groups: a.str_list("security_groups")?,
        port_security_enabled: a.bool("port_security_enabled")?,
        pairs: parse_pairs(a)?.unwrap_or_default(),
        dhcp_opts: parse_dhcp_opts(a)?.unwrap_or_default(),
        host_id: a.str("binding:host_id", 255)?.unwrap_or_default(),
        vnic_type,
        profile,
        description: a.str("description", 255)?.unwrap_or_default(),
    })
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let (items, bulk) = members(&body, "port", "ports")?;
    let asks = items.iter().map(|a| parse(&c, &ctx, a)).collect::<ApiResult<Vec<_>>>()?;
    let ids = c.write(|t| ports::create(t, &ctx, asks)).await?;
    Ok(created_rows(&c, &ids, "port", "ports", bulk, |m| &m.ports, |_, r| render(&ctx, r)))
}

async fn update(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let a = one_member(&body, "port", "ports")?;
    for ro in ["network_id", "tenant_id", "project_id"] {
        if a.has(ro) {
            return Err(bad(format!("Cannot update read-only attribute {ro}")));
        }
    }
    a.only(CREATE_ATTRS)?;
    let owner = {
        let m = c.model();
        let p = find(&m, &ctx, &id)?;
        if !owns(&ctx, &p.project_id) && !m.networks.get(&p.network_id).is_some_and(|n| owns(&ctx, &n.project_id)) {
            return Err(
                Error::Forbidden("PolicyNotAuthorized", "(rule:update_port) is disallowed by policy".into()).into()
            );
        }
        p.project_id.clone()
    };
    let target = json!({"project_id": owner, "tenant_id": owner});
    for (attr, rule) in [
        ("binding:host_id", "update_port:binding:host_id"),
        ("binding:profile", "update_port:binding:profile"),
        ("mac_address", "update_port:mac_address"),
    ] {
        if a.has(attr) {
            enforce(&c, &ctx, rule, &target)?;
        }
    }
    let name = a.str("name", 255)?;
    let description = a.str("description", 255)?;
    let admin_state_up = a.bool("admin_state_up")?;
    let fixed = parse_fixed_ips(&a)?;
    let device_id = a.str("device_id", 255)?;
    let device_owner = a.str("device_owner", 255)?;
    let groups = a.str_list("security_groups")?;
    let port_security = a.bool("port_security_enabled")?;
    let pairs = parse_pairs(&a)?;
    let dhcp = parse_dhcp_opts(&a)?;
    let host = a.str("binding:host_id", 255)?;
    let vnic = a.str("binding:vnic_type", 64)?;
    let profile = a.get("binding:profile").cloned();
    let mac = match a.str("mac_address", 32)? {
        Some(m) if valid_mac(&m) => Some(m.to_lowercase()),
        Some(m) => {
            return Err(bad(format!("Invalid input for mac_address. Reason: '{m}' is not a valid MAC address.")))
        }
        None => None,
    };
    if let Some(v) = &vnic {
        if !VNIC_TYPES.contains(&v.as_str()) {
            return Err(bad(format!("Invalid input for binding:vnic_type. Reason: '{v}' is not a valid value.")));
        }
    }
    let u = PortUpdate {
        name,
        description,
        admin_state_up,
        mac_address: mac,
        fixed_ips: fixed,
        device_id,
        device_owner,
        port_security_enabled: port_security,
        security_groups: groups,
        allowed_address_pairs: pairs,
        extra_dhcp_opts: dhcp,
        host_id: host,
        vnic_type: vnic,
        profile: profile.map(|v| if v.is_null() { json!({}) } else { v }),
    };
    c.write(|t| ports::update(t, &ctx, &id, u)).await?;
    let m = c.model();
    Ok(show_response("port", render(&ctx, find(&m, &ctx, &id)?), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    {
        let m = c.model();
        let p = find(&m, &ctx, &id)?;
        if !owns(&ctx, &p.project_id) && !m.networks.get(&p.network_id).is_some_and(|n| owns(&ctx, &n.project_id)) {
            return Err(
                Error::Forbidden("PolicyNotAuthorized", "(rule:delete_port) is disallowed by policy".into()).into()
            );
        }
    }
    c.write(|t| ports::delete(t, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
