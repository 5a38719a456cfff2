//! The REST surface: evaluation (`/api/features`, OFREP, SDK snapshot and stream), activity
//! ingestion (`/api/activity`) and the admin API under `/api/admin`.
pub mod activity;
pub mod admin;
pub mod eval;
pub mod ofrep;

use axum::{
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

use crate::error::ApiError;

/// The version in `If-Match` (`"12"`, `W/"12"` or `12`), if the header is present.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| ApiError::bad_request("If-Match is not ASCII"))?
        .trim();
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    s.parse().map(Some).map_err(|_| {
        ApiError::bad_request(format!("If-Match must be a version like \"12\", got {s:?}"))
    })
}

/// An ETag for a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// A JSON answer carrying its version as ETag.
pub fn versioned<T: serde::Serialize>(status: StatusCode, version: i64, body: T) -> Response {
    (status, [(header::ETAG, etag(version))], Json(body)).into_response()
}

/// Whether `If-None-Match` lists `tag` (or `*`).
pub fn none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(axum::http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t == tag || t.strip_prefix("W/") == Some(tag))
}
