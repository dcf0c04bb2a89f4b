//! Allocations of consumers, usages, allocation candidates and the reshaper.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Map, Value};

use super::providers::{parse_member_of, parse_required, parse_resources};
use super::{
    bad, generation, int, no_content, object, only_keys, only_params, param, required, since, string, uuid, ApiResult,
    Ctx, Mv, Pairs,
};
use crate::candidates::{self, GroupPolicy, Query as CandidateQuery};
use crate::model::Model;
use crate::service::{self, ConsumerAllocations};

/// Project and user of consumers written before microversion 1.8 (placement's
/// `incomplete_consumer_project_id`/`user_id`).
const INCOMPLETE: &str = "00000000-0000-0000-0000-000000000000";

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .post("/allocations", rule("placement:allocations:manage"), post_allocations)
        .get("/allocations/{consumer}", rule("placement:allocations:list"), show)
        .put("/allocations/{consumer}", rule("placement:allocations:update"), put)
        .delete("/allocations/{consumer}", rule("placement:allocations:delete"), delete)
        .get("/usages", rule("placement:usages"), usages)
        .get("/allocation_candidates", rule("placement:allocation_candidates:list"), allocation_candidates)
        .post("/reshaper", rule("placement:reshaper:reshape"), reshape)
}

async fn show(State(p): State<Ctx>, mv: Mv, Path(consumer): Path<String>) -> ApiResult {
    let m = p.model();
    let Some(c) = m.consumers.get(&consumer) else {
        return Ok(Json(json!({"allocations": {}})).into_response());
    };
    let allocations: Map<String, Value> = c
        .allocations
        .iter()
        .map(|(rp, res)| {
            let g = m.providers.get(rp).map_or(0, |p| p.generation);
            (rp.clone(), json!({"generation": g, "resources": res}))
        })
        .collect();
    let mut v = json!({"allocations": allocations});
    if mv.at_least(12) {
        v["project_id"] = json!(c.project_id);
        v["user_id"] = json!(c.user_id);
    }
    if mv.at_least(28) {
        v["consumer_generation"] = json!(c.generation);
    }
    if mv.at_least(38) {
        v["consumer_type"] = json!(c.consumer_type);
    }
    Ok(Json(v).into_response())
}

/// The resources of one provider in an allocation: class → positive amount.
fn resources(v: &Value) -> ApiResult<BTreeMap<String, i64>> {
    let o = v.as_object().ok_or_else(|| bad("JSON does not validate: 'resources' must be an object"))?;
    if o.is_empty() {
        return Err(bad("JSON does not validate: {} does not have enough properties (resources)"));
    }
    let mut out = BTreeMap::new();
    for (rc, n) in o {
        let n = int(n, rc)?;
        if n < 1 {
            return Err(bad(format!("JSON does not validate: {n} is less than the minimum of 1 ({rc})")));
        }
        out.insert(rc.clone(), n);
    }
    Ok(out)
}

