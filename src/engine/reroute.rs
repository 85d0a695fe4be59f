//! Explaining and correcting routing: `hopper explain` / `GET /v1/tasks/{id}/routing` read the
//! decisions kept in the tasks' histories along the delegation path; `hopper route` /
//! `POST /v1/tasks/{id}/route` send a global task somewhere else and record the correction.
//!
//! A re-route of a routed task first cancels its delegated copy (only while nobody has claimed
//! it: a conditional update, so a claim racing the re-route wins and the re-route answers 409),
//! then takes the global task back (status and delegation in one transaction), then routes it
//! as the correction says. The cancelled copy does not bubble up: it is cancelled directly,
//! and bubbling only ever finishes a parent through the delegation naming that very child.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::{Engine, Node};
use crate::domain::{Actor, Scope, Task, TaskId, TaskStatus, now_millis};
use crate::error::{HopperError, Result};
use crate::routing::{Explanation, Route, RoutingDecision, Step, StepOutcome};
use crate::store::{Delegation, DelegationKind, EventRecord, FinishRequest};

/// One routing decision on the path of a task.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DecisionRecord {
    pub instance_id: String,
    pub task_id: String,
    pub at: String,
    /// The history event it was kept in: `created`, `routed`, `routing` or `rerouted`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The providers as they ran (global decisions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<Step>,
    /// For a re-route: from where, to where, why and by whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub correction: Option<serde_json::Value>,
}

/// `GET /v1/tasks/{id}/routing`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoutingReport {
    pub task_id: String,
    /// The task on the global instance the path starts from.
    pub global_task_id: String,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_reason: Option<String>,
    /// Oldest first, down the delegation path.
    pub decisions: Vec<DecisionRecord>,
}

/// `POST /v1/tasks/{id}/route`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerouteRequest {
    /// The project to send it to (`sark` or `hopper-sark`).
    pub project: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Depth guard for walks along delegations (global → project → run is as deep as it goes).
const MAX_DEPTH: usize = 8;

impl Engine {
    /// The top of `task`'s delegation path and its node.
    async fn top_of(&self, task: Task, node: Arc<Node>) -> Result<(Task, Arc<Node>)> {
        let (mut task, mut node) = (task, node);
        for _ in 0..MAX_DEPTH {
            let (Some(parent_task), Some(_)) = (task.parent_task_id.clone(), node.parent()) else {
                break;
            };
            match self.locate(&parent_task).await {
                Ok((t, n)) => (task, node) = (t, n),
                Err(_) => break,
            }
        }
        Ok((task, node))
    }

    /// Every routing decision on the path through `id`: from its global task down.
    pub async fn explain_routing(&self, id: &TaskId) -> Result<RoutingReport> {
        let (asked, node) = self.locate(id).await?;
        let (top, top_node) = self.top_of(asked.clone(), node).await?;
        let mut decisions = Vec::new();
        let (mut task, mut node) = (top.clone(), top_node);
        for _ in 0..MAX_DEPTH {
            for ev in node.store.task_events(&task.id).await? {
                if let Some(d) = decision_of(&node, &task, ev) {
                    decisions.push(d);
                }
            }
            let Some(d) = node.store.delegation_of(&task.id).await? else {
                break;
            };
            let Ok(child) = self.node(&d.child_instance_id).await else {
                break;
            };
            let Some(t) = child.store.get_task(&d.child_task_id).await? else {
                break;
            };
            (task, node) = (t, child);
        }
        Ok(RoutingReport {
            task_id: asked.id.to_string(),
            global_task_id: top.id.to_string(),
            status: top.status,
            routed_to: top.routed_to.as_ref().map(|r| r.to_string()),
            routing_reason: top.routing_reason.clone(),
            decisions,
        })
    }

    /// Sends the global task behind `id` to `project` instead, recording the correction.
    pub async fn reroute(&self, id: &TaskId, req: &RerouteRequest, actor: &Actor) -> Result<Task> {
        let (task, node) = self.locate(id).await?;
        let (task, node) = self.top_of(task, node).await?;
        if node.scope() != Scope::Global {
            return Err(HopperError::Conflict(format!(
                "task `{}` was not routed by the global instance",
                task.id
            )));
        }
        // Refusals first: resolving the target may create its project instance, and a
        // refused re-route leaves nothing behind.
        let copy = match task.status {
            TaskStatus::Pending => None,
            TaskStatus::Routed => Some(self.movable_copy(&task, &node).await?),
            other => {
                return Err(HopperError::Conflict(format!(
                    "task `{}` is {}: only a pending task or a routed one nobody has claimed can be re-routed",
                    task.id,
                    other.as_str()
                )));
            }
        };
        let target = match self.project_for(&node, &req.project).await? {
            Ok(child) => child,
            Err(why) => return Err(HopperError::Invalid(why)),
        };
        let reason = req.reason.clone().unwrap_or_default();
        let from = match copy {
            None => None,
            Some(d) => Some(
                self.take_back(&task, &node, d, &target, &reason, actor)
                    .await?,
            ),
        };
        if from.is_none() {
            let ev = correction_event(None, &target, &reason, actor);
            node.store
                .append_event(&task.id, node.id(), now_millis(), &ev)
                .await?;
        }
        let task = node
            .store
            .get_task(&task.id)
            .await?
            .ok_or_else(|| HopperError::NotFound(format!("task `{}` not found", task.id)))?;
        let decision = correction(&target, &reason, actor);
        self.apply_route(node.clone(), task.clone(), decision, None)
            .await?;
        self.outbox_written();
        Ok(node.store.get_task(&task.id).await?.unwrap_or(task))
    }

