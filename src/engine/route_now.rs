//! Routing an inbound task in the same commit that records it.
//!
//! The general path records the event with a pending task, answers the sender, and routes
//! afterwards: routing may have to wait (a model, a new project instance, an orchestration
//! run), and the sender's deadline may not. Most deliveries need none of that: rules decide at
//! once, and the task either stays where it arrived or goes to a project that is already
//! loaded, shares the database and keeps the task itself. Then routing is nothing but more
//! rows in the same database, so they go into the recording commit: one write per delivery
//! instead of two, and nothing left to re-drive after a crash.

use crate::domain::{InstanceStatus, TaskDraft, TaskId, TaskStatus};
use crate::routing::{Route, RoutingDecision};
use crate::store::{Delegation, DelegationKind, DelegationState, Handover, NewTaskRow, RoutedNow};

use super::{Engine, Node};

/// What routing at once did to a new task.
pub(super) enum RoutedAtOnce {
    /// It stays where it arrived (assigned, queued or left for triage); its row says why,
    /// and the `created` event gets the decision (with the chain's explanation on global).
    Kept(serde_json::Value),
    /// It went to a child in the same database, written with it.
    Delegated(Box<RoutedNow>),
}

impl Engine {
    /// Routes `row` (a new task on `node`) if that needs no waiting, adjusting the row to the
    /// decision. `None`: route it after recording.
    pub(super) async fn route_now(
        &self,
        node: &Node,
        row: &mut NewTaskRow,
    ) -> Option<RoutedAtOnce> {
        let projects = self.projects().await;
        let decision = self
            .router_for(node)
            .decide_now(node.scope(), &row.draft, &projects)?;
        super::add::record_decision(&decision);
        row.draft.needs_orchestration |= decision.needs_orchestration;
        match &decision.route {
            Route::Assign(executor) => {
                row.draft.executor = Some(executor.clone());
                row.routing_reason = Some(decision.reasoning.clone());
                Some(RoutedAtOnce::Kept(decision.detail()))
            }
            Route::Queue | Route::Triage => {
                row.routing_reason = Some(decision.reasoning.clone());
                Some(RoutedAtOnce::Kept(decision.detail()))
            }
            Route::Project(name) => {
                let id = node.id().child(name).ok()?;
                let child = self.inner.nodes.read().await.get(&id).cloned()?;
                // Anything but a project of this instance (the root itself, a run) is refused
                // on the general path, which says why.
                super::names::is_project_of(&child, node).ok()?;
                let delegation = Delegation {
                    parent_instance_id: node.id().clone(),
                    parent_task_id: row.id.clone(),
                    child_instance_id: child.id().clone(),
                    child_task_id: TaskId::generate(),
                    kind: DelegationKind::Task,
                    state: DelegationState::Delegated,
                    delegated_at: row.now,
                };
                let child_decision = self.router_for(&child).decide_now(
                    child.scope(),
                    &row.draft,
                    crate::routing::Projects::none(),
                )?;
                let handover =
                    handover_for(node, &child, &delegation, &row.draft, &child_decision)?;
                row.status = TaskStatus::Routed;
                row.routed_to = Some(child.id().clone());
                row.routing_reason = Some(decision.reasoning.clone());
                let event = super::add::routed_event(child.id(), &decision);
                Some(RoutedAtOnce::Delegated(Box::new(RoutedNow {
                    delegation,
                    event,
                    handover,
                })))
            }
            Route::Orchestrate => None,
        }
    }
}

/// The child's task, when it can go into the parent's routing write: the child shares the
/// parent's database and by `decision` (its own router's) keeps the task there (queued,
/// assigned or left for triage) rather than sending it further down.
pub(super) fn handover_for(
    parent: &Node,
    child: &Node,
    d: &Delegation,
    draft: &TaskDraft,
    decision: &RoutingDecision,
) -> Option<Handover> {
    if child.store.key() != parent.store.key()
        || child.instance.status != InstanceStatus::Running
        || !matches!(
            decision.route,
            Route::Assign(_) | Route::Queue | Route::Triage
        )
    {
        return None;
    }
    let (row, event) = super::add::kept_row(
        child,
        draft.clone(),
        Some(d.parent_task_id.clone()),
        d.child_task_id.clone(),
        decision,
    );
    Some(Handover { row, event })
}
