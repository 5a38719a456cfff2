//! Background jobs of a running server. Several instances may run them at once: every write they
//! make goes through the same optimistic version check as a person's, so one wins and the others
//! skip.
use std::time::Duration;

/// Automatic advance: every `interval`, each flag whose plan says `auto_advance` moves to its next
/// phase when every gate (and approval) holds — audited as `rollgate:auto-advance`.
pub fn spawn_auto_advance(pool: store::PgPool, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store::gates::auto_advance(&pool, chrono::Utc::now()).await {
                Ok(moved) => {
                    for (flag, phase) in moved {
                        tracing::info!(%flag, %phase, "advanced automatically: every gate holds");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "automatic advance pass failed"),
            }
        }
    })
}
