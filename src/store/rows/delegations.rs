//! `task_delegations`: a parent task handed to a child instance, and the writes that carry one.

use super::{Binder, EventRecord, NewTaskRow, StoreError, StoreResult};
use crate::domain::{InstanceId, Millis, TaskId};

/// The columns of `task_delegations`, in the order every statement here binds them. A macro so
/// that constant statements can `concat!` it.
macro_rules! delegation_columns {
    () => {
        "parent_instance_id, parent_task_id, child_instance_id, child_task_id, kind, state, \
         delegated_at"
    };
}
pub(in crate::store) const DELEGATION_COLUMNS: &str = delegation_columns!();
pub(in crate::store) const INSERT_DELEGATION: &str = concat!(
    "INSERT INTO task_delegations (",
    delegation_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
);

/// Binds a delegation's columns in [`DELEGATION_COLUMNS`]' order, on either driver.
pub(in crate::store) fn bind_delegation<'q, B: Binder<'q>>(q: B, d: &'q Delegation) -> B {
    q.value(d.parent_instance_id.as_str())
        .value(d.parent_task_id.as_str())
        .value(d.child_instance_id.as_str())
        .value(d.child_task_id.as_str())
        .value(d.kind.as_str())
        .value(d.state.as_str())
        .value(d.delegated_at)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegationKind {
    /// Finishes with one child task (global -> project).
    Task,
    /// Finishes when a whole orchestration run has no open task (project -> run).
    Run,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelegationState {
    /// Recorded; the child insert may not have happened yet.
    Pending,
    /// The child holds the work.
    Delegated,
    Finished,
    /// The child was lost (an in-memory run across a restart); the parent task was re-queued.
    Abandoned,
}

impl DelegationKind {
    pub(in crate::store) fn as_str(self) -> &'static str {
        match self {
            DelegationKind::Task => "task",
            DelegationKind::Run => "run",
        }
    }
}

impl DelegationState {
    pub(in crate::store) fn as_str(self) -> &'static str {
        match self {
            DelegationState::Pending => "pending",
            DelegationState::Delegated => "delegated",
            DelegationState::Finished => "finished",
            DelegationState::Abandoned => "abandoned",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Delegation {
    pub parent_instance_id: InstanceId,
    pub parent_task_id: TaskId,
    pub child_instance_id: InstanceId,
    pub child_task_id: TaskId,
    pub kind: DelegationKind,
    pub state: DelegationState,
    pub delegated_at: Millis,
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct DelegationRow {
    parent_instance_id: String,
    parent_task_id: String,
    child_instance_id: String,
    child_task_id: String,
    kind: String,
    state: String,
    delegated_at: i64,
}

impl TryFrom<DelegationRow> for Delegation {
    type Error = StoreError;
    fn try_from(r: DelegationRow) -> StoreResult<Self> {
        let bad = |e: String| StoreError::Corrupt(format!("task_delegations: {e}"));
        Ok(Delegation {
            parent_instance_id: InstanceId::parse(&r.parent_instance_id).map_err(bad)?,
            parent_task_id: TaskId::parse(&r.parent_task_id).map_err(bad)?,
            child_instance_id: InstanceId::parse(&r.child_instance_id).map_err(bad)?,
            child_task_id: TaskId::parse(&r.child_task_id).map_err(bad)?,
            kind: match r.kind.as_str() {
                "task" => DelegationKind::Task,
                "run" => DelegationKind::Run,
                other => return Err(bad(format!("kind `{other}`"))),
            },
            state: match r.state.as_str() {
                "pending" => DelegationState::Pending,
                "delegated" => DelegationState::Delegated,
                "finished" => DelegationState::Finished,
                "abandoned" => DelegationState::Abandoned,
                other => return Err(bad(format!("state `{other}`"))),
            },
            delegated_at: r.delegated_at,
        })
    }
}

impl Delegation {
    pub(in crate::store) fn kind_str(&self) -> &'static str {
        self.kind.as_str()
    }

    pub(in crate::store) fn state_str(&self) -> &'static str {
        self.state.as_str()
    }
}

/// A child task that goes into its parent's routing transaction: the child shares the parent's
/// database and keeps the task, so the whole hand-off is one commit with nothing to re-drive.
#[derive(Debug, Clone)]
pub struct Handover {
    pub row: NewTaskRow,
    pub event: EventRecord,
}

/// Routing decided before an inbound task was recorded, written with it: the delegation to a
/// child in the same database (born `delegated`), the parent's `routed` event, and the child's
/// task.
#[derive(Debug, Clone)]
pub struct RoutedNow {
    pub delegation: Delegation,
    pub event: EventRecord,
    pub handover: Handover,
}
