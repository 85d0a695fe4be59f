//! Completion bubbling up the hierarchy, orchestration runs finishing, and
//! `archive_and_delete`.
//!
//! Exactly once: a parent task finishes through one conditional update (`routed` -> done) that
//! also closes its delegation, in one transaction. Any number of concurrent completers may try;
//! one wins and carries the bubble further up. Nothing is lost either: each completer checks for
//! open work only after its own commit, so the last one to commit always sees none.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::json;

use super::{Engine, Node};
use crate::domain::{
    Actor, ChildFeedback, Feedback, InstanceId, InstanceStatus, Scope, Task, TaskStatus, now_millis,
};
use crate::error::{HopperError, Result};
use crate::store::{DelegationKind, EventRecord, FinishRequest};

impl Engine {
    /// At debug level: every finish bubbles, and the `finish` (or `recover`) span around it
    /// already names the task; a hop up the tree nests one of these in the one below.
    #[tracing::instrument(
        name = "bubble",
        level = "debug",
        skip_all,
        fields(
            task_id = %task.id,
            instance = %node.id(),
            status = task.status.as_str(),
            parent_task = tracing::field::Empty,
        )
    )]
    pub(super) fn bubble(&self, node: Arc<Node>, task: Task) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if let (Some(parent_task), Some(parent_id)) = (&task.parent_task_id, node.parent()) {
                tracing::Span::current()
                    .record("parent_task", tracing::field::display(parent_task));
                let parent = self.node(parent_id).await?;
                let delegation = parent.store.delegation_of(parent_task).await?;
                // Only the child the delegation names finishes the parent: a copy cancelled by
                // a re-route is no longer it.
                if delegation
                    .is_some_and(|d| d.kind == DelegationKind::Task && d.child_task_id == task.id)
                {
                    let child = child_feedback(&task);
                    let feedback = Feedback::aggregate(None, vec![child]);
                    self.finish_parent(
                        &parent,
                        parent_task,
                        task.status,
                        feedback,
                        task.failure_reason.clone(),
                    )
                    .await?;
                }
            }
            if let Some(run) = &node.run {
                self.maybe_finish_run(run).await?;
            }
            Ok(())
        })
    }

    /// Finishes the parent task of a delegation; if this call won, keeps bubbling.
    async fn finish_parent(
        &self,
        parent: &Arc<Node>,
        task_id: &crate::domain::TaskId,
        status: TaskStatus,
        feedback: Option<Feedback>,
        reason: Option<String>,
    ) -> Result<()> {
        let ev = EventRecord::new("child_finished", "hopper").with(json!({ "status": status }));
        let req = FinishRequest {
            id: task_id,
            from: &[TaskStatus::Routed],
            to: status,
            claimer: None,
            lease: None,
            feedback: feedback.as_ref(),
            failure_reason: reason.as_deref(),
            event: ev,
            now: now_millis(),
        };
        if let Some(done) = parent.store.finish_delegated(&req, parent.id()).await? {
            metrics::counter!("hopper_bubbles_total").increment(1);
            tracing::debug!(parent_instance = %parent.id(), "parent task finished by its child");
            self.bubble(parent.clone(), done).await?;
        }
        Ok(())
    }

    /// A delegated run finishes when nothing in it is open any more.
    async fn maybe_finish_run(&self, run: &InstanceId) -> Result<()> {
        let Ok(run_node) = self.node(run).await else {
            return Ok(());
        };
        let subtree = self.subtree(run).await;
        let ids: Vec<InstanceId> = subtree.iter().map(|n| n.id().clone()).collect();
        if run_node.store.count_open(&ids).await? > 0 {
            return Ok(());
        }
        let tasks = run_node
            .store
            .list_tasks(&ids, None, None, i64::MAX)
            .await?;
        let Some(root) = tasks
            .iter()
            .find(|t| t.parent_task_id.is_some() && &t.instance_id == run)
        else {
            // Not delegated from a project: the orchestrator archives it when it is done.
            return Ok(());
        };
        let Some(parent_id) = run_node.parent() else {
            return Ok(());
        };
        let parent = self.node(parent_id).await?;
        let parent_task = root
            .parent_task_id
            .clone()
            .ok_or_else(|| HopperError::Conflict("run root lost its parent".into()))?;
        let status = run_outcome(&tasks);
        let feedback = Feedback::aggregate(None, tasks.iter().map(child_feedback).collect());
        let reason = (status == TaskStatus::Failed)
            .then(|| "a task of the orchestration run failed".to_owned());
        // Summarise first: the parent must be able to see how the run went after its tasks are gone.
        let summary = run_summary(run, &tasks, status);
        self.finish_parent(&parent, &parent_task, status, feedback, reason)
            .await?;
        self.archive(&subtree, &ids, summary).await
    }

    /// Archives an orchestration run: open tasks are cancelled, a summary goes to the registry
    /// (and to the parent task's history), the ephemeral tasks are deleted.
    pub async fn archive_and_delete(&self, id: &InstanceId) -> Result<serde_json::Value> {
        let node = self.node(id).await?;
        if node.scope() != Scope::Orchestration {
            return Err(HopperError::Conflict(format!(
                "`{id}` is a {} instance; only orchestration instances are ephemeral",
                node.scope()
            )));
        }
        let subtree = self.subtree(id).await;
        let ids: Vec<InstanceId> = subtree.iter().map(|n| n.id().clone()).collect();
        for t in node.store.list_tasks(&ids, None, None, i64::MAX).await? {
            if !t.status.is_terminal() {
                let ev = EventRecord::new("cancelled", "hopper")
                    .with(json!({ "reason": "run archived" }));
                let req = FinishRequest {
                    id: &t.id,
                    from: &[TaskStatus::Pending, TaskStatus::Claimed, TaskStatus::Routed],
                    to: TaskStatus::Cancelled,
                    claimer: None,
                    lease: None,
                    feedback: None,
                    failure_reason: None,
                    event: ev,
                    now: now_millis(),
                };
                node.store.transition(&req).await?;
            }
        }
        // With nothing open, a delegated run finishes its parent task and archives itself.
        if node.run.as_ref() == Some(id) {
            self.maybe_finish_run(id).await?;
        }
        if let Ok(still) = self.node(id).await {
            let tasks = still.store.list_tasks(&ids, None, None, i64::MAX).await?;
            let summary = run_summary(id, &tasks, run_outcome(&tasks));
            self.archive(&subtree, &ids, summary).await?;
        }
        Ok(self.get_instance(id).await?.summary.unwrap_or_default())
    }

    async fn archive(
        &self,
        subtree: &[Arc<Node>],
        ids: &[InstanceId],
        summary: serde_json::Value,
    ) -> Result<()> {
        let Some(run) = subtree.first() else {
            return Ok(());
        };
        if self.node(run.id()).await.is_err() {
            return Ok(()); // someone else archived it
        }
        self.forget_subtree(subtree, InstanceStatus::Archived, Some(&summary))
            .await?;
        run.store.delete_instance_tasks(ids).await?;
        metrics::counter!("hopper_runs_archived_total").increment(1);
        tracing::info!(run = %run.id(), "orchestration run archived");
        Ok(())
    }

    /// Cancelling a routed task cancels the work it handed down.
    pub(super) async fn cancel_downward(&self, task: &Task) -> Result<()> {
        let Some(child_id) = &task.routed_to else {
            return Ok(());
        };
        let Ok(child) = self.node(child_id).await else {
            return Ok(());
        };
        let parent = self.node(&task.instance_id).await?;
        let Some(d) = parent.store.delegation_of(&task.id).await? else {
            return Ok(());
        };
        match d.kind {
            DelegationKind::Task => {
                if let Ok(t) = self.get_task(&d.child_task_id).await
                    && !t.status.is_terminal()
                {
                    Box::pin(self.cancel(&t.id, &Actor::System)).await?;
                }
            }
            DelegationKind::Run => {
                Box::pin(self.archive_and_delete(child.id())).await?;
            }
        }
        Ok(())
    }

    /// The design's `notify_parent`: records a child's event on the task it was delegated from.
    pub async fn notify_parent(
        &self,
        instance: &InstanceId,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let node = self.node(instance).await?;
        let parent_id = node
            .parent()
            .ok_or_else(|| HopperError::Conflict(format!("`{instance}` has no parent")))?;
        let parent = self.node(parent_id).await?;
        let ids = [instance.clone()];
        let tasks = node.store.list_tasks(&ids, None, None, 1000).await?;
        let Some(parent_task) = tasks.iter().find_map(|t| t.parent_task_id.clone()) else {
            return Err(HopperError::Conflict(format!(
                "`{instance}` holds no delegated task to report on"
            )));
        };
        let ev = EventRecord::new("child_event", instance.as_str())
            .with(json!({ "kind": kind, "detail": detail }));
        parent
            .store
            .append_event(&parent_task, parent.id(), now_millis(), &ev)
            .await?;
        Ok(())
    }
}

