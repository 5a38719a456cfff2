//! Security: response headers, cross-site requests, the sign-in throttle, secrets in logs, sessions.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;

use crate::helpers::{
    assert_error, form, log_in, rollback, says, sign_in, tenantry, test_database_url, LogBuffer,
    TestApp, FLAG,
};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn security_headers_on_every_response(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let cookie = sign_in(&app, "hedda", "viewer").await;
    let mut nonces = std::collections::HashSet::new();
    // (uri, bearer token, cookie, a page rendered by Leptos)
    for (uri, token, cookie, page) in [
        ("/api/health", None, None, false),
        ("/login", None, None, true),
        ("/no-such-page", None, None, true),
        ("/tenants", None, Some(cookie.as_str()), true),
        ("/flags/multi_workspace_enabled", None, Some(&cookie), true),
        ("/api/admin/flags", Some(app.admin.as_str()), None, false),
        ("/api/admin/flags", None, None, false),
        // The evaluation hot path (a router of its own): the same headers.
        (
            "/api/features?tenant=acme-logistics",
            Some(app.server.as_str()),
            None,
            false,
        ),
    ] {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        let res = app.call(Method::GET, uri, token, &headers, None).await;
        let h = |name: &str| {
            res.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(h("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(h("x-frame-options"), "DENY", "{uri}");
        let csp = h("content-security-policy");
        if uri.starts_with("/api/features") {
            // The evaluation hot path answers JSON only: a JSON API's policy, nothing more.
            assert_eq!(csp, server::startup::API_CONTENT_SECURITY_POLICY, "{uri}");
            assert!(res.headers.get("content-encoding").is_none(), "{uri}");
            continue;
        }
        assert_eq!(h("referrer-policy"), "same-origin", "{uri}");
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert!(csp.contains("object-src 'none'"), "{uri}: {csp}");
        assert!(!csp.contains("'unsafe-inline' 'wasm"), "{uri}: {csp}");
        if !page {
            assert_eq!(csp, server::startup::CONTENT_SECURITY_POLICY, "{uri}");
            continue;
        }
        // A page: this render's nonce is in the policy and on every inline script it wrote
        // (hydration, streamed resources); no other script would run.
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("{uri}: no nonce in {csp}"));
        assert!(nonce.len() >= 16, "{uri}: {nonce}");
        assert_eq!(csp, app::csp::for_page(nonce), "{uri}");
        let scripts = res.text.matches("<script").count();
        assert!(scripts >= 1, "{uri}: no inline script");
        assert_eq!(
            res.text
                .matches(&format!("<script nonce=\"{nonce}\""))
                .count()
                + res
                    .text
                    .matches(&format!("<script type=\"module\" nonce=\"{nonce}\""))
                    .count(),
            scripts,
            "{uri}: a script without this render's nonce"
        );
        assert!(nonces.insert(nonce.to_string()), "{uri}: nonce reused");
    }
}

/// A page on another site cannot drive the web app's server functions with the user's cookie,
/// and the sign-in is throttled per (user, address) without locking the user out elsewhere.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn cross_site_posts_are_refused_and_sign_in_is_throttled(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let po = sign_in(&app, "petra", "product_owner").await;
    let kill = |origin: Option<&'static str>, referer: Option<&'static str>| {
        let mut req = Request::post("/rpc/kill_flag")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .header("cookie", &po);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        req.body(Body::from(format!("key={FLAG}"))).unwrap()
    };
    for (origin, referer) in [
        (Some("https://evil.example"), None),
        (Some("null"), None),
        (None, Some("https://evil.example/page")),
    ] {
        let res = app.raw(kill(origin, referer)).await;
        assert_error(&res, StatusCode::FORBIDDEN, "forbidden");
        assert!(res.text.contains("cross-site"), "{}", res.text);
    }
    let kills: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'rollout.kill'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(kills, 0, "nothing ran");
    let res = app.raw(kill(Some("http://localhost"), None)).await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    // Token-authenticated API calls carry no cookie: not affected.
    let res = app
        .call(
            Method::POST,
            &format!("/api/admin/flags/{FLAG}/rollback"),
            Some(&app.admin),
            &[("origin", "https://ci.example")],
            None,
        )
        .await;
    assert_error(&res, StatusCode::FORBIDDEN, "forbidden");
    let res = rollback(&app, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);

    // Sign-in: five wrong passwords, then a wait — even for the right password.
    let attempt = |password: &'static str, forwarded: &'static str| {
        Request::post("/rpc/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .header("x-forwarded-for", forwarded)
            .body(Body::from(format!("username=petra&password={password}")))
            .unwrap()
    };
    for _ in 0..infra::throttle::FREE_FAILURES {
        let res = app.raw(attempt("wrong", "203.0.113.7")).await;
        assert!(
            res.text.contains("Unknown user or wrong password"),
            "{}",
            res.text
        );
    }
    let res = app
        .raw(attempt("correct+horse+battery", "203.0.113.7"))
        .await;
    assert!(
        res.text.contains("Too many failed sign-ins"),
        "{}",
        res.text
    );
    assert!(!res.headers.contains_key("set-cookie"));
    // X-Forwarded-For is not trusted unless configured: all of these came from the same
    // (unknown) peer, so the user is throttled for it — but the lock is per address and bounded.
    assert!(infra::throttle::MAX_LOCK <= std::time::Duration::from_secs(15 * 60));
}

/// Concurrent wrong passwords for one user from one address cannot outrun the throttle: each
/// attempt is counted before its password is verified, so of 20 at once only the throttle's
/// free failures are verified and the rest wait.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn concurrent_sign_ins_cannot_outrun_the_throttle(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    sign_in(&app, "petra", "product_owner").await;
    let attempts = (0..20).map(|_| log_in(&app, "petra", "wrong"));
    let answers = futures::future::join_all(attempts).await;
    let verified = answers
        .iter()
        .filter(|r| r.text.contains("Unknown user or wrong password"))
        .count();
    let throttled = answers
        .iter()
        .filter(|r| r.text.contains("Too many failed sign-ins"))
        .count();
    assert_eq!(verified + throttled, 20, "every answer is one or the other");
    assert_eq!(
        verified,
        infra::throttle::FREE_FAILURES as usize,
        "only the free failures reach password verification"
    );
    assert!(answers
        .iter()
        .all(|r| !r.headers.contains_key("set-cookie")));
}

/// A sign-in with a user name longer than any account's is refused with the generic message before
/// it is throttled, stored or logged.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn overlong_user_names_are_refused_before_anything_else(pool: PgPool) {
    let (logs, _guard) = LogBuffer::capture();
    let app = TestApp::new(pool.clone()).await;
    let long = "x".repeat(65);
    for _ in 0..20 {
        let res = log_in(&app, &long, "whatever").await;
        assert!(
            res.text.contains("Unknown user or wrong password"),
            "{}",
            res.text
        );
    }
    // Never throttled (never counted), never logged.
    assert_eq!(app.state.login_throttle.prune(std::time::Instant::now()), 0);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains(&long), "the long name reached the log");
    // A name of 64 characters is an ordinary (unknown) user: counted by the throttle.
    let res = log_in(&app, &"y".repeat(64), "whatever").await;
    assert!(
        res.text.contains("Unknown user or wrong password"),
        "{}",
        res.text
    );
    assert!(app.state.login_throttle.prune(std::time::Instant::now()) > 0);
}

