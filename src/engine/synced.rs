//! The task changes two-way sync makes besides finishing (`crate::sync`).

use hopper_integration_api::Priority;

use super::Engine;
use crate::domain::{TaskId, now_millis};
use crate::error::Result;
use crate::store::EventRecord;

impl Engine {
    /// Appends `event` to a task's history, wherever the task is stored.
    pub(crate) async fn append_history(&self, id: &TaskId, event: &EventRecord) -> Result<()> {
        let (task, node) = self.locate(id).await?;
        node.store
            .append_event(&task.id, &task.instance_id, now_millis(), event)
            .await?;
        Ok(())
    }

    /// Sets the tags and priority of a task and of the copy its work is on now (a project's
    /// queue orders by the copy's priority), each with `event` in its history.
    pub(crate) async fn retag(
        &self,
        id: &TaskId,
        tags: &[String],
        priority: Priority,
        event: &EventRecord,
    ) -> Result<()> {
        let (task, node) = self.locate(id).await?;
        let now = now_millis();
        node.store
            .retag_task(
                &task.id,
                &task.instance_id,
                tags,
                priority.rank(),
                event,
                now,
            )
            .await?;
        let (work, work_node) = self.work_task(task.id.clone(), node).await;
        if work != task.id {
            work_node
                .store
                .retag_task(&work, work_node.id(), tags, priority.rank(), event, now)
                .await?;
        }
        Ok(())
    }
}
