//! OpenFeature Remote Evaluation Protocol v1: single and bulk boolean evaluation. The tenant id
//! is the `targetingKey`. Any OpenFeature SDK with an OFREP provider works against these.
use axum::{
    body::Bytes,
    extract::{rejection::PathRejection, Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use flags::Reason;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::{
    auth::{Caller, Scope},
    error::ApiError,
    AppState,
};

/// A successful evaluation.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfrepSuccess {
    /// Flag key.
    pub key: String,
    /// The flag's value for the context.
    pub value: bool,
    /// STATIC, TARGETING_MATCH, SPLIT, DISABLED or DEFAULT.
    pub reason: &'static str,
    /// `on` or `off`.
    pub variant: &'static str,
    /// Tenantry's own reason and the snapshot version.
    pub metadata: Map<String, Value>,
}

/// A failed evaluation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfrepFailure {
    /// Flag key (absent for a failed bulk request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// FLAG_NOT_FOUND, TARGETING_KEY_MISSING, PARSE_ERROR, INVALID_CONTEXT or GENERAL.
    pub error_code: &'static str,
    /// What went wrong.
    pub error_details: String,
}

/// The bulk answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfrepBulk {
    /// One entry per flag.
    pub flags: Vec<OfrepSuccess>,
}

/// An OFREP error answer.
struct Fail(StatusCode, OfrepFailure);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn failure(
    status: StatusCode,
    key: Option<&str>,
    code: &'static str,
    details: impl Into<String>,
) -> Fail {
    Fail(
        status,
        OfrepFailure {
            key: key.map(str::to_string),
            error_code: code,
            error_details: details.into(),
        },
    )
}

/// The `targetingKey` of the request body, or the OFREP error response.
fn targeting_key(body: &[u8], key: Option<&str>) -> Result<String, Fail> {
    let doc: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body).map_err(|e| {
            failure(
                StatusCode::BAD_REQUEST,
                key,
                "PARSE_ERROR",
                format!("request body is not JSON: {e}"),
            )
        })?
    };
    let Value::Object(doc) = doc else {
        return Err(failure(
            StatusCode::BAD_REQUEST,
            key,
            "PARSE_ERROR",
            "request body must be a JSON object",
        ));
    };
    let no_context = Map::new();
    let ctx = match doc.get("context") {
        None | Some(Value::Null) => &no_context,
        Some(Value::Object(c)) => c,
        Some(_) => {
            return Err(failure(
                StatusCode::BAD_REQUEST,
                key,
                "INVALID_CONTEXT",
                "context must be an object",
            ));
        }
    };
    match ctx.get("targetingKey") {
        None | Some(Value::Null) => Err(failure(
            StatusCode::BAD_REQUEST,
            key,
            "TARGETING_KEY_MISSING",
            "context.targetingKey (the tenant id) is required",
        )),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(_) => Err(failure(
            StatusCode::BAD_REQUEST,
            key,
            "INVALID_CONTEXT",
            "context.targetingKey must be a non-empty string",
        )),
    }
}

fn check_scope(caller: &Caller, tenant: &str) -> Result<(), ApiError> {
    match caller.scope {
        Scope::Server | Scope::Admin => Ok(()),
        Scope::Tenant if caller.tenant_id.as_deref() == Some(tenant) => Ok(()),
        Scope::Tenant => Err(ApiError::forbidden(
            "a tenant token may only evaluate its own tenant",
        )),
    }
}

fn evaluate(snap: &crate::live::LiveSnapshot, key: &str, tenant: &str) -> OfrepSuccess {
    let d = snap.evaluate(key, tenant);
    crate::metrics::evaluation(key, &d);
    let reason = match d.reason {
        Reason::Global => "STATIC",
        Reason::Cohort { .. } => "SPLIT",
        Reason::Pilot | Reason::TenantEnabled | Reason::Excluded => "TARGETING_MATCH",
        Reason::Off if snap.is_disabled(key) => "DISABLED",
        _ => "DEFAULT",
    };
    let mut metadata = Map::new();
    metadata.insert("tenantryReason".into(), json!(d.reason.code()));
    if let Reason::Cohort { bucket, percentage } = d.reason {
        metadata.insert("bucket".into(), json!(bucket));
        metadata.insert("percentage".into(), json!(percentage));
    }
    metadata.insert("snapshotVersion".into(), json!(snap.version()));
    OfrepSuccess {
        key: key.to_string(),
        value: d.on,
        reason,
        variant: if d.on { "on" } else { "off" },
        metadata,
    }
}

/// Evaluates one flag for the `targetingKey` tenant.
#[utoipa::path(
    post, path = "/ofrep/v1/evaluate/flags/{key}", tag = "ofrep",
    params(("key" = String, Path, description = "Flag key")),
    request_body(content = Object, description = "{\"context\": {\"targetingKey\": \"<tenant id>\"}}"),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = OfrepSuccess),
        (status = 400, description = "PARSE_ERROR, TARGETING_KEY_MISSING or INVALID_CONTEXT", body = OfrepFailure),
        (status = 404, description = "FLAG_NOT_FOUND", body = OfrepFailure),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
    )
)]
pub async fn evaluate_one(
    State(state): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Path(key) = key?;
    let tenant = match targeting_key(&body, Some(&key)) {
        Ok(t) => t,
        Err(fail) => return Ok(fail.into_response()),
    };
    check_scope(&caller, &tenant)?;
    let snap = state.live.current();
    if !snap.has_flag(&key) {
        crate::metrics::evaluation(
            &key,
            &flags::Decision {
                on: false,
                reason: Reason::UnknownFlag,
            },
        );
        return Ok(failure(
            StatusCode::NOT_FOUND,
            Some(&key),
            "FLAG_NOT_FOUND",
            format!("no flag {key:?}"),
        )
        .into_response());
    }
    Ok(Json(evaluate(&snap, &key, &tenant)).into_response())
}

/// Evaluates every flag for the `targetingKey` tenant. The ETag changes with the data and the
/// tenant; `If-None-Match` with the current one gives 304.
#[utoipa::path(
    post, path = "/ofrep/v1/evaluate/flags", tag = "ofrep",
    request_body(content = Object, description = "{\"context\": {\"targetingKey\": \"<tenant id>\"}}"),
    params(("If-None-Match" = Option<String>, Header, description = "A previous ETag")),
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = OfrepBulk),
        (status = 304, description = "Unchanged since the ETag"),
        (status = 400, body = OfrepFailure),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
    )
)]
pub async fn evaluate_all(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = match targeting_key(&body, None) {
        Ok(t) => t,
        Err(fail) => return Ok(fail.into_response()),
    };
    check_scope(&caller, &tenant)?;
    let snap = state.live.current();
    let tag = format!("\"{}-{:x}\"", snap.version(), fnv1a(tenant.as_bytes()));
    if super::none_match(&headers, &tag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    let mut keys: Vec<&str> = snap.flag_keys().collect();
    keys.sort();
    let flags = keys
        .into_iter()
        .map(|k| evaluate(&snap, k, &tenant))
        .collect();
    Ok(([(header::ETAG, tag)], Json(OfrepBulk { flags })).into_response())
}

/// FNV-1a, to fold the tenant into the bulk ETag.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}
