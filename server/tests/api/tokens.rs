//! Machine tokens and their scopes.

use axum::http::{Method, StatusCode};
use serde_json::json;
use server::auth::Scope;
use sqlx::PgPool;

use crate::helpers::{assert_error, token, TestApp};

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn tokens_and_scopes(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let a = app.tenant(1);
    let tenant_token = token(&pool, "tenant-a", Scope::Tenant, Some(&a)).await;
    app.state.live.tokens.reload(&pool).await.unwrap();

    assert_error(
        &app.call(Method::GET, "/api/features", None, &[], None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.features("rg_admin_not-a-real-token", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.call(
            Method::GET,
            "/api/admin/flags",
            Some(&tenant_token),
            &[],
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.call(
            Method::GET,
            "/api/admin/flags",
            Some(&app.server),
            &[],
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.features(&app.server, None).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &app.features(&tenant_token, Some(&app.tenant(2))).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.call(
            Method::GET,
            "/api/client/snapshot",
            Some(&tenant_token),
            &[],
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    let basic = app
        .call(
            Method::GET,
            "/api/features",
            None,
            &[("authorization", "Basic dXNlcjpwdw==")],
            None,
        )
        .await;
    assert_error(&basic, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(basic.json()["message"].as_str().unwrap().contains("Bearer"));
    assert_eq!(basic.headers["www-authenticate"], "Bearer");

    // X-API-Key works like Bearer.
    let res = app
        .call(
            Method::GET,
            &format!("/api/features?tenant={a}"),
            None,
            &[("x-api-key", app.server.as_str())],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);

    // Created through the API: shown once, stored hashed, listed without the secret, revocable.
    let res = app
        .post(
            "/api/admin/tokens",
            Some(json!({"name": "ci", "scope": "server"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let created = res.json();
    let secret = created["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("rg_server_"));
    assert_eq!(app.features(&secret, Some(&a)).await.status, StatusCode::OK);
    let listed = app.get("/api/admin/tokens").await;
    assert!(!listed.text.contains(&secret));
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM api_tokens WHERE name = 'ci'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, server::auth::hash_secret(&secret).to_vec());
    let dup = app
        .post(
            "/api/admin/tokens",
            Some(json!({"name": "ci", "scope": "server"})),
        )
        .await;
    assert_error(&dup, StatusCode::CONFLICT, "conflict");
    let id = created["id"].as_i64().unwrap();
    let res = app
        .call(
            Method::DELETE,
            &format!("/api/admin/tokens/{id}"),
            Some(&app.admin),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_error(
        &app.features(&secret, Some(&a)).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let bad_scope = app
        .post(
            "/api/admin/tokens",
            Some(json!({"name": "x", "scope": "root"})),
        )
        .await;
    assert_error(
        &bad_scope,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
    );
    let no_tenant = app
        .post(
            "/api/admin/tokens",
            Some(json!({"name": "y", "scope": "tenant"})),
        )
        .await;
    assert_error(
        &no_tenant,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
    );
}
