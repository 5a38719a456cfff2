//! `/flags` and `/flags/{key}`: the phase ladder, the pilot picker, the percentage control, a live
//! preview of exactly which tenants a change turns ON and OFF — computed in the browser by the
//! same `flags` code the server saves with — and the kill switch.
use std::collections::BTreeSet;

use flags::{Diff, FlagState, Percentage, Phase, Rollout, Tenant, DEFAULT_LADDER};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::AppError;

/// A flag in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagSummary {
    /// Key.
    pub key: String,
    /// Description.
    pub description: String,
    /// Current phase.
    pub phase: String,
    /// Next phase of the ladder, if any.
    pub next: Option<String>,
    /// Global row.
    pub enabled: bool,
    /// Tenant rows ON.
    pub tenants_on: i64,
}

/// Every flag.
#[server(prefix = "/rpc", endpoint = "list_flags")]
pub async fn list_flags() -> Result<Vec<FlagSummary>, AppError> {
    crate::auth::require(&crate::auth::Role::ALL).await?;
    let ctx = crate::server_context()?;
    let counts = ctx.counts().await;
    Ok(store::flags::list_counted(&ctx.pool, counts.as_deref())
        .await?
        .into_iter()
        .map(|f| FlagSummary {
            next: f.rollout.phase.next(&DEFAULT_LADDER).map(|p| p.to_string()),
            phase: f.rollout.phase.to_string(),
            key: f.key,
            description: f.description,
            enabled: f.enabled,
            tenants_on: f.tenants_on,
        })
        .collect())
}

/// What the editor needs to preview changes locally. It travels as [`EditorWire`]: the state
/// and the tenants as a one-flag compact snapshot (`tenantry.snapshot/v2`) — at 100,000 tenants
/// about a quarter of the size of listing each tenant's record and each ON tenant's id.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagEditorData {
    /// Key.
    pub key: String,
    /// Description.
    pub description: String,
    /// Version to send back when saving.
    pub version: i64,
    /// Current rollout.
    pub rollout: Rollout,
    /// Current effective state.
    pub state: FlagState,
    /// Every live tenant with the attributes constraints use.
    pub tenants: Vec<Tenant>,
    /// Whether the signed-in user may change the flag.
    pub can_edit: bool,
    /// Whether the signed-in user may pass unmet gates with a written reason (admins).
    pub can_override: bool,
    /// The last change that moved the version: who, what and when (named when someone else's
    /// change arrives while an edit is in progress).
    pub last_change: Option<LastChange>,
    /// The wire form of `state` and `tenants`, when the server built it already (on a blocking
    /// thread: one pass over every tenant); serialising builds it otherwise.
    pub compact: Option<std::sync::Arc<flags::compact::CompactSnapshot>>,
}

impl FlagEditorData {
    /// `state` and `tenants` as a one-flag compact snapshot.
    pub fn compact_of(
        key: &str,
        state: &FlagState,
        tenants: &[Tenant],
    ) -> Result<flags::compact::CompactSnapshot, flags::Error> {
        let mut one = flags::Snapshot::new(0);
        one.tenants = tenants.iter().map(|t| t.id.clone()).collect();
        one.flags.insert(key.to_string(), state.clone());
        flags::compact::CompactSnapshot::compact(&one, tenants)
    }
}

/// [`FlagEditorData`] on the wire.
#[derive(Serialize, Deserialize)]
struct EditorWire {
    key: String,
    description: String,
    version: i64,
    rollout: Rollout,
    /// The live tenants and this one flag's rows and exclusions.
    snapshot: flags::compact::CompactSnapshot,
    can_edit: bool,
    can_override: bool,
    last_change: Option<LastChange>,
}

