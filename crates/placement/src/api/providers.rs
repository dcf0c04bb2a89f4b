//! Resource providers and what hangs off them: inventories, traits, aggregates, usages and
//! the allocations against them.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::{
    bad, created, generation, int, no_content, object, only_keys, only_params, param, required, since, string, uuid,
    ApiResult, Ctx, Mv, Pairs,
};
use crate::model::{Inventory, Model, Provider};
use crate::service::{self, InventoryIn};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/resource_providers", rule("placement:resource_providers:list"), list)
        .post("/resource_providers", rule("placement:resource_providers:create"), create)
        .get("/resource_providers/{uuid}", rule("placement:resource_providers:show"), show)
        .put("/resource_providers/{uuid}", rule("placement:resource_providers:update"), update)
        .delete("/resource_providers/{uuid}", rule("placement:resource_providers:delete"), delete)
        .get(
            "/resource_providers/{uuid}/inventories",
            rule("placement:resource_providers:inventories:list"),
            list_inventories,
        )
        .put(
            "/resource_providers/{uuid}/inventories",
            rule("placement:resource_providers:inventories:update"),
            put_inventories,
        )
        .post(
            "/resource_providers/{uuid}/inventories",
            rule("placement:resource_providers:inventories:create"),
            post_inventory,
        )
        .delete(
            "/resource_providers/{uuid}/inventories",
            rule("placement:resource_providers:inventories:delete"),
            delete_inventories,
        )
        .get(
            "/resource_providers/{uuid}/inventories/{rc}",
            rule("placement:resource_providers:inventories:show"),
            show_inventory,
        )
        .put(
            "/resource_providers/{uuid}/inventories/{rc}",
            rule("placement:resource_providers:inventories:update"),
            put_inventory,
        )
        .delete(
            "/resource_providers/{uuid}/inventories/{rc}",
            rule("placement:resource_providers:inventories:delete"),
            delete_inventory,
        )
        .get("/resource_providers/{uuid}/traits", rule("placement:resource_providers:traits:list"), list_traits)
        .put("/resource_providers/{uuid}/traits", rule("placement:resource_providers:traits:update"), put_traits)
        .delete("/resource_providers/{uuid}/traits", rule("placement:resource_providers:traits:delete"), delete_traits)
        .get(
            "/resource_providers/{uuid}/aggregates",
            rule("placement:resource_providers:aggregates:list"),
            list_aggregates,
        )
        .put(
            "/resource_providers/{uuid}/aggregates",
            rule("placement:resource_providers:aggregates:update"),
            put_aggregates,
        )
        .get("/resource_providers/{uuid}/usages", rule("placement:resource_providers:usages"), usages)
        .get(
            "/resource_providers/{uuid}/allocations",
            rule("placement:resource_providers:allocations:list"),
            provider_allocations,
        )
}

pub fn provider_json(p: &Provider, mv: Mv) -> Value {
    let base = format!("/resource_providers/{}", p.id);
    let mut links = vec![
        json!({"rel": "self", "href": base}),
        json!({"rel": "inventories", "href": format!("{base}/inventories")}),
        json!({"rel": "usages", "href": format!("{base}/usages")}),
    ];
    if mv.at_least(1) {
        links.push(json!({"rel": "aggregates", "href": format!("{base}/aggregates")}));
    }
    if mv.at_least(6) {
        links.push(json!({"rel": "traits", "href": format!("{base}/traits")}));
    }
    if mv.at_least(11) {
        links.push(json!({"rel": "allocations", "href": format!("{base}/allocations")}));
    }
    let mut v = json!({"uuid": p.id, "name": p.name, "generation": p.generation, "links": links});
    if mv.at_least(14) {
        v["parent_provider_uuid"] = json!(p.parent);
        v["root_provider_uuid"] = json!(p.root);
    }
    v
}

