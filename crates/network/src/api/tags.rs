//! Tags on resources (`/v2.0/{collection}/{id}/tags[/{tag}]`, the `standard-attr-tag`
//! extension): list, check, add, replace and remove.

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use haneul_core::auth::{Auth, AuthContext};
use haneul_core::routes::{Access, Routes};
use serde_json::{json, Value};

use std::collections::BTreeSet;

use super::{bad, ApiResult, Ctx};
use crate::service::tags::{self, TAGGED};
use crate::service::{Error, Networking};

const MAX_TAG_LEN: usize = 255;

pub fn routes() -> Routes<Ctx> {
    let mut r = Routes::new();
    for (collection, _) in TAGGED {
        let member = member_of(collection);
        let rule = |action: &str| Access::Rule(format!("{action}_{member}:tags").into());
        r = r
            .get(&format!("/{collection}/{{id}}/tags"), rule("get"), list)
            .put(&format!("/{collection}/{{id}}/tags"), rule("update"), replace)
            .delete(&format!("/{collection}/{{id}}/tags"), rule("delete"), clear)
            .get(&format!("/{collection}/{{id}}/tags/{{tag}}"), rule("get"), check)
            .put(&format!("/{collection}/{{id}}/tags/{{tag}}"), rule("create"), add)
            .delete(&format!("/{collection}/{{id}}/tags/{{tag}}"), rule("delete"), remove);
    }
    r
}

/// The member name of a tagged collection, as Neutron's tag rules name it (`security_group`).
fn member_of(collection: &str) -> String {
    collection.trim_end_matches('s').replace('-', "_")
}

/// The collection a tag route was matched for (`/v2.0/<collection>/{id}/tags...`).
fn collection(path: &MatchedPath) -> &'static str {
    let segments: Vec<&str> = path.as_str().split('/').collect();
    let at = segments.iter().position(|s| *s == "{id}").unwrap_or(1);
    let name = segments.get(at.saturating_sub(1)).copied().unwrap_or_default();
    TAGGED.iter().find(|(c, _)| *c == name).map(|(c, _)| *c).unwrap_or("networks")
}

fn check_tag(tag: &str) -> ApiResult<()> {
    if tag.is_empty() || tag.chars().count() > MAX_TAG_LEN {
        return Err(bad(format!(
            "Invalid input for tags. Reason: '{tag}' is not a valid tag (1 to {MAX_TAG_LEN} characters)."
        )));
    }
    Ok(())
}

/// The resource's tags, if the caller owns it.
fn current(n: &Networking, ctx: &AuthContext, collection: &str, id: &str) -> Result<Vec<String>, Error> {
    tags::of(&n.model(), ctx, collection, id)
}

/// Changes the tags of a resource the caller owns; answers them as they are now.
async fn change(
    n: &Networking,
    ctx: &AuthContext,
    collection: &str,
    id: &str,
    f: impl Fn(&mut BTreeSet<String>) + Send,
) -> Result<Vec<String>, Error> {
    current(n, ctx, collection, id)?;
    n.write(|t| tags::change(t, collection, id, &f)).await?;
    current(n, ctx, collection, id)
}

async fn list(State(c): State<Ctx>, Auth(ctx): Auth, path: MatchedPath, Path(id): Path<String>) -> ApiResult {
    Ok(Json(json!({"tags": current(&c, &ctx, collection(&path), &id)?})).into_response())
}

async fn check(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    path: MatchedPath,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult {
    if current(&c, &ctx, collection(&path), &id)?.contains(&tag) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Error::NotFound("TagNotFound", format!("Tag {tag} could not be found for {} {id}.", collection(&path)))
            .into())
    }
}

async fn add(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    path: MatchedPath,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult {
    check_tag(&tag)?;
    change(&c, &ctx, collection(&path), &id, move |tags| {
        tags.insert(tag.clone());
    })
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

async fn replace(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    path: MatchedPath,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let v: Value = haneul_core::http::parse_json(&body).map_err(|e| bad(e.message))?;
    let Some(list) = v.get("tags").and_then(Value::as_array) else {
        return Err(bad("Invalid input: the body needs a 'tags' list."));
    };
    let mut tags = Vec::new();
    for t in list {
        let Some(s) = t.as_str() else {
            return Err(bad(format!("Invalid input for tags. Reason: '{t}' is not a valid string.")));
        };
        check_tag(s)?;
        tags.push(s.to_string());
    }
    let now = change(&c, &ctx, collection(&path), &id, move |set| {
        set.clear();
        set.extend(tags.iter().cloned());
    })
    .await?;
    Ok(Json(json!({"tags": now})).into_response())
}

async fn clear(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    path: MatchedPath,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    change(&c, &ctx, collection(&path), &id, |set| set.clear()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn remove(
    State(c): State<Ctx>,
    Auth(ctx): Auth,
    path: MatchedPath,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    if !current(&c, &ctx, collection(&path), &id)?.contains(&tag) {
        return Err(Error::NotFound(
            "TagNotFound",
            format!("Tag {tag} could not be found for {} {id}.", collection(&path)),
        )
        .into());
    }
    change(&c, &ctx, collection(&path), &id, move |set| {
        set.remove(&tag);
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
