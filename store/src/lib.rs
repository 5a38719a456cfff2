//! Tenantry's Postgres layer. Every SQL statement of the project lives in this crate; callers get
//! typed rows and a typed [`Error`].

pub mod activity;
mod actor;
pub mod approvals;
pub mod audit;
pub mod backup;
pub mod dba;
pub mod demo;
mod error;
pub mod flags;
pub mod guards;
pub mod health;
pub mod migrations;
pub mod notify;
pub mod outbox;
pub mod plans;
pub mod rollout;
pub mod snapshot;
pub mod tenants;
pub mod tokens;
pub mod users;

use std::time::Duration;

pub use actor::{Actor, Source};
pub use error::Error;
pub use sqlx::postgres::PgListener;
use sqlx::postgres::PgPoolOptions;
pub use sqlx::PgPool;

/// The migrations of `../migrations`, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a caller waits for a connection before the request fails.
    pub acquire_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// A pool that connects on first use, so the server starts (and answers health checks with the
/// reason) while the database is away.
///
/// JIT compilation is turned off for Tenantry's sessions: its queries are short OLTP statements,
/// where LLVM compile time (≈ 200 ms for the tenant list over 100,000 tenants) dwarfs execution
/// (≈ 30 ms).
pub fn connect_lazy(url: &str, config: &PoolConfig) -> Result<PgPool, Error> {
    let options = url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .map_err(Error::from)?
        .options([("jit", "off")]);
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        .test_before_acquire(true)
        .connect_lazy_with(options))
}

/// Applies every pending migration.
pub async fn migrate(pool: &PgPool) -> Result<(), Error> {
    MIGRATOR.run(pool).await.map_err(Error::from)
}