    /// The delegation of a routed task whose copy may be taken back (a project's, still
    /// pending); 409 otherwise. Reads only: [`Self::take_back`] cancels conditionally.
    async fn movable_copy(&self, task: &Task, node: &Node) -> Result<Delegation> {
        let conflict = |why: String| HopperError::Conflict(why);
        let d =
            node.store.delegation_of(&task.id).await?.ok_or_else(|| {
                conflict(format!("task `{}` is being routed; try again", task.id))
            })?;
        if d.kind == DelegationKind::Run {
            return Err(conflict(format!(
                "task `{}` runs as orchestration run `{}`; cancel it instead",
                task.id, d.child_instance_id
            )));
        }
        let child = self.node(&d.child_instance_id).await?;
        let copy = child.store.get_task(&d.child_task_id).await?;
        let status = copy.as_ref().map(|c| c.status);
        if status != Some(TaskStatus::Pending) {
            let what = status.map(|s| s.as_str()).unwrap_or("not handed down yet");
            return Err(conflict(format!(
                "the copy of `{}` in `{}` is {what}: release it first",
                task.id, d.child_instance_id
            )));
        }
        Ok(d)
    }

    /// Cancels the delegated copy `d` of a routed task (while unclaimed) and takes the task
    /// back. Returns the project it had gone to.
    async fn take_back(
        &self,
        task: &Task,
        node: &Arc<Node>,
        d: Delegation,
        target: &Node,
        reason: &str,
        actor: &Actor,
    ) -> Result<String> {
        let conflict = |why: String| HopperError::Conflict(why);
        if d.child_instance_id == *target.id() {
            return Err(conflict(format!(
                "task `{}` is already routed to `{}`",
                task.id, d.child_instance_id
            )));
        }
        let child = self.node(&d.child_instance_id).await?;
        let cancel = FinishRequest {
            id: &d.child_task_id,
            from: &[TaskStatus::Pending],
            to: TaskStatus::Cancelled,
            claimer: None,
            lease: None,
            feedback: None,
            failure_reason: Some("re-routed elsewhere"),
            event: EventRecord::new("cancelled", actor.name())
                .with(json!({ "reason": "re-routed", "to": target.id() })),
            now: now_millis(),
        };
        if child.store.transition(&cancel).await?.is_none() {
            return Err(conflict(format!(
                "the copy of `{}` in `{}` was claimed meanwhile: release it first",
                task.id, d.child_instance_id
            )));
        }
        let from = d.child_instance_id.to_string();
        let ev = correction_event(Some(&from), target, reason, actor);
        if !node
            .store
            .unroute(&task.id, node.id(), &ev, now_millis())
            .await?
        {
            return Err(conflict(format!("task `{}` changed meanwhile", task.id)));
        }
        Ok(from)
    }
}

fn correction_event(from: Option<&str>, to: &Node, reason: &str, actor: &Actor) -> EventRecord {
    EventRecord::new("rerouted", actor.name()).with(json!({
        "correction": {
            "from": from,
            "to": to.id(),
            "reason": reason,
            "by": actor.name(),
        }
    }))
}

/// The decision a correction routes by.
fn correction(target: &Node, reason: &str, actor: &Actor) -> RoutingDecision {
    let project = target.project.clone().unwrap_or_default();
    let why = match reason.trim() {
        "" => format!("re-routed by {}", actor.name()),
        r => format!("re-routed by {}: {r}", actor.name()),
    };
    let mut d = RoutingDecision::new(
        Route::Project(project.clone()),
        1.0,
        why.clone(),
        "correction",
    );
    d.explanation = Some(Arc::new(Explanation {
        chain: vec![Step {
            provider: "correction".into(),
            outcome: StepOutcome::Decided,
            project: Some(project),
            confidence: Some(1.0),
            reason: why,
            alternatives: vec![],
            latency_us: 0,
            trace: None,
        }],
    }));
    d
}

/// The routing decision a history event holds, if any.
fn decision_of(node: &Node, task: &Task, ev: crate::domain::TaskEvent) -> Option<DecisionRecord> {
    let detail = ev.detail.unwrap_or_default();
    let d = match ev.kind.as_str() {
        "routed" | "routing" => detail.clone(),
        "created" => detail.get("routing").cloned()?,
        "rerouted" => json!({}),
        _ => return None,
    };
    let chain = d
        .get("chain")
        .and_then(|c| serde_json::from_value::<Vec<Step>>(c.clone()).ok())
        .unwrap_or_default();
    let text = |k: &str| d.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    Some(DecisionRecord {
        instance_id: node.id().to_string(),
        task_id: task.id.to_string(),
        at: ev.at,
        event: ev.kind,
        decided_by: text("decided_by"),
        to: text("to"),
        confidence: d.get("confidence").and_then(|v| v.as_f64()),
        reasoning: text("reasoning"),
        chain,
        correction: detail.get("correction").cloned(),
    })
}
