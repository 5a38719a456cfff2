//! `POST /api/activity`: the SaaS reports what its tenants do, in batches of up to 1,000 events.
//! All or nothing: one bad event and none is stored, and the answer lists every bad one.
use axum::{
    extract::{rejection::JsonRejection, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    auth::{Caller, Scope},
    error::{ApiError, ErrorBody},
    AppState,
};

/// A batch of events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityBatch {
    /// 1 to 1,000 events.
    pub events: Vec<store::activity::NewActivity>,
}

/// How many events were stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Stored events.
    pub accepted: u64,
}

/// A refused batch: nothing was stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchRejected {
    /// `invalid_events`.
    pub error: String,
    /// Summary.
    pub message: String,
    /// Every bad event with its index and reason.
    pub rejected: Vec<store::activity::Rejected>,
}

/// Stores a batch of activity events (tenant or server token).
#[utoipa::path(post, path = "/api/activity", tag = "activity", request_body = ActivityBatch,
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = Accepted), (status = 400, description = "Malformed JSON, wrong shape, or no events", body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = BatchRejected)))]
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<ActivityBatch>, JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Scope::Server, Scope::Tenant])?;
    // 422 here always means "events broke a rule" (BatchRejected); a body of the wrong shape is
    // a 400.
    let Json(batch) = body.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let n = batch.events.len();
    if n == 0 {
        return Err(ApiError::bad_request(
            "events is empty: send 1 to 1000 events",
        ));
    }
    if n > store::activity::MAX_BATCH {
        return Err(ApiError::payload_too_large(format!(
            "at most {} events per batch, got {n}",
            store::activity::MAX_BATCH
        )));
    }
    let own = match caller.scope {
        Scope::Tenant => caller.tenant_id.as_deref(),
        _ => None,
    };
    match store::activity::insert_batch(&state.pool, &batch.events, own).await? {
        Ok(accepted) => Ok((StatusCode::CREATED, Json(Accepted { accepted })).into_response()),
        Err(rejected) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(BatchRejected {
                error: "invalid_events".into(),
                message: format!(
                    "{} of {n} events are invalid; none was stored",
                    rejected.len()
                ),
                rejected,
            }),
        )
            .into_response()),
    }
}
