//! Evaluation as rollouts move: the seed's pilot and Quick Rollback, raw SQL, the phase ladder.

use axum::http::{Method, StatusCode};
use serde_json::json;
use server::auth::Scope;
use sqlx::PgPool;

use crate::helpers::{assert_error, rollback, token, TestApp, FLAG};

/// Seed 2.2 → "Quick Rollback" → verify, as the plan writes them.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn seed_pilot_and_quick_rollback(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    app.ungate(FLAG).await;
    let (a, b) = (app.tenant(1), app.tenant(2));
    let tenant_token = token(&pool, "tenant-a", Scope::Tenant, Some(&a)).await;
    app.state.live.tokens.reload(&pool).await.unwrap();

    let res = app.features(&tenant_token, None).await;
    assert_eq!(res.json(), json!({ FLAG: false }));

    let res = app
        .post(
            &format!("/api/admin/tenants/{a}/enable-multi-workspace"),
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_on"], json!([a.clone()]));

    assert_eq!(
        app.features(&tenant_token, None).await.json(),
        json!({ FLAG: true })
    );
    assert_eq!(
        app.features(&app.server, Some(&b)).await.json(),
        json!({ FLAG: false })
    );
    let flag = app.get(&format!("/api/admin/flags/{FLAG}")).await.json();
    assert_eq!(flag["rollout"]["phase"], "pilot");
    assert_eq!(flag["rollout"]["pilots"], json!([a.clone()]));

    // The seed's Quick Rollback, verbatim, then its verification.
    sqlx::query("UPDATE feature_flags SET enabled = false WHERE key = 'multi_workspace_enabled';")
        .execute(&pool)
        .await
        .unwrap();
    app.state.live.refresh_snapshot(&pool).await.unwrap();
    assert_eq!(
        app.features(&tenant_token, None).await.json(),
        json!({ FLAG: false })
    );

    // The same through the API: every row OFF, audited with the token's name.
    app.post(
        &format!("/api/admin/tenants/{a}/enable-multi-workspace"),
        None,
    )
    .await;
    let res = rollback(&app, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_off"], json!([a.clone()]));
    assert_eq!(
        app.features(&tenant_token, None).await.json(),
        json!({ FLAG: false })
    );
    // A new pilot after a rollback starts fresh: only the tenant asked for turns on.
    let res = app
        .post(
            &format!("/api/admin/tenants/{b}/enable-multi-workspace"),
            None,
        )
        .await;
    assert_eq!(res.json()["turned_on"], json!([b.clone()]));
    assert_eq!(
        app.features(&tenant_token, None).await.json(),
        json!({ FLAG: false })
    );
    let audit = app
        .get(&format!("/api/admin/audit?flag={FLAG}&actor=token:admin"))
        .await;
    let actions: Vec<String> = audit
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect();
    assert!(actions.contains(&"rollout.kill".to_string()), "{actions:?}");
    assert!(
        actions.contains(&"feature_flag.update".to_string()),
        "{actions:?}"
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn enable_globally_by_raw_sql(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    sqlx::query("UPDATE feature_flags SET enabled = true WHERE key = 'multi_workspace_enabled' AND tenant_id IS NULL;")
        .execute(&pool)
        .await
        .unwrap();
    app.state.live.refresh_snapshot(&pool).await.unwrap();
    for n in 0..40 {
        assert_eq!(
            app.features(&app.server, Some(&app.tenant(n))).await.json(),
            json!({ FLAG: true })
        );
    }
    // Unknown tenants stay OFF (fail closed).
    assert_eq!(
        app.features(&app.server, Some("no-such-tenant"))
            .await
            .json(),
        json!({ FLAG: false })
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn phase_ladder_materialises_nested_cohorts(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    app.ungate(FLAG).await;
    let tenants: Vec<flags::Tenant> = (0..40).map(|n| flags::Tenant::new(app.tenant(n))).collect();
    let pilot = app.tenant(7);
    app.post(
        &format!("/api/admin/tenants/{pilot}/enable-multi-workspace"),
        None,
    )
    .await;
    let mut previous: std::collections::BTreeSet<String> = [pilot.clone()].into();
    for (phase, pct) in [("10%", 10), ("50%", 50)] {
        let res = app
            .post(&format!("/api/admin/flags/{FLAG}/advance"), None)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        assert!(
            res.json()["turned_off"].as_array().unwrap().is_empty(),
            "advancing never turns anyone off"
        );
        let mut target = flags::Target::percentage(flags::Percentage::new(pct).unwrap());
        target.pilots.insert(pilot.clone());
        let expected: std::collections::BTreeSet<String> = flags::cohort(FLAG, &target, &tenants)
            .into_iter()
            .map(str::to_string)
            .collect();
        let on: std::collections::BTreeSet<String> =
            sqlx::query_scalar("SELECT tenant_id FROM feature_flags WHERE key = $1 AND enabled AND tenant_id IS NOT NULL")
                .bind(FLAG)
                .fetch_all(&pool)
                .await
                .unwrap()
                .into_iter()
                .collect();
        assert_eq!(
            on, expected,
            "{phase}: the materialised rows are the flags cohort"
        );
        assert!(previous.is_subset(&on));
        previous = on;
        let flag = app.get(&format!("/api/admin/flags/{FLAG}")).await.json();
        assert_eq!(flag["rollout"]["phase"], phase);
    }
    // A tenant created during the 50% phase gets the phase's answer for its bucket.
    for i in 0..10 {
        let id = format!("late-tenant-{i}");
        let res = app
            .post(
                "/api/admin/tenants",
                Some(json!({"id": id, "name": format!("Late {i}"), "plan": "pro"})),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        let expected = flags::bucket(FLAG, &id) <= 50;
        assert_eq!(
            app.features(&app.server, Some(&id)).await.json(),
            json!({ FLAG: expected }),
            "{id}"
        );
    }
    // 100% is the seed's "Enable Globally": the global row.
    app.post(&format!("/api/admin/flags/{FLAG}/advance"), None)
        .await;
    let global: bool = sqlx::query_scalar(
        "SELECT enabled FROM feature_flags WHERE key = $1 AND tenant_id IS NULL",
    )
    .bind(FLAG)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(global);
    assert_error(
        &app.post(&format!("/api/admin/flags/{FLAG}/advance"), None)
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
    );
    // One rung down: back to 50%, global row off again.
    let res = rollback(&app, Some("previous")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(!res.json()["turned_off"].as_array().unwrap().is_empty());
    let global: bool = sqlx::query_scalar(
        "SELECT enabled FROM feature_flags WHERE key = $1 AND tenant_id IS NULL",
    )
    .bind(FLAG)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!global);
    // Archiving a tenant makes it unknown: OFF.
    let on_tenant = previous.iter().next().unwrap().clone();
    let res = app
        .call(
            Method::DELETE,
            &format!("/api/admin/tenants/{on_tenant}"),
            Some(&app.admin),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.features(&app.server, Some(&on_tenant)).await.json(),
        json!({ FLAG: false })
    );
}
