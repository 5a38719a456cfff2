//! The DBA pages (dba and admin roles): `/dba/migrations` (what the binary knows versus what the
//! database has applied, and the seed's verification query), `/dba/health` (pool, size, largest
//! tables, slowest statements, average query time against the seed's thresholds) and
//! `/dba/backups` (the backup directory, and taking a backup).
use leptos::prelude::*;
use leptos_meta::Title;
use serde::{Deserialize, Serialize};

use crate::AppError;

/// One migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationView {
    /// Version.
    pub version: i64,
    /// Description.
    pub description: String,
    /// Applied at (UTC), if applied.
    pub applied_at: Option<String>,
    /// Execution time, ms.
    pub execution_ms: Option<f64>,
    /// `applied`, `pending`, `drifted`, `failed` or `unknown`.
    pub state: String,
}

/// The migration page's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationsData {
    /// Every migration.
    pub migrations: Vec<MigrationView>,
    /// No pending, failed or drifted migration: the readiness gate holds.
    pub ready: bool,
    /// The seed's verification query.
    pub verification_query: String,
    /// Its result (the plan expects 1).
    pub verification_count: i64,
    /// The global row is there.
    pub verification_global: bool,
    /// Tenant rows the rollout has written (the plan's 1 holds before any pilot).
    pub verification_tenant_rows: i64,
}

/// The migration page's body, rendered on the server.
#[server(prefix = "/rpc", endpoint = "migration_status")]
pub async fn migration_status() -> Result<String, AppError> {
    let d = ssr::migrations_data().await?;
    Ok(crate::html::render(
        move || view! { <ssr::MigrationsBody d /> },
    ))
}

/// A table's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableView {
    /// Name.
    pub name: String,
    /// Bytes.
    pub bytes: i64,
    /// Estimated rows.
    pub rows: i64,
}

/// A statement's timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatementView {
    /// Text.
    pub query: String,
    /// Calls.
    pub calls: i64,
    /// Mean ms.
    pub mean_ms: f64,
    /// Total ms.
    pub total_ms: f64,
}

/// The health page's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthData {
    /// Database.
    pub database: String,
    /// Server version.
    pub server_version: String,
    /// Size, bytes.
    pub size_bytes: i64,
    /// Connections to the database.
    pub connections: i64,
    /// Tenantry's pool: open connections.
    pub pool_size: u32,
    /// Tenantry's pool: idle connections.
    pub pool_idle: u32,
    /// Tenantry's pool: maximum.
    pub pool_max: u32,
    /// Largest tables.
    pub tables: Vec<TableView>,
    /// Slowest statements (None: pg_stat_statements unavailable).
    pub statements: Option<Vec<StatementView>>,
    /// Average query time, ms.
    pub avg_query_ms: Option<f64>,
    /// `normal`, `elevated` or `alert` against the seed's thresholds.
    pub status: Option<String>,
    /// `pg_stat_statements` or `tenantry` (this server's own statements).
    pub statements_source: Option<String>,
}

/// The health page's body, rendered on the server.
#[server(prefix = "/rpc", endpoint = "db_health")]
pub async fn db_health() -> Result<String, AppError> {
    let h = ssr::health_data().await?;
    Ok(crate::html::render(move || view! { <ssr::HealthBody h /> }))
}

/// A backup file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupView {
    /// File name.
    pub name: String,
    /// Size, bytes.
    pub bytes: u64,
    /// Written at (UTC).
    pub modified: String,
    /// Age in seconds.
    pub age_seconds: i64,
}

/// The backups page's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupsData {
    /// The directory.
    pub dir: String,
    /// Newest first.
    pub backups: Vec<BackupView>,
    /// Whether this server can take backups (it knows the connection string).
    pub can_backup: bool,
}

/// The backups page's body, rendered on the server.
#[server(prefix = "/rpc", endpoint = "list_backups")]
pub async fn list_backups() -> Result<String, AppError> {
    let d = ssr::backups_data().await?;
    Ok(crate::html::render(
        move || view! { <ssr::BackupsBody d /> },
    ))
}

