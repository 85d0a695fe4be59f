//! Deliveries as the API and the CLI see them: list, show (with every attempt), retry, and
//! recover an executor's dead messages.

use crate::domain::{
    Delivery, DeliveryDetail, DeliveryFilter, ExecutorId, now_millis, rfc3339_to_millis,
};
use crate::engine::Engine;
use crate::error::{HopperError, Result};

pub async fn list(engine: &Engine, filter: &DeliveryFilter) -> Result<Vec<Delivery>> {
    if let Some(l) = filter.limit
        && !(1..=1000).contains(&l)
    {
        return Err(HopperError::Invalid(
            "limit must be between 1 and 1000".into(),
        ));
    }
    Ok(engine.registry_store().list_deliveries(filter).await?)
}

pub async fn show(engine: &Engine, id: &str) -> Result<DeliveryDetail> {
    let store = engine.registry_store();
    let (delivery, payload) = store
        .get_delivery(id)
        .await?
        .ok_or_else(|| HopperError::NotFound(format!("delivery `{id}` not found")))?;
    let history = store.delivery_attempts(id).await?;
    let payload = serde_json::from_str(&payload)
        .map_err(|e| HopperError::Invalid(format!("delivery `{id}` has a broken payload: {e}")))?;
    Ok(DeliveryDetail {
        delivery,
        payload,
        history,
    })
}

/// A dead or pending delivery becomes due now; 409 for a delivered or cancelled one.
pub async fn retry(engine: &Engine, id: &str) -> Result<DeliveryDetail> {
    let store = engine.registry_store();
    if !store.retry_delivery(id, now_millis()).await? {
        let current = show(engine, id).await?;
        return Err(HopperError::Conflict(format!(
            "delivery `{id}` is {}: only a dead or pending delivery is retried",
            current.delivery.status.as_str()
        )));
    }
    // Read before the dispatcher is woken: the answer is what the retry did (pending, due now),
    // not how far the dispatcher got since (a loaded machine showed `delivered` here).
    let detail = show(engine, id).await?;
    engine.deliveries_due();
    Ok(detail)
}

/// Every dead delivery of `executor` created since `since` (RFC 3339) becomes due now;
/// returns how many.
pub async fn recover(engine: &Engine, executor: &str, since: &str) -> Result<u64> {
    ExecutorId::parse(executor).map_err(HopperError::Invalid)?;
    let since = rfc3339_to_millis(since)
        .ok_or_else(|| HopperError::Invalid(format!("since: `{since}` is not an RFC 3339 time")))?;
    let n = engine
        .registry_store()
        .recover_deliveries(executor, since, now_millis())
        .await?;
    engine.deliveries_due();
    Ok(n)
}
