//! Evaluation for the SaaS application and SDKs, served from the in-memory snapshot.
use std::{collections::BTreeMap, convert::Infallible, time::Duration};

use axum::{
    extract::{rejection::QueryRejection, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio_stream::wrappers::WatchStream;
use utoipa::IntoParams;

use crate::{
    auth::{Caller, Scope},
    error::{ApiError, ErrorBody},
    AppState,
};

/// Query of `/api/features`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct FeaturesQuery {
    /// The tenant to evaluate for (server and admin tokens; a tenant token may omit it).
    pub tenant: Option<String>,
}

/// Every flag for one tenant: `{"multi_workspace_enabled": false, …}`.
#[utoipa::path(
    get, path = "/api/features", tag = "evaluation",
    params(FeaturesQuery),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Flag key → ON/OFF for the tenant. Unknown tenants get every flag OFF (fail closed).", body = BTreeMap<String, bool>),
        (status = 400, description = "A server or admin token without `?tenant=`", body = ErrorBody),
        (status = 401, description = "No, unknown, revoked or expired token", body = ErrorBody),
        (status = 403, description = "A tenant token asking for another tenant", body = ErrorBody),
    )
)]
pub async fn features(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<FeaturesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let tenant = match (
        caller.scope,
        caller.tenant_id.as_deref(),
        q.tenant.as_deref(),
    ) {
        (Scope::Tenant, Some(own), None) => own.to_string(),
        (Scope::Tenant, Some(own), Some(asked)) if asked == own => own.to_string(),
        (Scope::Tenant, _, _) => {
            return Err(ApiError::forbidden(
                "a tenant token may only read its own tenant's features",
            ))
        }
        (_, _, Some(t)) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            return Err(ApiError::bad_request(
                "pass ?tenant=ID to evaluate with a server or admin token",
            ))
        }
    };
    let snap = state.live.current();
    let mut out = BTreeMap::new();
    for key in snap.flags.keys() {
        let d = snap.evaluate(key, &tenant);
        crate::metrics::evaluation(key, &d);
        out.insert(key.as_str(), d.on);
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(out)).into_response())
}

/// The whole evaluation snapshot for SDKs and edges that evaluate locally with `flags`.
#[utoipa::path(
    get, path = "/api/client/snapshot", tag = "sdk",
    security(("bearer" = []), ("api_key" = [])),
    params(("If-None-Match" = Option<String>, Header, description = "A previous ETag")),
    responses(
        (status = 200, description = "The snapshot (format rollgate.snapshot/v1); its ETag is its version", content_type = "application/json"),
        (status = 304, description = "Unchanged since the ETag"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn snapshot(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(&[Scope::Server, Scope::Admin])?;
    let snap = state.live.current();
    let tag = super::etag(i64::try_from(snap.version).unwrap_or(i64::MAX));
    if super::none_match(&headers, &tag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    let body = snap.to_json().map_err(|e| {
        tracing::error!(error = %e, "snapshot serialisation failed");
        ApiError::internal()
    })?;
    Ok((
        [
            (header::ETAG, tag),
            (header::CONTENT_TYPE, "application/json".to_string()),
        ],
        body,
    )
        .into_response())
}

/// Server-Sent Events: a `snapshot` event with `{"version": n}` now and after every change.
#[utoipa::path(
    get, path = "/api/client/stream", tag = "sdk",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "text/event-stream of `snapshot` events carrying {\"version\": n}", content_type = "text/event-stream"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(&[Scope::Server, Scope::Admin])?;
    Ok(version_events(&state))
}

/// The same change stream for the signed-in web app (session cookie instead of a token).
pub async fn ui_stream(
    State(state): State<AppState>,
    _user: crate::session::SignedIn,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    version_events(&state)
}

fn version_events(state: &AppState) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = WatchStream::new(state.live.snapshot.subscribe()).map(|snap| {
        Ok(Event::default()
            .event("snapshot")
            .id(snap.version.to_string())
            .data(format!("{{\"version\":{}}}", snap.version)))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
