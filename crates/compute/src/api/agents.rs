//! `PUT /v2.1/internal/agents/{host}`: where host agents report (`crate::service::agents`). Not part
//! of Nova's API; only the service user (role `service`) may call it.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use haneul_core::routes::{rule, Routes};
use haneul_core::ApiError;

use super::{ApiResult, Ctx};
use crate::service::agents::ReportBody;

pub fn routes() -> Routes<Ctx> {
    Routes::new().put("/internal/agents/{host}", rule("haneul:agent:report"), report)
}

async fn report(State(c): State<Ctx>, Path(host): Path<String>, body: Bytes) -> ApiResult {
    let b: ReportBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("Invalid agent report: {e}")))?;
    c.agent_report(&host, b.agent).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
