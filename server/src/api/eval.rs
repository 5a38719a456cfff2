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
    for key in snap.flag_keys() {
        let d = snap.evaluate(key, &tenant);
        crate::metrics::evaluation(key, &d);
        out.insert(key, d.on);
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(out)).into_response())
}

/// The SDK formats of the snapshot and the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Format {
    /// `rollgate.snapshot/v1`: every enabled row listed (the default, for existing SDKs).
    #[default]
    V1,
    /// `tenantry.snapshot/v2`: targets kept as rules, only the rows that differ listed.
    V2,
}

/// The media type of the compact snapshot.
pub const V2_MEDIA_TYPE: &str = "application/vnd.tenantry.snapshot.v2+json";

/// Query of `/api/client/snapshot` and `/api/client/stream`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct SdkQuery {
    /// `v1` (default) or `v2` (the compact form; also chosen by
    /// `Accept: application/vnd.tenantry.snapshot.v2+json`).
    pub format: Option<String>,
    /// Stream only, with `format=v2`: the version the client holds (the snapshot's ETag); changes
    /// after it come first. `Last-Event-ID` wins when both are sent.
    pub since: Option<u64>,
}

fn format(query: &SdkQuery, headers: &HeaderMap) -> Result<Format, ApiError> {
    match query.format.as_deref().map(str::trim) {
        Some("v2" | "2") => Ok(Format::V2),
        Some("v1" | "1") => Ok(Format::V1),
        Some("") | None => {
            let asks_v2 = headers
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|t| {
                    t.split(';')
                        .next()
                        .is_some_and(|m| m.trim().eq_ignore_ascii_case(V2_MEDIA_TYPE))
                });
            Ok(if asks_v2 { Format::V2 } else { Format::V1 })
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown format {other:?}: use v1 or v2"
        ))),
    }
}

/// The whole evaluation snapshot for SDKs and edges that evaluate locally with `flags`.
#[utoipa::path(
    get, path = "/api/client/snapshot", tag = "sdk",
    security(("bearer" = []), ("api_key" = [])),
    params(
        SdkQuery,
        ("If-None-Match" = Option<String>, Header, description = "A previous ETag"),
        ("Accept" = Option<String>, Header, description = "`application/vnd.tenantry.snapshot.v2+json` asks for the compact form, like `format=v2`"),
    ),
    responses(
        (status = 200, description = "The snapshot. Version 1 (`rollgate.snapshot/v1`, the default, `application/json`): every tenant and, per flag, every tenant whose row is enabled; ETag `\"<version>\"`. Version 2 (`format=v2` or the `Accept` type; `tenantry.snapshot/v2`, `application/vnd.tenantry.snapshot.v2+json`): the tenants once with plan, region and tags, and per flag its global row, its rollout target and only the rows that differ from what the target implies — about a tenth of the size; ETag `\"<version>.v2\"`. Evaluate either with the `flags` crate (`Snapshot`, `CompactSnapshot`); both give the same decisions. Compressed (gzip, br) when the client accepts it.", content_type = "application/json"),
        (status = 304, description = "Unchanged since the ETag"),
        (status = 400, description = "An unknown `format`", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn snapshot(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<SdkQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Scope::Server, Scope::Admin])?;
    let Query(q) = query?;
    let format = format(&q, &headers)?;
    let snap = state.live.current();
    let version = i64::try_from(snap.version()).unwrap_or(i64::MAX);
    let (tag, content_type) = match format {
        Format::V1 => (super::etag(version), "application/json"),
        Format::V2 => (format!("\"{version}.v2\""), V2_MEDIA_TYPE),
    };
    let vary = (header::VARY, "Accept".to_string());
    if super::none_match(&headers, &tag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag), vary]).into_response());
    }
    let body = match format {
        Format::V1 => snap.v1_json().await,
        Format::V2 => snap.v2_json().await,
    }
    .map_err(|e| {
        tracing::error!(error = %e, "snapshot serialisation failed");
        ApiError::internal()
    })?;
    Ok((
        [
            (header::ETAG, tag),
            (header::CONTENT_TYPE, content_type.to_string()),
            vary,
        ],
        body,
    )
        .into_response())
}

