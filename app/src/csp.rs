//! The Content-Security-Policy Tenantry sends.
//!
//! Pages rendered by Leptos get a policy with this response's nonce: leptos_axum draws a fresh
//! one per render and puts it on every inline script it writes (the hydration script and the
//! streamed resource data), so `script-src` needs no `'unsafe-inline'` and an injected
//! `<script>` without the nonce does not run. Every other response (JSON, static files,
//! redirects) gets [`STATIC`], which allows no inline script at all.

use leptos::prelude::*;

/// The policy minus `script-src`: same-origin everything, inline style attributes (the charts
/// and bars use them; styles cannot run code), no plugins, no framing, forms post only here.
macro_rules! rest {
    () => {
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    };
}

/// The policy of every response that is not a rendered page: scripts only from this origin,
/// `'wasm-unsafe-eval'` so the browser may compile the app's wasm.
pub const STATIC: &str = concat!(
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; ",
    rest!()
);

/// The policy of a page whose inline scripts carry `nonce`.
pub fn for_page(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; {}",
        rest!()
    )
}

/// Called while the shell renders: sends the page's policy with the nonce of this render.
/// (Without a nonce — never under leptos_axum — the static policy applies and the page's inline
/// scripts are refused, which fails closed.)
pub fn set_for_this_page() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(value) = http::HeaderValue::from_str(&for_page(&nonce)) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_inline_script_without_the_nonce() {
        for policy in [STATIC.to_string(), for_page("abc123")] {
            let script = policy
                .split("; ")
                .find(|d| d.starts_with("script-src "))
                .unwrap_or_default();
            assert!(!script.contains("unsafe-inline"), "{policy}");
            assert!(!script.contains(" 'unsafe-eval'"), "{policy}");
            assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
            assert!(policy.contains("object-src 'none'"), "{policy}");
        }
        assert!(for_page("abc123").contains("'nonce-abc123'"));
        assert!(!STATIC.contains("nonce-"));
    }
}
