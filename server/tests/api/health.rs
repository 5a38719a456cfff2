//! Health and the DBAs' migration status.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use http_body_util::BodyExt;
use serde_json::Value;
use server::AppState;
use sqlx::PgPool;
use tower::ServiceExt;

use crate::helpers::{assert_error, options, TestApp};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn health_is_ok_with_migration_counts_and_snapshot(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let res = app.call(Method::GET, "/api/health", None, &[], None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let json = res.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["database"], "ok");
    assert_eq!(json["migrations"]["pending"], 0);
    assert_eq!(
        json["migrations"]["applied"].as_u64().unwrap() as usize,
        store::MIGRATOR.iter().count()
    );
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["snapshot"]["tenants"], 40);
    assert!(json["snapshot"]["version"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn health_is_503_with_the_reason_when_the_database_is_away() {
    let pool = store::connect_lazy(
        "postgres://postgres@127.0.0.1:1/none",
        &store::PoolConfig {
            max_connections: 1,
            acquire_timeout: std::time::Duration::from_millis(500),
        },
    )
    .unwrap();
    let state = AppState::new(options(), pool);
    let res = server::router(state)
        .oneshot(
            Request::builder()
                .uri("/api/health")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let json: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
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
async fn migration_status_for_dbas(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let res = app.get("/api/admin/migrations").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let j = res.json();
    assert_eq!(j["verification_count"], 1);
    assert_eq!(j["counts"]["pending"], 0);
    let list = j["migrations"].as_array().unwrap();
    assert_eq!(list.len(), store::MIGRATOR.iter().count());
    assert!(list.iter().all(|m| m["state"] == "applied"));
    // A migration file edited after it was applied shows as drifted.
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = (SELECT min(version) FROM _sqlx_migrations)")
        .execute(&pool)
        .await
        .unwrap();
    let j = app.get("/api/admin/migrations").await.json();
    assert_eq!(j["counts"]["drifted"], 1);
    assert_eq!(j["migrations"][0]["state"], "drifted");
    assert_error(
        &app.call(
            Method::GET,
            "/api/admin/migrations",
            Some(&app.server),
            &[],
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}
