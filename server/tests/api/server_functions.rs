//! The web app's server functions check roles on the server.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::helpers::{form, says, sign_in, TestApp, FLAG};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn server_functions_check_roles_on_the_server(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    app.ungate(FLAG).await;
    let body = json!({"key": FLAG, "rollout": {"phase": "100%", "pilots": [], "constraints": []}, "version": 1});
    // Anonymous: refused.
    let res = app
        .call(
            Method::POST,
            "/rpc/save_rollout",
            None,
            &[("accept", "application/json")],
            Some(body.clone()),
        )
        .await;
    assert!(
        !res.status.is_success() && res.text.contains("Unauthenticated"),
        "{} {}",
        res.status,
        res.text
    );
    // QA: refused, nothing changes.
    let qa = sign_in(&app, "quinn", "qa").await;
    let res = app
        .call(
            Method::POST,
            "/rpc/save_rollout",
            None,
            &[("cookie", &qa), ("accept", "application/json")],
            Some(body.clone()),
        )
        .await;
    assert!(
        !res.status.is_success() && res.text.contains("Forbidden"),
        "{} {}",
        res.status,
        res.text
    );
    let global: bool = sqlx::query_scalar(
        "SELECT enabled FROM feature_flags WHERE key = $1 AND tenant_id IS NULL",
    )
    .bind(FLAG)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!global);
    // A product owner with a stale version: conflict, nothing overwritten.
    let po = sign_in(&app, "paula", "product_owner").await;
    let version: i64 = sqlx::query_scalar("SELECT version FROM flags WHERE key = $1")
        .bind(FLAG)
        .fetch_one(&pool)
        .await
        .unwrap();
    let stale = json!({"key": FLAG, "rollout": {"phase": "100%", "pilots": [], "constraints": []}, "version": version - 1});
    let res = app
        .call(
            Method::POST,
            "/rpc/save_rollout",
            None,
            &[("cookie", &po), ("accept", "application/json")],
            Some(stale),
        )
        .await;
    assert!(
        !res.status.is_success() && res.text.contains("Conflict"),
        "{} {}",
        res.status,
        res.text
    );
    // The right version: saved, audited under the person's name.
    let ok = json!({"key": FLAG, "rollout": {"phase": "100%", "pilots": [], "constraints": []}, "version": version});
    let res = app
        .call(
            Method::POST,
            "/rpc/save_rollout",
            None,
            &[("cookie", &po), ("accept", "application/json")],
            Some(ok),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["turned_on"].as_array().unwrap().len(), 40);
    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM audit_log WHERE action = 'rollout.apply' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(actor, "paula");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn plan_server_functions_refuse_what_the_role_may_not(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let qa = sign_in(&app, "quinn", "qa").await;
    let po = sign_in(&app, "petra", "product_owner").await;
    let po2 = sign_in(&app, "paul", "product_owner").await;
    let viewer = sign_in(&app, "vera", "viewer").await;
    let key = format!("key={FLAG}");

    // QA ticks a smoke-test item and signs "Smoke tests passed" — with the rest of its checklists
    // still open, only when confirming it (the open items are named, then recorded).
    let res = form(&app, &qa, "plan_tick", &format!("{key}&checklist=Smoke+Test+%28Existing+Features%29&item=Login+works&ticked=true&note=ok+on+staging")).await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    let res = form(
        &app,
        &qa,
        "plan_sign",
        &format!("{key}&milestone=Smoke+tests+passed&signed=true"),
    )
    .await;
    assert!(!res.status.is_success(), "{} {}", res.status, res.text);
    assert!(res.text.contains("open checklist item"), "{}", res.text);
    assert!(res.text.contains("Dashboard loads"), "{}", res.text);
    let res = form(
        &app,
        &qa,
        "plan_sign",
        &format!("{key}&milestone=Smoke+tests+passed&signed=true&incomplete=confirmed"),
    )
    .await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    let open: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT after -> 'signed_with_open_items' FROM audit_log WHERE action = 'plan.signoff' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(open.unwrap().as_array().unwrap().len() >= 9);
    // …but not a Product milestone, nor advance, nor change settings.
    let res = form(
        &app,
        &qa,
        "plan_sign",
        &format!("{key}&milestone=Pilot+enabled&signed=true"),
    )
    .await;
    assert!(
        !res.status.is_success() && res.text.contains("signed by its owner"),
        "{} {}",
        res.status,
        res.text
    );
    let res = form(&app, &qa, "plan_advance", &key).await;
    says(&res, "Forbidden");
    let res = form(
        &app,
        &qa,
        "plan_settings",
        &format!("{key}&approver_roles=qa"),
    )
    .await;
    says(&res, "Forbidden");
    // A viewer ticks nothing; anonymous does nothing.
    let res = form(
        &app,
        &viewer,
        "plan_tick",
        &format!("{key}&checklist=Prerequisites&item=x&ticked=true"),
    )
    .await;
    says(&res, "Forbidden");
    let res = form(&app, "x=y", "plan_request", &key).await;
    says(&res, "Unauthenticated");
    // A product owner may not break glass.
    let res = form(
        &app,
        &po,
        "plan_advance",
        &format!("{key}&override_reason=because"),
    )
    .await;
    says(&res, "only an admin");
    // Nobody approves their own change; a second product owner may.
    let res = form(&app, &po, "plan_request", &key).await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    let id: i64 = sqlx::query_scalar("SELECT id FROM change_requests ORDER BY id DESC LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let res = form(&app, &po, "plan_approve", &format!("{key}&id={id}")).await;
    says(&res, "a second user must approve");
    let res = form(&app, &qa, "plan_approve", &format!("{key}&id={id}")).await;
    says(&res, "needs the role");
    let res = form(&app, &po2, "plan_approve", &format!("{key}&id={id}")).await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    // Gates still unmet (prerequisites): the advance is refused with the list.
    let res = form(&app, &po, "plan_advance", &key).await;
    says(&res, "not ticked: Prerequisites");
    // Every refusal left the plan as it was: one tick, one signature, one approval.
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM plan_ticks), (SELECT count(*) FROM plan_signoffs), \
                (SELECT count(*) FROM change_requests WHERE approved_by IS NOT NULL)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counts, (1, 1, 1));
    // The panel shows it, rendered on the server.
    let res = form(&app, &qa, "plan_panel", &key).await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    assert!(res.text.contains("Signed by quinn (qa)"), "{}", res.text);
    assert!(res.text.contains("ticked by quinn"), "{}", res.text);
    // An admin edits the guards on the page: bad JSON is refused with the reason, good JSON kept.
    let admin = sign_in(&app, "ada", "admin").await;
    let res = form(
        &app,
        &admin,
        "plan_settings",
        &format!("{key}&approver_roles=admin&guards=%5B%7B%22name%22"),
    )
    .await;
    says(&res, "guards:");
    let guards = "%5B%7B%22name%22%3A%22errors%22%2C%22title%22%3A%22Errors%22%2C%22query%22%3A%22sum(x)%22%2C%22warn%22%3A0.001%2C%22alert%22%3A0.01%2C%22direction%22%3A%22higher_is_worse%22%7D%5D";
    let res = form(
        &app,
        &admin,
        "plan_settings",
        &format!("{key}&approver_roles=admin&guards={guards}"),
    )
    .await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    let stored: Value = sqlx::query_scalar("SELECT guards FROM rollout_plans WHERE flag_key = $1")
        .bind(FLAG)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored[0]["name"], "errors");
}

