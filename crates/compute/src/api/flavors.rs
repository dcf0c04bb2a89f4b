//! Flavors, their extra specs and their access lists (`/flavors`, `os-extra_specs`,
//! `os-flavor-access`), across microversions 2.1–2.100 (2.55 descriptions, 2.61 extra specs
//! in the flavor, 2.75 `swap` as 0).

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, Access, Routes};
use serde_json::{json, Map, Value};

use super::{accepted, body_member, enforce, is_admin, links, ApiResult, Ctx, Mv};
use crate::model::{Flavor, FlavorAccess, Model};
use crate::service::{Compute, Error};

/// Nova asks no rule to list or show flavors: every user picks one to boot with (which ones
/// a project sees is the flavor's access list).
const FLAVORS_READ: Access = Access::Token("flavors are read by every user");

pub fn routes() -> Routes<Ctx> {
    const ACTIONS: &[(&str, &str)] = &[
        ("addTenantAccess", "os_compute_api:os-flavor-access:add_tenant_access"),
        ("removeTenantAccess", "os_compute_api:os-flavor-access:remove_tenant_access"),
    ];
    Routes::new()
        .get("/flavors", FLAVORS_READ, list)
        .post("/flavors", rule("os_compute_api:os-flavor-manage:create"), create)
        .get("/flavors/detail", FLAVORS_READ, list_detail)
        .get("/flavors/{id}", FLAVORS_READ, show)
        .put("/flavors/{id}", rule("os_compute_api:os-flavor-manage:update"), update)
        .delete("/flavors/{id}", rule("os_compute_api:os-flavor-manage:delete"), delete)
        .post("/flavors/{id}/action", Access::Actions(ACTIONS), action)
        .get("/flavors/{id}/os-flavor-access", rule("os_compute_api:os-flavor-access"), list_access)
        .get("/flavors/{id}/os-extra_specs", rule("os_compute_api:os-flavor-extra-specs:index"), list_specs)
        .post("/flavors/{id}/os-extra_specs", rule("os_compute_api:os-flavor-extra-specs:create"), create_specs)
        .get("/flavors/{id}/os-extra_specs/{key}", rule("os_compute_api:os-flavor-extra-specs:show"), show_spec)
        .put("/flavors/{id}/os-extra_specs/{key}", rule("os_compute_api:os-flavor-extra-specs:update"), update_spec)
        .delete("/flavors/{id}/os-extra_specs/{key}", rule("os_compute_api:os-flavor-extra-specs:delete"), delete_spec)
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Flavor {id} could not be found."))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// Whether the caller may use (and see) the flavor.
fn can_see(m: &Model, ctx: &AuthContext, f: &Flavor) -> bool {
    f.is_public
        || is_admin(ctx)
        || ctx.project_id().is_some_and(|p| m.flavor_access.contains_key(&FlavorAccess::key(&f.id, p)))
}

fn find<'m>(m: &'m Model, ctx: &AuthContext, id: &str) -> ApiResult<&'m Flavor> {
    m.flavors.get(id).map(|f| &**f).filter(|f| can_see(m, ctx, f)).ok_or_else(|| not_found(id))
}

fn specs_visible(c: &Compute, ctx: &AuthContext) -> bool {
    enforce(c, ctx, "os_compute_api:os-flavor-extra-specs:index", &json!({"project_id": ctx.project_id()})).is_ok()
}

fn render_summary(c: &Compute, mv: Mv, f: &Flavor) -> Value {
    let mut v = json!({"id": f.id, "name": f.name, "links": links(c, &format!("flavors/{}", f.id))});
    if mv.at_least(55) {
        v["description"] = json!(f.description);
    }
    v
}

pub fn render(c: &Compute, mv: Mv, f: &Flavor, with_specs: bool) -> Value {
    let swap = if f.swap == 0 && !mv.at_least(75) { json!("") } else { json!(f.swap) };
    let mut v = json!({
        "id": f.id,
        "name": f.name,
        "ram": f.ram,
        "vcpus": f.vcpus,
        "disk": f.disk,
        "swap": swap,
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral,
        "OS-FLV-DISABLED:disabled": f.disabled,
        "os-flavor-access:is_public": f.is_public,
        "rxtx_factor": f.rxtx_factor,
        "links": links(c, &format!("flavors/{}", f.id)),
    });
    if mv.at_least(55) {
        v["description"] = json!(f.description);
    }
    if mv.at_least(61) && with_specs {
        v["extra_specs"] = json!(f.extra_specs);
    }
    v
}

