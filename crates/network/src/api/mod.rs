//! The Neutron v2.0 HTTP API: version discovery, the extension list, and the resources.
//!
//! Every list answers Neutron's common query parameters the same way ([`list_response`]):
//! filters on any attribute (several values of one = any of them), `fields`, `sort_key` /
//! `sort_dir`, `limit` / `marker` / `page_reverse` with `<collection>_links`, and the tag
//! filters. Handlers render what the caller may see as JSON and hand it over.

mod dataplane;
mod extensions;
mod floatingips;
mod networks;
mod port_forwardings;
mod ports;
mod quotas;
pub mod rbac;
mod routers;
mod security_groups;
mod subnetpools;
mod subnets;
mod tags;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use haneul_core::auth::{auth_layer, AuthContext, TokenValidator};
use haneul_core::error::{ApiError, FaultStyle};
use haneul_core::policy::Policy;
use haneul_core::routes::{Access, Guard, RouteSpec, Routes};
use serde_json::{json, Map, Value};

pub use crate::service::access::{is_admin, owns, project_of, require_owner};
use crate::service::{Error, Networking};

pub type ApiResult<T = Response> = Result<T, ApiError>;
pub type Ctx = Arc<Networking>;

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let err = match e {
            Error::NotFound(k, m) => ApiError::not_found(m).with_kind(k),
            Error::Conflict(k, m) => ApiError::conflict(m).with_kind(k),
            Error::BadRequest(k, m) => ApiError::bad_request(m).with_kind(k),
            Error::Forbidden(k, m) => ApiError::forbidden(m).with_kind(k),
            Error::Store(haneul_core::docstore::StoreError::NotFound { kind, id }) => {
                ApiError::not_found(format!("{kind} {id} could not be found.")).with_kind("NotFound")
            }
            Error::Store(haneul_core::docstore::StoreError::Stale { .. }) => {
                ApiError::conflict("Another process changed the data; retry.").with_kind("Conflict")
            }
            other => {
                tracing::error!(error = ?other, "network service failure");
                ApiError::internal("Request Failed: internal server error while processing your request.")
                    .with_kind("HTTPInternalServerError")
            }
        };
        err.with_style(FaultStyle::Network)
    }
}

/// The routes under `/v2.0`, each with its rule.
fn v2_routes() -> Routes<Ctx> {
    Routes::new()
        .merge(extensions::routes())
        .merge(networks::routes())
        .merge(subnets::routes())
        .merge(ports::routes())
        .merge(routers::routes())
        .merge(floatingips::routes())
        .merge(port_forwardings::routes())
        .merge(security_groups::routes())
        .merge(subnetpools::routes())
        .merge(quotas::routes())
        .merge(rbac::routes())
        .merge(tags::routes())
        .merge(dataplane::routes())
}

/// Version discovery and the resource list: public, as in Neutron.
fn version_routes() -> Routes<Ctx> {
    const DISCOVERY: Access = Access::Public("version discovery");
    Routes::new().get("/", DISCOVERY, versions).get("/v2.0", DISCOVERY, resources).get("/v2.0/", DISCOVERY, resources)
}

/// Every network route with what it asks, as the router serves them.
pub fn route_table() -> Vec<RouteSpec> {
    version_routes().nest("/v2.0", v2_routes()).table()
}

/// The guard of every network route, over `policy` (the service's current rules). Neutron's
/// owner rules name the parent's project (`network:project_id`, ...): asked without a
/// resource, the parent is the caller's own project's too.
pub fn guard(policy: impl Fn() -> Arc<Policy> + Send + Sync + 'static) -> Guard {
    Guard::new(FaultStyle::Network, denied, policy).owner_keys(&[
        "network:project_id",
        "ext_parent:project_id",
        "security_group:project_id",
    ])
}

/// Neutron's 403 for a rule that denies.
fn denied(rule: &str) -> ApiError {
    ApiError::forbidden(format!("(rule:{rule}) is disallowed by policy"))
        .with_kind("PolicyNotAuthorized")
        .with_style(FaultStyle::Network)
}

pub fn router(net: Arc<Networking>, validator: Arc<dyn TokenValidator>, body_limit: usize) -> Router {
    let n = net.clone();
    let guard = guard(move || n.policy.current());
    let app =
        version_routes().nest("/v2.0", v2_routes()).into_router(guard).with_state(net).layer(auth_layer(validator));
    haneul_core::http::service_layers(app, "network", FaultStyle::Network, body_limit)
}

