//! The REST error: `{"error": code, "message": text}` with the right status. Internal details
//! are logged, never sent.
use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer of the REST API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// The gates that do not hold (`gates_unmet` only).
    pub unmet: Vec<String>,
}

/// The JSON body of every REST error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `gates_unmet`, `unprocessable`, `unavailable`, `internal`.
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
    /// With `gates_unmet`: each gate of the phase that does not hold, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmet: Vec<String>,
}

impl ApiError {
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    /// 413.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }
    /// 422.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", message)
    }
    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
    /// 500.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            unmet: Vec::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(ErrorBody {
                error: self.code.to_string(),
                message: self.message,
                unmet: self.unmet,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            store::Error::Conflict(what) => ApiError::conflict(what),
            store::Error::Invalid(what) => ApiError::unprocessable(what),
            store::Error::Forbidden(what) => ApiError::forbidden(what),
            ref e @ store::Error::Gated { ref unmet, .. } => ApiError {
                unmet: unmet.clone(),
                ..ApiError::new(StatusCode::CONFLICT, "gates_unmet", e.to_string())
            },
            ref e @ store::Error::Paused { .. } => {
                ApiError::new(StatusCode::CONFLICT, "paused", e.to_string())
            }
            store::Error::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                ApiError::unavailable("the database is unavailable; try again shortly")
            }
            other => {
                tracing::error!(error = ?other, "store error");
                ApiError::internal()
            }
        }
    }
}

/// Axum's JSON rejection in our shape: 422 for well-formed JSON of the wrong shape, 400 otherwise.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        match r {
            axum::extract::rejection::JsonRejection::JsonDataError(e) => {
                ApiError::unprocessable(e.body_text())
            }
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

/// Axum's query rejection as a 400 in our shape.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

/// Axum's path rejection as a 400 in our shape.
impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}
