//! Inbound events as the API and the CLI show them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A stored webhook, email or HTTP event and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InboundEventView {
    pub id: String,
    /// `github`, `gitlab`, `slack`, `email`, `http:<name>`.
    pub source: String,
    pub endpoint: String,
    pub delivery_id: Option<String>,
    pub event_type: String,
    /// Epoch milliseconds.
    pub received_at: i64,
    /// `accepted`, `ignored` or `commented`.
    pub status: String,
    pub reason: Option<String>,
    pub instance_id: String,
    pub task_id: Option<String>,
    pub replay_of: Option<String>,
    pub routed_at: Option<i64>,
    /// The headers kept with the event (signatures and credentials are never stored).
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
    pub body_bytes: usize,
    /// The raw body, in detail views only (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// What `POST /v1/events/{id}/replay` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IngestReceipt {
    pub event_id: String,
    pub status: String,
    pub task_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
pub struct EventFilter {
    pub source: Option<String>,
    pub status: Option<String>,
    pub limit: Option<i64>,
}