/// Takes a backup now (pg_dump piped through gzip), audited.
#[server(prefix = "/rpc", endpoint = "take_backup")]
pub async fn take_backup() -> Result<String, AppError> {
    let user = crate::auth::require(ssr::DBA_ROLES).await?;
    let ctx = crate::server_context()?;
    let url = ctx.database_url.clone().ok_or_else(|| {
        AppError::Invalid("this server was started without a database URL for pg_dump".into())
    })?;
    let taken =
        store::backup::take(&ctx.pool, &crate::auth::actor(&user), &url, &ctx.backup_dir).await?;
    ctx.publish().await;
    Ok(taken.name)
}

#[component]
fn DbaNav() -> impl IntoView {
    use leptos_router::components::A;
    view! {
        <nav class="subnav" aria-label="Database">
            <A href="/dba/migrations">"Migrations"</A>
            <A href="/dba/health">"Health"</A>
            <A href="/dba/backups">"Backups"</A>
        </nav>
    }
}

/// `/dba/migrations`.
#[component]
pub fn MigrationsPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| migration_status());
    view! {
        <Title text="Migrations" />
        <section class="page">
            <DbaNav />
            <div class="page-head">
                <h1>"Migrations"</h1>
                <p class="muted">"What this binary knows against what the database has applied. Drifted: the file changed after it was applied."</p>
            </div>
            <crate::html::ServerBody data loading="Loading…" error_testid="dba-error" />
        </section>
    }
}

/// `/dba/health`.
#[component]
pub fn HealthPage() -> impl IntoView {
    let data = Resource::new(|| (), |_| db_health());
    view! {
        <Title text="Database health" />
        <section class="page">
            <DbaNav />
            <div class="page-head">
                <h1>"Database health"</h1>
                <p class="muted">"Average query time against the plan's thresholds: normal below 100 ms, alert above 500 ms."</p>
            </div>
            <crate::html::ServerBody data loading="Loading…" error_testid="dba-error" />
        </section>
    }
}

/// `/dba/backups`.
#[component]
pub fn BackupsPage() -> impl IntoView {
    let take = ServerAction::<TakeBackup>::new();
    let data = Resource::new(move || take.version().get(), |_| list_backups());
    view! {
        <Title text="Backups" />
        <section class="page">
            <DbaNav />
            <div class="page-head">
                <h1>"Backups"</h1>
                <p class="muted">
                    "pg_dump piped through gzip, named like the plan's script: " <code>"backup_<db>_YYYYMMDD_HHMMSS.sql.gz"</code>
                    ". Restore with " <code>"tenantry restore FILE --yes"</code> " (it checks the file before it touches anything)."
                </p>
            </div>
            {move || take.value().get().map(|r| match r {
                Ok(name) => view! { <div class="toast ok" role="status" data-testid="backup-message">{format!("Backup written: {name}")}</div> }.into_any(),
                Err(e) => view! { <div class="toast err" role="alert" data-testid="backup-message">{e.to_string()}</div> }.into_any(),
            })}
            <ActionForm action=take>
                <button type="submit" class="btn primary" data-testid="take-backup" disabled=move || take.pending().get()>
                    {move || if take.pending().get() { "Backing up…" } else { "Take a backup now" }}
                </button>
            </ActionForm>
            <crate::html::ServerBody data loading="Loading…" error_testid="dba-error" />
        </section>
    }
}

/// Server-only: who sees the DBA pages, their data and their HTML.
#[cfg(feature = "ssr")]
mod ssr {
    use leptos::prelude::*;

    use super::{
        BackupView, BackupsData, HealthData, MigrationView, MigrationsData, StatementView,
        TableView,
    };
    use crate::auth::Role;
    use crate::format::{human_age, human_bytes};
    use crate::AppError;

    /// Roles that see the DBA pages.
    pub const DBA_ROLES: &[Role] = &[Role::Admin, Role::Dba];

