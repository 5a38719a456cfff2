//! LISTEN for the triggers' notifications.
use sqlx::postgres::PgListener;

use crate::{Error, PgPool};

/// Channel of flag, tenant and rollout changes (payload `{"version": n, "table": …}`).
pub const CHANGES: &str = "rollgate_changes";
/// Channel of token changes.
pub const TOKENS: &str = "rollgate_tokens";

/// A dedicated connection listening on both channels.
pub async fn listen(pool: &PgPool) -> Result<PgListener, Error> {
    let mut l = PgListener::connect_with(pool).await?;
    l.listen_all([CHANGES, TOKENS]).await?;
    Ok(l)
}
