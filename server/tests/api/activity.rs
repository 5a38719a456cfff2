//! Workspace activity reported by the SaaS.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use server::auth::Scope;
use sqlx::PgPool;

use crate::helpers::{token, TestApp};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn activity_batches_are_all_or_nothing(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let (a, b) = (app.tenant(0), app.tenant(1));
    let tenant_token = token(&pool, "tenant-a", Scope::Tenant, Some(&a)).await;
    app.state.live.tokens.reload(&pool).await.unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM workspace_activity_logs")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let post = |token: String, body: Value| {
        let app = &app;
        async move {
            app.call(Method::POST, "/api/activity", Some(&token), &[], Some(body))
                .await
        }
    };

    // A good batch from the SaaS's server token.
    let res = post(
        app.server.clone(),
        json!({"events": [
            {"tenant_id": a, "action": "workspace.create", "actor": "u1", "details": {"workspace": "Sales"}},
            {"tenant_id": b, "action": "workspace.switch_error", "created_at": "2026-11-25T08:00:00Z"}
        ]}),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert_eq!(res.json()["accepted"], 2);
    assert_eq!(count().await, 2);

    // One bad event and nothing is stored; every bad one is listed with its index and reason.
    let res = post(
        app.server.clone(),
        json!({"events": [
            {"tenant_id": a, "action": "workspace.view"},
            {"tenant_id": "no-such-tenant", "action": "workspace.view"},
            {"tenant_id": b, "action": ""},
            {"tenant_id": b, "action": "x", "details": [1, 2]},
            {"tenant_id": b, "action": "x", "created_at": "2999-01-01T00:00:00Z"}
        ]}),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    let body = res.json();
    assert_eq!(body["error"], "invalid_events");
    let rejected: Vec<(u64, String)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(rejected[0].1.contains("no live tenant"), "{rejected:?}");
    assert!(rejected[1].1.contains("action is empty"), "{rejected:?}");
    assert!(rejected[2].1.contains("JSON object"), "{rejected:?}");
    assert!(rejected[3].1.contains("future"), "{rejected:?}");
    assert_eq!(count().await, 2);

    // A tenant token reports its own tenant only.
    let res = post(
        tenant_token.clone(),
        json!({"events": [{"tenant_id": a, "action": "workspace.view"}]}),
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let res = post(
        tenant_token,
        json!({"events": [{"tenant_id": b, "action": "workspace.view"}]}),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    assert!(res.text.contains("its own tenant"), "{}", res.text);

    // Batch limits, shapes and scopes.
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"tenant_id": a, "action": "x"}))
        .collect();
    let res = post(app.server.clone(), json!({ "events": many })).await;
    assert_eq!(res.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", res.text);
    let res = post(app.server.clone(), json!({"events": []})).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text);
    let res = post(
        app.server.clone(),
        json!({"events": [{"tenant_id": a, "action": "x", "oops": 1}]}),
    )
    .await;
    assert!(res.status.is_client_error(), "{} {}", res.status, res.text);
    let res = post(
        app.admin.clone(),
        json!({"events": [{"tenant_id": a, "action": "x"}]}),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN, "{}", res.text);
    let res = app
        .call(
            Method::POST,
            "/api/activity",
            None,
            &[],
            Some(json!({"events": []})),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(count().await, 3);

    // The seed's monitoring queries, verbatim, see the events.
    let (actions, total) = store::activity::actions_last_24h(&pool, 50).await.unwrap();
    assert_eq!(total as usize, actions.len());
    assert!(
        actions
            .iter()
            .any(|(a, n)| a == "workspace.create" && *n == 1),
        "{actions:?}"
    );
    let errors = store::activity::latest_errors(&pool).await.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].action, "workspace.switch_error");
    // A tenant token floods distinct action names: the page's query stays bounded.
    sqlx::query(
        "INSERT INTO workspace_activity_logs (tenant_id, action, actor, details) \
         SELECT $1, 'flood.' || g, 'bot', '{}' FROM generate_series(1, 300) g",
    )
    .bind(app.tenant(1))
    .execute(&pool)
    .await
    .unwrap();
    let (shown, total) = store::activity::actions_last_24h(&pool, 50).await.unwrap();
    assert_eq!(shown.len(), 50);
    assert!(total >= 300, "{total}");
    let hourly = store::activity::per_hour(&pool, std::slice::from_ref(&a), 24)
        .await
        .unwrap();
    assert_eq!(hourly.len(), 24);
    assert_eq!(hourly.iter().map(|(_, n)| n).sum::<i64>(), 2);
}
