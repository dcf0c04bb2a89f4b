//! Key pairs (`/os-keypairs`): import, generation (before 2.92), list with paging (2.35),
//! admin access to other users' pairs (2.10), `type` (2.2).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::error::ApiError;
use haneul_core::routes::{target, Routes};
use serde_json::{json, Value};

use super::{body_member, enforce, ApiResult, Ctx, Mv};
use crate::model::Keypair;
use crate::service::{Compute, Error};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/os-keypairs", target("os_compute_api:os-keypairs:index"), list)
        .post("/os-keypairs", target("os_compute_api:os-keypairs:create"), create)
        .get("/os-keypairs/{name}", target("os_compute_api:os-keypairs:show"), show)
        .delete("/os-keypairs/{name}", target("os_compute_api:os-keypairs:delete"), delete)
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

/// Whose key pairs a request is about: the caller's, or (2.10+) the `user_id` it names, which
/// the policy allows for admins.
fn target_user(c: &Compute, ctx: &AuthContext, mv: Mv, asked: Option<&str>, rule: &str) -> ApiResult<String> {
    let user = match asked {
        Some(u) if mv.at_least(10) => u.to_string(),
        _ => ctx.user.id.clone(),
    };
    enforce(c, ctx, rule, &json!({"user_id": user}))?;
    Ok(user)
}

