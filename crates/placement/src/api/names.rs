//! Resource classes and traits: the standard ones and an operator's `CUSTOM_` ones.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use haneul_core::error::ApiError;
use haneul_core::routes::{rule, Routes};
use serde_json::{json, Value};

use super::{
    bad, created, created_or_confirmed, no_content, object, only_keys, only_params, param, required, since, string,
    ApiResult, Ctx, Mv, Pairs,
};
use crate::model::{STANDARD_CLASSES, STANDARD_TRAITS};
use crate::service;

pub fn routes() -> Routes<Ctx> {
    Routes::new()
        .get("/resource_classes", rule("placement:resource_classes:list"), list_classes)
        .post("/resource_classes", rule("placement:resource_classes:create"), create_class)
        .get("/resource_classes/{name}", rule("placement:resource_classes:show"), show_class)
        .put("/resource_classes/{name}", rule("placement:resource_classes:update"), put_class)
        .delete("/resource_classes/{name}", rule("placement:resource_classes:delete"), delete_class)
        .get("/traits", rule("placement:traits:list"), list_traits)
        .get("/traits/{name}", rule("placement:traits:show"), show_trait)
        .put("/traits/{name}", rule("placement:traits:update"), put_trait)
        .delete("/traits/{name}", rule("placement:traits:delete"), delete_trait)
}

fn class_json(name: &str) -> Value {
    json!({"name": name, "links": [{"rel": "self", "href": format!("/resource_classes/{name}")}]})
}

fn custom_name_error(kind: &str) -> ApiError {
    bad(format!(
        "JSON does not validate: the {kind} name must start with the prefix \"CUSTOM_\", be at most 255 characters and use only \"A\"-\"Z\", \"0\"-\"9\" and \"_\"."
    ))
}

async fn list_classes(State(p): State<Ctx>) -> ApiResult {
    let m = p.model();
    let list: Vec<Value> = STANDARD_CLASSES.iter().copied().chain(m.classes.keys()).map(class_json).collect();
    Ok(Json(json!({"resource_classes": list})).into_response())
}

async fn create_class(State(p): State<Ctx>, mv: Mv, body: Bytes) -> ApiResult {
    method_since(mv, 2)?;
    let o = object(&body)?;
    only_keys(&o, &["name"])?;
    let name = string(required(&o, "name")?, "name")?.to_string();
    if !service::is_custom(&name) {
        return Err(custom_name_error("resource class"));
    }
    let made = p.write(|t| service::create_class(t, &name)).await?;
    if !made {
        return Err(ApiError::conflict(format!("Conflicting resource class already exists: {name}"))
            .with_kind(service::code::DUPLICATE_NAME));
    }
    Ok(created(&format!("{}/resource_classes/{name}", p.public_url), None))
}

/// 405 for the class-writing methods before microversion `1.minor`.
fn method_since(mv: Mv, minor: u32) -> ApiResult<()> {
    if mv.at_least(minor) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "The method is not allowed for the requested URL."))
    }
}

async fn show_class(State(p): State<Ctx>, Path(name): Path<String>) -> ApiResult {
    if !p.model().class_exists(&name) {
        return Err(ApiError::not_found(format!("No such resource class {name}.")));
    }
    Ok(Json(class_json(&name)).into_response())
}

/// From 1.7: create the class if missing (201) or confirm it (204). Before, 1.2–1.6: rename
/// a custom class, which haneul does not support (classes are referenced by name).
async fn put_class(State(p): State<Ctx>, mv: Mv, Path(name): Path<String>, body: Bytes) -> ApiResult {
    method_since(mv, 2)?;
    if !mv.at_least(7) {
        let o = object(&body)?;
        only_keys(&o, &["name"])?;
        let new = string(required(&o, "name")?, "name")?;
        if !service::is_custom(new) {
            return Err(custom_name_error("resource class"));
        }
        return Err(bad("Renaming a resource class is not supported; create a new one (microversion 1.7)."));
    }
    if !service::is_custom(&name) {
        return Err(custom_name_error("resource class"));
    }
    let made = p.write(|t| service::create_class(t, &name)).await?;
    Ok(created_or_confirmed(&format!("{}/resource_classes/{name}", p.public_url), made))
}

async fn delete_class(State(p): State<Ctx>, mv: Mv, Path(name): Path<String>) -> ApiResult {
    method_since(mv, 2)?;
    p.write(|t| service::delete_class(t, &name)).await?;
    Ok(no_content())
}

async fn list_traits(State(p): State<Ctx>, mv: Mv, Query(q): Query<Pairs>) -> ApiResult {
    since(mv, 6)?;
    only_params(&q, &["name", "associated"])?;
    let m = p.model();
    let name_filter: Box<dyn Fn(&str) -> bool> = match param(&q, "name") {
        None => Box::new(|_| true),
        Some(v) => {
            if let Some(prefix) = v.strip_prefix("startswith:") {
                let prefix = prefix.to_string();
                Box::new(move |n| n.starts_with(&prefix))
            } else if let Some(list) = v.strip_prefix("in:") {
                let names: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
                Box::new(move |n| names.iter().any(|x| x == n))
            } else {
                return Err(bad(format!(
                    "Badly formatted name parameter. Expected name query string parameter in form: ?name=[in|startswith]:[name1,name2|prefix]. Got: \"{v}\""
                )));
            }
        }
    };
    let associated = match param(&q, "associated").map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(v) => {
            return Err(bad(format!("The query parameter \"associated\" only accepts \"true\" or \"false\". Got: {v}")))
        }
    };
    let used = |n: &str| m.providers.values().any(|p| p.traits.contains(n));
    let mut names: Vec<&str> = STANDARD_TRAITS.iter().copied().chain(m.traits.keys()).collect();
    names.sort_unstable();
    let list: Vec<&str> =
        names.into_iter().filter(|n| name_filter(n)).filter(|n| associated.is_none_or(|a| used(n) == a)).collect();
    Ok(Json(json!({"traits": list})).into_response())
}

async fn show_trait(State(p): State<Ctx>, mv: Mv, Path(name): Path<String>) -> ApiResult {
    since(mv, 6)?;
    if !p.model().trait_exists(&name) {
        return Err(ApiError::not_found(format!("No such trait(s): {name}.")));
    }
    Ok(no_content())
}

async fn put_trait(State(p): State<Ctx>, mv: Mv, Path(name): Path<String>) -> ApiResult<Response> {
    since(mv, 6)?;
    if !service::is_custom(&name) {
        return Err(bad(
            "The trait is invalid. A valid trait must be no longer than 255 characters, start with the prefix \"CUSTOM_\" and use following characters: \"A\"-\"Z\", \"0\"-\"9\" and \"_\"",
        ));
    }
    let made = p.write(|t| service::create_trait(t, &name)).await?;
    Ok(created_or_confirmed(&format!("{}/traits/{name}", p.public_url), made))
}

async fn delete_trait(State(p): State<Ctx>, mv: Mv, Path(name): Path<String>) -> ApiResult {
    since(mv, 6)?;
    p.write(|t| service::delete_trait(t, &name)).await?;
    Ok(no_content())
}
