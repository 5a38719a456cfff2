//! `/audit`: every change (UI, API, CLI, raw SQL) with actor, time, before and after; filters,
//! paging, CSV export (`/audit/export.csv`, same filters) and time travel ("which tenants had
//! flag K ON at time T").
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::AppError;

/// Rows per page of the audit log.
pub const PER_PAGE: i64 = 50;

/// One audit entry as the pages show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditView {
    /// Id (increasing).
    pub id: i64,
    /// When, `YYYY-MM-DD HH:MM:SS` UTC (formatted on the server: the browser build carries no
    /// date library).
    pub at: String,
    /// When, RFC 3339.
    pub at_rfc3339: String,
    /// Who.
    pub actor: String,
    /// Through what: ui, api, cli, sql, system.
    pub source: String,
    /// What.
    pub action: String,
    /// Flag, if any.
    pub flag_key: Option<String>,
    /// Tenant, if any.
    pub tenant_id: Option<String>,
    /// Before → after, the fields that changed.
    pub change: String,
}

/// The filters of the audit page; also its URL query and the CSV export's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditFilter {
    /// Flag key.
    pub flag: String,
    /// Tenant id.
    pub tenant: String,
    /// Actor.
    pub actor: String,
    /// Source.
    pub source: String,
    /// From (UTC, `YYYY-MM-DDTHH:MM` or RFC 3339).
    pub since: String,
    /// Until (exclusive).
    pub until: String,
    /// Rows older than this id (the next page).
    pub before: Option<i64>,
    /// Time travel: the flag.
    pub tt_flag: String,
    /// Time travel: the moment.
    pub tt_at: String,
}

/// Sources an audit row can have.
pub const SOURCES: &[&str] = &["ui", "api", "cli", "sql", "system", "migration"];

impl AuditFilter {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> = [
            ("flag", &self.flag),
            ("tenant", &self.tenant),
            ("actor", &self.actor),
            ("source", &self.source),
            ("since", &self.since),
            ("until", &self.until),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k, v.trim().to_string()))
        .collect();
        if let Some(b) = self.before {
            out.push(("before", b.to_string()));
        }
        out
    }

    /// `path?query` for these filters (time travel and paging left out for the export).
    fn url(&self, path: &str, with_page: bool) -> String {
        let q: Vec<String> = self
            .pairs()
            .into_iter()
            .filter(|(k, _)| with_page || *k != "before")
            .map(|(k, v)| format!("{k}={}", crate::url::encode(&v)))
            .collect();
        if q.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", q.join("&"))
        }
    }

    /// The page URL.
    pub fn href(&self) -> String {
        self.url("/audit", true)
    }

    /// The CSV export of every row these filters match (not only this page).
    pub fn csv_href(&self) -> String {
        self.url("/audit/export.csv", false)
    }
}

/// Time travel's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagAtView {
    /// Flag.
    pub key: String,
    /// Moment, `YYYY-MM-DD HH:MM:SS` UTC.
    pub at: String,
    /// Whether the flag had any row then.
    pub existed: bool,
    /// Global row ON then.
    pub global: bool,
    /// Tenants ON then.
    pub tenants_on: Vec<String>,
}

/// What the audit page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPageData {
    /// Rows, newest first.
    pub rows: Vec<AuditView>,
    /// The `before` of the next (older) page, if there is one.
    pub older: Option<i64>,
    /// The time-travel answer, when asked.
    pub travel: Option<FlagAtView>,
    /// Flag keys (for the pickers).
    pub flags: Vec<String>,
}

/// The audit page's body for `filter`, rendered on the server.
#[server(prefix = "/rpc", endpoint = "audit_page", input = leptos::server_fn::codec::Json)]
pub async fn audit_page(filter: AuditFilter) -> Result<String, AppError> {
    let data = ssr::audit_page_data(filter.clone()).await?;
    Ok(crate::html::render(
        move || view! { <ssr::AuditBody data filter /> },
    ))
}

