//! Issue 17 over a real Postgres, through the real router: instances follow changes from the
//! outbox (no full reload per change, bursts coalesced, a gap reloads once), the compact snapshot
//! is served on request (`?format=v2` or `Accept`), and the version-2 change stream keeps an SDK's
//! compact snapshot exactly equal to the server's after changes of every kind, raw SQL included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Duration;

use axum::{
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode},
    Router,
};
use flags::compact::CompactSnapshot;
use flags::delta::Changes;
use http_body_util::BodyExt;
use leptos::config::LeptosOptions;
use serde_json::{json, Value};
use server::{auth::Scope, AppState};
use sqlx::PgPool;
use tower::ServiceExt;

const FLAG: &str = "multi_workspace_enabled";
const V2: &str = "application/vnd.tenantry.snapshot.v2+json";

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

async fn token(pool: &PgPool, name: &str, scope: Scope) -> String {
    let secret = server::auth::generate_secret(scope).unwrap();
    let actor = store::Actor::new("test", store::Source::Cli);
    server::tokens::create(pool, &actor, name, scope, None, None, &secret, None)
        .await
        .unwrap();
    secret
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::query(sql)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn tenant(n: usize) -> String {
    store::demo::demo_tenant(n).id
}

async fn db_version(pool: &PgPool) -> u64 {
    store::outbox::current_version(pool).await.unwrap()
}

/// Polls `check` until it holds (or fails after `secs`).
async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl TestApp {
    async fn new(pool: PgPool) -> TestApp {
        store::demo::seed_tenants(&pool, 40).await.unwrap();
        let admin = token(&pool, "admin", Scope::Admin).await;
        let server = token(&pool, "server", Scope::Server).await;
        let state = AppState::new(options(), pool);
        state.live.refresh_all(&state.pool).await.unwrap();
        TestApp {
            state,
            admin,
            server,
        }
    }

    /// Starts the LISTEN follower, as `serve` does, and waits until it listens.
    async fn follow(&self) {
        server::live::spawn(self.state.pool.clone(), self.state.live.clone());
        let live = self.state.live.clone();
        eventually(5, "the instance did not start listening", || {
            let live = live.clone();
            async move { live.is_listening() }
        })
        .await;
    }

    /// Waits until this instance has caught up with the database.
    async fn caught_up(&self) -> u64 {
        let want = db_version(&self.state.pool).await;
        let live = self.state.live.clone();
        eventually(5, "the instance did not catch up", || {
            let live = live.clone();
            async move { live.current().version() >= want }
        })
        .await;
        want
    }

    fn router(&self) -> Router {
        server::router(self.state.clone())
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Res {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "localhost");
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

    async fn as_admin(&self, method: Method, uri: &str, body: Option<Value>) -> Res {
        let res = self.call(method, uri, Some(&self.admin), &[], body).await;
        assert!(
            res.status.is_success(),
            "{uri}: {} {}",
            res.status,
            res.text
        );
        res
    }

    /// The compact snapshot as an SDK fetches it.
    async fn v2(&self) -> CompactSnapshot {
        let res = self
            .call(
                Method::GET,
                "/api/client/snapshot?format=v2",
                Some(&self.server),
                &[],
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        CompactSnapshot::from_json(res.text.as_bytes()).unwrap()
    }

    /// Opens the version-2 stream.
    async fn stream(&self, query: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = Request::get(format!("/api/client/stream?format=v2{query}"))
            .header("authorization", format!("Bearer {}", self.server));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = self
            .router()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Sse {
            body: res.into_body(),
            buffer: String::new(),
        }
    }
}

/// A server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: String,
    /// Its bytes on the wire.
    wire: usize,
}

struct Sse {
    body: Body,
    buffer: String,
}

impl Sse {
    /// The next event (keep-alive comments skipped), or None after `secs`.
    async fn next(&mut self, secs: u64) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut e = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: String::new(),
                    wire: block.len(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        e.event = v.trim().to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        e.id = Some(v.trim().to_string());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        e.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        any = true;
                    }
                }
                if any {
                    return Some(e);
                }
                continue;
            }
            let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
            let frame = tokio::time::timeout(left, self.body.frame()).await.ok()??;
            if let Ok(data) = frame.unwrap().into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }

    /// Applies `changes` events to `sdk` until it reaches `version`; returns the events applied.
    async fn follow_to(&mut self, sdk: &mut CompactSnapshot, version: u64) -> Vec<SseEvent> {
        let mut seen = Vec::new();
        while sdk.version() < version {
            let e = self.next(10).await.unwrap_or_else(|| {
                panic!("no event before version {version}; at {}", sdk.version())
            });
            assert_eq!(e.event, "changes", "{e:?}");
            let changes = Changes::from_json(e.data.as_bytes()).unwrap();
            assert_eq!(e.id.as_deref(), Some(changes.version.to_string().as_str()));
            assert!(
                changes.from <= sdk.version(),
                "{e:?} after {}",
                sdk.version()
            );
            sdk.apply(&changes).unwrap();
            seen.push(e);
        }
        seen
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_compact_snapshot_is_served_on_request_with_its_own_etag(pool: PgPool) {
    let app = TestApp::new(pool).await;
    let version = app.state.live.current().version();
    let res = app
        .call(
            Method::GET,
            "/api/client/snapshot?format=v2",
            Some(&app.server),
            &[],
            None,
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.headers["content-type"], V2);
    assert_eq!(res.headers["vary"], "Accept");
    let tag = res.headers["etag"].to_str().unwrap().to_string();
    assert_eq!(tag, format!("\"{version}.v2\""));
    let v2 = CompactSnapshot::from_json(res.text.as_bytes()).unwrap();
    assert_eq!(v2.tenant_count(), 40);
    assert_eq!(v2.version(), version);
    assert_eq!(&v2, app.state.live.current().compact());
    assert!(v2.tenant(&tenant(0)).is_some_and(|t| !t.plan.is_empty()));

    // The same document through Accept.
    let by_accept = app
        .call(
            Method::GET,
            "/api/client/snapshot",
            Some(&app.server),
            &[("accept", &format!("{V2}, application/json;q=0.5"))],
            None,
        )
        .await;
    assert_eq!(by_accept.status, StatusCode::OK);
    assert_eq!(by_accept.text, res.text);
    // Its ETag, not the v1 one, makes a 304.
    let again = app
        .call(
            Method::GET,
            "/api/client/snapshot?format=v2",
            Some(&app.server),
            &[("if-none-match", &tag)],
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let v1_tag = format!("\"{version}\"");
    let other = app
        .call(
            Method::GET,
            "/api/client/snapshot?format=v2",
            Some(&app.server),
            &[("if-none-match", &v1_tag)],
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);

    // Without a format, existing SDKs still get version 1, and it is the same state.
    let v1 = app
        .call(
            Method::GET,
            "/api/client/snapshot",
            Some(&app.server),
            &[],
            None,
        )
        .await;
    assert_eq!(v1.status, StatusCode::OK);
    assert_eq!(v1.headers["content-type"], "application/json");
    assert_eq!(v1.headers["etag"].to_str().unwrap(), v1_tag);
    let v1 = flags::Snapshot::from_json(v1.text.as_bytes()).unwrap();
    assert_eq!(v1, v2.expand());
    let explicit = app
        .call(
            Method::GET,
            "/api/client/snapshot?format=v1",
            Some(&app.server),
            &[("accept", V2)],
            None,
        )
        .await;
    assert_eq!(explicit.headers["content-type"], "application/json");

    // Compressed when asked (the tower-http layer).
    let gz = app
        .call(
            Method::GET,
            "/api/client/snapshot?format=v2",
            Some(&app.server),
            &[("accept-encoding", "gzip")],
            None,
        )
        .await;
    assert_eq!(gz.headers["content-encoding"], "gzip");

    let bad = app
        .call(
            Method::GET,
            "/api/client/snapshot?format=v3",
            Some(&app.server),
            &[],
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert_eq!(bad.json()["error"], "bad_request");
    let anonymous = app
        .call(
            Method::GET,
            "/api/client/snapshot?format=v2",
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

/// An SDK holding a compact snapshot follows the version-2 stream through changes of every kind —
/// REST (a pilot, a 50% rollout, tenants created, changed and archived), raw SQL (rows, an
/// exclusion, a rollout, a flag created and deleted, a tenant's tags, a tenant back from the
/// archive) — and ends exactly equal to a fresh fetch. A one-row change is under 1 KB on the wire.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_v2_stream_keeps_an_sdk_equal_to_the_server(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    app.follow().await;
    let mut sdk = app.v2().await;
    let mut stream = app.stream(&format!("&since={}", sdk.version()), None).await;

    // One raw-SQL row: a small event.
    exec(
        &pool,
        &format!(
            "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{}', true)",
            tenant(1)
        ),
    )
    .await;
    let v = app.caught_up().await;
    let events = stream.follow_to(&mut sdk, v).await;
    let one = events.last().unwrap();
    assert!(
        one.wire <= 1024,
        "a one-row change is {} bytes: {one:?}",
        one.wire
    );
    let c = Changes::from_json(one.data.as_bytes()).unwrap();
    assert_eq!(c.rows.len(), 1);
    assert!(c.tenants.is_empty() && c.flags.is_empty());
    assert!(sdk.evaluate(FLAG, &tenant(1)).on);

    // REST: no gates for this test; a pilot; 50%; tenants created, changed, archived.
    app.as_admin(
        Method::PUT,
        &format!("/api/admin/flags/{FLAG}/plan/settings"),
        Some(json!({"approvals_required": false, "approver_roles": [], "auto_advance": false, "gates": []})),
    )
    .await;
    app.as_admin(
        Method::POST,
        &format!("/api/admin/tenants/{}/enable-multi-workspace", tenant(2)),
        None,
    )
    .await;
    app.as_admin(
        Method::PUT,
        &format!("/api/admin/flags/{FLAG}/rollout"),
        Some(json!({"phase": "50%", "pilots": [tenant(2)]})),
    )
    .await;
    for i in 0..5 {
        app.as_admin(
            Method::POST,
            "/api/admin/tenants",
            Some(json!({"id": format!("late-{i}"), "name": format!("Late {i}"), "plan": "pro"})),
        )
        .await;
    }
    app.as_admin(
        Method::PATCH,
        &format!("/api/admin/tenants/{}", tenant(3)),
        Some(json!({"plan": "enterprise", "tags": ["beta"]})),
    )
    .await;
    app.as_admin(
        Method::DELETE,
        &format!("/api/admin/tenants/{}", tenant(4)),
        None,
    )
    .await;
    let v = app.caught_up().await;
    stream.follow_to(&mut sdk, v).await;
    assert_eq!(&sdk, &app.v2().await, "after the REST changes");

    // Raw SQL of every kind.
    for sql in [
        format!("UPDATE feature_flags SET excluded = true WHERE key = '{FLAG}' AND tenant_id = '{}'", tenant(1)),
        format!("DELETE FROM feature_flags WHERE key = '{FLAG}' AND tenant_id = '{}'", tenant(2)),
        format!("UPDATE flags SET rollout = '{{\"phase\": \"10%\", \"pilots\": [], \"constraints\": []}}' WHERE key = '{FLAG}'"),
        "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('dba_flag', NULL, false)".to_string(),
        format!("INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('dba_flag', '{}', true)", tenant(5)),
        format!("UPDATE tenants SET tags = ARRAY['strategic'] WHERE id = '{}'", tenant(6)),
        format!("UPDATE tenants SET archived_at = NULL WHERE id = '{}'", tenant(4)),
        format!("UPDATE tenants SET archived_at = now() WHERE id = '{}'", tenant(7)),
    ] {
        exec(&pool, &sql).await;
    }
    let v = app.caught_up().await;
    stream.follow_to(&mut sdk, v).await;
    assert_eq!(&sdk, &app.v2().await, "after the raw SQL");
    assert!(sdk.evaluate("dba_flag", &tenant(5)).on);
    assert!(sdk.tenant(&tenant(4)).is_some() && sdk.tenant(&tenant(7)).is_none());
    exec(&pool, "DELETE FROM flags WHERE key = 'dba_flag'").await;
    exec(
        &pool,
        &format!(
            "UPDATE feature_flags SET enabled = true WHERE key = '{FLAG}' AND tenant_id IS NULL"
        ),
    )
    .await;
    let v = app.caught_up().await;
    stream.follow_to(&mut sdk, v).await;
    let fresh = app.v2().await;
    assert_eq!(&sdk, &fresh, "after deleting a flag and enabling globally");
    assert!(sdk.flag("dba_flag").is_none());
    for n in 0..45 {
        let id = tenant(n);
        assert_eq!(sdk.evaluate(FLAG, &id), fresh.evaluate(FLAG, &id), "{id}");
    }
    // Never a full load for any of it: the instance caught up from the outbox each time.
    assert_eq!(app.state.live.stats().full_loads, 1);
}

/// A client reconnecting with `Last-Event-ID` gets what it missed: from memory, or (an instance
/// that started later) from the outbox; a `reload` when neither reaches back, or when it holds
/// nothing yet.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn reconnecting_with_last_event_id_gets_the_changes_after_it_or_a_reload(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    app.follow().await;
    let old = app.v2().await;
    for n in 10..15 {
        exec(
            &pool,
            &format!(
                "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{}', true)",
                tenant(n)
            ),
        )
        .await;
    }
    exec(
        &pool,
        &format!(
            "UPDATE tenants SET plan = 'free' WHERE id = '{}'",
            tenant(11)
        ),
    )
    .await;
    let v = app.caught_up().await;
    let id = old.version().to_string();

    // From memory: the steps since `id`, merged into one event.
    let mut sdk = old.clone();
    let mut s = app.stream("", Some(&id)).await;
    let first = s.next(5).await.unwrap();
    assert_eq!(first.event, "changes", "{first:?}");
    assert_eq!(first.id.as_deref(), Some(v.to_string().as_str()));
    sdk.apply(&Changes::from_json(first.data.as_bytes()).unwrap())
        .unwrap();
    assert_eq!(&sdk, &app.v2().await);

    // A second instance, started after the changes: its memory starts at its load, so it asks
    // the outbox.
    let late = AppState::new(options(), pool.clone());
    late.live.refresh_all(&pool).await.unwrap();
    let late = TestApp {
        state: late,
        admin: app.admin.clone(),
        server: app.server.clone(),
    };
    assert_eq!(
        late.state.live.changes_since(old.version()),
        server::live::Catchup::Unknown
    );
    let mut sdk = old.clone();
    let mut s = late.stream("", Some(&id)).await;
    // Nothing new on this instance yet: a change wakes the stream.
    exec(
        &pool,
        &format!(
            "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{}', true)",
            tenant(20)
        ),
    )
    .await;
    late.state.live.refresh_snapshot(&pool).await.unwrap();
    let v = db_version(&pool).await;
    s.follow_to(&mut sdk, v).await;
    assert_eq!(&sdk, &late.v2().await);

    // The outbox pruned past the client's version: reload.
    store::outbox::prune(&pool, Duration::ZERO).await.unwrap();
    let mut s = late.stream("", Some(&id)).await;
    exec(
        &pool,
        &format!(
            "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{}', true)",
            tenant(21)
        ),
    )
    .await;
    late.state.live.refresh_snapshot(&pool).await.unwrap();
    let e = s.next(5).await.unwrap();
    assert_eq!(e.event, "reload", "{e:?}");
    assert_eq!(
        e.id, None,
        "a reload does not move the client's Last-Event-ID"
    );
    let v = db_version(&pool).await;
    assert_eq!(e.data, format!("{{\"version\":{v}}}"));

    // No version at all: reload first, then changes.
    let mut s = app.stream("", None).await;
    let e = s.next(5).await.unwrap();
    assert_eq!(e.event, "reload");
    let mut sdk = app.v2().await;
    exec(
        &pool,
        &format!(
            "UPDATE feature_flags SET enabled = false WHERE key = '{FLAG}' AND tenant_id = '{}'",
            tenant(10)
        ),
    )
    .await;
    let v = app.caught_up().await;
    s.follow_to(&mut sdk, v).await;
    assert_eq!(&sdk, &app.v2().await);

    let bad = app
        .call(
            Method::GET,
            "/api/client/stream?format=v2",
            Some(&app.server),
            &[("last-event-id", "yesterday")],
            None,
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// A burst of raw-SQL changes reaches the instance without a full load; notifications that arrive
/// while a read is in flight cost one more read, not one each.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn bursts_are_coalesced_and_never_reload_everything(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    app.follow().await;
    let before = app.state.live.stats();
    for n in 0..40 {
        exec(
            &pool,
            &format!(
                "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{}', true)",
                tenant(n)
            ),
        )
        .await;
    }
    app.caught_up().await;
    let snap = app.state.live.current();
    assert!((0..40).all(|n| snap.evaluate(FLAG, &tenant(n)).on));
    let after = app.state.live.stats();
    assert_eq!(after.full_loads, before.full_loads, "no full load");
    assert!(after.catch_ups > before.catch_ups && after.catch_ups - before.catch_ups <= 40);

    // The coalescing itself, without a listener: fifty requests for a catch-up while none runs
    // make one or two reads.
    let deaf = AppState::new(options(), pool.clone());
    server::live::spawn_with(deaf.pool.clone(), deaf.live.clone(), |_| async {
        Err(store::Error::Invalid("LISTEN refused (test)".into()))
    });
    let live = deaf.live.clone();
    eventually(5, "never loaded", || {
        let live = live.clone();
        async move { live.is_loaded() }
    })
    .await;
    let before = deaf.live.stats();
    for n in 0..40 {
        exec(&pool, &format!("UPDATE feature_flags SET enabled = false WHERE key = '{FLAG}' AND tenant_id = '{}'", tenant(n))).await;
    }
    for _ in 0..50 {
        deaf.live.mark_dirty();
    }
    let want = db_version(&pool).await;
    eventually(5, "the burst never arrived", || {
        let live = live.clone();
        async move { live.current().version() >= want }
    })
    .await;
    let after = deaf.live.stats();
    assert_eq!(after.full_loads, before.full_loads);
    // One read for the fifty requests (two if the deaf poll ran meanwhile).
    assert!(
        (1..=2).contains(&(after.catch_ups - before.catch_ups)),
        "{before:?} → {after:?}"
    );
    assert!((0..40).all(|n| !deaf.live.current().evaluate(FLAG, &tenant(n)).on));
}

/// When the outbox no longer reaches back to the instance's version it loads everything once,
/// then catches up again; `/api/health` and the metrics follow.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_gap_loads_everything_once(pool: PgPool) {
    let _ = server::metrics::handle();
    let app = TestApp::new(pool.clone()).await;
    assert_eq!(app.state.live.stats().full_loads, 1);
    exec(
        &pool,
        &format!(
            "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{}', true)",
            tenant(1)
        ),
    )
    .await;
    store::outbox::prune(&pool, Duration::ZERO).await.unwrap();
    let v = app.state.live.refresh_snapshot(&pool).await.unwrap();
    assert_eq!(v, db_version(&pool).await);
    assert_eq!(
        app.state.live.stats().full_loads,
        2,
        "the gap: one full load"
    );
    assert!(app.state.live.current().evaluate(FLAG, &tenant(1)).on);
    exec(
        &pool,
        &format!(
            "INSERT INTO feature_flags (key, tenant_id, enabled) VALUES ('{FLAG}', '{}', true)",
            tenant(2)
        ),
    )
    .await;
    app.state.live.refresh_snapshot(&pool).await.unwrap();
    assert_eq!(
        app.state.live.stats(),
        server::live::LiveStats {
            full_loads: 2,
            catch_ups: 1
        }
    );
    assert!(app.state.live.current().evaluate(FLAG, &tenant(2)).on);
    // Nothing changed: no load, no catch-up.
    app.state.live.refresh_snapshot(&pool).await.unwrap();
    assert_eq!(app.state.live.stats().catch_ups, 1);
    let health = app.call(Method::GET, "/api/health", None, &[], None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
    assert_eq!(
        health.json()["snapshot"]["version"].as_u64(),
        Some(db_version(&pool).await)
    );
    assert_eq!(health.json()["snapshot"]["tenants"], 40);
    let metrics = app
        .call(Method::GET, "/metrics", None, &[], None)
        .await
        .text;
    assert!(
        metrics.contains("tenantry_snapshot_loads_total{kind=\"delta\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("tenantry_snapshot_version"), "{metrics}");
}

/// Changes that outweigh the snapshot are not streamed: a `reload` instead.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn changes_too_large_for_an_event_make_a_reload(pool: PgPool) {
    let app = TestApp::new(pool.clone()).await;
    let held = app.state.live.current().version();
    let mut s = app.stream(&format!("&since={held}"), None).await;
    // One statement: a row for each of 40 tenants in enough new flags to pass the limit.
    let flags = server::live::MAX_EVENT_KEYS / 40 + 1;
    exec(&pool, &format!("INSERT INTO feature_flags (key, tenant_id, enabled) SELECT 'bulk_' || i, NULL, false FROM generate_series(1, {flags}) AS i")).await;
    exec(&pool, "INSERT INTO feature_flags (key, tenant_id, enabled) SELECT f.key, t.id, true FROM flags f CROSS JOIN tenants t WHERE f.key LIKE 'bulk\\_%'").await;
    app.state.live.refresh_snapshot(&pool).await.unwrap();
    assert_eq!(
        app.state.live.changes_since(held),
        server::live::Catchup::TooMany
    );
    let e = s.next(5).await.unwrap();
    assert_eq!(e.event, "reload", "{e:?}");
    assert!(app.state.live.current().evaluate("bulk_1", &tenant(3)).on);
}
