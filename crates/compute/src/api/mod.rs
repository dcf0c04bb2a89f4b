//! The Nova v2.1 HTTP API (so far: version discovery, flavors, key pairs), with microversion
//! negotiation on every request.

mod agents;
mod aggregates;
mod consoles;
mod extensions;
mod external_events;
mod flavors;
mod hosts;
mod images;
mod interfaces;
mod keypairs;
mod legacy_hosts;
mod migrations;
mod net_proxies;
mod quotas;
mod server_groups;
mod server_meta;
mod servers;
mod usage;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use haneul_core::auth::{auth_layer, AuthContext, TokenValidator};
use haneul_core::error::{ApiError, FaultStyle};
use haneul_core::microversion::{negotiated, Microversion, Versions};
use haneul_core::policy::Policy;
use haneul_core::routes::{Access, Guard, RouteSpec, Routes};
use serde_json::{json, Value};

use crate::service::{Compute, Error};

pub type ApiResult<T = Response> = Result<T, ApiError>;
pub type Ctx = Arc<Compute>;

pub const MIN_VERSION: Microversion = Microversion::new(2, 1);
/// The newest microversion served. Flavors and key pairs follow every change up to it; the
/// rest of the compute API is being built (issue 4).
pub const MAX_VERSION: Microversion = Microversion::new(2, 100);
const UPDATED: &str = "2013-07-23T11:33:21Z";

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::NotFound(m) => ApiError::not_found(m),
            Error::Conflict(m) => ApiError::conflict(m),
            Error::BadRequest(m) => ApiError::bad_request(m),
            Error::Forbidden(m) => ApiError::forbidden(m),
            Error::Store(haneul_core::docstore::StoreError::Duplicate { .. }) => {
                ApiError::conflict("The resource already exists.")
            }
            // Nova's InterfaceAttachFailed: a 500 that says what went wrong on the host.
            failed @ Error::AttachFailed { .. } => {
                let message = haneul_core::service::chain(&failed);
                tracing::error!(error = %message, "interface attach failed");
                ApiError::internal(message)
            }
            other => {
                tracing::error!(error = %haneul_core::service::chain(&other), "compute service failure");
                ApiError::internal("Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and attach the Nova API log if possible.")
            }
        }
    }
}

pub use haneul_core::microversion::Mv;

/// Nova's microversions, negotiated for every route under `/v2.1`.
pub static VERSIONS: Versions = Versions {
    service: "compute",
    legacy_header: Some("x-openstack-nova-api-version"),
    min: MIN_VERSION,
    max: MAX_VERSION,
    refused: None,
};

/// The routes under `/v2.1`, each with its rule.
fn v21_routes() -> Routes<Ctx> {
    Routes::new()
        .merge(agents::routes())
        .merge(aggregates::routes())
        .merge(consoles::routes())
        .merge(extensions::routes())
        .merge(external_events::routes())
        .merge(flavors::routes())
        .merge(keypairs::routes())
        .merge(net_proxies::routes())
        .merge(quotas::routes())
        .merge(hosts::routes())
        .merge(legacy_hosts::routes())
        .merge(migrations::routes())
        .merge(images::routes())
        .merge(interfaces::routes())
        .merge(server_groups::routes())
        .merge(server_meta::routes())
        .merge(servers::routes())
        .merge(usage::routes())
}

/// Version discovery: public, as in Nova.
fn version_routes() -> Routes<Ctx> {
    const DISCOVERY: Access = Access::Public("version discovery");
    Routes::new()
        .get("/", DISCOVERY, versions)
        .get("/v2.1", DISCOVERY, version)
        .get("/v2.1/", DISCOVERY, version)
        .get("/v2", DISCOVERY, version_2_0)
        .get("/v2/", DISCOVERY, version_2_0)
}

/// Every compute route with what it asks, as the router serves them.
pub fn route_table() -> Vec<RouteSpec> {
    version_routes().nest("/v2.1", v21_routes()).table()
}

/// The guard of every compute route, over `policy` (the service's current rules).
pub fn guard(policy: impl Fn() -> Arc<Policy> + Send + Sync + 'static) -> Guard {
    Guard::new(FaultStyle::Compute, denied, policy)
}

/// Nova's 403 for a rule that denies.
fn denied(rule: &str) -> ApiError {
    ApiError::forbidden(format!("Policy doesn't allow {rule} to be performed."))
}

