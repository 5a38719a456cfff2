//! The `rollgate` command line: `serve` (the default), `migrate`, `seed-demo`.
use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Rollgate: the rollout control plane for tenant-scoped feature flags.
#[derive(Debug, Parser)]
#[command(name = "rollgate", version, about)]
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
        #[arg(long, env = "ROLLGATE_ADDR")]
        addr: Option<SocketAddr>,
        /// Do not apply migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending migrations and print the migration status.
    Migrate,
    /// Load demo tenants (idempotent).
    SeedDemo {
        /// How many demo tenants to ensure.
        #[arg(long, default_value_t = 240)]
        tenants: usize,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
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
            crate::startup::serve(pool, addr).await
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
        Command::SeedDemo { tenants } => {
            let inserted = store::demo::seed_tenants(&pool, tenants).await?;
            println!("demo data: {inserted} tenants inserted ({tenants} wanted)");
            Ok(())
        }
    }
}
