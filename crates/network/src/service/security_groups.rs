//! Security groups' rules: who sees a group (its project, or shared), each project's default
//! group, a new group's egress rules, no duplicate rule, and what a group's delete takes along.

use haneul_core::auth::AuthContext;

use super::access::owns;
use super::{check_quota, not_found, Error, Result, Txn};
use crate::ip::Cidr;
use crate::model::{Model, SecurityGroup, SecurityGroupRule, Std};

/// Protocol names Neutron knows, with their IP protocol numbers.
pub const PROTOCOLS: &[(&str, u8)] = &[
    ("ah", 51),
    ("dccp", 33),
    ("egp", 8),
    ("esp", 50),
    ("gre", 47),
    ("hopopt", 0),
    ("icmp", 1),
    ("icmpv6", 58),
    ("igmp", 2),
    ("ipip", 4),
    ("ipv6-encap", 41),
    ("ipv6-frag", 44),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ipv6-route", 43),
    ("ospf", 89),
    ("pgm", 113),
    ("rsvp", 46),
    ("sctp", 132),
    ("tcp", 6),
    ("udp", 17),
    ("udplite", 136),
    ("vrrp", 112),
];

/// The IP protocol number of a rule's protocol (None: any).
pub fn protocol_number(p: Option<&str>) -> Option<u8> {
    let p = p?;
    PROTOCOLS.iter().find(|(n, _)| *n == p).map(|(_, v)| *v).or_else(|| p.parse().ok())
}

pub fn visible(ctx: &AuthContext, g: &SecurityGroup) -> bool {
    owns(ctx, &g.project_id) || g.shared
}

pub fn find<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a SecurityGroup> {
    m.security_groups
        .get(id)
        .map(|g| &**g)
        .filter(|g| visible(ctx, g))
        .ok_or_else(|| not_found("SecurityGroupNotFound", "Security group", id))
}

pub fn find_rule<'a>(m: &'a Model, ctx: &AuthContext, id: &str) -> Result<&'a SecurityGroupRule> {
    m.rules
        .get(id)
        .map(|r| &**r)
        .filter(|r| {
            owns(ctx, &r.project_id) || m.security_groups.get(&r.security_group_id).is_some_and(|g| visible(ctx, g))
        })
        .ok_or_else(|| not_found("SecurityGroupRuleNotFound", "Security group rule", id))
}

/// The project's default group, made in `t` if missing: egress anywhere (IPv4 and IPv6),
/// ingress from members of the group itself.
pub fn default_group(t: &mut Txn, project_id: &str) -> Result<String> {
    if let Some(g) = t.m.default_group(project_id) {
        return Ok(g.id.clone());
    }
    let id = uuid::Uuid::new_v4().to_string();
    t.put(SecurityGroup {
        id: id.clone(),
        project_id: project_id.into(),
        name: "default".into(),
        stateful: true,
        shared: false,
        std: Std::new("Default security group".into()),
    })?;
    for (direction, ethertype) in [("egress", "IPv4"), ("egress", "IPv6"), ("ingress", "IPv4"), ("ingress", "IPv6")] {
        t.put(SecurityGroupRule {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: project_id.into(),
            security_group_id: id.clone(),
            direction: direction.into(),
            ethertype: ethertype.into(),
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: (direction == "ingress").then(|| id.clone()),
            remote_address_group_id: None,
            std: Std::new(String::new()),
        })?;
    }
    Ok(id)
}

/// A security group asked for.
pub struct NewGroup {
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub stateful: bool,
}

/// An egress rule to anywhere of `group`.
fn egress(project_id: &str, group: &str, ethertype: &str) -> SecurityGroupRule {
    SecurityGroupRule {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: project_id.into(),
        security_group_id: group.into(),
        direction: "egress".into(),
        ethertype: ethertype.into(),
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: None,
        remote_address_group_id: None,
        std: Std::new(String::new()),
    }
}

