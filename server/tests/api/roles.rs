//! Who may call what: the role × endpoint matrix.

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt;
use serde_json::json;
use server::auth::Scope;
use sqlx::PgPool;
use tower::ServiceExt;
use utoipa::OpenApi;

use crate::helpers::{sign_in, token, TestApp, FLAG};

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
        "/rpc/whoami" | "/rpc/logout" | "/rpc/approvals_waiting" => (None, String::new(), form),
        "/rpc/login" => (None, "username=nobody&password=x".into(), form),
        "/rpc/audit_page" => (Some(ALL), json!({"filter": {}}).to_string(), json),
        "/rpc/dashboard" | "/rpc/list_flags" | "/rpc/flags_page" => (Some(ALL), String::new(), form),
        "/rpc/migration_status" | "/rpc/db_health" | "/rpc/list_backups" | "/rpc/take_backup" => {
            (Some(DBA), String::new(), form)
        }
        "/rpc/flag_editor" | "/rpc/plan_panel" | "/rpc/flag_page_summary" => (Some(ALL), k, form),
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
