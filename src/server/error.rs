//! `ApiError`: every way a request is refused, and the JSON body it is refused with
//! (`{"error": "…"}`; `{"ready": false, "why": "…"}` for `/readyz`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::daemon::DaemonError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No bearer token, or not the one this endpoint wants.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// A body or path that cannot be what the endpoint takes.
    #[error("{0}")]
    BadRequest(String),
    #[error("no such case")]
    NoSuchCase,
    /// A body (declared or read) over `limits.max_body_bytes`.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// A body not all sent within `limits.body_timeout_seconds`.
    #[error("the request body did not arrive within {seconds} s")]
    BodyTimeout { seconds: u64 },
    /// The store cannot record or answer, or the queue is full: worth a retry.
    #[error("{0}")]
    Unavailable(String),
    /// Not ready (starting, or the store does not answer).
    #[error("{0}")]
    NotReady(String),
    #[error("internal failure: {0}")]
    Internal(String),
    /// A plan request refused with its own status (409, 422, …) and reason.
    #[error("{message}")]
    Refused { status: StatusCode, message: String },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NoSuchCase => StatusCode::NOT_FOUND,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) | Self::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Refused { status, .. } => *status,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self {
            Self::NotReady(why) => json!({"ready": false, "why": why}),
            other => json!({"error": other.to_string()}),
        };
        (self.status(), Json(body)).into_response()
    }
}

impl From<DaemonError> for ApiError {
    fn from(e: DaemonError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e.to_string())
    }
}
