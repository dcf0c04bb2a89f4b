//! Tags on resources (`standard-attr-tag`): the collections that carry them, read and changed
//! on a resource the caller owns.

use std::collections::BTreeSet;

use haneul_core::auth::AuthContext;

use super::access::owns;
use super::{Error, Result, Txn};
use crate::model::{FloatingIp, Model, Network, Port, Router as L3Router, SecurityGroup, Standard, Subnet, SubnetPool};

/// The collections that carry tags, with the type name of their 404.
pub const TAGGED: &[(&str, &str)] = &[
    ("networks", "NetworkNotFound"),
    ("subnets", "SubnetNotFound"),
    ("ports", "PortNotFound"),
    ("security-groups", "SecurityGroupNotFound"),
    ("routers", "RouterNotFound"),
    ("floatingips", "FloatingIPNotFound"),
    ("subnetpools", "SubnetPoolNotFound"),
];

fn missing(collection: &str, id: &str) -> Error {
    let kind = TAGGED.iter().find(|(c, _)| *c == collection).map(|(_, k)| *k).unwrap_or("NotFound");
    Error::NotFound(kind, format!("{} {id} could not be found.", kind.trim_end_matches("NotFound")))
}

fn tags_of<T: Standard>(m: &Model, ctx: &AuthContext, id: &str) -> Option<Vec<String>> {
    T::table(m).get(id).filter(|r| owns(ctx, r.project_id())).map(|r| r.std().tags.iter().cloned().collect())
}

/// The tags of resource `id` of `collection` (one of [`TAGGED`]), if the caller owns it.
pub fn of(m: &Model, ctx: &AuthContext, collection: &str, id: &str) -> Result<Vec<String>> {
    let tags = match collection {
        "networks" => tags_of::<Network>(m, ctx, id),
        "subnets" => tags_of::<Subnet>(m, ctx, id),
        "ports" => tags_of::<Port>(m, ctx, id),
        "security-groups" => tags_of::<SecurityGroup>(m, ctx, id),
        "routers" => tags_of::<L3Router>(m, ctx, id),
        "floatingips" => tags_of::<FloatingIp>(m, ctx, id),
        _ => tags_of::<SubnetPool>(m, ctx, id),
    };
    tags.ok_or_else(|| missing(collection, id))
}

fn edit<T: Standard>(t: &mut Txn, collection: &str, id: &str, f: &dyn Fn(&mut BTreeSet<String>)) -> Result<()> {
    let Some(r) = T::table(&t.m).get(id) else { return Err(missing(collection, id)) };
    let mut r = (**r).clone();
    f(&mut r.std_mut().tags);
    r.std_mut().touch();
    t.put(r)?;
    Ok(())
}

/// Applies `f` to the tags of resource `id` of `collection`.
pub fn change(t: &mut Txn, collection: &str, id: &str, f: &dyn Fn(&mut BTreeSet<String>)) -> Result<()> {
    match collection {
        "networks" => edit::<Network>(t, collection, id, f),
        "subnets" => edit::<Subnet>(t, collection, id, f),
        "ports" => edit::<Port>(t, collection, id, f),
        "security-groups" => edit::<SecurityGroup>(t, collection, id, f),
        "routers" => edit::<L3Router>(t, collection, id, f),
        "floatingips" => edit::<FloatingIp>(t, collection, id, f),
        _ => edit::<SubnetPool>(t, collection, id, f),
    }
}
