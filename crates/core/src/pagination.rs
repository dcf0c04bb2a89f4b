//! `limit`/`marker` pagination with `next` links, as Nova, Neutron, Glance and Cinder page lists.

use serde::Deserialize;

use crate::error::ApiError;

#[derive(Debug, Default, Clone, Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub marker: Option<String>,
}

/// One page of a list and the marker of its last item when more may follow.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

impl PageQuery {
    /// The effective limit: the request's, capped at `max`; a negative or non-numeric one is a 400.
    pub fn limit(&self, max: usize) -> Result<usize, ApiError> {
        match &self.limit {
            None => Ok(max),
            Some(s) => {
                let n: i64 = s.trim().parse().map_err(|_| ApiError::bad_request(format!("Invalid limit: {s}")))?;
                if n < 0 {
                    return Err(ApiError::bad_request(format!("Invalid limit: {s}")));
                }
                Ok((n as usize).min(max))
            }
        }
    }
}

/// Pages already-sorted `items`: starts after the item whose id is the marker (an unknown
/// marker is a 400, as the OpenStack services answer), returns at most `limit` items and the
/// next marker when the page is full and more remain.
pub fn paginate<T>(items: Vec<T>, id_of: impl Fn(&T) -> &str, q: &PageQuery, max: usize) -> Result<Page<T>, ApiError> {
    let limit = q.limit(max)?;
    let start = match &q.marker {
        None => 0,
        Some(m) => match items.iter().position(|i| id_of(i) == m) {
            Some(p) => p + 1,
            None => return Err(ApiError::bad_request(format!("marker [{m}] not found"))),
        },
    };
    let total = items.len();
    let mut page: Vec<T> = items.into_iter().skip(start).take(limit).collect();
    let next_marker =
        if page.len() == limit && start + limit < total { page.last().map(|i| id_of(i).to_string()) } else { None };
    page.shrink_to_fit();
    Ok(Page { items: page, next_marker })
}

/// The `next` link: `base` with the request's other query parameters, and the new marker.
pub fn next_link(base: &str, query: &[(String, String)], marker: &str) -> String {
    let mut parts: Vec<String> =
        query.iter().filter(|(k, _)| k != "marker").map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    parts.push(format!("marker={}", encode(marker)));
    format!("{base}?{}", parts.join("&"))
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("id{i}")).collect()
    }

    fn q(limit: Option<&str>, marker: Option<&str>) -> PageQuery {
        PageQuery { limit: limit.map(Into::into), marker: marker.map(Into::into) }
    }

    #[test]
    fn full_page_has_next_marker() {
        let p = paginate(ids(5), |s| s, &q(Some("2"), None), 1000).unwrap();
        assert_eq!(p.items, vec!["id0", "id1"]);
        assert_eq!(p.next_marker.as_deref(), Some("id1"));
    }

    #[test]
    fn marker_starts_after_its_item_and_last_page_has_no_next() {
        let p = paginate(ids(5), |s| s, &q(Some("3"), Some("id1")), 1000).unwrap();
        assert_eq!(p.items, vec!["id2", "id3", "id4"]);
        assert_eq!(p.next_marker, None);
    }

    #[test]
    fn unknown_marker_is_bad_request() {
        assert_eq!(paginate(ids(2), |s| s, &q(None, Some("nope")), 10).unwrap_err().status.as_u16(), 400);
    }

    #[test]
    fn negative_limit_is_bad_request() {
        assert!(paginate(ids(2), |s| s, &q(Some("-1"), None), 10).is_err());
    }

    #[test]
    fn limit_is_capped_at_max() {
        let p = paginate(ids(5), |s| s, &q(Some("100"), None), 3).unwrap();
        assert_eq!(p.items.len(), 3);
        assert_eq!(p.next_marker.as_deref(), Some("id2"));
    }

    #[test]
    fn next_link_replaces_marker_and_keeps_filters() {
        let query = vec![("name".into(), "a b".into()), ("marker".into(), "old".into())];
        assert_eq!(next_link("http://h/v2/images", &query, "m1"), "http://h/v2/images?name=a%20b&marker=m1");
    }
}
