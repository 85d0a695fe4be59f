//! `task_events`: every task's append-only history. Writes append to it in their own
//! transaction (the SQLite group commit collects them per batch, see `sqlite::PendingEvent`);
//! this module reads it and appends on its own.

use super::rows::{EventRecord, EventRow};
use super::{Store, StoreResult, on_reader, on_writer};
use crate::domain::{InstanceId, Millis, TaskEvent, TaskId};

/// Appends an event inside the caller's transaction (or on a bare pool). A macro rather than a
/// generic function because the executor type differs per dialect.
macro_rules! append_event {
    ($exec:expr, $task:expr, $instance:expr, $at:expr, $event:expr) => {
        sqlx::query($crate::store::rows::INSERT_TASK_EVENT)
            .bind(AsRef::<str>::as_ref(&$task))
            .bind(AsRef::<str>::as_ref(&$instance))
            .bind($at)
            .bind($event.kind)
            .bind($event.actor.as_str())
            .bind($event.detail_text())
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
            on_reader!(self, p => sqlx::query_as(Q).bind(task.as_str()).fetch_all(p).await?);
        rows.into_iter().map(TaskEvent::try_from).collect()
    }

    pub async fn append_event(
        &self,
        task: &TaskId,
        instance: &InstanceId,
        at: Millis,
        event: &EventRecord,
    ) -> StoreResult<()> {
        on_writer!(self, c => {
            append_event!(&mut *c, task, instance, at, event)?;
            Ok(())
        })
    }
}