fn render_summary(mv: Mv, k: &Keypair) -> Value {
    let mut v = json!({"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint});
    if mv.at_least(2) {
        v["type"] = json!(k.kind);
    }
    json!({"keypair": v})
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, Query(q): Query<HashMap<String, String>>) -> ApiResult {
    let user = target_user(&c, &ctx, mv, q.get("user_id").map(String::as_str), "os_compute_api:os-keypairs:index")?;
    let m = c.model();
    let mut pairs: Vec<&Keypair> = m.keypairs_of(&user).collect();
    let mut links = None;
    if mv.at_least(35) {
        if let Some(marker) = q.get("marker") {
            let pos = pairs
                .iter()
                .position(|k| &k.name == marker)
                .ok_or_else(|| bad(format!("marker [{marker}] not found")))?;
            pairs.drain(..=pos);
        }
        if let Some(limit) = q.get("limit") {
            let limit: usize = limit.parse().map_err(|_| bad(format!("limit param must be an integer: {limit}")))?;
            pairs.truncate(limit);
            if pairs.len() == limit && limit > 0 {
                let last = pairs.last().map(|k| k.name.clone()).unwrap_or_default();
                let mut href = format!("{}/v2.1/os-keypairs?limit={limit}&marker={last}", c.settings.public_url);
                if q.contains_key("user_id") {
                    href.push_str(&format!("&user_id={user}"));
                }
                links = Some(json!([{"rel": "next", "href": href}]));
            }
        }
    }
    let mut body = json!({"keypairs": pairs.iter().map(|k| render_summary(mv, k)).collect::<Vec<_>>()});
    if let Some(l) = links {
        body["keypairs_links"] = l;
    }
    Ok(Json(body).into_response())
}

async fn show(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let user = target_user(&c, &ctx, mv, q.get("user_id").map(String::as_str), "os_compute_api:os-keypairs:show")?;
    let m = c.model();
    let k = m
        .keypairs
        .get(&Keypair::key(&user, &name))
        .ok_or_else(|| ApiError::not_found(format!("Keypair {name} not found for user {user}")))?;
    let mut v = json!({
        "name": k.name,
        "public_key": k.public_key,
        "fingerprint": k.fingerprint,
        "user_id": k.user_id,
        "deleted": false,
        "created_at": k.created_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        "updated_at": null,
        "deleted_at": null,
        "id": k.serial,
    });
    if mv.at_least(2) {
        v["type"] = json!(k.kind);
    }
    Ok(Json(json!({"keypair": v})).into_response())
}

async fn delete(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    mv: Mv,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let user = target_user(&c, &ctx, mv, q.get("user_id").map(String::as_str), "os_compute_api:os-keypairs:delete")?;
    c.write(|t| {
        t.delete::<Keypair>(&Keypair::key(&user, &name))
            .map(|_| ())
            .ok_or_else(|| Error::NotFound(format!("Keypair {name} not found for user {user}")))
    })
    .await?;
    Ok(if mv.at_least(2) { StatusCode::NO_CONTENT } else { StatusCode::ACCEPTED }.into_response())
}

/// Nova's name rule: 1–255 of letters, digits, space, `_` and `-`; 2.92 adds `@` and `.`.
fn valid_name(mv: Mv, name: &str) -> bool {
    let extra: &[char] = if mv.at_least(92) { &[' ', '_', '-', '@', '.'] } else { &[' ', '_', '-'] };
    !name.trim().is_empty()
        && name.chars().count() <= 255
        && name.chars().all(|ch| ch.is_ascii_alphanumeric() || extra.contains(&ch))
}

pub use crate::service::keygen::fingerprint;

/// A new key pair (see [`crate::service::keygen`]); RSA generation takes a CPU for a moment, off the
/// request threads.
async fn generate(kind: &str, user_id: &str) -> Result<(String, String), ApiError> {
    let (kind, user_id) = (kind.to_string(), user_id.to_string());
    match tokio::task::spawn_blocking(move || crate::service::keygen::generate(&kind, &user_id)).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => {
            tracing::error!(error = %haneul_core::service::chain(&e), "key pair generation failed");
            Err(ApiError::internal("Key pair generation failed."))
        }
        Err(e) => {
            tracing::error!(error = %e, "key pair generation stopped");
            Err(ApiError::internal("Key pair generation failed."))
        }
    }
}

async fn create(State(c): State<Ctx>, Auth(ctx): Auth, mv: Mv, body: Bytes) -> ApiResult<Response> {
    let o = body_member(&body, "keypair")?;
    let mut allowed = vec!["name", "public_key"];
    if mv.at_least(2) {
        allowed.push("type");
    }
    if mv.at_least(10) {
        allowed.push("user_id");
    }
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!("Invalid input for field/attribute keypair. Value: Additional properties are not allowed ('{k}' was unexpected)")));
    }
    let name = match o.get("name") {
        Some(Value::String(s)) if valid_name(mv, s) => s.clone(),
        Some(Value::String(_)) => return Err(bad("Keypair data is invalid: Keypair name contains unsafe characters")),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute name. Value: {v}."))),
        None => return Err(bad("Invalid input for field/attribute keypair. Value: 'name' is a required property")),
    };
    let kind = match o.get("type") {
        None => "ssh".to_string(),
        Some(Value::String(s)) if s == "ssh" || s == "x509" => s.clone(),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute type. Value: {v}."))),
    };
    let asked_user = match o.get("user_id") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute user_id. Value: {v}."))),
    };
    let user = target_user(&c, &ctx, mv, asked_user, "os_compute_api:os-keypairs:create")?;
    let (public_key, private_key) = match o.get("public_key") {
        Some(Value::String(k)) => (k.trim().to_string(), None),
        Some(v) => return Err(bad(format!("Invalid input for field/attribute public_key. Value: {v}."))),
        None if mv.at_least(92) => {
            return Err(bad("Invalid input for field/attribute keypair. Value: 'public_key' is a required property"))
        }
        None => {
            let (private, public) = generate(&kind, &user).await?;
            (public, Some(private))
        }
    };
    let fingerprint = fingerprint(&kind, &public_key)
        .ok_or_else(|| bad("Keypair data is invalid: failed to generate fingerprint"))?;
    let key_pairs_default = c.settings.key_pairs_quota as i64;
    let project = ctx.project_id().unwrap_or_default().to_string();
    let saved = c
        .write(|t| {
            let key = Keypair::key(&user, &name);
            if t.m.keypairs.contains_key(&key) {
                return Err(Error::Conflict(format!("Key pair '{name}' already exists.")));
            }
            let quota = crate::service::quotas::limits(&t.m, key_pairs_default, &project, Some(&user))["key_pairs"];
            if quota >= 0 && t.m.keypairs_of(&user).count() as i64 >= quota {
                return Err(Error::Forbidden("Quota exceeded, too many key pairs.".into()));
            }
            let serial = t.m.keypairs.values().map(|k| k.serial).max().unwrap_or(0) + 1;
            Ok(t.put(Keypair {
                id: key,
                serial,
                user_id: user.clone(),
                name: name.clone(),
                public_key: public_key.clone(),
                fingerprint: fingerprint.clone(),
                kind: kind.clone(),
                created_at: Utc::now(),
            })?)
        })
        .await?;
    let mut v = json!({
        "name": saved.name,
        "public_key": saved.public_key,
        "fingerprint": saved.fingerprint,
        "user_id": saved.user_id,
    });
    if mv.at_least(2) {
        v["type"] = json!(saved.kind);
    }
    if let Some(p) = private_key {
        v["private_key"] = json!(p);
    }
    let status = if mv.at_least(2) { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({"keypair": v}))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use haneul_core::microversion::Microversion;

    #[test]
    fn ssh_fingerprints_are_md5_of_the_blob() {
        // ssh-keygen -l -E md5 prints the same digest for this key.
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBoUPrGaNy6RrCkNSsNSsbahSVSfCtyuHYRQAtXsHJXb test";
        let fp = fingerprint("ssh", key).unwrap();
        assert_eq!(fp.len(), 47);
        assert_eq!(fp.matches(':').count(), 15);
        assert!(fingerprint("ssh", "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIBoUPrGaNy6RrCkNSsNSsbahSVSfCtyuHYRQAtXsHJXb")
            .is_none());
        assert!(fingerprint("ssh", "not a key").is_none());
    }

    #[test]
    fn names_follow_the_microversion() {
        let old = Mv(Microversion::new(2, 1));
        let new = Mv(Microversion::new(2, 92));
        assert!(valid_name(old, "my key_1-a"));
        assert!(!valid_name(old, "me@host"));
        assert!(valid_name(new, "me@host.example"));
        assert!(!valid_name(new, "   "));
        assert!(!valid_name(new, "tab\there"));
    }
}
