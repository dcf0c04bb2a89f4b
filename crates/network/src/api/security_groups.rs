//! Security groups and their rules (`/v2.0/security-groups`, `/v2.0/security-group-rules`),
//! with each project's default group made on first use.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::{
    bad, created, created_rows, is_admin, list_page, list_response, members, one_member, owns, project_of,
    require_owner, show_response, standard, ApiResult, Attrs, Ctx, ListQuery,
};
use crate::ip::Cidr;
use crate::model::{Model, SecurityGroup, SecurityGroupRule, Std};
use crate::service::security_groups::{self, find, find_rule, protocol_number, visible, NewGroup, PROTOCOLS};
use crate::service::Error;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/security-groups", rule("get_security_group"), list)
        .post("/security-groups", rule("create_security_group"), create)
        .get("/security-groups/{id}", rule("get_security_group"), show)
        .put("/security-groups/{id}", rule("update_security_group"), update)
        .delete("/security-groups/{id}", rule("delete_security_group"), delete)
        .get("/security-group-rules", rule("get_security_group_rule"), list_rules)
        .post("/security-group-rules", rule("create_security_group_rule"), create_rule)
        .get("/security-group-rules/{id}", rule("get_security_group_rule"), show_rule)
        .delete("/security-group-rules/{id}", rule("delete_security_group_rule"), delete_rule)
}

pub fn render_rule(r: &SecurityGroupRule) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(r.id));
    v.insert("security_group_id".into(), json!(r.security_group_id));
    v.insert("direction".into(), json!(r.direction));
    v.insert("ethertype".into(), json!(r.ethertype));
    v.insert("protocol".into(), json!(r.protocol));
    v.insert("port_range_min".into(), json!(r.port_range_min));
    v.insert("port_range_max".into(), json!(r.port_range_max));
    v.insert("remote_ip_prefix".into(), json!(r.remote_ip_prefix));
    v.insert("remote_group_id".into(), json!(r.remote_group_id));
    v.insert("remote_address_group_id".into(), json!(r.remote_address_group_id));
    v.insert(
        "normalized_cidr".into(),
        json!(r.remote_ip_prefix.as_deref().and_then(|p| Cidr::parse(p, false)).map(|c| c.to_string())),
    );
    standard(&mut v, &r.project_id, &r.std);
    v.remove("tags");
    Value::Object(v)
}

fn render(m: &Model, g: &SecurityGroup) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(g.id));
    v.insert("name".into(), json!(g.name));
    v.insert("stateful".into(), json!(g.stateful));
    v.insert("shared".into(), json!(g.shared));
    v.insert("security_group_rules".into(), json!(m.rules_of(&g.id).map(render_rule).collect::<Vec<_>>()));
    standard(&mut v, &g.project_id, &g.std);
    Value::Object(v)
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    // As Neutron: the default group of the project filtered on (else the caller's) is made
    // if missing; only a group the caller could see anyway shows up.
    let filtered = q.iter().find(|(k, _)| k == "project_id" || k == "tenant_id").map(|(_, v)| v.clone());
    let project = filtered.filter(|p| is_admin(&ctx) || *p == project_of(&ctx)).unwrap_or_else(|| project_of(&ctx));
    c.ensure_default_group(&project).await?;
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    if q.pages_by_id(&m.security_groups) {
        let rows = m.security_groups.after(q.marker.as_deref()).map(|g| &**g);
        return list_page(&c, rows, &q, "security-groups", &[], |g| visible(&ctx, g), |g| render(&m, g));
    }
    let items = m.security_groups.values().filter(|g| visible(&ctx, g)).map(|g| render(&m, g)).collect();
    list_response(&c, items, &q, "security-groups", &[])
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let m = c.model();
    Ok(show_response("security_group", render(&m, find(&m, &ctx, &id)?), &q))
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let (items, bulk) = members(&body, "security_group", "security_groups")?;
    let mut asks = Vec::new();
    for a in &items {
        a.only(&["name", "description", "tenant_id", "project_id", "stateful"])?;
        let project_id = a.owner(&ctx)?;
        let name = a.str("name", 255)?.unwrap_or_default();
        asks.push(NewGroup {
            project_id,
            name,
            description: a.str("description", 255)?.unwrap_or_default(),
            stateful: a.bool("stateful")?.unwrap_or(true),
        });
    }
    let ids = c.write(|t| security_groups::create(t, asks)).await?;
    Ok(created_rows(&c, &ids, "security_group", "security_groups", bulk, |m| &m.security_groups, |m, r| render(m, r)))
}

