//! `/audit/export.csv`: the audit log as CSV for signed-in users, with the audit page's filters.
use axum::{
    extract::{rejection::QueryRejection, Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use tower_sessions::Session;

use crate::{error::ApiError, AppState};

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
    session: Session,
    query: Result<Query<app::audit::AuditFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    if !app::auth::is_signed_in(&session).await {
        return Err(ApiError::unauthorized("sign in to export the audit log"));
    }
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

/// A cell a spreadsheet would not run as a formula: text that begins with `=`, `+`, `-`, `@`, a
/// tab or a carriage return gets a leading `'` (OWASP's CSV-injection advice). Actors, tenant ids
/// and audited values come from people and tokens.
pub fn cell(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

/// The rows as CSV (RFC 4180 quoting by the `csv` crate; JSON columns as compact JSON; every text
/// cell through [`cell`]).
pub fn to_csv(rows: &[store::audit::AuditRow]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    let json =
        |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        w.write_record([
            r.id.to_string(),
            r.at.to_rfc3339(),
            cell(r.actor.clone()),
            cell(r.source.clone()),
            cell(r.action.clone()),
            cell(r.flag_key.clone().unwrap_or_default()),
            cell(r.tenant_id.clone().unwrap_or_default()),
            cell(json(&r.before)),
            cell(json(&r.after)),
        ])?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn formulas_are_neutralised() {
        for bad in [
            "=HYPERLINK(\"http://x\")",
            "+1+1",
            "-2+3",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(super::cell(bad.to_string()), format!("'{bad}"));
        }
        for ok in ["acme-logistics", "token:admin", "{\"phase\":\"10%\"}", ""] {
            assert_eq!(super::cell(ok.to_string()), ok);
        }
    }
}
