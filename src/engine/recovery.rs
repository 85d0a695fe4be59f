//! Start-up re-drive: finishes what a previous process left half-done. Every step is
//! idempotent, so recovering twice (or recovering work another process already finished)
//! changes nothing.

use std::sync::Arc;

use serde_json::json;

use super::Engine;
use crate::domain::{TaskStatus, now_millis};
use crate::error::Result;
use crate::store::{Delegation, DelegationKind, DelegationState, EventRecord, FinishRequest};

impl Engine {
    /// Re-drives every open delegation; run at start-up and periodically by the sweeper.
    pub async fn recover(&self) -> Result<()> {
        self.recover_older_than(0).await
    }

    /// Leaves alone delegations younger than `grace_ms`: while the process is running they are
    /// most likely still in flight, not abandoned.
    #[tracing::instrument(name = "recover", skip_all, fields(grace_ms = grace_ms))]
    pub(super) async fn recover_older_than(&self, grace_ms: i64) -> Result<()> {
        let mut redriven = 0usize;
        let cutoff = now_millis() - grace_ms;
        for store in self.inner.stores.all().await {
            for d in store.open_delegations().await? {
                if d.delegated_at > cutoff {
                    continue;
                }
                match self.recover_one(&d).await {
                    Ok(true) => redriven += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(task = %d.parent_task_id, error = %e, "could not re-drive delegation")
                    }
                }
            }
        }
        if redriven > 0 {
            tracing::info!(redriven, "unfinished delegations re-driven");
        }
        self.route_unrouted(cutoff).await
    }

    #[tracing::instrument(
        name = "recover_delegation",
        level = "debug",
        skip_all,
        fields(
            task_id = %d.parent_task_id,
            instance = %d.parent_instance_id,
            child = %d.child_instance_id,
            state = ?d.state,
        )
    )]
    async fn recover_one(&self, d: &Delegation) -> Result<bool> {
        let parent = self.node(&d.parent_instance_id).await?;
        let Some(parent_task) = parent.store.get_task(&d.parent_task_id).await? else {
            return Ok(false);
        };
        if parent_task.status != TaskStatus::Routed {
            return Ok(false);
        }
        let Ok(child) = self.node(&d.child_instance_id).await else {
            if self.owned_elsewhere(&d.child_instance_id).await? {
                return Ok(false); // a live process is running it
            }
            let now = now_millis();
            self.inner
                .registry
                .set_instance_status(
                    &d.child_instance_id,
                    crate::domain::InstanceStatus::Lost,
                    None,
                    now,
                )
                .await?;
            let why = format!("`{}` did not survive a restart", d.child_instance_id);
            self.requeue(&parent, d, &why).await?;
            return Ok(true);
        };
        // Left by an older version (a task routed to the instance it came from): re-driving
        // it would route it again, forever. Its task goes back to triage instead.
        if let Err(why) = super::names::check_descends(&d.parent_instance_id, &child) {
            tracing::warn!(task = %d.parent_task_id, %why, "delegation does not descend; task returned to triage");
            self.requeue(&parent, d, &why).await?;
            return Ok(true);
        }
        match d.state {
            DelegationState::Pending => {
                self.hand_down(d, parent_task.to_draft()).await?;
                Ok(true)
            }
            DelegationState::Delegated if d.kind == DelegationKind::Task => {
                match child.store.get_task(&d.child_task_id).await? {
                    Some(t) if t.status.is_terminal() => {
                        self.bubble(child, t).await?;
                        Ok(true)
                    }
                    Some(_) => Ok(false),
                    None => {
                        let why = format!("`{}` no longer holds the task", d.child_instance_id);
                        self.requeue(&parent, d, &why).await?;
                        Ok(true)
                    }
                }
            }
            _ => Ok(false),
        }
    }

    /// On a clean stop: in-memory runs die with this process, so their project tasks go back
    /// to the project's queue now, instead of waiting out the ownership timeout for another
    /// process (or a restart) to declare the runs lost.
    pub(super) async fn hand_back_runs(&self) -> Result<usize> {
        let runs: Vec<Arc<super::Node>> = self
            .inner
            .nodes
            .read()
            .await
            .values()
            .filter(|n| {
                n.scope() == crate::domain::Scope::Orchestration
                    && n.run.as_ref() == Some(n.id())
                    && n.config.persistence.storage == crate::config::Storage::Memory
            })
            .cloned()
            .collect();
        let mut handed = 0;
        for run in runs {
            let Some(parent_id) = run.parent() else {
                continue;
            };
            let parent = self.node(parent_id).await?;
            for d in parent.store.open_delegations().await? {
                if &d.child_instance_id != run.id() {
                    continue;
                }
                let why = format!("`{}` stopped with its process", run.id());
                self.requeue(&parent, &d, &why).await?;
                handed += 1;
            }
            self.inner
                .registry
                .set_instance_status(
                    run.id(),
                    crate::domain::InstanceStatus::Lost,
                    None,
                    now_millis(),
                )
                .await?;
        }
        Ok(handed)
    }

    /// The child that held the work is gone (an in-memory run across a restart): the parent
    /// task goes back to its queue rather than waiting forever.
    async fn requeue(&self, parent: &super::Node, d: &Delegation, why: &str) -> Result<()> {
        let ev = EventRecord::new("requeued", "hopper").with(json!({ "reason": why }));
        let req = FinishRequest {
            id: &d.parent_task_id,
            from: &[TaskStatus::Routed],
            to: TaskStatus::Pending,
            claimer: None,
            lease: None,
            feedback: None,
            failure_reason: None,
            event: ev,
            now: now_millis(),
        };
        parent.store.transition(&req).await?;
        let from = d.state;
        parent
            .store
            .set_delegation_state(&d.parent_task_id, from, DelegationState::Abandoned)
            .await?;
        Ok(())
    }
}
