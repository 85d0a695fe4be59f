//! `add_task`: the design's "same method, different implementation" per scope.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::json;

use super::{Engine, Fault, Node};
use crate::domain::{InstanceId, Scope, Task, TaskDraft, TaskId, TaskStatus, now_millis};
use crate::error::{HopperError, Result};
use crate::routing::{Route, RoutingDecision};
use crate::store::{Delegation, DelegationKind, DelegationState, EventRecord, NewTaskRow};

impl Engine {
    /// Adds a task to an instance. Global routes it to a project, a project decides between an
    /// orchestration run and an assignee, an orchestration instance queues it.
    #[tracing::instrument(name = "add_task", skip_all, fields(instance = %instance, task_id = tracing::field::Empty))]
    pub async fn add_task(&self, instance: &InstanceId, draft: TaskDraft) -> Result<Task> {
        draft.validate().map_err(HopperError::Invalid)?;
        let node = self.node(instance).await?;
        let scope = node.scope().as_str();
        let id = TaskId::generate();
        tracing::Span::current().record("task_id", tracing::field::display(&id));
        let task = self.add_at(node, draft, None, id).await?;
        self.outbox_written();
        metrics::counter!("hopper_tasks_added_total", "scope" => scope).increment(1);
        Ok(task)
    }

    /// Adds with a chosen id (so a re-driven delegation inserts the same task again, which the
    /// store ignores) and an optional parent task. One `route` span per instance the task
    /// passes through: a delegated task's child span nests in its parent's, so a line logged
    /// inside shows the whole path.
    #[tracing::instrument(
        name = "route",
        skip_all,
        fields(instance = %node.id(), task_id = %id, decision = tracing::field::Empty)
    )]
    pub(super) fn add_at(
        &self,
        node: Arc<Node>,
        draft: TaskDraft,
        parent_task: Option<TaskId>,
        id: TaskId,
    ) -> BoxFuture<'_, Result<Task>> {
        Box::pin(async move {
            if node.instance.status != crate::domain::InstanceStatus::Running {
                return Err(HopperError::Conflict(format!(
                    "instance `{}` is not running",
                    node.id()
                )));
            }
            let projects = if node.scope() == Scope::Global {
                self.projects().await
            } else {
                Arc::default()
            };
            let decision = self
                .router_for(&node)
                .route(node.scope(), &draft, &projects)
                .await;
            record_decision(&decision);
            let mut draft = draft;
            draft.needs_orchestration |= decision.needs_orchestration;
            match decision.route.clone() {
                Route::Project(name) => match self.project_for(&node, &name).await? {
                    Ok(child) => {
                        self.delegate(
                            &node,
                            child,
                            draft,
                            parent_task,
                            id,
                            DelegationKind::Task,
                            &decision,
                        )
                        .await
                    }
                    Err(why) => {
                        let (row, ev) =
                            queued_row(&node, draft, parent_task, id, Some(why), Some(&decision));
                        let (task, _) = node.store.insert_task(&row, &ev).await?;
                        Ok(task)
                    }
                },
                Route::Orchestrate => {
                    let plan = self
                        .plan_draft(node.project.as_deref().unwrap_or_default(), &draft)
                        .await;
                    let run = self.start_run(&node, &plan).await?;
                    let task = self
                        .delegate(
                            &node,
                            run.clone(),
                            draft,
                            parent_task,
                            id,
                            DelegationKind::Run,
                            &decision,
                        )
                        .await?;
                    self.seed_phases(&run, &plan).await;
                    Ok(task)
                }
                Route::Assign(_) | Route::Queue | Route::Triage => {
                    let (row, ev) = kept_row(&node, draft, parent_task, id, &decision);
                    let (task, _) = node.store.insert_task(&row, &ev).await?;
                    Ok(task)
                }
            }
        })
    }

    /// The project instance `name` routes to. `Err` (the task stays in triage with that reason)
    /// when `name` does not name a project instance of `global`: the root itself, a run or a
    /// phase, a reserved name, or a new project past `child_instances.max_children`. A route
    /// must only ever go strictly down, or a task could be routed back to where it came from
    /// forever.
    pub(super) async fn project_for(
        &self,
        global: &Node,
        name: &str,
    ) -> Result<std::result::Result<Arc<Node>, String>> {
        if global.scope() != Scope::Global || global.parent().is_some() {
            return Ok(Err(format!(
                "`{}` is not the global instance; only it routes to projects",
                global.id()
            )));
        }
        let name = name.strip_prefix("hopper-").unwrap_or(name);
        if let Err(why) = super::names::project_name(name, global.id()) {
            return Ok(Err(why));
        }
        let id = match global.id().child(name) {
            Ok(id) => id,
            Err(why) => return Ok(Err(why)),
        };
        if let Ok(existing) = self.node(&id).await {
            return Ok(super::names::is_project_of(&existing, global));
        }
        if let Some(inst) = self.inner.registry.get_instance(&id).await?
            && inst.scope != Scope::Project
        {
            return Ok(Err(format!(
                "`{id}` is a {} instance, not a project",
                inst.scope.as_str()
            )));
        }
        if !global.config.child_instances.auto_create {
            return Ok(Err(format!(
                "project `{name}` has no instance and child_instances.auto_create is off"
            )));
        }
        if let Err(why) = self.may_create_project(global, name).await {
            return Ok(Err(why));
        }
        let child = self.child(global.id(), name, None).await?;
        Ok(super::names::is_project_of(&child, global))
    }

    /// The bound on auto-created projects: names the rules file knows are always welcome; any
    /// other name only while fewer than `child_instances.max_children` projects exist. Project
    /// names come from outside (mail addresses, repository names), so without a bound every
    /// made-up name would cost an instance (and, with per-project files, a database).
    async fn may_create_project(
        &self,
        global: &Node,
        name: &str,
    ) -> std::result::Result<(), String> {
        let live = self.inner.routing.rules.get();
        let rules = &live.rules;
        if rules.projects.contains_key(name) || rules.default_project.as_deref() == Some(name) {
            return Ok(());
        }
        let max = global.config.child_instances.max_children;
        let live = self.projects().await.len();
        if max > 0 && live >= max {
            return Err(format!(
                "project `{name}` is unknown and {live} projects exist \
                 (child_instances.max_children is {max}); create it explicitly or add it to the rules"
            ));
        }
        Ok(())
    }

    /// Creates `hopper-{project}-run-{id}` with one child per phase of `plan`.
    pub(super) async fn start_run(
        &self,
        project: &Node,
        plan: &super::decompose::Plan,
    ) -> Result<Arc<Node>> {
        let run_id = uuid::Uuid::now_v7().simple().to_string();
        // The tail of a UUIDv7 is random; eight hex digits keep ids readable.
        let short = &run_id[run_id.len() - 8..];
        let run = self
            .child(project.id(), &format!("run-{short}"), None)
            .await?;
        if run.depth < self.inner.configs.orchestration.child_instances.max_depth {
            for i in 0..plan.phases.len() {
                self.child(
                    run.id(),
                    &format!("phase-{}", i + 1),
                    Some(Self::phase_metadata(plan, i)),
                )
                .await?;
            }
        }
        Ok(run)
    }

    /// Hands a task to a child. The parent task and the delegation are committed together
    /// first, with the child task's id chosen up front; then the child gets the task; then the
    /// delegation is marked done. A crash anywhere in between is finished by `recover`.
    #[allow(clippy::too_many_arguments)]
    async fn delegate(
        &self,
        parent: &Node,
        child: Arc<Node>,
        draft: TaskDraft,
        parent_task: Option<TaskId>,
        id: TaskId,
        kind: DelegationKind,
        decision: &RoutingDecision,
    ) -> Result<Task> {
        super::names::check_descends(parent.id(), &child).map_err(HopperError::Conflict)?;
        let now = now_millis();
        let delegation = Delegation {
            parent_instance_id: parent.id().clone(),
            parent_task_id: id.clone(),
            child_instance_id: child.id().clone(),
            child_task_id: TaskId::generate(),
            kind,
            state: DelegationState::Pending,
            delegated_at: now,
        };
        let row = NewTaskRow {
            id: id.clone(),
            instance_id: parent.id().clone(),
            parent_task_id: parent_task,
            draft: draft.clone(),
            status: TaskStatus::Routed,
            routed_to: Some(child.id().clone()),
            routing_reason: Some(decision.reasoning.clone()),
            now,
        };
        let ev = routed_event(child.id(), decision);
        let (task, inserted) = parent
            .store
            .insert_delegating_task(&row, &delegation, &ev)
            .await?;
        if !inserted {
            return Ok(task);
        }
        self.check_fault(Fault::AfterDelegationRecorded)?;
        self.hand_down(&delegation, draft).await?;
        Ok(task)
    }

    /// The second half of a delegation, shared by `delegate` and recovery: idempotent.
    pub(super) async fn hand_down(&self, d: &Delegation, draft: TaskDraft) -> Result<()> {
        let child = self.node(&d.child_instance_id).await?;
        super::names::check_descends(&d.parent_instance_id, &child)
            .map_err(HopperError::Conflict)?;
        self.add_at(
            child,
            draft,
            Some(d.parent_task_id.clone()),
            d.child_task_id.clone(),
        )
        .await?;
        self.check_fault(Fault::AfterChildInserted)?;
        let parent = self.node(&d.parent_instance_id).await?;
        parent
            .store
            .set_delegation_state(
                &d.parent_task_id,
                DelegationState::Pending,
                DelegationState::Delegated,
            )
            .await?;
        Ok(())
    }
}

