//! Events from outside (webhooks, email) becoming tasks.
//!
//! `ingest` writes the raw event and its task in one transaction before the sender is
//! answered. When routing needs no waiting, it goes into that same transaction (`route_now`).
//! Otherwise the task is stored pending and routed afterwards (which may create a project, an
//! orchestration run, a delegation), so the sender still gets its answer fast; an event whose
//! task was never routed (the process died in between) is routed again at start-up.

use std::sync::Arc;

use hopper_integration_api::{Action, Interpretation, Receipt};
use serde_json::json;
use tracing::field::{Empty, display};
use tracing::{Instrument, Span};

use super::route_now::{RoutedAtOnce, handover_for};
use super::{Engine, Node};
use crate::domain::{InstanceId, Task, TaskDraft, TaskId, TaskStatus, now_millis};
use crate::error::{HopperError, Result};
use crate::routing::Route;
use crate::store::{
    Delegation, DelegationKind, DelegationState, Effect, EventRecord, Handover, InboundEvent,
    NewInboundEvent, NewTask, NewTaskRow, Recorded,
};

/// A verified, interpreted event on its way into a store.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub source: String,
    /// The endpoint it came in on (`github`, `slack/commands`, `smtp`).
    pub endpoint: String,
    /// The instance its task goes to; the root when `None`.
    pub instance: Option<InstanceId>,
    /// The headers worth keeping (no signatures), as a JSON object.
    pub headers: serde_json::Value,
    pub body: bytes::Bytes,
    pub interpretation: Interpretation,
    pub replay_of: Option<String>,
}

/// Routing attempts of one unrouted inbound task before it is parked in triage.
pub(super) const MAX_ROUTING_TRIES: u32 = 5;