async fn versions(axum::extract::State(n): axum::extract::State<Ctx>) -> Response {
    Json(json!({"versions": [{
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"rel": "self", "href": format!("{}/v2.0/", n.settings.public_url)}],
    }]}))
    .into_response()
}

/// The collections of v2.0, as Neutron's `GET /v2.0` lists them.
async fn resources(axum::extract::State(n): axum::extract::State<Ctx>) -> Response {
    let items: Vec<Value> = [
        ("subnet", "subnets"),
        ("network", "networks"),
        ("port", "ports"),
        ("router", "routers"),
        ("floatingip", "floatingips"),
        ("subnetpool", "subnetpools"),
        ("security_group", "security-groups"),
        ("security_group_rule", "security-group-rules"),
        ("rbac_policy", "rbac-policies"),
    ]
    .iter()
    .map(|(name, collection)| {
        json!({
            "name": name,
            "collection": collection,
            "links": [{"rel": "self", "href": format!("{}/v2.0/{collection}", n.settings.public_url)}],
        })
    })
    .collect();
    Json(json!({"resources": items})).into_response()
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the resource modules.

/// Checks a policy rule (attribute rules such as `create_network:shared`); Neutron's 403.
pub fn enforce(n: &Networking, ctx: &AuthContext, rule: &str, target: &Value) -> ApiResult<()> {
    n.policy.require(ctx, rule, target, denied)
}

pub fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg).with_kind("HTTPBadRequest").with_style(FaultStyle::Network)
}

/// Neutron's timestamp format.
pub fn ts(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Adds the standard attributes and `tenant_id`/`project_id` to a rendered resource.
pub fn standard(v: &mut Map<String, Value>, project_id: &str, s: &crate::model::Std) {
    v.insert("tenant_id".into(), json!(project_id));
    v.insert("project_id".into(), json!(project_id));
    v.insert("description".into(), json!(s.description));
    v.insert("tags".into(), json!(s.tags.iter().collect::<Vec<_>>()));
    v.insert("created_at".into(), json!(ts(&s.created_at)));
    v.insert("updated_at".into(), json!(ts(&s.updated_at)));
    v.insert("revision_number".into(), json!(s.revision_number));
}

/// A request body's resource: `{"<member>": {...}}`, or several for a bulk create
/// (`{"<collection>": [{...}, ...]}`); also says which form it was.
pub fn members(body: &[u8], member: &str, collection: &str) -> ApiResult<(Vec<Attrs>, bool)> {
    let v: Value = haneul_core::http::parse_json(body).map_err(|e| bad(e.message))?;
    let Value::Object(mut top) = v else { return Err(bad("Request body must be a JSON object.")) };
    if let Some(one) = top.remove(member) {
        let Value::Object(m) = one else {
            return Err(bad(format!("Resource body required: '{member}' must be an object.")));
        };
        return Ok((vec![Attrs(m)], false));
    }
    if let Some(Value::Array(many)) = top.remove(collection) {
        let mut out = Vec::with_capacity(many.len());
        for item in many {
            let Value::Object(m) = item else {
                return Err(bad(format!("Each item of '{collection}' must be an object.")));
            };
            out.push(Attrs(m));
        }
        if out.is_empty() {
            return Err(bad(format!("Resources required: '{collection}' is empty.")));
        }
        return Ok((out, true));
    }
    Err(bad(format!("Resource body required: the body has no '{member}'.")))
}

/// One resource's attributes from a request body, read with Neutron's checks and messages.
pub struct Attrs(pub Map<String, Value>);

impl Attrs {
    /// Neutron's 400 for attributes it does not know (`allowed` are those it does).
    pub fn only(&self, allowed: &[&str]) -> ApiResult<()> {
        let unknown: Vec<&str> = self.0.keys().map(String::as_str).filter(|k| !allowed.contains(k)).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(bad(format!("Unrecognized attribute(s) '{}'", unknown.join(", "))))
        }
    }
    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
    /// A string attribute (absent: None); `max` characters at most.
    pub fn str(&self, key: &str, max: usize) -> ApiResult<Option<String>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
            Some(Value::String(s)) => {
                Err(bad(format!("Invalid input for {key}. Reason: '{s}' exceeds maximum length of {max}.")))
            }
            Some(other) => Err(bad(format!("Invalid input for {key}. Reason: '{other}' is not a valid string."))),
        }
    }
    /// A string attribute that may be null (None inside: cleared).
    pub fn nullable_str(&self, key: &str, max: usize) -> ApiResult<Option<Option<String>>> {
        match self.0.get(key) {
            Some(Value::Null) => Ok(Some(None)),
            _ => Ok(self.str(key, max)?.map(Some)),
        }
    }
    /// A boolean attribute: JSON true/false or the strings Neutron converts ("true", "False", "1").
    pub fn bool(&self, key: &str) -> ApiResult<Option<bool>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") || s == "1" => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") || s == "0" => Ok(Some(false)),
            Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
            Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
            Some(other) => {
                Err(bad(format!("Invalid input for {key}. Reason: '{other}' cannot be converted to boolean.")))
            }
        }
    }
    /// An integer attribute (JSON number or numeric string); null gives None inside.
    pub fn int(&self, key: &str) -> ApiResult<Option<Option<i64>>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(Some(n.as_i64())),
            Some(Value::String(s)) if s.trim().parse::<i64>().is_ok() => Ok(Some(s.trim().parse().ok())),
            Some(other) => Err(bad(format!("Invalid input for {key}. Reason: '{other}' is not an integer."))),
        }
    }
    /// A list of strings.
    pub fn str_list(&self, key: &str) -> ApiResult<Option<Vec<String>>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(Vec::new())),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("Invalid input for {key}. Reason: '{x}' is not a valid string.")))
                })
                .collect::<ApiResult<Vec<_>>>()
                .map(Some),
            Some(other) => Err(bad(format!("Invalid input for {key}. Reason: '{other}' is not a list."))),
        }
    }
    /// A list of objects.
    pub fn obj_list(&self, key: &str) -> ApiResult<Option<Vec<Map<String, Value>>>> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(Vec::new())),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| match x {
                    Value::Object(m) => Ok(m.clone()),
                    other => Err(bad(format!("Invalid input for {key}. Reason: '{other}' is not a dictionary."))),
                })
                .collect::<ApiResult<Vec<_>>>()
                .map(Some),
            Some(other) => Err(bad(format!("Invalid input for {key}. Reason: '{other}' is not a list."))),
        }
    }
    /// The project a new resource belongs to: the caller's, or (admin) the one named by
    /// `project_id`/`tenant_id`, which must agree when both are given.
    pub fn owner(&self, ctx: &AuthContext) -> ApiResult<String> {
        let p = self.str("project_id", 255)?;
        let t = self.str("tenant_id", 255)?;
        if let (Some(p), Some(t)) = (&p, &t) {
            if p != t {
                return Err(bad("'project_id' and 'tenant_id' do not match"));
            }
        }
        match p.or(t) {
            Some(asked) if asked != project_of(ctx) => {
                if is_admin(ctx) {
                    Ok(asked)
                } else {
                    Err(bad("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges"))
                }
            }
            _ => Ok(project_of(ctx)),
        }
    }
}

