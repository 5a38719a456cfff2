//! The audit log: every kind of change is audited; the CSV export.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{form, sign_in, tenantry, test_database_url, TestApp};

/// Every kind of change — through the web app's server functions, the REST API, the CLI and raw
/// SQL — leaves an audit row naming what it did and where it came from.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_kind_of_change_is_audited(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let po = sign_in(&app, "petra", "product_owner").await;
    let admin_user = sign_in(&app, "ada", "admin").await;
    let url = test_database_url(&pool).await;
    let watermark = || async {
        sqlx::query_scalar::<_, Option<i64>>("SELECT max(id) FROM audit_log")
            .fetch_one(&pool)
            .await
            .unwrap()
            .unwrap_or(0)
    };
    let expect = |after: i64, action: &'static str, source: &'static str, what: String| {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM audit_log WHERE id > $1 AND action = $2 AND source = $3",
            )
            .bind(after)
            .bind(action)
            .bind(source)
            .fetch_one(&pool)
            .await
            .unwrap();
            assert!(n >= 1, "{what}: no audit row {action} from {source}");
        }
    };
    let t = app.tenant(6);

    // REST.
    let rest: Vec<(Method, String, Option<Value>, &'static str)> = vec![
        (
            Method::POST,
            "/api/admin/tenants".into(),
            Some(json!({"id": "audit-co", "name": "Audit Co"})),
            "tenant.create",
        ),
        (
            Method::PATCH,
            "/api/admin/tenants/audit-co".into(),
            Some(json!({"plan": "enterprise"})),
            "tenant.update",
        ),
        (
            Method::POST,
            "/api/admin/flags".into(),
            Some(json!({"key": "audit_flag"})),
            "flag.create",
        ),
        (
            Method::PUT,
            "/api/admin/flags/audit_flag/plan/settings".into(),
            Some(
                json!({"approvals_required": false, "approver_roles": [], "auto_advance": false, "gates": []}),
            ),
            "plan.settings",
        ),
        (
            Method::POST,
            "/api/admin/flags/audit_flag/plan/ticks".into(),
            Some(json!({"checklist": "Prerequisites", "item": "All staging tests passed"})),
            "plan.tick",
        ),
        (
            Method::POST,
            "/api/admin/flags/audit_flag/plan/signoffs".into(),
            Some(json!({"milestone": "Code deployed"})),
            "plan.signoff",
        ),
        (
            Method::PUT,
            "/api/admin/flags/audit_flag/plan/contacts".into(),
            Some(json!({"contacts": [{"role": "DBA", "contact": "dba@example.com"}]})),
            "plan.contacts",
        ),
        (
            Method::PUT,
            format!("/api/admin/tenants/{t}/flags/audit_flag"),
            Some(json!({"enabled": true})),
            "rollout.apply",
        ),
        (
            Method::POST,
            "/api/admin/flags/audit_flag/advance".into(),
            None,
            "rollout.apply",
        ),
        (
            Method::PUT,
            "/api/admin/flags/audit_flag/rollout".into(),
            Some(json!({"phase": "pilot", "pilots": [t.clone()]})),
            "rollout.apply",
        ),
        (
            Method::POST,
            "/api/admin/flags/audit_flag/rollback".into(),
            None,
            "rollout.kill",
        ),
        (
            Method::POST,
            "/api/admin/tokens".into(),
            Some(json!({"name": "audit-token", "scope": "server"})),
            "token.create",
        ),
        (
            Method::DELETE,
            "/api/admin/tenants/audit-co".into(),
            None,
            "tenant.archive",
        ),
    ];
    for (method, uri, body, action) in rest {
        let w = watermark().await;
        let res = app
            .call(method.clone(), &uri, Some(&app.admin), &[], body)
            .await;
        assert!(
            res.status.is_success(),
            "{method} {uri}: {} {}",
            res.status,
            res.text
        );
        expect(w, action, "api", format!("{method} {uri}")).await;
    }
    let tokens = app.get("/api/admin/tokens").await.json();
    let id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "audit-token")
        .unwrap()["id"]
        .clone();
    let w = watermark().await;
    let res = app
        .call(
            Method::DELETE,
            &format!("/api/admin/tokens/{id}"),
            Some(&app.admin),
            &[],
            None,
        )
        .await;
    assert!(res.status.is_success(), "{}", res.text);
    expect(w, "token.revoke", "api", "revoke a token".into()).await;

    // The web app's server functions (session cookies).
    let flag = store::flags::get(&pool, "audit_flag").await.unwrap();
    let ui: Vec<(&str, String, &str, &'static str)> = vec![
        ("save_rollout", json!({"key": "audit_flag", "rollout": {"phase": "pilot", "pilots": [t.clone()], "constraints": []}, "version": flag.version}).to_string(), "application/json", "rollout.apply"),
        ("plan_tick", "key=audit_flag&checklist=Prerequisites&item=Rollback+tested+in+staging&ticked=true".into(), "application/x-www-form-urlencoded", "plan.tick"),
        ("plan_sign", "key=audit_flag&milestone=Pilot+enabled&signed=true".into(), "application/x-www-form-urlencoded", "plan.signoff"),
        ("plan_contacts", "key=audit_flag&contacts=On-call+%7C+ops%40example.com".into(), "application/x-www-form-urlencoded", "plan.contacts"),
        ("kill_flag", "key=audit_flag".into(), "application/x-www-form-urlencoded", "rollout.kill"),
    ];
    for (endpoint, body, content_type, action) in ui {
        let w = watermark().await;
        let res = app
            .raw(
                Request::post(format!("/rpc/{endpoint}"))
                    .header("content-type", content_type)
                    .header("accept", "application/json")
                    .header("cookie", &po)
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await;
        assert!(
            res.status.is_success(),
            "{endpoint}: {} {}",
            res.status,
            res.text
        );
        expect(w, action, "ui", endpoint.to_string()).await;
    }
    let w = watermark().await;
    let res = form(
        &app,
        &admin_user,
        "plan_settings",
        "key=audit_flag&approver_roles=admin&on_alert=off",
    )
    .await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    expect(w, "plan.settings", "ui", "plan_settings".into()).await;

    // The CLI.
    let cli_steps: Vec<(Vec<&str>, &'static str)> = vec![
        (
            vec!["enable", "--flag", "audit_flag", "--tenant", &t],
            "rollout.apply",
        ),
        (vec!["advance", "--flag", "audit_flag"], "rollout.apply"),
        (
            vec!["rollback", "--flag", "audit_flag", "--to", "previous"],
            "rollout.apply",
        ),
        (
            vec!["disable", "--flag", "audit_flag", "--tenant", &t],
            "rollout.apply",
        ),
        (vec!["rollback", "--flag", "audit_flag"], "rollout.kill"),
        (
            vec!["user", "add", "carl", "--role", "viewer"],
            "user.upsert",
        ),
        (vec!["user", "disable", "carl"], "user.disable"),
        (vec!["user", "enable", "carl"], "user.enable"),
        (
            vec!["user", "sessions", "revoke", "carl"],
            "user.sessions_revoke",
        ),
        (
            vec![
                "token",
                "create",
                "--scope",
                "server",
                "--name",
                "cli-token",
            ],
            "token.create",
        ),
    ];
    for (args, action) in cli_steps {
        let w = watermark().await;
        tenantry(&url, &args);
        expect(w, action, "cli", format!("tenantry {}", args.join(" "))).await;
    }

    // Raw SQL, as the seed writes it.
    let w = watermark().await;
    sqlx::query(
        "UPDATE feature_flags SET enabled = true WHERE key = 'audit_flag' AND tenant_id IS NULL;",
    )
    .execute(&pool)
    .await
    .unwrap();
    expect(w, "feature_flag.update", "sql", "raw SQL".into()).await;
}

