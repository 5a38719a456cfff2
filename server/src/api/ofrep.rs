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
use serde_json::{Map, Value};
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
    pub metadata: OfrepMetadata,
}

/// An evaluation's metadata (OFREP's free-form `metadata`): Tenantry's reason code, the bucket
/// and percentage of a percentage rollout, and the snapshot version it was decided on. Keys in the
/// order a JSON object map wrote them before this was a struct (sorted), so answers are unchanged.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfrepMetadata {
    /// The tenant's bucket (1–100), for a percentage rollout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<u32>,
    /// The rollout's percentage, for a percentage rollout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<u32>,
    /// The snapshot version the decision was made on.
    #[serde(rename = "snapshotVersion")]
    pub snapshot_version: u64,
    /// Tenantry's reason: `global`, `pilot`, `cohort`, `tenant_enabled`, `excluded`, `off`, …
    #[serde(rename = "tenantryReason")]
    pub tenantry_reason: &'static str,
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
    if let Some(tenant) = fast::targeting_key(body) {
        return Ok(tenant);
    }
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

/// The common case read without building a `serde_json::Value`: a JSON object whose `context` is
/// an object with a non-empty string `targetingKey` (other keys skipped). Anything else — or a
/// duplicate key — is `None`, and the general path says exactly what is wrong.
mod fast {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde::Deserialize;

    struct Body(Option<String>);
    struct Context(Option<String>);

    /// The visitor of both objects: `field` is the one key kept.
    struct Object<T> {
        field: &'static str,
        keep: fn(Option<String>) -> T,
    }

    impl<'de, T> Visitor<'de> for Object<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
            let mut found: Option<Option<String>> = None;
            while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                if k != self.field {
                    map.next_value::<IgnoredAny>()?;
                } else if found.is_some() {
                    return Err(de::Error::custom("duplicate key"));
                } else if self.field == "context" {
                    found = Some(map.next_value::<Context>()?.0);
                } else {
                    found = Some(Some(map.next_value::<Cow<'de, str>>()?.into_owned()));
                }
            }
            Ok((self.keep)(found.flatten()))
        }
    }

    impl<'de> Deserialize<'de> for Body {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Object {
                field: "context",
                keep: Body,
            })
        }
    }

    impl<'de> Deserialize<'de> for Context {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Object {
                field: "targetingKey",
                keep: Context,
            })
        }
    }

    pub(super) fn targeting_key(body: &[u8]) -> Option<String> {
        let key = serde_json::from_slice::<Body>(body).ok()?.0?;
        let trimmed = key.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_string())
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn only_the_plain_case_takes_the_fast_path() {
            let fast = |b: &str| super::targeting_key(b.as_bytes());
            assert_eq!(
                fast(r#"{"context":{"targetingKey":" acme "}}"#).as_deref(),
                Some("acme")
            );
            assert_eq!(
                fast(r#"{"x":[1,{"y":2}],"context":{"a":1,"targetingKey":"acme"}}"#).as_deref(),
                Some("acme")
            );
            for slow in [
                "",
                "[]",
                r#"{"context":null}"#,
                r#"{"context":["acme"]}"#,
                r#"{"context":{"targetingKey":7}}"#,
                r#"{"context":{"targetingKey":"  "}}"#,
                r#"{"context":{"targetingKey":"a","targetingKey":"b"}}"#,
                r#"{"context":{}}"#,
                r#"[{"targetingKey":"acme"}]"#,
            ] {
                assert_eq!(fast(slow), None, "{slow}");
            }
        }
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
    let (bucket, percentage) = match d.reason {
        Reason::Cohort { bucket, percentage } => (Some(bucket), Some(percentage)),
        _ => (None, None),
    };
    let metadata = OfrepMetadata {
        bucket,
        percentage,
        snapshot_version: snap.version(),
        tenantry_reason: d.reason.code(),
    };
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