/// Neutron's common list parameters, parsed from the query string.
#[derive(Default, Debug)]
pub struct ListQuery {
    pub fields: Vec<String>,
    pub sort: Vec<(String, bool)>,
    pub limit: Option<usize>,
    pub marker: Option<String>,
    pub page_reverse: bool,
    pub filters: Vec<(String, Vec<String>)>,
    /// The query as given, for next/previous links.
    pub raw: Vec<(String, String)>,
}

impl ListQuery {
    pub fn parse(q: &[(String, String)]) -> ApiResult<ListQuery> {
        let mut out = ListQuery { raw: q.to_vec(), ..Default::default() };
        let mut keys = Vec::new();
        let mut dirs = Vec::new();
        for (k, v) in q {
            match k.as_str() {
                "fields" => out.fields.extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string)),
                "sort_key" => keys.push(v.clone()),
                "sort_dir" => match v.as_str() {
                    "asc" => dirs.push(true),
                    "desc" => dirs.push(false),
                    _ => return Err(bad(format!("Invalid input for sort_dir. Reason: '{v}' is not a valid value; valid values are 'asc' and 'desc'."))),
                },
                "limit" => {
                    let n: i64 = v.parse().map_err(|_| bad(format!("Limit must be an integer 0 or greater and not '{v}'")))?;
                    if n < 0 {
                        return Err(bad(format!("Limit must be an integer 0 or greater and not '{v}'")));
                    }
                    out.limit = (n > 0).then_some(n as usize);
                }
                "marker" => out.marker = Some(v.clone()),
                "page_reverse" => out.page_reverse = v.eq_ignore_ascii_case("true"),
                _ => match out.filters.iter_mut().find(|(fk, _)| fk == k) {
                    Some((_, vals)) => vals.push(v.clone()),
                    None => out.filters.push((k.clone(), vec![v.clone()])),
                },
            }
        }
        if !dirs.is_empty() && dirs.len() != keys.len() {
            return Err(bad("The number of sort_keys and sort_dirs must be same"));
        }
        out.sort = keys.into_iter().enumerate().map(|(i, k)| (k, dirs.get(i).copied().unwrap_or(true))).collect();
        Ok(out)
    }

    /// Whether the answer is one page in id order (a `limit`, no sort but by `id` ascending,
    /// not reversed) from a marker that exists in `table`: then [`list_page`] need look only
    /// at the records after the marker.
    pub fn pages_by_id<T>(&self, table: &haneul_core::docstore::Table<T>) -> bool {
        self.limit.is_some()
            && !self.page_reverse
            && self.sort.iter().all(|(k, asc)| k == "id" && *asc)
            && self.marker.as_deref().is_none_or(|m| table.contains_key(m))
    }

    /// The one value of a filter given once with one value.
    pub fn single(&self, key: &str) -> Option<&str> {
        match self.filter(key) {
            Some([one]) => Some(one.as_str()),
            _ => None,
        }
    }

    pub fn filter(&self, key: &str) -> Option<&[String]> {
        self.filters.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_slice())
    }
}

