//! Subnet pools (`/v2.0/subnetpools`, `subnet_allocation`): prefixes subnets are carved from
//! when they name a pool (or the default pool) instead of a CIDR.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use haneul_core::auth::Auth;
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::{
    bad, created_rows, enforce, list_response, members, one_member, require_owner, show_response, standard, ApiResult,
    Attrs, Ctx, ListQuery,
};
use crate::ip::Cidr;
use crate::model::{Std, SubnetPool};
use crate::service::subnetpools::{self, check_bounds, find, visible, PoolUpdate};
use crate::service::Error;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/subnetpools", rule("get_subnetpool"), list)
        .post("/subnetpools", rule("create_subnetpool"), create)
        .get("/subnetpools/{id}", rule("get_subnetpool"), show)
        .put("/subnetpools/{id}", rule("update_subnetpool"), update)
        .delete("/subnetpools/{id}", rule("delete_subnetpool"), delete)
}

fn render(p: &SubnetPool) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(p.id));
    v.insert("name".into(), json!(p.name));
    v.insert("ip_version".into(), json!(p.ip_version));
    v.insert("prefixes".into(), json!(p.prefixes));
    // Neutron answers the lengths as strings.
    v.insert("default_prefixlen".into(), json!(p.default_prefixlen.to_string()));
    v.insert("min_prefixlen".into(), json!(p.min_prefixlen.to_string()));
    v.insert("max_prefixlen".into(), json!(p.max_prefixlen.to_string()));
    v.insert("shared".into(), json!(p.shared));
    v.insert("is_default".into(), json!(p.is_default));
    v.insert("default_quota".into(), json!(p.default_quota));
    v.insert("address_scope_id".into(), json!(p.address_scope_id));
    standard(&mut v, &p.project_id, &p.std);
    Value::Object(v)
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, Query(q): Query<Vec<(String, String)>>) -> ApiResult {
    let q = ListQuery::parse(&q)?;
    let m = c.model();
    let items = m.subnetpools.values().filter(|p| visible(&ctx, p)).map(|p| render(p)).collect();
    list_response(&c, items, &q, "subnetpools", &[])
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult {
    let m = c.model();
    Ok(show_response("subnetpool", render(find(&m, &ctx, &id)?), &q))
}

fn prefix_len(a: &Attrs, key: &str) -> ApiResult<Option<u8>> {
    match a.int(key)?.flatten() {
        None => Ok(None),
        Some(n) if (0..=128).contains(&n) => Ok(Some(n as u8)),
        Some(n) => Err(bad(format!("Invalid input for {key}. Reason: '{n}' is not a valid prefix length."))),
    }
}

fn parse_prefixes(a: &Attrs) -> ApiResult<Option<Vec<Cidr>>> {
    let Some(list) = a.str_list("prefixes")? else { return Ok(None) };
    if list.is_empty() {
        return Err(Error::BadRequest("EmptySubnetPoolPrefixList", "Empty subnet pool prefix list.".into()).into());
    }
    let cidrs = list
        .iter()
        .map(|p| {
            Cidr::parse(p, false)
                .ok_or_else(|| bad(format!("Invalid input for prefixes. Reason: '{p}' is not a valid IP subnet.")))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    if cidrs.iter().any(|c| c.version() != cidrs[0].version()) {
        return Err(Error::BadRequest(
            "PrefixVersionMismatch",
            "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.".into(),
        )
        .into());
    }
    Ok(Some(cidrs))
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, body: Bytes) -> ApiResult {
    let (items, bulk) = members(&body, "subnetpool", "subnetpools")?;
    let mut pools = Vec::new();
    for a in &items {
        a.only(&[
            "name",
            "prefixes",
            "default_prefixlen",
            "min_prefixlen",
            "max_prefixlen",
            "shared",
            "is_default",
            "default_quota",
            "address_scope_id",
            "description",
            "tenant_id",
            "project_id",
        ])?;
        let project_id = a.owner(&ctx)?;
        let target = json!({"project_id": project_id, "tenant_id": project_id});
        if a.bool("shared")?.unwrap_or(false) {
            enforce(&c, &ctx, "create_subnetpool:shared", &target)?;
        }
        if a.bool("is_default")?.unwrap_or(false) {
            enforce(&c, &ctx, "create_subnetpool:is_default", &target)?;
        }
        if a.get("address_scope_id").is_some_and(|v| !v.is_null()) {
            return Err(bad("Address scopes are not supported."));
        }
        let name = a
            .str("name", 255)?
            .ok_or_else(|| bad("Failed to parse request. Required attribute 'name' not specified"))?;
        let prefixes = parse_prefixes(a)?
            .ok_or_else(|| bad("Failed to parse request. Required attribute 'prefixes' not specified"))?;
        let ip_version = prefixes[0].version();
        let min = prefix_len(a, "min_prefixlen")?.unwrap_or(if ip_version == 4 { 8 } else { 64 });
        let max = prefix_len(a, "max_prefixlen")?.unwrap_or(if ip_version == 4 { 32 } else { 128 });
        let pool = SubnetPool {
            id: uuid::Uuid::new_v4().to_string(),
            project_id,
            name,
            ip_version,
            prefixes: prefixes.iter().map(|c| c.to_string()).collect(),
            default_prefixlen: prefix_len(a, "default_prefixlen")?.unwrap_or(min),
            min_prefixlen: min,
            max_prefixlen: max,
            shared: a.bool("shared")?.unwrap_or(false),
            is_default: a.bool("is_default")?.unwrap_or(false),
            default_quota: a.int("default_quota")?.flatten(),
            address_scope_id: None,
            std: Std::new(a.str("description", 255)?.unwrap_or_default()),
        };
        check_bounds(&pool)?;
        if prefixes.iter().any(|p| p.len < pool.min_prefixlen) {
            return Err(Error::BadRequest(
                "IllegalSubnetPoolPrefixBounds",
                format!("Prefixes of the pool are shorter than its min_prefixlen {}.", pool.min_prefixlen),
            )
            .into());
        }
        pools.push(pool);
    }
    let ids = c.write(|t| subnetpools::create(t, pools)).await?;
    Ok(created_rows(&c, &ids, "subnetpool", "subnetpools", bulk, |m| &m.subnetpools, |_, r| render(r)))
}

async fn update(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let a = one_member(&body, "subnetpool", "subnetpools")?;
    a.only(&[
        "name",
        "prefixes",
        "default_prefixlen",
        "min_prefixlen",
        "max_prefixlen",
        "is_default",
        "default_quota",
        "description",
        "address_scope_id",
    ])?;
    let owner = {
        let m = c.model();
        let p = find(&m, &ctx, &id)?;
        require_owner(&ctx, &p.project_id, "update_subnetpool")?;
        p.project_id.clone()
    };
    if a.has("is_default") {
        enforce(&c, &ctx, "update_subnetpool:is_default", &json!({"project_id": owner, "tenant_id": owner}))?;
    }
    if a.get("address_scope_id").is_some_and(|v| !v.is_null()) {
        return Err(bad("Address scopes are not supported."));
    }
    let name = a.str("name", 255)?;
    let description = a.str("description", 255)?;
    let prefixes = parse_prefixes(&a)?;
    let (dflt, min, max) =
        (prefix_len(&a, "default_prefixlen")?, prefix_len(&a, "min_prefixlen")?, prefix_len(&a, "max_prefixlen")?);
    let is_default = a.bool("is_default")?;
    let quota = a.int("default_quota")?;
    let u = PoolUpdate {
        name,
        description,
        prefixes,
        default_prefixlen: dflt,
        min_prefixlen: min,
        max_prefixlen: max,
        is_default,
        default_quota: quota,
    };
    c.write(|t| subnetpools::update(t, &id, u)).await?;
    let m = c.model();
    Ok(show_response("subnetpool", render(find(&m, &ctx, &id)?), &[]))
}

async fn delete(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult<Response> {
    {
        let m = c.model();
        let p = find(&m, &ctx, &id)?;
        require_owner(&ctx, &p.project_id, "delete_subnetpool")?;
    }
    c.write(|t| subnetpools::delete(t, &id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
