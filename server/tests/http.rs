//! The server's HTTP surface over a real Postgres, through the real router (`oneshot`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use axum::{
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use serde_json::{json, Value};
use server::{auth::Scope, AppState};
use sqlx::PgPool;
use tower::ServiceExt;
use utoipa::OpenApi;

const FLAG: &str = "multi_workspace_enabled";

#[path = "support/prometheus.rs"]
mod prometheus;

struct TestApp {
    state: AppState,
    admin: String,
    server: String,
}

struct Res {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Res {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

fn options() -> LeptosOptions {
    LeptosOptions::builder().output_name("tenantry").build()
}

async fn token(pool: &PgPool, name: &str, scope: Scope, tenant: Option<&str>) -> String {
    let secret = server::auth::generate_secret(scope).unwrap();
    let actor = store::Actor::new("test", store::Source::Cli);
    server::tokens::create(pool, &actor, name, scope, tenant, None, &secret, None)
        .await
        .unwrap();
    secret
}

impl TestApp {
    async fn new(pool: PgPool) -> TestApp {
        store::demo::seed_tenants(&pool, 40).await.unwrap();
        let admin = token(&pool, "admin", Scope::Admin, None).await;
        let server = token(&pool, "server", Scope::Server, None).await;
        let state = AppState::new(options(), pool);
        state.live.refresh_all(&state.pool).await.unwrap();
        TestApp {
            state,
            admin,
            server,
        }
    }

    fn router(&self) -> Router {
        server::router(self.state.clone())
    }

