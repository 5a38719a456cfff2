//! Session-authenticated requests outside Leptos: the [`SignedIn`] extractor. It asks
//! `app::auth::session_user`, the same check the server functions make, so every route that a
//! session cookie opens refuses a disabled or deleted user, and a session from before a password
//! or role reset or a revocation, with the user's current role.
use axum::{extract::FromRequestParts, http::request::Parts};
use tower_sessions::Session;

use crate::{error::ApiError, AppState};

/// The signed-in user of the request, live and with their current role; 401 otherwise.
#[derive(Debug, Clone)]
pub struct SignedIn(pub app::auth::UserView);

impl SignedIn {
    /// The user `session` belongs to, or why not: 401 when nobody (or nobody live) is signed in,
    /// 503 when the database is away.
    pub async fn check(session: &Session, state: &AppState) -> Result<SignedIn, ApiError> {
        match app::auth::session_user(session, &state.pool).await {
            Ok(Some(user)) => Ok(SignedIn(user)),
            Ok(None) => Err(ApiError::unauthorized(
                "sign in first (no session, or it ended: signed out, expired, password or role reset, or user disabled)",
            )),
            Err(app::AppError::Unavailable) => Err(ApiError::unavailable(
                "the database is unavailable; try again shortly",
            )),
            Err(_) => Err(ApiError::internal()),
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, e)| {
                tracing::error!(error = e, "no session layer");
                ApiError::internal()
            })?;
        SignedIn::check(&session, state).await
    }
}
