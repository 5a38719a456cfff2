//! Guards: a real Prometheus's alert pauses (and steps back) a rollout.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{assert_error, eventually, form, phase, says, sign_in, TestApp, FLAG};
use crate::prometheus;

async fn guard_level(pool: &PgPool, guard: &str) -> Option<String> {
    sqlx::query_scalar("SELECT level FROM guard_state WHERE flag_key = $1 AND guard = $2")
        .bind(FLAG)
        .bind(guard)
        .fetch_optional(pool)
        .await
        .unwrap()
}

async fn paused_at(pool: &PgPool) -> Option<chrono::DateTime<chrono::Utc>> {
    sqlx::query_scalar("SELECT paused_at FROM rollout_plans WHERE flag_key = $1")
        .bind(FLAG)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The guard monitor against a real Prometheus scraping an exporter whose error rate the test
/// sets: above 1% pauses the rollout at the first pass that sees it (and steps it back when the
/// plan says so); coming back down never resumes it.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_guard_alert_from_prometheus_pauses_and_rolls_back(pool: PgPool) {
    let exporter = prometheus::Exporter::start().await;
    exporter.set_error_rate(0.0005);
    let prom = prometheus::Prometheus::start(&[exporter.port]).await;
    let mut app = TestApp::new(pool.clone()).await;
    app.ungate(FLAG).await;
    let guard = json!({
        "name": "api_error_rate", "title": "API error rate",
        "query": "sum(rate(http_requests_total{status=~\"5..\"}[5s])) / sum(rate(http_requests_total[5s]))",
        "warn": 0.001, "alert": 0.01, "direction": "higher_is_worse", "unit": "ratio"
    });
    let settings = |on_alert: &str| {
        json!({"approvals_required": false, "approver_roles": [], "auto_advance": false,
               "on_alert": on_alert, "gates": [], "guards": [guard.clone()]})
    };
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/flags/{FLAG}/plan/settings"),
            Some(&app.admin),
            &[],
            Some(settings("pause")),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    app.post(
        &format!(
            "/api/admin/tenants/{}/enable-multi-workspace",
            app.tenant(1)
        ),
        None,
    )
    .await;
    let res = app
        .post(&format!("/api/admin/flags/{FLAG}/advance"), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(phase(&app).await, "10%");

    app.state.prometheus =
        Some(infra::prom::Prometheus::new(&prom.url, std::time::Duration::from_secs(5)).unwrap());
    let monitor = server::jobs::spawn_guards(app.state.clone(), std::time::Duration::from_secs(1));

    // 0.05% errors: ok once Prometheus has two scrapes in the window (holding before that).
    eventually(30, "the guard reads ok", || async {
        guard_level(&pool, "api_error_rate").await.as_deref() == Some("ok")
    })
    .await;
    assert!(paused_at(&pool).await.is_none());

    // 2% errors: the rollout pauses at the first pass that reads the alert.
    exporter.set_error_rate(0.02);
    let pushed = std::time::Instant::now();
    eventually(30, "the rollout pauses", || async {
        paused_at(&pool).await.is_some()
    })
    .await;
    eprintln!(
        "guard alert → pause after {:?} (scrape 1 s, rate window 5 s, monitor every 1 s)",
        pushed.elapsed()
    );
    let first_alert: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT min(at) FROM guard_transitions WHERE flag_key = $1 AND level = 'alert'",
    )
    .bind(FLAG)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        paused_at(&pool).await,
        Some(first_alert),
        "paused by the pass that first saw the alert"
    );
    assert_eq!(phase(&app).await, "10%", "on_alert = pause keeps the phase");
    let alert: Value = sqlx::query_scalar(
        "SELECT after FROM audit_log WHERE action = 'guard.alert' AND flag_key = $1",
    )
    .bind(FLAG)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(alert["guard"], "api_error_rate");
    assert!(alert["value"].as_f64().unwrap() > 0.01, "{alert}");

    // Back to normal: the guard recovers, the rollout stays paused and advancing is refused.
    exporter.set_error_rate(0.0);
    eventually(30, "the guard recovers", || async {
        guard_level(&pool, "api_error_rate").await.as_deref() == Some("ok")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        paused_at(&pool).await.is_some(),
        "recovery never resumes on its own"
    );
    let res = app
        .post(&format!("/api/admin/flags/{FLAG}/advance"), None)
        .await;
    assert_error(&res, StatusCode::CONFLICT, "paused");
    assert!(res.text.contains("the rollout is paused"), "{}", res.text);
    // Break glass does not pass a pause: a person resumes first.
    let res = app
        .post(
            &format!("/api/admin/flags/{FLAG}/advance"),
            Some(json!({"override_reason": "we know better"})),
        )
        .await;
    assert_error(&res, StatusCode::CONFLICT, "paused");
    let plan = app
        .get(&format!("/api/admin/flags/{FLAG}/plan"))
        .await
        .json();
    assert!(plan["paused"]["reason"]
        .as_str()
        .unwrap()
        .contains("api_error_rate"));

    // A person resumes; this time the plan steps back on alert.
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/flags/{FLAG}/plan/settings"),
            Some(&app.admin),
            &[],
            Some(settings("previous")),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let res = app
        .post(&format!("/api/admin/flags/{FLAG}/plan/resume"), None)
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    assert_error(
        &app.post(&format!("/api/admin/flags/{FLAG}/plan/resume"), None)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    exporter.set_error_rate(0.03);
    eventually(30, "the rollout pauses and steps back", || async {
        paused_at(&pool).await.is_some() && phase(&app).await == "pilot"
    })
    .await;
    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE action = 'rollout.apply' AND flag_key = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(FLAG)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(actor, "tenantry:guard");
    monitor.abort();

    // The flag page's plan panel charts the guard's series from Prometheus against its thresholds.
    let po = sign_in(&app, "petra", "product_owner").await;
    let res = form(&app, &po, "plan_panel", &format!("key={FLAG}")).await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    says(&res, "guard-chart");
    says(&res, "alert 1%");
    says(&res, "data-points=");
    says(&res, "Rollout paused");

    // Tenantry's own metrics show the guard (scripts/test runs promtool on a live /metrics).
    let metrics = app
        .call(Method::GET, "/metrics", None, &[], None)
        .await
        .text;
    assert!(
        metrics.contains(
            "tenantry_guard_level{flag=\"multi_workspace_enabled\",guard=\"api_error_rate\"} 2"
        ),
        "{metrics}"
    );
}