/// One consumer's allocation document (the body of `PUT /allocations/{c}`, or one member
/// of `POST /allocations` and of the reshaper's `allocations`).
fn consumer_allocations(
    consumer: &str,
    o: &Map<String, Value>,
    mv: Mv,
    may_be_empty: bool,
) -> ApiResult<ConsumerAllocations> {
    let mut allowed = vec!["allocations"];
    if mv.at_least(8) {
        allowed.extend(["project_id", "user_id"]);
    }
    if mv.at_least(28) {
        allowed.push("consumer_generation");
    }
    if mv.at_least(38) {
        allowed.push("consumer_type");
    }
    only_keys(o, &allowed)?;
    let mut allocations = BTreeMap::new();
    match required(o, "allocations")? {
        Value::Array(items) if !mv.at_least(12) => {
            if items.is_empty() {
                return Err(bad("JSON does not validate: [] is too short (allocations)"));
            }
            for item in items {
                let item =
                    item.as_object().ok_or_else(|| bad("JSON does not validate: an allocation must be an object"))?;
                only_keys(item, &["resource_provider", "resources"])?;
                let rp = required(item, "resource_provider")?
                    .get("uuid")
                    .ok_or_else(|| bad("JSON does not validate: 'uuid' is a required property (resource_provider)"))?;
                let rp = uuid(string(rp, "uuid")?, "resource_provider uuid")?;
                allocations.insert(rp, resources(required(item, "resources")?)?);
            }
        }
        Value::Object(by_rp) if mv.at_least(12) => {
            if by_rp.is_empty() && !may_be_empty {
                return Err(bad("JSON does not validate: {} does not have enough properties (allocations)"));
            }
            for (rp, a) in by_rp {
                let a = a.as_object().ok_or_else(|| bad("JSON does not validate: an allocation must be an object"))?;
                only_keys(a, &["resources", "generation"])?;
                allocations.insert(uuid(rp, "resource provider uuid")?, resources(required(a, "resources")?)?);
            }
        }
        other => {
            return Err(bad(format!(
                "JSON does not validate: {other} is not a valid 'allocations' value for this microversion"
            )))
        }
    }
    let text = |key: &str| -> ApiResult<String> {
        let s = string(required(o, key)?, key)?;
        if s.is_empty() || s.len() > 255 {
            return Err(bad(format!("JSON does not validate: '{s}' is not a valid {key}")));
        }
        Ok(s.to_string())
    };
    let (project_id, user_id) =
        if mv.at_least(8) { (text("project_id")?, text("user_id")?) } else { (INCOMPLETE.into(), INCOMPLETE.into()) };
    let generation = if mv.at_least(28) {
        Some(match required(o, "consumer_generation")? {
            Value::Null => None,
            v => Some(int(v, "consumer_generation")?),
        })
    } else {
        None
    };
    let consumer_type = if mv.at_least(38) {
        let t = text("consumer_type")?;
        if !t.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
            return Err(bad(format!("JSON does not validate: '{t}' does not match '^[A-Z0-9_]+$' (consumer_type)")));
        }
        Some(t)
    } else {
        None
    };
    Ok(ConsumerAllocations {
        consumer: consumer.to_string(),
        project_id,
        user_id,
        generation,
        consumer_type,
        allocations,
    })
}

async fn put(State(p): State<Ctx>, mv: Mv, Path(consumer): Path<String>, body: Bytes) -> ApiResult {
    let consumer = uuid(&consumer, "consumer uuid")?;
    let o = object(&body)?;
    let request = consumer_allocations(&consumer, &o, mv, mv.at_least(28))?;
    p.write(|t| service::set_allocations(t, vec![request])).await?;
    Ok(no_content())
}

async fn post_allocations(State(p): State<Ctx>, mv: Mv, body: Bytes) -> ApiResult {
    if !mv.at_least(13) {
        return Err(haneul_core::error::ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "The method POST is not supported for this resource.",
        ));
    }
    let o = object(&body)?;
    if o.is_empty() {
        return Err(bad("JSON does not validate: {} does not have enough properties"));
    }
    let mut requests = Vec::new();
    for (consumer, doc) in &o {
        let consumer = uuid(consumer, "consumer uuid")?;
        let doc = doc
            .as_object()
            .ok_or_else(|| bad("JSON does not validate: each consumer's allocations must be an object"))?;
        requests.push(consumer_allocations(&consumer, doc, mv, true)?);
    }
    p.write(|t| service::set_allocations(t, requests)).await?;
    Ok(no_content())
}

async fn delete(State(p): State<Ctx>, Path(consumer): Path<String>) -> ApiResult {
    p.write(|t| service::delete_allocations(t, &consumer)).await?;
    Ok(no_content())
}

