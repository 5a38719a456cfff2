//! The in-memory state every evaluation is served from, and the task that keeps it current.
//!
//! The snapshot and the token cache are reloaded on `NOTIFY rollgate_changes` / `rollgate_tokens`
//! (sent by triggers, so raw SQL counts too), on every reconnect, and every 30 s as a safety net.
//! When Postgres goes away, evaluation keeps answering from the last snapshot.
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use flags::{Decision, Evaluator, Snapshot};
use store::PgListener;
use tokio::sync::watch;

use crate::auth::TokenCache;

use store::notify::TOKENS;

const SAFETY_NET: Duration = Duration::from_secs(30);

/// A snapshot with its compiled evaluator. Derefs to the [`Snapshot`]; `evaluate` uses the
/// compiled [`Evaluator`].
#[derive(Debug, Default)]
pub struct LiveSnapshot {
    snapshot: Snapshot,
    evaluator: Evaluator,
}

impl LiveSnapshot {
    /// Compiles `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        let evaluator = Evaluator::new(&snapshot);
        LiveSnapshot {
            snapshot,
            evaluator,
        }
    }

    /// Is `flag` ON for `tenant`, and why.
    pub fn evaluate(&self, flag: &str, tenant: &str) -> Decision {
        self.evaluator.evaluate(flag, tenant)
    }

    /// Whether nothing turns `flag` on for anyone.
    pub fn is_disabled(&self, flag: &str) -> bool {
        self.evaluator.is_disabled(flag)
    }
}

impl std::ops::Deref for LiveSnapshot {
    type Target = Snapshot;
    fn deref(&self) -> &Snapshot {
        &self.snapshot
    }
}

/// Shared live state.
#[derive(Debug)]
pub struct Live {
    /// The current snapshot; subscribers are woken on every new version.
    pub snapshot: watch::Sender<Arc<LiveSnapshot>>,
    /// Live tokens.
    pub tokens: TokenCache,
    listening: AtomicBool,
    loaded: AtomicBool,
    loaded_at: Mutex<Instant>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            snapshot: watch::channel(Arc::new(LiveSnapshot::new(Snapshot::new(0)))).0,
            tokens: TokenCache::default(),
            listening: AtomicBool::new(false),
            loaded: AtomicBool::new(false),
            loaded_at: Mutex::new(Instant::now()),
        }
    }
}

impl Live {
    /// The current snapshot.
    pub fn current(&self) -> Arc<LiveSnapshot> {
        self.snapshot.borrow().clone()
    }

    /// Whether a snapshot was ever loaded.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Relaxed)
    }

    /// Whether the LISTEN connection is up.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// Seconds since the snapshot was last confirmed current.
    pub fn age(&self) -> Duration {
        self.loaded_at
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    /// Loads the snapshot; publishes it when its version is new.
    pub async fn refresh_snapshot(&self, pool: &store::PgPool) -> Result<u64, store::Error> {
        let snap = store::snapshot::load(pool).await?;
        let version = snap.version;
        self.snapshot.send_if_modified(|cur| {
            if cur.version == version && self.is_loaded() {
                false
            } else {
                *cur = Arc::new(LiveSnapshot::new(snap));
                true
            }
        });
        self.loaded.store(true, Ordering::Relaxed);
        if let Ok(mut t) = self.loaded_at.lock() {
            *t = Instant::now();
        }
        metrics::gauge!("tenantry_snapshot_version").set(version as f64);
        Ok(version)
    }

    /// Publishes a write made through this instance without waiting for `NOTIFY`: reloads the
    /// snapshot when the change version moved past the one served (a write that changed nothing
    /// evaluation knows costs one small query). Failures are logged: the write itself succeeded,
    /// and `NOTIFY` or the safety net publishes it later.
    pub async fn publish(&self, pool: &store::PgPool) {
        let behind = match store::snapshot::version(pool).await {
            Ok(v) => !self.is_loaded() || self.current().version != v,
            Err(_) => true,
        };
        if behind {
            if let Err(e) = self.refresh_snapshot(pool).await {
                tracing::warn!(error = %e, "snapshot refresh after a write failed");
            }
        }
    }

    /// Loads snapshot and tokens.
    pub async fn refresh_all(&self, pool: &store::PgPool) -> Result<(), store::Error> {
        self.tokens.reload(pool).await?;
        self.refresh_snapshot(pool).await?;
        Ok(())
    }
}

/// The web app's [`app::Publisher`]: a server function's write is published on this instance at
/// once ([`Live::publish`]), as the REST API's writes are.
pub fn publisher(pool: store::PgPool, live: Arc<Live>) -> app::Publisher {
    app::Publisher::new(move || {
        let (pool, live) = (pool.clone(), live.clone());
        async move { live.publish(&pool).await }
    })
}

/// While `LISTEN` cannot connect but queries work, the snapshot is reloaded this often (no
/// notification will say when it changed).
pub const DEAF_REFRESH: Duration = Duration::from_secs(5);

/// Keeps `live` current for as long as the process runs.
pub fn spawn(pool: store::PgPool, live: Arc<Live>) -> tokio::task::JoinHandle<()> {
    spawn_with(pool, live, |pool| async move {
        store::notify::listen(&pool).await
    })
}

/// [`spawn`] with the way to open the `LISTEN` connection given (tests make it fail).
pub fn spawn_with<F, Fut>(
    pool: store::PgPool,
    live: Arc<Live>,
    listen: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(store::PgPool) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<PgListener, store::Error>> + Send,
{
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(250);
        loop {
            match listen(pool.clone()).await {
                Ok(mut listener) => {
                    backoff = Duration::from_millis(250);
                    live.listening.store(true, Ordering::Relaxed);
                    if let Err(e) = live.refresh_all(&pool).await {
                        tracing::warn!(error = %e, "refresh after (re)connect failed");
                    }
                    follow(&pool, &live, &mut listener).await;
                    live.listening.store(false, Ordering::Relaxed);
                    tracing::warn!("lost the LISTEN connection; serving the last snapshot");
                }
                Err(e) => {
                    live.listening.store(false, Ordering::Relaxed);
                    tracing::debug!(error = %e, "LISTEN connection failed; retrying");
                    // Tokens and snapshot may still load if only LISTEN failed: without
                    // notifications, poll (a kill switch must still reach this instance).
                    if !live.is_loaded() || live.age() >= DEAF_REFRESH {
                        if let Err(e) = live.refresh_all(&pool).await {
                            tracing::debug!(error = %e, "refresh without LISTEN failed");
                        }
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    })
}

/// Follows notifications until the connection drops.
async fn follow(pool: &store::PgPool, live: &Live, listener: &mut PgListener) {
    loop {
        match tokio::time::timeout(SAFETY_NET, listener.try_recv()).await {
            Err(_) => {
                if let Err(e) = live.refresh_all(pool).await {
                    tracing::warn!(error = %e, "periodic refresh failed");
                }
            }
            Ok(Ok(Some(n))) => {
                let result = if n.channel() == TOKENS {
                    live.tokens.reload(pool).await.map(|_| ())
                } else {
                    live.refresh_snapshot(pool).await.map(|_| ())
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, channel = n.channel(), "refresh after NOTIFY failed");
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => return,
        }
    }
}
