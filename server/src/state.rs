//! What every handler shares.
use std::{sync::Arc, time::Instant};

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use store::PgPool;

use crate::live::Live;

/// The router's state: one shared value, so the clone every handler and middleware takes is a
/// reference count, not a copy of the configuration's strings (it was on every request's path).
/// Fields read through `Deref`; a state being set up is changed through `DerefMut`, which copies
/// the inner value only if a router already shares it.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] shares.
#[derive(Clone)]
pub struct Shared {
    /// Leptos site options.
    pub leptos_options: LeptosOptions,
    /// Database pool (connects lazily; survives outages).
    pub pool: PgPool,
    /// Snapshot and tokens, kept current by [`crate::live::spawn`].
    pub live: Arc<Live>,
    /// When this process started.
    pub started_at: Instant,
    /// Mark the session cookie `Secure` (set `TENANTRY_SECURE_COOKIES=1` behind TLS).
    pub secure_cookies: bool,
    /// Where `tenantry backup` and the DBA page's "Take a backup" write (`TENANTRY_BACKUP_DIR`).
    pub backup_dir: std::path::PathBuf,
    /// The connection string, for `pg_dump` (None: the DBA page cannot take backups).
    pub database_url: Option<String>,
    /// A backup younger than this satisfies the "backup taken" gate
    /// (`TENANTRY_BACKUP_MAX_AGE_HOURS`, default 24).
    pub backup_max_age: std::time::Duration,
    /// The Prometheus the guards query (`PROMETHEUS_URL`; None: guards hold).
    pub prometheus: Option<infra::prom::Prometheus>,
    /// Failed sign-ins (in memory, per instance).
    pub login_throttle: Arc<infra::throttle::Throttle>,
    /// Trust `X-Forwarded-For` for the client's address (`TENANTRY_TRUST_PROXY=1`).
    pub trust_proxy: bool,
    /// The proxies whose `X-Forwarded-For` entries are believed (`TENANTRY_TRUSTED_PROXIES`,
    /// read through [`crate::config::Config`]; loopback by default).
    pub trusted_proxies: infra::proxy::TrustedProxies,
    /// The origin browsers use when a proxy rewrites `Host` (`TENANTRY_PUBLIC_ORIGIN`; CSRF check).
    pub public_origin: Option<Arc<str>>,
}

impl AppState {
    /// A state over `pool` with the default configuration and an empty live cache (call
    /// `live.refresh_all` or spawn the sync task).
    pub fn new(leptos_options: LeptosOptions, pool: PgPool) -> Self {
        AppState::with_config(leptos_options, pool, &crate::config::Config::default())
    }

    /// A state over `pool` with `config` and an empty live cache.
    pub fn with_config(
        leptos_options: LeptosOptions,
        pool: PgPool,
        config: &crate::config::Config,
    ) -> Self {
        AppState(Arc::new(Shared {
            secure_cookies: config.secure_cookies,
            backup_dir: config.backup_dir.clone(),
            database_url: None,
            backup_max_age: config.backup_max_age,
            prometheus: None,
            login_throttle: Arc::default(),
            trust_proxy: config.trust_proxy,
            trusted_proxies: config.trusted_proxies.clone(),
            public_origin: config.public_origin.as_deref().map(Arc::from),
            leptos_options,
            pool,
            live: Arc::new(Live::default()),
            started_at: Instant::now(),
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}
