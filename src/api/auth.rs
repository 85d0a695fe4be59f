//! Bearer-token authentication for `/v1`.

use super::AppState;
use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match given {
        Some(token) if state.admin_token.matches(token) => next.run(req).await,
        _ => {
            metrics::counter!("hopper_auth_failures_total").increment(1);
            ApiError::unauthorized().into_response()
        }
    }
}
