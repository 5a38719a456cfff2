//! Tenantry's web app: the routes, the pages and the server functions they call.
//!
//! Server functions are thin: read the request context, check the role, call `store`/`flags`,
//! map the error. Each page file keeps its server-only code (page data, read-only bodies, role
//! lists) in one `#[cfg(feature = "ssr")] mod ssr`; the browser build only sees the types, the
//! interactive components and the server functions' client halves.

pub mod audit;
pub mod auth;
#[cfg(feature = "ssr")]
pub mod chart;
#[cfg(feature = "ssr")]
pub mod components;
#[cfg(feature = "ssr")]
mod context;
#[cfg(feature = "ssr")]
pub mod csp;
pub mod dashboard;
pub mod dba;
pub mod error;
pub mod flag_pages;
#[cfg(feature = "ssr")]
pub mod format;
pub mod html;
pub mod live;
pub mod login;
pub mod monitoring;
pub mod plan;
pub mod tenant_list;
pub mod tenant_page;
pub mod url;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Redirect, Route, Router, Routes, A},
    hooks::use_location,
    path, SsrMode,
};

use auth::Logout;

/// Paths that need a signed-in user; the server redirects anyone else to `/login`.
pub const PROTECTED_PREFIXES: &[&str] = &["/flags", "/tenants", "/audit", "/dba", "/monitoring"];

pub use error::AppError;

#[cfg(feature = "ssr")]
pub use context::{server_context, CountSource, Publisher, ServerContext};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    csp::set_for_this_page();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// Tells the server the browser's time zone (an IANA name in the `tz` cookie), so the pages it
/// renders show times in it (`format::display_time`, UTC beside it; `zone_time`, UTC on hover).
/// Set when missing or changed; the pages fetched from then on use it.
#[cfg(feature = "hydrate")]
fn remember_time_zone() {
    use wasm_bindgen::JsValue;
    let options = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new())
        .resolved_options();
    let Some(zone) = js_sys::Reflect::get(&options, &JsValue::from_str("timeZone"))
        .ok()
        .and_then(|z| z.as_string())
    else {
        return;
    };
    let doc = JsValue::from(document());
    let cookies = js_sys::Reflect::get(&doc, &JsValue::from_str("cookie"))
        .ok()
        .and_then(|c| c.as_string())
        .unwrap_or_default();
    let wanted = format!("tz={zone}");
    if cookies.split(';').any(|c| c.trim() == wanted) {
        return;
    }
    let _ = js_sys::Reflect::set(
        &doc,
        &JsValue::from_str("cookie"),
        &JsValue::from_str(&format!("{wanted}; path=/; max-age=31536000; SameSite=Lax")),
    );
}

/// The app: navigation and routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Runs only in the browser: marks the document as hydrated so tests and styles can tell.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
        #[cfg(feature = "hydrate")]
        remember_time_zone();
    });

    view! {
        <Stylesheet id="leptos" href="/pkg/tenantry.css" />
        <Link rel="icon" href="/favicon.svg" />
        <Meta name="description" content="Tenantry: the rollout control plane for tenant-scoped feature flags." />
        <Title formatter=|text| format!("{text} · Tenantry") />
        <Router>
            <TopBar />
            <main id="main" tabindex="-1">
                <Routes fallback=|| view! { <NotFound /> }>
                    <Route path=path!("login") view=login::LoginPage ssr=SsrMode::Async />
                    // Signed-out visitors never reach these: the server sends them to /login
                    // before rendering (see `server::startup::require_sign_in`).
                    <Route path=path!("") view=dashboard::DashboardPage ssr=SsrMode::Async />
                    <Route path=path!("flags") view=flag_pages::FlagsPage ssr=SsrMode::Async />
                    <Route path=path!("flags/:key") view=flag_pages::FlagPage ssr=SsrMode::Async />
                    <Route path=path!("tenants") view=tenant_list::TenantsPage ssr=SsrMode::Async />
                    <Route path=path!("tenants/:id") view=tenant_page::TenantDetailPage ssr=SsrMode::Async />
                    <Route path=path!("audit") view=audit::AuditPage ssr=SsrMode::Async />
                    <Route path=path!("monitoring") view=monitoring::MonitoringPage ssr=SsrMode::Async />
                    <Route path=path!("dba") view=|| view! { <Redirect path="/dba/migrations" /> } />
                    <Route path=path!("dba/migrations") view=dba::MigrationsPage ssr=SsrMode::Async />
                    <Route path=path!("dba/health") view=dba::HealthPage ssr=SsrMode::Async />
                    <Route path=path!("dba/backups") view=dba::BackupsPage ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
    }
}

/// The top bar. The signed-in user is part of the page the server renders (the page waits for
/// it), so the header is right with JavaScript off; the browser re-checks on every navigation.
/// Below 700 px the navigation folds behind a "Menu" toggle — a checkbox and CSS, so it works
/// without JavaScript too.
#[component]
fn TopBar() -> impl IntoView {
    let location = use_location();
    let user = Resource::new(
        move || location.pathname.get(),
        |_| async { auth::whoami().await.ok().flatten() },
    );
    let waiting = Resource::new(
        move || location.pathname.get(),
        |_| async { dashboard::approvals_waiting().await.unwrap_or(0) },
    );
    let logout = ServerAction::<Logout>::new();
    view! {
        <header class="topbar">
            // `rel="external"`: the browser's own anchor jump (it moves focus to <main>), not the
            // router's navigation.
            <a class="skip-link" href="#main" rel="external">"Skip to content"</a>
            <a class="brand" href="/">
                <span class="brand-mark" aria-hidden="true">"◐"</span>
                " Tenantry"
            </a>
            <input type="checkbox" id="nav-toggle" class="nav-toggle" aria-label="Show the menu" />
            <label for="nav-toggle" class="nav-toggle-label btn small" aria-hidden="true">"Menu"</label>
            <nav class="nav" aria-label="Main">
                <A href="/" exact=true>"Dashboard"
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            let n = waiting.await;
                            (n > 0).then(|| view! {
                                <span class="badge" data-testid="nav-approvals" title="Changes waiting for your approval">
                                    {n.to_string()}<span class="sr-only">" waiting for your approval"</span>
                                </span>
                            })
                        })}
                    </Transition>
                </A>
                <A href="/flags">"Flags"</A>
                <A href="/tenants">"Tenants"</A>
                <A href="/monitoring">"Monitoring"</A>
                <A href="/audit">"Audit log"</A>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        user.await
                            .filter(|u| matches!(u.role, auth::Role::Admin | auth::Role::Dba))
                            .map(|_| view! { <A href="/dba/migrations">"Database"</A> })
                    })}
                </Transition>
            </nav>
            <div class="who">
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match user.await {
                            Some(u) => view! {
                                <span data-testid="whoami">{u.username.clone()}" · "{u.role.label()}</span>
                                <ActionForm action=logout attr:class="inline">
                                    <button type="submit" class="btn small" data-testid="sign-out">"Sign out"</button>
                                </ActionForm>
                            }.into_any(),
                            None => view! { <a href="/login" class="btn small">"Sign in"</a> }.into_any(),
                        }
                    })}
                </Transition>
            </div>
        </header>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Not found" />
        <section class="empty">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address: the link may be old, or the flag or tenant renamed."</p>
            <p class="actions">
                <a href="/" class="btn primary" data-testid="not-found-home">"Go to the dashboard"</a>" "
                <a href="/flags" class="btn">"Flags"</a>" "
                <a href="/tenants" class="btn">"Tenants"</a>
            </p>
        </section>
    }
}
