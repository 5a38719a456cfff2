//! A write through the web app's server functions is published on the instance that made it at
//! once, as a REST write is: `/api/features` answers with it before any `NOTIFY` arrives.
//!
//! No LISTEN task runs here (the state's snapshot is loaded once by hand), so nothing but the
//! write's own publishing can bring the new state to this instance's evaluations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use serde_json::{json, Value};
use server::{auth::Scope, AppState};
use sqlx::PgPool;
use tower::ServiceExt;

const FLAG: &str = "multi_workspace_enabled";

async fn send(state: &AppState, req: Request<Body>) -> (StatusCode, String) {
    let res = server::router(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn token(pool: &PgPool, name: &str, scope: Scope) -> String {
    let secret = server::auth::generate_secret(scope).unwrap();
    let actor = store::Actor::new("test", store::Source::Cli);
    server::tokens::create(pool, &actor, name, scope, None, None, &secret, None)
        .await
        .unwrap();
    secret
}

/// Signs a product owner in through `/rpc/login`; returns the session cookie.
async fn sign_in(state: &AppState) -> String {
    let hash = infra::password::hash("correct horse battery").unwrap();
    let actor = store::Actor::new("test", store::Source::Cli);
    store::users::upsert(&state.pool, &actor, "petra", &hash, "product_owner", true)
        .await
        .unwrap();
    let req = Request::post("/rpc/login")
        .header("host", "localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(Body::from("username=petra&password=correct+horse+battery"))
        .unwrap();
    let res = server::router(state.clone()).oneshot(req).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

/// Calls server function `endpoint` as the signed-in browser would.
async fn rpc(state: &AppState, cookie: &str, endpoint: &str, content_type: &str, body: String) {
    let req = Request::post(format!("/rpc/{endpoint}"))
        .header("host", "localhost")
        .header("origin", "http://localhost")
        .header("cookie", cookie)
        .header("content-type", content_type)
        .header("accept", "application/json")
        .body(Body::from(body))
        .unwrap();
    let (status, text) = send(state, req).await;
    assert!(status.is_success(), "{endpoint}: {status} {text}");
}

/// Whether `/api/features` says `FLAG` is ON for `tenant` on this instance.
async fn on(state: &AppState, server_token: &str, tenant: &str) -> bool {
    let req = Request::get(format!("/api/features?tenant={tenant}"))
        .header("host", "localhost")
        .header("authorization", format!("Bearer {server_token}"))
        .body(Body::empty())
        .unwrap();
    let (status, text) = send(state, req).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let features: Value = serde_json::from_str(&text).unwrap();
    features[FLAG].as_bool().unwrap()
}

/// The instance serves the database's current version (nothing waits for `NOTIFY`).
async fn current(state: &AppState) {
    assert_eq!(
        state.live.current().version(),
        store::snapshot::version(&state.pool).await.unwrap(),
        "the instance still serves an older snapshot"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_server_function_write_is_evaluated_at_once_without_notify(pool: PgPool) {
    store::demo::seed_tenants(&pool, 40).await.unwrap();
    let admin = token(&pool, "admin", Scope::Admin).await;
    let server_token = token(&pool, "server", Scope::Server).await;
    let state = AppState::new(
        LeptosOptions::builder().output_name("tenantry").build(),
        pool.clone(),
    );
    state.live.refresh_all(&pool).await.unwrap();
    assert!(!state.live.is_listening(), "this test runs without LISTEN");
    // A plan without gates or approvals: the test is about publishing, not about the gates.
    let req = Request::put(format!("/api/admin/flags/{FLAG}/plan/settings"))
        .header("host", "localhost")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"approvals_required": false, "approver_roles": [], "auto_advance": false, "gates": []})
                .to_string(),
        ))
        .unwrap();
    let (status, text) = send(&state, req).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");
    let po = sign_in(&state).await;
    let pilot = store::demo::demo_tenant(3).id;
    assert!(!on(&state, &server_token, &pilot).await);

    // The flag editor's save: the pilot is ON for this instance's evaluations at once.
    let version = store::flags::get(&pool, FLAG).await.unwrap().version;
    let body = json!({"key": FLAG, "rollout": {"phase": "pilot", "pilots": [pilot], "constraints": []}, "version": version});
    rpc(
        &state,
        &po,
        "save_rollout",
        "application/json",
        body.to_string(),
    )
    .await;
    current(&state).await;
    assert!(on(&state, &server_token, &pilot).await);

    // The plan panel's advance (pilot → 10%): the tenants it turns ON are ON at once.
    rpc(
        &state,
        &po,
        "plan_advance",
        "application/x-www-form-urlencoded",
        format!("key={FLAG}"),
    )
    .await;
    current(&state).await;
    let turned_on: Vec<String> = sqlx::query_scalar(
        "SELECT tenant_id FROM feature_flags WHERE key = $1 AND enabled AND tenant_id <> $2",
    )
    .bind(FLAG)
    .bind(&pilot)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(!turned_on.is_empty(), "10% of 40 tenants turns some ON");
    for t in &turned_on {
        assert!(on(&state, &server_token, t).await, "{t}");
    }

    // The kill switch: OFF for everyone at once.
    rpc(
        &state,
        &po,
        "kill_flag",
        "application/x-www-form-urlencoded",
        format!("key={FLAG}"),
    )
    .await;
    current(&state).await;
    assert!(!on(&state, &server_token, &pilot).await);
    for t in &turned_on {
        assert!(!on(&state, &server_token, t).await, "{t}");
    }
}

/// The dashboard's and the flag list's counts come from the live snapshot (counted once per
/// version, reusing the last counts for the flags a change did not touch): after every kind of
/// change — rows by raw SQL, an exclusion, a global switch, a new flag, an archived tenant — they
/// equal what counting the table gives.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn live_counts_equal_counting_the_rows(pool: PgPool) {
    store::demo::seed_tenants(&pool, 60).await.unwrap();
    let state = AppState::new(
        LeptosOptions::builder().output_name("tenantry").build(),
        pool.clone(),
    );
    state.live.refresh_all(&pool).await.unwrap();
    let t = |n: usize| store::demo::demo_tenant(n).id;
    let changes = [
        format!("INSERT INTO feature_flags (key, tenant_id, enabled) SELECT '{FLAG}', id, true FROM tenants WHERE id <> '{}' ORDER BY id LIMIT 25 ON CONFLICT (key, tenant_id) WHERE tenant_id IS NOT NULL DO UPDATE SET enabled = true", t(0)),
        format!("UPDATE feature_flags SET excluded = true WHERE key = '{FLAG}' AND tenant_id IN ('{}', '{}')", t(1), t(2)),
        "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('other_flag', NULL, true)".to_string(),
        format!("INSERT INTO feature_flags (key, tenant_id, enabled, excluded) VALUES ('other_flag', '{}', false, true)", t(5)),
        format!("UPDATE tenants SET archived_at = now() WHERE id IN ('{}', '{}')", t(3), t(40)),
        format!("UPDATE feature_flags SET enabled = false WHERE key = '{FLAG}' AND tenant_id = '{}'", t(4)),
    ];
    for sql in std::iter::once(None).chain(changes.iter().map(Some)) {
        if let Some(sql) = sql {
            sqlx::query(sql)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            state.live.refresh_snapshot(&pool).await.unwrap();
        }
        current(&state).await;
        let counts = state.live.current().counts().await.unwrap();
        let (live, on) = store::flags::effective_on(&pool).await.unwrap();
        assert_eq!(counts.tenants as i64, live, "after {sql:?}");
        let from_snapshot: Vec<(String, i64)> = counts
            .flags
            .iter()
            .map(|(k, c)| (k.clone(), c.on as i64))
            .collect();
        assert_eq!(from_snapshot, on, "after {sql:?}");
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT f.key, \
                    count(*) FILTER (WHERE r.enabled AND t.id IS NOT NULL), \
                    count(*) FILTER (WHERE r.excluded AND t.id IS NOT NULL) \
             FROM flags f LEFT JOIN feature_flags r ON r.key = f.key AND r.tenant_id IS NOT NULL \
             LEFT JOIN tenants t ON t.id = r.tenant_id AND t.archived_at IS NULL \
             GROUP BY f.key ORDER BY f.key",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let listed: Vec<(String, i64, i64)> = counts
            .flags
            .iter()
            .map(|(k, c)| (k.clone(), c.rows_on as i64, c.excluded as i64))
            .collect();
        assert_eq!(listed, rows, "after {sql:?}");
        // The list the pages show takes them.
        let list = store::flags::list_counted(&pool, Some(&counts))
            .await
            .unwrap();
        assert_eq!(
            list.iter()
                .map(|f| (f.key.clone(), f.tenants_on, f.tenants_excluded))
                .collect::<Vec<_>>(),
            rows
        );
    }
}
