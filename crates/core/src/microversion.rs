//! Microversion negotiation: `OpenStack-API-Version: <service> <major>.<minor>` and the
//! legacy per-service headers (`X-OpenStack-Nova-API-Version`, ...).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// A service's microversions: the `OpenStack-API-Version` service name, the older header
/// it also reads and writes (Nova's `X-OpenStack-Nova-API-Version`), and the range served.
pub struct Versions {
    pub service: &'static str,
    pub legacy_header: Option<&'static str>,
    pub min: Microversion,
    pub max: Microversion,
    /// The answer to a version outside the range (a 406); `None`: the service's fault body.
    pub refused: Option<fn(&Versions, ApiError) -> Response>,
}

/// The version a request was negotiated to, for handlers: put in the request by
/// [`negotiated`], which every microversioned router runs.
#[derive(Clone, Copy, Debug)]
pub struct Mv(pub Microversion);

impl Mv {
    /// Whether the request asked for `<major>.minor` or newer.
    pub fn at_least(self, minor: u32) -> bool {
        self.0 >= Microversion::new(self.0.major, minor)
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Mv {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Mv>().copied().ok_or_else(|| {
            tracing::error!(path = %parts.uri.path(), "a handler asks the microversion of a route that negotiates none");
            ApiError::internal("The microversion of this request is unknown.")
        })
    }
}

/// The middleware (`axum::middleware::from_fn_with_state(&VERSIONS, negotiated)`):
/// negotiates the version (400 when malformed, 406 outside the range), hands it to the
/// handler as [`Mv`] and says it back in the response headers with `Vary`.
pub async fn negotiated(State(versions): State<&'static Versions>, mut req: Request, next: Next) -> Response {
    let v = match negotiate(req.headers(), versions.service, versions.legacy_header, versions.min, versions.max) {
        Ok(v) => v,
        Err(e) if e.status == StatusCode::NOT_ACCEPTABLE && versions.refused.is_some() => {
            return versions.refused.map(|f| f(versions, e)).unwrap_or_default()
        }
        Err(e) => return e.into_response(),
    };
    req.extensions_mut().insert(Mv(v));
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&format!("{} {v}", versions.service)) {
        h.insert("openstack-api-version", value);
    }
    match versions.legacy_header {
        Some(legacy) => {
            if let Ok(value) = HeaderValue::from_str(&v.to_string()) {
                h.insert(legacy, value);
            }
            if let Ok(vary) = HeaderValue::from_str(&format!("OpenStack-API-Version, {}", title_case(legacy))) {
                h.insert("vary", vary);
            }
        }
        None => {
            h.insert("vary", HeaderValue::from_static("openstack-api-version"));
        }
    }
    resp
}

/// `x-openstack-nova-api-version` → `X-OpenStack-Nova-API-Version`, as Nova writes it.
fn title_case(header: &str) -> String {
    header
        .split('-')
        .map(|w| match w {
            "openstack" => "OpenStack".to_string(),
            "api" => "API".to_string(),
            w => w[..1].to_ascii_uppercase() + &w[1..],
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Microversion {
    pub major: u32,
    pub minor: u32,
}

impl Microversion {
    pub const fn new(major: u32, minor: u32) -> Self {
        Microversion { major, minor }
    }

    pub fn parse(s: &str) -> Option<Microversion> {
        let (a, b) = s.trim().split_once('.')?;
        if a.is_empty() || b.is_empty() || a.len() > 4 || b.len() > 4 {
            return None;
        }
        if !a.bytes().all(|c| c.is_ascii_digit()) || !b.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        Some(Microversion { major: a.parse().ok()?, minor: b.parse().ok()? })
    }
}

impl std::fmt::Display for Microversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Which version a request asks for: the minimum when it names none, the maximum for
/// `latest`, and a 406 when it asks for one outside `[min, max]`, as Nova answers.
pub fn negotiate(
    headers: &HeaderMap,
    service: &str,
    legacy_header: Option<&str>,
    min: Microversion,
    max: Microversion,
) -> Result<Microversion, ApiError> {
    let mut requested: Option<String> = None;
    for value in headers.get_all("openstack-api-version") {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split_whitespace();
            if let (Some(svc), Some(ver)) = (parts.next(), parts.next()) {
                if svc.eq_ignore_ascii_case(service) {
                    requested = Some(ver.to_string());
                }
            }
        }
    }
    if requested.is_none() {
        if let Some(h) = legacy_header {
            requested = headers.get(h).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string());
        }
    }
    let Some(requested) = requested else { return Ok(min) };
    if requested.eq_ignore_ascii_case("latest") {
        return Ok(max);
    }
    let v = Microversion::parse(&requested).ok_or_else(|| {
        ApiError::bad_request(format!(
            "API Version String {requested} is of invalid format. Must be of format MajorNum.MinorNum."
        ))
    })?;
    if v < min || v > max {
        return Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("Version {v} is not supported by the API. Minimum is {min} and maximum is {max}."),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Microversion = Microversion::new(2, 1);
    const MAX: Microversion = Microversion::new(2, 90);

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn no_header_means_minimum() {
        assert_eq!(negotiate(&headers(&[]), "compute", None, MIN, MAX).unwrap(), MIN);
    }

    #[test]
    fn latest_means_maximum() {
        let h = headers(&[("OpenStack-API-Version", "compute latest")]);
        assert_eq!(negotiate(&h, "compute", None, MIN, MAX).unwrap(), MAX);
    }

    #[test]
    fn other_services_versions_are_ignored() {
        let h = headers(&[("OpenStack-API-Version", "volume 3.50, compute 2.37")]);
        assert_eq!(negotiate(&h, "compute", None, MIN, MAX).unwrap(), Microversion::new(2, 37));
    }

    #[test]
    fn legacy_header_is_read_when_no_new_header() {
        let h = headers(&[("X-OpenStack-Nova-API-Version", "2.10")]);
        let v = negotiate(&h, "compute", Some("x-openstack-nova-api-version"), MIN, MAX).unwrap();
        assert_eq!(v, Microversion::new(2, 10));
    }

    #[test]
    fn out_of_range_is_not_acceptable() {
        let h = headers(&[("OpenStack-API-Version", "compute 2.91")]);
        assert_eq!(negotiate(&h, "compute", None, MIN, MAX).unwrap_err().status, StatusCode::NOT_ACCEPTABLE);
    }

    #[test]
    fn garbage_is_bad_request() {
        let h = headers(&[("OpenStack-API-Version", "compute 2.x")]);
        assert_eq!(negotiate(&h, "compute", None, MIN, MAX).unwrap_err().status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_legacy_header_is_named_as_nova_names_it() {
        assert_eq!(title_case("x-openstack-nova-api-version"), "X-OpenStack-Nova-API-Version");
    }

    #[test]
    fn versions_order_numerically() {
        assert!(Microversion::parse("2.10").unwrap() > Microversion::parse("2.9").unwrap());
    }
}