/// Passwords and token secrets never reach the log, at any level — not on sign-in (right or
/// wrong), not when a token is created, used, or presented wrong.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn no_secrets_in_logs(pool: PgPool) {
    let (logs, _guard) = LogBuffer::capture();
    let app = TestApp::new(pool.clone()).await;
    let cookie = sign_in(&app, "petra", "product_owner").await;
    let wrong = log_in(&app, "petra", "hunter2-wrong-secret").await;
    assert!(wrong.text.contains("wrong password"));
    let created = app
        .post(
            "/api/admin/tokens",
            Some(json!({"name": "log-check", "scope": "server"})),
        )
        .await
        .json();
    let secret = created["token"].as_str().unwrap().to_string();
    app.state.live.tokens.reload(&pool).await.unwrap();
    assert_eq!(
        app.features(&secret, Some(&app.tenant(1))).await.status,
        StatusCode::OK
    );
    let bad = format!("{secret}x");
    assert_eq!(
        app.features(&bad, Some(&app.tenant(1))).await.status,
        StatusCode::UNAUTHORIZED
    );
    let _ = app
        .call(Method::GET, "/flags", None, &[("cookie", &cookie)], None)
        .await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // The capture works: the refused sign-in was logged (with the user name, without the password).
    assert!(
        text.contains("sign-in refused") && text.contains("petra"),
        "the capture works: {text}"
    );
    let session_id = cookie.split_once('=').unwrap().1;
    for s in [
        "correct horse battery",
        "correct+horse+battery",
        "hunter2-wrong-secret",
        secret.as_str(),
        app.admin.as_str(),
        app.server.as_str(),
        session_id,
    ] {
        assert!(!text.contains(s), "secret {s:?} found in the log");
    }
}

