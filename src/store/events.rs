use super::rows::EventRow;
use super::{Store, StoreResult, on_db};
use crate::domain::{InstanceId, Millis, TaskEvent, TaskId};

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
}

pub(crate) const INSERT_EVENT: &str = "INSERT INTO task_events (task_id, instance_id, at, kind, actor, detail) VALUES ($1, $2, $3, $4, $5, $6)";

/// Appends an event inside the caller's transaction (or on a bare pool). A macro rather than a
/// generic function because the executor type differs per dialect.
macro_rules! append_event {
    ($exec:expr, $task:expr, $instance:expr, $at:expr, $event:expr) => {
        sqlx::query($crate::store::events::INSERT_EVENT)
            .bind(AsRef::<str>::as_ref(&$task))
            .bind(AsRef::<str>::as_ref(&$instance))
            .bind($at)
            .bind($event.kind)
            .bind($event.actor.as_str())
            .bind($event.detail.as_ref().map(|d| d.to_string()))
            .execute($exec)
            .await
    };
}
pub(crate) use append_event;

impl Store {
    pub async fn task_events(&self, task: &TaskId) -> StoreResult<Vec<TaskEvent>> {
        const Q: &str =
            "SELECT at, kind, actor, detail FROM task_events WHERE task_id = $1 ORDER BY id";
        let rows: Vec<EventRow> =
            on_db!(&self.reader, p => sqlx::query_as(Q).bind(task.as_str()).fetch_all(p).await?);
        rows.into_iter().map(TaskEvent::try_from).collect()
    }

    pub async fn append_event(
        &self,
        task: &TaskId,
        instance: &InstanceId,
        at: Millis,
        event: &EventRecord,
    ) -> StoreResult<()> {
        on_db!(&self.db, p => { append_event!(p, task, instance, at, event)?; });
        self.durable().await
    }
}
