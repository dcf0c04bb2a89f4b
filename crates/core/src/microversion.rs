//! Microversion negotiation: `OpenStack-API-Version: <service> <major>.<minor>` and the
//! legacy per-service headers (`X-OpenStack-Nova-API-Version`, ...).

use axum::http::{HeaderMap, StatusCode};

use crate::error::ApiError;

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
    fn versions_order_numerically() {
        assert!(Microversion::parse("2.10").unwrap() > Microversion::parse("2.9").unwrap());
    }
}