/// `/audit`.
#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let filter = Memo::new(move |_| {
        query.with(|q| AuditFilter {
            flag: q.get("flag").unwrap_or_default(),
            tenant: q.get("tenant").unwrap_or_default(),
            actor: q.get("actor").unwrap_or_default(),
            source: q.get("source").unwrap_or_default(),
            since: q.get("since").unwrap_or_default(),
            until: q.get("until").unwrap_or_default(),
            before: q.get("before").and_then(|b| b.parse().ok()),
            tt_flag: q.get("tt_flag").unwrap_or_default(),
            tt_at: q.get("tt_at").unwrap_or_default(),
        })
    });
    let changes = crate::live::use_changes();
    // The first page follows changes live; older pages stay put.
    let data = Resource::new(
        move || {
            let f = filter.get();
            let live = if f.before.is_none() { changes.get() } else { 0 };
            (f, live)
        },
        |(f, _)| audit_page(f),
    );
    view! {
        <Title text="Audit log" />
        <section class="page">
            <div class="page-head">
                <h1>"Audit log"</h1>
                <p class="muted">
                    "Every change, whoever made it: the admin UI, the REST API, the CLI or raw SQL. Times are in your time zone (UTC on hover); the filters below take UTC."
                </p>
            </div>
            <crate::html::ServerBody data loading="Loading the audit log…" error_testid="audit-error" clear_href="/audit" />
        </section>
    }
}

/// Server-only: the store query, time parsing, the rows as the page shows them, the page data
/// and its HTML.
#[cfg(feature = "ssr")]
mod ssr {
    use chrono::{DateTime, NaiveDateTime, Utc};
    use leptos::prelude::*;

    use super::{AuditFilter, AuditPageData, AuditView, FlagAtView, PER_PAGE, SOURCES};
    use crate::components::{FlagLink, TenantLink};
    use crate::AppError;

    impl AuditFilter {
        /// The store query (validates the times).
        pub fn to_query(&self, limit: i64) -> Result<store::audit::AuditQuery, AppError> {
            // Blank filters are dropped (and values trimmed) by the store.
            Ok(store::audit::AuditQuery {
                flag: Some(self.flag.clone()),
                tenant: Some(self.tenant.clone()),
                actor: Some(self.actor.clone()),
                source: Some(self.source.clone()),
                since: parse_time(&self.since, "from")?,
                until: parse_time(&self.until, "until")?,
                before_id: self.before,
                limit,
            })
        }
    }

