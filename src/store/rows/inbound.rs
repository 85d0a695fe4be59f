//! `inbound_events` and `inbound_bodies`: an event about to be recorded, and its columns.

use super::{EventRecord, NewTaskRow, RoutedNow};
use crate::domain::Millis;

/// The columns of `inbound_events` a record writes, in the order it binds them (its 15
/// parameters less `$7` and `$14`, the body and its encoding, which go to `inbound_bodies`). A
/// macro so that constant statements can `concat!` it.
macro_rules! inbound_columns {
    () => {
        "id, source, delivery_id, event_type, received_at, headers, status, reason, instance_id, \
         task_id, replay_of, endpoint, routed_at"
    };
}
pub(in crate::store) const INBOUND_COLUMNS: &str = inbound_columns!();
/// Inserts an event from its 15 parameters (see [`INBOUND_COLUMNS`]).
pub(in crate::store) const INSERT_INBOUND: &str = concat!(
    "INSERT INTO inbound_events (",
    inbound_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $8, $9, $10, $11, $12, $13, $15) \
     ON CONFLICT (source, delivery_id) DO NOTHING"
);

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct NewInboundEvent {
    pub id: String,
    pub source: String,
    /// Where it came in (`github`, `slack/commands`, `smtp`): what a replay re-reads it with.
    pub endpoint: String,
    pub delivery_id: Option<String>,
    pub event_type: String,
    pub received_at: Millis,
    /// The headers that matter (signatures removed), as a JSON object.
    pub headers: serde_json::Value,
    pub body: bytes::Bytes,
    /// `accepted`, `ignored` or `commented`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub instance_id: String,
    /// For `commented`: the task the comment went to.
    pub task_id: Option<String>,
    pub replay_of: Option<String>,
    /// Set when the event's task was routed in the same commit that records it.
    pub routed_at: Option<Millis>,
}

/// The task an inbound event creates.
#[derive(Debug)]
pub struct NewTask {
    pub row: NewTaskRow,
    /// Its `created` history entry.
    pub created: EventRecord,
    /// Its delegation to a child, when routing was decided before recording (the row is then
    /// already `routed`).
    pub routed: Option<RoutedNow>,
}
