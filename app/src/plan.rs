//! The rollout plan on the flag page: the gates of the next phase and their state, the change
//! advancing would make and its approval, the checklists, the sign-off table and the contacts.
//!
//! The panel is rendered on the server (no view code in the wasm) and acts through plain HTML
//! forms posting to server functions: they work with JavaScript off, and the server function
//! redirects back to the page (with the error in `__err` when it refused), so every action is a
//! full round trip through the server's role checks.
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::AppError;

/// The plan panel of flag `key`, as HTML. A refused form post comes back to the page with the
/// error in `__err`; that page load renders the panel on the server, which shows the error above
/// the plan (read from the request here, so the browser build carries no code for it).
#[server(prefix = "/rpc", endpoint = "plan_panel")]
pub async fn plan_panel(key: String) -> Result<String, AppError> {
    let user = crate::auth::require(&crate::auth::Role::ALL).await?;
    let ctx = crate::server_context()?;
    let now = chrono::Utc::now();
    let plan = store::rollout::plan_state(&ctx.pool, &key, now).await?;
    let charts = match &ctx.prometheus {
        Some(prom) => ssr::guard_charts(&ctx.pool, prom, &plan, now).await,
        None => Vec::new(),
    };
    let uri: Option<http::Uri> = leptos_axum::extract().await.ok();
    let feedback = ssr::feedback(&key, uri.as_ref().and_then(|u| u.query())).await;
    Ok(crate::html::render(move || {
        view! { <ssr::PlanBody plan user feedback charts /> }
    }))
}

/// The plan panel of the flag page (rendered by [`plan_panel`]; refetched on every change).
#[component]
pub fn PlanPanel() -> impl IntoView {
    let params = use_params_map();
    let changes = crate::live::use_changes();
    let data = Resource::new(
        move || (params.read().get("key").unwrap_or_default(), changes.get()),
        |(key, _)| plan_panel(key),
    );
    // A form reloaded the page and the panel says what happened: focus that message once (the
    // browser's `autofocus` is lost when hydration takes over the panel), so a keyboard user goes
    // on from the card they acted in.
    #[cfg(feature = "hydrate")]
    {
        let focused = StoredValue::new(false);
        Effect::new(move |_| {
            if !matches!(data.get(), Some(Ok(_))) || focused.get_value() {
                return;
            }
            focused.set_value(true);
            request_animation_frame(|| {
                use wasm_bindgen::JsCast;
                let toast = document()
                    .query_selector(".plan .toast[autofocus]")
                    .ok()
                    .flatten();
                if let Some(el) =
                    toast.and_then(|e| e.dyn_into::<leptos::web_sys::HtmlElement>().ok())
                {
                    let _ = el.focus();
                }
            });
        });
    }
    view! {
        <section class="plan" data-testid="plan-panel">
            <h2>"Rollout plan"</h2>
            <crate::html::ServerBody data loading="Loading the plan…" />
        </section>
    }
}

/// Ticks (`ticked = "true"`) or unticks a checklist item, with an optional note.
#[server(prefix = "/rpc", endpoint = "plan_tick")]
pub async fn plan_tick(
    key: String,
    checklist: String,
    item: String,
    ticked: bool,
    note: Option<String>,
) -> Result<(), AppError> {
    let r = async {
        let user = crate::auth::require(ssr::TICKERS).await?;
        let ctx = crate::server_context()?;
        let note = note.unwrap_or_default();
        store::plans::tick(
            &ctx.pool,
            &crate::auth::actor(&user),
            &key,
            &checklist,
            &item,
            ticked,
            note.trim(),
        )
        .await?;
        ctx.publish().await;
        Ok(())
    }
    .await;
    let done = format!("{} “{item}”.", if ticked { "Ticked" } else { "Unticked" });
    ssr::back(&key, &ssr::checklist_anchor(&checklist), &done, r).await
}

/// Signs (or withdraws) a milestone. Only a role that owns the milestone may (DevOps → admin,
/// DBA → dba, QA → qa, Product → product_owner, Team → any; admins sign everything).
///
/// Signing a milestone whose phase's checklists are not all ticked needs `incomplete = "confirmed"`:
/// without it the signature is refused with the open items named; with it, they are recorded in
/// the audit entry of the signature.
#[server(prefix = "/rpc", endpoint = "plan_sign")]
pub async fn plan_sign(
    key: String,
    milestone: String,
    signed: bool,
    #[server(default)] incomplete: Option<String>,
) -> Result<(), AppError> {
    let r = async {
        let user = crate::auth::require(&crate::auth::Role::ALL).await?;
        let ctx = crate::server_context()?;
        let open = if signed {
            let plan = store::rollout::plan_state(&ctx.pool, &key, chrono::Utc::now()).await?;
            // Only the milestone's owner is asked (anyone else is refused by the write below).
            let owns = plan
                .document
                .milestones
                .iter()
                .any(|m| m.name == milestone && m.signed_by(user.role));
            if owns {
                ssr::open_items_for(&plan, &milestone)
            } else {
                Vec::new()
            }
        } else {
            Vec::new()
        };
        if !open.is_empty() && incomplete.as_deref() != Some("confirmed") {
            return Err(AppError::Invalid(format!(
                "“{milestone}” has {} open checklist item(s): {}. Tick them first, or confirm that you sign with them open (recorded).",
                open.len(),
                open.join("; ")
            )));
        }
        store::plans::sign_noting(
            &ctx.pool,
            &crate::auth::actor(&user),
            &key,
            &milestone,
            signed,
            user.role,
            &open,
        )
        .await?;
        ctx.publish().await;
        Ok(())
    }
    .await;
    let done = if signed {
        format!("Signed “{milestone}”.")
    } else {
        format!("Withdrew the signature of “{milestone}”.")
    };
    ssr::back(&key, "signoffs", &done, r).await
}

