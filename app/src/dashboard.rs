//! `/`: the dashboard. Per flag its phase, the share of tenants ON, the next phase and what stands
//! between it and that phase; the last changes. Follows the change stream live.
use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::audit::AuditView;
use crate::AppError;

/// A flag on the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashFlag {
    /// Key.
    pub key: String,
    /// Description.
    pub description: String,
    /// Current phase.
    pub phase: String,
    /// Next phase of the ladder, if any.
    pub next: Option<String>,
    /// Live tenants with the flag ON.
    pub on: i64,
    /// The gates into the next phase as the flag page's to-do list groups them, as the write
    /// path would judge advancing now.
    pub groups: Vec<DashGroup>,
    /// Advancing now would pass (the write path's verdict, not the list's count).
    pub holds: bool,
}

/// One group of a flag's to-do list on the dashboard (wait, checklists, sign-offs, …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashGroup {
    /// Its name.
    pub name: String,
    /// Items done.
    pub done: usize,
    /// Items in all.
    pub total: usize,
    /// The open items: (what, who can close it, where — a link).
    pub open: Vec<(String, String, String)>,
}

/// The dashboard's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardData {
    /// Live tenants.
    pub live_tenants: i64,
    /// Every flag.
    pub flags: Vec<DashFlag>,
    /// The newest backup younger than the configured age (name and time), or why there is none.
    /// Information for the DBA, not a gate: a plan that needs a backup says so in its checklist.
    pub backup: Result<String, String>,
    /// The newest changes.
    pub recent: Vec<AuditView>,
    /// Change requests waiting for the viewer's approval: (flag, from, to, tenants ON, who asked).
    pub waiting: Vec<(String, String, String, i32, String)>,
}

/// How many change requests wait for the signed-in user's approval (the navigation's badge; 0
/// when nobody is signed in, like `whoami`'s `None`: the header asks on every page, the sign-in
/// page included).
#[server(prefix = "/rpc", endpoint = "approvals_waiting")]
pub async fn approvals_waiting() -> Result<usize, AppError> {
    let Some(user) = crate::auth::whoami().await? else {
        return Ok(0);
    };
    let ctx = crate::server_context()?;
    Ok(
        store::approvals::waiting_for(&ctx.pool, user.role.as_str(), &user.username)
            .await?
            .len(),
    )
}

impl DashFlag {
    /// (items done, items in all) over every group.
    pub fn progress(&self) -> (usize, usize) {
        self.groups
            .iter()
            .fold((0, 0), |(d, t), g| (d + g.done, t + g.total))
    }

    /// Share of live tenants ON, in percent (0 when there are no tenants).
    pub fn share(&self, live: i64) -> f64 {
        if live <= 0 {
            0.0
        } else {
            self.on as f64 * 100.0 / live as f64
        }
    }
}

/// Changes the dashboard lists.
pub const RECENT: i64 = 12;

/// The dashboard's body, rendered on the server.
#[server(prefix = "/rpc", endpoint = "dashboard")]
pub async fn dashboard() -> Result<String, AppError> {
    let d = ssr::dashboard_data().await?;
    Ok(crate::html::render(
        move || view! { <ssr::DashboardBody d /> },
    ))
}

/// `/`.
#[component]
pub fn DashboardPage() -> impl IntoView {
    let changes = crate::live::use_changes();
    let data = Resource::new(move || changes.get(), |_| dashboard());
    view! {
        <Title text="Dashboard" />
        <section class="page">
            <div class="page-head">
                <h1>"Dashboard"</h1>
                <p class="muted">"Where every rollout stands, what the next phase needs, and the latest changes. Updates live."</p>
            </div>
            <crate::html::ServerBody data loading="Loading the dashboard…" />
        </section>
    }
}

/// Server-only: the dashboard's data and its HTML.
#[cfg(feature = "ssr")]
mod ssr {
    use leptos::prelude::*;

    use super::{DashFlag, DashGroup, DashboardData, RECENT};
    use crate::audit::AuditView;
    use crate::components::{FlagLink, Timeline};
    use crate::AppError;

