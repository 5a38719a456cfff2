//! The in-memory state every evaluation is served from, and the task that keeps it current.
//!
//! The state is a [`CompactSnapshot`] (`tenantry.snapshot/v2`): the tenants once, each flag's
//! target and only the rows that differ from it. It is loaded whole once (at start, after a
//! reconnect, when the outbox cannot say what changed) and otherwise kept current from the change
//! outbox ([`store::outbox`]): on `NOTIFY rollgate_changes` (sent by triggers, so raw SQL counts
//! too) the task reads everything after its version in one statement and applies it to a copy —
//! the copy shares the tenant table and every flag with the published snapshot, so a change
//! copies only the flags it touches (and the tenant table only when a tenant changes) — and
//! publishes the copy. Notifications that arrive while a read is in flight are coalesced into one
//! more read. Every 30 s a safety net catches up the same way (one cheap query when nothing
//! changed). When Postgres goes away, evaluation keeps answering from the last snapshot.
//!
//! The changes of recent steps are kept ([`Live::changes_since`]) for the SDKs' delta stream.
use std::{
    collections::{HashSet, VecDeque},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::{Duration, Instant},
};

use axum::body::Bytes;
use flags::{
    compact::{CompactSnapshot, Counts},
    delta::Changes,
    Decision,
};
use store::PgListener;
use tokio::sync::{watch, Notify, OnceCell};

use crate::auth::TokenCache;

use store::notify::TOKENS;

const SAFETY_NET: Duration = Duration::from_secs(30);

/// How many recent steps the delta stream can serve from memory (older: from the outbox).
const HISTORY_STEPS: usize = 1024;
/// How many changed keys those steps may hold in all.
const HISTORY_KEYS: usize = 200_000;
/// Changes listing more keys than this are not sent on the stream: a `reload` is cheaper.
pub const MAX_EVENT_KEYS: usize = 10_000;

/// A published snapshot: the compact state, the flags nothing turns on (OpenFeature's
/// `DISABLED`, kept per version so a request never scans tenants), and its two JSON documents,
/// written once per version on first request.
pub struct LiveSnapshot {
    snapshot: CompactSnapshot,
    disabled: Arc<HashSet<String>>,
    v1: OnceCell<Bytes>,
    v2: OnceCell<Bytes>,
    /// Tenants counted per flag, once for this version (the dashboard and the flag list).
    counts: OnceCell<Arc<Counts>>,
    /// Counts of an earlier version with the same tenants, and the flags changed since.
    reuse: Option<(Arc<Counts>, Arc<[String]>)>,
}

impl std::fmt::Debug for LiveSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSnapshot")
            .field("version", &self.snapshot.version())
            .field("tenants", &self.snapshot.tenant_count())
            .field("flags", &self.flag_count())
            .finish()
    }
}

impl Default for LiveSnapshot {
    fn default() -> Self {
        LiveSnapshot::new(CompactSnapshot::new(0))
    }
}

impl LiveSnapshot {
    /// Publishes `snapshot` as it is.
    pub fn new(snapshot: CompactSnapshot) -> Self {
        let disabled = snapshot
            .flag_keys()
            .filter(|k| snapshot.is_disabled(k))
            .map(str::to_string)
            .collect();
        LiveSnapshot {
            snapshot,
            disabled: Arc::new(disabled),
            v1: OnceCell::new(),
            v2: OnceCell::new(),
            counts: OnceCell::new(),
            reuse: None,
        }
    }