/// All compute routes with their layers.
pub fn router(compute: Arc<Compute>, validator: Arc<dyn TokenValidator>, body_limit: usize) -> Router {
    let c = compute.clone();
    let guard = guard(move || c.policy.current());
    let v21 =
        v21_routes().into_router(guard.clone()).layer(axum::middleware::from_fn_with_state(&VERSIONS, negotiated));
    let app = version_routes().into_router(guard).nest("/v2.1", v21).with_state(compute).layer(auth_layer(validator));
    haneul_core::http::service_layers(app, "compute", FaultStyle::Compute, body_limit)
}

fn version_doc(c: &Compute, full: bool) -> Value {
    let mut v = json!({
        "id": "v2.1",
        "status": "CURRENT",
        "version": MAX_VERSION.to_string(),
        "min_version": MIN_VERSION.to_string(),
        "updated": UPDATED,
        "links": [{"rel": "self", "href": format!("{}/v2.1/", c.settings.public_url)}],
    });
    if full {
        v["links"]
            .as_array_mut()
            .expect("links is an array")
            .push(json!({"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}));
        v["media-types"] =
            json!([{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]);
    }
    v
}

/// The v2.0 entry Nova lists first (its legacy API without microversions). Only its version
/// document is served here: clients pick v2.1, the one with the resources.
fn version_2_0_doc(c: &Compute) -> Value {
    json!({
        "id": "v2.0",
        "status": "SUPPORTED",
        "version": "",
        "min_version": "",
        "updated": "2011-01-21T11:33:21Z",
        "links": [{"rel": "self", "href": format!("{}/v2/", c.settings.public_url)}],
    })
}

async fn versions(State(c): State<Ctx>) -> Response {
    Json(json!({"versions": [version_2_0_doc(&c), version_doc(&c, false)]})).into_response()
}

async fn version_2_0(State(c): State<Ctx>) -> Response {
    Json(json!({"version": version_2_0_doc(&c)})).into_response()
}

async fn version(State(c): State<Ctx>) -> Response {
    Json(json!({"version": version_doc(&c, true)})).into_response()
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the resource modules.

/// Checks `rule` for the caller; Nova's 403 when denied.
pub fn enforce(c: &Compute, ctx: &AuthContext, rule: &str, target: &Value) -> ApiResult<()> {
    c.policy.require(ctx, rule, target, denied)
}

pub fn is_admin(ctx: &AuthContext) -> bool {
    ctx.has_role("admin")
}

/// Nova's `self` and `bookmark` links of a resource.
pub fn links(c: &Compute, path: &str) -> Value {
    json!([
        {"rel": "self", "href": format!("{}/v2.1/{path}", c.settings.public_url)},
        {"rel": "bookmark", "href": format!("{}/{path}", c.settings.public_url)},
    ])
}

/// The member object of a request body (`{"flavor": {...}}`), or Nova's 400.
pub fn body_member(body: &[u8], key: &str) -> ApiResult<serde_json::Map<String, Value>> {
    let v: Value = haneul_core::http::parse_json(body)?;
    match v {
        Value::Object(mut o) => match o.remove(key) {
            Some(Value::Object(m)) => Ok(m),
            Some(_) => Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: must be an object."
            ))),
            None => Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute {key}. Value: '{key}' is a required property"
            ))),
        },
        _ => Err(ApiError::bad_request("The request body must be a JSON object.")),
    }
}

pub fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
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

#[cfg(test)]
mod faults {
    use super::*;
    use crate::service::network::{NetError, NetworksError};
    use crate::service::AttachError;

    #[test]
    fn a_failed_attach_is_a_500_that_says_what_went_wrong() {
        let e = Error::AttachFailed { server_id: "s1".into(), source: AttachError::NoPort };
        let a = ApiError::from(e);
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(a.message, "Failed to attach network adapter device to s1: no port");
    }

    #[test]
    fn a_failure_of_the_service_is_nova_s_unexpected_error_without_its_cause() {
        let source = std::io::Error::other("disk full");
        let e = Error::File(haneul_core::error::FileError {
            what: "writing",
            path: "/var/lib/haneul/secret".into(),
            source,
        });
        let a = ApiError::from(e);
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(a.message.starts_with("Unexpected API Error."), "{}", a.message);
        assert!(!a.message.contains("disk full"));
    }

    #[test]
    fn a_network_service_that_cannot_be_asked_says_why_in_its_message() {
        let cause = haneul_core::client::ClientError::Url("no public network endpoint in the catalog".into());
        let e = NetworksError::from(NetError::Unavailable(cause));
        assert_eq!(
            haneul_core::service::chain(&e),
            "the network service is unavailable: bad URL no public network endpoint in the catalog"
        );
        let refused = NetError::Refused { status: 404, message: "Network x could not be found.".into() };
        assert_eq!((refused.status(), refused.message().as_str()), (Some(404), "Network x could not be found."));
    }
}