// --------------------------------------------------------------------------- list

const SORT_KEYS: &[&str] = &[
    "created_at",
    "description",
    "disabled",
    "ephemeral_gb",
    "flavorid",
    "id",
    "is_public",
    "memory_mb",
    "name",
    "root_gb",
    "rxtx_factor",
    "swap",
    "updated_at",
    "vcpus",
];

fn sort_cmp(key: &str, a: &Flavor, b: &Flavor) -> std::cmp::Ordering {
    match key {
        "name" => a.name.cmp(&b.name),
        "memory_mb" => a.ram.cmp(&b.ram),
        "vcpus" => a.vcpus.cmp(&b.vcpus),
        "root_gb" => a.disk.cmp(&b.disk),
        "ephemeral_gb" => a.ephemeral.cmp(&b.ephemeral),
        "swap" => a.swap.cmp(&b.swap),
        "rxtx_factor" => a.rxtx_factor.total_cmp(&b.rxtx_factor),
        "is_public" => a.is_public.cmp(&b.is_public),
        "disabled" => a.disabled.cmp(&b.disabled),
        "description" => a.description.cmp(&b.description),
        "created_at" | "updated_at" | "id" => a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)),
        _ => a.id.cmp(&b.id),
    }
}

fn listed(c: &Compute, ctx: &AuthContext, q: &HashMap<String, String>) -> ApiResult<(Vec<Flavor>, Option<String>)> {
    let m = c.model();
    let admin = is_admin(ctx);
    // Nova: public flavors by default; an admin may ask for private ones or all ("none").
    let public = match q.get("is_public").map(|v| v.to_ascii_lowercase()) {
        None => Some(true),
        Some(v) if v == "none" => None,
        Some(v) if ["true", "t", "1", "yes", "y", "on"].contains(&v.as_str()) => Some(true),
        Some(v) if ["false", "f", "0", "no", "n", "off"].contains(&v.as_str()) => Some(false),
        Some(v) => return Err(bad(format!("Invalid is_public filter [{v}]"))),
    };
    let min = |k: &str| -> ApiResult<Option<i64>> {
        q.get(k).map(|v| v.parse::<i64>().map_err(|_| bad(format!("Invalid {k} filter [{v}]")))).transpose()
    };
    let (min_ram, min_disk) = (min("minRam")?, min("minDisk")?);
    let sort_key = q.get("sort_key").map(String::as_str).unwrap_or("flavorid");
    if !SORT_KEYS.contains(&sort_key) {
        return Err(bad(format!("Invalid input received: Invalid sort_key {sort_key}")));
    }
    let desc = match q.get("sort_dir").map(String::as_str) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(d) => return Err(bad(format!("Invalid input received: Invalid sort_dir {d}"))),
    };
    let limit = q
        .get("limit")
        .map(|v| v.parse::<usize>().map_err(|_| bad(format!("limit param must be an integer: {v}"))))
        .transpose()?;
    let mut out: Vec<Flavor> = m
        .flavors
        .values()
        .filter(|f| {
            // As Nova's database filter: public ones plus those shared with the caller's
            // project; an admin may ask for private ones only, or for all (`none`).
            let visible = match if admin { public } else { Some(true) } {
                None => true,
                Some(true) => {
                    f.is_public
                        || ctx.project_id().is_some_and(|p| m.flavor_access.contains_key(&FlavorAccess::key(&f.id, p)))
                }
                Some(false) => !f.is_public,
            };
            visible && min_ram.is_none_or(|r| f.ram >= r) && min_disk.is_none_or(|d| f.disk >= d)
        })
        .map(|f| (**f).clone())
        .collect();
    out.sort_by(|a, b| {
        let o = sort_cmp(sort_key, a, b).then_with(|| a.id.cmp(&b.id));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    if let Some(marker) = q.get("marker") {
        let pos =
            out.iter().position(|f| &f.id == marker).ok_or_else(|| bad(format!("marker [{marker}] not found")))?;
        out.drain(..=pos);
    }
    let mut next = None;
    if let Some(limit) = limit {
        if out.len() > limit {
            out.truncate(limit);
        }
        if out.len() == limit && limit > 0 {
            next = out.last().map(|f| f.id.clone());
        }
    }
    Ok((out, next))
}

fn list_body(c: &Compute, key: Vec<Value>, next: Option<String>, q: &HashMap<String, String>, path: &str) -> Response {
    let mut body = json!({"flavors": key});
    if let Some(marker) = next {
        let mut params: Vec<String> =
            q.iter().filter(|(k, _)| *k != "marker").map(|(k, v)| format!("{k}={v}")).collect();
        params.sort();
        params.push(format!("marker={marker}"));
        body["flavors_links"] =
            json!([{"rel": "next", "href": format!("{}/v2.1/{path}?{}", c.settings.public_url, params.join("&"))}]);
    }
    Json(body).into_response()
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let (flavors, next) = listed(&c, &ctx, &q)?;
    let items = flavors.iter().map(|f| render_summary(&c, mv, f)).collect();
    Ok(list_body(&c, items, next, &q, "flavors"))
}

async fn list_detail(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let (flavors, next) = listed(&c, &ctx, &q)?;
    let specs = specs_visible(&c, &ctx);
    let items = flavors.iter().map(|f| render(&c, mv, f, specs)).collect();
    Ok(list_body(&c, items, next, &q, "flavors/detail"))
}

async fn show(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(id): Path<String>) -> ApiResult {
    let m = c.model();
    let f = find(&m, &ctx, &id)?;
    Ok(Json(json!({"flavor": render(&c, mv, f, specs_visible(&c, &ctx))})).into_response())
}

// --------------------------------------------------------------------------- create, update, delete

/// A non-negative (or positive) integer, also given as a string of digits, as Nova accepts.
fn int_field(o: &Map<String, Value>, key: &str, min: i64, default: Option<i64>) -> ApiResult<i64> {
    let invalid =
        || bad(format!("Invalid input for field/attribute {key}. Value: {}.", o.get(key).unwrap_or(&Value::Null)));
    match o.get(key) {
        None | Some(Value::Null) if default.is_some() => Ok(default.unwrap_or(0)),
        None => Err(bad(format!("Invalid input for field/attribute flavor. Value: '{key}' is a required property"))),
        Some(Value::Number(n)) => {
            let v = n.as_i64().filter(|_| !n.is_f64()).ok_or_else(invalid)?;
            if v < min || v > i32::MAX as i64 {
                return Err(invalid());
            }
            Ok(v)
        }
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            let v: i64 = s.parse().map_err(|_| invalid())?;
            if v < min || v > i32::MAX as i64 {
                return Err(invalid());
            }
            Ok(v)
        }
        Some(_) => Err(invalid()),
    }
}

