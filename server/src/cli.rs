//! The `tenantry` command line: `serve` (the default), `migrate`, `seed-demo`.
use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use store::rollout::{Gating, Spec};

/// Tenantry: the rollout control plane for tenant-scoped feature flags.
#[derive(Debug, Parser)]
#[command(name = "tenantry", version, about)]
pub struct Cli {
    /// Postgres connection string.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve the web app and the API.
    Serve {
        /// Address to listen on (default: LEPTOS_SITE_ADDR or 127.0.0.1:3000).
        #[arg(long, env = "TENANTRY_ADDR")]
        addr: Option<SocketAddr>,
        /// Do not apply migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending migrations and print the migration status.
    Migrate,
    /// Demo only: serve synthetic SaaS metrics for the seed plan's guards on `/metrics` (healthy;
    /// `POST /error-rate?ratio=0.02` makes the API error rate bad). `scripts/run` starts it with
    /// a Prometheus scraping it. Needs no database.
    DemoMetrics {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9464")]
        addr: SocketAddr,
        /// Share of requests that fail at start (0.0002 = 0.02%).
        #[arg(long, default_value_t = 0.0002)]
        error_ratio: f64,
    },
    /// Load demo tenants (idempotent).
    SeedDemo {
        /// How many demo tenants to ensure.
        #[arg(long, default_value_t = 240)]
        tenants: usize,
    },
    /// People who sign in to the web app.
    User {
        /// What to do with users.
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Machine tokens.
    Token {
        /// What to do with tokens.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Turn a flag ON for one tenant (it becomes a pilot), like the seed's enable-multi-workspace.
    /// On an OFF flag this enters the pilot phase, so the pilot gates apply.
    Enable {
        /// Flag key.
        #[arg(long, default_value = "multi_workspace_enabled")]
        flag: String,
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// Break glass: pass unmet gates, with this reason (audited).
        #[arg(long = "override")]
        override_reason: Option<String>,
    },
    /// Turn a flag OFF for one tenant.
    Disable {
        /// Flag key.
        #[arg(long, default_value = "multi_workspace_enabled")]
        flag: String,
        /// Tenant id.
        #[arg(long)]
        tenant: String,
    },
    /// Advance a flag to the next phase (OFF → pilot → 10% → 50% → 100%) when the plan's gates
    /// for it hold; otherwise lists what does not hold.
    Advance {
        /// Flag key.
        #[arg(long, default_value = "multi_workspace_enabled")]
        flag: String,
        /// Break glass: pass unmet gates, with this reason (audited as gate.override).
        #[arg(long = "override")]
        override_reason: Option<String>,
    },
    /// Dump the database to `backup_<db>_YYYYMMDD_HHMMSS.sql.gz` (pg_dump piped through gzip).
    Backup {
        /// Directory to write to.
        #[arg(long, env = "TENANTRY_BACKUP_DIR", default_value = "backups")]
        dir: std::path::PathBuf,
    },
    /// Restore a backup into the database (replaces its contents). Checks the file first; refuses
    /// without --yes.
    Restore {
        /// A `backup_*.sql.gz` file.
        file: std::path::PathBuf,
        /// Yes, replace the database's contents.
        #[arg(long)]
        yes: bool,
    },
    /// Roll a flag back: every row OFF (the seed's Quick Rollback), or one phase down.
    Rollback {
        /// Flag key.
        #[arg(long, default_value = "multi_workspace_enabled")]
        flag: String,
        /// `off` or `previous`.
        #[arg(long, default_value = "off")]
        to: flags::change::RollbackTarget,
    },
}

/// User verbs.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (the password is read from TENANTRY_PASSWORD, or asked for).
    Add {
        /// Login name.
        name: String,
        /// admin, product_owner, qa, dba or viewer.
        #[arg(long, value_parser = ["admin", "product_owner", "qa", "dba", "viewer"])]
        role: String,
        /// Password (prefer the TENANTRY_PASSWORD variable or the prompt).
        #[arg(long, env = "TENANTRY_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Reset the password and role if the user exists (this also enables it again and ends
        /// its sessions).
        #[arg(long)]
        replace: bool,
    },
    /// List users (never their password hashes).
    List,
    /// Disable a user: it can no longer sign in, and its sessions end at once.
    Disable {
        /// Login name.
        name: String,
    },
    /// Enable a disabled user again (it signs in anew; old sessions stay ended).
    Enable {
        /// Login name.
        name: String,
    },
    /// A user's sign-in sessions.
    Sessions {
        /// What to do with the sessions.
        #[command(subcommand)]
        command: SessionsCommand,
    },
}

/// Session verbs.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// End every session of a user (they sign in again).
    Revoke {
        /// Login name.
        name: String,
    },
}

/// Token verbs.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown once).
    Create {
        /// admin, server or tenant.
        #[arg(long, value_parser = ["admin", "server", "tenant"])]
        scope: String,
        /// Unique name (default: <scope>-<time>).
        #[arg(long)]
        name: Option<String>,
        /// Tenant of a tenant token.
        #[arg(long)]
        tenant: Option<String>,
        /// Register this secret instead of generating one (e.g. an existing SAAS_ADMIN_TOKEN).
        #[arg(long, env = "TENANTRY_TOKEN_VALUE", hide_env_values = true)]
        value: Option<String>,
        /// Print nothing and succeed when a live token with this name exists.
        #[arg(long)]
        if_missing: bool,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id.
        id: i64,
    },
}

