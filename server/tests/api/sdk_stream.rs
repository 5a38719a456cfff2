//! What SDKs read: the client snapshot and its stream; `/metrics` and the OpenAPI document.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;

use crate::helpers::TestApp;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sdk_snapshot_stream_metrics_and_openapi(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let res = app
        .call(
            Method::GET,
            "/api/client/snapshot",
            Some(&app.server),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let snap = flags::Snapshot::from_json(res.text.as_bytes()).unwrap();
    assert_eq!(snap.tenants.len(), 40);
    let tag = res.headers["etag"].to_str().unwrap().to_string();
    assert_eq!(tag, format!("\"{}\"", snap.version));
    let res = app
        .call(
            Method::GET,
            "/api/client/snapshot",
            Some(&app.server),
            &[("if-none-match", &tag)],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);

    let res = app
        .router()
        .oneshot(
            Request::get("/api/client/stream")
                .header("authorization", format!("Bearer {}", app.server))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let frame = tokio::time::timeout(std::time::Duration::from_secs(2), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(frame.data_ref().unwrap()).into_owned();
    assert!(
        text.contains("event: snapshot")
            && text.contains(&format!("{{\"version\":{}}}", snap.version)),
        "{text}"
    );

    app.features(&app.server, Some(&app.tenant(1))).await;
    app.get("/api/admin/tenants/nope").await;
    let metrics = app
        .call(Method::GET, "/metrics", None, &[], None)
        .await
        .text;
    assert!(
        metrics
            .contains("http_requests_total{path=\"/api/features\",method=\"GET\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("path=\"/api/admin/tenants/{id}\""),
        "route templates, not raw paths"
    );
    assert!(!metrics.contains("/api/admin/tenants/nope"));
    assert!(metrics.contains(
        "feature_flag_evaluations_total{flag=\"multi_workspace_enabled\",result=\"off\"}"
    ));
    assert!(metrics.contains("http_request_duration_seconds_bucket"));
    assert!(metrics.contains("tenantry_db_pool_connections"));

    let doc = app
        .call(Method::GET, "/api/openapi.json", None, &[], None)
        .await
        .json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/health",
        "/api/features",
        "/api/client/snapshot",
        "/api/client/stream",
        "/ofrep/v1/evaluate/flags",
        "/ofrep/v1/evaluate/flags/{key}",
        "/api/admin/tenants",
        "/api/admin/tenants/{id}",
        "/api/admin/tenants/{id}/flags/{key}",
        "/api/admin/tenants/{id}/enable-multi-workspace",
        "/api/admin/flags",
        "/api/admin/flags/{key}",
        "/api/admin/flags/{key}/rollout",
        "/api/admin/flags/{key}/advance",
        "/api/admin/flags/{key}/rollback",
        "/api/admin/tokens",
        "/api/admin/tokens/{id}",
        "/api/admin/audit",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}