async fn update(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let a = one_member(&body, "security_group", "security_groups")?;
    a.only(&["name", "description", "stateful"])?;
    let name = a.str("name", 255)?;
    let description = a.str("description", 255)?;
    let stateful = a.bool("stateful")?;
    {
        let m = c.model();
        let g = find(&m, &ctx, &id)?;
        require_owner(&ctx, &g.project_id, "update_security_group")?;
    }
    c.write(|t| security_groups::update(t, &id, name, description, stateful)).await?;
    let m = c.model();
    Ok(show_response("security_group", render(&m, find(&m, &ctx, &id)?), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    {
        let m = c.model();
        let g = find(&m, &ctx, &id)?;
        require_owner(&ctx, &g.project_id, "delete_security_group")?;
        if g.name == "default" && !is_admin(&ctx) {
            return Err(Error::Conflict(
                "SecurityGroupCannotRemoveDefault",
                "Insufficient rights for removing default security group.".into(),
            )
            .into());
        }
    }
    c.write(|t| security_groups::delete(t, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------------
// Rules

async fn list_rules(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    c.ensure_default_group(&project_of(&ctx)).await?;
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    let seen = |r: &SecurityGroupRule| {
        owns(&ctx, &r.project_id) || m.security_groups.get(&r.security_group_id).is_some_and(|g| visible(&ctx, g))
    };
    if q.pages_by_id(&m.rules) {
        let rows = m.rules.after(q.marker.as_deref()).map(|r| &**r);
        return list_page(&c, rows, &q, "security-group-rules", &[], seen, |r| render_rule(r));
    }
    let items = m.rules.values().filter(|r| seen(r)).map(|r| render_rule(r)).collect();
    list_response(&c, items, &q, "security-group-rules", &[])
}

async fn show_rule(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let m = c.model();
    Ok(show_response("security_group_rule", render_rule(find_rule(&m, &ctx, &id)?), &q))
}

/// A rule as asked, its attributes checked (the groups it names are checked in the write).
fn parse_rule(ctx: &AuthContext, a: &Attrs) -> ApiResult<SecurityGroupRule> {
    a.only(&[
        "security_group_id",
        "direction",
        "ethertype",
        "protocol",
        "port_range_min",
        "port_range_max",
        "remote_ip_prefix",
        "remote_group_id",
        "remote_address_group_id",
        "description",
        "tenant_id",
        "project_id",
    ])?;
    let project_id = a.owner(ctx)?;
    let group = a
        .str("security_group_id", 36)?
        .ok_or_else(|| bad("Failed to parse request. Required attribute 'security_group_id' not specified"))?;
    let direction = a
        .str("direction", 16)?
        .ok_or_else(|| bad("Failed to parse request. Required attribute 'direction' not specified"))?;
    if direction != "ingress" && direction != "egress" {
        return Err(bad(format!(
            "Invalid input for direction. Reason: '{direction}' is not in ['ingress', 'egress']."
        )));
    }
    let ethertype = a.str("ethertype", 8)?.unwrap_or_else(|| "IPv4".into());
    let ethertype = match ethertype.to_ascii_lowercase().as_str() {
        "ipv4" => "IPv4".to_string(),
        "ipv6" => "IPv6".to_string(),
        _ => {
            return Err(Error::BadRequest(
                "SecurityGroupRuleInvalidEtherType",
                format!(
                "Security group rule for ethertype '{ethertype}' not supported. Allowed values are ['IPv4', 'IPv6']."
            ),
            )
            .into())
        }
    };
    let protocol = match a.get("protocol") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() || s.eq_ignore_ascii_case("any") => None,
        Some(Value::String(s)) => Some(s.to_ascii_lowercase()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => return Err(unknown_protocol(&other.to_string())),
    };
    let number = match &protocol {
        None => None,
        Some(p) => match protocol_number(Some(p)) {
            Some(n) if PROTOCOLS.iter().any(|(name, _)| name == p) || p.parse::<u8>().is_ok() => Some(n),
            _ => return Err(unknown_protocol(p)),
        },
    };
    if ethertype == "IPv4" && matches!(protocol.as_deref(), Some("icmpv6") | Some("ipv6-icmp")) {
        return Err(Error::BadRequest(
            "SecurityGroupEthertypeConflictWithProtocol",
            format!("Ethertype IPv4 is not supported for protocol {}.", protocol.as_deref().unwrap_or_default()),
        )
        .into());
    }
    let port = |key: &str| -> ApiResult<Option<i64>> {
        match a.int(key)? {
            None | Some(None) => Ok(None),
            Some(Some(v)) => Ok(Some(v)),
        }
    };
    let (min, max) = (port("port_range_min")?, port("port_range_max")?);
    match number {
        _ if min.is_none() && max.is_none() => {}
        None => {
            return Err(Error::BadRequest("SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given.".into()).into())
        }
        Some(6) | Some(17) | Some(132) | Some(33) | Some(136) => {
            for v in [min, max].into_iter().flatten() {
                if !(1..=65535).contains(&v) {
                    return Err(Error::BadRequest("SecurityGroupInvalidPortValue", format!("Invalid value for port {v}.")).into());
                }
            }
            if let (Some(lo), Some(hi)) = (min, max) {
                if lo > hi {
                    return Err(Error::BadRequest(
                        "SecurityGroupInvalidPortRange",
                        "For TCP/UDP protocols, port_range_min must be <= port_range_max".into(),
                    )
                    .into());
                }
            }
            if min.is_none() {
                return Err(Error::BadRequest(
                    "SecurityGroupInvalidPortRange",
                    "For TCP/UDP protocols, port_range_min must be <= port_range_max".into(),
                )
                .into());
            }
        }
        Some(1) | Some(58) => {
            if min.is_none() && max.is_some() {
                return Err(Error::BadRequest("SecurityGroupMissingIcmpType", format!("ICMP code (port-range-max) {} is provided but ICMP type (port-range-min) is missing.", max.unwrap_or_default())).into());
            }
            for (what, v) in [("type", min), ("code", max)] {
                if let Some(v) = v {
                    if !(0..=255).contains(&v) {
                        return Err(Error::BadRequest("SecurityGroupInvalidIcmpValue", format!("Invalid value for ICMP {what} (port-range-min): {v}. It must be 0 to 255.")).into());
                    }
                }
            }
        }
        Some(_) => {
            return Err(Error::BadRequest(
                "SecurityGroupInvalidProtocolForPortRange",
                format!("Invalid protocol {} for port range, only supported for TCP, UDP, UDPLITE, SCTP, DCCP and ICMP protocols.", protocol.as_deref().unwrap_or_default()),
            )
            .into())
        }
    }
    let remote_ip_prefix = match a.nullable_str("remote_ip_prefix", 64)?.flatten() {
        None => None,
        Some(p) => {
            let c =
                Cidr::parse(&p, false).or_else(|| crate::ip::Addr::parse(&p).map(|a| Cidr { net: a, len: a.width() }));
            let Some(c) = c else {
                return Err(bad(format!(
                    "Invalid input for remote_ip_prefix. Reason: '{p}' is not a valid IP subnet."
                )));
            };
            if (c.version() == 4) != (ethertype == "IPv4") {
                return Err(Error::BadRequest(
                    "SecurityGroupRuleParameterConflict",
                    format!("Conflicting value ethertype {ethertype} for CIDR {p}"),
                )
                .into());
            }
            Some(if p.contains('/') { p } else { c.to_string() })
        }
    };
    let remote_group_id = a.nullable_str("remote_group_id", 36)?.flatten();
    if remote_group_id.is_some() && remote_ip_prefix.is_some() {
        return Err(Error::BadRequest(
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
            "Only remote_ip_prefix or remote_group_id may be provided.".into(),
        )
        .into());
    }
    if a.get("remote_address_group_id").is_some_and(|v| !v.is_null()) {
        return Err(bad("remote_address_group_id: address groups are not supported."));
    }
    Ok(SecurityGroupRule {
        id: uuid::Uuid::new_v4().to_string(),
        project_id,
        security_group_id: group,
        direction,
        ethertype,
        protocol,
        port_range_min: min,
        port_range_max: max,
        remote_ip_prefix,
        remote_group_id,
        remote_address_group_id: None,
        std: Std::new(a.str("description", 255)?.unwrap_or_default()),
    })
}

fn unknown_protocol(p: &str) -> haneul_core::error::ApiError {
    let names: Vec<&str> = PROTOCOLS.iter().map(|(n, _)| *n).collect();
    Error::BadRequest(
        "SecurityGroupRuleInvalidProtocol",
        format!("Security group rule protocol {p} not supported. Only protocol values {names:?} and integer representations [0 to 255] are supported."),
    )
    .into()
}

async fn create_rule(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let (items, bulk) = members(&body, "security_group_rule", "security_group_rules")?;
    let rules = items.iter().map(|a| parse_rule(&ctx, a)).collect::<ApiResult<Vec<_>>>()?;
    let ids = c.write(|t| security_groups::create_rules(t, &ctx, rules)).await?;
    let m = c.model();
    let out = ids.iter().filter_map(|id| m.rules.get(id)).map(|r| render_rule(r)).collect();
    Ok(created("security_group_rule", "security_group_rules", out, bulk))
}

async fn delete_rule(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    {
        let m = c.model();
        let r = find_rule(&m, &ctx, &id)?;
        require_owner(&ctx, &r.project_id, "delete_security_group_rule")?;
    }
    c.write(|t| security_groups::delete_rule(t, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
