//! Rollout plans: ticks and sign-offs, gated and approved advances, automatic advance.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use server::auth::Scope;
use sqlx::PgPool;

use crate::helpers::{
    approve_as, assert_error, audit_count, phase, rollback, satisfy, satisfy_pilot_gates, token,
    TestApp, FLAG,
};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn plan_gates_follow_ticks_and_signoffs(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let uri = format!("/api/admin/flags/{FLAG}/plan");
    let get = || async { app.get(&uri).await };

    // A new plan is the seed's: its checklists and its eight sign-offs; entering pilot needs the
    // prerequisites and the smoke test ticked and three milestones signed.
    let res = get().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let plan = res.json();
    assert_eq!(plan["document"]["milestones"].as_array().unwrap().len(), 8);
    assert_eq!(plan["next"], "pilot");
    let kinds: Vec<String> = plan["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "unticked").count(),
        10,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "unsigned").count(),
        3,
        "{kinds:?}"
    );
    assert!(plan["unmet_text"][0]
        .as_str()
        .unwrap()
        .starts_with("not ticked: Prerequisites"));

    // Tick every item the gate names, sign the three milestones: the gate holds.
    for checklist in plan["document"]["checklists"].as_array().unwrap() {
        let name = checklist["name"].as_str().unwrap();
        if name != "Prerequisites" && name != "Smoke Test (Existing Features)" {
            continue;
        }
        for item in checklist["items"].as_array().unwrap() {
            let res = app
                .call(
                    Method::POST,
                    &format!("{uri}/ticks"),
                    Some(&app.admin),
                    &[],
                    Some(json!({"checklist": name, "item": item, "note": "checked in staging"})),
                )
                .await;
            assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        }
    }
    for m in ["Code deployed", "Migrations applied", "Smoke tests passed"] {
        let res = app
            .call(
                Method::POST,
                &format!("{uri}/signoffs"),
                Some(&app.admin),
                &[],
                Some(json!({"milestone": m})),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        assert_eq!(res.json()["role"], "admin");
    }
    // What is left is the second user's approval of the exact change.
    assert_eq!(
        get().await.json()["unmet"],
        json!([{"kind": "approval", "roles": ["product_owner", "admin"]}])
    );

    // Unticking brings the gate back; the history keeps both rows.
    let res = app
        .call(
            Method::POST,
            &format!("{uri}/ticks"),
            Some(&app.admin),
            &[],
            Some(json!({"checklist": "Prerequisites", "item": "Rollback tested in staging", "ticked": false})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let unmet = get().await.json()["unmet"].clone();
    assert_eq!(unmet.as_array().unwrap().len(), 2, "{unmet}");
    assert_eq!(unmet[0]["kind"], "unticked", "{unmet}");
    let history: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM plan_ticks WHERE item = 'Rollback tested in staging'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(history, 2);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action IN ('plan.tick', 'plan.signoff')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 10 + 3 + 1);

    // Bad input is refused with the reason, nothing recorded.
    let res = app
        .call(
            Method::POST,
            &format!("{uri}/ticks"),
            Some(&app.admin),
            &[],
            Some(json!({"checklist": "Prerequisites", "item": "nope"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    assert!(res.text.contains("no item"), "{}", res.text);
    let res = app
        .call(
            Method::POST,
            &format!("{uri}/signoffs"),
            Some(&app.admin),
            &[],
            Some(json!({"milestone": "Moon landing"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    let res = app
        .call(
            Method::PUT,
            &uri,
            Some(&app.admin),
            &[],
            Some(json!({"markdown": "just words"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    assert!(res.text.contains("found no checklist"), "{}", res.text);
    let res = app.get("/api/admin/flags/no_such_flag/plan").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = app
        .call(Method::GET, &uri, Some(&app.server), &[], None)
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    // Importing a plan replaces the document; the gates now name a checklist it lacks.
    let res = app
        .call(
            Method::PUT,
            &uri,
            Some(&app.admin),
            &[],
            Some(json!({"markdown": "## Prerequisites\n- [ ] Only this\n\n| Milestone | Owner |\n|---|---|\n| Code deployed | DevOps |\n"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let plan = get().await.json();
    assert_eq!(plan["document"]["checklists"].as_array().unwrap().len(), 1);
    assert!(plan["unmet"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["kind"] == "missing_checklist"));
    assert_eq!(plan["version"], 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn advance_is_gated_approved_and_overridable(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let approver = token(&pool, "approver", Scope::Admin, None).await;
    app.state.live.tokens.reload(&pool).await.unwrap();
    let plan_uri = format!("/api/admin/flags/{FLAG}/plan");
    let advance = format!("/api/admin/flags/{FLAG}/advance");
    let pilot = app.tenant(5);

    // The seed's pilot command on a flag whose pilot gates do not hold: refused with the list,
    // nothing changes.
    let res = app
        .post(
            &format!("/api/admin/tenants/{pilot}/enable-multi-workspace"),
            None,
        )
        .await;
    assert_error(&res, StatusCode::CONFLICT, "gates_unmet");
    let unmet: Vec<String> = serde_json::from_value(res.json()["unmet"].clone()).unwrap();
    assert!(
        unmet.iter().any(|u| u == "not signed: Smoke tests passed"),
        "{unmet:?}"
    );
    assert!(
        unmet
            .iter()
            .any(|u| u.starts_with("not ticked: Prerequisites")),
        "{unmet:?}"
    );
    assert_eq!(phase(&app).await, "off");
    assert_eq!(
        app.features(&app.server, Some(&pilot)).await.json(),
        json!({ FLAG: false })
    );
    assert_eq!(audit_count(&pool, "rollout.apply").await, 0);

    // Gates held: only the approval is missing.
    satisfy_pilot_gates(&app).await;
    let res = app.post(&advance, None).await;
    assert_error(&res, StatusCode::CONFLICT, "gates_unmet");
    assert_eq!(
        res.json()["unmet"],
        json!(["not approved: this exact change needs the approval of a second user (product_owner or admin)"])
    );

    // A request binds to the hash of the exact change; the requester cannot approve it.
    let req = app.post(&format!("{plan_uri}/requests"), None).await;
    assert_eq!(req.status, StatusCode::CREATED, "{}", req.text);
    let req = req.json();
    let plan = app.get(&plan_uri).await.json();
    assert_eq!(req["change_hash"], plan["proposal"]["hash"]);
    assert_eq!(req["to_phase"], "pilot");
    let approve = format!("{plan_uri}/requests/{}/approve", req["id"]);
    assert_error(
        &app.post(&approve, None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // Any edit voids it: a DBA's raw SQL turns a tenant on, the change is no longer the same.
    sqlx::query(
        "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('multi_workspace_enabled', $1, true)",
    )
    .bind(app.tenant(9))
    .execute(&pool)
    .await
    .unwrap();
    let res = app
        .call(Method::POST, &approve, Some(&approver), &[], None)
        .await;
    assert_error(&res, StatusCode::CONFLICT, "conflict");
    assert!(res.text.contains("stale"), "{}", res.text);
    sqlx::query(
        "DELETE FROM feature_flags WHERE key = 'multi_workspace_enabled' AND tenant_id = $1",
    )
    .bind(app.tenant(9))
    .execute(&pool)
    .await
    .unwrap();
    // Undoing it is an edit too (the row trigger bumps the version): ask again, then a second
    // token approves.
    let req = app.post(&format!("{plan_uri}/requests"), None).await.json();
    let approve = format!("{plan_uri}/requests/{}/approve", req["id"]);
    let res = app
        .call(Method::POST, &approve, Some(&approver), &[], None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["approved_by"], "token:approver");
    assert_error(
        &app.call(Method::POST, &approve, Some(&approver), &[], None)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    // An edit of the flag after the approval voids it too (the version is in the hash).
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/flags/{FLAG}/rollout"),
            Some(&app.admin),
            &[],
            Some(json!({"phase": "off", "pilots": [pilot.clone()]})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_error(
        &app.post(&advance, None).await,
        StatusCode::CONFLICT,
        "gates_unmet",
    );
    let req = app.post(&format!("{plan_uri}/requests"), None).await.json();
    let res = approve_as(&app, &req["id"], &approver).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let res = app.post(&advance, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_on"], json!([pilot.clone()]));
    assert_eq!(phase(&app).await, "pilot");
    let applied: bool =
        sqlx::query_scalar("SELECT applied_at IS NOT NULL FROM change_requests WHERE id = $1")
            .bind(req["id"].as_i64().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(applied);

    // Into 10%: the pilot's 24 h window has not elapsed; skipping to 50% is refused too.
    satisfy(
        &app,
        &["Monitor Pilot (24-72 hours)"],
        &["Pilot enabled", "Pilot validated"],
    )
    .await;
    let res = app.post(&advance, None).await;
    assert_error(&res, StatusCode::CONFLICT, "gates_unmet");
    assert!(
        res.json()["unmet"][0]
            .as_str()
            .unwrap()
            .starts_with("monitoring window not elapsed: 2"),
        "{}",
        res.text
    );
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/flags/{FLAG}/rollout"),
            Some(&app.admin),
            &[],
            Some(json!({"phase": "50%", "pilots": [pilot.clone()]})),
        )
        .await;
    assert_error(&res, StatusCode::CONFLICT, "gates_unmet");
    assert_eq!(phase(&app).await, "pilot");
    // Break glass: an admin passes the gates with a written reason, audited with what it passed.
    let res = app
        .post(
            &advance,
            Some(json!({"override_reason": "incident 4711: the pilot tenant needs it today"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(phase(&app).await, "10%");
    let (reason, passed): (String, Value) = sqlx::query_as(
        "SELECT after->>'reason', after->'unmet' FROM audit_log WHERE action = 'gate.override' AND flag_key = $1",
    )
    .bind(FLAG)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(reason.starts_with("incident 4711"));
    assert!(passed.to_string().contains("monitoring window"), "{passed}");

    // Rollback is never gated.
    let res = rollback(&app, Some("previous")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(phase(&app).await, "pilot");
    let res = rollback(&app, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(phase(&app).await, "off");

    // Bad settings are refused with the reason.
    let res = app
        .call(
            Method::PUT,
            &format!("{plan_uri}/settings"),
            Some(&app.admin),
            &[],
            Some(json!({"approvals_required": true, "approver_roles": ["wizard"], "auto_advance": false})),
        )
        .await;
    assert_error(&res, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable");
    assert!(res.text.contains("wizard"), "{}", res.text);
    let res = app
        .call(
            Method::PUT,
            &format!("{plan_uri}/contacts"),
            Some(&app.admin),
            &[],
            Some(json!({"contacts": [{"role": "On-call Engineer", "contact": "  "}]})),
        )
        .await;
    assert_error(&res, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable");
    let res = app
        .call(
            Method::PUT,
            &format!("{plan_uri}/contacts"),
            Some(&app.admin),
            &[],
            Some(json!({"contacts": [{"role": "On-call Engineer", "contact": "ops@example.com, +1 555 0100"}]})),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let plan = app.get(&plan_uri).await.json();
    assert_eq!(
        plan["document"]["contacts"],
        json!([{"role": "On-call Engineer", "contact": "ops@example.com, +1 555 0100"}])
    );
    assert_eq!(audit_count(&pool, "plan.contacts").await, 1);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn automatic_advance_waits_for_every_gate_on_the_injected_clock(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let res = app
        .call(
            Method::PUT,
            &format!("/api/admin/flags/{FLAG}/plan/settings"),
            Some(&app.admin),
            &[],
            Some(json!({"approvals_required": false, "approver_roles": ["admin"], "auto_advance": true})),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let now = chrono::Utc::now();
    // Gates of the pilot unmet: nothing happens, however late it is.
    let moved = store::rollout::auto_advance(&pool, now + chrono::Duration::days(30))
        .await
        .unwrap();
    assert!(moved.is_empty(), "{moved:?}");
    satisfy_pilot_gates(&app).await;
    app.post(
        &format!(
            "/api/admin/tenants/{}/enable-multi-workspace",
            app.tenant(2)
        ),
        None,
    )
    .await;
    assert_eq!(phase(&app).await, "pilot");
    satisfy(
        &app,
        &["Monitor Pilot (24-72 hours)"],
        &["Pilot enabled", "Pilot validated"],
    )
    .await;
    // 23 hours into the pilot: the window holds it back.
    let moved = store::rollout::auto_advance(&pool, now + chrono::Duration::hours(23))
        .await
        .unwrap();
    assert!(moved.is_empty(), "{moved:?}");
    assert_eq!(phase(&app).await, "pilot");
    // 25 hours, but a guard is in alert (and the others were never read): still held back.
    let at = now + chrono::Duration::hours(25);
    let reading = |level, value: f64| flags::guard::Reading {
        level,
        value: Some(value),
        others: None,
        detail: format!("{value}"),
    };
    store::guards::record(
        &pool,
        FLAG,
        "api_error_rate",
        &reading(flags::guard::Level::Alert, 0.02),
        at,
    )
    .await
    .unwrap();
    assert!(store::rollout::auto_advance(&pool, at)
        .await
        .unwrap()
        .is_empty());
    let plan = app
        .get(&format!("/api/admin/flags/{FLAG}/plan"))
        .await
        .json();
    let unmet = plan["unmet_text"].to_string();
    assert!(
        unmet.contains("guard not ok: api_error_rate — alert: 0.02"),
        "{unmet}"
    );
    assert!(
        unmet.contains("guard not ok: p99_latency — no reading yet"),
        "{unmet}"
    );
    // Every guard ok: every gate holds, Tenantry advances and says so in the audit log.
    for g in flags::guard::seed_guards() {
        store::guards::record(
            &pool,
            FLAG,
            &g.name,
            &reading(flags::guard::Level::Ok, 0.0),
            at,
        )
        .await
        .unwrap();
    }
    let moved = store::rollout::auto_advance(&pool, now + chrono::Duration::hours(25))
        .await
        .unwrap();
    assert_eq!(moved, [(FLAG.to_string(), "10%".parse().unwrap())]);
    assert_eq!(phase(&app).await, "10%");
    let (actor, source): (String, String) = sqlx::query_as(
        "SELECT actor, source FROM audit_log WHERE action = 'rollout.apply' AND flag_key = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(FLAG)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (actor.as_str(), source.as_str()),
        ("tenantry:auto-advance", "system")
    );
    // The next phase starts its own window: at once, nothing more.
    let moved = store::rollout::auto_advance(&pool, now + chrono::Duration::hours(26))
        .await
        .unwrap();
    assert!(moved.is_empty());
}

/// A settings body with only the gates (the README's "shorten the windows for a demo") changes
/// the gates and keeps the approvals, the approvers, the automation and the alert action.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_partial_settings_body_keeps_what_it_does_not_name(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let uri = format!("/api/admin/flags/{FLAG}/plan/settings");
    let res = app.put(&uri, json!({"approvals_required": true, "approver_roles": ["qa", "admin"], "on_alert": "previous"})).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let plan_uri = format!("/api/admin/flags/{FLAG}/plan");
    let mut gates = app.get(&plan_uri).await.json()["gates"].clone();
    for g in gates.as_array_mut().unwrap() {
        g["min_window_hours"] = json!(0);
    }
    let res = app.put(&uri, json!({"gates": gates})).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let plan = app.get(&plan_uri).await.json();
    assert!(plan["gates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["min_window_hours"] == 0));
    assert_eq!(plan["settings"]["approvals_required"], true);
    assert_eq!(plan["settings"]["approver_roles"], json!(["qa", "admin"]));
    assert_eq!(plan["settings"]["on_alert"], "previous");
    // A bad value is refused and changes nothing.
    let res = app.put(&uri, json!({"approver_roles": []})).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    assert_eq!(
        app.get(&plan_uri).await.json()["settings"]["approver_roles"],
        json!(["qa", "admin"])
    );
}
