//! Resources that are stored records with little behaviour of their own: policies, OAuth1
//! consumers, endpoint groups, federation identity providers, mappings and service
//! providers. One table of [`Spec`]s drives their create/list/show/update/delete, so each
//! has Keystone's shapes without a handler of its own.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::http::Json as Body;
use haneul_core::routes::{target, Access, Routes};
use haneul_core::ApiError;
use rand::RngCore;
use serde_json::{json, Map, Value};

use super::{created, enforce, list_response, member, no_content, not_found, ApiResult, Ctx, Params};
use crate::model::{
    Consumer, DocRecord, Document, EndpointGroup, IdentityProvider, Mapping, PolicyBlob, ServiceProvider,
};
use crate::service::registry::{protocol_id, ProtocolAttrs};
use crate::service::{self, new_id};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    /// A string or null.
    OptStr,
    Bool,
    Object,
    Array,
    Any,
}

pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    /// JSON text of the value stored when the field is absent on create.
    pub default: Option<&'static str>,
}

const fn f(name: &'static str, kind: Kind, required: bool, default: Option<&'static str>) -> Field {
    Field { name, kind, required, default }
}

/// How one record kind appears in the API.
pub struct Spec {
    pub member: &'static str,
    pub collection: &'static str,
    /// Path below `/v3`, without leading slash.
    pub path: &'static str,
    /// Created with `PUT /path/{id}` (federation) rather than `POST /path`.
    pub id_from_url: bool,
    pub fields: &'static [Field],
    pub filters: &'static [&'static str],
    /// Generate and return a `secret` on create only (OAuth1 consumers).
    pub secret_on_create: bool,
}

pub static POLICY: Spec = Spec {
    member: "policy",
    collection: "policies",
    path: "policies",
    id_from_url: false,
    fields: &[f("blob", Kind::Str, true, None), f("type", Kind::Str, true, None)],
    filters: &["type"],
    secret_on_create: false,
};

pub static CONSUMER: Spec = Spec {
    member: "consumer",
    collection: "consumers",
    path: "OS-OAUTH1/consumers",
    id_from_url: false,
    fields: &[f("description", Kind::OptStr, false, Some("null"))],
    filters: &[],
    secret_on_create: true,
};

pub static ENDPOINT_GROUP: Spec = Spec {
    member: "endpoint_group",
    collection: "endpoint_groups",
    path: "OS-EP-FILTER/endpoint_groups",
    id_from_url: false,
    fields: &[
        f("name", Kind::Str, true, None),
        f("description", Kind::OptStr, false, Some("null")),
        f("filters", Kind::Object, true, None),
    ],
    filters: &["name"],
    secret_on_create: false,
};

pub static IDENTITY_PROVIDER: Spec = Spec {
    member: "identity_provider",
    collection: "identity_providers",
    path: "OS-FEDERATION/identity_providers",
    id_from_url: true,
    fields: &[
        f("enabled", Kind::Bool, false, Some("false")),
        f("description", Kind::OptStr, false, Some("null")),
        f("remote_ids", Kind::Array, false, Some("[]")),
        f("domain_id", Kind::OptStr, false, None),
        f("authorization_ttl", Kind::Any, false, Some("null")),
    ],
    filters: &["enabled", "id"],
    secret_on_create: false,
};

pub static MAPPING: Spec = Spec {
    member: "mapping",
    collection: "mappings",
    path: "OS-FEDERATION/mappings",
    id_from_url: true,
    fields: &[f("rules", Kind::Array, true, None), f("schema_version", Kind::OptStr, false, Some("\"1.0\""))],
    filters: &[],
    secret_on_create: false,
};

pub static SERVICE_PROVIDER: Spec = Spec {
    member: "service_provider",
    collection: "service_providers",
    path: "OS-FEDERATION/service_providers",
    id_from_url: true,
    fields: &[
        f("auth_url", Kind::Str, true, None),
        f("sp_url", Kind::Str, true, None),
        f("description", Kind::OptStr, false, Some("null")),
        f("enabled", Kind::Bool, false, Some("false")),
        f("relay_state_prefix", Kind::Str, false, Some("\"ss:mem:\"")),
    ],
    filters: &["enabled", "id"],
    secret_on_create: false,
};