/// `member_of` values: `in:a,b` (any of) or a single uuid; `!` forbids (1.32).
pub fn parse_member_of(
    values: &[&str],
    mv: Mv,
    any_of: &mut Vec<BTreeSet<String>>,
    forbidden: &mut BTreeSet<String>,
) -> ApiResult<()> {
    if values.len() > 1 && !mv.at_least(24) {
        return Err(bad("Multiple member_of parameters are not supported"));
    }
    for v in values {
        let (neg, rest) = match v.strip_prefix('!') {
            Some(r) if mv.at_least(32) => (true, r),
            _ => (false, *v),
        };
        let list = match rest.strip_prefix("in:") {
            Some(l) => l,
            None if rest.contains(',') => {
                return Err(bad(format!(
                    "Multiple values for 'member_of' must be prefixed with the 'in:' or '!in:' keyword using the valid microversion. Got: {v}"
                )))
            }
            None => rest,
        };
        let mut set = BTreeSet::new();
        for u in list.split(',') {
            let u = uuid::Uuid::parse_str(u.trim())
                .map_err(|_| bad(format!("Invalid query string parameters: Expected 'member_of' parameter to contain valid UUID(s). Got: {v}")))?;
            set.insert(u.to_string());
        }
        if neg {
            // `!in:a,b`: in none of them.
            forbidden.extend(set);
        } else {
            any_of.push(set);
        }
    }
    Ok(())
}

/// `required` values: traits, `!TRAIT` forbidden (1.22), `in:A,B` any of (1.39).
pub fn parse_required(
    m: &Model,
    values: &[&str],
    mv: Mv,
    any_of: &mut Vec<BTreeSet<String>>,
    forbidden: &mut BTreeSet<String>,
) -> ApiResult<()> {
    let mut unknown = Vec::new();
    for v in values {
        for item in split_required(v, mv)? {
            match item {
                Req::Forbidden(t) => {
                    if !m.trait_exists(&t) {
                        unknown.push(t.clone());
                    }
                    forbidden.insert(t);
                }
                Req::AnyOf(set) => {
                    unknown.extend(set.iter().filter(|t| !m.trait_exists(t)).cloned());
                    any_of.push(set);
                }
            }
        }
    }
    if !unknown.is_empty() {
        return Err(bad(format!(
            "Invalid trait(s) in \"required\" parameter: No such trait(s): {}.",
            unknown.join(", ")
        )));
    }
    Ok(())
}

enum Req {
    AnyOf(BTreeSet<String>),
    Forbidden(String),
}

fn split_required(v: &str, mv: Mv) -> ApiResult<Vec<Req>> {
    if let Some(list) = v.strip_prefix("in:") {
        if !mv.at_least(39) {
            return Err(bad(format!(
                "Invalid query string parameters: 'in:' is not supported in required before microversion 1.39: {v}"
            )));
        }
        let set: BTreeSet<String> = list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if set.is_empty() || set.iter().any(|t| t.starts_with('!')) {
            return Err(bad(format!("Invalid query string parameters: Expected 'required' parameter value of the form: in:TRAIT1,TRAIT2. Got: {v}")));
        }
        return Ok(vec![Req::AnyOf(set)]);
    }
    let mut out = Vec::new();
    for t in v.split(',').map(str::trim) {
        if t.is_empty() {
            return Err(bad(format!("Invalid query string parameters: Expected 'required' parameter value of the form: HW_CPU_X86_VMX,CUSTOM_MAGIC. Got: {v}")));
        }
        match t.strip_prefix('!') {
            Some(f) if mv.at_least(22) => out.push(Req::Forbidden(f.to_string())),
            _ => out.push(Req::AnyOf([t.to_string()].into())),
        }
    }
    Ok(out)
}