    /// Open items listed per flag (the flag's plan lists them all).
    const DASH_OPEN: usize = 4;

    /// `gates` as the flag page's to-do groups, their links made absolute.
    fn groups(key: &str, gates: &store::rollout::NextGates) -> Vec<DashGroup> {
        crate::plan::ssr::todos(gates.into())
            .into_iter()
            .map(|(name, items)| DashGroup {
                name: name.to_string(),
                done: items.iter().filter(|t| t.done).count(),
                total: items.len(),
                open: items
                    .into_iter()
                    .filter(|t| !t.done)
                    .map(|t| {
                        let href = if t.href.starts_with('#') {
                            format!("/flags/{key}{}", t.href)
                        } else {
                            t.href
                        };
                        let label = match t.detail {
                            Some(d) => format!("{} — {d}", t.label),
                            None => t.label,
                        };
                        (label, t.who, href)
                    })
                    .collect(),
            })
            .collect()
    }

    /// Everything the dashboard shows.
    pub async fn dashboard_data() -> Result<DashboardData, AppError> {
        let user = crate::auth::require(&crate::auth::Role::ALL).await?;
        let ctx = crate::server_context()?;
        let waiting = store::approvals::waiting_for(&ctx.pool, user.role.as_str(), &user.username)
            .await?
            .into_iter()
            .map(|w| {
                (
                    w.flag_key,
                    w.from_phase,
                    w.to_phase,
                    w.turned_on,
                    w.requester,
                )
            })
            .collect();
        let counts = ctx.counts().await;
        let (live_tenants, on) = match &counts {
            Some(c) => (
                i64::try_from(c.tenants).unwrap_or(i64::MAX),
                c.flags
                    .iter()
                    .map(|(k, n)| (k.clone(), i64::try_from(n.on).unwrap_or(i64::MAX)))
                    .collect(),
            ),
            None => store::flags::effective_on(&ctx.pool).await?,
        };
        let hours = ctx.backup_max_age.as_secs() / 3600;
        let backup = match store::backup::fresh(&ctx.backup_dir, ctx.backup_max_age)? {
            Some(b) => Ok(format!(
                "{}, taken {}",
                b.name,
                crate::format::display_time(b.modified)
            )),
            None => Err(format!(
                "no backup younger than {hours} h in the backup directory"
            )),
        };
        let list = store::flags::list_counted(&ctx.pool, counts.as_deref()).await?;
        let gates = store::rollout::next_gates(&ctx.pool, &list, chrono::Utc::now()).await?;
        let flags = list
            .into_iter()
            .zip(gates)
            .map(|(f, g)| DashFlag {
                on: on.iter().find(|(k, _)| *k == f.key).map_or(0, |(_, n)| *n),
                phase: f.rollout.phase.to_string(),
                next: g.next.map(|p| p.to_string()),
                groups: groups(&f.key, &g),
                holds: g.unmet.is_empty(),
                key: f.key,
                description: f.description,
            })
            .collect();
        let recent = store::audit::query(
            &ctx.pool,
            &store::audit::AuditQuery {
                limit: RECENT,
                ..Default::default()
            },
        )
        .await?
        .into_iter()
        .map(AuditView::from)
        .collect();
        Ok(DashboardData {
            live_tenants,
            flags,
            backup,
            recent,
            waiting,
        })
    }