pub fn routes() -> Routes<Ctx> {
    let protocol = "/OS-FEDERATION/identity_providers/{idp}/protocols/{id}";
    Routes::new()
        .get("/OS-FEDERATION/identity_providers/{idp}/protocols", target("identity:list_protocols"), list_protocols)
        .get(protocol, target("identity:get_protocol"), show_protocol)
        .put(protocol, target("identity:create_protocol"), create_protocol)
        .patch(protocol, target("identity:update_protocol"), update_protocol)
        .delete(protocol, target("identity:delete_protocol"), delete_protocol)
        .merge(doc_routes::<PolicyBlob>(&POLICY))
        .merge(doc_routes::<Consumer>(&CONSUMER))
        .merge(doc_routes::<EndpointGroup>(&ENDPOINT_GROUP))
        .merge(doc_routes::<IdentityProvider>(&IDENTITY_PROVIDER))
        .merge(doc_routes::<Mapping>(&MAPPING))
        .merge(doc_routes::<ServiceProvider>(&SERVICE_PROVIDER))
}

fn doc_routes<T: DocRecord>(spec: &'static Spec) -> Routes<Ctx> {
    let coll = format!("/{}", spec.path);
    let item = format!("/{}/{{id}}", spec.path);
    let list_h = move |State(ident): State<Ctx>, auth: Auth, params: Params| async move {
        list::<T>(spec, ident, auth, params).await
    };
    let show_h = move |State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>| async move {
        show::<T>(spec, ident, auth, id).await
    };
    let head = move |State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>| async move {
        show::<T>(spec, ident, auth, id).await.map(|_| axum::http::StatusCode::OK.into_response())
    };
    let create_post = move |State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>| async move {
        create::<T>(spec, ident, auth, None, body).await
    };
    let create_put = move |State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>| async move {
        create::<T>(spec, ident, auth, Some(id), body).await
    };
    let update_h = move |State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>| async move {
        update::<T>(spec, ident, auth, id, body).await
    };
    let delete_h = move |State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>| async move {
        delete::<T>(spec, ident, auth, id).await
    };
    let asks = |action: &str| Access::Target(rule(spec, action).into());
    let routes = Routes::new()
        .get(&coll, asks("list"), list_h)
        .get(&item, asks("get"), show_h)
        .head(&item, asks("get"), head)
        .patch(&item, asks("update"), update_h)
        .delete(&item, asks("delete"), delete_h);
    if spec.id_from_url {
        routes.put(&item, asks("create"), create_put)
    } else {
        routes.post(&coll, asks("create"), create_post)
    }
}

fn rule(spec: &Spec, action: &str) -> String {
    match action {
        "list" => format!("identity:list_{}", spec.collection),
        a => format!("identity:{a}_{}", spec.member),
    }
}

pub fn render(ident: &Ctx, spec: &Spec, d: &Document) -> Value {
    let mut v = Value::Object(d.body.clone());
    v["id"] = json!(d.id);
    let url = format!("{}/v3/{}/{}", ident.settings.public_url, spec.path, d.id);
    if spec.member == "identity_provider" {
        v["links"] = json!({"self": url, "protocols": format!("{url}/protocols")});
    } else {
        v["links"] = json!({"self": url});
    }
    v
}

fn check_field(field: &Field, v: &Value) -> ApiResult<()> {
    let ok = match field.kind {
        Kind::Str => v.is_string(),
        Kind::OptStr => v.is_string() || v.is_null(),
        Kind::Bool => v.is_boolean(),
        Kind::Object => v.is_object(),
        Kind::Array => v.is_array(),
        Kind::Any => true,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid input for field '{}': {v} is not of the expected type.",
            field.name
        )))
    }
}

