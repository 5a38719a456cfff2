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

/// Bodies worth it are compressed when the client asks (gzip or br), decompress to the same
/// bytes, and say so in `Vary`; event streams and clients that do not ask get plain bodies.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn responses_are_compressed_when_the_client_asks(pool: PgPool) {
    use std::io::Read;
    let app = TestApp::new(pool).await;
    let get = |encoding: Option<&'static str>, uri: &'static str| {
        let mut req = Request::get(uri)
            .header("host", "localhost")
            .header("authorization", format!("Bearer {}", app.server));
        if let Some(e) = encoding {
            req = req.header("accept-encoding", e);
        }
        app.router().oneshot(req.body(Body::empty()).unwrap())
    };
    let plain = get(None, "/api/client/snapshot").await.unwrap();
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.into_body().collect().await.unwrap().to_bytes();
    flags::Snapshot::from_json(&plain).unwrap();

    let gz = get(Some("gzip"), "/api/client/snapshot").await.unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let vary: Vec<String> = gz
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .collect();
    assert!(
        vary.iter().any(|v| v.contains("accept-encoding")),
        "{vary:?}"
    );
    let gz = gz.into_body().collect().await.unwrap().to_bytes();
    assert!(gz.len() < plain.len(), "{} vs {}", gz.len(), plain.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    // Two renders of the same version: the same flags and tenants (v1 lists sets unordered).
    assert_eq!(
        flags::Snapshot::from_json(&unzipped).unwrap(),
        flags::Snapshot::from_json(&plain).unwrap()
    );

    let br = get(Some("br"), "/api/openapi.json").await.unwrap();
    assert_eq!(br.headers()["content-encoding"], "br");

    // The stream stays uncompressed: an SDK reads each event as it comes.
    let stream = get(Some("gzip, br"), "/api/client/stream").await.unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers().get("content-encoding").is_none());
}