impl Serialize for FlagEditorData {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let snapshot = match &self.compact {
            Some(c) => (**c).clone(),
            None => FlagEditorData::compact_of(&self.key, &self.state, &self.tenants)
                .map_err(serde::ser::Error::custom)?,
        };
        EditorWire {
            key: self.key.clone(),
            description: self.description.clone(),
            version: self.version,
            rollout: self.rollout.clone(),
            snapshot,
            can_edit: self.can_edit,
            can_override: self.can_override,
            last_change: self.last_change.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for FlagEditorData {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = EditorWire::deserialize(deserializer)?;
        let state = w.snapshot.expand().flags.remove(&w.key).unwrap_or_default();
        Ok(FlagEditorData {
            tenants: w.snapshot.tenants(),
            state,
            key: w.key,
            description: w.description,
            version: w.version,
            rollout: w.rollout,
            can_edit: w.can_edit,
            can_override: w.can_override,
            last_change: w.last_change,
            compact: None,
        })
    }
}

/// Who changed a flag last, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastChange {
    /// Who (user name, token name or database user).
    pub actor: String,
    /// What, e.g. "changed the rollout", "switched tenant acme-logistics".
    pub what: String,
    /// Through what, in words: "the web app", "the API", "the CLI", "SQL".
    pub through: String,
    /// When (formatted on the server).
    pub at: String,
}

/// The flag, its state and every live tenant.
#[server(prefix = "/rpc", endpoint = "flag_editor")]
pub async fn flag_editor(key: String) -> Result<FlagEditorData, AppError> {
    use crate::auth::Role;
    let user = crate::auth::require(&Role::ALL).await?;
    let ctx = crate::server_context()?;
    let (row, state, tenants) = store::flags::editor_data(&ctx.pool, &key).await?;
    let k = row.key.clone();
    let (state, tenants, compact) = tokio::task::spawn_blocking(move || {
        let c = FlagEditorData::compact_of(&k, &state, &tenants);
        (state, tenants, c)
    })
    .await
    .map_err(|_| AppError::Internal)?;
    let compact = Some(std::sync::Arc::new(compact.map_err(|e| {
        tracing::error!(error = %e, "the editor's snapshot");
        AppError::Internal
    })?));
    let last_change = store::audit::last_flag_change(&ctx.pool, &key)
        .await?
        .map(ssr::last_change);
    Ok(FlagEditorData {
        key: row.key,
        description: row.description,
        version: row.version,
        rollout: row.rollout,
        state,
        tenants,
        can_edit: user.role.edits_flags(),
        can_override: user.role == Role::Admin,
        last_change,
        compact,
    })
}

/// What a save changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveResult {
    /// New version.
    pub version: i64,
    /// Tenants turned ON.
    pub turned_on: Vec<String>,
    /// Tenants turned OFF.
    pub turned_off: Vec<String>,
}

/// Saves a rollout if the flag is still at `version` (else a conflict: nothing is overwritten).
/// A save that turns tenants ON passes the plan's gates; an admin may pass them with a written
/// reason (`override_reason`, audited).
#[server(prefix = "/rpc", input = leptos::server_fn::codec::Json, endpoint = "save_rollout")]
pub async fn save_rollout(
    key: String,
    rollout: Rollout,
    version: i64,
    #[server(default)] override_reason: Option<String>,
) -> Result<SaveResult, AppError> {
    let user = crate::auth::require(crate::auth::Role::FLAG_EDITORS).await?;
    let gating = crate::auth::gating(&user, override_reason)?;
    let ctx = crate::server_context()?;
    let spec = store::rollout::Spec::Rollout(rollout);
    let a = store::rollout::change(
        &ctx.pool,
        &crate::auth::actor(&user),
        &key,
        &spec,
        Some(version),
        &gating,
    )
    .await?;
    ctx.publish().await;
    Ok(SaveResult {
        version: a.change.version,
        turned_on: a.change.turned_on,
        turned_off: a.change.turned_off,
    })
}

/// Asks a second person to approve exactly this save (the plan requires approvals for changes that
/// turn tenants ON). Saving the same rollout after the approval goes through.
#[server(prefix = "/rpc", input = leptos::server_fn::codec::Json, endpoint = "request_rollout")]
pub async fn request_rollout(key: String, rollout: Rollout) -> Result<i64, AppError> {
    let user = crate::auth::require(crate::auth::Role::FLAG_EDITORS).await?;
    let ctx = crate::server_context()?;
    let spec = store::rollout::Spec::Rollout(rollout);
    let r = store::rollout::request(&ctx.pool, &crate::auth::actor(&user), &key, &spec).await?;
    ctx.publish().await;
    Ok(r.id)
}