/// Server-Sent Events. Version 1 (default): a `snapshot` event with `{"version": n}` now and
/// after every change. Version 2 (`format=v2`): the changes themselves.
#[utoipa::path(
    get, path = "/api/client/stream", tag = "sdk",
    security(("bearer" = []), ("api_key" = [])),
    params(
        SdkQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "With `format=v2`: the id of the last event received (a version); the changes after it come first"),
    ),
    responses(
        (status = 200, description = "text/event-stream. Version 1: `snapshot` events carrying `{\"version\": n}`. Version 2 (`format=v2`): `changes` events whose `id` is the version they lead to and whose data is `{\"version\": n, \"from\": m, \"tenants\": [{\"id\", \"plan\", \"region\", \"tags\"} or {\"id\", \"removed\": true}], \"rows\": [{\"flag\", \"tenant\" (absent: the global row), \"enabled\", \"excluded\"}], \"flags\": [{\"key\", \"target\"} or {\"key\", \"removed\": true}]}` (empty lists left out): the state at `version` of everything that changed after `from`, applicable to a v2 snapshot at any version from `from` to `version` (`flags::delta::Changes`, `CompactSnapshot::apply`: tenants, then rows, then targets). The changes after the client's version (`Last-Event-ID` or `since`) come first. A `reload` event (`{\"version\": n}`, no id) means the changes cannot be sent — the client connected without a version, or is further behind than the server keeps — so the client fetches `/api/client/snapshot?format=v2` and applies the following events.", content_type = "text/event-stream"),
        (status = 400, description = "An unknown `format`, or a `Last-Event-ID` that is not a version", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    )
)]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<SdkQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Scope::Server, Scope::Admin])?;
    let Query(q) = query?;
    match format(&q, &headers)? {
        Format::V1 => Ok(version_events(&state).into_response()),
        Format::V2 => {
            let last = match headers.get("last-event-id") {
                None => None,
                Some(v) => Some(
                    v.to_str()
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                        .ok_or_else(|| {
                            ApiError::bad_request("Last-Event-ID must be a version (a number)")
                        })?,
                ),
            };
            Ok(change_events(state, last.or(q.since)).into_response())
        }
    }
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
            .id(snap.version().to_string())
            .data(format!("{{\"version\":{}}}", snap.version())))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn reload(version: u64) -> Event {
    Event::default()
        .event("reload")
        .data(format!("{{\"version\":{version}}}"))
}

/// The version-2 stream of a client that holds `since` (None: it holds nothing yet, so it is
/// told to reload first). On each new version: the changes after the client's version, from the
/// steps kept in memory, else from the outbox (one query), else a `reload`.
fn change_events(
    state: AppState,
    since: Option<u64>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let updates = WatchStream::new(state.live.snapshot.subscribe());
    let events = futures::stream::unfold(
        (updates, since, state),
        |(mut updates, mut client, state)| async move {
            loop {
                let snap = updates.next().await?;
                let now = snap.version();
                let Some(held) = client else {
                    client = Some(now);
                    return Some((Ok(reload(now)), (updates, client, state)));
                };
                if held >= now {
                    continue;
                }
                let event = match state.live.changes_since(held) {
                    crate::live::Catchup::Current => continue,
                    crate::live::Catchup::Changes(to, json) => {
                        client = Some(to);
                        changes_event(to, &json)
                    }
                    crate::live::Catchup::TooMany => {
                        client = Some(now);
                        reload(now)
                    }
                    crate::live::Catchup::Unknown => {
                        match store::outbox::since(&state.pool, held).await {
                            Ok(Some(c))
                                if c.len() <= crate::live::MAX_EVENT_KEYS && c.version > held =>
                            {
                                match c.to_json() {
                                    Ok(json) => {
                                        client = Some(c.version);
                                        changes_event(c.version, json.as_bytes())
                                    }
                                    Err(_) => {
                                        client = Some(now);
                                        reload(now)
                                    }
                                }
                            }
                            Ok(Some(c)) if c.version <= held => continue,
                            _ => {
                                client = Some(now);
                                reload(now)
                            }
                        }
                    }
                };
                return Some((Ok(event), (updates, client, state)));
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn changes_event(version: u64, json: &[u8]) -> Event {
    Event::default()
        .event("changes")
        .id(version.to_string())
        .data(String::from_utf8_lossy(json))
}