    /// Migration status.
    pub async fn migrations_data() -> Result<MigrationsData, AppError> {
        crate::auth::require(DBA_ROLES).await?;
        let ctx = crate::server_context()?;
        let rows = store::migrations::status(&ctx.pool).await?;
        let counts = store::migrations::counts(&ctx.pool).await?;
        let (global, tenant_rows) = store::migrations::seed_verification_rows(&ctx.pool).await?;
        let migrations = rows
            .into_iter()
            .map(|m| MigrationView {
                version: m.version,
                description: m.description,
                applied_at: m.applied_at.map(crate::format::display_time),
                execution_ms: m.execution_ms,
                state: serde_json::to_value(m.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            })
            .collect();
        Ok(MigrationsData {
            migrations,
            ready: counts.ready(),
            verification_query: store::migrations::SEED_VERIFICATION_QUERY.to_string(),
            verification_count: store::migrations::seed_verification(&ctx.pool).await?,
            verification_global: global,
            verification_tenant_rows: tenant_rows,
        })
    }

    /// Database health.
    pub async fn health_data() -> Result<HealthData, AppError> {
        crate::auth::require(DBA_ROLES).await?;
        let ctx = crate::server_context()?;
        let h = store::dba::health(&ctx.pool).await?;
        Ok(HealthData {
            status: h
                .avg_query_ms
                .map(|ms| store::dba::query_time_status(ms).to_string()),
            database: h.database,
            server_version: h.server_version,
            size_bytes: h.size_bytes,
            connections: h.connections,
            pool_size: ctx.pool.size(),
            pool_idle: u32::try_from(ctx.pool.num_idle()).unwrap_or(u32::MAX),
            pool_max: ctx.pool.options().get_max_connections(),
            tables: h
                .tables
                .into_iter()
                .map(|t| TableView {
                    name: t.name,
                    bytes: t.total_bytes,
                    rows: t.rows,
                })
                .collect(),
            statements: h.statements.map(|s| {
                s.into_iter()
                    .map(|s| StatementView {
                        query: s.query,
                        calls: s.calls,
                        mean_ms: s.mean_ms,
                        total_ms: s.total_ms,
                    })
                    .collect()
            }),
            avg_query_ms: h.avg_query_ms,
            statements_source: h.statements_source,
        })
    }

    /// The backup directory's contents.
    pub async fn backups_data() -> Result<BackupsData, AppError> {
        crate::auth::require(DBA_ROLES).await?;
        let ctx = crate::server_context()?;
        let now = chrono::Utc::now();
        let backups = store::backup::list(&ctx.backup_dir)?
            .into_iter()
            .map(|b| BackupView {
                age_seconds: (now - b.modified).num_seconds().max(0),
                modified: crate::format::display_time(b.modified),
                name: b.name,
                bytes: b.bytes,
            })
            .collect();
        Ok(BackupsData {
            dir: ctx.backup_dir.display().to_string(),
            backups,
            can_backup: ctx.database_url.is_some(),
        })
    }

    #[component]
    pub fn MigrationsBody(d: MigrationsData) -> impl IntoView {
        view! {
            <p data-testid="migrations-ready" class=if d.ready { "gate ok" } else { "gate open" }>
                {if d.ready { "✓ Ready: no pending or drifted migration." } else { "✗ Not ready: pending or drifted migrations." }}
            </p>
            <div class="table-wrap">
                <table class="table">
                    <thead><tr><th>"Version"</th><th>"Description"</th><th>"Applied"</th><th class="num">"Took"</th><th>"State"</th></tr></thead>
                    <tbody>
                        {d.migrations.into_iter().map(|m| view! {
                            <tr data-testid="migration-row" class=format!("state-{}", m.state)>
                                <td><code>{m.version}</code></td>
                                <td>{m.description}</td>
                                <td>{m.applied_at.unwrap_or_else(|| "—".into())}</td>
                                <td class="num">{m.execution_ms.map(|ms| format!("{ms:.1} ms")).unwrap_or_default()}</td>
                                <td><span class=format!("pill state-{}", m.state)>{m.state.clone()}</span></td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
            <div class="panel">
                <h2>"The plan's verification query"</h2>
                <pre><code>{d.verification_query}</code></pre>
                {if d.verification_count == 1 {
                    view! {
                        <p class="notice ok" data-testid="verification-result">"Result: " <strong data-testid="verification-count">{d.verification_count}</strong>
                            " — as the plan expects (the global row)."</p>
                    }.into_any()
                } else if d.verification_global && d.verification_tenant_rows > 0
                    && d.verification_count == d.verification_tenant_rows + 1 {
                    view! {
                        <p class="notice ok" data-testid="verification-result">"Result: " <strong data-testid="verification-count">{d.verification_count}</strong>
                            {format!(" — the global row and {} tenant row(s) the rollout has written since. The plan's 1 is the count right after the migration, before any pilot.", d.verification_tenant_rows)}</p>
                    }.into_any()
                } else {
                    view! {
                        <p class="notice warn" role="alert" data-testid="verification-result">"⚠ Result: " <strong data-testid="verification-count">{d.verification_count}</strong>
                            " — the plan expects 1 (only the global row). Check the flag's rows before going on."</p>
                    }.into_any()
                }}
            </div>
        }
    }

    #[component]
    pub fn HealthBody(h: HealthData) -> impl IntoView {
        let avg = match (h.avg_query_ms, h.status.clone()) {
            (Some(ms), Some(status)) => format!("{ms:.2} ms average — {status}"),
            _ => "unknown: no statement timings yet".to_string(),
        };
        let source = match h.statements_source.as_deref() {
            Some("pg_stat_statements") => "From pg_stat_statements: every client of this database.",
            Some(_) => "pg_stat_statements is not available here: these are Tenantry's own statements, timed by this server since it started.",
            None => "",
        };
        let status_class = format!(
            "gate {}",
            match h.status.as_deref() {
                Some("normal") => "ok",
                Some("alert") => "open",
                _ => "warn",
            }
        );
        view! {
            <div class="cards">
                <article class="card"><h2>"Database"</h2><p><code data-testid="db-name">{h.database}</code></p><p class="muted small">{format!("PostgreSQL {}", h.server_version)}</p></article>
                <article class="card"><h2>"Size"</h2><p data-testid="db-size">{human_bytes(h.size_bytes)}</p><p class="muted small">{format!("{} connections to this database", h.connections)}</p></article>
                <article class="card"><h2>"Tenantry's pool"</h2><p data-testid="pool">{format!("{} open, {} idle, {} max", h.pool_size, h.pool_idle, h.pool_max)}</p></article>
                <article class="card"><h2>"Query time"</h2><p class=status_class data-testid="avg-query">{avg}</p></article>
            </div>
            <div class="panel">
                <h2>"Largest tables"</h2>
                <table class="table">
                    <thead><tr><th>"Table"</th><th class="num">"Size"</th><th class="num">"Rows (estimate)"</th></tr></thead>
                    <tbody>
                        {h.tables.into_iter().map(|t| view! {
                            <tr data-testid="table-row"><td><code>{t.name}</code></td><td class="num">{human_bytes(t.bytes)}</td><td class="num">{t.rows}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
            <div class="panel">
                <h2>"Slowest statements"</h2>
                <p class="muted small" data-testid="statements-source">{source}</p>
                {match h.statements {
                    None => view! { <p class="muted" data-testid="no-statements">"No timings yet: pg_stat_statements is not installed or not preloaded in this database (scripts/run enables it on its own Postgres), and this server has not run a statement."</p> }.into_any(),
                    Some(list) => view! {
                        <table class="table">
                            <thead><tr><th>"Statement"</th><th class="num">"Calls"</th><th class="num">"Mean"</th><th class="num">"Total"</th></tr></thead>
                            <tbody>
                                {list.into_iter().map(|s| view! {
                                    <tr data-testid="statement-row">
                                        <td class="change"><code>{s.query.chars().take(160).collect::<String>()}</code></td>
                                        <td class="num">{s.calls}</td>
                                        <td class="num">{format!("{:.2} ms", s.mean_ms)}</td>
                                        <td class="num">{format!("{:.0} ms", s.total_ms)}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }}
            </div>
        }
    }

    #[component]
    pub fn BackupsBody(d: BackupsData) -> impl IntoView {
        view! {
            <p class="muted">"Directory: " <code>{d.dir.clone()}</code>
                {(!d.can_backup).then_some(" (this server was started without a database URL: take backups with `tenantry backup`)")}</p>
            {if d.backups.is_empty() {
                view! { <div class="empty" data-testid="no-backups"><p>"No backup in this directory yet."</p></div> }.into_any()
            } else {
                view! {
                    <table class="table">
                        <thead><tr><th>"File"</th><th class="num">"Size"</th><th>"Written"</th><th class="num">"Age"</th></tr></thead>
                        <tbody>
                            {d.backups.into_iter().map(|b| view! {
                                <tr data-testid="backup-row">
                                    <td><code>{b.name}</code></td>
                                    <td class="num">{human_bytes(i64::try_from(b.bytes).unwrap_or(i64::MAX))}</td>
                                    <td>{b.modified}</td>
                                    <td class="num">{human_age(b.age_seconds)}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        }
    }
}