/// The kill switch: every row OFF (the seed's Quick Rollback). Never gated, always audited.
#[server(prefix = "/rpc", endpoint = "kill_flag")]
pub async fn kill_flag(key: String) -> Result<SaveResult, AppError> {
    let user = crate::auth::require(crate::auth::Role::FLAG_EDITORS).await?;
    let ctx = crate::server_context()?;
    let spec = store::rollout::Spec::Rollback(flags::change::RollbackTarget::Off);
    let c = store::rollout::change(
        &ctx.pool,
        &crate::auth::actor(&user),
        &key,
        &spec,
        None,
        &store::rollout::Gating::now(),
    )
    .await?
    .change;
    ctx.publish().await;
    Ok(SaveResult {
        version: c.version,
        turned_on: c.turned_on,
        turned_off: c.turned_off,
    })
}

/// The flag list, rendered on the server.
#[server(prefix = "/rpc", endpoint = "flags_page")]
pub async fn flags_page() -> Result<String, AppError> {
    let list = list_flags().await?;
    Ok(crate::html::render(
        move || view! { <ssr::FlagTable list /> },
    ))
}

/// `/flags`.
#[component]
pub fn FlagsPage() -> impl IntoView {
    let changes = crate::live::use_changes();
    let flags = Resource::new(move || changes.get(), |_| flags_page());
    view! {
        <Title text="Flags" />
        <section class="page">
            <div class="page-head">
                <h1>"Flags"</h1>
                <p class="muted">"Every flag, the phase it is in and what comes next."</p>
            </div>
            <crate::html::ServerBody data=flags loading="Loading flags…" />
        </section>
    }
}

/// The flag page's first view, rendered on the server: phase, pilots, constraints and how many
/// tenants are ON. The browser replaces it with the editor; with JavaScript off it stays, above
/// the plan panel (which works without JavaScript).
#[server(prefix = "/rpc", endpoint = "flag_page_summary")]
pub async fn flag_page_summary(key: String) -> Result<String, AppError> {
    crate::auth::require(&crate::auth::Role::ALL).await?;
    let ctx = crate::server_context()?;
    let f = store::flags::get(&ctx.pool, &key).await?;
    Ok(crate::html::render(move || view! { <ssr::Summary f /> }))
}

/// `/flags/{key}`. The editor loads in the browser (it is interactive, and its preview runs
/// there); without JavaScript the flag list at `/flags` shows every flag's phase.
#[component]
pub fn FlagPage() -> impl IntoView {
    let params = use_params_map();
    let key = move || params.read().get("key").unwrap_or_default();
    // Read once, not from a closure: the server may render the title after the route's reactive
    // owner is gone (seen under concurrent requests).
    let title = params.with_untracked(|p| p.get("key").unwrap_or_default());
    let data = RwSignal::new(None::<Result<FlagEditorData, AppError>>);
    let summary = Resource::new(key, flag_page_summary);
    // Whether the editor holds unsaved changes (set by the editor).
    let editing = RwSignal::new(false);
    // Owned here, not by the editor, so they survive the reload that follows a save.
    let message = RwSignal::new(None::<(bool, String)>);
    let saved = RwSignal::new(None::<SaveResult>);
    // The version this page's last save or rollback produced.
    let mine = RwSignal::new(None::<i64>);
    let load = move |k: String| {
        leptos::task::spawn_local(async move {
            data.set(Some(flag_editor(k).await));
        })
    };
    // Effects run only in the browser: load on hydration and whenever the key changes.
    Effect::new(move |_| load(key()));
    let reload = Callback::new(move |_| load(key()));

    // Live: every change anywhere (UI, API, CLI, raw SQL) bumps the snapshot version, which the
    // server streams. A clean editor reloads at once; an edit in progress is warned instead.
    let changes = crate::live::use_changes();
    // Someone else's change that arrived during an edit: who, what, when. A version this page's
    // own save produced is never a conflict (its reload may simply not have landed yet).
    let stale = RwSignal::new(None::<LastChange>);
    Effect::new(move |_| {
        if changes.get() == 0 {
            return;
        }
        let k = key();
        leptos::task::spawn_local(async move {
            let Ok(latest) = flag_editor(k).await else {
                return;
            };
            let (current_version, dirty) = match data.get_untracked() {
                Some(Ok(d)) => (d.version, editing.get_untracked()),
                _ => (-1, false),
            };
            let own = mine.get_untracked() == Some(latest.version);
            if latest.version != current_version {
                if dirty && !own {
                    stale.set(Some(latest.last_change.clone().unwrap_or(LastChange {
                        actor: "someone".into(),
                        what: "changed this flag".into(),
                        through: "another door".into(),
                        at: String::new(),
                    })));
                } else {
                    stale.set(None);
                    data.set(Some(Ok(latest)));
                }
            }
        });
    });
    view! {
        <Title text=title />
        <section class="page">
            {move || stale.get().map(|c| view! {
                <div class="toast err" role="alert" data-testid="stale-warning">
                    {format!(
                        "{} {} through {}{}. Saving your edit would be refused: discard it to see their change, then edit again.",
                        c.actor,
                        c.what,
                        c.through,
                        if c.at.is_empty() { String::new() } else { format!(" at {}", c.at) },
                    )}
                </div>
            })}
            {move || match data.get() {
                None => view! { <crate::html::ServerBody data=summary loading="Loading the flag…" /> }.into_any(),
                Some(Ok(d)) => view! { <FlagEditor data=d message saved mine reload editing /> }.into_any(),
                Some(Err(e)) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
            }}
            <crate::plan::PlanPanel />
        </section>
    }
}

