//! Who is acting. Every write runs in a transaction that first records the actor, so the triggers'
//! audit rows name the person or token instead of the database user.
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::Error;

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The admin web app.
    Ui,
    /// The REST API.
    Api,
    /// The `tenantry` command line.
    Cli,
    /// Tenantry itself (schedules, guards).
    System,
}

impl Source {
    /// The name stored in `audit_log.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Ui => "ui",
            Source::Api => "api",
            Source::Cli => "cli",
            Source::System => "system",
        }
    }
}

/// A named actor and the channel it acts through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// User name or `token:<name>`.
    pub name: String,
    /// Channel.
    pub source: Source,
    /// The person behind the actor, for "a second person must approve": the user name for a
    /// session, a token's owner (see `tokens::TokenRow::owner`) or `token:<name>` for a token
    /// without one; the actor's name unless set with [`Actor::for_person`].
    pub person: String,
}

impl Actor {
    /// An actor who is their own person.
    pub fn new(name: impl Into<String>, source: Source) -> Self {
        let name = name.into();
        Actor {
            person: name.clone(),
            name,
            source,
        }
    }

    /// The same actor acting for `person` (a token for its owner).
    pub fn for_person(mut self, person: impl Into<String>) -> Self {
        self.person = person.into();
        self
    }

    /// Records the actor for the rest of the transaction.
    pub async fn apply(&self, conn: &mut PgConnection) -> Result<(), Error> {
        sqlx::query(
            "SELECT set_config('rollgate.actor', $1, true), set_config('rollgate.source', $2, true)",
        )
        .bind(&self.name)
        .bind(self.source.as_str())
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Writes an audit row in the transaction.
    pub async fn audit(
        &self,
        conn: &mut PgConnection,
        action: &str,
        flag_key: Option<&str>,
        tenant_id: Option<&str>,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO audit_log (actor, source, action, flag_key, tenant_id, before, after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&self.name)
        .bind(self.source.as_str())
        .bind(action)
        .bind(flag_key)
        .bind(tenant_id)
        .bind(before)
        .bind(after)
        .execute(conn)
        .await?;
        Ok(())
    }
}