    /// `snapshot`, which is `previous` with `changes` applied: only the flags the changes touch
    /// are checked again for `DISABLED` (every flag when a tenant changed).
    fn after(previous: &LiveSnapshot, snapshot: CompactSnapshot, changes: &Changes) -> Self {
        if !changes.tenants.is_empty() {
            return LiveSnapshot::new(snapshot);
        }
        let touched: HashSet<&str> = changes
            .rows
            .iter()
            .map(|r| r.flag.as_str())
            .chain(changes.flags.iter().map(|f| f.key.as_str()))
            .collect();
        // The last counts stay good for every flag not touched since they were taken.
        let reuse = match (previous.counts.get(), &previous.reuse) {
            (Some(c), _) => Some((c.clone(), touched_since(&touched, &[]))),
            (None, Some((c, before))) => Some((c.clone(), touched_since(&touched, before))),
            (None, None) => None,
        };
        let disabled = if touched.is_empty() {
            previous.disabled.clone()
        } else {
            let mut d: HashSet<String> = previous
                .disabled
                .iter()
                .filter(|k| !touched.contains(k.as_str()))
                .cloned()
                .collect();
            d.extend(
                touched
                    .into_iter()
                    .filter(|k| snapshot.is_disabled(k))
                    .map(str::to_string),
            );
            Arc::new(d)
        };
        LiveSnapshot {
            snapshot,
            disabled,
            v1: OnceCell::new(),
            v2: OnceCell::new(),
            counts: OnceCell::new(),
            reuse,
        }
    }

    /// The version of the data (the ETag).
    pub fn version(&self) -> u64 {
        self.snapshot.version()
    }

    /// Is `flag` ON for `tenant`, and why.
    pub fn evaluate(&self, flag: &str, tenant: &str) -> Decision {
        self.snapshot.evaluate(flag, tenant)
    }

    /// Whether nothing turns `flag` on for anyone.
    pub fn is_disabled(&self, flag: &str) -> bool {
        self.disabled.contains(flag)
    }

    /// Whether the flag exists.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.snapshot.flag(flag).is_some()
    }

    /// Flag keys, in no particular order.
    pub fn flag_keys(&self) -> impl Iterator<Item = &str> {
        self.snapshot.flag_keys()
    }

    /// How many flags.
    pub fn flag_count(&self) -> usize {
        self.snapshot.flag_keys().count()
    }

    /// How many live tenants.
    pub fn tenant_count(&self) -> usize {
        self.snapshot.tenant_count()
    }

    /// The compact state.
    pub fn compact(&self) -> &CompactSnapshot {
        &self.snapshot
    }

    /// The version-1 document (`rollgate.snapshot/v1`), written once for this version (on a
    /// blocking thread: at 100,000 tenants it is megabytes).
    pub async fn v1_json(&self) -> Result<Bytes, flags::Error> {
        let snap = self.snapshot.clone();
        self.v1
            .get_or_try_init(|| blocking(move || snap.to_v1_json()))
            .await
            .cloned()
    }

    /// Every flag's tenants counted ([`CompactSnapshot::count_all`]), once for this version, on
    /// a blocking thread (one pass over the tenants per flag the last counts do not cover).
    pub async fn counts(&self) -> Option<Arc<Counts>> {
        let snap = self.snapshot.clone();
        let reuse = self.reuse.clone();
        self.counts
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || {
                    let reuse = reuse.as_ref().map(|(c, k)| (&**c, &**k));
                    Arc::new(snap.count_all(reuse))
                })
                .await
            })
            .await
            .ok()
            .cloned()
    }

    /// The compact document (`tenantry.snapshot/v2`), written once for this version.
    pub async fn v2_json(&self) -> Result<Bytes, flags::Error> {
        let snap = self.snapshot.clone();
        self.v2
            .get_or_try_init(|| blocking(move || snap.to_json()))
            .await
            .cloned()
    }
}