impl Engine {
    /// Records an event and the task (or comment) it makes, durably, then starts routing in the
    /// background. A redelivered event changes nothing and reports the first outcome.
    #[tracing::instrument(
        name = "ingest",
        skip_all,
        fields(
            source = ingest.source.as_str(),
            delivery_id = ingest.interpretation.delivery_id.as_deref().map(super::log_str),
            instance = Empty,
            event_id = Empty,
            task_id = Empty,
            decision = Empty,
        )
    )]
    pub async fn ingest(&self, ingest: Ingest) -> Result<Receipt> {
        self.inner.pace.record();
        let instance = ingest.instance.unwrap_or_else(|| self.root().clone());
        Span::current().record("instance", display(&instance));
        let node = self.node(&instance).await?;
        let Interpretation {
            delivery_id,
            event_type,
            mut action,
            replies_to,
            issue,
        } = ingest.interpretation;
        // Two-way sync sees issue events first: a known issue's change is its business.
        let mut synced: Option<(String, Option<Box<crate::store::SyncLink>>)> = None;
        let mut sync_reason = None;
        if let Some(state) = &issue {
            match crate::sync::inbound(self, &ingest.source, &event_type, state, &action).await? {
                crate::sync::Inbound::Pass => {}
                crate::sync::Inbound::Handled(why) => {
                    sync_reason = Some(why);
                    action = Action::Ignored {
                        reason: String::new(),
                    };
                }
                crate::sync::Inbound::Task {
                    project,
                    draft,
                    relink,
                } => {
                    action = Action::Task(draft);
                    synced = Some((project, relink));
                }
            }
        }
        let now = now_millis();
        let mut event = NewInboundEvent {
            id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            source: ingest.source,
            endpoint: ingest.endpoint,
            delivery_id,
            event_type,
            received_at: now,
            headers: ingest.headers,
            body: ingest.body,
            status: "ignored",
            reason: None,
            instance_id: instance.as_str().to_owned(),
            task_id: None,
            replay_of: ingest.replay_of,
            routed_at: None,
        };
        let mut comment_elsewhere = None;
        let effect = match action {
            Action::Reply { .. } => {
                return Err(HopperError::Invalid(
                    "a reply is not an event to record".into(),
                ));
            }
            Action::Ignored { reason } => {
                event.reason = Some(reason);
                Effect::Nothing
            }
            Action::Task(mut draft) => {
                draft.clean_title();
                let target = match &replies_to {
                    Some(r) => self.thread_task(&node, &event.source, r).await?,
                    None => None,
                };
                if let Some(thread) = target {
                    event.status = "commented";
                    let ev = EventRecord::new("comment", draft.requester.clone().unwrap_or_default())
                        .with(json!({ "title": draft.title, "text": draft.description, "event": event.id }));
                    // The comment belongs with whoever holds the work now: the delegated
                    // project task or the run's task, not the global task the thread began.
                    let (work, work_node) = self.work_task(thread.clone(), node.clone()).await;
                    let (target, on) = if work_node.store.key() == node.store.key() {
                        (work, work_node.id().clone())
                    } else {
                        comment_elsewhere = Some((work, work_node, ev.clone()));
                        (thread, instance.clone())
                    };
                    event.task_id = Some(target.as_str().to_owned());
                    Effect::Comment {
                        target,
                        instance: on.as_str().to_owned(),
                        event: ev,
                    }
                } else if let Err(why) = draft.validate() {
                    event.reason = Some(format!("cannot become a task: {why}"));
                    Effect::Nothing
                } else {
                    event.status = "accepted";
                    let mut row = NewTaskRow {
                        id: TaskId::generate(),
                        instance_id: instance.clone(),
                        parent_task_id: None,
                        draft: *draft,
                        status: TaskStatus::Pending,
                        routed_to: None,
                        routing_reason: None,
                        now,
                    };
                    let mut created = EventRecord::new("created", event.source.clone())
                        .with(json!({ "inbound_event": event.id }));
                    let routed = match self.route_now(&node, &mut row).await {
                        Some(at_once) => {
                            event.routed_at = Some(now);
                            match at_once {
                                RoutedAtOnce::Kept(routing) => {
                                    if let Some(d) = created.detail.as_mut() {
                                        d["routing"] = routing;
                                    }
                                    None
                                }
                                RoutedAtOnce::Delegated(r) => Some(*r),
                            }
                        }
                        None => None,
                    };
                    Effect::Task(Box::new(NewTask {
                        row,
                        created,
                        routed,
                    }))
                }
            }
        };
        if let Some(why) = sync_reason {
            event.status = "synced";
            event.reason = Some(why);
        }
        let (event_id, status, source) = (event.id.clone(), event.status, event.source.clone());
        let commented_on = event.task_id.clone();
        let routed = event.routed_at.is_some();
        let recorded = node.store.record_inbound(event, effect).await?;
        // The ids as stored: a redelivery keeps the first event's, not the ones made up above.
        let (stored_event, stored_task) = match &recorded {
            Recorded::New(Some(task)) => (event_id.as_str(), Some(task.id.as_str())),
            Recorded::New(None) => (event_id.as_str(), commented_on.as_deref()),
            Recorded::Duplicate(existing) => (existing.id.as_str(), existing.task_id.as_deref()),
        };
        let span = Span::current();
        span.record("event_id", stored_event);
        span.record("task_id", stored_task);
        metrics::counter!("hopper_inbound_events_total", "source" => source.clone(), "status" => status)
            .increment(1);
        if let (Recorded::New(_), Some((work, work_node, ev))) = (&recorded, comment_elsewhere) {
            // In another database: the event (and the comment on the thread's task) is
            // committed already; this copy is what the worker sees.
            if let Err(e) = work_node
                .store
                .append_event(&work, work_node.id(), now_millis(), &ev)
                .await
            {
                tracing::warn!(task = %work, error = %e, "could not copy the reply to the task holding the work");
            }
        }
        if let (Recorded::New(Some(task)), Some((project, relink)), Some(state)) =
            (&recorded, &synced, &issue)
        {
            crate::sync::linked(
                self,
                &source,
                state,
                project,
                task.id.as_str(),
                relink.as_deref(),
            )
            .await?;
        }
        Ok(match recorded {
            Recorded::New(Some(task)) => {
                metrics::counter!("hopper_tasks_added_total", "scope" => node.scope().as_str())
                    .increment(1);
                let receipt = Receipt {
                    event_id: event_id.clone(),
                    status,
                    task_id: Some(task.id.to_string()),
                    title: Some(task.title.clone()),
                };
                if routed {
                    return Ok(receipt);
                }
                let engine = self.clone();
                // Inside the `ingest` span (so it carries the delivery), which it outlives.
                let span = route_inbound_span(&event_id, &task.id);
                span.record("instance", display(node.id()));
                let routing = async move {
                    let task_id = task.id.clone();
                    if let Err(e) = engine.route_recorded(node, *task, &event_id).await {
                        tracing::warn!(event = %event_id, task = %task_id, error = %e,
                            "routing an inbound task failed; it stays pending and is retried at start-up");
                    }
                };
                tokio::spawn(routing.instrument(span));
                receipt
            }
            Recorded::New(None) => Receipt {
                event_id,
                status,
                task_id: commented_on,
                title: None,
            },
            Recorded::Duplicate(existing) => Receipt {
                event_id: existing.id,
                status: "duplicate",
                task_id: existing.task_id,
                title: None,
            },
        })
    }

    /// Follows delegations down from `task` to the task the work is on now. Anything that
    /// cannot be followed (a run that is gone, a lookup error) stops the walk where it is.
    pub(crate) async fn work_task(
        &self,
        mut task: TaskId,
        mut node: Arc<Node>,
    ) -> (TaskId, Arc<Node>) {
        // global -> project -> run is as deep as delegation goes; the bound is only a guard.
        for _ in 0..8 {
            let Ok(Some(t)) = node.store.get_task(&task).await else {
                break;
            };
            if t.status != TaskStatus::Routed {
                break;
            }
            let Ok(Some(d)) = node.store.delegation_of(&task).await else {
                break;
            };
            let Ok(child) = self.node(&d.child_instance_id).await else {
                break;
            };
            // A delegation not yet handed down names a task that does not exist yet.
            if !matches!(child.store.get_task(&d.child_task_id).await, Ok(Some(_))) {
                break;
            }
            (task, node) = (d.child_task_id, child);
        }
        (task, node)
    }

    /// The task an earlier event of this source created, if `delivery_id` names one.
    async fn thread_task(
        &self,
        node: &Node,
        source: &str,
        delivery_id: &str,
    ) -> Result<Option<TaskId>> {
        let Some(earlier) = node.store.inbound_by_delivery(source, delivery_id).await? else {
            return Ok(None);
        };
        Ok(earlier.task_id.and_then(|t| TaskId::parse(&t).ok()))
    }

    /// Routes an inbound event's task, then marks the event routed.
    #[tracing::instrument(
        name = "route_inbound",
        skip_all,
        fields(event_id = event_id, task_id = %task_id, instance = Empty, decision = Empty)
    )]
    pub async fn route_inbound(&self, event_id: &str, task_id: &TaskId) -> Result<()> {
        let (task, node) = self.locate(task_id).await?;
        Span::current().record("instance", display(node.id()));
        self.route_recorded(node, task, event_id).await
    }

    /// As `route_inbound`, for the task just recorded (no need to look it up again). The
    /// routing write marks the event routed in the same transaction.
    async fn route_recorded(&self, node: Arc<Node>, task: Task, event_id: &str) -> Result<()> {
        self.outbox_written();
        self.check_fault(super::Fault::BeforeInboundRouting)?;
        if task.status == TaskStatus::Pending {
            let routed = self.route_existing(node, task, event_id).await;
            self.outbox_written();
            return routed;
        }
        node.store
            .mark_inbound_routed(event_id, now_millis())
            .await?;
        Ok(())
    }

    /// Routes events whose task was committed but never routed (a crash in between).
    pub(super) async fn route_unrouted(&self, received_before: i64) -> Result<()> {
        for store in self.inner.stores.all().await {
            for (event_id, task_id) in store.unrouted_inbound(received_before).await? {
                let Ok(task_id) = TaskId::parse(&task_id) else {
                    continue;
                };
                if let Err(e) = self.route_inbound(&event_id, &task_id).await {
                    self.routing_failed(&store, &event_id, &task_id, &e).await;
                }
            }
        }
        Ok(())
    }

    /// Counts a failed routing attempt; after [`MAX_ROUTING_TRIES`] the task is parked in its
    /// instance's triage with the reason (and its event marked routed), instead of being
    /// retried with a warning every sweep for ever. The count lives in memory: a restart
    /// grants a few more tries, which is what a fixed config or a returned database deserves.
    async fn routing_failed(
        &self,
        store: &crate::store::Store,
        event_id: &str,
        task_id: &TaskId,
        e: &crate::error::HopperError,
    ) {
        let tries = {
            let mut tries = self
                .inner
                .routing_tries
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let n = tries.entry(event_id.to_owned()).or_insert(0);
            *n += 1;
            *n
        };
        if tries < MAX_ROUTING_TRIES {
            tracing::warn!(event = %event_id, tries, error = %e, "could not route inbound task");
            return;
        }
        let why = format!("routing failed {tries} times, left in triage: {e}");
        tracing::warn!(event = %event_id, task = %task_id, "{why}");
        let parked = store
            .annotate_pending(task_id, None, &why, now_millis(), Some(event_id), None)
            .await
            .and(store.mark_inbound_routed(event_id, now_millis()).await);
        match parked {
            Ok(_) => {
                self.inner
                    .routing_tries
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(event_id);
            }
            Err(e) => tracing::warn!(event = %event_id, error = %e, "could not park the task"),
        }
    }

    /// `add_task`'s routing for a task that is already stored as pending; `event_id` is the
    /// inbound event to mark routed with the routing write.
    async fn route_existing(&self, node: Arc<Node>, task: Task, event_id: &str) -> Result<()> {
        let draft = task.to_draft();
        let projects = self.projects().await;
        let decision = self
            .router_for(&node)
            .route(node.scope(), &draft, &projects)
            .await;
        self.apply_route(node, task, decision, Some(event_id)).await
    }

    /// Carries out `decision` for a stored pending task: delegates it, or records why it stays.
    /// `inbound` names the event to mark routed in the same write.
    pub(super) async fn apply_route(
        &self,
        node: Arc<Node>,
        task: Task,
        decision: crate::routing::RoutingDecision,
        inbound: Option<&str>,
    ) -> Result<()> {
        super::add::record_decision(&decision);
        let mut draft = task.to_draft();
        draft.needs_orchestration |= decision.needs_orchestration;
        let kept = super::add::kept_event(&decision);
        let mut plan_to_seed = None;
        let keep = |executor: Option<String>, why: String| {
            let (node, task, kept) = (node.clone(), task.id.clone(), &kept);
            async move {
                let at = now_millis();
                node.store
                    .annotate_pending(&task, executor.as_deref(), &why, at, inbound, Some(kept))
                    .await
            }
        };
        let (child, kind) = match decision.route.clone() {
            Route::Project(name) => match self.project_for(&node, &name).await? {
                Ok(child) => (child, DelegationKind::Task),
                Err(why) => {
                    keep(None, why).await?;
                    return Ok(());
                }
            },
            Route::Orchestrate => {
                let plan = self
                    .plan_draft(node.project.as_deref().unwrap_or_default(), &draft)
                    .await;
                let run = self.start_run(&node, &plan).await?;
                plan_to_seed = Some((run.clone(), plan));
                (run, DelegationKind::Run)
            }
            Route::Assign(executor) => {
                keep(Some(executor), decision.reasoning.clone()).await?;
                return Ok(());
            }
            Route::Queue | Route::Triage => {
                keep(None, decision.reasoning.clone()).await?;
                return Ok(());
            }
        };
        let mut delegation = Delegation {
            parent_instance_id: node.id().clone(),
            parent_task_id: task.id.clone(),
            child_instance_id: child.id().clone(),
            child_task_id: TaskId::generate(),
            kind,
            state: DelegationState::Pending,
            delegated_at: now_millis(),
        };
        let handover = match kind {
            DelegationKind::Task => self.handover(&node, &child, &delegation, &draft).await,
            DelegationKind::Run => None,
        };
        if handover.is_some() {
            delegation.state = DelegationState::Delegated;
        }
        let ev = super::add::routed_event(child.id(), &decision);
        let routed = node
            .store
            .route_pending(
                &delegation,
                &decision.reasoning,
                &ev,
                handover.as_ref(),
                inbound,
            )
            .await?;
        if routed && handover.is_none() {
            self.hand_down(&delegation, draft).await?;
        }
        if let (true, Some((run, plan))) = (routed, plan_to_seed) {
            self.seed_phases(&run, &plan).await;
        }
        Ok(())
    }

    /// The child's task, when it can go into the parent's routing write (see `handover_for`).
    async fn handover(
        &self,
        parent: &Node,
        child: &Node,
        d: &Delegation,
        draft: &TaskDraft,
    ) -> Option<Handover> {
        let decision = self
            .router_for(child)
            .route(child.scope(), draft, crate::routing::Projects::none())
            .await;
        handover_for(parent, child, d, draft, &decision)
    }
}

/// The span of routing an inbound task just recorded, after the answer (as `route_inbound`'s
/// for one routed again at start-up).
fn route_inbound_span(event_id: &str, task_id: &TaskId) -> Span {
    tracing::info_span!(
        "route_inbound",
        event_id,
        task_id = %task_id,
        instance = Empty,
        decision = Empty,
    )
}

impl Engine {
    /// Stored inbound events, newest first, across every database this process uses.
    pub async fn list_events(
        &self,
        source: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<InboundEvent>> {
        let mut all = Vec::new();
        for store in self.inner.stores.all().await {
            all.extend(store.list_inbound(source, status, limit).await?);
        }
        all.sort_by(|a, b| b.id.cmp(&a.id));
        all.truncate(limit.max(0) as usize);
        Ok(all)
    }

    pub async fn get_event(&self, id: &str) -> Result<InboundEvent> {
        for store in self.inner.stores.all().await {
            if let Some(e) = store.inbound_event(id).await? {
                return Ok(e);
            }
        }
        Err(HopperError::NotFound(format!(
            "inbound event `{id}` not found"
        )))
    }
}