fn valid_flavor_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && !id.starts_with(' ')
        && !id.ends_with(' ')
        && id.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | ' ' | '_' | '-'))
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, body: Bytes) -> ApiResult {
    let o = body_member(&body, "flavor")?;
    let allowed = [
        "name",
        "ram",
        "vcpus",
        "disk",
        "id",
        "OS-FLV-EXT-DATA:ephemeral",
        "swap",
        "rxtx_factor",
        "os-flavor-access:is_public",
        "description",
    ];
    for k in o.keys() {
        if !allowed.contains(&k.as_str()) || (k == "description" && !mv.at_least(55)) {
            return Err(bad(format!("Invalid input for field/attribute flavor. Value: Additional properties are not allowed ('{k}' was unexpected)")));
        }
    }
    let name = match o.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 255 => s.trim().to_string(),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute name. Value: {v}."))),
        None => return Err(bad("Invalid input for field/attribute flavor. Value: 'name' is a required property")),
    };
    let id = match o.get("id") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(s)) if s == "auto" => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(s)) if valid_flavor_id(s) => s.clone(),
        // Nova takes numbers too and stores them as strings.
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute id. Value: {v}."))),
    };
    let rxtx_factor = match o.get("rxtx_factor") {
        None => 1.0,
        Some(v) => v
            .as_f64()
            .filter(|f| *f > 0.0 && f.is_finite())
            .ok_or_else(|| bad(format!("Invalid input for field/attribute rxtx_factor. Value: {v}.")))?,
    };
    let is_public = match o.get("os-flavor-access:is_public") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if ["true", "false"].contains(&s.to_ascii_lowercase().as_str()) => {
            s.eq_ignore_ascii_case("true")
        }
        Some(v) => {
            return Err(bad(format!("Invalid input for field/attribute os-flavor-access:is_public. Value: {v}.")))
        }
    };
    let description = match o.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 65535 => Some(s.clone()),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute description. Value: {v}."))),
    };
    let flavor = Flavor {
        id,
        name,
        ram: int_field(&o, "ram", 1, None)?,
        vcpus: int_field(&o, "vcpus", 1, None)?,
        disk: int_field(&o, "disk", 0, None)?,
        ephemeral: int_field(&o, "OS-FLV-EXT-DATA:ephemeral", 0, Some(0))?,
        swap: int_field(&o, "swap", 0, Some(0))?,
        rxtx_factor,
        is_public,
        disabled: false,
        description,
        extra_specs: BTreeMap::new(),
        created_at: Utc::now(),
    };
    let saved = c
        .write(|t| {
            if t.m.flavors.contains_key(&flavor.id) {
                return Err(Error::Conflict(format!("Flavor with ID {} already exists.", flavor.id)));
            }
            if t.m.flavors.values().any(|f| f.name == flavor.name) {
                return Err(Error::Conflict(format!("Flavor with name {} already exists.", flavor.name)));
            }
            Ok(t.put(flavor)?)
        })
        .await?;
    Ok(Json(json!({"flavor": render(&c, mv, &saved, specs_visible(&c, &ctx))})).into_response())
}