async fn usages(State(p): State<Ctx>, mv: Mv, Query(q): Query<Pairs>) -> ApiResult {
    since(mv, 9)?;
    let mut allowed = vec!["project_id", "user_id"];
    if mv.at_least(38) {
        allowed.push("consumer_type");
    }
    only_params(&q, &allowed)?;
    let project = param(&q, "project_id")
        .ok_or_else(|| bad("Invalid query string parameters: 'project_id' is a required property"))?;
    let user = param(&q, "user_id");
    let ctype = param(&q, "consumer_type");
    let m = p.model();
    let consumers = m.consumers.values().filter(|c| c.project_id == project && user.is_none_or(|u| c.user_id == u));
    if !mv.at_least(38) {
        let mut total: BTreeMap<&str, i64> = BTreeMap::new();
        for c in consumers {
            for res in c.allocations.values() {
                for (rc, n) in res {
                    *total.entry(rc).or_default() += n;
                }
            }
        }
        return Ok(Json(json!({"usages": total})).into_response());
    }
    // 1.38: grouped by consumer type, with consumer counts; `all` sums every type.
    let mut by_type: BTreeMap<String, (i64, BTreeMap<String, i64>)> = BTreeMap::new();
    for c in consumers {
        let types: Vec<String> = match ctype {
            Some("all") | None => vec![c.consumer_type.clone()],
            Some("unknown") if c.consumer_type == "unknown" => vec!["unknown".into()],
            Some(t) if t == c.consumer_type => vec![t.to_string()],
            Some(_) => continue,
        };
        for t in types {
            let e = by_type.entry(t).or_default();
            e.0 += 1;
            for res in c.allocations.values() {
                for (rc, n) in res {
                    *e.1.entry(rc.clone()).or_default() += n;
                }
            }
        }
    }
    if ctype == Some("all") {
        let mut all = (0i64, BTreeMap::<String, i64>::new());
        for (count, res) in by_type.values() {
            all.0 += count;
            for (rc, n) in res {
                *all.1.entry(rc.clone()).or_default() += n;
            }
        }
        by_type = [("all".to_string(), all)].into();
    }
    let usages: Map<String, Value> = by_type
        .into_iter()
        .map(|(t, (count, res))| {
            let mut v = json!(res);
            v["consumer_count"] = json!(count);
            (t, v)
        })
        .collect();
    Ok(Json(json!({"usages": usages})).into_response())
}

// ---------------------------------------------------------------------------------------------
// Allocation candidates

/// Splits `resources1` into (`resources`, `1`) for the group parameters of `mv`.
fn group_key<'a>(key: &'a str, mv: Mv) -> ApiResult<Option<(&'a str, &'a str)>> {
    for base in ["resources", "required", "member_of", "in_tree"] {
        if let Some(suffix) = key.strip_prefix(base) {
            if suffix.is_empty() {
                return Ok(Some((base, "")));
            }
            let ok = if mv.at_least(33) {
                let s = suffix.strip_prefix('_').unwrap_or(suffix);
                !s.is_empty()
                    && suffix.len() <= 64
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            } else {
                mv.at_least(25) && suffix.bytes().all(|b| b.is_ascii_digit())
            };
            if !ok {
                return Err(bad(format!(
                    "Invalid query string parameters: Additional properties are not allowed ('{key}' was unexpected)"
                )));
            }
            return Ok(Some((base, suffix)));
        }
    }
    Ok(None)
}

