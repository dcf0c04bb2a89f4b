//! `/v3/credentials` and the EC2-style access/secret pairs of
//! `/v3/users/{id}/credentials/OS-EC2` (the object store's S3 API will check them).

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use haneul_core::auth::Auth;
use haneul_core::http::Json as Body;
use haneul_core::routes::{target as asks, Access, Routes};
use haneul_core::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    created, enforce, list_response, member, no_content, not_found, parse, self_link, with_extra, ApiResult, Ctx,
    Params,
};
use crate::model::{Credential, Extra};
use crate::service::credentials::CredentialPatch;
use crate::service::{self, new_id};

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/credentials", Access::Filter("identity:list_credentials"), list)
        .post("/credentials", asks("identity:create_credential"), create)
        .get("/credentials/{id}", asks("identity:get_credential"), show)
        .patch("/credentials/{id}", asks("identity:update_credential"), update)
        .delete("/credentials/{id}", asks("identity:delete_credential"), delete)
        .get("/users/{user_id}/credentials/OS-EC2", asks("identity:ec2_list_credentials"), ec2_list)
        .post("/users/{user_id}/credentials/OS-EC2", asks("identity:ec2_create_credential"), ec2_create)
        .get("/users/{user_id}/credentials/OS-EC2/{access}", asks("identity:ec2_get_credential"), ec2_show)
        .delete("/users/{user_id}/credentials/OS-EC2/{access}", asks("identity:ec2_delete_credential"), ec2_delete)
}

fn render(ident: &Ctx, c: &Credential) -> Value {
    with_extra(
        json!({"id": c.id, "user_id": c.user_id, "project_id": c.project_id, "type": c.kind, "blob": c.blob, "links": self_link(ident, &format!("credentials/{}", c.id))}),
        &c.extra,
    )
}

fn target(user_id: &str) -> Value {
    json!({"target": {"credential": {"user_id": user_id}}})
}

/// EC2 credentials are addressed by the hash of their access key, as Keystone does.
fn ec2_id(access: &str) -> String {
    Sha256::digest(access.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Deserialize)]
struct CredentialBody {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    blob: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

fn ec2_access(blob: &str) -> ApiResult<String> {
    let v: Value = serde_json::from_str(blob)
        .map_err(|_| ApiError::bad_request("Invalid blob in credential: an ec2 blob must be JSON."))?;
    v.get("access")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request("Invalid blob in credential: an ec2 blob needs an access key."))
}

async fn create(State(ident): State<Ctx>, auth: Auth, Body(body): Body<Value>) -> ApiResult {
    let mut b: CredentialBody = parse("credential", member(body, "credential")?)?;
    b.extra.remove("id");
    let user_id = b.user_id.ok_or_else(|| ApiError::bad_request("'user_id' is a required property"))?;
    let kind = b.kind.ok_or_else(|| ApiError::bad_request("'type' is a required property"))?;
    let blob = b.blob.ok_or_else(|| ApiError::bad_request("'blob' is a required property"))?;
    enforce(&ident, &auth.0, "identity:create_credential", &target(&user_id))?;
    let id = if kind == "ec2" {
        if b.project_id.is_none() {
            return Err(ApiError::bad_request(
                "Invalid input for field 'project_id': an ec2 credential needs a project.",
            ));
        }
        ec2_id(&ec2_access(&blob)?)
    } else {
        new_id()
    };
    let c = Credential { id, user_id, project_id: b.project_id, kind, blob, extra: b.extra };
    let saved = ident.write(|t| service::credentials::create(t, c)).await?;
    Ok(created(json!({"credential": render(&ident, &saved)})))
}

async fn list(State(ident): State<Ctx>, auth: Auth, params: Params) -> ApiResult {
    let m = ident.model();
    let policy = ident.policy.current();
    let creds = auth.0.policy_credentials();
    let items = m
        .credentials
        .values()
        .filter(|c| params.get("user_id").is_none_or(|u| &c.user_id == u))
        .filter(|c| params.get("type").is_none_or(|t| &c.kind == t))
        .filter(|c| policy.enforce("identity:list_credentials", &target(&c.user_id), creds))
        .map(|c| render(&ident, c))
        .collect();
    Ok(list_response(&ident, "credentials", items, "credentials"))
}

async fn show(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    let m = ident.model();
    let c = m.credentials.get(&id);
    enforce(&ident, &auth.0, "identity:get_credential", &target(c.map(|c| c.user_id.as_str()).unwrap_or("")))?;
    let c = c.ok_or_else(|| not_found("credential", &id))?;
    Ok(Json(json!({"credential": render(&ident, c)})).into_response())
}

