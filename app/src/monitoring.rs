//! `/monitoring`: the seed plan's pilot monitoring. Its two queries run verbatim against
//! `workspace_activity_logs` (actions in the last 24 hours; the latest error actions), and the
//! pilot tenants' activity per hour is charted (SVG, rendered on the server).
use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::AppError;

/// The flag whose pilots the page follows by default.
pub const DEFAULT_FLAG: &str = "multi_workspace_enabled";

/// Hours the chart covers.
pub const HOURS: i32 = 24;

/// An error event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// When (UTC).
    pub at: String,
    /// Tenant.
    pub tenant_id: String,
    /// Action.
    pub action: String,
    /// Actor.
    pub actor: String,
    /// Details (JSON).
    pub details: String,
}

/// What the page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitoringData {
    /// The flag.
    pub flag: String,
    /// Its pilot tenants.
    pub pilots: Vec<String>,
    /// The seed's first query, as run.
    pub activity_query: String,
    /// Its most frequent rows: action, count.
    pub actions: Vec<(String, i64)>,
    /// How many rows it has in all.
    pub actions_total: i64,
    /// The seed's second query, as run.
    pub errors_query: String,
    /// Its rows.
    pub errors: Vec<ErrorEvent>,
    /// Pilot activity per hour, oldest first: (`HH:00`, events).
    pub per_hour: Vec<(String, i64)>,
}

/// The monitoring page's body, rendered on the server.
#[server(prefix = "/rpc", endpoint = "pilot_monitoring")]
pub async fn pilot_monitoring(flag: String) -> Result<String, AppError> {
    let d = ssr::monitoring_data(flag).await?;
    Ok(crate::html::render(
        move || view! { <ssr::MonitoringBody d /> },
    ))
}

/// `/monitoring?flag=K`.
#[component]
pub fn MonitoringPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let flag = move || query.read().get("flag").unwrap_or_default();
    let changes = crate::live::use_changes();
    let data = Resource::new(
        move || (flag(), changes.get()),
        |(f, _)| pilot_monitoring(f),
    );
    view! {
        <Title text="Pilot monitoring" />
        <section class="page">
            <div class="page-head">
                <h1>"Pilot monitoring"</h1>
                <p class="muted">"The plan's pilot monitoring queries, run as written against " <code>"workspace_activity_logs"</code>
                    " (the SaaS reports events with " <code>"POST /api/activity"</code> "), and the pilot tenants' activity per hour."</p>
            </div>
            <crate::html::ServerBody data loading="Loading…" />
        </section>
    }
}

/// Server-only: the monitoring figures and their HTML.
#[cfg(feature = "ssr")]
mod ssr {
    use leptos::prelude::*;

    use super::{ErrorEvent, MonitoringData, DEFAULT_FLAG, HOURS};
    use crate::components::TenantLink;
    use crate::AppError;

    /// The monitoring figures for `flag`'s pilots.
    pub async fn monitoring_data(flag: String) -> Result<MonitoringData, AppError> {
        crate::auth::require(&crate::auth::Role::ALL).await?;
        let ctx = crate::server_context()?;
        let flag = if flag.trim().is_empty() {
            DEFAULT_FLAG.to_string()
        } else {
            flag.trim().to_string()
        };
        let row = store::flags::get(&ctx.pool, &flag).await?;
        let pilots: Vec<String> = row.rollout.pilots.into_iter().collect();
        let (actions, actions_total) =
            store::activity::actions_last_24h(&ctx.pool, store::activity::MAX_ACTIONS_SHOWN)
                .await?;
        let errors = store::activity::latest_errors(&ctx.pool)
            .await?
            .into_iter()
            .map(|e| ErrorEvent {
                at: crate::format::display_time(e.created_at),
                tenant_id: e.tenant_id,
                action: e.action,
                actor: e.actor,
                details: e.details.to_string(),
            })
            .collect();
        let per_hour = store::activity::per_hour(&ctx.pool, &pilots, HOURS)
            .await?
            .into_iter()
            .map(|(h, n)| (h.format("%H:00").to_string(), n))
            .collect();
        Ok(MonitoringData {
            flag,
            pilots,
            activity_query: store::activity::ACTIVITY_QUERY.to_string(),
            actions,
            actions_total,
            errors_query: store::activity::ERRORS_QUERY.to_string(),
            errors,
            per_hour,
        })
    }

