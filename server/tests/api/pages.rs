//! Server-rendered pages.

use axum::http::{Method, StatusCode};
use sqlx::PgPool;

use crate::helpers::{log_in, sign_in, TestApp};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn tenant_page_is_server_rendered_for_signed_in_users_only(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let res = app
        .call(
            Method::GET,
            "/tenants",
            None,
            &[("accept", "text/html")],
            None,
        )
        .await;
    assert!(res.status.is_redirection(), "{} {}", res.status, res.text);
    assert_eq!(res.headers["location"], "/login?next=%2Ftenants");

    let wrong = log_in(&app, "nobody", "whatever1").await;
    assert!(
        wrong.status.is_client_error() || wrong.status.is_server_error(),
        "{}",
        wrong.status
    );
    assert!(
        wrong.text.contains("Unknown user or wrong password"),
        "{}",
        wrong.text
    );
    assert!(!wrong.headers.contains_key("set-cookie"));

    let cookie = sign_in(&app, "vera", "viewer").await;
    let res = app
        .call(Method::GET, "/tenants", None, &[("cookie", &cookie)], None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.text.matches("data-testid=\"tenant-row\"").count(), 25);
    assert!(res.text.contains("Showing 1–25 of 40 tenants"));
    let first: String =
        sqlx::query_scalar("SELECT name FROM tenants ORDER BY lower(name), id LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(res.text.contains(&first));
    let res = app
        .call(Method::GET, "/no-such-page", None, &[], None)
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert!(res.text.contains("Page not found"));
}

/// Pages keep rendering while routers are built on another thread. Generating Leptos' route list
/// suppresses resource loads process-wide, and a resource first polled meanwhile waits forever
/// (leptos-rs/leptos#4773): a CI run hung on `/tenants` that way. `server::router` generates the
/// list once per process, so building routers no longer touches the flag.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn pages_render_while_routers_are_built(pool: PgPool) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let app = TestApp::new(pool).await;
    let cookie = sign_in(&app, "rita", "viewer").await;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let builder = {
        let (state, stop) = (app.state.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut built = 0_u32;
            while !stop.load(Ordering::Relaxed) {
                drop(server::router(state.clone()));
                built += 1;
            }
            built
        })
    };
    for round in 0..30 {
        let headers = [("cookie", cookie.as_str())];
        let page = app.call(Method::GET, "/tenants", None, &headers, None);
        let res = tokio::time::timeout(std::time::Duration::from_secs(10), page).await;
        let Ok(res) = res else {
            stop.store(true, Ordering::Relaxed);
            panic!("render {round} of /tenants did not finish within 10 s");
        };
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        assert_eq!(res.text.matches("data-testid=\"tenant-row\"").count(), 25);
    }
    stop.store(true, Ordering::Relaxed);
    let built = builder.join().unwrap();
    assert!(built > 30, "only {built} routers built alongside");
}