async fn update(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>, Body(body): Body<Value>) -> ApiResult {
    let b: CredentialBody = parse("credential", member(body, "credential")?)?;
    {
        let m = ident.model();
        let c = m.credentials.get(&id).ok_or_else(|| not_found("credential", &id))?;
        enforce(&ident, &auth.0, "identity:update_credential", &target(&c.user_id))?;
        if let Some(u) = &b.user_id {
            enforce(&ident, &auth.0, "identity:update_credential", &target(u))?;
        }
    }
    let patch =
        CredentialPatch { user_id: b.user_id, project_id: b.project_id, kind: b.kind, blob: b.blob, extra: b.extra };
    let saved = ident.write(|t| service::credentials::update(t, &id, patch)).await?;
    Ok(Json(json!({"credential": render(&ident, &saved)})).into_response())
}

async fn delete(State(ident): State<Ctx>, auth: Auth, Path(id): Path<String>) -> ApiResult {
    {
        let m = ident.model();
        let c = m.credentials.get(&id).ok_or_else(|| not_found("credential", &id))?;
        enforce(&ident, &auth.0, "identity:delete_credential", &target(&c.user_id))?;
    }
    ident.write(|t| service::credentials::delete(t, &id)).await?;
    Ok(no_content())
}

// ------------------------------------------------------------------------------------ OS-EC2

fn render_ec2(ident: &Ctx, c: &Credential) -> Value {
    let blob: Value = serde_json::from_str(&c.blob).unwrap_or(Value::Null);
    let access = blob.get("access").cloned().unwrap_or(Value::Null);
    json!({
        "user_id": c.user_id, "tenant_id": c.project_id, "access": access,
        "secret": blob.get("secret").cloned().unwrap_or(Value::Null),
        "trust_id": blob.get("trust_id").cloned().unwrap_or(Value::Null),
        "links": self_link(ident, &format!("users/{}/credentials/OS-EC2/{}", c.user_id, access.as_str().unwrap_or(""))),
    })
}

fn ec2_target(user_id: &str) -> Value {
    json!({"user_id": user_id, "target": {"credential": {"user_id": user_id}}})
}

#[derive(Deserialize)]
struct Ec2Body {
    tenant_id: String,
}

async fn ec2_create(
    State(ident): State<Ctx>,
    auth: Auth,
    Path(user_id): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:ec2_create_credential", &ec2_target(&user_id))?;
    let b: Ec2Body = serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("Invalid input: {e}")))?;
    let access = new_id();
    let blob = json!({"access": access, "secret": new_id(), "trust_id": auth.0.trust_id}).to_string();
    let c = Credential {
        id: ec2_id(&access),
        user_id,
        project_id: Some(b.tenant_id),
        kind: "ec2".into(),
        blob,
        extra: Default::default(),
    };
    let saved = ident.write(|t| service::credentials::create_ec2(t, c)).await?;
    Ok(created(json!({"credential": render_ec2(&ident, &saved)})))
}

async fn ec2_list(State(ident): State<Ctx>, auth: Auth, Path(user_id): Path<String>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:ec2_list_credentials", &ec2_target(&user_id))?;
    let m = ident.model();
    let items = m
        .credentials
        .values()
        .filter(|c| c.user_id == user_id && c.kind == "ec2")
        .map(|c| render_ec2(&ident, c))
        .collect();
    Ok(list_response(&ident, "credentials", items, &format!("users/{user_id}/credentials/OS-EC2")))
}

async fn ec2_show(State(ident): State<Ctx>, auth: Auth, Path((user_id, access)): Path<(String, String)>) -> ApiResult {
    enforce(&ident, &auth.0, "identity:ec2_get_credential", &ec2_target(&user_id))?;
    let m = ident.model();
    let c = m
        .credentials
        .get(&ec2_id(&access))
        .filter(|c| c.user_id == user_id && c.kind == "ec2")
        .ok_or_else(|| not_found("credential", &access))?;
    Ok(Json(json!({"credential": render_ec2(&ident, c)})).into_response())
}

async fn ec2_delete(
    State(ident): State<Ctx>,
    auth: Auth,
    Path((user_id, access)): Path<(String, String)>,
) -> ApiResult {
    enforce(&ident, &auth.0, "identity:ec2_delete_credential", &ec2_target(&user_id))?;
    let id = ec2_id(&access);
    ident.write(|t| service::credentials::delete_ec2(t, &user_id, &id, &access)).await?;
    Ok(no_content())
}
