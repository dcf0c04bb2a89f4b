//! Percent-encoding for query strings, once for every service: what goes into the query of
//! a call to another service and into `next` links, and the decoding of raw query strings
//! where a service needs repeated keys in order.

/// Percent-encodes a query key or value: everything but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    escape(s, false)
}

/// As [`encode`], with a space as `+` (`application/x-www-form-urlencoded`, as Python's
/// `urlencode` writes the links Nova returns).
pub fn encode_form(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, plus: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `k=v&k=v`, each part encoded by [`encode_form`] when `form`, else [`encode`].
pub fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, form: bool) -> String {
    pairs.into_iter().map(|(k, v)| format!("{}={}", escape(k, form), escape(v, form))).collect::<Vec<_>>().join("&")
}

/// Decodes a query key or value: percent escapes and `+` as a space; a stray `%` stays.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The pairs of a raw query string `a=b&c=d`, in order, decoded.
pub fn pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_keeps_only_unreserved_characters() {
        let raw = "a b/c?d=e&f:g,h~é%";
        assert_eq!(encode(raw), "a%20b%2Fc%3Fd%3De%26f%3Ag%2Ch~%C3%A9%25");
        assert_eq!(encode_form("a b"), "a+b");
        assert_eq!(decode(&encode(raw)), raw);
        assert_eq!(decode(&encode_form(raw)), raw);
        assert_eq!(
            pairs("name=a%20b&tag=x+y&sort=name:asc&flag"),
            [
                ("name".to_string(), "a b".to_string()),
                ("tag".into(), "x y".into()),
                ("sort".into(), "name:asc".into()),
                ("flag".into(), String::new()),
            ]
        );
        assert_eq!(query([("marker", "a b"), ("k", "&")], false), "marker=a%20b&k=%26");
        assert_eq!(decode("100%"), "100%");
    }
}