pub fn parse_query(m: &Model, q: &Pairs, mv: Mv) -> ApiResult<CandidateQuery> {
    let mut groups: BTreeMap<String, candidates::Group> = BTreeMap::new();
    let mut query = CandidateQuery::default();
    let mut seen_keys = BTreeSet::new();
    for (k, v) in q {
        if let Some((base, suffix)) = group_key(k, mv)? {
            let allowed_unsuffixed = match base {
                "resources" => true,
                "required" => mv.at_least(17),
                "member_of" => mv.at_least(21),
                "in_tree" => mv.at_least(31),
                _ => false,
            };
            if !allowed_unsuffixed {
                return Err(bad(format!(
                    "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
                )));
            }
            let g = groups
                .entry(suffix.to_string())
                .or_insert_with(|| candidates::Group { suffix: suffix.to_string(), ..Default::default() });
            match base {
                "resources" => {
                    if !seen_keys.insert(k.clone()) {
                        return Err(bad(format!("Invalid query string parameters: {k} given more than once")));
                    }
                    g.resources = parse_resources(m, v, k)?;
                }
                "required" => parse_required(m, &[v.as_str()], mv, &mut g.required, &mut g.forbidden)?,
                "member_of" => parse_member_of(&[v.as_str()], mv, &mut g.member_of, &mut g.forbidden_aggregates)?,
                _ => g.in_tree = Some(uuid(v, k)?),
            }
            continue;
        }
        match k.as_str() {
            "limit" if mv.at_least(16) => {
                let n: usize = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    bad(format!("Invalid query string parameters: '{v}' is not a positive integer (limit)"))
                })?;
                query.limit = Some(n);
            }
            "group_policy" if mv.at_least(25) => {
                query.group_policy = Some(match v.as_str() {
                    "none" => GroupPolicy::None,
                    "isolate" => GroupPolicy::Isolate,
                    _ => {
                        return Err(bad(format!(
                            "Invalid query string parameters: '{v}' is not one of ['none', 'isolate']"
                        )))
                    }
                });
            }
            "root_required" if mv.at_least(35) => {
                if !seen_keys.insert(k.clone()) {
                    return Err(bad("Query parameter 'root_required' may be specified only once.")
                        .with_kind(crate::service::code::DUPLICATE_KEY));
                }
                parse_required(m, &[v.as_str()], mv, &mut query.root_required, &mut query.root_forbidden)?;
            }
            "same_subtree" if mv.at_least(36) => {
                query.same_subtree.push(v.split(',').map(|s| s.trim().to_string()).collect());
            }
            _ => {
                return Err(bad(format!(
                    "Invalid query string parameters: Additional properties are not allowed ('{k}' was unexpected)"
                )))
            }
        }
    }
    if groups.values().all(|g| g.resources.is_empty()) {
        return Err(if mv.at_least(36) {
            bad("There must be at least one resources or resources[$S] parameter.")
                .with_kind("placement.query.missing_value")
        } else {
            bad("At least one request group (`resources` or `resources{$S}`) is required.")
        });
    }
    let in_same_subtree: BTreeSet<&String> = query.same_subtree.iter().flatten().collect();
    for g in groups.values().filter(|g| g.resources.is_empty()) {
        if !mv.at_least(36) {
            return Err(bad(format!(
                "All traits parameters must be associated with resources.  Found the following orphaned traits keys: required{}",
                g.suffix
            )));
        }
        if !in_same_subtree.contains(&g.suffix) {
            return Err(bad(format!(
                "Resourceless suffixed group request should be specified in `same_subtree` query param: bad group(s) - ['{}'].",
                g.suffix
            ))
            .with_kind(crate::service::code::BAD_VALUE));
        }
    }
    let suffixed = groups.keys().filter(|s| !s.is_empty()).count();
    if suffixed > 1 && query.group_policy.is_none() {
        return Err(bad(
            "The \"group_policy\" parameter is required when specifying more than one \"resources{N}\" parameter.",
        ));
    }
    for s in query.same_subtree.iter().flatten() {
        if s.is_empty() {
            return Err(bad("Empty string (unsuffixed group) can not be specified in `same_subtree` ")
                .with_kind(crate::service::code::BAD_VALUE));
        }
        if !groups.contains_key(s) {
            return Err(bad(format!(
                "Real suffixes should be specified in `same_subtree`: ['{s}'] not found in the request groups."
            ))
            .with_kind(crate::service::code::BAD_VALUE));
        }
    }
    query.groups = groups.into_values().collect();
    Ok(query)
}