/// The flags a step `touched`, with `before` (flags changed earlier), sorted, without repeats.
fn touched_since(touched: &HashSet<&str>, before: &[String]) -> Arc<[String]> {
    let mut keys: Vec<String> = before
        .iter()
        .cloned()
        .chain(touched.iter().map(|k| k.to_string()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into()
}

async fn blocking(
    write: impl FnOnce() -> Result<String, flags::Error> + Send + 'static,
) -> Result<Bytes, flags::Error> {
    match tokio::task::spawn_blocking(write).await {
        Ok(r) => r.map(Bytes::from),
        Err(e) => Err(flags::Error::SnapshotJson(format!(
            "the writer did not finish: {e}"
        ))),
    }
}

/// One published step: from the version before to the version after, with the changes applied
/// (`None`: a full load, which says nothing about what changed).
#[derive(Debug)]
struct Step {
    from: u64,
    to: u64,
    changes: Option<Arc<Changes>>,
    /// The changes' JSON, written once for every stream that is exactly one step behind.
    json: OnceLock<Option<Bytes>>,
}

impl Step {
    fn json(&self) -> Option<Bytes> {
        self.json
            .get_or_init(|| {
                let c = self.changes.as_ref()?;
                c.to_json().ok().map(Bytes::from)
            })
            .clone()
    }
}

/// What a stream that has seen `version` sends next ([`Live::changes_since`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Catchup {
    /// Nothing newer than `version`.
    Current,
    /// The changes after `version` (to the carried version), as JSON.
    Changes(u64, Bytes),
    /// Memory does not reach back to `version` (ask the outbox, or send a reload).
    Unknown,
    /// The changes list more than [`MAX_EVENT_KEYS`]: the snapshot is cheaper (send a reload).
    TooMany,
}

/// How the live state was kept current since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Whole loads (start, reconnects, gaps).
    pub full_loads: u64,
    /// Catch-ups that applied changes from the outbox.
    pub catch_ups: u64,
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
    /// One catch-up or load at a time (the follower task, REST handlers settling their write).
    apply: tokio::sync::Mutex<()>,
    /// Set by a notification; the follower reads once per wake-up, however many arrived.
    dirty: Notify,
    history: Mutex<VecDeque<Arc<Step>>>,
    full_loads: AtomicU64,
    catch_ups: AtomicU64,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            snapshot: watch::channel(Arc::new(LiveSnapshot::default())).0,
            tokens: TokenCache::default(),
            listening: AtomicBool::new(false),
            loaded: AtomicBool::new(false),
            loaded_at: Mutex::new(Instant::now()),
            apply: tokio::sync::Mutex::new(()),
            dirty: Notify::new(),
            history: Mutex::new(VecDeque::new()),
            full_loads: AtomicU64::new(0),
            catch_ups: AtomicU64::new(0),
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

    /// Full loads and catch-ups so far.
    pub fn stats(&self) -> LiveStats {
        LiveStats {
            full_loads: self.full_loads.load(Ordering::Relaxed),
            catch_ups: self.catch_ups.load(Ordering::Relaxed),
        }
    }

    /// Asks the follower task for a catch-up (coalesced: however many calls arrive while one
    /// runs, one more follows).
    pub fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// Brings the snapshot up to the database's current version: reads everything after the
    /// current version from the outbox in one statement and applies it; loads everything instead
    /// when nothing was loaded yet, the outbox does not reach back, a reset happened, or the
    /// changes cannot be applied. Cheap when nothing changed (one query). Returns the version.
    pub async fn refresh_snapshot(&self, pool: &store::PgPool) -> Result<u64, store::Error> {
        let _one = self.apply.lock().await;
        if !self.is_loaded() {
            return self.load_locked(pool).await;
        }
        let started = Instant::now();
        let current = self.current();
        let from = current.version();
        let Some(changes) = store::outbox::since(pool, from).await? else {
            return self.load_locked(pool).await;
        };
        if changes.version == from {
            self.confirmed(from);
            return Ok(from);
        }
        let mut next = current.compact().clone();
        if let Err(e) = next.apply(&changes) {
            tracing::warn!(error = %e, from, to = changes.version, "changes do not apply; loading everything");
            return self.load_locked(pool).await;
        }
        let version = next.version();
        let published = LiveSnapshot::after(&current, next, &changes);
        self.install(published, from, Some(Arc::new(changes)));
        self.catch_ups.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tenantry_snapshot_loads_total", "kind" => "delta").increment(1);
        metrics::histogram!("tenantry_snapshot_catch_up_seconds")
            .record(started.elapsed().as_secs_f64());
        self.confirmed(version);
        Ok(version)
    }

    /// Loads everything (a reconnect, a gap), whatever the current version.
    pub async fn full_load(&self, pool: &store::PgPool) -> Result<u64, store::Error> {
        let _one = self.apply.lock().await;
        self.load_locked(pool).await
    }

    async fn load_locked(&self, pool: &store::PgPool) -> Result<u64, store::Error> {
        let snap = store::snapshot::load_compact(pool).await?;
        let version = snap.version();
        let from = self.current().version();
        if !self.is_loaded() || from != version {
            let fresh = LiveSnapshot::new(snap);
            self.install(fresh, from, None);
        }
        self.loaded.store(true, Ordering::Relaxed);
        self.full_loads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("tenantry_snapshot_loads_total", "kind" => "full").increment(1);
        self.confirmed(version);
        Ok(version)
    }

    fn confirmed(&self, version: u64) {
        if let Ok(mut t) = self.loaded_at.lock() {
            *t = Instant::now();
        }
        metrics::gauge!("tenantry_snapshot_version").set(version as f64);
    }

    /// Publishes a write made through this instance without waiting for `NOTIFY`: catches up
    /// from the outbox ([`Live::refresh_snapshot`]; a write that changed nothing evaluation knows
    /// costs one small query). Failures are logged: the write itself succeeded, and `NOTIFY` or
    /// the safety net publishes it later.
    pub async fn publish(&self, pool: &store::PgPool) {
        if let Err(e) = self.refresh_snapshot(pool).await {
            tracing::warn!(error = %e, "snapshot catch-up after a write failed");
        }
    }

    /// Records the step, then publishes the snapshot (a stream woken by it finds its step).
    fn install(&self, snapshot: LiveSnapshot, from: u64, changes: Option<Arc<Changes>>) {
        let to = snapshot.version();
        if let Ok(mut h) = self.history.lock() {
            h.push_back(Arc::new(Step {
                from,
                to,
                changes,
                json: OnceLock::new(),
            }));
            let mut keys: usize = h
                .iter()
                .map(|s| s.changes.as_ref().map_or(0, |c| c.len()))
                .sum();
            while h.len() > HISTORY_STEPS || (keys > HISTORY_KEYS && h.len() > 1) {
                if let Some(old) = h.pop_front() {
                    keys -= old.changes.as_ref().map_or(0, |c| c.len());
                }
            }
        }
        self.snapshot.send_replace(Arc::new(snapshot));
    }

    /// What a stream whose client holds `version` sends next, from the steps kept in memory: the
    /// changes of the one step after it (their JSON written once for every such stream), the
    /// changes of several merged, `Current`, `Unknown` when memory does not reach back to
    /// `version` (or a full load came between), or `TooMany` when they list more than
    /// [`MAX_EVENT_KEYS`].
    pub fn changes_since(&self, version: u64) -> Catchup {
        let steps: Vec<Arc<Step>> = match self.history.lock() {
            Ok(h) => h.iter().filter(|s| s.to > version).cloned().collect(),
            Err(_) => return Catchup::Unknown,
        };
        let Some(first) = steps.first() else {
            return if self.current().version() <= version {
                Catchup::Current
            } else {
                Catchup::Unknown
            };
        };
        if first.from > version {
            return Catchup::Unknown;
        }
        if let [only] = steps.as_slice() {
            return match &only.changes {
                Some(c) if c.len() > MAX_EVENT_KEYS => Catchup::TooMany,
                Some(_) => only
                    .json()
                    .map_or(Catchup::Unknown, |json| Catchup::Changes(only.to, json)),
                None => Catchup::Unknown,
            };
        }
        let mut merged: Option<Changes> = None;
        for s in &steps {
            let Some(c) = &s.changes else {
                return Catchup::Unknown;
            };
            match merged.as_mut() {
                None => merged = Some(Changes::clone(c)),
                Some(m) => {
                    if m.merge(c).is_err() {
                        return Catchup::Unknown;
                    }
                }
            }
            if merged.as_ref().is_some_and(|m| m.len() > MAX_EVENT_KEYS) {
                return Catchup::TooMany;
            }
        }
        match merged.map(|m| (m.version, m.to_json())) {
            Some((to, Ok(json))) => Catchup::Changes(to, Bytes::from(json)),
            _ => Catchup::Unknown,
        }
    }

    /// Loads tokens, and brings the snapshot up to date ([`Live::refresh_snapshot`]).
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

/// The web app's [`app::CountSource`]: this instance's live snapshot's counts, once it is loaded.
pub fn counts(live: Arc<Live>) -> app::CountSource {
    app::CountSource::new(move || {
        let live = live.clone();
        async move {
            if !live.is_loaded() {
                return None;
            }
            live.current().counts().await
        }
    })
}

/// While `LISTEN` cannot connect but queries work, the snapshot catches up this often (no
/// notification will say when it changed).
pub const DEAF_REFRESH: Duration = Duration::from_secs(5);

/// Keeps `live` current for as long as the process runs.
pub fn spawn(pool: store::PgPool, live: Arc<Live>) -> tokio::task::JoinHandle<()> {
    spawn_with(pool, live, |pool| async move {
        store::notify::listen(&pool).await
    })
}

/// [`spawn`] with the way to open the `LISTEN` connection given (tests make it fail).
///
/// Two loops in one task: the listener marks the state dirty on each notification, and the
/// follower catches up once per wake-up — so a burst of notifications that arrives while one
/// read is in flight costs one more read, not one each.
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
        let follower = async {
            loop {
                live.dirty.notified().await;
                if let Err(e) = live.refresh_snapshot(&pool).await {
                    tracing::warn!(error = %e, "catching up after NOTIFY failed");
                }
            }
        };
        let (pool2, live2) = (pool.clone(), live.clone());
        let listener = async move {
            let (pool, live) = (pool2, live2);
            let mut backoff = Duration::from_millis(250);
            let mut first = true;
            loop {
                match listen(pool.clone()).await {
                    Ok(mut listener) => {
                        backoff = Duration::from_millis(250);
                        live.listening.store(true, Ordering::Relaxed);
                        if let Err(e) = live.tokens.reload(&pool).await {
                            tracing::warn!(error = %e, "token reload after (re)connect failed");
                        }
                        // Notifications sent while not listening are lost: after a reconnect,
                        // load everything. (The first connection follows the load at start.)
                        let loaded = if first && live.is_loaded() {
                            live.refresh_snapshot(&pool).await
                        } else {
                            live.full_load(&pool).await
                        };
                        if let Err(e) = loaded {
                            tracing::warn!(error = %e, "refresh after (re)connect failed");
                        }
                        first = false;
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
        };
        tokio::join!(follower, listener);
    })
}

/// Follows notifications until the connection drops.
async fn follow(pool: &store::PgPool, live: &Live, listener: &mut PgListener) {
    loop {
        match tokio::time::timeout(SAFETY_NET, listener.try_recv()).await {
            Err(_) => {
                // The safety net: a catch-up, one cheap query when nothing changed.
                if let Err(e) = live.tokens.reload(pool).await {
                    tracing::warn!(error = %e, "periodic token reload failed");
                }
                live.mark_dirty();
            }
            Ok(Ok(Some(n))) => {
                if n.channel() == TOKENS {
                    if let Err(e) = live.tokens.reload(pool).await {
                        tracing::warn!(error = %e, "token reload after NOTIFY failed");
                    }
                } else {
                    live.mark_dirty();
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => return,
        }
    }
}
