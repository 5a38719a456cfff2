//! Background jobs of a running server. Several instances may run them at once: every write they
//! make goes through the same optimistic version check as a person's, so one wins and the others
//! skip.
use std::time::Duration;

use crate::AppState;

/// Automatic advance: every `interval`, each flag whose plan says `auto_advance` moves to its next
/// phase when every gate (and approval) holds — audited as `tenantry:auto-advance`. What it moved
/// is published on this instance at once (others follow through NOTIFY).
pub fn spawn_auto_advance(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store::rollout::auto_advance(&state.pool, chrono::Utc::now()).await {
                Ok(moved) => {
                    if !moved.is_empty() {
                        state.live.publish(&state.pool).await;
                    }
                    for (flag, phase) in moved {
                        tracing::info!(%flag, %phase, "advanced automatically: every gate holds");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "automatic advance pass failed"),
            }
        }
    })
}

/// What one guard pass saw and did, per flag and guard.
#[derive(Debug, Clone)]
pub struct GuardOutcome {
    /// Flag.
    pub flag: String,
    /// Guard.
    pub guard: String,
    /// Its reading.
    pub reading: flags::guard::Reading,
    /// What the alert did (only for readings in alert).
    pub action: Option<store::rollout::AlertAction>,
}

/// One pass of the guard monitor at `now`: reads every guard of every flag in a monitoring window
/// from Prometheus, stores the readings, and acts on alerts (pause; step back or turn off when the
/// plan says so). A Prometheus error makes the guard hold — never pass. Each distinct query is
/// sent once per pass (flags on the default guards share all four).
pub async fn guard_pass(
    state: &AppState,
    prom: &infra::prom::Prometheus,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<GuardOutcome>, store::Error> {
    let mut out = Vec::new();
    let mut answers = std::collections::HashMap::new();
    let snapshot = state.live.current();
    for w in store::rollout::watched(&state.pool).await? {
        let is_on = |tenant: &str| snapshot.evaluate(&w.key, tenant).on;
        for g in &w.guards {
            if !answers.contains_key(&g.query) {
                answers.insert(g.query.clone(), prom.instant(&g.query).await);
            }
            let reading = match &answers[&g.query] {
                Ok(samples) => flags::guard::evaluate(g, samples, &is_on),
                Err(e) => flags::guard::Reading {
                    level: flags::guard::Level::Hold,
                    value: None,
                    others: None,
                    detail: e.clone(),
                },
            };
            store::guards::record(&state.pool, &w.key, &g.name, &reading, now).await?;
            crate::metrics::guard(&w.key, &g.name, &reading);
            let action = if reading.level == flags::guard::Level::Alert {
                let action = store::rollout::alert(&state.pool, &w.key, g, &reading, now).await?;
                if action != store::rollout::AlertAction::AlreadyPaused {
                    tracing::warn!(flag = %w.key, guard = %g.name, detail = %reading.detail, ?action, "guard alert: rollout paused");
                }
                Some(action)
            } else {
                None
            };
            out.push(GuardOutcome {
                flag: w.key.clone(),
                guard: g.name.clone(),
                reading,
                action,
            });
        }
    }
    // A step back or a kill is served by this instance before the next pass: one publish for the
    // whole pass, however many guards acted.
    if out.iter().any(|o| {
        o.action
            .as_ref()
            .is_some_and(|a| *a != store::rollout::AlertAction::AlreadyPaused)
    }) {
        state.live.publish(&state.pool).await;
    }
    Ok(out)
}

/// The guard monitor: a [`guard_pass`] every `interval`.
pub fn spawn_guards(state: AppState, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(prom) = state.prometheus.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = guard_pass(&state, &prom, chrono::Utc::now()).await {
                tracing::warn!(error = %e, "guard pass failed");
            }
        }
    })
}

/// Keeps the change outbox bounded: every minute, the versions older than `retention` go
/// (`store::outbox::prune`; several instances may run it at once).
pub fn spawn_outbox_prune(pool: store::PgPool, retention: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store::outbox::prune(&pool, retention).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(rows = n, "pruned the change outbox"),
                Err(e) => tracing::debug!(error = %e, "pruning the change outbox failed"),
            }
        }
    })
}
