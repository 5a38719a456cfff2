//! Cross-site request forgery protection for the web app's server functions and form posts.
//!
//! The session cookie is `SameSite=Strict`; on top of that, every unsafe request (not GET, HEAD or
//! OPTIONS) that carries a cookie, and every unsafe request with an `Origin` header at all, must
//! come from Tenantry's own origin: its `Origin` (or, without one, its `Referer`) must name the
//! host the request was sent to — or `TENANTRY_PUBLIC_ORIGIN` when set (behind a proxy that
//! rewrites `Host`). Token-authenticated API calls carry no cookie and are not affected.
use axum::{
    extract::{Request, State},
    http::{header, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::error::ApiError;
use crate::AppState;

fn origin_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// Whether `req` may go on.
pub fn allowed(req: &Request, public_origin: Option<&str>) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let headers = req.headers();
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let origin = text(header::ORIGIN);
    let has_cookie = headers.contains_key(header::COOKIE);
    if origin.is_none() && !has_cookie {
        return true;
    }
    let claimed = match origin {
        Some("null") => return false,
        Some(o) => origin_of(o),
        None => text(header::REFERER).and_then(origin_of),
    };
    let Some(claimed) = claimed else {
        return false;
    };
    match public_origin {
        Some(public) => origin_of(public) == Some(claimed),
        None => text(header::HOST) == Some(claimed),
    }
}

/// The middleware: 403 `forbidden` for a cross-site unsafe request.
pub async fn protect(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if allowed(&req, state.public_origin.as_deref()) {
        next.run(req).await
    } else {
        tracing::warn!(path = %req.uri().path(), "cross-site request refused");
        ApiError::forbidden(
            "cross-site request refused: this request must come from Tenantry's own pages",
        )
        .into_response()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn req(method: Method, headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method(method).uri("/rpc/save_rollout");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Body::empty()).unwrap()
    }

    /// (method, headers, public origin, allowed)
    type Case<'a> = (Method, &'a [(&'a str, &'a str)], Option<&'a str>, bool);

    #[test]
    fn same_origin_passes_cross_site_does_not() {
        let host = ("host", "tenantry.example.com");
        let cookie = ("cookie", "id=abc");
        let cases: &[Case] = &[
            (
                Method::GET,
                &[host, cookie, ("origin", "https://evil.example")],
                None,
                true,
            ),
            (Method::POST, &[host], None, true),
            (
                Method::POST,
                &[host, ("authorization", "Bearer x")],
                None,
                true,
            ),
            (
                Method::POST,
                &[host, cookie, ("origin", "https://tenantry.example.com")],
                None,
                true,
            ),
            (
                Method::POST,
                &[host, cookie, ("origin", "https://evil.example")],
                None,
                false,
            ),
            (
                Method::POST,
                &[host, ("origin", "https://evil.example")],
                None,
                false,
            ),
            (
                Method::POST,
                &[host, cookie, ("origin", "null")],
                None,
                false,
            ),
            (Method::POST, &[host, cookie], None, false),
            (
                Method::POST,
                &[
                    host,
                    cookie,
                    ("referer", "https://tenantry.example.com/flags/x"),
                ],
                None,
                true,
            ),
            (
                Method::POST,
                &[
                    host,
                    cookie,
                    ("referer", "https://evil.example/tenantry.example.com"),
                ],
                None,
                false,
            ),
            (
                Method::PUT,
                &[
                    ("host", "10.0.0.5:3000"),
                    cookie,
                    ("origin", "https://tenantry.example.com"),
                ],
                Some("https://tenantry.example.com"),
                true,
            ),
            (
                Method::PUT,
                &[
                    ("host", "10.0.0.5:3000"),
                    cookie,
                    ("origin", "http://10.0.0.5:3000"),
                ],
                Some("https://tenantry.example.com"),
                false,
            ),
        ];
        for (i, (m, h, public, want)) in cases.iter().enumerate() {
            assert_eq!(allowed(&req(m.clone(), h), *public), *want, "case {i}");
        }
    }
}
