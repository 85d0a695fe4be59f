//! Start-up re-drive: finishes what a previous process left half-done. Every step is
//! idempotent, so recovering twice (or recovering work another process already finished)
//! changes nothing.

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
            self.requeue(&parent, d).await?;
            return Ok(true);
        };
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
                        self.requeue(&parent, d).await?;
                        Ok(true)
                    }
                }
            }
            _ => Ok(false),
        }
    }

    /// The child that held the work is gone (an in-memory run across a restart): the parent
    /// task goes back to its queue rather than waiting forever.
    async fn requeue(&self, parent: &super::Node, d: &Delegation) -> Result<()> {
        let ev = EventRecord::new("requeued", "hopper").with(
            json!({ "reason": format!("`{}` did not survive a restart", d.child_instance_id) }),
        );
        let req = FinishRequest {
            id: &d.parent_task_id,
            from: &[TaskStatus::Routed],
            to: TaskStatus::Pending,
            claimer: None,
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
