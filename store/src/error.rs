use thiserror::Error as ThisError;

/// What the store reports. Database details stay in the `Database` variant's source, which callers
/// log but never show to a client.
#[derive(Debug, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// No such row.
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness rule or an expected version did not hold.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A check constraint or a rule rejected the input.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The actor may not do this (a rule of the data, such as approving one's own change).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A phase change was refused: the gates of `phase` do not hold.
    #[error("the gates of {phase} do not hold: {}", unmet.join("; "))]
    Gated {
        /// The phase the change would enter.
        phase: String,
        /// Each gate that does not hold, in words.
        unmet: Vec<String>,
        /// Every gate holds but the approval (a second person's approval of this exact change).
        approval_only: bool,
    },
    /// A widening was refused: a guard's alert paused the rollout and no person resumed it.
    #[error("the rollout is paused: {reason}; a person must resume it first")]
    Paused {
        /// Why it was paused (the guard and its reading).
        reason: String,
    },
    /// The database could not be reached or failed.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A migration failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Error::NotFound("row".into()),
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => Error::Unavailable(e),
            sqlx::Error::Database(db) => {
                let constraint = db.constraint().unwrap_or_default().to_string();
                if db.is_unique_violation() {
                    Error::Conflict(constraint)
                } else if db.is_check_violation() || db.is_foreign_key_violation() {
                    Error::Invalid(constraint)
                } else if db.code().is_some_and(|c| c.starts_with("22")) {
                    // SQLSTATE class 22, data exception: text with a NUL character, a number or
                    // a date out of range. The input's fault, said in Postgres' words (which name
                    // no table and no SQL).
                    let reason = match db.code().as_deref() {
                        Some("22021") | Some("22P05") => {
                            "text may not contain the NUL character (\\u0000)".to_string()
                        }
                        _ => db.message().to_string(),
                    };
                    Error::Invalid(reason)
                } else {
                    Error::Database(e)
                }
            }
            _ => Error::Database(e),
        }
    }
}

impl Error {
    /// A short reason fit for a client: no connection strings, no SQL.
    pub fn public_reason(&self) -> String {
        match self {
            Error::Unavailable(source) => match source {
                sqlx::Error::PoolTimedOut => "timed out waiting for a connection".into(),
                sqlx::Error::Io(io) => io.kind().to_string(),
                sqlx::Error::Tls(_) => "TLS handshake failed".into(),
                _ => "connection failed".into(),
            },
            Error::Database(_) => "database error".into(),
            other => other.to_string(),
        }
    }
}