/// `resources=VCPU:1,MEMORY_MB:512`.
pub fn parse_resources(m: &Model, v: &str, key: &str) -> ApiResult<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for item in v.split(',') {
        let malformed = || {
            bad(format!(
                "Badly formed resources parameter. Expected resources query string parameter in form: ?{key}=VCPU:2,MEMORY_MB:1024. Got: {v}."
            ))
        };
        let (rc, n) = item.split_once(':').ok_or_else(malformed)?;
        let n: i64 = n.trim().parse().map_err(|_| malformed())?;
        let rc = rc.trim().to_string();
        if n < 1 {
            return Err(bad(format!("Requested resource {rc} requires amount >= 1. Got: {n}.")));
        }
        if !m.class_exists(&rc) {
            return Err(bad(format!("Invalid resource class in resources parameter: No such resource class {rc}.")));
        }
        if out.insert(rc.clone(), n).is_some() {
            return Err(bad(format!("Resource class {rc} is given more than once in {key}.")));
        }
    }
    Ok(out)
}

fn all<'a>(q: &'a Pairs, key: &str) -> Vec<&'a str> {
    q.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

async fn list(State(p): State<Ctx>, mv: Mv, Query(q): Query<Pairs>) -> ApiResult {
    let mut allowed = vec!["name", "uuid"];
    if mv.at_least(3) {
        allowed.push("member_of");
    }
    if mv.at_least(4) {
        allowed.push("resources");
    }
    if mv.at_least(14) {
        allowed.push("in_tree");
    }
    if mv.at_least(18) {
        allowed.push("required");
    }
    only_params(&q, &allowed)?;
    let m = p.model();
    let mut group = crate::candidates::Group::default();
    parse_member_of(&all(&q, "member_of"), mv, &mut group.member_of, &mut group.forbidden_aggregates)?;
    parse_required(&m, &all(&q, "required"), mv, &mut group.required, &mut group.forbidden)?;
    if let Some(r) = param(&q, "resources") {
        group.resources = parse_resources(&m, r, "resources")?;
    }
    let uuid_filter = param(&q, "uuid").map(|u| uuid(u, "uuid")).transpose()?;
    let tree_root = match param(&q, "in_tree") {
        Some(t) => {
            let t = uuid(t, "in_tree")?;
            // An unknown tree matches nothing.
            Some(m.providers.get(&t).map(|p| p.root.clone()).unwrap_or_default())
        }
        None => None,
    };
    let usages = m.usages();
    let list: Vec<Value> = m
        .providers
        .values()
        .filter(|rp| param(&q, "name").is_none_or(|n| rp.name == n))
        .filter(|rp| uuid_filter.as_ref().is_none_or(|u| &rp.id == u))
        .filter(|rp| tree_root.as_ref().is_none_or(|r| &rp.root == r))
        .filter(|rp| crate::candidates::provider_matches(rp, &usages, &group))
        .map(|rp| provider_json(rp, mv))
        .collect();
    Ok(Json(json!({"resource_providers": list})).into_response())
}

async fn create(State(p): State<Ctx>, mv: Mv, body: Bytes) -> ApiResult {
    let o = object(&body)?;
    let mut allowed = vec!["name", "uuid"];
    if mv.at_least(14) {
        allowed.push("parent_provider_uuid");
    }
    only_keys(&o, &allowed)?;
    let name = provider_name(required(&o, "name")?)?;
    let id = o.get("uuid").map(|u| uuid(string(u, "uuid")?, "uuid")).transpose()?;
    let parent = parent_of(&o)?;
    let rp = p.write(|t| service::create_provider(t, id, name, parent)).await?;
    let location = format!("{}/resource_providers/{}", p.public_url, rp.id);
    if mv.at_least(20) {
        let mut resp = Json(provider_json(&rp, mv)).into_response();
        if let Ok(v) = location.parse() {
            resp.headers_mut().insert("location", v);
        }
        return Ok(resp);
    }
    Ok(created(&location, None))
}

fn provider_name(v: &Value) -> ApiResult<String> {
    let n = string(v, "name")?;
    if n.is_empty() || n.chars().count() > 200 {
        return Err(bad(format!("JSON does not validate: '{n}' is not a valid name: 1 to 200 characters.")));
    }
    Ok(n.to_string())
}

