//! OFREP: single and bulk evaluation.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{TestApp, FLAG};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn ofrep_single_and_bulk(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.ungate(FLAG).await;
    let a = app.tenant(4);
    app.post(
        &format!("/api/admin/tenants/{a}/enable-multi-workspace"),
        None,
    )
    .await;
    let eval = |body: Value, key: &str| {
        let uri = format!("/ofrep/v1/evaluate/flags/{key}");
        let server = app.server.clone();
        let app = &app;
        async move {
            app.call(Method::POST, &uri, Some(&server), &[], Some(body))
                .await
        }
    };
    let res = eval(json!({"context": {"targetingKey": a}}), FLAG).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let j = res.json();
    assert_eq!(
        (
            j["key"].as_str(),
            j["value"].as_bool(),
            j["reason"].as_str(),
            j["variant"].as_str()
        ),
        (Some(FLAG), Some(true), Some("TARGETING_MATCH"), Some("on"))
    );
    assert_eq!(j["metadata"]["tenantryReason"], "pilot");

    let res = eval(json!({"context": {"targetingKey": app.tenant(5)}}), FLAG).await;
    assert_eq!(res.json()["value"], false);
    assert_eq!(res.json()["reason"], "DEFAULT");

    let res = eval(json!({"context": {"targetingKey": a}}), "nope").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.json()["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(res.json()["key"], "nope");
    let res = eval(json!({"context": {}}), FLAG).await;
    assert_eq!(
        (res.status, res.json()["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("TARGETING_KEY_MISSING"))
    );
    let res = eval(json!({"context": {"targetingKey": 42}}), FLAG).await;
    assert_eq!(res.json()["errorCode"], "INVALID_CONTEXT");
    let res = eval(json!({"context": "tenant"}), FLAG).await;
    assert_eq!(res.json()["errorCode"], "INVALID_CONTEXT");
    let res = app
        .raw(
            Request::post(format!("/ofrep/v1/evaluate/flags/{FLAG}"))
                .header("x-api-key", &app.server)
                .body(Body::from("{oops"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (res.status, res.json()["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("PARSE_ERROR"))
    );
    let res = app
        .call(
            Method::POST,
            &format!("/ofrep/v1/evaluate/flags/{FLAG}"),
            None,
            &[],
            Some(json!({"context": {"targetingKey": a}})),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    // Bulk with ETag / If-None-Match.
    let body = json!({"context": {"targetingKey": a}});
    let res = app
        .call(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(&app.server),
            &[],
            Some(body.clone()),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["flags"][0]["key"], FLAG);
    assert_eq!(res.json()["flags"][0]["value"], true);
    let tag = res.headers["etag"].to_str().unwrap().to_string();
    let res = app
        .call(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(&app.server),
            &[("if-none-match", &tag)],
            Some(body.clone()),
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
    // Another tenant has another ETag; a change gives a new one.
    let other = app
        .call(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(&app.server),
            &[("if-none-match", &tag)],
            Some(json!({"context": {"targetingKey": app.tenant(6)}})),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    app.post(&format!("/api/admin/flags/{FLAG}/rollback"), None)
        .await;
    let res = app
        .call(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(&app.server),
            &[("if-none-match", &tag)],
            Some(body),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["flags"][0]["value"], false);
    assert_eq!(res.json()["flags"][0]["reason"], "DISABLED");
}