/// Puts `decision` on the current `route` (or `ingest`) span, and says it at debug level. The
/// route is recorded with `Debug`: a project or executor name may come from outside, and
/// `Debug` quotes and escapes it; nothing is formatted unless the span is enabled.
pub(super) fn record_decision(decision: &RoutingDecision) {
    metrics::counter!("hopper_routing_decisions_total", "decided_by" => decision.decided_by)
        .increment(1);
    tracing::Span::current().record("decision", tracing::field::debug(&decision.route));
    tracing::debug!(
        confidence = decision.confidence,
        decided_by = decision.decided_by,
        "routing decided"
    );
}

/// The `routed` history entry of a task sent to `to`: the decision with its explanation.
pub(super) fn routed_event(to: &InstanceId, decision: &RoutingDecision) -> EventRecord {
    let mut detail = decision.detail();
    detail["to"] = json!(to);
    EventRecord::new("routed", "hopper").with(detail)
}

/// The `routing` history entry of a decision that kept a stored task where it is (triage,
/// queue, an assignee), with why.
pub(super) fn kept_event(decision: &RoutingDecision) -> EventRecord {
    EventRecord::new("routing", "hopper").with(decision.detail())
}

/// The row (and `created` event) of a task that stays on `node` by `decision` (assign, queue
/// or triage: the decisions that do not send it on).
pub(super) fn kept_row(
    node: &Node,
    mut draft: TaskDraft,
    parent_task: Option<TaskId>,
    id: TaskId,
    decision: &RoutingDecision,
) -> (NewTaskRow, EventRecord) {
    let reason = match &decision.route {
        Route::Assign(executor) => {
            draft.executor = Some(executor.clone());
            Some(decision.reasoning.clone())
        }
        Route::Triage => Some(decision.reasoning.clone()),
        Route::Queue | Route::Project(_) | Route::Orchestrate => None,
    };
    queued_row(node, draft, parent_task, id, reason, Some(decision))
}

/// A pending task on `node` with its `created` event (carrying the global chain's explanation
/// when there was one).
fn queued_row(
    node: &Node,
    draft: TaskDraft,
    parent_task: Option<TaskId>,
    id: TaskId,
    reason: Option<String>,
    decision: Option<&RoutingDecision>,
) -> (NewTaskRow, EventRecord) {
    let row = NewTaskRow {
        id,
        instance_id: node.id().clone(),
        parent_task_id: parent_task,
        draft,
        status: TaskStatus::Pending,
        routed_to: None,
        routing_reason: reason.clone(),
        now: now_millis(),
    };
    let mut detail = json!({ "reason": reason });
    if let Some(d) = decision.filter(|d| d.explanation.is_some()) {
        detail["routing"] = d.detail();
    }
    let ev = EventRecord::new("created", "hopper").with(detail);
    (row, ev)
}