async fn update(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Path(id): Path<String>, body: Bytes) -> ApiResult {
    if !mv.at_least(55) {
        return Err(ApiError::not_found("The resource could not be found."));
    }
    let o = body_member(&body, "flavor")?;
    if o.keys().any(|k| k != "description") || !o.contains_key("description") {
        return Err(bad(
            "Invalid input for field/attribute flavor. Value: only 'description' can be updated, and it is required.",
        ));
    }
    let description = match &o["description"] {
        Value::Null => None,
        Value::String(s) if s.chars().count() <= 65535 => Some(s.clone()),
        v => return Err(bad(format!("Invalid input for field/attribute description. Value: {v}."))),
    };
    let saved = c
        .write(|t| {
            let mut f =
                t.m.flavors
                    .get(&id)
                    .map(|f| (**f).clone())
                    .ok_or_else(|| Error::NotFound(format!("Flavor {id} could not be found.")))?;
            f.description = description;
            Ok(t.put(f)?)
        })
        .await?;
    Ok(Json(json!({"flavor": render(&c, mv, &saved, specs_visible(&c, &ctx))})).into_response())
}

async fn delete(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult {
    c.write(|t| {
        t.delete::<Flavor>(&id).ok_or_else(|| Error::NotFound(format!("Flavor {id} could not be found.")))?;
        t.delete_where::<FlavorAccess>(|a| a.flavor_id == id);
        Ok(())
    })
    .await?;
    Ok(accepted())
}

// --------------------------------------------------------------------------- access

fn access_list(m: &Model, id: &str) -> Value {
    let items: Vec<Value> =
        m.access_of(id).map(|a| json!({"flavor_id": a.flavor_id, "tenant_id": a.project_id})).collect();
    json!({"flavor_access": items})
}

async fn list_access(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult {
    let m = c.model();
    let f = m.flavors.get(&id).ok_or_else(|| not_found(&id))?;
    if f.is_public {
        return Err(ApiError::not_found("Access list not available for public flavors."));
    }
    Ok(Json(access_list(&m, &id)).into_response())
}

async fn action(State(c): State<Ctx>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let v: Value = haneul_core::http::parse_json(&body)?;
    let (add, inner) = match (v.get("addTenantAccess"), v.get("removeTenantAccess")) {
        (Some(i), None) => (true, i),
        (None, Some(i)) => (false, i),
        _ => return Err(bad("There is no such action, or more than one was given.")),
    };
    let tenant = match inner.get("tenant") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => s.clone(),
        _ => return Err(bad("Invalid input for field/attribute tenant. Value: 'tenant' is a required string.")),
    };
    c.write(|t| {
        let f =
            t.m.flavors.get(&id).cloned().ok_or_else(|| Error::NotFound(format!("Flavor {id} could not be found.")))?;
        let key = FlavorAccess::key(&id, &tenant);
        if add {
            if f.is_public {
                return Err(Error::Conflict("Can not add access to a public flavor.".into()));
            }
            if t.m.flavor_access.contains_key(&key) {
                return Err(Error::Conflict(format!(
                    "Flavor access already exists for flavor {id} and project {tenant} combination."
                )));
            }
            t.put(FlavorAccess { id: key, flavor_id: id.clone(), project_id: tenant.clone() })?;
        } else if t.delete::<FlavorAccess>(&key).is_none() {
            return Err(Error::NotFound(format!("Flavor access not found for {id} / {tenant} combination.")));
        }
        Ok(())
    })
    .await?;
    Ok(Json(access_list(&c.model(), &id)).into_response())
}

// --------------------------------------------------------------------------- extra specs

fn valid_spec_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 255 && k.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_:. ".contains(ch))
}

