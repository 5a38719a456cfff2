//! Liveness of the database.
use std::time::Duration;

use crate::{Error, PgPool};

/// `SELECT 1` within `timeout`.
pub async fn ping(pool: &PgPool, timeout: Duration) -> Result<(), Error> {
    let query = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool);
    match tokio::time::timeout(timeout, query).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::from(e)),
        Err(_) => Err(Error::Unavailable(sqlx::Error::PoolTimedOut)),
    }
}