/// Whether a rendered attribute matches one of the filter's values: strings as they are,
/// booleans and numbers by their text (`True` matches true), null by "" or "None".
fn matches(v: &Value, wanted: &[String]) -> bool {
    wanted.iter().any(|w| match v {
        Value::String(s) => s == w,
        Value::Bool(b) => w.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Number(n) => n.to_string() == *w,
        Value::Null => w.is_empty() || w == "None",
        Value::Array(a) => a.iter().any(|x| x.as_str() == Some(w.as_str())),
        Value::Object(_) => false,
    })
}

fn tag_set(v: &Value) -> Vec<&str> {
    v.get("tags").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

/// Whether an item passes the query's filters (those it has attributes for; `special` names
/// the filters a handler already applied itself).
pub fn passes(item: &Value, q: &ListQuery, special: &[&str]) -> bool {
    q.filters.iter().all(|(k, vals)| {
        let split = || vals.iter().flat_map(|v| v.split(',')).filter(|s| !s.is_empty()).collect::<Vec<_>>();
        match k.as_str() {
            "tags" => split().iter().all(|t| tag_set(item).contains(t)),
            "tags-any" => split().iter().any(|t| tag_set(item).contains(t)),
            "not-tags" => !split().iter().all(|t| tag_set(item).contains(t)),
            "not-tags-any" => !split().iter().any(|t| tag_set(item).contains(t)),
            _ if special.contains(&k.as_str()) => true,
            _ => match item.get(k) {
                Some(v) => matches(v, vals),
                // An attribute the resource does not have filters nothing out.
                None => true,
            },
        }
    })
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// A page of a list in id order ([`ListQuery::pages_by_id`]): `rows` are the candidates from
/// after the marker on, in id order (a table's or an index's); the first `limit` (and one
/// more, to know there are more) that the caller `keep`s and that pass the filters are
/// rendered and answered as [`list_response`] answers. The cost is the page's, not the
/// table's.
pub fn list_page<'a, T: 'a>(
    n: &Networking,
    rows: impl Iterator<Item = &'a T>,
    q: &ListQuery,
    collection: &str,
    special: &[&str],
    keep: impl Fn(&T) -> bool,
    render: impl Fn(&T) -> Value,
) -> ApiResult {
    let want = q.limit.unwrap_or(usize::MAX).saturating_add(1);
    let mut page = Vec::new();
    for r in rows {
        if page.len() >= want {
            break;
        }
        if !keep(r) {
            continue;
        }
        let v = render(r);
        if passes(&v, q, special) {
            page.push(v);
        }
    }
    list_response(n, page, q, collection, special)
}

/// The list answer: filtered, sorted, paged, reduced to `fields`, with links.
pub fn list_response(
    n: &Networking,
    items: Vec<Value>,
    q: &ListQuery,
    collection: &str,
    special: &[&str],
) -> ApiResult {
    let mut items: Vec<Value> = items.into_iter().filter(|i| passes(i, q, special)).collect();
    for (key, _) in &q.sort {
        if !items.is_empty() && items.iter().all(|i| i.get(key).is_none()) {
            return Err(bad(format!("{key} is invalid attribute for sort_key")));
        }
    }
    let mut sort = q.sort.clone();
    if !sort.iter().any(|(k, _)| k == "id") {
        sort.push(("id".into(), sort.first().map(|s| s.1).unwrap_or(true)));
    }
    let reverse = q.page_reverse;
    items.sort_by(|a, b| {
        for (k, asc) in &sort {
            let o = compare(a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null));
            let o = if *asc != reverse { o } else { o.reverse() };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    let mut links = Vec::new();
    if let Some(marker) = &q.marker {
        if let Some(pos) = items.iter().position(|i| i.get("id").and_then(Value::as_str) == Some(marker)) {
            items.drain(..=pos);
        }
    }
    if let Some(limit) = q.limit {
        let more = items.len() > limit;
        items.truncate(limit);
        let base = format!("{}/v2.0/{collection}", n.settings.public_url);
        let keep: Vec<(String, String)> =
            q.raw.iter().filter(|(k, _)| k != "marker" && k != "page_reverse").cloned().collect();
        let link = |marker: &str, rev: bool| {
            let mut qs: Vec<String> = keep
                .iter()
                .map(|(k, v)| format!("{}={}", haneul_core::url::encode(k), haneul_core::url::encode(v)))
                .collect();
            qs.push(format!("marker={}", haneul_core::url::encode(marker)));
            if rev {
                qs.push("page_reverse=True".into());
            }
            format!("{base}?{}", qs.join("&"))
        };
        let first = items.first().and_then(|i| i.get("id")).and_then(Value::as_str).map(str::to_string);
        let last = items.last().and_then(|i| i.get("id")).and_then(Value::as_str).map(str::to_string);
        let (fwd_more, back_more) = if reverse { (q.marker.is_some(), more) } else { (more, q.marker.is_some()) };
        if reverse {
            items.reverse();
        }
        let (head, tail) = if reverse { (last.clone(), first.clone()) } else { (first.clone(), last.clone()) };
        if fwd_more {
            if let Some(t) = &tail {
                links.push(json!({"rel": "next", "href": link(t, false)}));
            }
        }
        if back_more {
            if let Some(h) = &head {
                links.push(json!({"rel": "previous", "href": link(h, true)}));
            }
        }
    } else if reverse {
        items.reverse();
    }
    let items: Vec<Value> = items.into_iter().map(|i| select(i, &q.fields)).collect();
    let mut body = Map::new();
    body.insert(collection.replace('-', "_"), Value::Array(items));
    if !links.is_empty() {
        body.insert(format!("{}_links", collection.replace('-', "_")), Value::Array(links));
    }
    Ok(Json(Value::Object(body)).into_response())
}

/// Only the asked `fields` of a rendered resource (all of them when none are asked).
pub fn select(v: Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return v;
    }
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(k, _)| fields.iter().any(|f| f == k)).collect()),
        other => other,
    }
}