/// Asks a second user to approve the change advancing would make now.
#[server(prefix = "/rpc", endpoint = "plan_request")]
pub async fn plan_request(key: String) -> Result<(), AppError> {
    let r = async {
        let user = crate::auth::require(crate::auth::Role::FLAG_EDITORS).await?;
        let ctx = crate::server_context()?;
        store::rollout::request(
            &ctx.pool,
            &crate::auth::actor(&user),
            &key,
            &store::rollout::Spec::Advance,
        )
        .await?;
        ctx.publish().await;
        Ok(())
    }
    .await;
    ssr::back(
        &key,
        "plan-gates",
        "Approval requested: approvers see it in the navigation, on the dashboard and here, under Approvals.",
        r,
    )
    .await
}

/// Approves change request `id` (an approver role of the plan; never the requester).
#[server(prefix = "/rpc", endpoint = "plan_approve")]
pub async fn plan_approve(key: String, id: i64) -> Result<(), AppError> {
    let r = async {
        let user = crate::auth::require(&crate::auth::Role::ALL).await?;
        let ctx = crate::server_context()?;
        store::rollout::approve(&ctx.pool, &crate::auth::actor(&user), &key, id, user.role).await?;
        ctx.publish().await;
        Ok(())
    }
    .await;
    ssr::back(
        &key,
        "approvals",
        "Approved: the person who asked can now make exactly this change.",
        r,
    )
    .await
}

/// Advances the flag to its next phase through the gates; an admin may pass unmet gates with a
/// written reason (break glass, audited).
#[server(prefix = "/rpc", endpoint = "plan_advance")]
pub async fn plan_advance(key: String, override_reason: Option<String>) -> Result<(), AppError> {
    let r = async {
        let user = crate::auth::require(crate::auth::Role::FLAG_EDITORS).await?;
        let gating = crate::auth::gating(&user, override_reason)?;
        let ctx = crate::server_context()?;
        let a = store::rollout::change(
            &ctx.pool,
            &crate::auth::actor(&user),
            &key,
            &store::rollout::Spec::Advance,
            None,
            &gating,
        )
        .await?;
        ctx.publish().await;
        Ok(a.change)
    }
    .await;
    let done = match &r {
        Ok(c) => format!(
            "Advanced: {} tenant(s) turned ON, {} turned OFF.",
            c.turned_on.len(),
            c.turned_off.len()
        ),
        Err(_) => String::new(),
    };
    ssr::back(&key, "plan-gates", &done, r.map(|_| ())).await
}

/// Replaces the plan's contacts: one per line, `role | contact`.
#[server(prefix = "/rpc", endpoint = "plan_contacts")]
pub async fn plan_contacts(key: String, contacts: String) -> Result<(), AppError> {
    let r = async {
        let user = crate::auth::require(crate::auth::Role::FLAG_EDITORS).await?;
        let ctx = crate::server_context()?;
        let mut rows = Vec::new();
        for (i, line) in contacts.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((role, contact)) = line.split_once('|') else {
                return Err(AppError::Invalid(format!(
                    "line {}: write `role | contact`, got {line:?}",
                    i + 1
                )));
            };
            rows.push(flags::plan::Contact {
                role: role.trim().to_string(),
                contact: contact.trim().to_string(),
            });
        }
        store::plans::set_contacts(&ctx.pool, &crate::auth::actor(&user), &key, &rows).await?;
        ctx.publish().await;
        Ok(())
    }
    .await;
    ssr::back(&key, "contacts", "Contacts saved.", r).await
}

/// The plan's approvals and automatic advance (admins).
#[server(prefix = "/rpc", endpoint = "plan_settings")]
pub async fn plan_settings(
    key: String,
    approvals_required: Option<String>,
    approver_roles: String,
    auto_advance: Option<String>,
    on_alert: Option<String>,
    guards: Option<String>,
) -> Result<(), AppError> {
    let r = async {
        use crate::auth::Role;
        let user = crate::auth::require(&[Role::Admin]).await?;
        let ctx = crate::server_context()?;
        let invalid = |e: flags::Error| AppError::Invalid(e.to_string());
        let settings = store::plans::Settings {
            approvals_required: approvals_required.is_some(),
            approver_roles: approver_roles
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::parse::<Role>)
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
            auto_advance: auto_advance.is_some(),
            on_alert: match on_alert.as_deref() {
                None => flags::change::OnAlert::Pause,
                Some(o) => o.parse().map_err(invalid)?,
            },
        };
        let guards: Option<Vec<flags::guard::GuardSpec>> = match guards.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                AppError::Invalid(format!(
                    "guards: {e} (a JSON list of {{name, title, query, warn, alert, direction}})"
                ))
            })?),
        };
        store::plans::set_settings(
            &ctx.pool,
            &crate::auth::actor(&user),
            &key,
            &settings.into(),
            None,
            guards.as_deref(),
        )
        .await?;
        ctx.publish().await;
        Ok(())
    }
    .await;
    ssr::back(&key, "settings", "Settings saved.", r).await
}

/// Resumes a rollout a guard paused (product owners and admins): a person's decision, audited.
#[server(prefix = "/rpc", endpoint = "plan_resume")]
pub async fn plan_resume(key: String) -> Result<(), AppError> {
    let r = async {
        let user = crate::auth::require(crate::auth::Role::FLAG_EDITORS).await?;
        let ctx = crate::server_context()?;
        store::plans::resume(&ctx.pool, &crate::auth::actor(&user), &key).await?;
        ctx.publish().await;
        Ok(())
    }
    .await;
    ssr::back(
        &key,
        "plan-gates",
        "Resumed: the rollout may advance again when its gates hold.",
        r,
    )
    .await
}