fn parent_of(o: &Map<String, Value>) -> ApiResult<Option<String>> {
    match o.get("parent_provider_uuid") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Ok(Some(uuid(string(v, "parent_provider_uuid")?, "parent_provider_uuid")?)),
    }
}

async fn show(State(p): State<Ctx>, mv: Mv, Path(id): Path<String>) -> ApiResult {
    let m = p.model();
    let rp = service::provider(&m, &id)?;
    Ok(Json(provider_json(rp, mv)).into_response())
}

async fn update(State(p): State<Ctx>, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let o = object(&body)?;
    let mut allowed = vec!["name"];
    if mv.at_least(14) {
        allowed.push("parent_provider_uuid");
    }
    only_keys(&o, &allowed)?;
    let name = provider_name(required(&o, "name")?)?;
    let m = p.model();
    let current_parent = service::provider(&m, &id)?.parent.clone();
    let parent = if o.contains_key("parent_provider_uuid") { parent_of(&o)? } else { current_parent };
    let rp = p.write(|t| service::update_provider(t, &id, name, parent, mv.at_least(37))).await?;
    Ok(Json(provider_json(&rp, mv)).into_response())
}

async fn delete(State(p): State<Ctx>, Path(id): Path<String>) -> ApiResult {
    p.write(|t| service::delete_provider(t, &id)).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------
// Inventories

fn inventory_json(i: &Inventory) -> Value {
    json!({
        "total": i.total,
        "reserved": i.reserved,
        "min_unit": i.min_unit,
        "max_unit": i.max_unit,
        "step_size": i.step_size,
        "allocation_ratio": i.allocation_ratio,
    })
}

fn inventories_json(rp: &Provider) -> Value {
    let inv: Map<String, Value> = rp.inventories.iter().map(|(k, v)| (k.clone(), inventory_json(v))).collect();
    json!({"inventories": inv, "resource_provider_generation": rp.generation})
}

fn one_inventory_json(rp: &Provider, rc: &str) -> Value {
    let mut v = inventory_json(&rp.inventories[rc]);
    v["resource_provider_generation"] = json!(rp.generation);
    v
}

/// An inventory object of a request (fields as placement's schema has them).
pub(super) fn inventory_in(rp: &str, rc: &str, v: &Value, mv: Mv) -> ApiResult<Inventory> {
    let o =
        v.as_object().ok_or_else(|| bad(format!("JSON does not validate: the inventory of {rc} must be an object")))?;
    only_keys(
        o,
        &[
            "total",
            "reserved",
            "min_unit",
            "max_unit",
            "step_size",
            "allocation_ratio",
            "resource_class",
            "resource_provider_generation",
        ],
    )?;
    let i = InventoryIn {
        total: int(required(o, "total")?, "total")?,
        reserved: o.get("reserved").map(|v| int(v, "reserved")).transpose()?,
        min_unit: o.get("min_unit").map(|v| int(v, "min_unit")).transpose()?,
        max_unit: o.get("max_unit").map(|v| int(v, "max_unit")).transpose()?,
        step_size: o.get("step_size").map(|v| int(v, "step_size")).transpose()?,
        allocation_ratio: o
            .get("allocation_ratio")
            .map(|v| {
                v.as_f64().ok_or_else(|| {
                    bad(format!("JSON does not validate: {v} is not of type 'number' (allocation_ratio)"))
                })
            })
            .transpose()?,
    };
    Ok(service::inventory(rp, rc, &i, mv.at_least(26))?)
}

async fn list_inventories(State(p): State<Ctx>, Path(id): Path<String>) -> ApiResult {
    let m = p.model();
    Ok(Json(inventories_json(service::provider(&m, &id)?)).into_response())
}

async fn put_inventories(State(p): State<Ctx>, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let o = object(&body)?;
    only_keys(&o, &["inventories", "resource_provider_generation"])?;
    let g = generation(&o)?;
    let inv = required(&o, "inventories")?
        .as_object()
        .ok_or_else(|| bad("JSON does not validate: 'inventories' must be an object"))?;
    let mut new = BTreeMap::new();
    for (rc, v) in inv {
        new.insert(rc.clone(), inventory_in(&id, rc, v, mv)?);
    }
    let rp = p.write(|t| service::set_inventories(t, &id, g, new)).await?;
    Ok(Json(inventories_json(&rp)).into_response())
}

async fn post_inventory(State(p): State<Ctx>, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let o = object(&body)?;
    let rc = string(required(&o, "resource_class")?, "resource_class")?.to_string();
    let inv = inventory_in(&id, &rc, &Value::Object(o.clone()), mv)?;
    let g = generation(&o).ok();
    let rp = p
        .write(|t| {
            let rp = service::provider(&t.m, &id)?.clone();
            if rp.inventories.contains_key(&rc) {
                return Err(service::Error::Conflict(
                    service::code::CONCURRENT_UPDATE,
                    format!("Update conflict: Inventory for {rc} on resource provider {id} already exists."),
                ));
            }
            let mut all = rp.inventories.clone();
            all.insert(rc.clone(), inv);
            service::set_inventories(t, &id, g.unwrap_or(rp.generation), all)
        })
        .await?;
    Ok(created(
        &format!("{}/resource_providers/{id}/inventories/{rc}", p.public_url),
        Some(one_inventory_json(&rp, &rc)),
    ))
}

async fn delete_inventories(State(p): State<Ctx>, mv: Mv, Path(id): Path<String>) -> ApiResult {
    if !mv.at_least(5) {
        return Err(haneul_core::error::ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method DELETE is not supported for this resource.",
        ));
    }
    p.write(|t| {
        let g = service::provider(&t.m, &id)?.generation;
        service::set_inventories(t, &id, g, BTreeMap::new())
    })
    .await?;
    Ok(no_content())
}

