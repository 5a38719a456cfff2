//! Approvals: a second person approves exactly the change asked for.

use axum::http::{Method, StatusCode};
use serde_json::json;
use server::auth::Scope;
use sqlx::PgPool;

use crate::helpers::{
    approve_as, assert_error, audit_count, phase, satisfy_pilot_gates, says, token, TestApp, FLAG,
};

/// "A second person approves" compares people, not token names: a token minted over REST by the
/// requesting token (directly or down a chain) acts for the same person and is refused; a token
/// made separately by the CLI is another person and approves.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_token_cannot_approve_a_change_of_the_token_that_minted_it(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let other = token(&pool, "cli-approver", Scope::Admin, None).await;
    app.state.live.tokens.reload(&pool).await.unwrap();
    let plan_uri = format!("/api/admin/flags/{FLAG}/plan");
    let mint = |by: String, name: &'static str| {
        let app = &app;
        async move {
            let res = app
                .call(
                    Method::POST,
                    "/api/admin/tokens",
                    Some(&by),
                    &[],
                    Some(json!({"name": name, "scope": "admin"})),
                )
                .await;
            assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
            let j = res.json();
            // The CLI-made admin token is its own person; what it mints acts for it.
            assert_eq!(j["owner"], "token:admin", "{}", res.text);
            j["token"].as_str().unwrap().to_string()
        }
    };
    let minted = mint(app.admin.clone(), "minted").await;
    let grandchild = mint(minted.clone(), "minted-by-minted").await;

    // The admin token asks; neither its child nor its grandchild may approve.
    let req = app.post(&format!("{plan_uri}/requests"), None).await;
    assert_eq!(req.status, StatusCode::CREATED, "{}", req.text);
    assert_eq!(req.json()["requested_by_person"], "token:admin");
    let approve = format!("{plan_uri}/requests/{}/approve", req.json()["id"]);
    for by in [&minted, &grandchild, &app.admin] {
        let res = app.call(Method::POST, &approve, Some(by), &[], None).await;
        assert_error(&res, StatusCode::FORBIDDEN, "forbidden");
        says(&res, "a second user must approve");
    }
    // A token the CLI made separately is another person.
    let res = app
        .call(Method::POST, &approve, Some(&other), &[], None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["approved_by"], "token:cli-approver");

    // The other way round: the minted token asks, its maker may not approve.
    let req = app
        .call(
            Method::POST,
            &format!("{plan_uri}/requests"),
            Some(&minted),
            &[],
            None,
        )
        .await;
    assert_eq!(req.status, StatusCode::CREATED, "{}", req.text);
    assert_eq!(req.json()["requested_by"], "token:minted");
    let approve = format!("{plan_uri}/requests/{}/approve", req.json()["id"]);
    let res = app.post(&approve, None).await;
    assert_error(&res, StatusCode::FORBIDDEN, "forbidden");
    let res = app
        .call(Method::POST, &approve, Some(&other), &[], None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
}

