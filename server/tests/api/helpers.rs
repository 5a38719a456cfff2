//! The test app and what the tests share: a router over the test's database with an admin and a
//! server token, requests as a browser or a client sends them, signing in, the CLI, the log
//! buffer, and the rollout-plan fixtures.

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

pub const FLAG: &str = "multi_workspace_enabled";

pub struct TestApp {
    pub state: AppState,
    pub admin: String,
    pub server: String,
}

pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Res {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

pub fn options() -> LeptosOptions {
    LeptosOptions::builder().output_name("tenantry").build()
}

pub async fn token(pool: &PgPool, name: &str, scope: Scope, tenant: Option<&str>) -> String {
    let secret = server::auth::generate_secret(scope).unwrap();
    let actor = store::Actor::new("test", store::Source::Cli);
    server::tokens::create(pool, &actor, name, scope, tenant, None, &secret, None)
        .await
        .unwrap();
    secret
}

impl TestApp {
    pub async fn new(pool: PgPool) -> TestApp {
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

    pub fn router(&self) -> Router {
        server::router(self.state.clone())
    }

    pub fn tenant(&self, n: usize) -> String {
        store::demo::demo_tenant(n).id
    }

    pub async fn call(
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
    pub async fn raw(&self, mut req: Request<Body>) -> Res {
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

    pub async fn features(&self, token: &str, tenant: Option<&str>) -> Res {
        let uri = match tenant {
            Some(t) => format!("/api/features?tenant={t}"),
            None => "/api/features".to_string(),
        };
        self.call(Method::GET, &uri, Some(token), &[], None).await
    }

    /// A plan without gates or approvals for `flag`: for tests of the rollout mechanics, not of
    /// the gates (which `advance_is_gated_approved_and_overridable` covers).
    pub async fn ungate(&self, flag: &str) {
        let res = self
            .put(
                &format!("/api/admin/flags/{flag}/plan/settings"),
                json!({"approvals_required": false, "approver_roles": [], "auto_advance": false, "gates": []}),
            )
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    }

    /// A GET with the admin token.
    pub async fn get(&self, uri: &str) -> Res {
        self.call(Method::GET, uri, Some(&self.admin), &[], None)
            .await
    }

    pub async fn post(&self, uri: &str, body: Option<Value>) -> Res {
        self.call(Method::POST, uri, Some(&self.admin), &[], body)
            .await
    }

    /// A PUT of `body` with the admin token.
    pub async fn put(&self, uri: &str, body: Value) -> Res {
        self.call(Method::PUT, uri, Some(&self.admin), &[], Some(body))
            .await
    }
}

/// The answer says `text` (the status and body are shown when it does not).
pub fn says(res: &Res, text: &str) {
    assert!(res.text.contains(text), "{} {}", res.status, res.text);
}

pub fn assert_error(res: &Res, status: StatusCode, code: &str) {
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

pub async fn sign_in(app: &TestApp, username: &str, role: &str) -> String {
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

/// Posts the sign-in form (`password` form-encoded).
pub async fn log_in(app: &TestApp, username: &str, password: &str) -> Res {
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

/// Posts a plain HTML form to a server function, as the plan panel's forms do.
pub async fn form(app: &TestApp, cookie: &str, endpoint: &str, body: &str) -> Res {
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

/// The connection string of the test's own database, for the CLI binary.
pub async fn test_database_url(pool: &PgPool) -> String {
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    format!("{}/{db}", base.rsplit_once('/').unwrap().0)
}

/// Runs the `tenantry` binary against `url`; panics unless it succeeds. Returns its stdout.
pub fn tenantry(url: &str, args: &[&str]) -> String {
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

/// Waits up to `secs` for `check` to hold, polling every 200 ms.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
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

/// Captures everything logged on this thread (the test's runtime is single-threaded).
#[derive(Clone, Default)]
pub struct LogBuffer(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// The buffer of the capture running on this thread, if any.
    static CAPTURING: std::cell::RefCell<Option<LogBuffer>> = const { std::cell::RefCell::new(None) };
}

/// Writes to this thread's capture, or nowhere.
#[derive(Clone, Copy)]
struct ThisThread;

impl std::io::Write for ThisThread {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURING.with_borrow_mut(|c| match c {
            Some(logs) => logs.write(buf),
            None => Ok(buf.len()),
        })
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tracing_subscriber::fmt::MakeWriter<'_> for ThisThread {
    type Writer = ThisThread;
    fn make_writer(&self) -> ThisThread {
        *self
    }
}

/// A capture in progress ([`LogBuffer::capture`]); dropping it ends the capture.
pub struct Capture;

impl Drop for Capture {
    fn drop(&mut self) {
        CAPTURING.with_borrow_mut(|c| *c = None);
    }
}

impl LogBuffer {
    /// Captures everything logged at any level on this thread until the guard is dropped.
    ///
    /// One process-wide subscriber, installed by the first capture, writes each event to the
    /// capture of the thread it happens on. A thread-local subscriber (`set_default`) lost events
    /// now and then: tracing caches per callsite whether anyone listens, and callsites other
    /// tests' threads hit while no subscriber was set were sometimes left "never".
    pub fn capture() -> (LogBuffer, Capture) {
        static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        INSTALLED.get_or_init(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(ThisThread)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in the API tests");
        });
        let logs = LogBuffer::default();
        CAPTURING.with_borrow_mut(|c| *c = Some(logs.clone()));
        (logs, Capture)
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

// ------------------------------------------------ rollout-plan fixtures (FLAG, admin token)

/// Ticks every item of `checklists` and signs `milestones` of FLAG's plan as the admin token.
pub async fn satisfy(app: &TestApp, checklists: &[&str], milestones: &[&str]) {
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
pub async fn satisfy_pilot_gates(app: &TestApp) {
    satisfy(
        app,
        &["Prerequisites", "Smoke Test (Existing Features)"],
        &["Code deployed", "Migrations applied", "Smoke tests passed"],
    )
    .await;
}

pub async fn phase(app: &TestApp) -> String {
    app.get(&format!("/api/admin/flags/{FLAG}")).await.json()["rollout"]["phase"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Rolls FLAG back (`to`: `previous`; none: every row OFF) with the admin token.
pub async fn rollback(app: &TestApp, to: Option<&str>) -> Res {
    let uri = format!("/api/admin/flags/{FLAG}/rollback");
    app.post(&uri, to.map(|t| json!({ "to": t }))).await
}

/// Approves change request `id` of FLAG's plan with `token` (another admin than the asker).
pub async fn approve_as(app: &TestApp, id: &Value, token: &str) -> Res {
    let uri = format!("/api/admin/flags/{FLAG}/plan/requests/{id}/approve");
    app.call(Method::POST, &uri, Some(token), &[], None).await
}

pub async fn audit_count(pool: &PgPool, action: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1 AND flag_key = $2")
        .bind(action)
        .bind(FLAG)
        .fetch_one(pool)
        .await
        .unwrap()
}
