//! What the server gives every server function through the Leptos context: the pool and the
//! configuration they read, the sign-in throttle, and the publisher that makes a write visible on
//! this instance at once. Server-only.
use leptos::prelude::use_context;

use crate::AppError;

/// What every server function gets from the server through the Leptos context.
#[derive(Clone)]
pub struct ServerContext {
    /// The database pool.
    pub pool: store::PgPool,
    /// Where backups go.
    pub backup_dir: std::path::PathBuf,
    /// The connection string for `pg_dump` (None: backups from the UI are off).
    pub database_url: Option<String>,
    /// A backup younger than this satisfies the "backup taken" gate.
    pub backup_max_age: std::time::Duration,
    /// The Prometheus the guards query (`PROMETHEUS_URL`), if any.
    pub prometheus: Option<infra::prom::Prometheus>,
    /// Failed sign-ins, per (user, address) and per address.
    pub login_throttle: std::sync::Arc<infra::throttle::Throttle>,
    /// Take the client's address from `X-Forwarded-For` (`TENANTRY_TRUST_PROXY=1`, behind a
    /// proxy that sets it).
    pub trust_proxy: bool,
    /// The proxies whose `X-Forwarded-For` entries are believed (`TENANTRY_TRUSTED_PROXIES`).
    pub trusted_proxies: infra::proxy::TrustedProxies,
    /// Publishes this instance's snapshot after a write (see [`ServerContext::publish`]).
    pub publisher: Publisher,
    /// Tenants counted per flag from this instance's live snapshot (see [`ServerContext::counts`]).
    pub counts: CountSource,
}

impl ServerContext {
    /// Publishes the write just made on this instance at once — evaluations (`/api/features`,
    /// OFREP, SDK snapshots) and the live pages see it before the server function answers, as
    /// after a REST write; other instances follow through `NOTIFY`. Every server function that
    /// writes calls it after its write succeeded.
    pub async fn publish(&self) {
        self.publisher.run().await;
    }

    /// How many tenants each flag is ON for, from the snapshot evaluations use — counted once
    /// per version in memory instead of a `count(*)` over every `feature_flags` row (seconds at
    /// 100,000 tenants × 20 flags). `None` before the first load: count in SQL then.
    pub async fn counts(&self) -> Option<std::sync::Arc<flags::compact::Counts>> {
        self.counts.run().await
    }
}

/// Something the server does for the web app's server functions on request, given through the
/// context as a closure (the web app cannot name the server's types).
pub struct ServerHook<T>(std::sync::Arc<dyn Fn() -> HookFuture<T> + Send + Sync>);

/// What a [`ServerHook`] runs.
type HookFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<T: 'static> ServerHook<T> {
    /// A hook that runs `hook`.
    pub fn new<F, Fut>(hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = T> + Send + 'static,
    {
        ServerHook(std::sync::Arc::new(move || Box::pin(hook())))
    }

    /// Runs it.
    pub async fn run(&self) -> T {
        (self.0)().await
    }
}

impl<T> Clone for ServerHook<T> {
    fn clone(&self) -> Self {
        ServerHook(self.0.clone())
    }
}

impl<T> std::fmt::Debug for ServerHook<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerHook")
    }
}

/// What publishes this instance's snapshot after a write: the server gives the web app its own
/// (`server::live`: reload the snapshot when the change version moved), so a server function's
/// write is visible at once on the instance that made it, not only once `NOTIFY` arrives. Errors
/// are the publisher's to log: the write itself succeeded.
pub type Publisher = ServerHook<()>;

/// Where [`ServerContext::counts`] comes from: the server gives its live snapshot's.
pub type CountSource = ServerHook<Option<std::sync::Arc<flags::compact::Counts>>>;

/// The server context, or an internal error when the server forgot to provide it.
pub fn server_context() -> Result<ServerContext, AppError> {
    use_context::<ServerContext>().ok_or(AppError::Internal)
}