    #[component]
    pub fn DashboardBody(d: DashboardData) -> impl IntoView {
        let live = d.live_tenants;
        let flags = if d.flags.is_empty() {
            view! { <div class="empty"><p>"No flags yet. Create one with the REST API (" <code>"POST /api/admin/flags"</code> ")."</p></div> }.into_any()
        } else {
            view! {
                <div class="cards">
                    {d.flags.into_iter().map(|f| {
                        let share = f.share(live);
                        let width = format!("width: {share:.1}%");
                        view! {
                            <article class="card" data-testid="dash-flag" data-flag=f.key.clone()>
                                <h2><FlagLink key=f.key.clone() /></h2>
                                <p class="muted small">{f.description.clone()}</p>
                                <p>
                                    "Phase " <span class="pill phase" data-testid="dash-phase">{f.phase.clone()}</span>
                                    {f.next.clone().map(|n| view! { " → next " <span class="pill">{n}</span> })}
                                </p>
                                <div class="meter" role="meter" aria-valuemin="0" aria-valuemax="100" aria-valuenow=format!("{share:.1}")
                                    aria-label="Share of tenants ON"><span style=width></span></div>
                                <p class="small" data-testid="dash-share">
                                    <strong data-testid="dash-on">{f.on}</strong>{format!(" of {live} tenants ON ({share:.1}%)")}
                                </p>
                                {match (&f.next, f.progress()) {
                                    (None, _) => view! { <p class="muted small">"Last phase reached."</p> }.into_any(),
                                    (Some(n), (_, 0)) if f.holds => view! {
                                        <p class="ok small" data-testid="dash-gates-done">{format!("The plan sets no gates into {n}.")}</p>
                                    }.into_any(),
                                    (Some(n), (done, total)) if f.holds => view! {
                                        <p class="ok small" data-testid="dash-gates-done">{format!("Every gate into {n} holds ({done} of {total} done).")}</p>
                                    }.into_any(),
                                    (Some(n), (done, total)) => {
                                        let open: Vec<(String, (String, String, String))> = f.groups.iter()
                                            .flat_map(|g| g.open.iter().map(move |o| (g.name.clone(), o.clone())))
                                            .collect();
                                        let more = open.len().saturating_sub(DASH_OPEN);
                                        view! {
                                            <p class="small" data-testid="dash-gates-done">
                                                <strong>{format!("{done} of {total} done")}</strong>{format!(" before {n}: ")}
                                                {f.groups.iter().map(|g| format!("{} {}/{}", g.name, g.done, g.total)).collect::<Vec<_>>().join(" · ")}
                                            </p>
                                            <ul class="gates" aria-label="What the next phase still needs">
                                                {open.into_iter().take(DASH_OPEN).map(|(group, (label, who, href))| view! {
                                                    <li class="gate open" data-testid="dash-gate" data-group=group>
                                                        <span aria-hidden="true">"○ "</span>{label}
                                                        <span class="who small">" · "{who}" · "<a href=href rel="external">"go there"</a></span>
                                                    </li>
                                                }).collect_view()}
                                            </ul>
                                            {(more > 0).then(|| view! {
                                                <p class="small"><a href=format!("/flags/{}#plan-gates", f.key)>{format!("and {more} more on the flag's plan →")}</a></p>
                                            })}
                                        }.into_any()
                                    }
                                }}
                            </article>
                        }
                    }).collect_view()}
                </div>
            }.into_any()
        };
        let backup = match d.backup {
            Ok(b) => format!("Latest backup: {b}"),
            Err(why) => format!("Backups: {why}"),
        };
        let waiting = (!d.waiting.is_empty()).then(|| view! {
            <div class="panel notice warn" data-testid="dash-waiting">
                <h2>{format!("Waiting for your approval ({})", d.waiting.len())}</h2>
                <ul>
                    {d.waiting.into_iter().map(|(key, from, to, on, who)| view! {
                        <li>
                            <a href=format!("/flags/{key}#approvals")>{key.clone()}</a>
                            {format!(": {from} → {to}, {on} tenant(s) turn ON — asked by {who}")}
                        </li>
                    }).collect_view()}
                </ul>
            </div>
        });
        view! {
            {waiting}
            {flags}
            <p class="muted small" data-testid="dash-backup">{backup}</p>
            <div class="panel">
                <h2>"Latest changes"</h2>
                {if d.recent.is_empty() {
                    view! { <p class="muted">"Nothing has changed yet."</p> }.into_any()
                } else {
                    view! {
                        <Timeline rows=d.recent testid="dash-recent" />
                        <p><a href="/audit">"The whole audit log →"</a></p>
                    }.into_any()
                }}
            </div>
        }
    }
}
