//! Deliveries: one message (a task event) to one executor's webhook, retried on the outbound
//! schedule until it lands or is dead-lettered; every attempt is kept.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not delivered yet: due at `next_attempt_at` (also while its executor is disabled).
    Pending,
    Delivered,
    /// Every attempt of the schedule failed (`retry` or `recover` sends it again).
    Dead,
    /// An auto-claim delivery whose claim was lost before it was delivered.
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Dead,
        DeliveryStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeliveryStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("unknown delivery status `{s}` (pending, delivered, dead, cancelled)")
            })
    }
}

/// A delivery as listed. Its payload (the signed body) is shown by `GET /v1/deliveries/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    /// `msg_<uuidv7>`, the `webhook-id` of every attempt.
    pub id: String,
    pub executor_id: String,
    /// The outbox event it carries (`evt_…`).
    pub event_id: String,
    pub event: String,
    pub task_id: String,
    pub instance_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
}

/// One attempt to send a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttempt {
    pub attempt: i64,
    pub at: String,
    /// The HTTP status the executor answered, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// The start of the answer's body (`outbound.response_excerpt_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Why it failed without an answer (refused URL, timeout, connection error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /v1/deliveries/{id}`: the delivery, the body it signs and every attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Every attempt, oldest first (`attempts` is their count).
    pub history: Vec<DeliveryAttempt>,
}

/// Which deliveries `GET /v1/deliveries` lists.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
pub struct DeliveryFilter {
    /// An executor id, or `report:<source>` for the reports back to a source.
    pub executor: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub task: Option<String>,
    pub limit: Option<i64>,
}
