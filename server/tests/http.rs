//! The server's HTTP surface over a real Postgres, through the real router (`oneshot`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use server::AppState;
use sqlx::PgPool;
use tower::ServiceExt;

fn app(pool: PgPool) -> Router {
    server::router(AppState {
        leptos_options: LeptosOptions::builder().output_name("rollgate").build(),
        pool,
        started_at: Instant::now(),
    })
}

async fn get(app: Router, uri: &str) -> (StatusCode, String) {
    let res = app
        .oneshot(Request::builder().uri(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn health_is_ok_with_migration_counts(pool: PgPool) {
    let (status, body) = get(app(pool), "/api/health").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["database"], "ok");
    assert_eq!(json["migrations"]["pending"], 0);
    assert_eq!(
        json["migrations"]["applied"].as_u64().unwrap() as usize,
        store::MIGRATOR.iter().count()
    );
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn health_is_503_with_the_reason_when_the_database_is_away() {
    // Nothing listens on port 1 of loopback.
    let pool = store::connect_lazy(
        "postgres://postgres@127.0.0.1:1/none",
        &store::PoolConfig {
            max_connections: 1,
            acquire_timeout: std::time::Duration::from_millis(500),
        },
    )
    .unwrap();
    let (status, body) = get(app(pool), "/api/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "unavailable");
    let reason = json["database"].as_str().unwrap();
    assert!(reason.starts_with("unreachable: "), "{reason}");
    assert!(
        !reason.contains("postgres://"),
        "the reason leaks the connection string: {reason}"
    );
    assert!(json["migrations"].is_null());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn tenant_page_is_server_rendered_with_rows(pool: PgPool) {
    store::demo::seed_tenants(&pool, 240).await.unwrap();
    let (status, html) = get(app(pool.clone()), "/tenants").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        html.matches("data-testid=\"tenant-row\"").count(),
        25,
        "{html}"
    );
    assert!(html.contains("Showing 1–25 of 240 tenants"));
    // The first row is the alphabetically first tenant.
    let first: String =
        sqlx::query_scalar("SELECT name FROM tenants ORDER BY lower(name), id LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(html.contains(&first));

    let (status, html) = get(app(pool.clone()), "/tenants?q=globex&plan=pro").await;
    assert_eq!(status, StatusCode::OK);
    let expected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenants WHERE (name ILIKE '%globex%' OR id ILIKE '%globex%') AND plan = 'pro'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        html.matches("data-testid=\"tenant-row\"").count() as i64,
        expected.min(25)
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn unknown_pages_are_404(pool: PgPool) {
    let (status, html) = get(app(pool), "/no-such-page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("Page not found"));
}
