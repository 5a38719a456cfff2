//! `/audit/export.csv`: the audit log as CSV for signed-in (live) users, with the audit page's filters.
use crate::{error::ApiError, session::SignedIn, AppState};
use axum::{
    extract::{rejection::QueryRejection, Query, State},
    http::header,
    response::{IntoResponse, Response},
};

/// Columns of the export, in order.
pub const COLUMNS: [&str; 9] = [
    "id",
    "at",
    "actor",
    "source",
    "action",
    "flag_key",
    "tenant_id",
    "before",
    "after",
];

/// Every audit row the filters match (newest first, up to `store::audit::EXPORT_LIMIT`).
pub async fn audit_csv(
    State(state): State<AppState>,
    _user: SignedIn,
    query: Result<Query<app::audit::AuditFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(filter) = query?;
    let q = filter
        .to_query(store::audit::EXPORT_LIMIT)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let rows = store::audit::export(&state.pool, &q).await?;
    let body = to_csv(&rows).map_err(|e| {
        tracing::error!(error = %e, "writing the audit CSV failed");
        ApiError::internal()
    })?;
    let name = format!(
        "attachment; filename=\"rollgate-audit-{}.csv\"",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response())
}

/// The rows as CSV (RFC 4180 quoting by the `csv` crate; JSON columns as compact JSON).
pub fn to_csv(rows: &[store::audit::AuditRow]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    let json =
        |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        w.write_record([
            r.id.to_string(),
            r.at.to_rfc3339(),
            r.actor.clone(),
            r.source.clone(),
            r.action.clone(),
            r.flag_key.clone().unwrap_or_default(),
            r.tenant_id.clone().unwrap_or_default(),
            json(&r.before),
            json(&r.after),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}
