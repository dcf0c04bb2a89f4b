//! Image members: the projects a `shared` image is offered to, and their answers.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use haneul_core::auth::Auth;
use haneul_core::error::ApiError;
use haneul_core::routes::{target, Routes};
use serde_json::{json, Value};

use super::{enforce, find_image, image_for, image_target, no_content, ts, ApiResult, Ctx};
use crate::model::{Member, MemberStatus, Visibility};
use crate::service::{is_admin, Error};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/v2/images/{id}/members", target("get_members"), list)
        .post("/v2/images/{id}/members", target("add_member"), create)
        .get("/v2/images/{id}/members/{member}", target("get_member"), show)
        .put("/v2/images/{id}/members/{member}", target("modify_member"), update)
        .delete("/v2/images/{id}/members/{member}", target("delete_member"), delete)
}

fn render(m: &Member) -> Value {
    json!({
        "member_id": m.member_id,
        "image_id": m.image_id,
        "status": m.status.as_str(),
        "created_at": ts(&m.created_at),
        "updated_at": ts(&m.updated_at),
        "schema": "/v2/schemas/member",
    })
}

fn only_shared(vis: Visibility) -> ApiResult<()> {
    if vis != Visibility::Shared {
        return Err(ApiError::forbidden("Only shared images have members."));
    }
    Ok(())
}

async fn create(State(svc): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let m = svc.model();
    let img = image_for(&svc, &m, &ctx, &id, "add_member")?;
    let body: Value = haneul_core::http::parse_json(&body)?;
    let member = match body.get("member") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 255 => s.clone(),
        _ => return Err(ApiError::bad_request("Member to be added not specified")),
    };
    only_shared(img.visibility)?;
    let quota = svc.settings.member_quota;
    let saved = svc
        .write(|t| {
            if !t.m.images.contains_key(&id) {
                return Err(Error::NotFound(format!("No image found with ID {id}")));
            }
            if t.m.member(&id, &member).is_some() {
                return Err(Error::Conflict(format!("Member {member} already associated with image {id}.")));
            }
            if t.m.members_of(&id).count() >= quota {
                return Err(Error::OverLimit(format!("Maximum number of members ({quota}) exceeded.")));
            }
            let now = Utc::now();
            Ok(t.put(Member {
                id: Member::key(&id, &member),
                image_id: id.clone(),
                member_id: member.clone(),
                status: MemberStatus::Pending,
                created_at: now,
                updated_at: now,
            })?)
        })
        .await?;
    Ok(Json(render(&saved)).into_response())
}

async fn list(State(svc): State<Ctx>, Auth(ctx): Auth, Path(id): Path<String>) -> ApiResult {
    let m = svc.model();
    let img = find_image(&svc, &m, &ctx, &id)?;
    only_shared(img.visibility)?;
    enforce(&svc, &ctx, "get_members", &image_target(&m, &ctx, &img))?;
    let owner_view = is_admin(&ctx) || (ctx.project_id().is_some() && img.owner.as_deref() == ctx.project_id());
    let members: Vec<Value> = m
        .members_of(&id)
        .filter(|mem| owner_view || Some(mem.member_id.as_str()) == ctx.project_id())
        .map(render)
        .collect();
    Ok(Json(json!({"members": members, "schema": "/v2/schemas/members"})).into_response())
}

async fn show(State(svc): State<Ctx>, Auth(ctx): Auth, Path((id, member)): Path<(String, String)>) -> ApiResult {
    let m = svc.model();
    let not_found = || ApiError::not_found(format!("Member {member} not found for image {id}"));
    let img = find_image(&svc, &m, &ctx, &id).map_err(|_| not_found())?;
    let mem = m.member(&id, &member).ok_or_else(not_found)?;
    let owner_view = is_admin(&ctx) || (ctx.project_id().is_some() && img.owner.as_deref() == ctx.project_id());
    if !owner_view && ctx.project_id() != Some(member.as_str()) {
        return Err(not_found());
    }
    let target = json!({"project_id": img.owner, "member_id": member, "visibility": img.visibility.as_str()});
    enforce(&svc, &ctx, "get_member", &target).map_err(|_| not_found())?;
    Ok(Json(render(mem)).into_response())
}

async fn update(
    State(svc): State<Ctx>,
    Auth(ctx): Auth,
    Path((id, member)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let m = svc.model();
    let img = find_image(&svc, &m, &ctx, &id)?;
    if m.member(&id, &member).is_none() {
        return Err(ApiError::not_found(format!("Member {member} not found for image {id}")));
    }
    let target = json!({"project_id": img.owner, "member_id": member, "visibility": img.visibility.as_str()});
    enforce(&svc, &ctx, "modify_member", &target)?;
    if !is_admin(&ctx) && ctx.project_id() != Some(member.as_str()) {
        return Err(ApiError::forbidden("Only the member can change its status."));
    }
    let body: Value = haneul_core::http::parse_json(&body)?;
    let status = body
        .get("status")
        .and_then(|s| s.as_str())
        .and_then(MemberStatus::parse)
        .ok_or_else(|| ApiError::bad_request("Invalid status: it must be one of pending, accepted, rejected."))?;
    let saved = svc
        .write(|t| {
            let mut mem = t.edit(&t.m.members, "member", &Member::key(&id, &member))?;
            mem.status = status;
            mem.updated_at = Utc::now();
            Ok(t.put(mem)?)
        })
        .await?;
    Ok(Json(render(&saved)).into_response())
}

async fn delete(
    State(svc): State<Ctx>,
    Auth(ctx): Auth,
    Path((id, member)): Path<(String, String)>,
) -> ApiResult<Response> {
    let m = svc.model();
    image_for(&svc, &m, &ctx, &id, "delete_member")?;
    svc.write(|t| {
        t.delete::<Member>(&Member::key(&id, &member))
            .map(|_| ())
            .ok_or_else(|| Error::NotFound(format!("Member {member} not found for image {id}")))
    })
    .await?;
    Ok(no_content())
}
