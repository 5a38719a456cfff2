//! The workspace's structural invariants (ARCHITECTURE.md, "Invariants"), checked on the manifests
//! and the source. Each test names the rule it keeps; a failure says which file breaks it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The source without `//` comment lines.
fn code(path: &Path) -> String {
    read(path)
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The dependency names of one `[…dependencies]` table of a crate's manifest.
fn deps(krate: &str, table: &str) -> BTreeSet<String> {
    let manifest: toml::Table = read(&root().join(krate).join("Cargo.toml"))
        .parse()
        .unwrap();
    let mut out = BTreeSet::new();
    if let Some(t) = manifest.get(table).and_then(|t| t.as_table()) {
        out.extend(t.keys().cloned());
    }
    // Target-specific tables: [target.'cfg(…)'.dependencies].
    if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
        for (_, t) in targets {
            if let Some(t) = t.get(table).and_then(|t| t.as_table()) {
                out.extend(t.keys().cloned());
            }
        }
    }
    out
}

#[test]
fn no_sql_outside_store() {
    for krate in ["flags", "app", "frontend", "server"] {
        assert!(
            !deps(krate, "dependencies").contains("sqlx"),
            "{krate}/Cargo.toml depends on sqlx: SQL lives in store/ (and migrations/) only"
        );
        for file in sources(&root().join(krate).join("src")) {
            let text = code(&file);
            // `"sqlx::query"` as a tracing target names no code.
            let uses = text
                .match_indices("sqlx::")
                .any(|(i, _)| !text[..i].ends_with('"'));
            assert!(
                !uses && !text.contains("use sqlx"),
                "{} uses sqlx: SQL lives in store/ only",
                file.display()
            );
        }
    }
}

#[test]
fn layers_point_one_way() {
    // flags ← store ← app ← server; frontend → app. Nothing imports upwards.
    // infra sits beside store: neither knows the other, the web app or the server.
    let forbidden: [(&str, &[&str]); 4] = [
        ("flags", &["store", "infra", "app", "server", "frontend"]),
        ("store", &["infra", "app", "server", "frontend"]),
        (
            "infra",
            &["store", "app", "server", "frontend", "leptos", "sqlx"],
        ),
        ("app", &["server", "frontend"]),
    ];
    for (krate, above) in forbidden {
        let d = deps(krate, "dependencies");
        for name in above {
            assert!(
                !d.contains(*name),
                "{krate} depends on {name}: the layers are flags ← store ← app ← server"
            );
        }
    }
}

/// `server` takes from the UI crate only what serves pages: the shell and the app, the page
/// prefixes behind sign-in, the server functions' context, publisher and counts, the CSP, the session
/// check, and the audit page's filter (its CSV export). Infrastructure comes from `infra`.
#[test]
fn server_takes_only_page_serving_items_from_app() {
    let allowed = [
        "app::App",
        "app::shell",
        "app::PROTECTED_PREFIXES",
        "app::ServerContext",
        "app::Publisher",
        "app::CountSource",
        "app::AppError",
        "app::csp",
        "app::url",
        "app::auth::session_user",
        "app::auth::UserView",
        "app::audit::AuditFilter",
    ];
    for file in sources(&root().join("server/src")) {
        let text = code(&file);
        for (i, _) in text.match_indices("app::") {
            if text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue; // e.g. `leptos_app::`, not the crate
            }
            let path: String = text[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            assert!(
                allowed.iter().any(|a| path == *a || path.starts_with(&format!("{a}::"))),
                "{} uses `{path}` from the UI crate: infrastructure belongs in infra/, and server takes from app only what serves pages",
                file.display()
            );
        }
    }
}

#[test]
fn flags_does_no_io() {
    // The engine is compiled to wasm and must not reach for a runtime, a clock or the network.
    let d = deps("flags", "dependencies");
    for io in [
        "tokio",
        "sqlx",
        "reqwest",
        "hyper",
        "chrono",
        "rand",
        "getrandom",
        "std-fs",
    ] {
        assert!(!d.contains(io), "flags depends on {io}: flags does no IO");
    }
}

/// Every route of the HTTP API is registered once, in the registry that also writes the OpenAPI
/// document (`openapi::api` and the admin router, with `routes!`); `startup.rs` adds only the
/// four routes that are not part of the API.
#[test]
fn every_api_route_is_documented() {
    let src = root().join("server/src");
    let mut documented = BTreeSet::new();
    let mut registered = String::new();
    for file in sources(&src) {
        let text = code(&file);
        let rel = file.strip_prefix(&src).unwrap().display().to_string();
        // Handlers with their documentation.
        let mut rest = text.as_str();
        while let Some(i) = rest.find("#[utoipa::path(") {
            rest = &rest[i..];
            let f = rest.find("pub async fn ").expect("a documented handler");
            let name: String = rest[f + "pub async fn ".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let module = rel.trim_end_matches(".rs").replace('/', "::");
            documented.insert(format!("{module}::{name}"));
            rest = &rest[f..];
        }
        for (i, _) in text.match_indices("routes!(") {
            let end = text[i..].find(')').unwrap();
            registered.push_str(&text[i..i + end]);
            registered.push('\n');
        }
        // Plain axum routes are only in startup.rs — besides `tenantry demo-metrics`, a server of
        // its own (synthetic SaaS metrics for a demo's guards), not Tenantry's API.
        if rel == "demo_metrics.rs" {
            continue;
        }
        for (i, _) in text.match_indices(".route(") {
            // The call up to its handler (rustfmt may break it over lines).
            let line: String = text[i..]
                .split_inclusive(')')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                rel == "startup.rs",
                "{rel}: `{line}` registers a route outside the OpenAPI registry (openapi::api)"
            );
            let allowed = [
                "\"/api/openapi.json\"",
                "\"/metrics\"",
                "\"/api/ui/stream\"",
                "\"/audit/export.csv\"",
                // The evaluation hot path (`startup::hot_path`): the registry's own handlers,
                // documented there, served first by a router of their own.
                "\"/api/features\", get(eval::features",
                "\"/ofrep/v1/evaluate/flags/{key}\", axum::routing::post(crate::api::ofrep::evaluate_one",
            ];
            assert!(
                allowed.iter().any(|a| line.contains(a)),
                "startup.rs: `{line}` is not one of the documented exceptions; add the route to openapi::api with #[utoipa::path]"
            );
        }
    }
    assert!(documented.len() >= 30, "found only {documented:?}");
    for handler in &documented {
        let name = handler.rsplit("::").next().unwrap();
        assert!(
            registered.contains(&format!("::{name}")) || registered.contains(&format!("({name}")),
            "{handler} has #[utoipa::path] but no routes!() registers it"
        );
    }
}

/// Admin handlers take the `Admin` extractor: the scope is checked before the handler runs, never
/// by a line in it that could be forgotten.
#[test]
fn admin_handlers_take_the_admin_extractor() {
    let dir = root().join("server/src/api/admin");
    let mut handlers = 0;
    for file in sources(&dir) {
        let text = code(&file);
        for (i, _) in text.match_indices("pub async fn ") {
            let sig_end = text[i..].find(") ->").unwrap();
            let sig = &text[i..i + sig_end];
            handlers += 1;
            assert!(
                sig.contains(": Admin,"),
                "{}: `{}` does not take the Admin extractor",
                file.display(),
                sig.lines().next().unwrap_or_default()
            );
        }
    }
    assert!(handlers >= 28, "found only {handlers} admin handlers");
}