/// Without JavaScript a plan form comes back to the flag page at its own card, and the card says
/// what happened — once, from the session, never from the address: a link with `?done=` claims
/// nothing.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn plan_forms_without_javascript_come_back_to_their_card(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let qa = sign_in(&app, "quinn", "qa").await;
    let post = |endpoint: &'static str, body: String| {
        let cookie = qa.clone();
        let app = &app;
        async move {
            app.raw(
                axum::http::Request::post(format!("/rpc/{endpoint}"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("accept", "text/html,application/xhtml+xml")
                    .header("referer", format!("http://localhost/flags/{FLAG}"))
                    .header("cookie", cookie)
                    .body(axum::body::Body::from(body))
                    .unwrap(),
            )
            .await
        }
    };
    let page = |to: String| {
        let cookie = qa.clone();
        let app = &app;
        async move {
            app.raw(
                axum::http::Request::get(to)
                    .header("accept", "text/html")
                    .header("cookie", cookie)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .text
        }
    };
    let res = post(
        "plan_tick",
        format!("key={FLAG}&checklist=Prerequisites&item=All+staging+tests+passed&ticked=true"),
    )
    .await;
    assert!(res.status.is_redirection(), "{} {}", res.status, res.text);
    let to = res.headers["location"].to_str().unwrap().to_string();
    assert_eq!(
        to,
        format!("/flags/{FLAG}?at=checklist-prerequisites#checklist-prerequisites")
    );
    let said = "Ticked “All staging tests passed”.";
    assert!(
        page(to.clone()).await.contains(said),
        "the card says what happened"
    );
    assert!(
        !page(to).await.contains(said),
        "once: a reload does not say it again"
    );
    let forged = page(format!(
        "/flags/{FLAG}?done=Approved+and+advanced&at=plan-gates"
    ))
    .await;
    assert!(
        !forged.contains("Approved and advanced"),
        "the address claims nothing"
    );
    // QA may not advance: refused, back at the gates with the reason in words.
    let res = post("plan_advance", format!("key={FLAG}")).await;
    assert!(res.status.is_redirection(), "{} {}", res.status, res.text);
    let to = res.headers["location"].to_str().unwrap().to_string();
    assert!(to.ends_with("#plan-gates"), "{to}");
    assert!(page(to).await.contains("data-testid=\"plan-error\""));
}
