//! Read-only page bodies are rendered to HTML on the server and shown by the browser as is.
//!
//! The dashboard, the tenant page, the audit log, the monitoring and DBA pages only display data:
//! their server functions return the body as HTML (escaped by Leptos like any server rendering),
//! and the page sets it with `inner_html`. Their view code is compiled for the server only, which
//! keeps it out of the wasm bundle; navigation (the router intercepts links inside it), live
//! refetching and rendering with JavaScript off work as before.
use leptos::prelude::*;

/// Renders a static view (no signals, no event handlers) to an HTML string.
#[cfg(feature = "ssr")]
pub fn render<V: IntoView + 'static>(view: impl FnOnce() -> V) -> String {
    use leptos::tachys::view::RenderHtml;
    let owner = Owner::new();
    owner.with(|| view().into_view().to_html())
}

/// Shows HTML a server function rendered with [`render`].
#[component]
pub fn ServerHtml(html: String) -> impl IntoView {
    view! { <div class="server-html" inner_html=html></div> }
}

/// A page body that a server function renders: `loading` while it comes, then the HTML, or the
/// error (marked with `error_testid`, followed by a link to `clear_href` when given).
#[component]
pub fn ServerBody(
    data: Resource<Result<String, crate::AppError>>,
    loading: &'static str,
    #[prop(optional)] error_testid: Option<&'static str>,
    #[prop(optional)] clear_href: Option<&'static str>,
) -> impl IntoView {
    view! {
        <Transition fallback=move || view! { <p class="loading">{loading}</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(html) => view! { <ServerHtml html /> }.into_any(),
                    Err(e) => view! {
                        <p class="error" role="alert" data-testid=error_testid>{e.to_string()}</p>
                        {clear_href.map(|href| view! { <p><a href=href>"Clear the filters"</a></p> })}
                    }.into_any(),
                }
            })}
        </Transition>
    }
}
