//! Components several server-rendered page bodies share: links to a flag and to a tenant, and the
//! compact list of changes. Server-only, like the bodies that use them (see [`crate::html`]).
use leptos::prelude::*;

use crate::audit::AuditView;

/// A link to flag `key`'s page, the key in code type.
#[component]
pub fn FlagLink(key: String) -> impl IntoView {
    let href = format!("/flags/{key}");
    view! { <a href=href><code>{key}</code></a> }
}

/// A link to tenant `id`'s page, the id in code type.
#[component]
pub fn TenantLink(id: String) -> impl IntoView {
    let href = format!("/tenants/{}", crate::url::encode(&id));
    view! { <a href=href><code>{id}</code></a> }
}

/// A compact list of changes, newest first (the dashboard's and the tenant page's history).
#[component]
pub fn Timeline(rows: Vec<AuditView>, testid: &'static str) -> impl IntoView {
    view! {
        <ul class="timeline" data-testid=testid>
            {rows.into_iter().map(|r| view! {
                <li>
                    <span class="muted small nowrap" title=r.at_rfc3339>{r.at}</span>" "
                    <strong>{r.actor}</strong>" "<span class="pill">{r.source}</span>" "
                    <code>{r.action}</code>" "
                    {r.flag_key.map(|key| view! { <FlagLink key /> })}" "
                    {r.tenant_id.map(|id| view! { <TenantLink id /> })}" "
                    <span class="muted small">{r.change}</span>
                </li>
            }).collect_view()}
        </ul>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The components render exactly the markup the pages wrote inline before they shared them.
    #[test]
    fn links_render_the_inline_markup() {
        let (key, id) = (
            "multi_workspace_enabled".to_string(),
            "acme & co".to_string(),
        );
        let shared = crate::html::render({
            let (key, id) = (key.clone(), id.clone());
            move || view! { <FlagLink key /><TenantLink id /> }
        });
        let inline = crate::html::render(move || {
            let flag = format!("/flags/{key}");
            let tenant = format!("/tenants/{}", crate::url::encode(&id));
            view! {
                <a href=flag><code>{key}</code></a>
                <a href=tenant><code>{id}</code></a>
            }
        });
        assert_eq!(shared, inline);
        assert!(
            shared.contains("href=\"/tenants/acme%20%26%20co\""),
            "{shared}"
        );
        assert!(shared.contains("<code>acme &amp; co"), "{shared}");
    }
}
