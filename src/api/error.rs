//! The one place errors become HTTP statuses. Internal errors are logged with detail and
//! answered with a generic message: database text never reaches a client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::HopperError;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Sent as `Retry-After` (seconds) with a 503 that clears by itself.
    pub retry_after_secs: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    }
}

impl From<HopperError> for ApiError {
    fn from(e: HopperError) -> Self {
        use HopperError::*;
        let (status, code) = match &e {
            NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            LeaseLost(_) => (StatusCode::CONFLICT, "lease_lost"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Remote { status, .. } => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                "remote",
            ),
            // Out of database connections: the request was fine, the server is saturated.
            // 503 tells webhook senders and clients to retry (redeliveries are deduplicated).
            Store(crate::store::StoreError::Database(sqlx::Error::PoolTimedOut)) => {
                tracing::warn!("database pool exhausted; answering 503");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "the server is busy; retry later",
                )
                .retry_after(1);
            }
            Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Store(_) | Config(_) | Transport(_) | Internal(_) | InjectedFault(_) => {
                tracing::error!(error = %e, "internal error");
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                );
            }
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            metrics::counter!("hopper_http_server_errors_total").increment(1);
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: excerpt(self.message),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Longest error message sent. Parser errors quote the input they choke on, and a client
/// that sent 10 KB of bad JSON needs the position, not its own body back.
const MAX_MESSAGE_BYTES: usize = 300;

pub(crate) fn excerpt(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("… (cut)");
    }
    message
}

impl From<hopper_integration_api::InboundError> for ApiError {
    fn from(e: hopper_integration_api::InboundError) -> Self {
        use hopper_integration_api::InboundError::*;
        let (status, code) = match &e {
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            // 503: the endpoint exists but cannot verify anything yet; senders retry later.
            NotConfigured => (StatusCode::SERVICE_UNAVAILABLE, "source_not_configured"),
            Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
            UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Refused(_) => (StatusCode::FORBIDDEN, "refused"),
        };
        Self::new(status, code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_is_503_and_internal_errors_say_nothing_inside() {
        let busy: ApiError = HopperError::Store(crate::store::StoreError::Database(
            sqlx::Error::PoolTimedOut,
        ))
        .into();
        assert_eq!(
            (busy.status, busy.code),
            (StatusCode::SERVICE_UNAVAILABLE, "overloaded")
        );
        let broken: ApiError =
            HopperError::Store(crate::store::StoreError::Corrupt("secret detail".into())).into();
        assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!broken.message.contains("secret detail"));
        let unsigned: ApiError = hopper_integration_api::InboundError::Unauthorized.into();
        assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(5_000);
        let cut = excerpt(long);
        assert!(cut.len() < MAX_MESSAGE_BYTES + 20, "{}", cut.len());
        assert!(cut.ends_with("(cut)"));
        assert_eq!(excerpt("short".into()), "short");
    }
}