fn cli_actor() -> store::Actor {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    store::Actor::new(format!("cli:{user}"), store::Source::Cli)
}

fn print_change(what: &str, c: &store::flags::Change) {
    println!(
        "{what}: {} tenant(s) turned ON, {} turned OFF (flag version {})",
        c.turned_on.len(),
        c.turned_off.len(),
        c.version
    );
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::DemoMetrics { addr, error_ratio }) = cli.command {
        return crate::demo_metrics::serve(addr, error_ratio).await;
    }
    let url = cli
        .database_url
        .context("DATABASE_URL is not set (pass --database-url or set the variable)")?;
    let pool = store::connect_lazy(&url, &store::PoolConfig::default())?;
    match cli.command.unwrap_or(Command::Serve {
        addr: None,
        no_migrate: false,
    }) {
        Command::Serve { addr, no_migrate } => {
            if !no_migrate {
                store::migrate(&pool).await.context("applying migrations")?;
            }
            crate::startup::serve(pool, url, addr).await
        }
        Command::DemoMetrics { addr, error_ratio } => {
            crate::demo_metrics::serve(addr, error_ratio).await
        }
        Command::Migrate => {
            store::migrate(&pool).await.context("applying migrations")?;
            for m in store::migrations::status(&pool).await? {
                println!(
                    "{:>14}  {:<9}  {}",
                    m.version,
                    serde_json::to_value(m.state)?.as_str().unwrap_or("?"),
                    m.description
                );
            }
            Ok(())
        }
        Command::Token { command } => token(&pool, command).await,
        Command::User { command } => user(&pool, command).await,
        Command::Enable {
            flag,
            tenant,
            override_reason,
        } => {
            let spec = Spec::Tenant {
                tenant: tenant.clone(),
                enabled: true,
                excluded: None,
            };
            let gating = Gating::with_override(override_reason);
            let a = store::rollout::change(&pool, &cli_actor(), &flag, &spec, None, &gating)
                .await
                .map_err(gated)?;
            print_change(&format!("{flag} enabled for {tenant}"), &a.change);
            Ok(())
        }
        Command::Disable { flag, tenant } => {
            let spec = Spec::Tenant {
                tenant: tenant.clone(),
                enabled: false,
                excluded: None,
            };
            let a = store::rollout::change(&pool, &cli_actor(), &flag, &spec, None, &Gating::now())
                .await?;
            print_change(&format!("{flag} disabled for {tenant}"), &a.change);
            Ok(())
        }
        Command::Advance {
            flag,
            override_reason,
        } => {
            let gating = Gating::with_override(override_reason);
            let a =
                store::rollout::change(&pool, &cli_actor(), &flag, &Spec::Advance, None, &gating)
                    .await
                    .map_err(gated)?;
            print_change(&format!("{flag} advanced to {}", a.phase), &a.change);
            Ok(())
        }
        Command::Rollback { flag, to } => {
            let spec = Spec::Rollback(to);
            let a = store::rollout::change(&pool, &cli_actor(), &flag, &spec, None, &Gating::now())
                .await?;
            print_change(&format!("{flag} rolled back ({to})"), &a.change);
            Ok(())
        }
        Command::Backup { dir } => {
            let taken = store::backup::take(&pool, &cli_actor(), &url, &dir).await?;
            println!(
                "backup written: {} ({} bytes)",
                dir.join(&taken.name).display(),
                taken.bytes
            );
            Ok(())
        }
        Command::Restore { file, yes } => {
            let f = file.clone();
            let checked = tokio::task::spawn_blocking(move || store::backup::check(&f))
                .await
                .context("the check task failed")??;
            println!(
                "{}: a complete pg_dump script, {} bytes of SQL, data for {} tables",
                file.display(),
                checked.sql_bytes,
                checked.tables
            );
            if !yes {
                anyhow::bail!(
                    "restoring replaces the contents of the database; nothing was changed. Re-run with --yes"
                );
            }
            store::backup::restore(&url, &file).await?;
            store::backup::record(
                &pool,
                &cli_actor(),
                "backup.restore",
                serde_json::json!({ "file": file.display().to_string() }),
            )
            .await?;
            println!("restored {}", file.display());
            Ok(())
        }
        Command::SeedDemo { tenants } => {
            let inserted = store::demo::seed_tenants(&pool, tenants).await?;
            println!("demo data: {inserted} tenants inserted ({tenants} wanted)");
            let events =
                store::demo::seed_activity(&pool, &["acme-logistics", "globex-health"]).await?;
            if events > 0 {
                println!("demo data: {events} workspace activity events");
            }
            Ok(())
        }
    }
}

