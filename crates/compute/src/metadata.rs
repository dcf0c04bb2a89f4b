//! The metadata service (port 8775): what a guest learns about itself from
//! `http://169.254.169.254`, in the OpenStack (`/openstack/<version>/meta_data.json`, ...) and
//! EC2 (`/<version>/meta-data/...`) formats. The documents are the ones the config drive
//! carries ([`crate::service::configdrive::config_drive_files`]).
//!
//! A request names its instance with `X-Instance-ID` signed by `X-Instance-ID-Signature`, the
//! hex HMAC-SHA256 of the id under the shared secret, as the metadata proxy in the guest's
//! network sends it (the network service adds that proxy); a request without them, or with a
//! wrong signature, is refused: there is no lookup by source address yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::Server;
use crate::service::Compute;

type HmacSha256 = Hmac<Sha256>;

/// The OpenStack metadata versions served (all with the same documents).
pub const OPENSTACK_VERSIONS: &[&str] = &[
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
    "latest",
];

/// The EC2 metadata versions served.
pub const EC2_VERSIONS: &[&str] = &[
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
    "latest",
];

/// The signature a proxy sends for `instance_id`.
pub fn sign(secret: &[u8], instance_id: &str) -> String {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(instance_id.as_bytes());
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn verify(secret: &[u8], instance_id: &str, signature: &str) -> bool {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(instance_id.as_bytes());
    let Some(given) = decode_hex(signature) else { return false };
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

pub fn router(compute: Arc<Compute>) -> Router {
    let app =
        Router::new().route("/", get(root)).route("/{*path}", get(document).post(post_password)).with_state(compute);
    haneul_core::http::service_layers(
        app,
        "metadata",
        haneul_core::error::FaultStyle::Compute,
        haneul_core::config::ServerConfig::default().max_request_body_size,
    )
}

fn text(status: StatusCode, body: impl Into<Vec<u8>>, content_type: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

fn plain(body: impl Into<Vec<u8>>) -> Response {
    text(StatusCode::OK, body, "text/plain; charset=UTF-8")
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 Not Found\n\nThe resource could not be found.\n", "text/plain; charset=UTF-8")
}

/// The instance a request is for, or the refusal to send.
fn instance(c: &Compute, headers: &HeaderMap) -> Result<Arc<Server>, Response> {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let (Some(id), Some(sig)) = (get("x-instance-id"), get("x-instance-id-signature")) else {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "400 Bad Request\n\nX-Instance-ID and X-Instance-ID-Signature are required: reach the metadata service through the proxy of the instance's network.\n",
            "text/plain; charset=UTF-8",
        ));
    };
    if !verify(&c.metadata_secret, id, sig) {
        tracing::warn!(instance = %id, "metadata request with a wrong signature");
        return Err(text(
            StatusCode::FORBIDDEN,
            "403 Forbidden\n\nInvalid proxy request signature.\n",
            "text/plain; charset=UTF-8",
        ));
    }
    let server = c.model().servers.get(id).cloned().ok_or_else(not_found)?;
    if let Some(tenant) = get("x-tenant-id") {
        if tenant != server.project_id {
            return Err(text(
                StatusCode::FORBIDDEN,
                "403 Forbidden\n\nTenant ID does not match the instance.\n",
                "text/plain; charset=UTF-8",
            ));
        }
    }
    Ok(server)
}

async fn root(State(c): State<Arc<Compute>>, req: Request) -> Response {
    if let Err(r) = instance(&c, req.headers()) {
        return r;
    }
    plain(EC2_VERSIONS.join("\n"))
}

async fn document(State(c): State<Arc<Compute>>, Path(path): Path<String>, req: Request) -> Response {
    let server = match instance(&c, req.headers()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.first() {
        Some(&"openstack") => openstack(&server, &parts[1..]),
        Some(v) if EC2_VERSIONS.contains(v) => ec2(&server, &parts[1..], path.ends_with('/')),
        _ => not_found(),
    }
}

/// `POST /openstack/<version>/password`: the guest leaves its encrypted password once (Nova's
/// rules: at most 256 bytes, 409 when one is already kept); `os-server-password` shows it.
async fn post_password(State(c): State<Arc<Compute>>, Path(path): Path<String>, req: Request) -> Response {
    let server = match instance(&c, req.headers()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if !matches!(parts.as_slice(), ["openstack", v, "password"] if OPENSTACK_VERSIONS.contains(v)) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n", "text/plain; charset=UTF-8");
    }
    let Ok(body) = axum::body::to_bytes(req.into_body(), 256).await else {
        return text(
            StatusCode::BAD_REQUEST,
            "400 Bad Request\n\nRequest is too large.\n",
            "text/plain; charset=UTF-8",
        );
    };
    if !server.password.is_empty() {
        return text(StatusCode::CONFLICT, "409 Conflict\n\nPassword already set.\n", "text/plain; charset=UTF-8");
    }
    let password = String::from_utf8_lossy(&body).into_owned();
    match c.set_state(&server.id, |s| s.password = password).await {
        Ok(()) => plain(""),
        Err(e) => {
            tracing::error!(server = %server.id, error = ?e, "could not keep the guest's password");
            text(StatusCode::INTERNAL_SERVER_ERROR, "500 Internal Server Error\n", "text/plain; charset=UTF-8")
        }
    }
}

fn openstack(s: &Server, rest: &[&str]) -> Response {
    let files: BTreeMap<String, Vec<u8>> = crate::service::configdrive::config_drive_files(s)
        .into_iter()
        .filter_map(|(p, data)| p.strip_prefix("openstack/latest/").map(|f| (f.to_string(), data)))
        .collect();
    match rest {
        [] => plain(OPENSTACK_VERSIONS.join("\n")),
        [v] if OPENSTACK_VERSIONS.contains(v) => {
            let mut names =
                vec!["meta_data.json", "password", "vendor_data.json", "network_data.json", "vendor_data2.json"];
            if files.contains_key("user_data") {
                names.insert(1, "user_data");
            }
            plain(names.join("\n"))
        }
        [v, "password"] if OPENSTACK_VERSIONS.contains(v) => plain(s.password.clone()),
        [v, f] if OPENSTACK_VERSIONS.contains(v) => match files.get(*f) {
            Some(data) if f.ends_with(".json") => text(StatusCode::OK, data.clone(), "application/json"),
            Some(data) => text(StatusCode::OK, data.clone(), "application/octet-stream"),
            None => not_found(),
        },
        _ => not_found(),
    }
}

/// The EC2 instance id Nova would show: `i-` and eight hex digits.
pub fn ec2_id(s: &Server) -> String {
    format!("i-{}", &s.id.replace('-', "")[..8])
}

fn ec2(s: &Server, rest: &[&str], _dir: bool) -> Response {
    let user_data = s.user_data.as_ref().and_then(|u| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(u).ok()
    });
    let host = crate::service::servers::hostname(&s.name);
    let leaf: BTreeMap<&str, String> = [
        ("ami-id", "ami-00000001".to_string()),
        ("ami-launch-index", "0".to_string()),
        // Not unfinished work: Nova's EC2 metadata answers this literal string, as there is
        // no AMI manifest; clients that read it expect that value.
        ("ami-manifest-path", "FIXME".to_string()),
        ("hostname", host.clone()),
        ("instance-action", "none".to_string()),
        ("instance-id", ec2_id(s)),
        ("instance-type", s.flavor.name.clone()),
        ("local-hostname", host.clone()),
        ("local-ipv4", String::new()),
        ("public-hostname", host),
        ("public-ipv4", String::new()),
        ("reservation-id", format!("r-{}", &s.id.replace('-', "")[8..16])),
        ("security-groups", "default".to_string()),
    ]
    .into();
    match rest {
        [] => plain(if user_data.is_some() { "meta-data/\nuser-data" } else { "meta-data/" }),
        ["user-data"] => match user_data {
            Some(d) => text(StatusCode::OK, d, "application/octet-stream"),
            None => not_found(),
        },
        ["meta-data"] => {
            let mut names: Vec<String> = leaf.keys().map(|k| k.to_string()).collect();
            names.extend(["block-device-mapping/".to_string(), "placement/".to_string()]);
            if s.key_name.is_some() {
                names.push("public-keys/".into());
            }
            names.sort();
            plain(names.join("\n"))
        }
        ["meta-data", "placement"] => plain("availability-zone"),
        ["meta-data", "placement", "availability-zone"] => plain(s.availability_zone.clone()),
        ["meta-data", "block-device-mapping"] => plain("ami\nroot"),
        ["meta-data", "block-device-mapping", "ami"] => plain("vda"),
        ["meta-data", "block-device-mapping", "root"] => plain("/dev/vda"),
        ["meta-data", "public-keys"] => match &s.key_name {
            Some(k) => plain(format!("0={k}")),
            None => not_found(),
        },
        ["meta-data", "public-keys", "0"] if s.key_name.is_some() => plain("openssh-key"),
        ["meta-data", "public-keys", "0", "openssh-key"] => match &s.key_data {
            Some(k) => plain(format!("{}\n", k.trim_end())),
            None => not_found(),
        },
        ["meta-data", key] => match leaf.get(key) {
            Some(v) => plain(v.clone()),
            None => not_found(),
        },
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_instance_and_secret() {
        let sig = sign(b"secret", "abc");
        assert_eq!(sig.len(), 64);
        assert!(verify(b"secret", "abc", &sig));
        assert!(!verify(b"secret", "abd", &sig));
        assert!(!verify(b"other", "abc", &sig));
        assert!(!verify(b"secret", "abc", "zz"));
    }
}