/// One resource's answer (`{"network": {...}}`), reduced to `fields` if asked.
pub fn show_response(member: &str, v: Value, q: &[(String, String)]) -> Response {
    let fields: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "fields")
        .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    Json(json!({ member: select(v, &fields) })).into_response()
}

/// A create's answer: 201 with one resource, or the list for a bulk create.
pub fn created(member: &str, collection: &str, mut items: Vec<Value>, bulk: bool) -> Response {
    let body = if bulk {
        json!({ collection.replace('-', "_"): items })
    } else {
        json!({ member: items.pop().unwrap_or(Value::Null) })
    };
    (StatusCode::CREATED, Json(body)).into_response()
}

/// The answer to a create: the new rows (by id, in order) rendered.
pub fn created_rows<T>(
    n: &Networking,
    ids: &[String],
    member: &str,
    collection: &str,
    bulk: bool,
    table: impl Fn(&crate::model::Model) -> &haneul_core::docstore::Table<T>,
    render: impl Fn(&crate::model::Model, &T) -> Value,
) -> Response {
    let m = n.model();
    let out = ids.iter().filter_map(|id| table(&m).get(id)).map(|r| render(&m, r)).collect();
    created(member, collection, out, bulk)
}

/// An update's body: exactly one resource.
pub fn one_member(body: &[u8], member: &str, collection: &str) -> ApiResult<Attrs> {
    let (mut items, bulk) = members(body, member, collection)?;
    match items.pop() {
        Some(a) if !bulk => Ok(a),
        _ => Err(bad(format!("Resource body required: '{member}' must be an object."))),
    }
}

#[cfg(test)]
mod route_rules {
    #[test]
    fn the_default_rules_parse_and_every_route_names_one_of_them() {
        let table = super::route_table();
        let unknown = haneul_core::routes::unknown_rules(&table, crate::policy_defaults::DEFAULT_RULES);
        assert!(unknown.is_empty(), "{unknown:?}");
    }
}
