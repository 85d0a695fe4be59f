//! Outbound deliveries: what was sent to executors, every attempt, and sending again.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Body, Query};
use crate::domain::{Delivery, DeliveryDetail, DeliveryFilter};
use crate::outbound::deliveries;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/deliveries", get(list_deliveries))
        .route("/deliveries/{id}", get(get_delivery))
        .route("/deliveries/{id}/retry", post(retry_delivery))
        .route("/executors/{id}/recover", post(recover_executor))
}

/// Deliveries, newest first.
#[utoipa::path(get, path = "/v1/deliveries", params(DeliveryFilter), responses((status = 200, body = [Delivery]), (status = 422)))]
pub async fn list_deliveries(
    State(s): State<AppState>,
    Query(f): Query<DeliveryFilter>,
) -> ApiResult<Json<Vec<Delivery>>> {
    Ok(Json(deliveries::list(&s.engine, &f).await?))
}

/// One delivery, its signed body and every attempt.
#[utoipa::path(get, path = "/v1/deliveries/{id}", responses((status = 200, body = DeliveryDetail), (status = 404)))]
pub async fn get_delivery(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryDetail>> {
    Ok(Json(deliveries::show(&s.engine, &id).await?))
}

/// A dead or pending delivery is sent again now (409 if delivered or cancelled).
#[utoipa::path(post, path = "/v1/deliveries/{id}/retry", responses((status = 200, body = DeliveryDetail), (status = 404), (status = 409)))]
pub async fn retry_delivery(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeliveryDetail>> {
    Ok(Json(deliveries::retry(&s.engine, &id).await?))
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// RFC 3339: dead deliveries created since then are sent again.
    pub since: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecoverReceipt {
    pub recovered: u64,
}

/// Sends again every dead delivery of the executor created since `since`.
#[utoipa::path(post, path = "/v1/executors/{id}/recover", request_body = RecoverRequest, responses((status = 200, body = RecoverReceipt), (status = 422)))]
pub async fn recover_executor(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(req): Body<RecoverRequest>,
) -> ApiResult<Json<RecoverReceipt>> {
    let recovered = deliveries::recover(&s.engine, &id, &req.since).await?;
    Ok(Json(RecoverReceipt { recovered }))
}