/// Validates a create or update body against the spec; unknown attributes are kept.
fn validated(spec: &Spec, mut body: Map<String, Value>, create: bool) -> ApiResult<Map<String, Value>> {
    body.remove("id");
    body.remove("links");
    for field in spec.fields {
        match body.get(field.name) {
            Some(v) => check_field(field, v)?,
            None if create && field.required => {
                return Err(ApiError::bad_request(format!("'{}' is a required property", field.name)))
            }
            None if create => {
                if let Some(d) = field.default {
                    body.insert(field.name.into(), serde_json::from_str(d).unwrap_or(Value::Null));
                }
            }
            None => {}
        }
    }
    if spec.member == "mapping" && create && body.get("schema_version").is_some_and(Value::is_null) {
        body.insert("schema_version".into(), json!("1.0"));
    }
    Ok(body)
}

fn filter_ok(spec: &Spec, params: &Params, d: &Document) -> bool {
    spec.filters.iter().all(|k| match params.get(*k) {
        None => true,
        Some(want) => {
            let have = if *k == "id" { Some(Value::String(d.id.clone())) } else { d.body.get(*k).cloned() };
            match have {
                Some(Value::Bool(b)) => b == super::query_bool(want),
                Some(Value::String(s)) => &s == want,
                Some(other) => &other.to_string() == want,
                None => false,
            }
        }
    })
}

async fn list<T: DocRecord>(spec: &'static Spec, ident: Ctx, auth: Auth, params: Params) -> ApiResult {
    enforce(&ident, &auth.0, &rule(spec, "list"), &json!({}))?;
    let m = ident.model();
    let items = T::table(&m)
        .values()
        .map(|r| r.doc())
        .filter(|d| filter_ok(spec, &params, d))
        .map(|d| render(&ident, spec, d))
        .collect();
    Ok(list_response(&ident, spec.collection, items, spec.path))
}

async fn show<T: DocRecord>(spec: &'static Spec, ident: Ctx, auth: Auth, id: String) -> ApiResult {
    enforce(&ident, &auth.0, &rule(spec, "get"), &json!({}))?;
    let m = ident.model();
    let d = T::table(&m).get(&id).ok_or_else(|| not_found(spec.member, &id))?;
    Ok(Json(json!({ spec.member: render(&ident, spec, d.doc()) })).into_response())
}

async fn create<T: DocRecord>(
    spec: &'static Spec,
    ident: Ctx,
    auth: Auth,
    url_id: Option<String>,
    body: Value,
) -> ApiResult {
    enforce(&ident, &auth.0, &rule(spec, "create"), &json!({}))?;
    let mut obj = validated(spec, member(body, spec.member)?, true)?;
    let id = url_id.unwrap_or_else(new_id);
    super::check_name("id", &id, 255)?;
    let mut secret = None;
    if spec.secret_on_create {
        let mut raw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut raw);
        let s: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        obj.insert("secret_hash".into(), json!(ident.hash_password(s.clone()).await?));
        secret = Some(s);
    }
    let doc = Document { id, uniq: None, body: obj };
    let saved = ident.write(|t| service::registry::create::<T>(t, spec.member, doc)).await?;
    let mut v = render(&ident, spec, saved.doc());
    if let (Some(s), Value::Object(m)) = (secret, &mut v) {
        m.remove("secret_hash");
        m.insert("secret".into(), json!(s));
    }
    Ok(created(json!({ spec.member: v })))
}

async fn update<T: DocRecord>(spec: &'static Spec, ident: Ctx, auth: Auth, id: String, body: Value) -> ApiResult {
    enforce(&ident, &auth.0, &rule(spec, "update"), &json!({}))?;
    let obj = validated(spec, member(body, spec.member)?, false)?;
    if spec.member == "identity_provider" && obj.contains_key("domain_id") {
        return Err(ApiError::bad_request(
            "Invalid input for field 'domain_id': an identity provider's domain cannot be changed.",
        ));
    }
    let saved = ident.write(|t| service::registry::update::<T>(t, spec.member, &id, obj)).await?;
    Ok(Json(json!({ spec.member: render(&ident, spec, saved.doc()) })).into_response())
}