    /// Parses a time typed into the page: RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` / `YYYY-MM-DD HH:MM`
    /// taken as UTC. Empty means none.
    pub fn parse_time(s: &str, what: &str) -> Result<Option<DateTime<Utc>>, AppError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Some(t.with_timezone(&Utc)));
        }
        for fmt in [
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
                return Ok(Some(t.and_utc()));
            }
        }
        Err(AppError::Invalid(format!(
            "{what}: {s:?} is not a time; use YYYY-MM-DDTHH:MM (UTC) or RFC 3339"
        )))
    }

    /// Before → after, only the fields that differ (`enabled: false → true`).
    pub fn summarize(
        before: Option<&serde_json::Value>,
        after: Option<&serde_json::Value>,
    ) -> String {
        use serde_json::Value;
        let compact = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some(words) = row_in_words(before, after) {
            return words;
        }
        let text = match (before, after) {
            (None, None) => String::new(),
            (None, Some(a)) => format!("created: {}", compact(a)),
            (Some(b), None) => format!("deleted: {}", compact(b)),
            (Some(Value::Object(b)), Some(Value::Object(a))) => {
                let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
                keys.sort();
                keys.dedup();
                keys.into_iter()
                    .filter_map(|k| {
                        let (x, y) = (b.get(k), a.get(k));
                        (x != y).then(|| {
                            let show = |v: Option<&Value>| v.map_or("—".to_string(), compact);
                            format!("{k}: {} → {}", show(x), show(y))
                        })
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            (Some(b), Some(a)) => format!("{} → {}", compact(b), compact(a)),
        };
        const MAX: usize = 240;
        if text.chars().count() > MAX {
            let cut: String = text.chars().take(MAX).collect();
            format!("{cut}…")
        } else {
            text
        }
    }

    /// A `feature_flags` row's change (`{"enabled", "excluded"}` before and after) as people say
    /// it: "turned ON", "turned OFF", "excluded", "no longer excluded". `None` for anything else.
    fn row_in_words(
        before: Option<&serde_json::Value>,
        after: Option<&serde_json::Value>,
    ) -> Option<String> {
        use serde_json::Value;
        let state = |v: Option<&Value>| -> Option<Option<(bool, bool)>> {
            match v {
                None => Some(None),
                Some(Value::Object(o))
                    if o.len() == 2 && o.contains_key("enabled") && o.contains_key("excluded") =>
                {
                    Some(Some((
                        o.get("enabled")?.as_bool()?,
                        o.get("excluded")?.as_bool()?,
                    )))
                }
                Some(_) => None,
            }
        };
        let (b, a) = (state(before)?, state(after)?);
        if b.is_none() && a.is_none() {
            return None;
        }
        let (was_on, was_ex) = b.unwrap_or((false, false));
        let (is_on, is_ex) = a.unwrap_or((false, false));
        let mut words = Vec::new();
        match (was_on, is_on) {
            (false, true) => words.push("turned ON"),
            (true, false) => words.push("turned OFF"),
            _ => {}
        }
        match (was_ex, is_ex) {
            (false, true) => words.push("excluded"),
            (true, false) => words.push("no longer excluded"),
            _ => {}
        }
        if words.is_empty() {
            words.push(match (b, a) {
                (None, _) => "row added, OFF",
                (_, None) => "row removed",
                _ => "unchanged",
            });
        }
        Some(words.join(", "))
    }

    impl From<store::audit::AuditRow> for AuditView {
        fn from(r: store::audit::AuditRow) -> Self {
            AuditView {
                change: summarize(r.before.as_ref(), r.after.as_ref()),
                id: r.id,
                at: crate::format::zone_time(r.at),
                at_rfc3339: r.at.to_rfc3339(),
                actor: r.actor,
                source: r.source,
                action: r.action,
                flag_key: r.flag_key,
                tenant_id: r.tenant_id,
            }
        }
    }

    /// A page of the audit log (and the time-travel answer, when asked).
    pub async fn audit_page_data(filter: AuditFilter) -> Result<AuditPageData, AppError> {
        crate::auth::require(&crate::auth::Role::ALL).await?;
        let ctx = crate::server_context()?;
        let mut rows: Vec<AuditView> =
            store::audit::query(&ctx.pool, &filter.to_query(PER_PAGE + 1)?)
                .await?
                .into_iter()
                .map(AuditView::from)
                .collect();
        let older = if rows.len() > usize::try_from(PER_PAGE).unwrap_or(usize::MAX) {
            rows.pop();
            rows.last().map(|r| r.id)
        } else {
            None
        };
        let travel = if filter.tt_flag.trim().is_empty() {
            None
        } else {
            let at = parse_time(&filter.tt_at, "time travel moment")?.unwrap_or_else(Utc::now);
            let f = store::audit::flag_at(&ctx.pool, filter.tt_flag.trim(), at).await?;
            Some(FlagAtView {
                key: f.key,
                at: crate::format::display_time(f.at),
                existed: f.existed,
                global: f.global,
                tenants_on: f.tenants_on,
            })
        };
        let flags = store::flags::keys(&ctx.pool).await?;
        Ok(AuditPageData {
            rows,
            older,
            travel,
            flags,
        })
    }

    #[component]
    pub fn AuditBody(data: AuditPageData, filter: AuditFilter) -> impl IntoView {
        let AuditPageData {
            rows,
            older,
            travel,
            flags,
        } = data;
        let flag_options = flags.clone();
        let older_href = older.map(|b| {
            AuditFilter {
                before: Some(b),
                ..filter.clone()
            }
            .href()
        });
        let newest_href = filter.before.map(|_| {
            AuditFilter {
                before: None,
                ..filter.clone()
            }
            .href()
        });
        let csv = filter.csv_href();
        let f = filter.clone();
        view! {
            // Plain GET forms: they work without JavaScript and keep the filters in the URL.
            <form class="filters" method="get" action="/audit" data-testid="audit-filters">
                <label class="field">
                    <span>"Flag"</span>
                    <select name="flag" data-testid="audit-flag">
                        <option value="">"All flags"</option>
                        {flags.into_iter().map(|k| {
                            let sel = k == f.flag;
                            view! { <option value=k.clone() selected=sel>{k.clone()}</option> }
                        }).collect_view()}
                    </select>
                </label>
                <label class="field">
                    <span>"Tenant"</span>
                    <input type="search" name="tenant" value=f.tenant.clone() placeholder="Tenant id" data-testid="audit-tenant" />
                </label>
                <label class="field">
                    <span>"Actor"</span>
                    <input type="search" name="actor" value=f.actor.clone() placeholder="e.g. po, postgres" data-testid="audit-actor" />
                </label>
                <label class="field">
                    <span>"Source"</span>
                    <select name="source" data-testid="audit-source">
                        <option value="">"Any"</option>
                        {SOURCES.iter().map(|s| {
                            let s = *s;
                            view! { <option value=s selected=f.source == s>{s}</option> }
                        }).collect_view()}
                    </select>
                </label>
                <label class="field">
                    <span>"From (UTC)"</span>
                    <input type="datetime-local" name="since" value=f.since.clone() data-testid="audit-since" />
                </label>
                <label class="field">
                    <span>"Until (UTC)"</span>
                    <input type="datetime-local" name="until" value=f.until.clone() data-testid="audit-until" />
                </label>
                <div class="field actions-inline">
                    <button type="submit" class="btn primary" data-testid="audit-apply">"Filter"</button>
                    <a class="btn" href="/audit">"Clear"</a>
                    <a class="btn" href=csv download data-testid="audit-csv">"Export CSV"</a>
                </div>
            </form>
            {if rows.is_empty() {
                view! { <div class="empty" data-testid="audit-empty"><p>"No change matches these filters."</p></div> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table class="table audit">
                            <thead><tr>
                                <th scope="col">"When"</th><th scope="col">"Actor"</th><th scope="col">"Source"</th>
                                <th scope="col">"Action"</th><th scope="col">"Flag"</th><th scope="col">"Tenant"</th><th scope="col">"Change"</th>
                            </tr></thead>
                            <tbody>
                                {rows.into_iter().map(|r| view! { <AuditRowView row=r /> }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any()
            }}
            <nav class="pager" aria-label="Pages">
                {newest_href.map(|h| view! { <a class="btn" href=h>"↑ Newest"</a> })}
                {match older_href {
                    Some(h) => view! { <a class="btn" href=h rel="next" data-testid="audit-older">"Older →"</a> }.into_any(),
                    None => view! { <span class="muted">"End of the log"</span> }.into_any(),
                }}
            </nav>
            <div class="panel" id="time-travel">
                <h2>"Time travel"</h2>
                <p class="muted">"Which tenants had a flag ON at a moment in the past, rebuilt from this log."</p>
                <form class="filters" method="get" action="/audit" data-testid="time-travel">
                    <label class="field">
                        <span>"Flag"</span>
                        <select name="tt_flag" data-testid="tt-flag">
                            {flag_options.into_iter().map(|k| {
                                let sel = k == filter.tt_flag;
                                view! { <option value=k.clone() selected=sel>{k.clone()}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                    <label class="field">
                        <span>"At (UTC)"</span>
                        <input type="datetime-local" step="1" name="tt_at" value=filter.tt_at.clone() data-testid="tt-at" required />
                    </label>
                    <div class="field actions-inline">
                        <button type="submit" class="btn primary" data-testid="tt-go">"Show"</button>
                    </div>
                </form>
                {travel.map(|t| view! { <TravelResult t /> })}
            </div>
        }
    }

    #[component]
    fn AuditRowView(row: AuditView) -> impl IntoView {
        let flag = row.flag_key.clone().map(|key| view! { <FlagLink key /> });
        let tenant = row.tenant_id.clone().map(|id| view! { <TenantLink id /> });
        view! {
            <tr data-testid="audit-row">
                <td class="nowrap" title=row.at_rfc3339>{row.at}</td>
                <td>{row.actor}</td>
                <td><span class=format!("pill source-{}", row.source)>{row.source.clone()}</span></td>
                <td><code>{row.action}</code></td>
                <td>{flag}</td>
                <td>{tenant}</td>
                <td class="change">{row.change}</td>
            </tr>
        }
    }

    #[component]
    fn TravelResult(t: FlagAtView) -> impl IntoView {
        let when = t.at.clone();
        let n = t.tenants_on.len();
        let head = if !t.existed {
            format!("{} did not exist at {when}.", t.key)
        } else if t.global {
            format!(
                "At {when}, {} was ON globally: {n} tenant(s) had it.",
                t.key
            )
        } else {
            format!("At {when}, {n} tenant(s) had {} ON.", t.key)
        };
        view! {
            <div data-testid="tt-result">
                <p><strong data-testid="tt-count">{n}</strong>" · "{head}</p>
                <ul class="tenant-list" data-testid="tt-tenants">
                    {t.tenants_on.into_iter().take(200).map(|id| view! { <li><TenantLink id /></li> }).collect_view()}
                </ul>
                {(n > 200).then(|| view! { <p class="muted small">{format!("and {} more (export the list with the REST API)", n - 200)}</p> })}
            </div>
        }
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    mod tests {
        use super::*;

        #[test]
        fn summary_lists_only_changed_fields() {
            let b = serde_json::json!({"enabled": false, "excluded": false});
            let a = serde_json::json!({"enabled": true, "excluded": false});
            assert_eq!(summarize(Some(&b), Some(&a)), "turned ON");
            assert_eq!(summarize(None, Some(&a)), "turned ON");
            assert_eq!(summarize(Some(&a), None), "turned OFF");
            let ex = serde_json::json!({"enabled": true, "excluded": true});
            assert_eq!(summarize(Some(&a), Some(&ex)), "excluded");
            assert_eq!(
                summarize(Some(&ex), Some(&b)),
                "turned OFF, no longer excluded"
            );
            assert_eq!(summarize(None, Some(&b)), "row added, OFF");
            // Anything else: the fields that changed.
            let p = serde_json::json!({"phase": "pilot", "pilots": ["a"]});
            let q = serde_json::json!({"phase": "10%", "pilots": ["a"]});
            assert_eq!(summarize(Some(&p), Some(&q)), "phase: pilot → 10%");
            assert_eq!(summarize(None, None), "");
        }

        #[test]
        fn times_parse_as_utc_or_fail_clearly() {
            let t = parse_time("2026-11-25T10:30", "from").unwrap().unwrap();
            assert_eq!(t.to_rfc3339(), "2026-11-25T10:30:00+00:00");
            let t = parse_time("2026-11-25T10:30:00+01:00", "from")
                .unwrap()
                .unwrap();
            assert_eq!(t.to_rfc3339(), "2026-11-25T09:30:00+00:00");
            assert_eq!(parse_time("  ", "from").unwrap(), None);
            let e = parse_time("yesterday", "from").unwrap_err().to_string();
            assert!(e.contains("from") && e.contains("yesterday"), "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_filters_and_drop_paging_for_the_export() {
        let f = AuditFilter {
            flag: "multi_workspace_enabled".into(),
            actor: "po x".into(),
            before: Some(40),
            ..Default::default()
        };
        assert_eq!(
            f.href(),
            "/audit?flag=multi_workspace_enabled&actor=po%20x&before=40"
        );
        assert_eq!(
            f.csv_href(),
            "/audit/export.csv?flag=multi_workspace_enabled&actor=po%20x"
        );
    }
}
