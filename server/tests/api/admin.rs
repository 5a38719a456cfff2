//! The admin API: error statuses, bad input, concurrent edits.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{assert_error, audit_count, phase, TestApp, FLAG};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn admin_errors_have_the_right_status(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.ungate(FLAG).await;
    let t = app.tenant(3);
    let malformed = app
        .raw(
            Request::post("/api/admin/tenants")
                .header("authorization", format!("Bearer {}", app.admin))
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "bad_request");
    let rollout = format!("/api/admin/flags/{FLAG}/rollout");
    let cases: Vec<(Method, &str, Option<Value>, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/api/admin/tenants/nope/enable-multi-workspace",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PUT,
            "/api/admin/flags/nope/rollout",
            Some(json!({"phase": "10%"})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PUT,
            &rollout,
            Some(json!({"phase": "lots"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            Method::PUT,
            &rollout,
            Some(json!({"phase": "pilot", "pilots": ["ghost"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            Method::POST,
            "/api/admin/tenants",
            Some(json!({"id": t, "name": "Dup"})),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            Method::POST,
            "/api/admin/tenants",
            Some(json!({"id": "bad id!", "name": "X"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            Method::POST,
            "/api/admin/tenants",
            Some(json!({"id": "ok-id", "name": "X", "plan": "platinum"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            Method::POST,
            "/api/admin/flags",
            Some(json!({"key": "Bad Key"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            Method::POST,
            "/api/admin/flags",
            Some(json!({"key": FLAG})),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            Method::GET,
            "/api/admin/tenants?per_page=0",
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (method, uri, body, status, code) in cases {
        let res = app.call(method, uri, Some(&app.admin), &[], body).await;
        assert_error(&res, status, code);
    }

    // Optimistic concurrency on tenants and flags.
    let got = app.get(&format!("/api/admin/tenants/{t}")).await;
    let tag = got.headers["etag"].to_str().unwrap().to_string();
    let ok = app
        .call(
            Method::PATCH,
            &format!("/api/admin/tenants/{t}"),
            Some(&app.admin),
            &[("if-match", &tag)],
            Some(json!({"plan": "enterprise"})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let stale = app
        .call(
            Method::PATCH,
            &format!("/api/admin/tenants/{t}"),
            Some(&app.admin),
            &[("if-match", &tag)],
            Some(json!({"plan": "free"})),
        )
        .await;
    assert_error(&stale, StatusCode::CONFLICT, "conflict");
    let flag = app.get(&format!("/api/admin/flags/{FLAG}")).await;
    let ftag = flag.headers["etag"].to_str().unwrap().to_string();
    app.post(&format!("/api/admin/flags/{FLAG}/advance"), None)
        .await;
    let stale = app
        .call(
            Method::PUT,
            &format!("/api/admin/flags/{FLAG}/rollout"),
            Some(&app.admin),
            &[("if-match", &ftag)],
            Some(json!({"phase": "50%"})),
        )
        .await;
    assert_error(&stale, StatusCode::CONFLICT, "conflict");
}

/// Found by Schemathesis: text with a NUL character made Postgres fail (500). It is bad input: a
/// 422 naming the problem, in the activity batch per event, and nothing stored.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn nul_characters_are_refused_not_server_errors(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let t = app.tenant(1);
    let res = app
        .call(
            Method::POST,
            "/api/activity",
            Some(&app.server),
            &[],
            Some(json!({"events": [
                {"tenant_id": t, "action": "ok"},
                {"tenant_id": "bad\u{0}id", "action": "x"},
                {"tenant_id": t, "action": "y", "details": {"k": "v\u{0}"}}
            ]})),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    let body = res.json();
    assert_eq!(body["error"], "invalid_events");
    let indexes: Vec<i64> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 2], "{body}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM workspace_activity_logs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    // Anywhere else: a 422 with the reason, never a 500.
    let res = app
        .post(
            "/api/admin/tenants",
            Some(json!({"id": "nul-co", "name": "Nul\u{0}Co"})),
        )
        .await;
    assert_error(&res, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable");
    assert!(res.text.contains("NUL"), "{}", res.text);
}

/// Twenty people press "advance" on the same version at once: exactly one wins, the others get
/// 409, and exactly one audit row records the change. The same for twenty rollout edits.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn concurrent_edits_one_wins_the_rest_conflict(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    app.ungate(FLAG).await;
    app.post(
        &format!(
            "/api/admin/tenants/{}/enable-multi-workspace",
            app.tenant(3)
        ),
        None,
    )
    .await;
    let flag = app.get(&format!("/api/admin/flags/{FLAG}")).await;
    let etag = flag.headers["etag"].to_str().unwrap().to_string();
    let applied_before = audit_count(&pool, "rollout.apply").await;
    let advance_uri = format!("/api/admin/flags/{FLAG}/advance");
    let if_match = [("if-match", etag.as_str())];
    let calls = (0..20).map(|_| {
        app.call(
            Method::POST,
            &advance_uri,
            Some(&app.admin),
            &if_match,
            None,
        )
    });
    let results = futures::future::join_all(calls).await;
    let ok = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let conflicts = results
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!(
        (ok, conflicts),
        (1, 19),
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(phase(&app).await, "10%");
    assert_eq!(
        audit_count(&pool, "rollout.apply").await,
        applied_before + 1
    );

    // Twenty different edits of the same version: one lands, none is lost silently.
    let etag = app.get(&format!("/api/admin/flags/{FLAG}")).await.headers["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let pilots: Vec<String> = (0..20).map(|i| app.tenant(10 + i)).collect();
    let rollout_uri = format!("/api/admin/flags/{FLAG}/rollout");
    let if_match = [("if-match", etag.as_str())];
    let calls = pilots.iter().map(|p| {
        app.call(
            Method::PUT,
            &rollout_uri,
            Some(&app.admin),
            &if_match,
            Some(json!({"phase": "10%", "pilots": [app.tenant(3), p]})),
        )
    });
    let results = futures::future::join_all(calls).await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == StatusCode::OK)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1);
    assert!(results
        .iter()
        .all(|r| r.status == StatusCode::OK || r.status == StatusCode::CONFLICT));
    let flag = app.get(&format!("/api/admin/flags/{FLAG}")).await.json();
    assert_eq!(
        flag["rollout"]["pilots"],
        json!([app.tenant(3), pilots[winners[0]].clone()]
            .iter()
            .collect::<std::collections::BTreeSet<_>>())
    );
    assert_eq!(
        audit_count(&pool, "rollout.apply").await,
        applied_before + 2
    );
}

/// Request bodies are typed: a phase, a role, an alert action or a rollback target that is not
/// one of its values is a 422 that names the values, on every endpoint that takes it.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn typed_request_bodies_say_what_they_accept(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::PUT,
            format!("/api/admin/flags/{FLAG}/rollout"),
            json!({"phase": "sideways"}),
            "expected off, pilot, N% or 100%",
        ),
        (
            Method::PUT,
            format!("/api/admin/flags/{FLAG}/rollout"),
            json!({"phase": "150%"}),
            "between 0 and 100, got 150",
        ),
        (
            Method::POST,
            format!("/api/admin/flags/{FLAG}/plan/requests"),
            json!({"rollout": {"phase": "most"}}),
            "expected off, pilot, N% or 100%",
        ),
        (
            Method::PUT,
            format!("/api/admin/flags/{FLAG}/plan/settings"),
            json!({"approvals_required": false, "approver_roles": ["boss"], "auto_advance": false}),
            "boss",
        ),
        (
            Method::PUT,
            format!("/api/admin/flags/{FLAG}/plan/settings"),
            json!({"approvals_required": false, "approver_roles": [], "auto_advance": false, "on_alert": "explode"}),
            "pause",
        ),
        (
            Method::POST,
            format!("/api/admin/flags/{FLAG}/rollback"),
            json!({"to": "sideways"}),
            "previous",
        ),
    ];
    for (method, uri, body, names) in cases {
        let res = app
            .call(
                method.clone(),
                &uri,
                Some(&app.admin),
                &[],
                Some(body.clone()),
            )
            .await;
        assert_error(&res, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable");
        assert!(
            res.json()["message"]
                .as_str()
                .is_some_and(|m| m.contains(names)),
            "{method} {uri} {body}: the message should name {names:?}: {}",
            res.text
        );
    }
    // Nothing moved.
    assert_eq!(phase(&app).await, "off");
    assert_eq!(audit_count(&app.state.pool, "rollout.apply").await, 0);
}