async fn allocation_candidates(State(p): State<Ctx>, mv: Mv, Query(q): Query<Pairs>) -> ApiResult {
    since(mv, 10)?;
    let m = p.model();
    let query = parse_query(&m, &q, mv)?;
    let mut found = candidates::candidates(&m, &query);
    if !mv.at_least(29) {
        // Before nested providers, a candidate is one provider.
        found.retain(|c| c.allocations.len() == 1);
    }
    let requests: Vec<Value> = found
        .iter()
        .map(|c| {
            let allocations = if mv.at_least(12) {
                let o: Map<String, Value> =
                    c.allocations.iter().map(|(rp, res)| (rp.clone(), json!({"resources": res}))).collect();
                Value::Object(o)
            } else {
                c.allocations
                    .iter()
                    .map(|(rp, res)| json!({"resource_provider": {"uuid": rp}, "resources": res}))
                    .collect()
            };
            let mut v = json!({"allocations": allocations});
            if mv.at_least(34) {
                v["mappings"] = json!(c.mappings);
            }
            v
        })
        .collect();
    // Summaries: the providers of the candidates (whole trees from 1.29), with every class
    // they have from 1.27, else only the requested ones.
    let requested: BTreeSet<&String> = query.groups.iter().flat_map(|g| g.resources.keys()).collect();
    let mut providers: BTreeSet<&str> = BTreeSet::new();
    for c in &found {
        if mv.at_least(29) {
            providers.extend(m.tree(&c.root).map(|p| p.id.as_str()));
        } else {
            providers.extend(c.allocations.keys().map(String::as_str));
        }
    }
    let usages = m.usages();
    let mut summaries = Map::new();
    for id in providers {
        let rp = &m.providers[id];
        let used = usages.get(id);
        let res: Map<String, Value> = rp
            .inventories
            .iter()
            .filter(|(rc, _)| mv.at_least(27) || requested.contains(rc))
            .map(|(rc, inv)| {
                let u = used.and_then(|u| u.get(rc.as_str())).copied().unwrap_or(0);
                (rc.clone(), json!({"capacity": inv.capacity(), "used": u}))
            })
            .collect();
        let mut s = json!({"resources": res});
        if mv.at_least(17) {
            s["traits"] = json!(rp.traits);
        }
        if mv.at_least(29) {
            s["parent_provider_uuid"] = json!(rp.parent);
            s["root_provider_uuid"] = json!(rp.root);
        }
        summaries.insert(id.to_string(), s);
    }
    Ok(Json(json!({"allocation_requests": requests, "provider_summaries": summaries})).into_response())
}

// ---------------------------------------------------------------------------------------------
// Reshaper

async fn reshape(State(p): State<Ctx>, mv: Mv, body: Bytes) -> ApiResult<Response> {
    since(mv, 30)?;
    let o = object(&body)?;
    only_keys(&o, &["inventories", "allocations"])?;
    let inv = required(&o, "inventories")?
        .as_object()
        .ok_or_else(|| bad("JSON does not validate: 'inventories' must be an object"))?;
    let mut inventories = Vec::new();
    for (rp, doc) in inv {
        let rp = uuid(rp, "resource provider uuid")?;
        let doc = doc
            .as_object()
            .ok_or_else(|| bad("JSON does not validate: inventories of a provider must be an object"))?;
        only_keys(doc, &["inventories", "resource_provider_generation"])?;
        let g = generation(doc)?;
        let by_rc = required(doc, "inventories")?
            .as_object()
            .ok_or_else(|| bad("JSON does not validate: 'inventories' must be an object"))?;
        let mut new = BTreeMap::new();
        for (rc, v) in by_rc {
            new.insert(rc.clone(), super::providers::inventory_in(&rp, rc, v, mv)?);
        }
        inventories.push((rp, g, new));
    }
    let allocs = required(&o, "allocations")?
        .as_object()
        .ok_or_else(|| bad("JSON does not validate: 'allocations' must be an object"))?;
    let mut requests = Vec::new();
    for (consumer, doc) in allocs {
        let consumer = uuid(consumer, "consumer uuid")?;
        let doc = doc
            .as_object()
            .ok_or_else(|| bad("JSON does not validate: each consumer's allocations must be an object"))?;
        requests.push(consumer_allocations(&consumer, doc, mv, true)?);
    }
    p.write(|t| service::reshape(t, inventories, requests)).await?;
    Ok(no_content())
}