/// Creates the groups asked for, all or none, each letting its members out (IPv4 and IPv6)
/// as Neutron's do; the project's default group is made first if it has none, and a second
/// one named `default` is refused.
pub fn create(t: &mut Txn, asks: Vec<NewGroup>) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for ask in asks {
        default_group(t, &ask.project_id)?;
        if ask.name == "default" {
            return Err(Error::Conflict(
                "SecurityGroupDefaultAlreadyExists",
                "Default security group already exists.".into(),
            ));
        }
        check_quota(&t.m, &ask.project_id, "security_group", 1)?;
        let id = uuid::Uuid::new_v4().to_string();
        t.put(SecurityGroup {
            id: id.clone(),
            project_id: ask.project_id.clone(),
            name: ask.name,
            stateful: ask.stateful,
            shared: false,
            std: Std::new(ask.description),
        })?;
        for ethertype in ["IPv4", "IPv6"] {
            t.put(egress(&ask.project_id, &id, ethertype))?;
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Renames or redescribes a group (the default one keeps its name), or changes whether it is
/// stateful while no port uses it.
pub fn update(
    t: &mut Txn,
    id: &str,
    name: Option<String>,
    description: Option<String>,
    stateful: Option<bool>,
) -> Result<()> {
    let mut g = t.edit(&t.m.security_groups, "security group", id)?;
    if let Some(n) = name {
        if g.name == "default" && n != "default" {
            return Err(Error::Conflict(
                "SecurityGroupCannotUpdateDefault",
                "Updating default security group not allowed.".into(),
            ));
        }
        if n == "default" && g.name != "default" {
            return Err(Error::Conflict(
                "SecurityGroupDefaultAlreadyExists",
                "Default security group already exists.".into(),
            ));
        }
        g.name = n;
    }
    if let Some(d) = description {
        g.std.description = d;
    }
    if let Some(s) = stateful {
        if s != g.stateful && t.m.group_in_use(id) {
            return Err(Error::Conflict("SecurityGroupInUse", format!("Security Group {id} in use.")));
        }
        g.stateful = s;
    }
    g.std.touch();
    t.put(g)?;
    Ok(())
}

/// Deletes a group no port uses, with its rules and the rules elsewhere naming it as remote.
pub fn delete(t: &mut Txn, id: &str) -> Result<()> {
    if t.m.group_in_use(id) {
        return Err(Error::Conflict("SecurityGroupInUse", format!("Security Group {id} in use.")));
    }
    t.delete::<SecurityGroup>(id).ok_or_else(|| not_found("SecurityGroupNotFound", "Security group", id))?;
    t.delete_where::<SecurityGroupRule>(|r| r.security_group_id == id);
    t.delete_where::<SecurityGroupRule>(|r| r.remote_group_id.as_deref() == Some(id));
    Ok(())
}

/// Whether two rules say the same thing.
fn same_rule(a: &SecurityGroupRule, b: &SecurityGroupRule) -> bool {
    let norm = |r: &SecurityGroupRule| {
        r.remote_ip_prefix.as_deref().and_then(|p| Cidr::parse(p, false)).map(|c| c.to_string())
    };
    a.security_group_id == b.security_group_id
        && a.direction == b.direction
        && a.ethertype == b.ethertype
        && protocol_number(a.protocol.as_deref()) == protocol_number(b.protocol.as_deref())
        && a.port_range_min == b.port_range_min
        && a.port_range_max == b.port_range_max
        && norm(a) == norm(b)
        && a.remote_group_id == b.remote_group_id
}

/// Adds the rules asked for, all or none: each to a group the caller owns (the rule takes the
/// group's project), its remote group visible, no rule saying the same thing twice.
pub fn create_rules(t: &mut Txn, ctx: &AuthContext, rules: Vec<SecurityGroupRule>) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for mut r in rules {
        let g = find(&t.m, ctx, &r.security_group_id)?;
        if !owns(ctx, &g.project_id) {
            return Err(not_found("SecurityGroupNotFound", "Security group", &r.security_group_id));
        }
        r.project_id = g.project_id.clone();
        if let Some(remote) = &r.remote_group_id {
            find(&t.m, ctx, remote)?;
        }
        if let Some(dup) = t.m.rules_of(&r.security_group_id).find(|o| same_rule(o, &r)) {
            return Err(Error::Conflict(
                "SecurityGroupRuleExists",
                format!("Security group rule already exists. Rule id is {}.", dup.id),
            ));
        }
        check_quota(&t.m, &r.project_id, "security_group_rule", 1)?;
        ids.push(r.id.clone());
        t.put(r)?;
    }
    Ok(ids)
}

pub fn delete_rule(t: &mut Txn, id: &str) -> Result<()> {
    t.delete::<SecurityGroupRule>(id)
        .ok_or_else(|| not_found("SecurityGroupRuleNotFound", "Security group rule", id))?;
    Ok(())
}
