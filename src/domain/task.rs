use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Feedback, InstanceId, Priority, SourceRef, TaskId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting in its instance's queue.
    Pending,
    /// Handed down to a child instance; finishes when the child's work does.
    Routed,
    /// Held by an executor under a lease.
    Claimed,
    Done,
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Routed => "routed",
            TaskStatus::Claimed => "claimed",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Done | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Pending,
        TaskStatus::Routed,
        TaskStatus::Claimed,
        TaskStatus::Done,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];
}

impl FromStr for TaskStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown task status `{s}`"))
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: TaskId,
    pub instance_id: InstanceId,
    /// The task in the parent instance this one was delegated from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_task_id: Option<TaskId>,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub priority: Priority,
    /// When the task is due, if its draft said: RFC 3339, in UTC to the millisecond.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub needs_orchestration: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    pub required_capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
    pub status: TaskStatus,
    /// The child instance this task was handed to, when `status` is `routed` (or was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed_to: Option<InstanceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<String>,
    /// The current claim's lease: `heartbeat`, `complete`, `fail` and `release` by an
    /// executor must present it. A fresh value per claim, so a worker whose lease expired or
    /// was taken over (even under the same executor name) is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_id: Option<String>,
    /// How many times the task has been claimed.
    pub attempts: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Feedback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
}

/// One line of a task's append-only history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskEvent {
    pub at: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub detail: Option<serde_json::Value>,
}

/// Who asks for a state change. A claimed task is changed only under its current lease (or by
/// an admin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Admin,
    /// An executor acting under the lease its claim returned.
    Executor {
        name: String,
        lease: String,
    },
    /// Hopper itself: bubbling, lease expiry, retention.
    System,
}

impl Actor {
    pub fn name(&self) -> &str {
        match self {
            Actor::Admin => "admin",
            Actor::Executor { name, .. } => name,
            Actor::System => "hopper",
        }
    }

    /// The executor holding `task`'s claim, as the claim returned it; `None` if unclaimed.
    pub fn holder(task: &Task) -> Option<Actor> {
        match (&task.claimed_by, &task.lease_id) {
            (Some(name), Some(lease)) => Some(Actor::Executor {
                name: name.clone(),
                lease: lease.clone(),
            }),
            _ => None,
        }
    }

    pub fn lease(&self) -> Option<&str> {
        match self {
            Actor::Executor { lease, .. } => Some(lease),
            Actor::Admin | Actor::System => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    /// Include the tasks of every descendant instance.
    pub hierarchy: bool,
    pub limit: Option<i64>,
    /// Keyset pagination: only tasks whose id sorts after this one (the last of the previous
    /// page; ids sort by creation time).
    pub after: Option<TaskId>,
}

impl Task {
    /// The draft this task was made from, for handing it down again.
    pub fn to_draft(&self) -> super::TaskDraft {
        super::TaskDraft {
            title: self.title.clone(),
            description: self.description.clone(),
            tags: self.tags.clone(),
            priority: self.priority,
            due_at: self.due_at.clone(),
            project: self.project.clone(),
            needs_orchestration: self.needs_orchestration,
            executor: self.executor.clone(),
            required_capabilities: self.required_capabilities.clone(),
            requester: self.requester.clone(),
            source: self.source.clone(),
        }
    }
}
