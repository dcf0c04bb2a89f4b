//! `GET /v2/images`: Glance's filters (`in:` lists, time and size comparisons, tags,
//! member status, visibility), sorting in both syntaxes, and marker paging with `next` links.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{OriginalUri, State};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use haneul_core::auth::Auth;
use haneul_core::routes::{rule, Routes};
use serde_json::json;

use super::images::{bad, render};
use super::{enforce, ApiResult, Ctx};
use crate::model::{Image, MemberStatus, Status, Visibility};
use crate::service::is_admin;

pub fn routes() -> Routes<Ctx> {
    Routes::new().get("/v2/images", rule("get_images"), list)
}

const SORT_KEYS: &[&str] =
    &["name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at"];

fn sort_value(img: &Image, key: &str) -> SortValue {
    match key {
        "name" => SortValue::Text(img.name.clone()),
        "status" => SortValue::Text(Some(img.status.as_str().to_string())),
        "container_format" => SortValue::Text(img.container_format.clone()),
        "disk_format" => SortValue::Text(img.disk_format.clone()),
        "size" => SortValue::Num(img.size),
        "id" => SortValue::Text(Some(img.id.clone())),
        "created_at" => SortValue::Time(img.created_at),
        _ => SortValue::Time(img.updated_at),
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortValue {
    Text(Option<String>),
    Num(Option<u64>),
    Time(DateTime<Utc>),
}

/// `(key, descending)` pairs from `sort=` or `sort_key`/`sort_dir`, with Glance's tie breakers.
fn sort_spec(q: &[(String, String)]) -> ApiResult<Vec<(String, bool)>> {
    let get_all = |k: &str| q.iter().filter(|(n, _)| n == k).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let sort = get_all("sort");
    let keys = get_all("sort_key");
    let dirs = get_all("sort_dir");
    let dir = |d: &str| match d {
        "asc" => Ok(false),
        "desc" => Ok(true),
        _ => Err(bad(format!("Invalid sort direction: {d}"))),
    };
    let mut spec = Vec::new();
    if !sort.is_empty() {
        if !keys.is_empty() || !dirs.is_empty() {
            return Err(bad("The 'sort' parameter cannot be combined with 'sort_key' or 'sort_dir'."));
        }
        for part in sort.iter().flat_map(|s| s.split(',')) {
            let (k, d) = match part.split_once(':') {
                Some((k, d)) => (k.trim(), dir(d.trim())?),
                None => (part.trim(), true),
            };
            spec.push((k.to_string(), d));
        }
    } else {
        if dirs.len() > 1 && dirs.len() != keys.len() {
            return Err(bad("Number of sort dirs does not match the number of sort keys"));
        }
        let keys = if keys.is_empty() { vec!["created_at".to_string()] } else { keys };
        for (i, k) in keys.iter().enumerate() {
            let d = match dirs.len() {
                0 => true,
                1 => dir(&dirs[0])?,
                _ => dir(&dirs[i])?,
            };
            spec.push((k.clone(), d));
        }
    }
    for (k, _) in &spec {
        if !SORT_KEYS.contains(&k.as_str()) {
            return Err(bad(format!("Invalid sort key: {k}. It should be one of: {}", SORT_KEYS.join(", "))));
        }
    }
    let last = spec.last().map(|s| s.1).unwrap_or(true);
    for tie in ["created_at", "id"] {
        if !spec.iter().any(|(k, _)| k == tie) {
            spec.push((tie.to_string(), last));
        }
    }
    Ok(spec)
}

/// `in:a,b,"c,d"` or a plain value.
fn value_set(raw: &str, field: &str) -> ApiResult<Vec<String>> {
    let Some((op, rest)) = raw.split_once(':') else { return Ok(vec![raw.to_string()]) };
    if op != "in" {
        return Err(bad(format!("Invalid operator '{op}' for filter '{field}'")));
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in rest.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(bad(format!("Invalid filter value {raw}. The quote is not closed.")));
    }
    out.push(cur);
    Ok(out)
}

fn time_filter(raw: &str, field: &str) -> ApiResult<(String, DateTime<Utc>)> {
    let invalid = || bad(format!("Invalid filter value {raw} for {field}; expected <op>:<ISO 8601 time>."));
    let (op, t) = raw.split_once(':').ok_or_else(invalid)?;
    if !matches!(op, "gt" | "gte" | "lt" | "lte" | "eq" | "neq") {
        return Err(invalid());
    }
    let t = DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S").map(|n| n.and_utc()))
        .map_err(|_| invalid())?;
    Ok((op.to_string(), t))
}

fn time_matches(op: &str, have: DateTime<Utc>, want: DateTime<Utc>) -> bool {
    let have = have.timestamp();
    let want = want.timestamp();
    match op {
        "gt" => have > want,
        "gte" => have >= want,
        "lt" => have < want,
        "lte" => have <= want,
        "eq" => have == want,
        _ => have != want,
    }
}

fn parse_bool(raw: &str, field: &str) -> ApiResult<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(format!("Invalid value '{raw}' for filter '{field}': expected true or false."))),
    }
}