/// Server-only: who ticks, the guard charts and the panel's HTML.
#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use leptos::prelude::*;

    use crate::auth::Role;
    use crate::AppError;

    /// Roles that tick checklist items.
    pub const TICKERS: &[Role] = &[Role::Admin, Role::ProductOwner, Role::Qa, Role::Dba];

    /// What the last form did, shown next to the control that posted it.
    #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
    pub struct Feedback {
        /// The id of the card it belongs to (`plan-gates`, `signoffs`, `checklist-…`).
        pub at: String,
        /// Done (true) or refused.
        pub ok: bool,
        /// In words.
        pub text: String,
        /// The server's own words, behind "Details" (refusals).
        pub detail: Option<String>,
    }

    /// The session key of the flash a plan form leaves for the page it goes back to.
    const FLASH: &str = "plan_flash";

    fn enc(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    /// The id of a checklist's card.
    pub fn checklist_anchor(name: &str) -> String {
        let slug: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        format!("checklist-{}", slug.trim_matches('-'))
    }

    /// Ends a plan form's server function. A form posted without JavaScript (it accepts HTML)
    /// goes back to the flag page at the card of the control that posted it (`#anchor`, so the
    /// browser scrolls there), where what happened is shown. What happened travels in the
    /// session (a flash, shown once), not in the address: a link cannot make the page claim
    /// something was done. A caller that asked for JSON gets the result as is.
    pub async fn back<T>(
        key: &str,
        anchor: &str,
        done: &str,
        r: Result<T, AppError>,
    ) -> Result<T, AppError> {
        let wants_html = use_context::<http::request::Parts>().is_some_and(|p| {
            p.headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"))
        });
        if wants_html {
            let said = match &r {
                Ok(_) => Feedback {
                    at: anchor.to_string(),
                    ok: true,
                    text: done.to_string(),
                    detail: None,
                },
                Err(e) => {
                    let why = match e {
                        AppError::Refused { why, .. } => Some(*why),
                        _ => None,
                    };
                    let text = e.to_string();
                    Feedback {
                        at: anchor.to_string(),
                        ok: false,
                        text: in_words(why, &text),
                        detail: Some(text),
                    }
                }
            };
            if let Ok(session) = leptos_axum::extract::<tower_sessions::Session>().await {
                if let Err(e) = session.insert(FLASH, (key, said)).await {
                    tracing::warn!(error = %e, "keeping a plan form's feedback");
                }
            }
            leptos_axum::redirect(&format!("/flags/{}?at={}#{anchor}", enc(key), enc(anchor)));
        }
        r
    }

    /// What the last plan form of `key` did, once: the flash [`back`] left in the session, or
    /// the error Leptos puts in the address when a form's fields could not be read (`__err`).
    pub async fn feedback(key: &str, query: Option<&str>) -> Option<Feedback> {
        if let Ok(session) = leptos_axum::extract::<tower_sessions::Session>().await {
            if let Ok(Some((k, said))) = session.remove::<(String, Feedback)>(FLASH).await {
                if k == key {
                    return Some(said);
                }
            }
        }
        let mut at = None;
        let mut err = None;
        for (k, v) in url::form_urlencoded::parse(query?.as_bytes()) {
            match k.as_ref() {
                "at" => at = Some(v.into_owned()),
                "__err" => {
                    err = Some(
                        leptos::server_fn::error::ServerFnUrlError::<AppError>::decode_err(&v)
                            .to_string(),
                    )
                }
                _ => {}
            }
        }
        let e = err?;
        Some(Feedback {
            at: at.unwrap_or_else(|| "plan-gates".into()),
            ok: false,
            text: in_words(None, &e),
            detail: Some(e),
        })
    }

    /// A refusal as a product owner reads it, by its kind; the server's own words stay behind
    /// "Details". Other errors are the server's sentence as it is.
    fn in_words(why: Option<crate::error::Refusal>, e: &str) -> String {
        use crate::error::Refusal;
        match why {
            Some(Refusal::Approval) => "Not yet: this exact change needs a second person's approval. Ask for approval; an approver then approves it under Approvals.".into(),
            Some(Refusal::Gates) => "Not yet: some of the gates listed above are still open. Each says who can close it and where.".into(),
            Some(Refusal::Paused) => "Not while the rollout is paused: a guard raised an alert. Look at the guards, then resume.".into(),
            None => e.to_string(),
        }
    }

    /// The items of the checklists that guard the same phase as `milestone`, still unticked.
    pub fn open_items_for(plan: &store::rollout::PlanState, milestone: &str) -> Vec<String> {
        let mut out = Vec::new();
        for g in plan
            .gates
            .iter()
            .filter(|g| g.milestones.iter().any(|m| m == milestone))
        {
            for name in &g.checklists {
                let Some(c) = plan.document.checklists.iter().find(|c| &c.name == name) else {
                    continue;
                };
                for item in &c.items {
                    let ticked = plan
                        .ticks
                        .iter()
                        .any(|t| &t.checklist == name && &t.item == item && t.ticked);
                    let line = format!(
                        "{name} — {}",
                        flags::plan::fill_placeholders(item, &plan.pilots)
                    );
                    if !ticked && !out.contains(&line) {
                        out.push(line);
                    }
                }
            }
        }
        out
    }

    /// Feedback for the card `id`, if the last form was posted from it.
    #[component]
    fn Said(feedback: Option<Feedback>, id: &'static str) -> impl IntoView {
        feedback.filter(|f| f.at == id).map(said)
    }

    fn said(f: Feedback) -> impl IntoView {
        view! {
            // Focused when the page loads (the form reloaded it): a keyboard user goes on from the
            // card they acted in, not from the top of the page.
            <div class=if f.ok { "toast ok" } else { "toast err" } role=if f.ok { "status" } else { "alert" }
                tabindex="-1" autofocus=true
                data-testid=if f.ok { "plan-done" } else { "plan-error" }>
                <p>{f.text}</p>
                {f.detail.map(|d| view! { <details><summary>"Details"</summary><p class="small mono">{d}</p></details> })}
            </div>
        }
    }

    /// Each guard's series over the monitoring window (the phase so far, at least 24 h, at most 72 h)
    /// as an SVG, or why there is none. Per-tenant guards show the tenants with the flag ON against
    /// the others.
    pub async fn guard_charts(
        pool: &store::PgPool,
        prom: &infra::prom::Prometheus,
        plan: &store::rollout::PlanState,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<(String, Result<String, String>)> {
        let window = (now - plan.phase_since)
            .clamp(chrono::Duration::hours(24), chrono::Duration::hours(72));
        let step = std::time::Duration::from_secs((window.num_seconds() / 120).max(15) as u64);
        let mut out = Vec::new();
        for g in &plan.guards {
            let chart = match prom.range(&g.query, now - window, now, step).await {
                Ok(series) => {
                    let ids: Vec<String> = series.iter().filter_map(|s| s.tenant.clone()).collect();
                    let on: std::collections::HashSet<String> = if g.per_tenant && !ids.is_empty() {
                        store::tenants::on_among(pool, &plan.flag_key, &ids)
                            .await
                            .unwrap_or_default()
                            .into_iter()
                            .collect()
                    } else {
                        Default::default()
                    };
                    let lines = crate::chart::split(g.per_tenant, &series, &|t| on.contains(t));
                    Ok(crate::chart::guard_svg(
                        g,
                        &lines,
                        (now - window).timestamp(),
                        now.timestamp(),
                    ))
                }
                Err(e) => Err(e),
            };
            out.push((g.name.clone(), chart));
        }
        out
    }

    /// The phases whose entry the gates `pick` selects guard ("into pilot, into 10%"), if any.
    fn gated_phases(
        plan: &store::rollout::PlanState,
        pick: impl Fn(&flags::plan::PhaseGates) -> bool,
    ) -> Option<String> {
        let phases: Vec<String> = plan
            .gates
            .iter()
            .filter(|g| pick(g))
            .map(|g| format!("into {}", g.phase))
            .collect();
        (!phases.is_empty()).then(|| phases.join(", "))
    }

    /// A moment as the panel shows it.
    fn when(t: chrono::DateTime<chrono::Utc>) -> String {
        crate::format::display_time(t)
    }

    /// A hidden form field.
    #[component]
    fn Hidden(name: &'static str, value: String) -> impl IntoView {
        view! { <input type="hidden" name=name value=value /> }
    }

    /// One gate of the next phase as a to-do item.
    pub(crate) struct Todo {
        pub label: String,
        pub done: bool,
        /// Who can close it, in words.
        pub who: String,
        /// Where it is done: an anchor of the flag page (`#signoffs`) or a page (`/dba/…`).
        pub href: String,
        /// What stands in the way now (open items).
        pub detail: Option<String>,
    }

    /// What the to-do list of the gates into the next phase reads: the flag page's plan or a
    /// dashboard card's ([`store::rollout::NextGates`]), so both list the same items.
    pub(crate) struct GateView<'a> {
        pub phase: flags::Phase,
        pub next: Option<flags::Phase>,
        pub gates: Option<&'a flags::plan::PhaseGates>,
        pub document: &'a flags::plan::PlanDocument,
        pub guards: &'a [flags::guard::GuardSpec],
        pub settings: &'a store::plans::Settings,
        pub paused: Option<&'a store::plans::Paused>,
        pub unmet: &'a [flags::plan::Unmet],
    }

    impl<'a> From<&'a store::rollout::PlanState> for GateView<'a> {
        fn from(p: &'a store::rollout::PlanState) -> Self {
            GateView {
                phase: p.phase,
                next: p.next,
                gates: p.gates.iter().find(|g| Some(g.phase) == p.next),
                document: &p.document,
                guards: &p.guards,
                settings: &p.settings,
                paused: p.paused.as_ref(),
                unmet: &p.unmet,
            }
        }
    }

    impl<'a> From<&'a store::rollout::NextGates> for GateView<'a> {
        fn from(g: &'a store::rollout::NextGates) -> Self {
            GateView {
                phase: g.phase,
                next: g.next,
                gates: g.gates.as_ref(),
                document: &g.document,
                guards: &g.guards,
                settings: &g.settings,
                paused: g.paused.as_ref(),
                unmet: &g.unmet,
            }
        }
    }

    fn roles_text(roles: &[Role]) -> String {
        roles
            .iter()
            .map(|r| r.label())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The gates into the next phase as groups of to-do items: wait, checklists, sign-offs,
    /// guards, migrations, approval (and the pause, when there is one). Done or not comes from
    /// the write path's own verdict (`plan.unmet`), so the list and a refusal never disagree.
    pub(crate) fn todos(plan: GateView<'_>) -> Vec<(&'static str, Vec<Todo>)> {
        use flags::plan::Unmet;
        if plan.next.is_none() {
            return Vec::new();
        }
        let gates = plan.gates;
        let mut groups: Vec<(&'static str, Vec<Todo>)> = Vec::new();
        if let Some(p) = &plan.paused {
            groups.push((
                "Paused",
                vec![Todo {
                    label: format!("Resume the rollout ({})", p.reason),
                    done: false,
                    who: "a product owner or an admin, after looking at the guards".into(),
                    href: "#plan-gates".into(),
                    detail: None,
                }],
            ));
        }
        if let Some(g) = gates {
            if g.min_window_hours > 0 {
                let left = plan.unmet.iter().find_map(|u| match u {
                    Unmet::Window { remaining_secs } => Some(*remaining_secs),
                    _ => None,
                });
                groups.push((
                    "Wait",
                    vec![Todo {
                        label: format!("{} h of monitoring in {}", g.min_window_hours, plan.phase),
                        done: left.is_none(),
                        who: "nobody: time does it".into(),
                        href: "#guards".into(),
                        detail: left.map(|s| format!("{} left", crate::format::human_age(s))),
                    }],
                ));
            }
            let mut items = Vec::new();
            for name in &g.checklists {
                let Some(c) = plan.document.checklists.iter().find(|c| &c.name == name) else {
                    items.push(Todo {
                        label: format!("Checklist “{name}”"),
                        done: false,
                        who: "a product owner: the plan has no such checklist".into(),
                        href: "#plan-gates".into(),
                        detail: None,
                    });
                    continue;
                };
                let open = c
                    .items
                    .iter()
                    .filter(|i| plan.unmet.iter().any(|u| matches!(u, Unmet::Unticked { checklist, item } if checklist == name && &item == i)))
                    .count();
                items.push(Todo {
                    label: format!(
                        "{name}: {} of {} ticked",
                        c.items.len() - open,
                        c.items.len()
                    ),
                    done: open == 0,
                    who: roles_text(TICKERS),
                    href: format!("#{}", checklist_anchor(name)),
                    detail: None,
                });
            }
            if !items.is_empty() {
                groups.push(("Checklists", items));
            }
            let items: Vec<Todo> =
                g.milestones
                    .iter()
                    .map(|m| {
                        let owner = plan
                            .document
                            .milestones
                            .iter()
                            .find(|x| &x.name == m)
                            .map(|x| x.owner.clone())
                            .unwrap_or_default();
                        let who = flags::change::owner_roles(&owner)
                            .map(roles_text)
                            .unwrap_or(owner);
                        Todo {
                            label: format!("Sign “{m}”"),
                            done: !plan.unmet.iter().any(
                                |u| matches!(u, Unmet::Unsigned { milestone } if milestone == m),
                            ),
                            who,
                            href: "#signoffs".into(),
                            detail: None,
                        }
                    })
                    .collect();
            if !items.is_empty() {
                groups.push(("Sign-offs", items));
            }
            let items: Vec<Todo> = g
                .guards
                .iter()
                .map(|name| {
                    let title = plan
                        .guards
                        .iter()
                        .find(|x| &x.name == name)
                        .map(|x| x.title.clone())
                        .unwrap_or_else(|| name.clone());
                    let state = plan.unmet.iter().find_map(|u| match u {
                        Unmet::Guard { guard, state } if guard == name => Some(state.clone()),
                        _ => None,
                    });
                    Todo {
                        label: format!("{title} is normal"),
                        done: state.is_none(),
                        who: "the on-call engineer watches it; it clears when the metric does"
                            .into(),
                        href: "#guards".into(),
                        detail: state,
                    }
                })
                .collect();
            if !items.is_empty() {
                groups.push(("Guards", items));
            }
            if g.migrations {
                groups.push((
                    "Migrations",
                    vec![Todo {
                        label: "Every migration applied, none drifted".into(),
                        done: !plan.unmet.iter().any(|u| matches!(u, Unmet::Migrations)),
                        who: "a DBA".into(),
                        href: "/dba/migrations".into(),
                        detail: None,
                    }],
                ));
            }
        }
        // What the write path found open that no group above covers (a custom plan's rung, or a
        // change whose reach needs a higher rung's gates): listed, so the list never says
        // "done" while advancing is refused.
        let covered = |u: &Unmet| match u {
            Unmet::Paused { .. } => plan.paused.is_some(),
            Unmet::Window { .. } => gates.is_some_and(|g| g.min_window_hours > 0),
            Unmet::Unticked { checklist, .. } | Unmet::MissingChecklist { checklist } => {
                gates.is_some_and(|g| g.checklists.contains(checklist))
            }
            Unmet::Unsigned { milestone } => {
                gates.is_some_and(|g| g.milestones.contains(milestone))
            }
            Unmet::Guard { guard, .. } => gates.is_some_and(|g| g.guards.contains(guard)),
            Unmet::Migrations => gates.is_some_and(|g| g.migrations),
            Unmet::Approval { .. } => plan.settings.approvals_required,
        };
        let other: Vec<Todo> = plan
            .unmet
            .iter()
            .filter(|u| !covered(u))
            .map(|u| Todo {
                label: u.to_string(),
                done: false,
                who: "see the plan: a higher rung's gate this change reaches".into(),
                href: "#plan-gates".into(),
                detail: None,
            })
            .collect();
        if !other.is_empty() {
            groups.push(("Other", other));
        }
        if plan.settings.approvals_required {
            groups.push((
                "Approval",
                vec![Todo {
                    label: "A second person approves this exact change".into(),
                    done: !plan
                        .unmet
                        .iter()
                        .any(|u| matches!(u, Unmet::Approval { .. })),
                    who: roles_text(&plan.settings.approver_roles),
                    href: "#approvals".into(),
                    detail: None,
                }],
            ));
        }
        groups
    }

    /// The panel: the gates of the next phase, guards, approvals, sign-offs, checklists, contacts
    /// and (admins) the settings, with the forms `user`'s role may use.
    #[component]
    pub fn PlanBody(
        plan: store::rollout::PlanState,
        user: crate::auth::UserView,
        feedback: Option<Feedback>,
        charts: Vec<(String, Result<String, String>)>,
    ) -> impl IntoView {
        let key = plan.flag_key.clone();
        let role = user.role;
        let edits = Role::FLAG_EDITORS.contains(&role);
        let next = plan.next.map(|p| p.to_string());
        let gates_hold = plan.unmet.is_empty();
        let may_approve = plan.settings.approver_roles.contains(&role);
        let current: Vec<store::approvals::ChangeRequest> = plan
            .requests
            .iter()
            .filter(|r| r.current)
            .cloned()
            .collect();
        let asked = current.iter().any(|r| r.requester() == user.username);
        let k = key.clone();
        let groups = todos(GateView::from(&plan));
        let total: usize = groups.iter().map(|(_, items)| items.len()).sum();
        let done: usize = groups
            .iter()
            .map(|(_, items)| items.iter().filter(|t| t.done).count())
            .sum();
        let open = total - done;
        let pending_for_me: Vec<&store::approvals::ChangeRequest> = current
            .iter()
            .filter(|r| r.approved_by.is_none() && may_approve && r.requester() != user.username)
            .collect();
        let gates = view! {
            <div class="card" id="plan-gates" data-testid="plan-gates">
                <h3>{match &next {
                    Some(n) => format!("Gates into {n}"),
                    None => "At 100%: no further phase".to_string(),
                }}</h3>
                <p class="muted small" data-testid="phase-since">{format!("Phase {} since {}.", plan.phase, when(plan.phase_since))}</p>
                {plan.decision_overdue.then(|| view! {
                    <p class="error" role="alert" data-testid="decision-overdue">"The decision on this phase is overdue: widen or roll back."</p>
                })}
                {(!pending_for_me.is_empty()).then(|| view! {
                    <p class="notice warn" data-testid="approval-waiting">
                        {format!("{} change(s) wait for your approval — ", pending_for_me.len())}
                        <a href="#approvals">"see Approvals"</a>"."
                    </p>
                })}
                {next.is_some().then(|| view! {
                    <p class="todo-progress" data-testid="gates-done">
                        <strong>{format!("{done} of {total} done")}</strong>
                        {if open == 0 { " — every gate holds.".to_string() } else { format!(" — {open} still open.") }}
                    </p>
                    <progress max=total.max(1).to_string() value=done.to_string() aria-hidden="true"></progress>
                })}
                {(next.is_some() && gates_hold).then(|| view! { <p class="ok" data-testid="gates-ok">"Every gate holds."</p> })}
                <div class="todo" data-testid="gate-todo">
                    {groups.into_iter().map(|(group, items)| {
                        let n = items.len();
                        let d = items.iter().filter(|t| t.done).count();
                        view! {
                            <section class="todo-group" data-group=group>
                                <h4>{group}<span class="muted small">{format!(" · {d} of {n}")}</span></h4>
                                <ul>
                                    {items.into_iter().map(|t| view! {
                                        <li class=if t.done { "done" } else { "open" } data-testid="todo-item" data-done=t.done.to_string()>
                                            <span class="mark" aria-hidden="true">{if t.done { "✓" } else { "○" }}</span>
                                            <span class="sr-only">{if t.done { "Done: " } else { "Open: " }}</span>
                                            {t.label}
                                            {t.detail.map(|d| view! { <span class="muted small">{format!(" — {d}")}</span> })}
                                            {(!t.done).then(|| view! {
                                                <span class="who small">" · "{t.who}" · "<a href=t.href>"go there"</a></span>
                                            })}
                                        </li>
                                    }).collect_view()}
                                </ul>
                            </section>
                        }
                    }).collect_view()}
                </div>
                {(next.is_some() && !gates_hold).then(|| view! {
                    <details class="small">
                        <summary>"Details for engineers"</summary>
                        <ul class="unmet" data-testid="unmet">
                            {plan.unmet_text.iter().map(|u| view! { <li>{u.clone()}</li> }).collect_view()}
                        </ul>
                        {plan.proposal.clone().map(|p| view! {
                            <p data-testid="proposal-hash">"Change " <code>{p.hash.clone()}</code></p>
                        })}
                    </details>
                })}
                {plan.proposal.clone().map(|p| view! {
                    <p class="small" data-testid="proposal">
                        {format!("Advancing to {} turns {} tenant(s) ON and {} OFF.", p.to, p.turned_on, p.turned_off)}
                    </p>
                })}
                <Said feedback=feedback.clone() id="plan-gates" />
                {(next.is_some() && edits).then(|| view! {
                    <div class="actions">
                        {(plan.settings.approvals_required && !asked).then(|| view! {
                            <form method="post" action="/rpc/plan_request" class="inline">
                                <Hidden name="key" value=k.clone() />
                                <button type="submit" class="btn" data-testid="plan-request">"Ask for approval"</button>
                            </form>
                        })}
                        <form method="post" action="/rpc/plan_advance" class="inline">
                            <Hidden name="key" value=k.clone() />
                            <button type="submit" class=if gates_hold { "btn primary" } else { "btn" } data-testid="plan-advance">{
                                let to = next.clone().unwrap_or_default();
                                if gates_hold { format!("Advance to {to}") } else { format!("Advance to {to} ({open} gate(s) open)") }
                            }</button>
                        </form>
                    </div>
                })}
                {(next.is_some() && role == Role::Admin && !gates_hold).then(|| view! {
                    <form method="post" action="/rpc/plan_advance" class="break-glass">
                        <Hidden name="key" value=k.clone() />
                        <label>"Break glass — why override the gates? (audited)"
                            <input type="text" name="override_reason" required maxlength="1000" data-testid="override-reason" />
                        </label>
                        <button type="submit" class="btn danger" data-testid="plan-override">"Override and advance"</button>
                    </form>
                })}
            </div>
        };
        let requests = (!plan.requests.is_empty()).then(|| {
            let k = key.clone();
            view! {
                <div class="card" id="approvals">
                    <h3>"Approvals"</h3>
                    <Said feedback=feedback.clone() id="approvals" />
                    <table class="table" data-testid="change-requests">
                        <thead><tr><th>"Change"</th><th>"Asked by"</th><th>"Approved by"</th><th>"State"</th><th></th></tr></thead>
                        <tbody>
                            {plan.requests.iter().map(|r| {
                                let state = if r.applied_at.is_some() { "applied" }
                                    else if !r.current { "stale: the flag changed since" }
                                    else if r.approved_by.is_some() { "approved" }
                                    else { "waiting for approval" };
                                let can = r.current && r.approved_by.is_none() && may_approve && r.requester() != user.username;
                                view! {
                                    <tr data-testid="change-request">
                                        <td>{format!("{} → {} (+{} / −{})", r.from_phase, r.to_phase, r.turned_on, r.turned_off)}</td>
                                        <td>{format!("{} · {}", r.requested_by, when(r.requested_at))}</td>
                                        <td>{r.approved_by.clone().unwrap_or_else(|| "—".into())}</td>
                                        <td data-testid="request-state">{state}</td>
                                        <td>{can.then(|| view! {
                                            <form method="post" action="/rpc/plan_approve" class="inline">
                                                <Hidden name="key" value=k.clone() />
                                                <Hidden name="id" value=r.id.to_string() />
                                                <button type="submit" class="btn" data-testid="plan-approve">"Approve"</button>
                                            </form>
                                        })}</td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }
        });
        let may_tick = TICKERS.contains(&role);
        let checklists = plan.document.checklists.iter().map(|c| {
            let k = key.clone();
            view! {
                <div class="card checklist" id=checklist_anchor(&c.name) data-testid="checklist" data-name=c.name.clone()>
                    <h3>{c.name.clone()}</h3>
                    <p class="muted small">{gated_phases(&plan, |g| g.checklists.contains(&c.name))
                        .map_or_else(|| "Gates no phase.".to_string(), |p| format!("Gates: {p}."))}</p>
                    {feedback.clone().filter(|f| f.at == checklist_anchor(&c.name)).map(said)}
                    <ul>
                        {c.items.iter().map(|item| {
                            let tick = plan.ticks.iter().find(|t| t.checklist == c.name && &t.item == item);
                            let ticked = tick.is_some_and(|t| t.ticked);
                            let by = tick.map(|t| format!("{} {} · {}{}", if t.ticked { "ticked by" } else { "unticked by" }, t.actor, when(t.at),
                                if t.note.is_empty() { String::new() } else { format!(" — {}", t.note) }));
                            view! {
                                <li data-testid="checklist-item" data-item=item.clone() data-ticked=ticked.to_string()>
                                    <span class="box">{if ticked { "☑" } else { "☐" }}</span>" "{flags::plan::fill_placeholders(item, &plan.pilots)}
                                    {by.map(|b| view! { <span class="muted small">" "{b}</span> })}
                                    {may_tick.then(|| view! {
                                        <form method="post" action="/rpc/plan_tick" class="inline">
                                            <Hidden name="key" value=k.clone() />
                                            <Hidden name="checklist" value=c.name.clone() />
                                            <Hidden name="item" value=item.clone() />
                                            <Hidden name="ticked" value=(!ticked).to_string() />
                                            <input type="text" name="note" maxlength="2000" placeholder="note (optional)" aria-label="note" />
                                            <button type="submit" class="btn small" data-testid="tick">{if ticked { "Untick" } else { "Tick" }}</button>
                                        </form>
                                    })}
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                </div>
            }
        }).collect_view();
        let k = key.clone();
        let signoffs = view! {
            <div class="card" id="signoffs">
                <h3>"Sign-off"</h3>
                <Said feedback=feedback.clone() id="signoffs" />
                <table class="table" data-testid="signoffs">
                    <thead><tr><th>"Milestone"</th><th>"Owner"</th><th>"Gates"</th><th>"Date"</th><th>"Status"</th><th></th></tr></thead>
                    <tbody>
                        {plan.document.milestones.iter().map(|m| {
                            let s = plan.signoffs.iter().find(|s| s.milestone == m.name);
                            let signed = s.is_some_and(|s| s.signed);
                            let may_sign = m.signed_by(role);
                            view! {
                                <tr data-testid="milestone" data-name=m.name.clone() data-signed=signed.to_string()>
                                    <td>{m.name.clone()}</td>
                                    <td>{m.owner.clone()}</td>
                                    <td class="small">{gated_phases(&plan, |g| g.milestones.contains(&m.name)).unwrap_or_else(|| "—".into())}</td>
                                    <td>{s.map(|s| when(s.at)).unwrap_or_default()}</td>
                                    <td>{match s {
                                        Some(s) if s.signed => format!("Signed by {} ({})", s.actor, s.role),
                                        Some(s) => format!("Withdrawn by {}", s.actor),
                                        None => "Pending".to_string(),
                                    }}</td>
                                    <td>{may_sign.then(|| {
                                        let open = if signed { Vec::new() } else { open_items_for(&plan, &m.name) };
                                        view! {
                                            <form method="post" action="/rpc/plan_sign" class="inline">
                                                <Hidden name="key" value=k.clone() />
                                                <Hidden name="milestone" value=m.name.clone() />
                                                <Hidden name="signed" value=(!signed).to_string() />
                                                {(!open.is_empty()).then(|| view! {
                                                    <label class="small confirm" data-testid="sign-incomplete">
                                                        <input type="checkbox" name="incomplete" value="confirmed" required />
                                                        {format!(" Sign with {} checklist item(s) still open (recorded)", open.len())}
                                                    </label>
                                                })}
                                                <button type="submit" class="btn small" data-testid="sign">{if signed { "Withdraw" } else { "Sign" }}</button>
                                            </form>
                                        }
                                    })}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        };
        let contacts_text: String = plan
            .document
            .contacts
            .iter()
            .map(|c| format!("{} | {}\n", c.role, c.contact))
            .collect();
        let contacts = view! {
            <div class="card" id="contacts">
                <h3>"Contacts"</h3>
                <Said feedback=feedback.clone() id="contacts" />
                <table class="table" data-testid="contacts">
                    <thead><tr><th>"Role"</th><th>"Contact"</th></tr></thead>
                    <tbody>
                        {plan.document.contacts.iter().map(|c| view! { <tr><td>{c.role.clone()}</td><td>{c.contact.clone()}</td></tr> }).collect_view()}
                    </tbody>
                </table>
                {edits.then(|| view! {
                    <form method="post" action="/rpc/plan_contacts" class="form">
                        <Hidden name="key" value=key.clone() />
                        <label>"One contact per line: role | contact"
                            <textarea name="contacts" rows="4" data-testid="contacts-input">{contacts_text.clone()}</textarea>
                        </label>
                        <button type="submit" class="btn small" data-testid="contacts-save">"Save contacts"</button>
                    </form>
                })}
            </div>
        };
        let paused = plan.paused.clone().map(|p| {
            let k = key.clone();
            view! {
                <div class="banner err" role="alert" data-testid="paused-banner">
                    <strong>"Rollout paused"</strong>
                    {format!(" since {} — {}. Nothing advances until a person resumes it.", when(p.at), p.reason)}
                    {edits.then(|| view! {
                        <form method="post" action="/rpc/plan_resume" class="inline">
                            <Hidden name="key" value=k.clone() />
                            <button type="submit" class="btn small" data-testid="plan-resume">"Resume"</button>
                        </form>
                    })}
                </div>
            }
        });
        let guards = (!plan.guards.is_empty()).then(|| {
            let rows = plan.guards.iter().map(|g| {
                let state = plan.guard_states.iter().find(|s| s.guard == g.name);
                let level = state.map(|s| s.level.clone()).unwrap_or_else(|| "hold".into());
                let detail = state
                    .map(|s| format!("{} · read {}", s.detail, when(s.at)))
                    .unwrap_or_else(|| "no reading yet".into());
                let chart = charts.iter().find(|(n, _)| n == &g.name).map(|(_, c)| c.clone());
                view! {
                    <div class="guard" data-testid="guard" data-name=g.name.clone() data-level=level.clone()>
                        <div>
                            <strong>{g.title.clone()}</strong>" "
                            <span class=format!("pill level-{level}")>{level.clone()}</span>
                            <div class="muted small">{detail}</div>
                            <div class="muted small">{format!(
                                "normal {} {} · alert {} {}{}",
                                if g.direction == flags::guard::Direction::HigherIsWorse { "<" } else { ">" },
                                flags::guard::show(&g.unit, g.warn),
                                if g.direction == flags::guard::Direction::HigherIsWorse { ">" } else { "<" },
                                flags::guard::show(&g.unit, g.alert),
                                if g.per_tenant { " · ON tenants vs the others" } else { "" },
                            )}</div>
                            <details class="small"><summary>"Query (PromQL)"</summary>
                                <code class="small query">{g.query.clone()}</code>
                            </details>
                        </div>
                        {match chart {
                            Some(Ok(svg)) => view! { <div class="guard-chart-wrap" inner_html=svg></div> }.into_any(),
                            Some(Err(e)) => view! { <p class="muted small">{format!("No chart: {e}")}</p> }.into_any(),
                            None => view! { <p class="muted small">"No chart: PROMETHEUS_URL is not set."</p> }.into_any(),
                        }}
                    </div>
                }
            }).collect_view();
            view! {
                <div class="card" id="guards" data-testid="guards">
                    <h3>"Guards"</h3>
                    <p class="muted small">{format!(
                        "Read during every monitoring window; an alert pauses the rollout{}. Too little data holds.",
                        match plan.settings.on_alert {
                            flags::change::OnAlert::Previous => " and steps it back one phase",
                            flags::change::OnAlert::Off => " and turns the flag off",
                            flags::change::OnAlert::Pause => "",
                        }
                    )}</p>
                    {rows}
                </div>
            }
        });
        let approver_roles_text = plan
            .settings
            .approver_roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let settings = (role == Role::Admin).then(|| view! {
            <div class="card" id="settings">
                <h3>"Approvals and automation"</h3>
                <Said feedback=feedback.clone() id="settings" />
                <form method="post" action="/rpc/plan_settings" class="form" data-testid="plan-settings">
                    <Hidden name="key" value=key.clone() />
                    <label><input type="checkbox" name="approvals_required" value="on" checked=plan.settings.approvals_required />" A second user approves each phase change"</label>
                    <label>"Approver roles (comma-separated)"
                        <input type="text" name="approver_roles" value=approver_roles_text />
                    </label>
                    <label><input type="checkbox" name="auto_advance" value="on" checked=plan.settings.auto_advance />" Advance on its own when every gate holds"</label>
                    <label>"Guards (JSON: name, title, query, warn, alert, direction, per_tenant, unit)"
                        <textarea name="guards" rows="8" class="mono" data-testid="guards-input">{
                            serde_json::to_string_pretty(&plan.guards).unwrap_or_default()
                        }</textarea>
                    </label>
                    <label>"On a guard's alert"
                        <select name="on_alert">
                            {flags::change::OnAlert::ALL.iter().map(|o| view! {
                                <option value=o.as_str() selected=plan.settings.on_alert == *o>{match o {
                                    flags::change::OnAlert::Previous => "pause and step back one phase",
                                    flags::change::OnAlert::Off => "pause and turn the flag off",
                                    flags::change::OnAlert::Pause => "pause",
                                }}</option>
                            }).collect_view()}
                        </select>
                    </label>
                    <button type="submit" class="btn small">"Save settings"</button>
                </form>
            </div>
        });
        view! {
            {paused}
            {gates}
            {guards}
            {requests}
            {signoffs}
            <div class="checklists">{checklists}</div>
            {contacts}
            {settings}
        }
    }
}
