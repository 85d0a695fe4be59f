//! The vocabulary shared by every other module: ids, tasks, instances, feedback.

mod delivery;
mod executor;
mod feedback;
mod ids;
mod inbound;
mod instance;
mod memory;
mod task;

pub use delivery::{Delivery, DeliveryAttempt, DeliveryDetail, DeliveryFilter, DeliveryStatus};
pub use executor::{Executor, ExecutorId, ExecutorKind, TokenRole, events};
pub use feedback::{ChildFeedback, Feedback};
pub use hopper_integration_api::{Moment, Priority, SourceRef, TaskDraft};
pub use ids::{InstanceId, TaskId, validate_child_name};
pub use inbound::{EventFilter, InboundEventView, IngestReceipt};
pub use instance::{Instance, InstanceFilter, InstanceStats, InstanceStatus, InstanceTree, Scope};
pub use memory::{MemoryHit, MemoryQuery};
pub use task::{Actor, Task, TaskEvent, TaskFilter, TaskStatus};

/// Milliseconds since the Unix epoch: the one clock format stored in every table, so both SQL
/// dialects index and compare it the same way.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// An RFC 3339 time as epoch milliseconds; `None` if `s` is not one.
pub fn rfc3339_to_millis(s: &str) -> Option<Millis> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

pub fn millis_to_rfc3339(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