async fn user(pool: &store::PgPool, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            role,
            password,
            replace,
        } => {
            let password = match password {
                Some(p) => p,
                None => rpassword::prompt_password(format!("password for {name}: "))?,
            };
            if password.chars().count() < 8 {
                anyhow::bail!("the password must have at least 8 characters");
            }
            let hash = infra::password::hash(&password)?;
            let row = store::users::upsert(
                pool,
                &cli_actor(),
                &name.to_lowercase(),
                &hash,
                &role,
                replace,
            )
            .await?;
            println!("user {} ({}) ready", row.username, row.role);
            Ok(())
        }
        UserCommand::List => {
            for u in store::users::list(pool).await? {
                println!(
                    "{:>5}  {:<32} {:<14} {}",
                    u.id,
                    u.username,
                    u.role,
                    match u.disabled_at {
                        Some(at) => format!("disabled {}", at.format("%Y-%m-%d %H:%M")),
                        None => "live".into(),
                    }
                );
            }
            Ok(())
        }
        UserCommand::Disable { name } => {
            let row =
                store::users::set_disabled(pool, &cli_actor(), &name.to_lowercase(), true).await?;
            println!("user {} disabled; its sessions ended", row.username);
            Ok(())
        }
        UserCommand::Enable { name } => {
            let row =
                store::users::set_disabled(pool, &cli_actor(), &name.to_lowercase(), false).await?;
            println!("user {} enabled", row.username);
            Ok(())
        }
        UserCommand::Sessions {
            command: SessionsCommand::Revoke { name },
        } => {
            let row =
                store::users::revoke_sessions(pool, &cli_actor(), &name.to_lowercase()).await?;
            println!("every session of {} ended", row.username);
            Ok(())
        }
    }
}

async fn token(pool: &store::PgPool, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            scope,
            name,
            tenant,
            value,
            if_missing,
        } => {
            let scope = match scope.as_str() {
                "admin" => crate::auth::Scope::Admin,
                "server" => crate::auth::Scope::Server,
                _ => crate::auth::Scope::Tenant,
            };
            let name = name.unwrap_or_else(|| {
                format!(
                    "{}-{}",
                    scope.as_str(),
                    chrono::Utc::now().format("%Y%m%d%H%M%S")
                )
            });
            if if_missing && store::tokens::find_live(pool, &name).await?.is_some() {
                return Ok(());
            }
            let secret = match value {
                Some(v) if v.len() >= 16 => v,
                Some(_) => anyhow::bail!("--value must be at least 16 characters"),
                None => crate::auth::generate_secret(scope)?,
            };
            let row = crate::tokens::create(
                pool,
                &cli_actor(),
                &name,
                scope,
                tenant.as_deref(),
                None,
                &secret,
                None,
            )
            .await?;
            eprintln!(
                "created token {} ({}, scope {}); the secret is shown once:",
                row.id, row.name, row.scope
            );
            println!("{secret}");
            Ok(())
        }
        TokenCommand::List => {
            for t in store::tokens::list(pool).await? {
                println!(
                    "{:>5}  {:<24} {:<7} {:<20} {}  {}",
                    t.id,
                    t.name,
                    t.scope,
                    t.tenant_id.unwrap_or_default(),
                    t.prefix,
                    if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "live"
                    }
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let t = store::tokens::revoke(pool, &cli_actor(), id).await?;
            println!("revoked token {} ({})", t.id, t.name);
            Ok(())
        }
    }
}

/// A refused phase change, one unmet gate per line (other errors unchanged).
fn gated(e: store::Error) -> anyhow::Error {
    match e {
        store::Error::Gated { phase, unmet, .. } => anyhow::anyhow!(
            "refused: the gates of {phase} do not hold:\n  - {}\n(an operator may pass them with --override \"reason\", audited)",
            unmet.join("\n  - ")
        ),
        store::Error::Paused { reason } => anyhow::anyhow!(
            "refused: the rollout is paused: {reason}\n(a person resumes it on the flag's page or with POST /api/admin/flags/KEY/plan/resume)"
        ),
        other => other.into(),
    }
}