async fn show_inventory(State(p): State<Ctx>, Path((id, rc)): Path<(String, String)>) -> ApiResult {
    let m = p.model();
    let rp = service::provider(&m, &id)?;
    if !rp.inventories.contains_key(&rc) {
        return Err(haneul_core::error::ApiError::not_found(format!("No inventory of class {rc} for {id}")));
    }
    Ok(Json(one_inventory_json(rp, &rc)).into_response())
}

async fn put_inventory(State(p): State<Ctx>, mv: Mv, Path((id, rc)): Path<(String, String)>, body: Bytes) -> ApiResult {
    let o = object(&body)?;
    only_keys(
        &o,
        &["total", "reserved", "min_unit", "max_unit", "step_size", "allocation_ratio", "resource_provider_generation"],
    )?;
    let g = generation(&o)?;
    let inv = inventory_in(&id, &rc, &Value::Object(o), mv)?;
    let rp = p
        .write(|t| {
            let mut all = service::provider(&t.m, &id)?.inventories.clone();
            if !t.m.class_exists(&rc) {
                return Err(service::Error::NotFound(format!("No such resource class {rc}.")));
            }
            if !all.contains_key(&rc) {
                return Err(service::bad(format!(
                    "No inventory record with resource class for resource provider {id}: No inventory of class {rc} found."
                )));
            }
            all.insert(rc.clone(), inv);
            service::set_inventories(t, &id, g, all)
        })
        .await?;
    Ok(Json(one_inventory_json(&rp, &rc)).into_response())
}