async fn delete<T: DocRecord>(spec: &'static Spec, ident: Ctx, auth: Auth, id: String) -> ApiResult {
    enforce(&ident, &auth.0, &rule(spec, "delete"), &json!({}))?;
    ident.write(|t| service::registry::delete::<T>(t, spec.member, &id)).await?;
    Ok(no_content())
}

// ------------------------------------------------------------------------------- protocols

fn render_protocol(ident: &Ctx, d: &Document) -> Value {
    let idp = d.body.get("idp_id").and_then(Value::as_str).unwrap_or_default();
    let id = d.body.get("protocol_id").and_then(Value::as_str).unwrap_or_default();
    let base = format!("{}/v3/OS-FEDERATION/identity_providers/{idp}", ident.settings.public_url);
    json!({
        "id": id,
        "mapping_id": d.body.get("mapping_id"),
        "remote_id_attribute": d.body.get("remote_id_attribute").cloned().unwrap_or(Value::Null),
        "links": {"self": format!("{base}/protocols/{id}"), "identity_provider": base},
    })
}

fn protocol_body(body: Value, create: bool) -> ApiResult<ProtocolAttrs> {
    let obj = member(body, "protocol")?;
    let mut out = ProtocolAttrs::default();
    match obj.get("mapping_id") {
        Some(Value::String(m)) => out.mapping_id = Some(m.clone()),
        None if !create => {}
        _ => return Err(ApiError::bad_request("'mapping_id' is a required property and must be a string.")),
    }
    match obj.get("remote_id_attribute") {
        Some(Value::String(r)) => out.remote_id_attribute = Some(Some(r.clone())),
        Some(Value::Null) => out.remote_id_attribute = Some(None),
        Some(_) => {
            return Err(ApiError::bad_request("Invalid input for field 'remote_id_attribute': must be a string."))
        }
        None => {}
    }
    Ok(out)
}

async fn list_protocols(State(ident): State<Ctx>, auth: Auth, Path(idp): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:list_protocols", &json!({}))?;
    let m = ident.model();
    if !m.identity_providers.contains_key(&idp) {
        return Err(not_found("identity provider", &idp));
    }
    let items = m
        .federation_protocols
        .values()
        .filter(|p| p.0.body.get("idp_id").and_then(Value::as_str) == Some(idp.as_str()))
        .map(|p| render_protocol(&ident, &p.0))
        .collect();
    Ok(list_response(&ident, "protocols", items, &format!("OS-FEDERATION/identity_providers/{idp}/protocols")))
}

async fn show_protocol(State(ident): State<Ctx>, auth: Auth, Path((idp, id)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:get_protocol", &json!({}))?;
    let m = ident.model();
    let p = m.federation_protocols.get(&protocol_id(&idp, &id)).ok_or_else(|| not_found("federation protocol", &id))?;
    Ok(Json(json!({"protocol": render_protocol(&ident, &p.0)})).into_response())
}

async fn create_protocol(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((idp, id)): Path<(String, String)>,
    Body(body): Body<Value>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:create_protocol", &json!({}))?;
    let attrs = protocol_body(body, true)?;
    super::check_name("id", &id, 64)?;
    let saved = ident.write(|t| service::registry::create_protocol(t, &idp, &id, attrs)).await?;
    Ok(created(json!({"protocol": render_protocol(&ident, &saved.0)})))
}

async fn update_protocol(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((idp, id)): Path<(String, String)>,
    Body(body): Body<Value>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:update_protocol", &json!({}))?;
    let attrs = protocol_body(body, false)?;
    let saved = ident.write(|t| service::registry::update_protocol(t, &idp, &id, attrs)).await?;
    Ok(Json(json!({"protocol": render_protocol(&ident, &saved.0)})).into_response())
}

async fn delete_protocol(State(ident): State<Ctx>, auth: Auth, Path((idp, id)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:delete_protocol", &json!({}))?;
    ident.write(|t| service::registry::delete_protocol(t, &idp, &id)).await?;
    Ok(no_content())
}
