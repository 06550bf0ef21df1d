//! The error answer of every handler and check: `{"error": ..., "hint": ...}` with
//! its status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use eprof_record::{ErrorKind, RecordError};
use serde_json::json;

/// An error answer: `{"error": ..., "hint": ...}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    hint: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub(crate) fn bad(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.error, "hint": self.hint})),
        )
            .into_response()
    }
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        let status = match e.kind {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::PowerUnavailable => StatusCode::CONFLICT,
            ErrorKind::Model | ErrorKind::Io => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            error: e.message,
            hint: e.hint,
        }
    }
}

impl From<eprof_index::Error> for ApiError {
    fn from(e: eprof_index::Error) -> Self {
        RecordError::from(e).into()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