async fn delete_inventory(State(p): State<Ctx>, Path((id, rc)): Path<(String, String)>) -> ApiResult {
    p.write(|t| service::delete_inventory(t, &id, &rc, None)).await?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------------------------
// Traits and aggregates

fn traits_json(rp: &Provider) -> Value {
    json!({"traits": rp.traits, "resource_provider_generation": rp.generation})
}

async fn list_traits(State(p): State<Ctx>, mv: Mv, Path(id): Path<String>) -> ApiResult {
    since(mv, 6)?;
    let m = p.model();
    Ok(Json(traits_json(service::provider(&m, &id)?)).into_response())
}

async fn put_traits(State(p): State<Ctx>, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
    since(mv, 6)?;
    let o = object(&body)?;
    only_keys(&o, &["traits", "resource_provider_generation"])?;
    let g = generation(&o)?;
    let traits = string_set(required(&o, "traits")?, "traits")?;
    let rp = p.write(|t| service::set_provider_traits(t, &id, g, traits)).await?;
    Ok(Json(traits_json(&rp)).into_response())
}

async fn delete_traits(State(p): State<Ctx>, mv: Mv, Path(id): Path<String>) -> ApiResult {
    since(mv, 6)?;
    p.write(|t| {
        let g = service::provider(&t.m, &id)?.generation;
        service::set_provider_traits(t, &id, g, BTreeSet::new())
    })
    .await?;
    Ok(no_content())
}

fn string_set(v: &Value, key: &str) -> ApiResult<BTreeSet<String>> {
    let arr = v.as_array().ok_or_else(|| bad(format!("JSON does not validate: {v} is not of type 'array' ({key})")))?;
    let mut out = BTreeSet::new();
    for item in arr {
        if !out.insert(string(item, key)?.to_string()) {
            return Err(bad(format!("JSON does not validate: {v} has non-unique elements ({key})")));
        }
    }
    Ok(out)
}

fn aggregates_json(rp: &Provider, mv: Mv) -> Value {
    let mut v = json!({"aggregates": rp.aggregates});
    if mv.at_least(19) {
        v["resource_provider_generation"] = json!(rp.generation);
    }
    v
}

async fn list_aggregates(State(p): State<Ctx>, mv: Mv, Path(id): Path<String>) -> ApiResult {
    since(mv, 1)?;
    let m = p.model();
    Ok(Json(aggregates_json(service::provider(&m, &id)?, mv)).into_response())
}

async fn put_aggregates(State(p): State<Ctx>, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
    since(mv, 1)?;
    let v: Value = haneul_core::http::parse_json(&body)?;
    let (list, g) = if mv.at_least(19) {
        let o = v.as_object().ok_or_else(|| bad("JSON does not validate: the body must be an object."))?;
        only_keys(o, &["aggregates", "resource_provider_generation"])?;
        (required(o, "aggregates")?.clone(), Some(generation(o)?))
    } else {
        (v, None)
    };
    let set = string_set(&list, "aggregates")?;
    let set = set.iter().map(|u| uuid(u, "aggregates")).collect::<ApiResult<BTreeSet<String>>>()?;
    let rp = p.write(|t| service::set_provider_aggregates(t, &id, g, set)).await?;
    Ok(Json(aggregates_json(&rp, mv)).into_response())
}

async fn usages(State(p): State<Ctx>, Path(id): Path<String>) -> ApiResult {
    let m = p.model();
    let rp = service::provider(&m, &id)?;
    let used = m.provider_usage(&id);
    let usages: Map<String, Value> =
        rp.inventories.keys().map(|rc| (rc.clone(), json!(used.get(rc).copied().unwrap_or(0)))).collect();
    Ok(Json(json!({"usages": usages, "resource_provider_generation": rp.generation})).into_response())
}

async fn provider_allocations(State(p): State<Ctx>, mv: Mv, Path(id): Path<String>) -> ApiResult {
    let m = p.model();
    let rp = service::provider(&m, &id)?;
    let allocations: Map<String, Value> = m
        .consumers
        .values()
        .filter_map(|c| {
            let res = c.allocations.get(&id)?;
            let mut v = json!({"resources": res});
            if mv.at_least(28) {
                v["consumer_generation"] = json!(c.generation);
            }
            Some((c.id.clone(), v))
        })
        .collect();
    Ok(Json(json!({"allocations": allocations, "resource_provider_generation": rp.generation})).into_response())
}
