//! The one place a dashboard error becomes a response: a page with the right status (never a
//! 5xx for bad input), or the way to the sign-in form. Internal detail stays in the log: the
//! messages come from `api::error::ApiError`, which already hides it.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::api::error::ApiError;
use crate::error::HopperError;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// No session, or its token no longer resolves.
    #[error("sign in first")]
    SignIn,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{message}")]
    Http { status: StatusCode, message: String },
}

pub type UiResult<T> = Result<T, UiError>;

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        match e.status {
            StatusCode::FORBIDDEN => UiError::Forbidden(e.message),
            StatusCode::UNAUTHORIZED => UiError::SignIn,
            status => UiError::Http {
                status,
                message: e.message,
            },
        }
    }
}

impl From<HopperError> for UiError {
    fn from(e: HopperError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<crate::store::StoreError> for UiError {
    fn from(e: crate::store::StoreError) -> Self {
        HopperError::from(e).into()
    }
}

impl UiError {
    pub fn status(&self) -> StatusCode {
        match self {
            UiError::SignIn => StatusCode::SEE_OTHER,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::Http { status, .. } => *status,
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        if let UiError::SignIn = self {
            return Redirect::to("/ui/login").into_response();
        }
        let status = self.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = super::layout::bare(
            title,
            maud::html! {
                h1 { (status.as_u16()) " " (title) }
                p role="alert" { (self.to_string()) }
                p { a href="/ui" { "Back to the overview" } }
            },
        );
        (status, Html(body.into_string())).into_response()
    }
}
