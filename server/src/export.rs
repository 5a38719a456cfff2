//! `/audit/export.csv`: the audit log as CSV for signed-in (live) users, with the audit page's filters.
use futures::StreamExt;

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
    // The first page before the answer starts, so a database error is still a proper error; the
    // rest streams page by page (the whole log is never held in memory).
    let first = store::audit::export_page(&state.pool, &q, PAGE).await?;
    let csv_error = |e: csv::Error| {
        tracing::error!(error = %e, "writing the audit CSV failed");
        ApiError::internal()
    };
    let head = to_csv(&first).map_err(csv_error)?;
    let next = Paging {
        before_id: first.last().map(|r| r.id),
        sent: first.len() as i64,
        done: (first.len() as i64) < PAGE,
    };
    let pool = state.pool.clone();
    let rest = futures::stream::unfold(next, move |mut p| {
        let (pool, mut q) = (pool.clone(), q.clone());
        async move {
            if p.done || p.sent >= store::audit::EXPORT_LIMIT {
                return None;
            }
            q.before_id = p.before_id;
            let limit = PAGE.min(store::audit::EXPORT_LIMIT - p.sent);
            let chunk = match store::audit::export_page(&pool, &q, limit).await {
                Ok(rows) => {
                    p.before_id = rows.last().map(|r| r.id);
                    p.sent += rows.len() as i64;
                    p.done = (rows.len() as i64) < limit;
                    rows_csv(&rows).map_err(|e| std::io::Error::other(e.to_string()))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "audit CSV export stopped");
                    p.done = true;
                    Err(std::io::Error::other("the audit export stopped"))
                }
            };
            Some((chunk.map(axum::body::Bytes::from), p))
        }
    });
    let body =
        futures::stream::once(
            async move { Ok::<_, std::io::Error>(axum::body::Bytes::from(head)) },
        )
        .chain(rest)
        // Fused: a compressing layer polls the body once more after its end.
        .fuse();
    let name = format!(
        "attachment; filename=\"tenantry-audit-{}.csv\"",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, name),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

/// Rows per page of the streamed export.
const PAGE: i64 = 2_000;

/// Where a streamed export stands.
struct Paging {
    before_id: Option<i64>,
    sent: i64,
    done: bool,
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

/// The rows as CSV with its header line (RFC 4180 quoting by the `csv` crate; JSON columns as
/// compact JSON; every text cell through [`cell`]).
pub fn to_csv(rows: &[store::audit::AuditRow]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS)?;
    write_rows(&mut w, rows)?;
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

/// The rows as CSV lines, without the header (the pages after the first).
fn rows_csv(rows: &[store::audit::AuditRow]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    write_rows(&mut w, rows)?;
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

fn write_rows(
    w: &mut csv::Writer<Vec<u8>>,
    rows: &[store::audit::AuditRow],
) -> Result<(), csv::Error> {
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
    Ok(())
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