    fn tenant(&self, n: usize) -> String {
        store::demo::demo_tenant(n).id
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Res {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.raw(req).await
    }

    /// Sends `req` as a browser on Tenantry's own origin would: with a `Host`, and with an
    /// `Origin` when it carries cookies and names none (tests of cross-site requests set their own).
    async fn raw(&self, mut req: Request<Body>) -> Res {
        let h = req.headers_mut();
        if !h.contains_key("host") {
            h.insert("host", "localhost".parse().unwrap());
        }
        if h.contains_key("cookie") && !h.contains_key("origin") && !h.contains_key("referer") {
            h.insert("origin", "http://localhost".parse().unwrap());
        }
        let res = self.router().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Res {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn features(&self, token: &str, tenant: Option<&str>) -> Res {
        let uri = match tenant {
            Some(t) => format!("/api/features?tenant={t}"),
            None => "/api/features".to_string(),
        };
        self.call(Method::GET, &uri, Some(token), &[], None).await
    }

    /// A plan without gates or approvals for `flag`: for tests of the rollout mechanics, not of
    /// the gates (which `advance_is_gated_approved_and_overridable` covers).
    async fn ungate(&self, flag: &str) {
        let res = self
            .call(
                Method::PUT,
                &format!("/api/admin/flags/{flag}/plan/settings"),
                Some(&self.admin),
                &[],
                Some(json!({"approvals_required": false, "approver_roles": [], "auto_advance": false, "gates": []})),
            )
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    }

    /// A GET with the admin token.
    async fn get(&self, uri: &str) -> Res {
        self.call(Method::GET, uri, Some(&self.admin), &[], None)
            .await
    }

    async fn post(&self, uri: &str, body: Option<Value>) -> Res {
        self.call(Method::POST, uri, Some(&self.admin), &[], body)
            .await
    }
}

/// The answer says `text` (the status and body are shown when it does not).
fn says(res: &Res, text: &str) {
    assert!(res.text.contains(text), "{} {}", res.status, res.text);
}

fn assert_error(res: &Res, status: StatusCode, code: &str) {
    assert_eq!(res.status, status, "{}", res.text);
    let j = res.json();
    assert_eq!(j["error"], code, "{}", res.text);
    assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        !res.text.contains("SELECT") && !res.text.contains("sqlx"),
        "internal details leak: {}",
        res.text
    );
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn health_is_ok_with_migration_counts_and_snapshot(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let res = app.call(Method::GET, "/api/health", None, &[], None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let json = res.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["database"], "ok");
    assert_eq!(json["migrations"]["pending"], 0);
    assert_eq!(
        json["migrations"]["applied"].as_u64().unwrap() as usize,
        store::MIGRATOR.iter().count()
    );
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["snapshot"]["tenants"], 40);
    assert!(json["snapshot"]["version"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn health_is_503_with_the_reason_when_the_database_is_away() {
    let pool = store::connect_lazy(
        "postgres://postgres@127.0.0.1:1/none",
        &store::PoolConfig {
            max_connections: 1,
            acquire_timeout: std::time::Duration::from_millis(500),
        },
    )
    .unwrap();
    let state = AppState::new(options(), pool);
    let res = server::router(state)
        .oneshot(
            Request::builder()
                .uri("/api/health")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let json: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(json["status"], "unavailable");
    let reason = json["database"].as_str().unwrap();
    assert!(reason.starts_with("unreachable: "), "{reason}");
    assert!(
        !reason.contains("postgres://"),
        "the reason leaks the connection string: {reason}"
    );
    assert!(json["migrations"].is_null());
}

async fn sign_in(app: &TestApp, username: &str, role: &str) -> String {
    let hash = infra::password::hash("correct horse battery").unwrap();
    let actor = store::Actor::new("test", store::Source::Cli);
    store::users::upsert(&app.state.pool, &actor, username, &hash, role, true)
        .await
        .unwrap();
    let res = app
        .raw(
            Request::post("/rpc/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .body(Body::from(format!(
                    "username={username}&password=correct+horse+battery"
                )))
                .unwrap(),
        )
        .await;
    assert!(
        res.status.is_success() || res.status.is_redirection(),
        "{} {}",
        res.status,
        res.text
    );
    let cookie = res.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_string()
}

/// The connection string of the test's own database, for the CLI binary.
async fn test_database_url(pool: &PgPool) -> String {
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    format!("{}/{db}", base.rsplit_once('/').unwrap().0)
}

/// Runs the `tenantry` binary against `url`; panics unless it succeeds. Returns its stdout.
fn tenantry(url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("TENANTRY_PASSWORD", "a long enough password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tenantry {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Posts the sign-in form (`password` form-encoded).
async fn log_in(app: &TestApp, username: &str, password: &str) -> Res {
    app.raw(
        Request::post("/rpc/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(Body::from(format!(
                "username={username}&password={password}"
            )))
            .unwrap(),
    )
    .await
}

/// What each session-authenticated door answers `cookie`: the audit CSV, the web change stream
/// (status only: it never ends), `whoami`, and a page (200, or a redirect to the sign-in).
async fn session_doors(app: &TestApp, cookie: &str) -> (StatusCode, StatusCode, Value, StatusCode) {
    let get = |uri: &'static str| {
        Request::get(uri)
            .header("host", "localhost")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap()
    };
    let csv = app.raw(get("/audit/export.csv")).await.status;
    let stream = app
        .router()
        .oneshot(get("/api/ui/stream"))
        .await
        .unwrap()
        .status();
    let who = form(app, cookie, "whoami", "").await.json();
    let page = app
        .router()
        .oneshot(get("/tenants"))
        .await
        .unwrap()
        .status();
    (csv, stream, who, page)
}

/// A disabled user, and every session made before a password or role reset (`user add
/// --replace`), `user disable` or `user sessions revoke`, is signed out on every door a session
/// opens: the audit CSV, the web change stream, server functions and pages.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sessions_end_when_the_user_is_disabled_reset_or_revoked(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let url = test_database_url(&pool).await;
    let ok = |d: &(StatusCode, StatusCode, Value, StatusCode), role: &str| {
        assert_eq!(d.0, StatusCode::OK, "CSV");
        assert_eq!(d.1, StatusCode::OK, "stream");
        assert_eq!(d.2["username"], "dora", "whoami");
        assert_eq!(d.2["role"], role, "whoami");
        assert_eq!(d.3, StatusCode::OK, "page");
    };
    let refused = |d: &(StatusCode, StatusCode, Value, StatusCode), why: &str| {
        // `/audit/…` is a page path too: the sign-in redirect comes first.
        assert!(
            d.0 == StatusCode::UNAUTHORIZED || d.0.is_redirection(),
            "CSV after {why}: {}",
            d.0
        );
        assert_eq!(d.1, StatusCode::UNAUTHORIZED, "stream after {why}");
        assert!(d.2.is_null(), "whoami after {why}: {}", d.2);
        assert!(d.3.is_redirection(), "page after {why}: {}", d.3);
    };

    // Disabled: every door closes, and signing in again is refused.
    let before = sign_in(&app, "dora", "viewer").await;
    ok(&session_doors(&app, &before).await, "viewer");
    tenantry(&url, &["user", "disable", "dora"]);
    refused(&session_doors(&app, &before).await, "user disable");
    let again = log_in(&app, "dora", "correct+horse+battery").await;
    says(&again, "Unknown user or wrong password");
    let listed = tenantry(&url, &["user", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("dora") && l.contains("disabled")),
        "{listed}"
    );
    // Enabled again: the old session stays ended.
    tenantry(&url, &["user", "enable", "dora"]);
    refused(&session_doors(&app, &before).await, "user enable");

    // A password and role reset ends the sessions made before it; the new one has the new role.
    let before = sign_in(&app, "dora", "viewer").await;
    ok(&session_doors(&app, &before).await, "viewer");
    tenantry(
        &url,
        &["user", "add", "dora", "--role", "admin", "--replace"],
    );
    refused(&session_doors(&app, &before).await, "user add --replace");
    let after = log_in(&app, "dora", "a+long+enough+password").await;
    let cookie = after.headers["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    ok(&session_doors(&app, &cookie).await, "admin");

    // Revoking the sessions ends them.
    tenantry(&url, &["user", "sessions", "revoke", "dora"]);
    refused(&session_doors(&app, &cookie).await, "user sessions revoke");

    // Each change is audited as the CLI.
    for action in ["user.disable", "user.enable", "user.sessions_revoke"] {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_log WHERE action = $1 AND source = 'cli' AND after->>'username' = 'dora'",
        )
        .bind(action)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(n, 1, "{action}");
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn tenant_page_is_server_rendered_for_signed_in_users_only(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let res = app
        .call(
            Method::GET,
            "/tenants",
            None,
            &[("accept", "text/html")],
            None,
        )
        .await;
    assert!(res.status.is_redirection(), "{} {}", res.status, res.text);
    assert_eq!(res.headers["location"], "/login?next=%2Ftenants");

    let wrong = app
        .raw(
            Request::post("/rpc/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .body(Body::from("username=nobody&password=whatever1"))
                .unwrap(),
        )
        .await;
    assert!(
        wrong.status.is_client_error() || wrong.status.is_server_error(),
        "{}",
        wrong.status
    );
    assert!(
        wrong.text.contains("Unknown user or wrong password"),
        "{}",
        wrong.text
    );
    assert!(!wrong.headers.contains_key("set-cookie"));

    let cookie = sign_in(&app, "vera", "viewer").await;
    let res = app
        .call(Method::GET, "/tenants", None, &[("cookie", &cookie)], None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.text.matches("data-testid=\"tenant-row\"").count(), 25);
    assert!(res.text.contains("Showing 1–25 of 40 tenants"));
    let first: String =
        sqlx::query_scalar("SELECT name FROM tenants ORDER BY lower(name), id LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(res.text.contains(&first));
    let res = app
        .call(Method::GET, "/no-such-page", None, &[], None)
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert!(res.text.contains("Page not found"));
}

/// Pages keep rendering while routers are built on another thread. Generating Leptos' route list
/// suppresses resource loads process-wide, and a resource first polled meanwhile waits forever
/// (leptos-rs/leptos#4773): a CI run hung on `/tenants` that way. `server::router` generates the
/// list once per process, so building routers no longer touches the flag.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn pages_render_while_routers_are_built(pool: PgPool) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let app = TestApp::new(pool).await;
    let cookie = sign_in(&app, "rita", "viewer").await;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let builder = {
        let (state, stop) = (app.state.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut built = 0_u32;
            while !stop.load(Ordering::Relaxed) {
                drop(server::router(state.clone()));
                built += 1;
            }
            built
        })
    };
    for round in 0..30 {
        let headers = [("cookie", cookie.as_str())];
        let page = app.call(Method::GET, "/tenants", None, &headers, None);
        let res = tokio::time::timeout(std::time::Duration::from_secs(10), page).await;
        let Ok(res) = res else {
            stop.store(true, Ordering::Relaxed);
            panic!("render {round} of /tenants did not finish within 10 s");
        };
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        assert_eq!(res.text.matches("data-testid=\"tenant-row\"").count(), 25);
    }
    stop.store(true, Ordering::Relaxed);
    let built = builder.join().unwrap();
    assert!(built > 30, "only {built} routers built alongside");
}

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

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn admin_errors_have_the_right_status(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.ungate(FLAG).await;
    let t = app.tenant(3);
    let malformed = app
        .raw(
            Request::post("/api/admin/tenants")
                .header("authorization", format!("Bearer {}", app.admin))
                .header("content-type", "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await;
    assert_error(&malformed, StatusCode::BAD_REQUEST, "bad_request");
    let rollout = format!("/api/admin/flags/{FLAG}/rollout");
    let cases: Vec<(Method, &str, Option<Value>, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/api/admin/tenants/nope/enable-multi-workspace",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PUT,
            "/api/admin/flags/nope/rollout",
            Some(json!({"phase": "10%"})),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::PUT,
            &rollout,
            Some(json!({"phase": "lots"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            Method::PUT,
            &rollout,
            Some(json!({"phase": "pilot", "pilots": ["ghost"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            Method::POST,
            "/api/admin/tenants",
            Some(json!({"id": t, "name": "Dup"})),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            Method::POST,
            "/api/admin/tenants",
            Some(json!({"id": "bad id!", "name": "X"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            Method::POST,
            "/api/admin/tenants",
            Some(json!({"id": "ok-id", "name": "X", "plan": "platinum"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            Method::POST,
            "/api/admin/flags",
            Some(json!({"key": "Bad Key"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        ),
        (
            Method::POST,
            "/api/admin/flags",
            Some(json!({"key": FLAG})),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            Method::GET,
            "/api/admin/tenants?per_page=0",
            None,
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (method, uri, body, status, code) in cases {
        let res = app.call(method, uri, Some(&app.admin), &[], body).await;
        assert_error(&res, status, code);
    }

    // Optimistic concurrency on tenants and flags.
    let got = app.get(&format!("/api/admin/tenants/{t}")).await;
    let tag = got.headers["etag"].to_str().unwrap().to_string();
    let ok = app
        .call(
            Method::PATCH,
            &format!("/api/admin/tenants/{t}"),
            Some(&app.admin),
            &[("if-match", &tag)],
            Some(json!({"plan": "enterprise"})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let stale = app
        .call(
            Method::PATCH,
            &format!("/api/admin/tenants/{t}"),
            Some(&app.admin),
            &[("if-match", &tag)],
            Some(json!({"plan": "free"})),
        )
        .await;
    assert_error(&stale, StatusCode::CONFLICT, "conflict");
    let flag = app.get(&format!("/api/admin/flags/{FLAG}")).await;
    let ftag = flag.headers["etag"].to_str().unwrap().to_string();
    app.post(&format!("/api/admin/flags/{FLAG}/advance"), None)
        .await;
    let stale = app
        .call(
            Method::PUT,
            &format!("/api/admin/flags/{FLAG}/rollout"),
            Some(&app.admin),
            &[("if-match", &ftag)],
            Some(json!({"phase": "50%"})),
        )
        .await;
    assert_error(&stale, StatusCode::CONFLICT, "conflict");
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

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn ofrep_single_and_bulk(pool: PgPool) {
    let app = TestApp::new(pool).await;
    app.ungate(FLAG).await;
    let a = app.tenant(4);
    app.post(
        &format!("/api/admin/tenants/{a}/enable-multi-workspace"),
        None,
    )
    .await;
    let eval = |body: Value, key: &str| {
        let uri = format!("/ofrep/v1/evaluate/flags/{key}");
        let server = app.server.clone();
        let app = &app;
        async move {
            app.call(Method::POST, &uri, Some(&server), &[], Some(body))
                .await
        }
    };
    let res = eval(json!({"context": {"targetingKey": a}}), FLAG).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let j = res.json();
    assert_eq!(
        (
            j["key"].as_str(),
            j["value"].as_bool(),
            j["reason"].as_str(),
            j["variant"].as_str()
        ),
        (Some(FLAG), Some(true), Some("TARGETING_MATCH"), Some("on"))
    );
    assert_eq!(j["metadata"]["tenantryReason"], "pilot");

    let res = eval(json!({"context": {"targetingKey": app.tenant(5)}}), FLAG).await;
    assert_eq!(res.json()["value"], false);
    assert_eq!(res.json()["reason"], "DEFAULT");

    let res = eval(json!({"context": {"targetingKey": a}}), "nope").await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.json()["errorCode"], "FLAG_NOT_FOUND");
    assert_eq!(res.json()["key"], "nope");
    let res = eval(json!({"context": {}}), FLAG).await;
    assert_eq!(
        (res.status, res.json()["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("TARGETING_KEY_MISSING"))
    );
    let res = eval(json!({"context": {"targetingKey": 42}}), FLAG).await;
    assert_eq!(res.json()["errorCode"], "INVALID_CONTEXT");
    let res = eval(json!({"context": "tenant"}), FLAG).await;
    assert_eq!(res.json()["errorCode"], "INVALID_CONTEXT");
    let res = app
        .raw(
            Request::post(format!("/ofrep/v1/evaluate/flags/{FLAG}"))
                .header("x-api-key", &app.server)
                .body(Body::from("{oops"))
                .unwrap(),
        )
        .await;
    assert_eq!(
        (res.status, res.json()["errorCode"].clone()),
        (StatusCode::BAD_REQUEST, json!("PARSE_ERROR"))
    );
    let res = app
        .call(
            Method::POST,
            &format!("/ofrep/v1/evaluate/flags/{FLAG}"),
            None,
            &[],
            Some(json!({"context": {"targetingKey": a}})),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);

    // Bulk with ETag / If-None-Match.
    let body = json!({"context": {"targetingKey": a}});
    let res = app
        .call(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(&app.server),
            &[],
            Some(body.clone()),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["flags"][0]["key"], FLAG);
    assert_eq!(res.json()["flags"][0]["value"], true);
    let tag = res.headers["etag"].to_str().unwrap().to_string();
    let res = app
        .call(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(&app.server),
            &[("if-none-match", &tag)],
            Some(body.clone()),
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);
    // Another tenant has another ETag; a change gives a new one.
    let other = app
        .call(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(&app.server),
            &[("if-none-match", &tag)],
            Some(json!({"context": {"targetingKey": app.tenant(6)}})),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    app.post(&format!("/api/admin/flags/{FLAG}/rollback"), None)
        .await;
    let res = app
        .call(
            Method::POST,
            "/ofrep/v1/evaluate/flags",
            Some(&app.server),
            &[("if-none-match", &tag)],
            Some(body),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["flags"][0]["value"], false);
    assert_eq!(res.json()["flags"][0]["reason"], "DISABLED");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn sdk_snapshot_stream_metrics_and_openapi(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let res = app
        .call(
            Method::GET,
            "/api/client/snapshot",
            Some(&app.server),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let snap = flags::Snapshot::from_json(res.text.as_bytes()).unwrap();
    assert_eq!(snap.tenants.len(), 40);
    let tag = res.headers["etag"].to_str().unwrap().to_string();
    assert_eq!(tag, format!("\"{}\"", snap.version));
    let res = app
        .call(
            Method::GET,
            "/api/client/snapshot",
            Some(&app.server),
            &[("if-none-match", &tag)],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_MODIFIED);

    let res = app
        .router()
        .oneshot(
            Request::get("/api/client/stream")
                .header("authorization", format!("Bearer {}", app.server))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let frame = tokio::time::timeout(std::time::Duration::from_secs(2), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(frame.data_ref().unwrap()).into_owned();
    assert!(
        text.contains("event: snapshot")
            && text.contains(&format!("{{\"version\":{}}}", snap.version)),
        "{text}"
    );

    app.features(&app.server, Some(&app.tenant(1))).await;
    app.get("/api/admin/tenants/nope").await;
    let metrics = app
        .call(Method::GET, "/metrics", None, &[], None)
        .await
        .text;
    assert!(
        metrics
            .contains("http_requests_total{path=\"/api/features\",method=\"GET\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("path=\"/api/admin/tenants/{id}\""),
        "route templates, not raw paths"
    );
    assert!(!metrics.contains("/api/admin/tenants/nope"));
    assert!(metrics.contains(
        "feature_flag_evaluations_total{flag=\"multi_workspace_enabled\",result=\"off\"}"
    ));
    assert!(metrics.contains("http_request_duration_seconds_bucket"));
    assert!(metrics.contains("tenantry_db_pool_connections"));

    let doc = app
        .call(Method::GET, "/api/openapi.json", None, &[], None)
        .await
        .json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/health",
        "/api/features",
        "/api/client/snapshot",
        "/api/client/stream",
        "/ofrep/v1/evaluate/flags",
        "/ofrep/v1/evaluate/flags/{key}",
        "/api/admin/tenants",
        "/api/admin/tenants/{id}",
        "/api/admin/tenants/{id}/flags/{key}",
        "/api/admin/tenants/{id}/enable-multi-workspace",
        "/api/admin/flags",
        "/api/admin/flags/{key}",
        "/api/admin/flags/{key}/rollout",
        "/api/admin/flags/{key}/advance",
        "/api/admin/flags/{key}/rollback",
        "/api/admin/tokens",
        "/api/admin/tokens/{id}",
        "/api/admin/audit",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}

/// A DBA's raw SQL reaches two running instances on one database in under a second.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn raw_sql_propagates_to_two_instances_in_under_a_second(pool: PgPool) {
    store::demo::seed_tenants(&pool, 10).await.unwrap();
    let tenant = store::demo::demo_tenant(3).id;
    let instances: Vec<AppState> = (0..2)
        .map(|_| AppState::new(options(), pool.clone()))
        .collect();
    for s in &instances {
        server::live::spawn(s.pool.clone(), s.live.clone());
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !instances
        .iter()
        .all(|s| s.live.is_listening() && s.live.is_loaded())
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "instances did not start listening"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let start = std::time::Instant::now();
    sqlx::query("INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('multi_workspace_enabled', $1, true)")
        .bind(&tenant)
        .execute(&pool)
        .await
        .unwrap();
    for s in &instances {
        while !s.live.current().evaluate(FLAG, &tenant).on {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(1),
                "change not seen within a second"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn migration_status_for_dbas(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let res = app.get("/api/admin/migrations").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let j = res.json();
    assert_eq!(j["verification_count"], 1);
    assert_eq!(j["counts"]["pending"], 0);
    let list = j["migrations"].as_array().unwrap();
    assert_eq!(list.len(), store::MIGRATOR.iter().count());
    assert!(list.iter().all(|m| m["state"] == "applied"));
    // A migration file edited after it was applied shows as drifted.
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = (SELECT min(version) FROM _sqlx_migrations)")
        .execute(&pool)
        .await
        .unwrap();
    let j = app.get("/api/admin/migrations").await.json();
    assert_eq!(j["counts"]["drifted"], 1);
    assert_eq!(j["migrations"][0]["state"], "drifted");
    assert_error(
        &app.call(
            Method::GET,
            "/api/admin/migrations",
            Some(&app.server),
            &[],
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

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
async fn security_headers_on_every_response(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let cookie = sign_in(&app, "hedda", "viewer").await;
    let mut nonces = std::collections::HashSet::new();
    // (uri, bearer token, cookie, a page rendered by Leptos)
    for (uri, token, cookie, page) in [
        ("/api/health", None, None, false),
        ("/login", None, None, true),
        ("/no-such-page", None, None, true),
        ("/tenants", None, Some(cookie.as_str()), true),
        ("/flags/multi_workspace_enabled", None, Some(&cookie), true),
        ("/api/admin/flags", Some(app.admin.as_str()), None, false),
        ("/api/admin/flags", None, None, false),
    ] {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        let res = app.call(Method::GET, uri, token, &headers, None).await;
        let h = |name: &str| {
            res.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(h("x-content-type-options"), "nosniff", "{uri}");
        assert_eq!(h("x-frame-options"), "DENY", "{uri}");
        assert_eq!(h("referrer-policy"), "same-origin", "{uri}");
        let csp = h("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{uri}: {csp}");
        assert!(csp.contains("object-src 'none'"), "{uri}: {csp}");
        assert!(!csp.contains("'unsafe-inline' 'wasm"), "{uri}: {csp}");
        if !page {
            assert_eq!(csp, server::startup::CONTENT_SECURITY_POLICY, "{uri}");
            continue;
        }
        // A page: this render's nonce is in the policy and on every inline script it wrote
        // (hydration, streamed resources); no other script would run.
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("{uri}: no nonce in {csp}"));
        assert!(nonce.len() >= 16, "{uri}: {nonce}");
        assert_eq!(csp, app::csp::for_page(nonce), "{uri}");
        let scripts = res.text.matches("<script").count();
        assert!(scripts >= 1, "{uri}: no inline script");
        assert_eq!(
            res.text
                .matches(&format!("<script nonce=\"{nonce}\""))
                .count()
                + res
                    .text
                    .matches(&format!("<script type=\"module\" nonce=\"{nonce}\""))
                    .count(),
            scripts,
            "{uri}: a script without this render's nonce"
        );
        assert!(nonces.insert(nonce.to_string()), "{uri}: nonce reused");
    }
}

/// Ticks every item of `checklists` and signs `milestones` of FLAG's plan as the admin token.
async fn satisfy(app: &TestApp, checklists: &[&str], milestones: &[&str]) {
    let uri = format!("/api/admin/flags/{FLAG}/plan");
    let plan = app.get(&uri).await.json();
    for checklist in plan["document"]["checklists"].as_array().unwrap() {
        let name = checklist["name"].as_str().unwrap();
        if !checklists.contains(&name) {
            continue;
        }
        for item in checklist["items"].as_array().unwrap() {
            let res = app
                .post(
                    &format!("{uri}/ticks"),
                    Some(json!({"checklist": name, "item": item})),
                )
                .await;
            assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        }
    }
    for m in milestones {
        let res = app
            .post(&format!("{uri}/signoffs"), Some(json!({"milestone": m})))
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }
}

/// Ticks and signs what the seed plan's pilot gate needs (everything but the approval).
async fn satisfy_pilot_gates(app: &TestApp) {
    satisfy(
        app,
        &["Prerequisites", "Smoke Test (Existing Features)"],
        &["Code deployed", "Migrations applied", "Smoke tests passed"],
    )
    .await;
}

async fn phase(app: &TestApp) -> String {
    app.get(&format!("/api/admin/flags/{FLAG}")).await.json()["rollout"]["phase"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Rolls FLAG back (`to`: `previous`; none: every row OFF) with the admin token.
async fn rollback(app: &TestApp, to: Option<&str>) -> Res {
    let uri = format!("/api/admin/flags/{FLAG}/rollback");
    app.post(&uri, to.map(|t| json!({ "to": t }))).await
}

/// Approves change request `id` of FLAG's plan with `token` (another admin than the asker).
async fn approve_as(app: &TestApp, id: &Value, token: &str) -> Res {
    let uri = format!("/api/admin/flags/{FLAG}/plan/requests/{id}/approve");
    app.call(Method::POST, &uri, Some(token), &[], None).await
}

async fn audit_count(pool: &PgPool, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1 AND flag_key = $2")
        .bind(action)
        .bind(FLAG)
        .fetch_one(pool)
        .await
        .unwrap()
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

/// Posts a plain HTML form to a server function, as the plan panel's forms do.
async fn form(app: &TestApp, cookie: &str, endpoint: &str, body: &str) -> Res {
    app.raw(
        Request::post(format!("/rpc/{endpoint}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .header("cookie", cookie)
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn plan_server_functions_refuse_what_the_role_may_not(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let qa = sign_in(&app, "quinn", "qa").await;
    let po = sign_in(&app, "petra", "product_owner").await;
    let po2 = sign_in(&app, "paul", "product_owner").await;
    let viewer = sign_in(&app, "vera", "viewer").await;
    let key = format!("key={FLAG}");

    // QA ticks a smoke-test item and signs "Smoke tests passed".
    let res = form(&app, &qa, "plan_tick", &format!("{key}&checklist=Smoke+Test+%28Existing+Features%29&item=Login+works&ticked=true&note=ok+on+staging")).await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    let res = form(
        &app,
        &qa,
        "plan_sign",
        &format!("{key}&milestone=Smoke+tests+passed&signed=true"),
    )
    .await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
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

/// Waits up to `secs` for `check` to hold, polling every 200 ms.
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

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

/// Twenty people press "advance" on the same version at once: exactly one wins, the others get
/// 409, and exactly one audit row records the change. The same for twenty rollout edits.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn concurrent_edits_one_wins_the_rest_conflict(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    app.ungate(FLAG).await;
    app.post(
        &format!(
            "/api/admin/tenants/{}/enable-multi-workspace",
            app.tenant(3)
        ),
        None,
    )
    .await;
    let flag = app.get(&format!("/api/admin/flags/{FLAG}")).await;
    let etag = flag.headers["etag"].to_str().unwrap().to_string();
    let applied_before = audit_count(&pool, "rollout.apply").await;
    let advance_uri = format!("/api/admin/flags/{FLAG}/advance");
    let if_match = [("if-match", etag.as_str())];
    let calls = (0..20).map(|_| {
        app.call(
            Method::POST,
            &advance_uri,
            Some(&app.admin),
            &if_match,
            None,
        )
    });
    let results = futures::future::join_all(calls).await;
    let ok = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let conflicts = results
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!(
        (ok, conflicts),
        (1, 19),
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(phase(&app).await, "10%");
    assert_eq!(
        audit_count(&pool, "rollout.apply").await,
        applied_before + 1
    );

    // Twenty different edits of the same version: one lands, none is lost silently.
    let etag = app.get(&format!("/api/admin/flags/{FLAG}")).await.headers["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let pilots: Vec<String> = (0..20).map(|i| app.tenant(10 + i)).collect();
    let rollout_uri = format!("/api/admin/flags/{FLAG}/rollout");
    let if_match = [("if-match", etag.as_str())];
    let calls = pilots.iter().map(|p| {
        app.call(
            Method::PUT,
            &rollout_uri,
            Some(&app.admin),
            &if_match,
            Some(json!({"phase": "10%", "pilots": [app.tenant(3), p]})),
        )
    });
    let results = futures::future::join_all(calls).await;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == StatusCode::OK)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1);
    assert!(results
        .iter()
        .all(|r| r.status == StatusCode::OK || r.status == StatusCode::CONFLICT));
    let flag = app.get(&format!("/api/admin/flags/{FLAG}")).await.json();
    assert_eq!(
        flag["rollout"]["pilots"],
        json!([app.tenant(3), pilots[winners[0]].clone()]
            .iter()
            .collect::<std::collections::BTreeSet<_>>())
    );
    assert_eq!(
        audit_count(&pool, "rollout.apply").await,
        applied_before + 2
    );
}

/// Every kind of change — through the web app's server functions, the REST API, the CLI and raw
/// SQL — leaves an audit row naming what it did and where it came from.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_kind_of_change_is_audited(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let po = sign_in(&app, "petra", "product_owner").await;
    let admin_user = sign_in(&app, "ada", "admin").await;
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"))
            .args(args)
            .env("DATABASE_URL", &url)
            .env("TENANTRY_PASSWORD", "a long enough password")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tenantry {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
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
        cli(&args);
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

/// A page on another site cannot drive the web app's server functions with the user's cookie,
/// and the sign-in is throttled per (user, address) without locking the user out elsewhere.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn cross_site_posts_are_refused_and_sign_in_is_throttled(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let po = sign_in(&app, "petra", "product_owner").await;
    let kill = |origin: Option<&'static str>, referer: Option<&'static str>| {
        let mut req = Request::post("/rpc/kill_flag")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .header("cookie", &po);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        req.body(Body::from(format!("key={FLAG}"))).unwrap()
    };
    for (origin, referer) in [
        (Some("https://evil.example"), None),
        (Some("null"), None),
        (None, Some("https://evil.example/page")),
    ] {
        let res = app.raw(kill(origin, referer)).await;
        assert_error(&res, StatusCode::FORBIDDEN, "forbidden");
        assert!(res.text.contains("cross-site"), "{}", res.text);
    }
    let kills: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'rollout.kill'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(kills, 0, "nothing ran");
    let res = app.raw(kill(Some("http://localhost"), None)).await;
    assert!(res.status.is_success(), "{} {}", res.status, res.text);
    // Token-authenticated API calls carry no cookie: not affected.
    let res = app
        .call(
            Method::POST,
            &format!("/api/admin/flags/{FLAG}/rollback"),
            Some(&app.admin),
            &[("origin", "https://ci.example")],
            None,
        )
        .await;
    assert_error(&res, StatusCode::FORBIDDEN, "forbidden");
    let res = rollback(&app, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);

    // Sign-in: five wrong passwords, then a wait — even for the right password.
    let attempt = |password: &'static str, forwarded: &'static str| {
        Request::post("/rpc/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .header("x-forwarded-for", forwarded)
            .body(Body::from(format!("username=petra&password={password}")))
            .unwrap()
    };
    for _ in 0..infra::throttle::FREE_FAILURES {
        let res = app.raw(attempt("wrong", "203.0.113.7")).await;
        assert!(
            res.text.contains("Unknown user or wrong password"),
            "{}",
            res.text
        );
    }
    let res = app
        .raw(attempt("correct+horse+battery", "203.0.113.7"))
        .await;
    assert!(
        res.text.contains("Too many failed sign-ins"),
        "{}",
        res.text
    );
    assert!(!res.headers.contains_key("set-cookie"));
    // X-Forwarded-For is not trusted unless configured: all of these came from the same
    // (unknown) peer, so the user is throttled for it — but the lock is per address and bounded.
    assert!(infra::throttle::MAX_LOCK <= std::time::Duration::from_secs(15 * 60));
}

/// Concurrent wrong passwords for one user from one address cannot outrun the throttle: each
/// attempt is counted before its password is verified, so of 20 at once only the throttle's
/// free failures are verified and the rest wait.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn concurrent_sign_ins_cannot_outrun_the_throttle(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    sign_in(&app, "petra", "product_owner").await;
    let attempts = (0..20).map(|_| log_in(&app, "petra", "wrong"));
    let answers = futures::future::join_all(attempts).await;
    let verified = answers
        .iter()
        .filter(|r| r.text.contains("Unknown user or wrong password"))
        .count();
    let throttled = answers
        .iter()
        .filter(|r| r.text.contains("Too many failed sign-ins"))
        .count();
    assert_eq!(verified + throttled, 20, "every answer is one or the other");
    assert_eq!(
        verified,
        infra::throttle::FREE_FAILURES as usize,
        "only the free failures reach password verification"
    );
    assert!(answers
        .iter()
        .all(|r| !r.headers.contains_key("set-cookie")));
}

/// Captures everything logged on this thread (the test's runtime is single-threaded).
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

/// Passwords and token secrets never reach the log, at any level — not on sign-in (right or
/// wrong), not when a token is created, used, or presented wrong.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn no_secrets_in_logs(pool: PgPool) {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = TestApp::new(pool.clone()).await;
    let cookie = sign_in(&app, "petra", "product_owner").await;
    let wrong = app
        .raw(
            Request::post("/rpc/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .body(Body::from("username=petra&password=hunter2-wrong-secret"))
                .unwrap(),
        )
        .await;
    assert!(wrong.text.contains("wrong password"));
    let created = app
        .post(
            "/api/admin/tokens",
            Some(json!({"name": "log-check", "scope": "server"})),
        )
        .await
        .json();
    let secret = created["token"].as_str().unwrap().to_string();
    app.state.live.tokens.reload(&pool).await.unwrap();
    assert_eq!(
        app.features(&secret, Some(&app.tenant(1))).await.status,
        StatusCode::OK
    );
    let bad = format!("{secret}x");
    assert_eq!(
        app.features(&bad, Some(&app.tenant(1))).await.status,
        StatusCode::UNAUTHORIZED
    );
    let _ = app
        .call(Method::GET, "/flags", None, &[("cookie", &cookie)], None)
        .await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    // The capture works: the refused sign-in was logged (with the user name, without the password).
    assert!(
        text.contains("sign-in refused") && text.contains("petra"),
        "the capture works: {text}"
    );
    let session_id = cookie.split_once('=').unwrap().1;
    for s in [
        "correct horse battery",
        "correct+horse+battery",
        "hunter2-wrong-secret",
        secret.as_str(),
        app.admin.as_str(),
        app.server.as_str(),
        session_id,
    ] {
        assert!(!text.contains(s), "secret {s:?} found in the log");
    }
}

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    User(&'static str),
    TenantToken,
    ServerToken,
    AdminToken,
    RevokedToken,
    ExpiredSession,
}

/// What an endpoint answers a caller: allowed (any status but 401/403), 401 or 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Allowed,
    Unauthenticated,
    Forbidden,
}

const ROLES: [&str; 5] = ["admin", "product_owner", "qa", "dba", "viewer"];

/// The REST matrix: who may call each documented route. Every route in the OpenAPI document (the
/// route table) needs an entry here — a new endpoint without one fails the test.
fn rest_rule(method: &str, path: &str) -> Option<fn(Who) -> Answer> {
    use Answer::*;
    fn admin_only(w: Who) -> Answer {
        match w {
            Who::AdminToken => Allowed,
            Who::TenantToken | Who::ServerToken => Forbidden,
            _ => Unauthenticated,
        }
    }
    fn evaluation(w: Who) -> Answer {
        match w {
            Who::AdminToken | Who::ServerToken | Who::TenantToken => Allowed,
            _ => Unauthenticated,
        }
    }
    fn sdk(w: Who) -> Answer {
        match w {
            Who::AdminToken | Who::ServerToken => Allowed,
            Who::TenantToken => Forbidden,
            _ => Unauthenticated,
        }
    }
    fn activity(w: Who) -> Answer {
        match w {
            Who::ServerToken | Who::TenantToken => Allowed,
            Who::AdminToken => Forbidden,
            _ => Unauthenticated,
        }
    }
    fn public(_: Who) -> Answer {
        Allowed
    }
    Some(match (method, path) {
        ("get", "/api/health") => public,
        ("get", "/api/features") => evaluation,
        ("post", "/ofrep/v1/evaluate/flags/{key}") | ("post", "/ofrep/v1/evaluate/flags") => {
            evaluation
        }
        ("get", "/api/client/snapshot") | ("get", "/api/client/stream") => sdk,
        ("post", "/api/activity") => activity,
        (_, p) if p.starts_with("/api/admin/") => admin_only,
        _ => return None,
    })
}

/// The server-function matrix: the roles each one admits (`None`: anyone, signed in or not), and
/// valid arguments so the call reaches its role check. Every registered server function needs an
/// entry.
fn rpc_rule(
    path: &str,
    tenant: &str,
) -> Option<(Option<&'static [&'static str]>, String, &'static str)> {
    const ALL: &[&str] = &ROLES;
    const EDITORS: &[&str] = &["admin", "product_owner"];
    const DBA: &[&str] = &["admin", "dba"];
    const TICKERS: &[&str] = &["admin", "product_owner", "qa", "dba"];
    const ADMIN: &[&str] = &["admin"];
    let form = "application/x-www-form-urlencoded";
    let json = "application/json";
    let k = format!("key={FLAG}");
    let (roles, body, ct): (Option<&'static [&'static str]>, String, &'static str) = match path {
        "/rpc/whoami" | "/rpc/logout" => (None, String::new(), form),
        "/rpc/login" => (None, "username=nobody&password=x".into(), form),
        "/rpc/audit_page" => (Some(ALL), json!({"filter": {}}).to_string(), json),
        "/rpc/dashboard" | "/rpc/list_flags" | "/rpc/flags_page" => (Some(ALL), String::new(), form),
        "/rpc/migration_status" | "/rpc/db_health" | "/rpc/list_backups" | "/rpc/take_backup" => {
            (Some(DBA), String::new(), form)
        }
        "/rpc/flag_editor" | "/rpc/plan_panel" => (Some(ALL), k, form),
        "/rpc/save_rollout" | "/rpc/request_rollout" => (
            Some(EDITORS),
            json!({"key": FLAG, "rollout": {"phase": "off", "pilots": [], "constraints": []}, "version": 0}).to_string(),
            json,
        ),
        "/rpc/kill_flag" | "/rpc/plan_request" | "/rpc/plan_resume" => (Some(EDITORS), k, form),
        "/rpc/plan_advance" => (Some(EDITORS), k, form),
        "/rpc/plan_contacts" => (Some(EDITORS), format!("{k}&contacts=Ops+%7C+ops%40example.com"), form),
        "/rpc/plan_settings" => (Some(ADMIN), format!("{k}&approver_roles=admin"), form),
        "/rpc/plan_tick" => (
            Some(TICKERS),
            format!("{k}&checklist=Prerequisites&item=All+staging+tests+passed&ticked=true"),
            form,
        ),
        "/rpc/plan_sign" => (Some(ALL), format!("{k}&milestone=Post-rollout+review&signed=true"), form),
        "/rpc/plan_approve" => (Some(ALL), format!("{k}&id=999999"), form),
        "/rpc/pilot_monitoring" => (Some(ALL), format!("flag={FLAG}"), form),
        "/rpc/tenant_detail" => (Some(ALL), format!("id={tenant}"), form),
        "/rpc/list_tenants" => (
            Some(ALL),
            "filter[q]=&filter[plan]=&filter[region]=&filter[flag]=&filter[state]=&filter[sort]=&filter[page]=1".into(),
            form,
        ),
        _ => return None,
    };
    Some((roles, body, ct))
}

fn classify(status: StatusCode, text: &str) -> Answer {
    let answer = if status == StatusCode::UNAUTHORIZED {
        Answer::Unauthenticated
    } else if status == StatusCode::FORBIDDEN {
        Answer::Forbidden
    } else {
        Answer::Allowed
    };
    // Server functions say it in the body too.
    if text.contains("Unauthenticated") {
        assert_eq!(answer, Answer::Unauthenticated, "{status} {text}");
    }
    if text.contains("\"Forbidden\"") {
        assert_eq!(answer, Answer::Forbidden, "{status} {text}");
    }
    answer
}

/// Every REST endpoint and every server function, called as anonymous, each role, a tenant, server
/// and admin token, a revoked token and an expired session: the answer is the matrix's.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn role_by_endpoint_matrix(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let tenant = app.tenant(2);
    let tenant_token = token(&pool, "matrix-tenant", Scope::Tenant, Some(&tenant)).await;
    let revoked = token(&pool, "matrix-revoked", Scope::Admin, None).await;
    sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE name = 'matrix-revoked'")
        .execute(&pool)
        .await
        .unwrap();
    app.state.live.tokens.reload(&pool).await.unwrap();
    let mut cookies = std::collections::HashMap::new();
    for role in ROLES {
        cookies.insert(role, sign_in(&app, &format!("m-{role}"), role).await);
    }
    let expired = sign_in(&app, "m-expired", "admin").await;
    sqlx::query("UPDATE sessions SET expiry_date = now() - interval '1 day'")
        .execute(&pool)
        .await
        .unwrap();
    // Everyone else signs in again after the expiry.
    for role in ROLES {
        cookies.insert(role, sign_in(&app, &format!("m2-{role}"), role).await);
    }
    let mut callers = vec![
        Who::Anonymous,
        Who::TenantToken,
        Who::ServerToken,
        Who::AdminToken,
        Who::RevokedToken,
        Who::ExpiredSession,
    ];
    callers.extend(ROLES.iter().map(|r| Who::User(r)));
    let credentials = |who: Who| -> (Option<String>, Option<String>) {
        match who {
            Who::Anonymous => (None, None),
            Who::User(r) => (None, Some(cookies[r].clone())),
            Who::TenantToken => (Some(tenant_token.clone()), None),
            Who::ServerToken => (Some(app.server.clone()), None),
            Who::AdminToken => (Some(app.admin.clone()), None),
            Who::RevokedToken => (Some(revoked.clone()), None),
            Who::ExpiredSession => (None, Some(expired.clone())),
        }
    };
    let send = |req: Request<Body>| async {
        // Status and at most the first bytes: the SSE stream never ends.
        let res = app.router().oneshot(req).await.unwrap();
        let status = res.status();
        let mut body = res.into_body();
        let mut text = String::new();
        if let Ok(Some(Ok(frame))) =
            tokio::time::timeout(std::time::Duration::from_millis(500), body.frame()).await
        {
            if let Ok(data) = frame.into_data() {
                text = String::from_utf8_lossy(&data).into_owned();
            }
        }
        (status, text)
    };

    // REST, from the OpenAPI document.
    let doc = serde_json::to_value(server::openapi::ApiDoc::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            let rule = rest_rule(method, path)
                .unwrap_or_else(|| panic!("no matrix entry for {method} {path}: add one"));
            let uri = path
                .replace("/tenants/{id}", "/tenants/matrix-nope")
                .replace("{key}", FLAG)
                .replace("{id}", "999999");
            let uri = if path == "/api/features" {
                format!("{uri}?tenant={tenant}")
            } else {
                uri
            };
            let body = match path.as_str() {
                p if p.starts_with("/ofrep/") => json!({"context": {"targetingKey": tenant}}),
                _ => json!({}),
            };
            for &who in &callers {
                let (bearer, cookie) = credentials(who);
                let mut req = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .header("host", "localhost");
                if let Some(t) = &bearer {
                    req = req.header("authorization", format!("Bearer {t}"));
                }
                if let Some(c) = &cookie {
                    req = req.header("cookie", c).header("origin", "http://localhost");
                }
                let req = if method == "get" || method == "delete" {
                    req.body(Body::empty()).unwrap()
                } else {
                    req.header("content-type", "application/json")
                        .body(Body::from(body.to_string()))
                        .unwrap()
                };
                let (status, text) = send(req).await;
                assert!(
                    status.as_u16() < 500,
                    "{method} {path} as {who:?}: {status} {text}"
                );
                assert_eq!(
                    classify(status, &text),
                    rule(who),
                    "{method} {path} as {who:?}: {status} {text}"
                );
                checked += 1;
            }
        }
    }

    // Server functions, from the registry.
    let mut fns: Vec<(&'static str, axum::http::Method)> =
        leptos::server_fn::axum::server_fn_paths().collect();
    fns.sort_by_key(|(p, _)| (*p == "/rpc/logout", *p));
    for (path, method) in fns {
        let (roles, body, ct) = rpc_rule(path, &tenant)
            .unwrap_or_else(|| panic!("no matrix entry for server function {path}: add one"));
        for &who in &callers {
            if path == "/rpc/logout" && matches!(who, Who::User(_)) {
                continue; // would end the session the rest of the matrix uses
            }
            let (bearer, cookie) = credentials(who);
            let mut req = Request::builder()
                .method(method.clone())
                .uri(path)
                .header("host", "localhost")
                .header("accept", "application/json")
                .header("content-type", ct);
            if let Some(t) = &bearer {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            if let Some(c) = &cookie {
                req = req.header("cookie", c).header("origin", "http://localhost");
            }
            let (status, text) = send(req.body(Body::from(body.clone())).unwrap()).await;
            let want = match (roles, who) {
                (None, _) => Answer::Allowed,
                (Some(r), Who::User(role)) if r.contains(&role) => Answer::Allowed,
                (Some(_), Who::User(_)) => Answer::Forbidden,
                // Tokens are for the API; a revoked token or an expired session is nobody.
                (Some(_), _) => Answer::Unauthenticated,
            };
            assert_eq!(
                classify(status, &text),
                want,
                "{path} as {who:?}: {status} {text}"
            );
            checked += 1;
        }
    }
    assert!(checked > 400, "{checked} calls");
}

/// Found by Schemathesis: text with a NUL character made Postgres fail (500). It is bad input: a
/// 422 naming the problem, in the activity batch per event, and nothing stored.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn nul_characters_are_refused_not_server_errors(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let t = app.tenant(1);
    let res = app
        .call(
            Method::POST,
            "/api/activity",
            Some(&app.server),
            &[],
            Some(json!({"events": [
                {"tenant_id": t, "action": "ok"},
                {"tenant_id": "bad\u{0}id", "action": "x"},
                {"tenant_id": t, "action": "y", "details": {"k": "v\u{0}"}}
            ]})),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    let body = res.json();
    assert_eq!(body["error"], "invalid_events");
    let indexes: Vec<i64> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 2], "{body}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM workspace_activity_logs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    // Anywhere else: a 422 with the reason, never a 500.
    let res = app
        .post(
            "/api/admin/tenants",
            Some(json!({"id": "nul-co", "name": "Nul\u{0}Co"})),
        )
        .await;
    assert_error(&res, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable");
    assert!(res.text.contains("NUL"), "{}", res.text);
}

// ------------------------------------------------ the one write path: gates on the effect

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
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
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
    assert_eq!(json!(dash.unmet), refusal["unmet"]);
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

/// An instance whose `LISTEN` connection cannot be opened while ordinary queries work keeps
/// polling: a raw-SQL change (a kill switch, say) still reaches it.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn an_instance_that_cannot_listen_still_follows_changes(pool: PgPool) {
    store::demo::seed_tenants(&pool, 10).await.unwrap();
    let tenant = store::demo::demo_tenant(3).id;
    let s = AppState::new(options(), pool.clone());
    server::live::spawn_with(s.pool.clone(), s.live.clone(), |_| async {
        Err(store::Error::Invalid("LISTEN refused (test)".into()))
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !s.live.is_loaded() {
        assert!(std::time::Instant::now() < deadline, "never loaded");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!s.live.is_listening());
    sqlx::query("INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('multi_workspace_enabled', $1, true)")
        .bind(&tenant)
        .execute(&pool)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let limit = server::live::DEAF_REFRESH + std::time::Duration::from_secs(5);
    while !s.live.current().evaluate(FLAG, &tenant).on {
        assert!(
            start.elapsed() < limit,
            "change never reached the deaf instance"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
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
}

/// A sign-in with a user name longer than any account's is refused with the generic message before
/// it is throttled, stored or logged.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn overlong_user_names_are_refused_before_anything_else(pool: PgPool) {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = TestApp::new(pool.clone()).await;
    let long = "x".repeat(65);
    let login = |name: String| {
        let app = &app;
        async move {
            app.raw(
                Request::post("/rpc/login")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("accept", "application/json")
                    .body(Body::from(format!("username={name}&password=whatever")))
                    .unwrap(),
            )
            .await
        }
    };
    for _ in 0..20 {
        let res = login(long.clone()).await;
        assert!(
            res.text.contains("Unknown user or wrong password"),
            "{}",
            res.text
        );
    }
    // Never throttled (never counted), never logged.
    assert_eq!(app.state.login_throttle.prune(std::time::Instant::now()), 0);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains(&long), "the long name reached the log");
    // A name of 64 characters is an ordinary (unknown) user: counted by the throttle.
    let res = login("y".repeat(64)).await;
    assert!(
        res.text.contains("Unknown user or wrong password"),
        "{}",
        res.text
    );
    assert!(app.state.login_throttle.prune(std::time::Instant::now()) > 0);
}