fn parse_size(raw: &str, field: &str) -> ApiResult<u64> {
    raw.parse().map_err(|_| bad(format!("Invalid value '{raw}' for filter '{field}': expected an integer.")))
}

async fn list(State(svc): State<Ctx>, Auth(ctx): Auth, uri: OriginalUri) -> ApiResult {
    let q: Vec<(String, String)> = uri.query().map(|s| haneul_core::url::pairs(s)).unwrap_or_default();
    enforce(&svc, &ctx, "get_images", &json!({"project_id": ctx.project_id()}))?;
    let mut params: HashMap<&str, Vec<&str>> = HashMap::new();
    for (k, v) in &q {
        params.entry(k.as_str()).or_default().push(v.as_str());
    }
    let one = |k: &str| params.get(k).and_then(|v| v.last().copied());

    let limit = match one("limit") {
        None => 25,
        Some(l) => l.parse::<usize>().map_err(|_| bad(format!("limit param must be an integer: {l}")))?.min(1000),
    };
    if one("changes-since").is_some() {
        return Err(bad("The 'changes-since' filter is no longer available on v2."));
    }
    let spec = sort_spec(&q)?;
    let visibility = match one("visibility") {
        None => None,
        Some("all") => Some(None),
        Some(v) => Some(Some(Visibility::parse(v).ok_or_else(|| bad(format!("Invalid visibility value: {v}")))?)),
    };
    let member_status = match one("member_status") {
        None => Some(MemberStatus::Accepted),
        Some("all") => None,
        Some(s) => Some(MemberStatus::parse(s).ok_or_else(|| bad(format!("Invalid status value: {s}")))?),
    };
    let os_hidden = one("os_hidden").map(|v| parse_bool(v, "os_hidden")).transpose()?.unwrap_or(false);
    let protected = one("protected").map(|v| parse_bool(v, "protected")).transpose()?;
    let size_min = one("size_min").map(|v| parse_size(v, "size_min")).transpose()?;
    let size_max = one("size_max").map(|v| parse_size(v, "size_max")).transpose()?;
    let size = one("size").map(|v| parse_size(v, "size")).transpose()?;
    let mut sets: Vec<(&str, Vec<String>)> = Vec::new();
    for f in ["name", "id", "status", "container_format", "disk_format"] {
        if let Some(v) = one(f) {
            sets.push((f, value_set(v, f)?));
        }
    }
    let mut times = Vec::new();
    for f in ["created_at", "updated_at"] {
        for v in params.get(f).into_iter().flatten() {
            times.push((f, time_filter(v, f)?));
        }
    }
    let tags: Vec<&str> = params.get("tag").cloned().unwrap_or_default();
    const KNOWN: &[&str] = &[
        "limit",
        "marker",
        "sort",
        "sort_key",
        "sort_dir",
        "visibility",
        "member_status",
        "os_hidden",
        "protected",
        "size_min",
        "size_max",
        "size",
        "name",
        "id",
        "status",
        "container_format",
        "disk_format",
        "created_at",
        "updated_at",
        "tag",
        "owner",
        "checksum",
        "os_hash_value",
    ];
    let props: Vec<(&str, &str)> =
        q.iter().filter(|(k, _)| !KNOWN.contains(&k.as_str())).map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let m = svc.model();
    let admin = is_admin(&ctx);
    let project = ctx.project_id();
    let listed = |img: &Image| -> bool {
        if img.status == Status::Killed {
            return false;
        }
        let own = project.is_some() && img.owner.as_deref() == project;
        let member_ok = |img: &Image| {
            project.and_then(|p| m.member(&img.id, p)).is_some_and(|mem| member_status.is_none_or(|s| mem.status == s))
        };
        match visibility {
            // No filter: everything for an admin; else own, public and accepted shared images.
            None => {
                admin
                    || own
                    || img.visibility == Visibility::Public
                    || (img.visibility == Visibility::Shared && member_ok(img))
            }
            Some(None) => {
                admin
                    || own
                    || matches!(img.visibility, Visibility::Public | Visibility::Community)
                    || (img.visibility == Visibility::Shared && member_ok(img))
            }
            Some(Some(v)) => {
                img.visibility == v
                    && match v {
                        Visibility::Public | Visibility::Community => true,
                        Visibility::Private => admin || own,
                        Visibility::Shared => (admin && one("member_status").is_none()) || own || member_ok(img),
                    }
            }
        }
    };
    let matches = |img: &Image| -> bool {
        if img.os_hidden != os_hidden {
            return false;
        }
        if protected.is_some_and(|p| img.protected != p) {
            return false;
        }
        let sz = img.size;
        if size_min.is_some_and(|n| sz.is_none_or(|s| s < n))
            || size_max.is_some_and(|n| sz.is_none_or(|s| s > n))
            || size.is_some_and(|n| sz != Some(n))
        {
            return false;
        }
        for (f, set) in &sets {
            let have = match *f {
                "name" => img.name.clone(),
                "id" => Some(img.id.clone()),
                "status" => Some(img.status.as_str().to_string()),
                "container_format" => img.container_format.clone(),
                _ => img.disk_format.clone(),
            };
            if !have.is_some_and(|h| set.contains(&h)) {
                return false;
            }
        }
        for (f, (op, t)) in &times {
            let have = if *f == "created_at" { img.created_at } else { img.updated_at };
            if !time_matches(op, have, *t) {
                return false;
            }
        }
        if !tags.iter().all(|t| img.tags.iter().any(|x| x == t)) {
            return false;
        }
        if one("owner").is_some_and(|o| img.owner.as_deref() != Some(o))
            || one("checksum").is_some_and(|c| img.checksum.as_deref() != Some(c))
            || one("os_hash_value").is_some_and(|c| img.os_hash_value.as_deref() != Some(c))
        {
            return false;
        }
        props.iter().all(|(k, v)| img.properties.get(*k).is_some_and(|p| p == v))
    };
    let default_order =
        spec.len() == 2 && spec[0] == ("created_at".to_string(), true) && spec[1] == ("id".to_string(), true);
    if default_order {
        // Newest first is the creation-time index read backwards: from the marker on, only
        // until the page (and one more) is found.
        let walk = |before: Option<(&str, &str)>| -> Vec<&Arc<Image>> {
            m.images
                .by_prefix_rev(crate::model::IMAGE_CREATED, "", before)
                .filter(|i| listed(i) && matches(i))
                .take(limit.saturating_add(1))
                .collect()
        };
        let page = match one("marker").map(|mk| (mk, m.images.get(mk))) {
            None => walk(None),
            Some((_, Some(i))) if listed(i) && matches(i) => walk(Some((&i.created_key(), &i.id))),
            // A visible marker filtered out of this list: nothing after it.
            Some((_, Some(i))) if svc.visible(&m, &ctx, i) => Vec::new(),
            Some((mk, _)) => return Err(bad(format!("Invalid marker. Image {mk} could not be found."))),
        };
        let more = page.len() > limit;
        let page: Vec<&Arc<Image>> = page.into_iter().take(limit).collect();
        return page_body(&q, page, more, limit);
    }
    let mut found: Vec<&Arc<Image>> = m.images.values().filter(|i| listed(i) && matches(i)).collect();
    found.sort_by(|a, b| {
        for (k, desc) in &spec {
            let o = sort_value(a, k).cmp(&sort_value(b, k));
            let o = if *desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    let start = match one("marker") {
        None => 0,
        Some(mk) => match found.iter().position(|i| i.id == mk) {
            Some(p) => p + 1,
            None => {
                let seen = m.images.get(mk).is_some_and(|i| svc.visible(&m, &ctx, i));
                if !seen {
                    return Err(bad(format!("Invalid marker. Image {mk} could not be found.")));
                }
                // A visible marker filtered out of this list: continue after its place.
                found.len()
            }
        },
    };
    let page: Vec<&Arc<Image>> = found.iter().skip(start).take(limit).copied().collect();
    let more = start + page.len() < found.len();
    page_body(&q, page, more, limit)
}

/// The list's answer: the page, `first`, and `next` when there are more.
fn page_body(q: &[(String, String)], page: Vec<&Arc<Image>>, more: bool, limit: usize) -> ApiResult {
    let rest: Vec<(String, String)> = q.iter().filter(|(k, _)| k != "marker").cloned().collect();
    let first = query_path("/v2/images", &rest);
    let mut body = json!({
        "images": page.iter().map(|i| render(i)).collect::<Vec<_>>(),
        "first": first,
        "schema": "/v2/schemas/images",
    });
    if more && limit > 0 {
        if let Some(last) = page.last() {
            let mut with_marker = rest.clone();
            with_marker.push(("marker".into(), last.id.clone()));
            body["next"] = json!(query_path("/v2/images", &with_marker));
        }
    }
    Ok(Json(body).into_response())
}

fn query_path(path: &str, q: &[(String, String)]) -> String {
    if q.is_empty() {
        return path.to_string();
    }
    format!("{path}?{}", haneul_core::url::query(q.iter().map(|(k, v)| (k.as_str(), v.as_str())), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_spec_reads_both_syntaxes_and_adds_tie_breakers() {
        let q = |s: &str| haneul_core::url::pairs(s);
        assert_eq!(
            sort_spec(&q("sort=name:asc,size")).unwrap(),
            vec![("name".into(), false), ("size".into(), true), ("created_at".into(), true), ("id".into(), true)]
        );
        assert_eq!(sort_spec(&q("sort_key=name&sort_dir=asc")).unwrap()[0], ("name".into(), false));
        assert!(sort_spec(&q("sort=name&sort_key=id")).is_err());
        assert!(sort_spec(&q("sort_key=owner")).is_err());
        assert!(sort_spec(&q("sort_key=name&sort_key=id&sort_dir=asc&sort_dir=desc&sort_dir=asc")).is_err());
    }

    #[test]
    fn in_filters_split_on_commas_outside_quotes() {
        assert_eq!(value_set("in:a,\"b,c\"", "name").unwrap(), vec!["a", "b,c"]);
        assert_eq!(value_set("plain", "name").unwrap(), vec!["plain"]);
        assert!(value_set("gt:1", "name").is_err());
    }

    #[test]
    /// As Glance writes its `next` links (Python's `urlencode`: `:` is escaped too).
    fn query_strings_round_trip() {
        let pairs = haneul_core::url::pairs("name=a%20b&tag=x+y&sort=name:asc");
        assert_eq!(pairs[0], ("name".into(), "a b".into()));
        assert_eq!(pairs[1], ("tag".into(), "x y".into()));
        assert_eq!(query_path("/v2/images", &pairs), "/v2/images?name=a%20b&tag=x%20y&sort=name%3Aasc");
    }
}
