//! The one write path: gates on the effect of a change, not on the door it came through.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{
    assert_error, audit_count, phase, rollback, sign_in, test_database_url, Res, TestApp, FLAG,
};

/// Tenants with FLAG ON, by the evaluation rule in SQL.
async fn on_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM tenants t WHERE t.archived_at IS NULL \
         AND NOT EXISTS (SELECT 1 FROM feature_flags x WHERE x.key = $1 AND x.tenant_id = t.id AND x.excluded) \
         AND EXISTS (SELECT 1 FROM feature_flags r WHERE r.key = $1 AND r.enabled AND (r.tenant_id IS NULL OR r.tenant_id = t.id))",
    )
    .bind(FLAG)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The state a refused change must leave untouched: version, rollout and who is ON.
async fn untouched(app: &TestApp, pool: &PgPool) -> (i64, Value, i64) {
    let f = app.get(&format!("/api/admin/flags/{FLAG}")).await.json();
    (
        f["version"].as_i64().unwrap(),
        f["rollout"].clone(),
        on_count(pool).await,
    )
}

/// Every door that can turn a tenant ON — a rollout edit at the same phase (more pilots, a
/// removed constraint), the per-tenant switch (enable, released exclusion), the seed's endpoint,
/// the web editor's save and the CLI — is refused with `gates_unmet` while the plan's gates do not
/// hold and changes nothing; the same change with an admin's override goes through and is audited;
/// every narrowing goes through ungated; while a guard's pause stands every widening is refused
/// with `paused`, override or not.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_door_that_turns_a_tenant_on_passes_the_gates(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let rollout_uri = format!("/api/admin/flags/{FLAG}/rollout");
    let (a, b, c) = (app.tenant(1), app.tenant(2), app.tenant(3));
    // Into the pilot phase with one pilot, by break glass (the seed plan's gates do not hold).
    let res = app
        .post(
            &format!("/api/admin/tenants/{a}/enable-multi-workspace"),
            Some(json!({"override_reason": "setting up the test"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_on"], json!([a.clone()]));
    assert_eq!(audit_count(&pool, "gate.override").await, 1);

    let put = |body: Value| {
        let app = &app;
        let uri = rollout_uri.clone();
        async move {
            app.call(Method::PUT, &uri, Some(&app.admin), &[], Some(body))
                .await
        }
    };
    let refused = |res: Res, code: &'static str| {
        assert_error(&res, StatusCode::CONFLICT, code);
        res
    };

    // 1. The same phase with two more pilots: gated by the pilot phase's gates.
    let before = untouched(&app, &pool).await;
    let res = refused(
        put(json!({"phase": "pilot", "pilots": [a.clone(), b.clone(), c.clone()]})).await,
        "gates_unmet",
    );
    assert!(
        res.text.contains("not ticked: Prerequisites"),
        "{}",
        res.text
    );
    // The window of the phase the flag is already in is not asked again.
    assert!(!res.text.contains("monitoring window"), "{}", res.text);
    assert_eq!(untouched(&app, &pool).await, before);
    // 30 of the 40 tenants as "pilots" reach 75% of the customers: the gates of 10% and 50%,
    // windows included — not the pilot's.
    let many: Vec<String> = (1..=30).map(|i| app.tenant(i)).collect();
    let res = refused(
        put(json!({"phase": "pilot", "pilots": many})).await,
        "gates_unmet",
    );
    assert!(res.text.contains("monitoring window"), "{}", res.text);
    assert!(res.text.contains("Monitor for 48 hours"), "{}", res.text);
    assert_eq!(untouched(&app, &pool).await, before);

    // 2. The per-tenant switch and 3. the seed's endpoint for a second tenant.
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/tenants/{b}/flags/{FLAG}"),
            Some(&app.admin),
            &[],
            Some(json!({"enabled": true})),
        )
        .await;
    refused(res, "gates_unmet");
    let res = app
        .post(
            &format!("/api/admin/tenants/{b}/enable-multi-workspace"),
            None,
        )
        .await;
    refused(res, "gates_unmet");
    assert_eq!(untouched(&app, &pool).await, before);

    // 4. The web editor's save, as a product owner.
    let po = sign_in(&app, "pia", "product_owner").await;
    let save = |rollout: Value, version: i64, reason: Option<&str>| {
        let app = &app;
        let po = po.clone();
        let mut body = json!({"key": FLAG, "rollout": rollout, "version": version});
        if let Some(r) = reason {
            body["override_reason"] = json!(r);
        }
        async move {
            app.call(
                Method::POST,
                "/rpc/save_rollout",
                None,
                &[("cookie", &po), ("accept", "application/json")],
                Some(body),
            )
            .await
        }
    };
    let res = save(
        json!({"phase": "pilot", "pilots": [a.clone(), b.clone()], "constraints": []}),
        before.0,
        None,
    )
    .await;
    assert!(
        !res.status.is_success() && res.text.contains("do not hold"),
        "{} {}",
        res.status,
        res.text
    );
    // A product owner may not break glass.
    let res = save(
        json!({"phase": "pilot", "pilots": [a.clone(), b.clone()], "constraints": []}),
        before.0,
        Some("because"),
    )
    .await;
    assert!(
        !res.status.is_success() && res.text.contains("only an admin"),
        "{} {}",
        res.status,
        res.text
    );
    assert_eq!(untouched(&app, &pool).await, before);

    // 5. The CLI's per-tenant enable.
    let url = test_database_url(&pool).await;
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"))
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap()
    };
    let out = cli(&["enable", "--flag", FLAG, "--tenant", &b]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not ticked: Prerequisites"), "{err}");
    assert_eq!(untouched(&app, &pool).await, before);

    // Narrowing is never gated: a pilot removed, an exclusion added.
    let res = put(json!({"phase": "pilot", "pilots": []})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_off"], json!([a.clone()]));
    // The same pilot back is a widening again: refused.
    refused(
        put(json!({"phase": "pilot", "pilots": [a.clone()]})).await,
        "gates_unmet",
    );
    // With an admin's written reason: through, audited with what it passed.
    let res = put(json!({"phase": "pilot", "pilots": [a.clone()], "override_reason": "pilot customer escalation"}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(audit_count(&pool, "gate.override").await, 2);
    let out = cli(&[
        "enable",
        "--flag",
        FLAG,
        "--tenant",
        &c,
        "--override",
        "CLI break glass",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(audit_count(&pool, "gate.override").await, 3);
    assert_eq!(on_count(&pool).await, 2);

    // 6. 50% of one region, by override; then the constraint removed at 50% widens: refused.
    let region = store::demo::demo_tenant(1).region;
    let res = put(json!({"phase": "50%", "pilots": [a.clone()],
        "constraints": [{"attribute": "region", "operator": "IN", "values": [region]}],
        "override_reason": "into 50% for the test"}))
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let at_fifty = untouched(&app, &pool).await;
    let res = refused(
        put(json!({"phase": "50%", "pilots": [a.clone()], "constraints": []})).await,
        "gates_unmet",
    );
    assert!(res.text.contains("Monitor for 48 hours"), "{}", res.text);
    assert_eq!(untouched(&app, &pool).await, at_fifty);

    // A phase between the rungs needs the rung above it: 50% → 99% passes the gates of 100%.
    let res = refused(
        put(json!({"phase": "99%", "pilots": [a.clone()],
            "constraints": [{"attribute": "region", "operator": "IN", "values": [region]}]}))
        .await,
        "gates_unmet",
    );
    assert!(res.text.contains("not signed: 50% rollout"), "{}", res.text);
    assert_eq!(untouched(&app, &pool).await, at_fifty);

    // 7. An exclusion released: refused; added: fine.
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/tenants/{a}/flags/{FLAG}"),
            Some(&app.admin),
            &[],
            Some(json!({"enabled": true, "excluded": true})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_off"], json!([a.clone()]));
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/tenants/{a}/flags/{FLAG}"),
            Some(&app.admin),
            &[],
            Some(json!({"enabled": true, "excluded": false})),
        )
        .await;
    refused(res, "gates_unmet");

    // 8. A guard's pause: every widening is refused with `paused` — override or not — and every
    // narrowing still goes through.
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/flags/{FLAG}/plan/contacts"),
            Some(&app.admin),
            &[],
            Some(json!({"contacts": [{"role": "On-call Engineer", "contact": "ops@example.com"}]})),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    sqlx::query(
        "UPDATE rollout_plans SET paused_at = now(), \
         paused_reason = 'guard api_error_rate in alert: 2.1% > 1%' WHERE flag_key = $1",
    )
    .bind(FLAG)
    .execute(&pool)
    .await
    .unwrap();
    let paused = untouched(&app, &pool).await;
    let res = refused(
        put(json!({"phase": "50%", "pilots": [a.clone()], "override_reason": "ship it"})).await,
        "paused",
    );
    assert!(res.text.contains("api_error_rate"), "{}", res.text);
    refused(
        app.post(
            &format!("/api/admin/tenants/{b}/enable-multi-workspace"),
            Some(json!({"override_reason": "x"})),
        )
        .await,
        "paused",
    );
    refused(
        app.post(&format!("/api/admin/flags/{FLAG}/advance"), None)
            .await,
        "paused",
    );
    assert_eq!(untouched(&app, &pool).await, paused);
    let res = rollback(&app, Some("previous")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(phase(&app).await, "10%");
    let res = rollback(&app, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(on_count(&pool).await, 0);
}

/// A rollback touches nobody it does not turn OFF: a tenant switched off by hand inside both the
/// old and the new cohort stays off, so a rollback is never a widening — not gated, not refused
/// while a guard's pause stands (the guard's own step-back included). Raw SQL on a rollout is
/// audited and moves the phase clock. At 100% a per-tenant "off" says it cannot be.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_rollback_never_turns_anyone_on(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let rollout_uri = format!("/api/admin/flags/{FLAG}/rollout");
    let res = app
        .call(
            Method::PUT,
            &rollout_uri,
            Some(&app.admin),
            &[],
            Some(json!({"phase": "50%", "override_reason": "set up"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    // A tenant of the 10% cohort switched off by hand.
    let x = (1..=40)
        .map(|i| app.tenant(i))
        .find(|t| flags::bucket(FLAG, t) <= 10)
        .expect("a tenant in the 10% cohort");
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/tenants/{x}/flags/{FLAG}"),
            Some(&app.admin),
            &[],
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_off"], json!([x.clone()]));
    assert_eq!(res.json()["turned_on"], json!([]));
    // Paused by a guard.
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/flags/{FLAG}/plan/contacts"),
            Some(&app.admin),
            &[],
            Some(json!({"contacts": []})),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let set_pause = |on: bool| {
        let pool = pool.clone();
        async move {
            sqlx::query(if on {
                "UPDATE rollout_plans SET paused_at = now(), paused_reason = 'guard x in alert' WHERE flag_key = $1"
            } else {
                "UPDATE rollout_plans SET paused_at = NULL, paused_reason = NULL WHERE flag_key = $1"
            })
            .bind(FLAG)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    set_pause(true).await;
    let on_before = on_count(&pool).await;
    let res = rollback(&app, Some("previous")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_on"], json!([]));
    assert_eq!(phase(&app).await, "10%");
    assert!(on_count(&pool).await < on_before);
    assert_eq!(
        app.features(&app.server, Some(&x)).await.json(),
        json!({ FLAG: false }),
        "the tenant switched off by hand stayed off"
    );
    // At 100% a per-tenant "off" cannot hold: 422 with what to do instead.
    set_pause(false).await;
    let res = app
        .call(
            Method::PUT,
            &rollout_uri,
            Some(&app.admin),
            &[],
            Some(json!({"phase": "100%", "override_reason": "set up"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let y = app.tenant(2);
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/tenants/{y}/flags/{FLAG}"),
            Some(&app.admin),
            &[],
            Some(json!({"enabled": false})),
        )
        .await;
    assert_error(&res, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable");
    assert!(res.text.contains("excluded"), "{}", res.text);
    // Raw SQL on the rollout: audited as the database user with source sql, and the phase clock
    // moves with it.
    let clock = || async {
        app.get(&format!("/api/admin/flags/{FLAG}/plan"))
            .await
            .json()["phase_since"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let before_clock = clock().await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    sqlx::query(
        "UPDATE flags SET rollout = jsonb_set(rollout, '{phase}', '\"50%\"') WHERE key = $1",
    )
    .bind(FLAG)
    .execute(&pool)
    .await
    .unwrap();
    let (source, after): (String, Value) = sqlx::query_as(
        "SELECT source, after FROM audit_log WHERE action = 'rollout.apply' AND flag_key = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(FLAG)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(source, "sql");
    assert_eq!(after["phase"], "50%");
    assert!(clock().await > before_clock);
}