/// What each session-authenticated door answers `cookie`: the audit CSV, the web change stream
/// (status only: it never ends), `whoami`, and a page (200, or a redirect to the sign-in).
async fn session_doors(app: &TestApp, cookie: &str) -> (StatusCode, StatusCode, Value, StatusCode) {
    let get = |uri: &'static str| {
        Request::get(uri)
            .header("host", "localhost")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap()
    };
    let csv = app.raw(get("/audit/export.csv")).await.status;
    let stream = app
        .router()
        .oneshot(get("/api/ui/stream"))
        .await
        .unwrap()
        .status();
    let who = form(app, cookie, "whoami", "").await.json();
    let page = app
        .router()
        .oneshot(get("/tenants"))
        .await
        .unwrap()
        .status();
    (csv, stream, who, page)
}

/// A disabled user, and every session made before a password or role reset (`user add
/// --replace`), `user disable` or `user sessions revoke`, is signed out on every door a session
/// opens: the audit CSV, the web change stream, server functions and pages.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sessions_end_when_the_user_is_disabled_reset_or_revoked(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let url = test_database_url(&pool).await;
    let ok = |d: &(StatusCode, StatusCode, Value, StatusCode), role: &str| {
        assert_eq!(d.0, StatusCode::OK, "CSV");
        assert_eq!(d.1, StatusCode::OK, "stream");
        assert_eq!(d.2["username"], "dora", "whoami");
        assert_eq!(d.2["role"], role, "whoami");
        assert_eq!(d.3, StatusCode::OK, "page");
    };
    let refused = |d: &(StatusCode, StatusCode, Value, StatusCode), why: &str| {
        // `/audit/…` is a page path too: the sign-in redirect comes first.
        assert!(
            d.0 == StatusCode::UNAUTHORIZED || d.0.is_redirection(),
            "CSV after {why}: {}",
            d.0
        );
        assert_eq!(d.1, StatusCode::UNAUTHORIZED, "stream after {why}");
        assert!(d.2.is_null(), "whoami after {why}: {}", d.2);
        assert!(d.3.is_redirection(), "page after {why}: {}", d.3);
    };

    // Disabled: every door closes, and signing in again is refused.
    let before = sign_in(&app, "dora", "viewer").await;
    ok(&session_doors(&app, &before).await, "viewer");
    tenantry(&url, &["user", "disable", "dora"]);
    refused(&session_doors(&app, &before).await, "user disable");
    let again = log_in(&app, "dora", "correct+horse+battery").await;
    says(&again, "Unknown user or wrong password");
    let listed = tenantry(&url, &["user", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("dora") && l.contains("disabled")),
        "{listed}"
    );
    // Enabled again: the old session stays ended.
    tenantry(&url, &["user", "enable", "dora"]);
    refused(&session_doors(&app, &before).await, "user enable");

    // A password and role reset ends the sessions made before it; the new one has the new role.
    let before = sign_in(&app, "dora", "viewer").await;
    ok(&session_doors(&app, &before).await, "viewer");
    tenantry(
        &url,
        &["user", "add", "dora", "--role", "admin", "--replace"],
    );
    refused(&session_doors(&app, &before).await, "user add --replace");
    let after = log_in(&app, "dora", "a+long+enough+password").await;
    let cookie = after.headers["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    ok(&session_doors(&app, &cookie).await, "admin");

    // Revoking the sessions ends them.
    tenantry(&url, &["user", "sessions", "revoke", "dora"]);
    refused(&session_doors(&app, &cookie).await, "user sessions revoke");

    // Each change is audited as the CLI.
    for action in ["user.disable", "user.enable", "user.sessions_revoke"] {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE action = $1 AND source = 'cli' AND after->>'username' = 'dora'",
        )
        .bind(action)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, 1, "{action}");
    }
}