const LIST_LIMIT: usize = 50;

#[component]
fn TenantList(ids: Vec<String>, testid: &'static str) -> impl IntoView {
    let more = ids.len().saturating_sub(LIST_LIMIT);
    view! {
        <ul class="tenant-list" data-testid=testid>
            {ids.into_iter().take(LIST_LIMIT).map(|id| view! { <li><code>{id}</code></li> }).collect_view()}
        </ul>
        {(more > 0).then(|| view! { <p class="muted small">{format!("and {more} more")}</p> })}
    }
}

#[component]
fn FlagEditor(
    data: FlagEditorData,
    message: RwSignal<Option<(bool, String)>>,
    saved: RwSignal<Option<SaveResult>>,
    mine: RwSignal<Option<i64>>,
    reload: Callback<()>,
    editing: RwSignal<bool>,
) -> impl IntoView {
    let can_edit = data.can_edit;
    let current = data.rollout.clone();
    let key = data.key.clone();
    let version = data.version;
    let data = StoredValue::new(data);
    let draft = RwSignal::new(current.clone());
    let pilot_query = RwSignal::new(String::new());

    // The preview: `Rollout::preview`, the diff of the `Rollout::apply` the server saves with
    // (the same per-tenant rule, without building the new state; a property test holds them equal).
    // Its duration is kept (in ms) on the panel as `data-preview-ms`: the Playwright performance
    // check reads it over 100,000 tenants.
    let preview = Memo::new(move |_| {
        let to = draft.get();
        let started = now_ms();
        let diff = data.with_value(|d| d.rollout.preview(&d.state, &d.key, &to, &d.tenants));
        (diff, now_ms() - started)
    });
    let on_now = data.with_value(|d| d.tenants.iter().filter(|t| d.state.is_on(&t.id)).count());
    let total = data.with_value(|d| d.tenants.len());
    let dirty = Memo::new(move |_| data.with_value(|d| d.rollout != draft.get()));
    Effect::new(move |_| editing.set(dirty.get()));

    let can_override = data.with_value(|d| d.can_override);
    // A save the gates refused: the editor offers to ask a second person to approve exactly this
    // change, and (admins) to save it anyway with a written reason.
    let refused = RwSignal::new(false);
    // The server's own words for the last refusal, behind "Details".
    let detail = RwSignal::new(None::<String>);
    let reason = RwSignal::new(String::new());
    let save = Action::new(
        move |(key, rollout, version, reason): &(String, Rollout, i64, Option<String>)| {
            let (key, rollout, version, reason) =
                (key.clone(), rollout.clone(), *version, reason.clone());
            async move { save_rollout(key, rollout, version, reason).await }
        },
    );
    let ask = Action::new(move |(key, rollout): &(String, Rollout)| {
        let (key, rollout) = (key.clone(), rollout.clone());
        async move { request_rollout(key, rollout).await }
    });
    Effect::new(move |_| {
        if let Some(r) = ask.value().get() {
            message.set(Some(match r {
                Ok(id) => (true, format!("Approval requested (request {id}): once a second person approves it on the plan below, save this same change again.")),
                Err(e) => (false, e.to_string()),
            }));
        }
    });
    // An edit of the draft makes the last refusal's offers stale.
    Effect::new(move |_| {
        draft.track();
        refused.set(false);
    });
    let kill = Action::new(move |key: &String| {
        let key = key.clone();
        async move { kill_flag(key).await }
    });
    // After a save or a rollback: say what changed (or why not) and reload the flag.
    // `show_saved` lists the changed tenants (for saves, not for rollbacks).
    let report = move |result: Result<SaveResult, AppError>,
                       text: fn(&SaveResult) -> String,
                       show_saved: bool| match result {
        Ok(s) => {
            detail.set(None);
            mine.set(Some(s.version));
            message.set(Some((true, text(&s))));
            if show_saved {
                saved.set(Some(s));
            }
            reload.run(());
        }
        Err(e) => {
            let text = e.to_string();
            use crate::error::Refusal;
            let why = match &e {
                AppError::Refused { why, .. } => Some(*why),
                _ => None,
            };
            // Asking for approval or passing the gates with a reason can help with gates, never
            // with a pause.
            refused.set(matches!(why, Some(Refusal::Gates | Refusal::Approval)));
            let words = match why {
                None => text.clone(),
                Some(Refusal::Paused) => "Not saved: the rollout is paused because a guard raised an alert. Look at the guards under “Rollout plan” below, then resume.".into(),
                Some(Refusal::Approval) => "Not saved: this exact change needs a second person's approval. Ask for approval below; an approver then approves it under Approvals.".into(),
                Some(Refusal::Gates) => "Not saved: this change turns tenants ON and the plan's gates for it are not all done. The to-do list under “Rollout plan” below says what is open and who can close it.".into(),
            };
            message.set(Some((false, words)));
            detail.set(why.is_some().then_some(text));
        }
    };
    Effect::new(move |_| {
        if let Some(r) = save.value().get() {
            report(
                r,
                |s| {
                    format!(
                        "Saved: {} tenant(s) turned ON, {} turned OFF.",
                        s.turned_on.len(),
                        s.turned_off.len()
                    )
                },
                true,
            );
        }
    });
    Effect::new(move |_| {
        if let Some(r) = kill.value().get() {
            report(
                r,
                |s| {
                    format!(
                        "Rolled back: {} tenant(s) lost the feature.",
                        s.turned_off.len()
                    )
                },
                false,
            );
        }
    });

    let key_for_save = key.clone();
    let on_save = move |_| {
        message.set(None);
        save.dispatch((key_for_save.clone(), draft.get_untracked(), version, None));
    };
    let key_for_override = key.clone();
    let on_override = move |_| {
        message.set(None);
        let why = Some(reason.get_untracked()).filter(|r| !r.trim().is_empty());
        save.dispatch((
            key_for_override.clone(),
            draft.get_untracked(),
            version,
            why,
        ));
    };
    let key_for_ask = key.clone();
    let on_ask = move |_| {
        message.set(None);
        ask.dispatch((key_for_ask.clone(), draft.get_untracked()));
    };
    let key_for_kill = key.clone();
    let on_kill = move |_| {
        let msg = format!(
            "Roll back {key_for_kill} now?\n\n{on_now} tenant(s) lose the feature at once. Every row of the flag is set OFF (the Quick Rollback)."
        );
        if window().confirm_with_message(&msg).unwrap_or(false) {
            message.set(None);
            kill.dispatch(key_for_kill.clone());
        }
    };

    let pct_value = move || match draft.get().phase {
        Phase::Percent(p) => p.get().to_string(),
        Phase::Full => "100".into(),
        _ => "0".into(),
    };
    let on_pct = move |ev: leptos::ev::Event| {
        if let Ok(n) = event_target_value(&ev).trim().parse::<u32>() {
            if let Ok(p) = Percentage::new(n) {
                draft.update(|r| {
                    r.phase = match n {
                        0 if r.pilots.is_empty() => Phase::Off,
                        0 => Phase::Pilot,
                        100 => Phase::Full,
                        _ => Phase::Percent(p),
                    }
                });
            }
        }
    };

    let pilot_matches = Memo::new(move |_| {
        let q = pilot_query.get().trim().to_lowercase();
        if q.is_empty() {
            return Vec::new();
        }
        let chosen: BTreeSet<String> = draft.with(|r| r.pilots.clone());
        data.with_value(|d| {
            d.tenants
                .iter()
                .filter(|t| t.id.to_lowercase().contains(&q) && !chosen.contains(&t.id))
                .take(8)
                .map(|t| t.id.clone())
                .collect::<Vec<_>>()
        })
    });

    view! {
        <div class="page-head">
            <h1><code>{key.clone()}</code></h1>
            <p class="muted">{data.with_value(|d| d.description.clone())}</p>
            <p>
                "Phase " <span class="pill phase" data-testid="current-phase">{current.phase.to_string()}</span>
                {format!(" · {on_now} of {total} tenants ON · version {version}")}
            </p>
        </div>
        {move || saved.get().map(|s| view! {
            <details class="panel">
                <summary>"Tenants the last save changed"</summary>
                <div class="columns">
                    <div><h3>"Turned ON"</h3><TenantList ids=s.turned_on testid="saved-on" /></div>
                    <div><h3>"Turned OFF"</h3><TenantList ids=s.turned_off testid="saved-off" /></div>
                </div>
            </details>
        })}
        {(!can_edit).then(|| view! {
            <p class="notice" data-testid="read-only">"Read-only for your role: product owners and admins change rollouts; you see where this one stands and its plan below."</p>
        })}
        <div class="panel">
            <h2>"Phase ladder"</h2>
            <ol class="ladder" data-testid="ladder">
                {DEFAULT_LADDER.iter().map(|p| {
                    let p = *p;
                    let label = phase_label(p);
                    view! {
                        <li class:current=move || current_phase(&data) == p class:draft=move || draft.get().phase == p>
                            <button type="button" class="btn" disabled=!can_edit data-testid=format!("phase-{p}")
                                on:click=move |_| draft.update(|r| r.phase = p)>{label}</button>
                        </li>
                    }
                }).collect_view()}
            </ol>
            <label class="field">
                <span>"Percentage of tenants"</span>
                <input type="number" min="0" max="100" step="1" data-testid="percentage" disabled=!can_edit
                    prop:value=pct_value on:input=on_pct />
            </label>
        </div>
        <div class="panel">
            <h2>"Pilot tenants"</h2>
            <ul class="chips" data-testid="pilots">
                {move || draft.get().pilots.into_iter().map(|id| {
                    let remove_id = id.clone();
                    view! {
                        <li class="chip"><code>{id.clone()}</code>
                            {can_edit.then(|| view! {
                                <button type="button" class="chip-x" aria-label=format!("Remove {id}")
                                    on:click=move |_| draft.update(|r| { r.pilots.remove(&remove_id); })>"×"</button>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            {can_edit.then(|| view! {
                <label class="field">
                    <span>"Add a pilot"</span>
                    <input type="search" placeholder="Tenant id" data-testid="pilot-search" autocomplete="off"
                        prop:value=move || pilot_query.get() on:input=move |ev| pilot_query.set(event_target_value(&ev)) />
                </label>
                <ul class="suggestions">
                    {move || pilot_matches.get().into_iter().map(|id| {
                        let add = id.clone();
                        view! {
                            <li><button type="button" class="btn small" data-testid="pilot-add"
                                on:click=move |_| { draft.update(|r| { r.pilots.insert(add.clone()); if r.phase == Phase::Off { r.phase = Phase::Pilot; } }); pilot_query.set(String::new()); }>
                                {format!("+ {id}")}</button></li>
                        }
                    }).collect_view()}
                </ul>
            })}
        </div>
        <div class="panel preview" data-testid="preview" data-preview-ms=move || format!("{:.2}", preview.with(|p| p.1))>
            <h2>"Preview"</h2>
            {move || {
                let Diff { turned_on, turned_off } = preview.get().0;
                view! {
                    <p>
                        <strong data-testid="preview-on-count">{turned_on.len()}</strong>" tenant(s) turn ON · "
                        <strong data-testid="preview-off-count">{turned_off.len()}</strong>" turn OFF"
                    </p>
                    <div class="columns">
                        <div><h3>"Turn ON"</h3><TenantList ids=turned_on testid="preview-on" /></div>
                        <div><h3>"Turn OFF"</h3><TenantList ids=turned_off testid="preview-off" /></div>
                    </div>
                }
            }}
            {move || {
                let (from, to) = (current_phase(&data), draft.get().phase);
                (can_edit && from != to).then(|| view! {
                    <p class="notice warn small" data-testid="window-restart">
                        {format!("Saving moves the flag from {0} to {1}: the monitoring window of {1} starts at this save, and the wait before the next phase counts from then. Pilots and constraints changed within a phase do not restart it.",
                            phase_label(from), phase_label(to))}
                    </p>
                })
            }}
            {can_edit.then(|| view! {
                <div class="actions">
                    <button type="button" class="btn primary" data-testid="save" disabled=move || !dirty.get() || save.pending().get()
                        on:click=on_save.clone()>{move || if save.pending().get() { "Saving…" } else { "Save" }}</button>
                    <button type="button" class="btn" disabled=move || !dirty.get() on:click=move |_| draft.set(data.with_value(|d| d.rollout.clone()))>"Discard"</button>
                    <button type="button" class="btn danger" data-testid="kill" on:click=on_kill.clone()>"Roll back (kill switch)"</button>
                </div>
            })}
            // What the last save, rollback or request did — next to the buttons that did it.
            {move || message.get().map(|(ok, text)| view! {
                <div class=if ok { "toast ok" } else { "toast err" } role="status" aria-live="polite" data-testid="flag-message">
                    {text}
                    {move || detail.get().map(|d| view! { <details><summary>"Details"</summary><p class="small">{d}</p></details> })}
                </div>
            })}
            {can_edit.then(|| view! {
                {move || refused.get().then(|| view! {
                    <div class="refused" data-testid="refused-actions">
                        <p class="small">"This change turns tenants ON, and the plan's gates for it do not hold (listed above). Complete them on the plan below, ask a second person to approve exactly this change, or — admins — save it with a written reason (audited)."</p>
                        <button type="button" class="btn" data-testid="ask-approval" on:click=on_ask.clone()>"Ask for approval of this change"</button>
                        {can_override.then(|| view! {
                            <label class="field">
                                <span>"Override reason"</span>
                                <input type="text" data-testid="override-reason" maxlength="1000"
                                    prop:value=move || reason.get() on:input=move |ev| reason.set(event_target_value(&ev)) />
                            </label>
                            <button type="button" class="btn danger" data-testid="save-override"
                                disabled=move || reason.get().trim().is_empty() on:click=on_override.clone()>"Save with override"</button>
                        })}
                    </div>
                })}
            })}
        </div>
    }
}

/// A phase as the editor names it (`OFF` in capitals, as the ladder shows it).
fn phase_label(p: Phase) -> String {
    match p {
        Phase::Off => "OFF".to_string(),
        other => other.to_string(),
    }
}

fn current_phase(data: &StoredValue<FlagEditorData>) -> Phase {
    data.with_value(|d| d.rollout.phase)
}

/// The browser's high-resolution clock, in milliseconds (0 on the server).
#[cfg(feature = "hydrate")]
fn now_ms() -> f64 {
    #[wasm_bindgen::prelude::wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_namespace = performance, js_name = now)]
        fn performance_now() -> f64;
    }
    performance_now()
}

#[cfg(not(feature = "hydrate"))]
fn now_ms() -> f64 {
    0.0
}

/// Server-only: the flag list's HTML, the flag page's first view, the conflict's words.
#[cfg(feature = "ssr")]
mod ssr {
    use leptos::prelude::*;

    use super::{FlagSummary, LastChange};

    /// The flag as the server shows it before (or without) the editor.
    #[component]
    pub fn Summary(f: store::flags::FlagRow) -> impl IntoView {
        let pilots: Vec<String> = f.rollout.pilots.iter().cloned().collect();
        let constraints = f.rollout.constraints.len();
        view! {
            <div class="panel" data-testid="flag-summary">
                <h1><code>{f.key.clone()}</code></h1>
                <p class="muted">{f.description.clone()}</p>
                <p>"Phase: " <strong data-testid="summary-phase">{f.rollout.phase.to_string()}</strong>
                    {format!(" · {} tenant(s) ON · global switch {}", f.tenants_on, if f.enabled { "ON" } else { "OFF" })}
                    {(f.tenants_excluded > 0).then(|| format!(" · {} excluded", f.tenants_excluded))}
                    {(constraints > 0).then(|| format!(" · {constraints} constraint(s)"))}</p>
                <p>"Pilots: " {if pilots.is_empty() { "none yet".to_string() } else { pilots.join(", ") }}</p>
                <noscript>
                    <p class="notice warn" data-testid="needs-js">"The rollout editor (phase ladder, pilot picker, live preview) needs JavaScript. The plan below — checklists, sign-offs, approvals, guards — works without it, and so does the API."</p>
                </noscript>
            </div>
        }
    }

    /// An audit row as the conflict warning says it.
    pub fn last_change(r: store::audit::AuditRow) -> LastChange {
        let what = match (r.action.as_str(), r.tenant_id.as_deref()) {
            ("rollout.apply", _) => "changed the rollout".to_string(),
            ("rollout.kill", _) => "rolled the flag back".to_string(),
            ("flag.create", _) => "created the flag".to_string(),
            (a, Some(t)) if a.starts_with("feature_flag.") => format!("switched tenant {t}"),
            (a, None) if a.starts_with("feature_flag.") => "changed the global switch".to_string(),
            (a, _) => a.to_string(),
        };
        let through = match r.source.as_str() {
            "ui" => "the web app",
            "api" => "the API",
            "cli" => "the CLI",
            "sql" => "SQL",
            "system" => "an automatic step",
            other => other,
        }
        .to_string();
        LastChange {
            actor: r.actor,
            what,
            through,
            at: crate::format::display_time(r.at),
        }
    }

    use crate::components::FlagLink;

    /// The flag list's table.
    #[component]
    pub fn FlagTable(list: Vec<FlagSummary>) -> impl IntoView {
        view! {
            <div class="table-wrap">
                <table class="table">
                    <thead><tr><th>"Flag"</th><th>"Phase"</th><th>"Next"</th><th class="num">"Tenant rows ON"</th><th>"Global"</th></tr></thead>
                    <tbody>
                        {list.into_iter().map(|f| view! {
                            <tr data-testid="flag-row">
                                <td><FlagLink key=f.key /><div class="muted small">{f.description}</div></td>
                                <td><span class="pill phase">{f.phase}</span></td>
                                <td>{f.next.unwrap_or_else(|| "—".into())}</td>
                                <td class="num">{f.tenants_on}</td>
                                <td>{if f.enabled { "ON" } else { "off" }}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tenant(id: &str, plan: &str) -> Tenant {
        Tenant {
            id: id.into(),
            plan: plan.into(),
            region: "eu".into(),
            tags: vec!["beta".into()],
        }
    }

    /// The editor's data survives its compact wire form: the same tenants with their attributes,
    /// the same rows, exclusions and target — and the wire is the one-flag v2 document.
    #[test]
    fn editor_data_travels_as_a_compact_snapshot() {
        let tenants: Vec<Tenant> = (0..200)
            .map(|i| tenant(&format!("t{i:03}"), if i % 3 == 0 { "pro" } else { "free" }))
            .collect();
        let rollout = Rollout {
            phase: DEFAULT_LADDER[2],
            pilots: ["t007".to_string()].into_iter().collect(),
            ..Rollout::default()
        };
        let key = "multi_workspace_enabled";
        let mut state = Rollout::default().apply(&FlagState::default(), key, &rollout, &tenants);
        state.on.insert("t150".into());
        state.on.remove("t007");
        state.excluded.insert("t003".into());
        let data = FlagEditorData {
            key: key.into(),
            description: "Multi-workspace".into(),
            version: 7,
            rollout,
            state,
            tenants,
            can_edit: true,
            can_override: false,
            last_change: None,
            compact: None,
        };
        let json = serde_json::to_string(&data).unwrap();
        assert!(
            json.contains(r#""format":"tenantry.snapshot/v2""#),
            "{json}"
        );
        assert!(
            !json.contains(r#""plan":"free""#),
            "tenants are not listed one by one"
        );
        let back: FlagEditorData = serde_json::from_str(&json).unwrap();
        assert_eq!(back, data);
        // Built beforehand (as the server function does): the same wire.
        let built = FlagEditorData {
            compact: Some(std::sync::Arc::new(
                FlagEditorData::compact_of(&data.key, &data.state, &data.tenants).unwrap(),
            )),
            ..data.clone()
        };
        assert_eq!(serde_json::to_string(&built).unwrap(), json);
    }
}
