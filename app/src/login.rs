//! `/login`: a plain form that works without JavaScript too.
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::auth::Login;

/// The sign-in page.
#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_else(|| "/flags".into());
    view! {
        <Title text="Sign in" />
        <section class="page narrow">
            <h1>"Sign in"</h1>
            <ActionForm action=login attr:class="card form" attr:data-testid="login-form">
                <label class="field">
                    <span>"Username"</span>
                    <input type="text" name="username" autocomplete="username" required data-testid="username" />
                </label>
                <label class="field">
                    <span>"Password"</span>
                    <input type="password" name="password" autocomplete="current-password" required data-testid="password" />
                </label>
                <input type="hidden" name="next" value=next />
                <button type="submit" class="btn primary" data-testid="sign-in">"Sign in"</button>
            </ActionForm>
            {move || login.value().get().and_then(|r| r.err()).map(|e| view! {
                <p class="error" role="alert" data-testid="login-error">{e.to_string()}</p>
            })}
        </section>
    }
}