/// The audit CSV streams page by page (never the whole log in memory) and still holds every
/// matching row exactly once, newest first, across page boundaries.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_audit_csv_streams_every_row_once(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    sqlx::query(
        "INSERT INTO audit_log (actor, source, action, flag_key, after) \
         SELECT 'bulk-bot', 'api', 'test.bulk', 'multi_workspace_enabled', jsonb_build_object('n', g) \
         FROM generate_series(1, 4500) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    let viewer = sign_in(&app, "vera", "viewer").await;
    let res = app
        .call(
            Method::GET,
            "/audit/export.csv?actor=bulk-bot",
            None,
            &[("cookie", &viewer)],
            None,
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "{}",
        &res.text[..200.min(res.text.len())]
    );
    let mut reader = csv::Reader::from_reader(res.text.as_bytes());
    let ids: Vec<i64> = reader
        .records()
        .map(|r| r.unwrap()[0].parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 4500);
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    // Compressed for a browser that asks: the stream ends once (a compressing layer polls the
    // body again after its end; an unfused stream panicked there).
    let gz = app
        .call(
            Method::GET,
            "/audit/export.csv?actor=bulk-bot",
            None,
            &[("cookie", &viewer), ("accept-encoding", "gzip")],
            None,
        )
        .await;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(gz.headers["content-encoding"], "gzip");
}
