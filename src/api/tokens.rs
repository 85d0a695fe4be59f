//! `/v1/tokens`: minting and revoking API tokens (admin only). A token's value is answered once,
//! at creation; listings never hold a value or a hash.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};

use super::AppState;
use super::error::ApiResult;
use super::extract::Body;
use crate::engine::{MintedToken, TokenRequest};
use crate::store::ApiToken;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", post(create).get(list))
        .route("/tokens/{id}", delete(revoke))
}

/// Mint a token: `{role: admin|read|executor, executor?, name?}`. The answer's `token` is shown
/// only now.
#[utoipa::path(post, path = "/v1/tokens", request_body = TokenRequest, responses((status = 201, body = MintedToken), (status = 404), (status = 422)))]
pub async fn create(
    State(s): State<AppState>,
    Body(req): Body<TokenRequest>,
) -> ApiResult<(StatusCode, Json<MintedToken>)> {
    Ok((StatusCode::CREATED, Json(s.engine.mint_token(&req).await?)))
}

/// Every minted token, revoked ones included.
#[utoipa::path(get, path = "/v1/tokens", responses((status = 200, body = [ApiToken])))]
pub async fn list(State(s): State<AppState>) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(s.engine.list_tokens().await?))
}

/// Revoke a token; answers it with `revoked_at`.
#[utoipa::path(delete, path = "/v1/tokens/{id}", responses((status = 200, body = ApiToken), (status = 404)))]
pub async fn revoke(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiToken>> {
    Ok(Json(s.engine.revoke_token(&id).await?))
}