/// Extra spec values: strings, or numbers and booleans that Nova turns into strings.
fn spec_values(o: &Map<String, Value>) -> ApiResult<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in o {
        if !valid_spec_key(k) {
            return Err(bad(format!("Invalid input for field/attribute extra_specs. Value: invalid key '{k}'.")));
        }
        let s = match v {
            Value::String(s) if s.chars().count() <= 255 => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => {
                if *b {
                    "True".into()
                } else {
                    "False".into()
                }
            }
            _ => return Err(bad(format!("Invalid input for field/attribute {k}. Value: {v}."))),
        };
        out.insert(k.clone(), s);
    }
    Ok(out)
}

/// Adds or replaces extra specs of a flavor.
async fn merge_specs(c: &Compute, id: &str, specs: &BTreeMap<String, String>) -> ApiResult<()> {
    c.write(|t| {
        let mut f =
            t.m.flavors
                .get(id)
                .map(|f| (**f).clone())
                .ok_or_else(|| Error::NotFound(format!("Flavor {id} could not be found.")))?;
        f.extra_specs.extend(specs.clone());
        t.put(f)?;
        Ok(())
    })
    .await?;
    Ok(())
}

async fn list_specs(State(c): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let m = c.model();
    let f = find(&m, &ctx, &id)?;
    Ok(Json(json!({"extra_specs": f.extra_specs})).into_response())
}

async fn create_specs(State(c): State<Ctx>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let specs = spec_values(&body_member(&body, "extra_specs")?)?;
    merge_specs(&c, &id, &specs).await?;
    Ok(Json(json!({"extra_specs": specs})).into_response())
}

async fn show_spec(State(c): State<Ctx>, Auth(ctx): Auth, Path((id, key)): Path<(String, String)>) -> ApiResult {
    let m = c.model();
    let f = find(&m, &ctx, &id)?;
    let v = f
        .extra_specs
        .get(&key)
        .ok_or_else(|| ApiError::not_found(format!("Flavor {id} has no extra specs with key {key}.")))?;
    Ok(Json(json!({key: v})).into_response())
}

async fn update_spec(State(c): State<Ctx>, Path((id, key)): Path<(String, String)>, body: Bytes) -> ApiResult {
    let v: Value = haneul_core::http::parse_json(&body)?;
    let Value::Object(o) = v else { return Err(bad("The request body must be a JSON object.")) };
    if o.len() != 1 {
        return Err(bad("Request body contains too many items"));
    }
    if !o.contains_key(&key) {
        return Err(bad("Request body and URI mismatch"));
    }
    let specs = spec_values(&o)?;
    merge_specs(&c, &id, &specs).await?;
    Ok(Json(json!(specs)).into_response())
}

async fn delete_spec(State(c): State<Ctx>, Path((id, key)): Path<(String, String)>) -> ApiResult {
    c.write(|t| {
        let mut f =
            t.m.flavors
                .get(&id)
                .map(|f| (**f).clone())
                .ok_or_else(|| Error::NotFound(format!("Flavor {id} could not be found.")))?;
        if f.extra_specs.remove(&key).is_none() {
            return Err(Error::NotFound(format!("Flavor {id} has no extra specs with key {key}.")));
        }
        t.put(f)?;
        Ok(())
    })
    .await?;
    // Nova answers 200 with no body here (202 for the other deletes).
    Ok(axum::http::StatusCode::OK.into_response())
}