/// With the gates met, a same-phase widening goes through without an override; with approvals
/// required it needs a second person's approval of exactly that change, which a request for the
/// per-tenant switch (or a rollout) provides, and which any other edit voids.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_widening_with_its_gates_met_and_approved_goes_through(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let approver = token(&pool, "second", Scope::Admin, None).await;
    app.state.live.tokens.reload(&pool).await.unwrap();
    let plan_uri = format!("/api/admin/flags/{FLAG}/plan");
    let (a, b) = (app.tenant(1), app.tenant(2));
    // No gates, approvals required.
    let res = app
        .call(
            Method::PUT,
            &format!("{plan_uri}/settings"),
            Some(&app.admin),
            &[],
            Some(json!({"approvals_required": true, "approver_roles": ["admin"], "auto_advance": false, "gates": []})),
        )
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let seed_curl = |t: String| {
        let app = &app;
        async move {
            app.post(
                &format!("/api/admin/tenants/{t}/enable-multi-workspace"),
                None,
            )
            .await
        }
    };
    let res = seed_curl(a.clone()).await;
    assert_error(&res, StatusCode::CONFLICT, "gates_unmet");
    assert!(res.text.contains("not approved"), "{}", res.text);
    // Ask for exactly this change; the asker cannot approve it, a second admin can.
    let req = app
        .post(
            &format!("{plan_uri}/requests"),
            Some(json!({"tenant": {"id": a}})),
        )
        .await;
    assert_eq!(req.status, StatusCode::CREATED, "{}", req.text);
    let req = req.json();
    assert_eq!(req["turned_on"], 1);
    assert_eq!(req["change"]["tenant"]["tenant"], json!(a.clone()));
    let approve = format!("{plan_uri}/requests/{}/approve", req["id"]);
    assert_error(
        &app.post(&approve, None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let res = app
        .call(Method::POST, &approve, Some(&approver), &[], None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    // The approval is for tenant a only: b is still refused.
    assert_error(
        &seed_curl(b.clone()).await,
        StatusCode::CONFLICT,
        "gates_unmet",
    );
    let res = seed_curl(a.clone()).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_on"], json!([a.clone()]));
    let applied: bool =
        sqlx::query_scalar("SELECT applied_at IS NOT NULL FROM change_requests WHERE id = $1")
            .bind(req["id"].as_i64().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(applied);
    // A request for a rollout, voided by an edit in between.
    let widen = json!({"rollout": {"phase": "pilot", "pilots": [a.clone(), b.clone()]}});
    let req = app
        .post(&format!("{plan_uri}/requests"), Some(widen))
        .await
        .json();
    app.call(
        Method::PUT,
        &format!("/api/admin/tenants/{a}/flags/{FLAG}"),
        Some(&app.admin),
        &[],
        Some(json!({"enabled": false})),
    )
    .await;
    let res = approve_as(&app, &req["id"], &approver).await;
    assert_error(&res, StatusCode::CONFLICT, "conflict");
    assert!(res.text.contains("stale"), "{}", res.text);
    // A change that turns nobody on needs no approval, and asking for one says so.
    let res = app
        .post(
            &format!("{plan_uri}/requests"),
            Some(json!({"tenant": {"id": b, "enabled": false}})),
        )
        .await;
    assert_error(&res, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable");
    // Without approvals, the same-phase widening passes at once.
    app.ungate(FLAG).await;
    let res = seed_curl(b.clone()).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_on"], json!([b.clone()]));
    // Reading the plan never wrote it: the first write (the settings above) stored it, audited.
    assert_eq!(audit_count(&pool, "plan.create").await, 1);
}

/// The README's runbook: the seed's pilot command is refused until the pilot gates hold and the
/// exact change is approved, then works as the plan writes it.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_seeds_pilot_command_works_after_the_prerequisites(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let approver = token(&pool, "second", Scope::Admin, None).await;
    app.state.live.tokens.reload(&pool).await.unwrap();
    let plan_uri = format!("/api/admin/flags/{FLAG}/plan");
    let a = app.tenant(4);
    // Reading the plan writes nothing.
    let plan = app.get(&plan_uri).await.json();
    assert_eq!(plan["version"], 0);
    assert_eq!(audit_count(&pool, "plan.create").await, 0);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM rollout_plans")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    let curl = format!("/api/admin/tenants/{a}/enable-multi-workspace");
    assert_error(
        &app.post(&curl, None).await,
        StatusCode::CONFLICT,
        "gates_unmet",
    );
    // The dashboard lists exactly what advancing is refused for.
    let flags = store::flags::list(&pool).await.unwrap();
    let dash = store::rollout::next_gates(&pool, &flags, chrono::Utc::now())
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.key == FLAG)
        .unwrap();
    let refusal = app
        .post(&format!("/api/admin/flags/{FLAG}/advance"), None)
        .await
        .json();
    assert_eq!(json!(dash.unmet_text()), refusal["unmet"]);
    satisfy_pilot_gates(&app).await;
    let res = app.post(&curl, None).await;
    assert_error(&res, StatusCode::CONFLICT, "gates_unmet");
    assert_eq!(
        res.json()["unmet"],
        json!(["not approved: this exact change needs the approval of a second user (product_owner or admin)"])
    );
    let req = app
        .post(
            &format!("{plan_uri}/requests"),
            Some(json!({"tenant": {"id": a}})),
        )
        .await
        .json();
    let res = approve_as(&app, &req["id"], &approver).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let res = app.post(&curl, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_on"], json!([a.clone()]));
    assert_eq!(phase(&app).await, "pilot");
    assert_eq!(
        app.features(&app.server, Some(&a)).await.json(),
        json!({ FLAG: true })
    );
}