fn child_feedback(t: &Task) -> ChildFeedback {
    ChildFeedback {
        instance_id: t.instance_id.to_string(),
        task_id: t.id.to_string(),
        title: t.title.clone(),
        status: t.status.as_str().to_owned(),
        feedback: t.feedback.clone().map(Box::new),
    }
}

fn run_outcome(tasks: &[Task]) -> TaskStatus {
    if tasks.iter().any(|t| t.status == TaskStatus::Failed) {
        TaskStatus::Failed
    } else if tasks.iter().any(|t| t.status == TaskStatus::Cancelled) {
        TaskStatus::Cancelled
    } else {
        TaskStatus::Done
    }
}

fn run_summary(run: &InstanceId, tasks: &[Task], status: TaskStatus) -> serde_json::Value {
    let count = |s: TaskStatus| tasks.iter().filter(|t| t.status == s).count();
    json!({
        "run": run,
        "outcome": status,
        "tasks": tasks.len(),
        "done": count(TaskStatus::Done),
        "failed": count(TaskStatus::Failed),
        "cancelled": count(TaskStatus::Cancelled),
        "archived_at": crate::domain::millis_to_rfc3339(now_millis()),
        "task_list": tasks.iter().map(|t| json!({
            "id": t.id, "instance_id": t.instance_id, "title": t.title, "status": t.status,
            "claimed_by": t.claimed_by, "feedback": t.feedback,
        })).collect::<Vec<_>>(),
    })
}