    #[component]
    pub fn MonitoringBody(d: MonitoringData) -> impl IntoView {
        let pilots = if d.pilots.is_empty() {
            "none yet".to_string()
        } else {
            d.pilots.join(", ")
        };
        let total: i64 = d.per_hour.iter().map(|(_, n)| n).sum();
        view! {
            <div class="panel">
                <h2>{format!("Pilot activity per hour, last {HOURS} hours")}</h2>
                <p class="muted small">{format!("Pilots of {}: {pilots} · {total} events", d.flag)}</p>
                <HourChart points=d.per_hour />
            </div>
            <div class="columns">
                <div class="panel">
                    <h2>"Workspace activity, last 24 hours"</h2>
                    <pre><code>{d.activity_query}</code></pre>
                    {if d.actions.is_empty() {
                        view! { <p class="muted" data-testid="no-actions">"No activity in the last 24 hours."</p> }.into_any()
                    } else {
                        let more = d.actions_total - d.actions.len() as i64;
                        view! {
                            <table class="table">
                                <thead><tr><th>"action"</th><th class="num">"count"</th></tr></thead>
                                <tbody>
                                    {d.actions.into_iter().map(|(a, n)| view! {
                                        <tr data-testid="action-row"><td><code>{a}</code></td><td class="num">{n}</td></tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            {(more > 0).then(|| view! {
                                <p class="muted small" data-testid="more-actions">{format!("The {} most frequent of {} actions; run the query for all of them.", store::activity::MAX_ACTIONS_SHOWN, d.actions_total)}</p>
                            })}
                        }.into_any()
                    }}
                </div>
                <div class="panel">
                    <h2>"Latest errors"</h2>
                    <pre><code>{d.errors_query}</code></pre>
                    {if d.errors.is_empty() {
                        view! { <p class="muted" data-testid="no-errors">"No error actions."</p> }.into_any()
                    } else {
                        view! {
                            <div class="table-wrap scroll">
                                <table class="table">
                                    <thead><tr><th>"created_at"</th><th>"tenant"</th><th>"action"</th><th>"actor"</th></tr></thead>
                                    <tbody>
                                        {d.errors.into_iter().map(|e| {
                                            view! {
                                                <tr data-testid="error-row" title=e.details>
                                                    <td class="nowrap">{e.at}</td>
                                                    <td><TenantLink id=e.tenant_id /></td>
                                                    <td><code>{e.action}</code></td>
                                                    <td>{e.actor}</td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                        }.into_any()
                    }}
                </div>
            </div>
        }
    }

    /// Bars, one per hour, scaled to the busiest hour.
    #[component]
    fn HourChart(points: Vec<(String, i64)>) -> impl IntoView {
        const W: f64 = 720.0;
        const H: f64 = 140.0;
        let n = points.len().max(1) as f64;
        let max = points.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
        let step = W / n;
        view! {
            <svg class="chart" viewBox=format!("0 0 {W} {}", H + 20.0) role="img"
                aria-label="Pilot events per hour" data-testid="activity-chart">
                {points.into_iter().enumerate().map(|(i, (label, v))| {
                    let h = (v as f64 / max) * H;
                    let x = i as f64 * step;
                    view! {
                        <g>
                            <rect x=format!("{:.1}", x + 1.0) y=format!("{:.1}", H - h) width=format!("{:.1}", (step - 2.0).max(1.0))
                                height=format!("{h:.1}") class="bar" data-testid="chart-bar" data-value=v.to_string()>
                                <title>{format!("{label}: {v} events")}</title>
                            </rect>
                            {(i % 6 == 0).then(|| view! {
                                <text x=format!("{:.1}", x + 1.0) y=format!("{:.1}", H + 14.0) class="axis">{label.clone()}</text>
                            })}
                        </g>
                    }
                }).collect_view()}
                <line x1="0" y1=format!("{H}") x2=format!("{W}") y2=format!("{H}") class="axis-line" />
            </svg>
        }
    }
}
