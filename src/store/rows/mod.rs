//! What each table holds: row types, their column lists, and the records about to be written.
//!
//! This is the bottom layer of the store: both backends (`sqlite`, `postgres`) and every table
//! module build on it, and it builds on neither. A table's columns are named here once, and
//! every statement that lists them is built from that list.

mod columns;
mod delegations;
mod executors;
mod inbound;
mod tasks;

pub(in crate::store) use columns::{Binder, Value};
pub(in crate::store) use delegations::{
    DELEGATION_COLUMNS, DelegationRow, INSERT_DELEGATION, bind_delegation,
};
pub use delegations::{Delegation, DelegationKind, DelegationState, Handover, RoutedNow};
pub use executors::{ApiToken, ExecutorEvent};
pub(in crate::store) use executors::{
    EXECUTOR_COLUMNS, EXECUTOR_EVENT_COLUMNS, ExecutorEventRow, ExecutorRow, INSERT_EXECUTOR,
    TOKEN_COLUMNS, TokenRow, UPDATE_EXECUTOR,
};
pub(in crate::store) use inbound::{INBOUND_COLUMNS, INSERT_INBOUND};
pub use inbound::{NewInboundEvent, NewTask};
pub use tasks::NewTaskRow;
pub(in crate::store) use tasks::{
    BatchQuery, INSERT_TASK, INSERT_TASKS_FROM_K, TASK_COLUMNS, TASK_INSERT, TaskRow,
    bind_new_task, bind_task_arrays, unnest_tasks,
};

use crate::domain::{Instance, InstanceId, TaskEvent, millis_to_rfc3339};

use super::error::{StoreError, StoreResult};

/// One entry for the append-only `task_events` history.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub kind: &'static str,
    pub actor: String,
    pub detail: Option<serde_json::Value>,
}

impl EventRecord {
    pub fn new(kind: &'static str, actor: impl Into<String>) -> Self {
        Self {
            kind,
            actor: actor.into(),
            detail: None,
        }
    }

    pub fn with(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// `detail` as stored.
    pub(in crate::store) fn detail_text(&self) -> Option<String> {
        self.detail.as_ref().map(|d| d.to_string())
    }
}

/// The columns of `task_events` a write names (`id` is the database's). A macro so that
/// constant statements can `concat!` it.
macro_rules! task_event_columns {
    () => {
        "task_id, instance_id, at, kind, actor, detail"
    };
}
pub(in crate::store) const TASK_EVENT_COLUMNS: &str = task_event_columns!();
/// One history event, `$1` to `$6` in [`TASK_EVENT_COLUMNS`]' order.
pub(in crate::store) const INSERT_TASK_EVENT: &str = concat!(
    "INSERT INTO task_events (",
    task_event_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6)"
);

/// The registry's columns, as read.
pub(in crate::store) const INSTANCE_COLUMNS: &str =
    "instance_id, scope, parent_instance_id, config, status, metadata, summary, created_at";

pub(in crate::store) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(in crate::store) fn json<T: serde::de::DeserializeOwned>(
    what: &str,
    s: &str,
) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| corrupt(what, e))
}

pub(in crate::store) fn opt_json<T: serde::de::DeserializeOwned>(
    what: &str,
    s: Option<String>,
) -> StoreResult<Option<T>> {
    s.map(|s| json(what, &s)).transpose()
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct EventRow {
    at: i64,
    kind: String,
    actor: Option<String>,
    detail: Option<String>,
}

impl TryFrom<EventRow> for TaskEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> StoreResult<TaskEvent> {
        Ok(TaskEvent {
            at: millis_to_rfc3339(r.at),
            kind: r.kind,
            actor: r.actor,
            detail: opt_json("task_events.detail", r.detail)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct InstanceRow {
    instance_id: String,
    scope: String,
    parent_instance_id: Option<String>,
    config: String,
    status: String,
    metadata: String,
    summary: Option<String>,
    created_at: i64,
}

impl TryFrom<InstanceRow> for Instance {
    type Error = StoreError;
    fn try_from(r: InstanceRow) -> StoreResult<Instance> {
        Ok(Instance {
            instance_id: InstanceId::parse(&r.instance_id)
                .map_err(|e| corrupt("instance_id", e))?,
            scope: r.scope.parse().map_err(|e| corrupt("scope", e))?,
            parent_instance_id: r
                .parent_instance_id
                .map(|p| InstanceId::parse(&p))
                .transpose()
                .map_err(|e| corrupt("parent_instance_id", e))?,
            config: json("config", &r.config)?,
            status: r.status.parse().map_err(|e| corrupt("status", e))?,
            metadata: json("metadata", &r.metadata)?,
            summary: opt_json("summary", r.summary)?,
            created_at: millis_to_rfc3339(r.created_at),
        })
    }
}

pub(in crate::store) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(in crate::store) fn source_json(s: &crate::domain::SourceRef) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "null".into())
}
