//! The one error type every server function returns.
use leptos::prelude::{FromServerFnError, ServerFnErrorErr};
use leptos::server_fn::codec::JsonEncoding;
use serde::{Deserialize, Serialize};

/// What can go wrong in a server function, as the browser sees it. Internal details are logged on
/// the server and never sent.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// No session.
    #[error("You are not signed in.")]
    Unauthenticated,
    /// The role may not do this.
    #[error("Your role may not do this.")]
    Forbidden,
    /// No such thing.
    #[error("{0} was not found.")]
    NotFound(String),
    /// Someone else changed it first, or it already exists.
    #[error("Conflict: {0}")]
    Conflict(String),
    /// The input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The database is away.
    #[error("The database is unavailable right now; try again in a moment.")]
    Unavailable,
    /// A bug or an unexpected failure (details in the server log).
    #[error("Something went wrong on the server.")]
    Internal,
    /// A rollout change the plan refuses now: its gates, its approval, or a guard's pause (the
    /// server's words in `text`).
    #[error("{text}")]
    Refused {
        /// What stands in the way, for the words a product owner reads.
        why: Refusal,
        /// The server's own words (shown under "Details").
        text: String,
    },
    /// Transport or encoding failure of the server function itself.
    #[error("{0}")]
    ServerFn(ServerFnErrorErr),
}

/// Why a rollout change was refused ([`AppError::Refused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Only the approval is missing.
    Approval,
    /// Some of the gates do not hold.
    Gates,
    /// A guard's alert paused the rollout.
    Paused,
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::ServerFn(value)
    }
}

#[cfg(feature = "ssr")]
impl From<store::Error> for AppError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NotFound(what) => AppError::NotFound(what),
            store::Error::Conflict(what) => AppError::Conflict(what),
            store::Error::Invalid(what) => AppError::Invalid(what),
            store::Error::Forbidden(what) => AppError::Invalid(what),
            ref e @ store::Error::Gated { approval_only, .. } => AppError::Refused {
                why: if approval_only {
                    Refusal::Approval
                } else {
                    Refusal::Gates
                },
                text: e.to_string(),
            },
            e @ store::Error::Paused { .. } => AppError::Refused {
                why: Refusal::Paused,
                text: e.to_string(),
            },
            store::Error::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                AppError::Unavailable
            }
            other => {
                tracing::error!(error = ?other, "store error");
                AppError::Internal
            }
        }
    }
}
