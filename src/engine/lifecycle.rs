//! Claiming and finishing tasks: `get_next`, `claim`, `heartbeat`, `complete`, `fail`,
//! `release`, `cancel`.

use std::sync::Arc;

use serde_json::json;
use tracing::Span;
use tracing::field::{Empty, display};

use super::{Engine, Node};
use crate::domain::{Actor, Feedback, InstanceId, Scope, Task, TaskId, TaskStatus, now_millis};
use crate::error::{HopperError, Result};
use crate::store::{EventRecord, FinishRequest};

/// How a claim asks for its lease.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaseRequest {
    /// Seconds the lease holds without a heartbeat; the instance's `tasks.lease_seconds` when
    /// unset, at most `tasks.max_lease_seconds`.
    pub seconds: Option<u64>,
}

impl Engine {
    fn lease_until(node: &Node, now: i64, asked: LeaseRequest) -> Result<i64> {
        let tasks = &node.config.tasks;
        let secs = match asked.seconds {
            None => tasks.lease_seconds.max(1),
            Some(0) => {
                return Err(HopperError::Invalid(
                    "lease_seconds must be at least 1".into(),
                ));
            }
            Some(s) if s > tasks.max_lease_seconds => {
                return Err(HopperError::Invalid(format!(
                    "lease_seconds may be at most {} (tasks.max_lease_seconds)",
                    tasks.max_lease_seconds
                )));
            }
            Some(s) => s,
        };
        Ok(now + (secs.min(i64::MAX as u64 / 1000) as i64).saturating_mul(1000))
    }

    /// A fresh lease id per claim: random, so a stale worker cannot present the current one
    /// by accident. 64 bits are plenty for fencing (the bearer token is the authentication),
    /// and the id is written into the task row on every claim: a 128-bit id made the row grow
    /// by 38 bytes per claim.
    fn new_lease() -> String {
        use rand::Rng;
        format!("lease_{:016x}", rand::rng().random::<u64>())
    }

    /// Atomically claims the best task for `executor` under the default lease.
    pub async fn get_next(&self, instance: &InstanceId, executor: &str) -> Result<Option<Task>> {
        self.get_next_with(instance, executor, LeaseRequest::default())
            .await
    }

    /// Atomically claims the best task for `executor`. An orchestration run with nothing of its
    /// own hands out work from its active phase: the first phase that still has open tasks.
    #[tracing::instrument(
        name = "get_next",
        skip_all,
        fields(instance = %instance, executor = Empty, task_id = Empty, phase = Empty)
    )]
    pub async fn get_next_with(
        &self,
        instance: &InstanceId,
        executor: &str,
        lease: LeaseRequest,
    ) -> Result<Option<Task>> {
        validate_executor(executor)?;
        // Only once it is known to be short and printable: it comes from the request.
        Span::current().record("executor", executor);
        // A registered executor gets only what its capabilities cover; anyone else (an admin
        // naming a free-form worker) gets what it always got.
        let caps = self
            .registered_executor(executor)
            .await?
            .map(|e| e.capabilities);
        let caps = caps.as_deref();
        let node = self.node(instance).await?;
        let now = now_millis();
        let until = Self::lease_until(&node, now, lease)?;
        if let Some(task) = node
            .store
            .claim_next(instance, executor, caps, now, until, &Self::new_lease())
            .await?
        {
            metrics::counter!("hopper_tasks_claimed_total").increment(1);
            Span::current().record("task_id", display(&task.id));
            return Ok(Some(task));
        }
        if node.scope() != Scope::Orchestration {
            return Ok(None);
        }
        for phase in self.children_of(instance).await {
            let open = phase
                .store
                .count_open(std::slice::from_ref(phase.id()))
                .await?;
            if open > 0 {
                let now = now_millis();
                let until = Self::lease_until(&phase, now, lease)?;
                let task = phase
                    .store
                    .claim_next(phase.id(), executor, caps, now, until, &Self::new_lease())
                    .await?;
                if let Some(t) = &task {
                    metrics::counter!("hopper_tasks_claimed_total").increment(1);
                    let span = Span::current();
                    span.record("task_id", display(&t.id));
                    span.record("phase", display(phase.id()));
                }
                return Ok(task);
            }
        }
        Ok(None)
    }

    pub async fn get_task(&self, id: &TaskId) -> Result<Task> {
        Ok(self.locate(id).await?.0)
    }

    pub async fn claim(&self, id: &TaskId, executor: &str) -> Result<Task> {
        self.claim_with(id, executor, LeaseRequest::default()).await
    }

    /// Claims one task: a pending one, or one whose lease has run out.
    #[tracing::instrument(
        name = "claim",
        skip_all,
        fields(task_id = %id, executor = Empty, instance = Empty)
    )]
    pub async fn claim_with(
        &self,
        id: &TaskId,
        executor: &str,
        lease: LeaseRequest,
    ) -> Result<Task> {
        validate_executor(executor)?;
        Span::current().record("executor", executor);
        let (task, node) = self.locate(id).await?;
        Span::current().record("instance", display(node.id()));
        if let Some(e) = self.registered_executor(executor).await?
            && !e.can_take(&task.required_capabilities)
        {
            let missing: Vec<&String> = task
                .required_capabilities
                .iter()
                .filter(|c| !e.capabilities.contains(c))
                .collect();
            return Err(HopperError::Conflict(format!(
                "executor `{executor}` lacks the capabilities task {id} requires: {missing:?}"
            )));
        }
        let now = now_millis();
        let until = Self::lease_until(&node, now, lease)?;
        match node
            .store
            .claim(id, executor, now, until, &Self::new_lease())
            .await?
        {
            Some(t) => {
                metrics::counter!("hopper_tasks_claimed_total").increment(1);
                Ok(t)
            }
            None => Err(self.why_not_claimed(&node, &task, executor).await),
        }
    }

    /// Extends the lease `actor` holds (by the lease's own length unless `lease` says).
    #[tracing::instrument(name = "heartbeat", skip_all, fields(task_id = %id, executor = Empty))]
    pub async fn heartbeat(&self, id: &TaskId, actor: &Actor, lease: LeaseRequest) -> Result<Task> {
        let Actor::Executor {
            name,
            lease: lease_id,
        } = actor
        else {
            return Err(HopperError::Invalid(
                "a heartbeat needs the executor and the lease_id its claim returned".into(),
            ));
        };
        validate_executor(name)?;
        Span::current().record("executor", name.as_str());
        let (task, node) = self.locate(id).await?;
        let now = now_millis();
        let until = Self::lease_until(&node, now, lease)?;
        match node.store.heartbeat(id, name, now, until, lease_id).await? {
            Some(t) => Ok(t),
            None => Err(self.why_not(&node, &task, actor, "heartbeat").await),
        }
    }

    /// Marks a task done. Completing a done task again is a no-op that returns the first result.
    pub async fn complete(
        &self,
        id: &TaskId,
        actor: &Actor,
        feedback: Option<Feedback>,
    ) -> Result<Task> {
        if let Some(f) = &feedback {
            f.validate().map_err(HopperError::Invalid)?;
        }
        let ev = EventRecord::new("completed", actor.name()).with(json!({ "feedback": feedback }));
        self.finish(id, actor, TaskStatus::Done, feedback.as_ref(), None, ev)
            .await
    }

    pub async fn fail(&self, id: &TaskId, actor: &Actor, reason: &str) -> Result<Task> {
        let ev = EventRecord::new("failed", actor.name()).with(json!({ "reason": reason }));
        self.finish(id, actor, TaskStatus::Failed, None, Some(reason), ev)
            .await
    }

    /// Gives a claimed task back to its queue.
    pub async fn release(&self, id: &TaskId, actor: &Actor) -> Result<Task> {
        let ev = EventRecord::new("released", actor.name());
        self.finish(id, actor, TaskStatus::Pending, None, None, ev)
            .await
    }

    /// Cancels a task; a routed task takes its delegated work down with it.
    #[tracing::instrument(name = "cancel", skip_all, fields(task_id = %id))]
    pub async fn cancel(&self, id: &TaskId, actor: &Actor) -> Result<Task> {
        let (task, node) = self.locate(id).await?;
        if task.status == TaskStatus::Cancelled {
            return Ok(task);
        }
        if task.status == TaskStatus::Routed {
            let ev = EventRecord::new("cancelled", actor.name());
            let req = FinishRequest {
                id,
                from: &[TaskStatus::Routed],
                to: TaskStatus::Cancelled,
                claimer: None,
                lease: None,
                feedback: None,
                failure_reason: None,
                event: ev,
                now: now_millis(),
            };
            return match node.store.transition(&req).await? {
                Some(t) => {
                    self.cancel_downward(&t).await?;
                    Ok(t)
                }
                None => Err(self.why_not(&node, &task, actor, "cancel").await),
            };
        }
        let ev = EventRecord::new("cancelled", actor.name());
        self.finish(id, actor, TaskStatus::Cancelled, None, None, ev)
            .await
    }

    /// The one way complete, fail, release and (unless routed) cancel change a task, so its
    /// span covers them all.
    #[tracing::instrument(
        name = "finish",
        skip_all,
        fields(task_id = %id, status = to.as_str(), executor = Empty, instance = Empty)
    )]
    async fn finish(
        &self,
        id: &TaskId,
        actor: &Actor,
        to: TaskStatus,
        feedback: Option<&Feedback>,
        reason: Option<&str>,
        event: EventRecord,
    ) -> Result<Task> {
        // The name is the request's, checked against the claim only by the update below: it
        // goes on the span only if it could be a name a claim accepted.
        if let Actor::Executor { name, .. } = actor
            && validate_executor(name).is_ok()
        {
            Span::current().record("executor", name.as_str());
        }
        let (from, claimer): (&[TaskStatus], Option<&str>) = match actor {
            Actor::Executor { name, .. } => (&[TaskStatus::Claimed], Some(name.as_str())),
            Actor::Admin | Actor::System => (&[TaskStatus::Pending, TaskStatus::Claimed], None),
        };
        let from = if to == TaskStatus::Pending {
            &[TaskStatus::Claimed][..]
        } else {
            from
        };
        let req = FinishRequest {
            id,
            from,
            to,
            claimer,
            lease: actor.lease(),
            feedback,
            failure_reason: reason,
            event,
            now: now_millis(),
        };
        // Fast path: most tasks live in the registry's database, and the conditional update
        // both checks and applies the change. Only when it does not apply do we look further.
        if let Some(done) = self.inner.registry.transition(&req).await? {
            let node = self.node(&done.instance_id).await?;
            return self.finished(node, done, to).await;
        }
        let (task, node) = self.locate(id).await?;
        if is_retry(&task, to, actor) {
            return Ok(task);
        }
        if node.store.key() != self.inner.registry.key()
            && let Some(done) = node.store.transition(&req).await?
        {
            return self.finished(node, done, to).await;
        }
        // Lost a race or the state did not allow it: re-read to say which.
        let current = node.store.get_task(id).await?.unwrap_or(task);
        if is_retry(&current, to, actor) {
            return Ok(current);
        }
        Err(self.why_not(&node, &current, actor, to.as_str()).await)
    }

    async fn finished(&self, node: Arc<Node>, done: Task, to: TaskStatus) -> Result<Task> {
        self.outbox_written();
        Span::current().record("instance", display(node.id()));
        if to.is_terminal() {
            metrics::counter!("hopper_tasks_finished_total", "status" => to.as_str()).increment(1);
            self.bubble(node, done.clone()).await?;
        }
        Ok(done)
    }

    /// Why `executor` could not claim: held by someone under a live lease (409), reserved
    /// for another executor (403), or in a state no claim applies to (409).
    async fn why_not_claimed(&self, node: &Arc<Node>, task: &Task, executor: &str) -> HopperError {
        let current = reread(node, task).await;
        match current.status {
            TaskStatus::Claimed => HopperError::Conflict(format!(
                "task {} is claimed by `{}` until {}",
                current.id,
                current.claimed_by.as_deref().unwrap_or("?"),
                current
                    .lease_expires_at
                    .as_deref()
                    .unwrap_or("its lease runs out")
            )),
            TaskStatus::Pending if current.executor.as_deref().is_some_and(|e| e != executor) => {
                HopperError::Forbidden(format!(
                    "task {} is reserved for executor `{}`",
                    current.id,
                    current.executor.as_deref().unwrap_or("?")
                ))
            }
            status => {
                HopperError::Conflict(format!("cannot claim task {}: it is {status}", current.id))
            }
        }
    }

    async fn why_not(
        &self,
        node: &Arc<Node>,
        task: &Task,
        actor: &Actor,
        action: &str,
    ) -> HopperError {
        let current = reread(node, task).await;
        if let Some(lease) = actor.lease()
            && !holds(&current, lease)
        {
            return HopperError::LeaseLost(format!(
                "cannot {action} task {}: lease `{lease}` is not its current lease \
                 (expired, released or taken over); it is {}",
                current.id, current.status
            ));
        }
        let who = actor.name();
        match current.status {
            TaskStatus::Claimed if current.claimed_by.as_deref() != Some(who) => {
                HopperError::Forbidden(format!(
                    "task {} is claimed by `{}`, not `{who}`",
                    current.id,
                    current.claimed_by.as_deref().unwrap_or("?")
                ))
            }
            TaskStatus::Pending if current.executor.as_deref().is_some_and(|e| e != who) => {
                HopperError::Forbidden(format!(
                    "task {} is reserved for executor `{}`",
                    current.id,
                    current.executor.as_deref().unwrap_or("?")
                ))
            }
            TaskStatus::Routed => HopperError::Conflict(format!(
                "task {} was delegated to `{}`; it finishes when that work does",
                current.id,
                current
                    .routed_to
                    .as_ref()
                    .map(|r| r.as_str())
                    .unwrap_or("?")
            )),
            status => HopperError::Conflict(format!(
                "cannot {action} task {}: it is {status}",
                current.id
            )),
        }
    }
}

/// The task as stored now (a refusal explains the current state), or as last seen.
async fn reread(node: &Node, task: &Task) -> Task {
    node.store
        .get_task(&task.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| task.clone())
}

/// Whether `lease` is `task`'s current, unexpired claim (what the conditional update checks;
/// read again here only to explain a refusal).
fn holds(task: &Task, lease: &str) -> bool {
    let unexpired = task
        .lease_expires_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t.timestamp_millis() >= now_millis());
    task.status == TaskStatus::Claimed && task.lease_id.as_deref() == Some(lease) && unexpired
}

/// A repeat of a finish that already happened: the same outcome under the same lease (a
/// worker retrying after a lost answer) gets the same result. Anything else that finds the
/// task finished is refused.
fn is_retry(task: &Task, to: TaskStatus, actor: &Actor) -> bool {
    to.is_terminal()
        && task.status == to
        && actor
            .lease()
            .is_some_and(|lease| task.lease_id.as_deref() == Some(lease))
}

fn validate_executor(executor: &str) -> Result<()> {
    if executor.trim().is_empty() || executor.len() > 200 {
        return Err(HopperError::Invalid(
            "executor must be 1 to 200 characters".into(),
        ));
    }
    if executor.chars().any(char::is_control) {
        return Err(HopperError::Invalid(
            "executor must not contain control characters".into(),
        ));
    }
    Ok(())
}

impl Engine {
    pub async fn task_history(&self, id: &TaskId) -> Result<Vec<crate::domain::TaskEvent>> {
        let (_, node) = self.locate(id).await?;
        Ok(node.store.task_events(id).await?)
    }

    /// Tasks of an instance, or of it and all its descendants with `hierarchy`.
    pub async fn list_tasks(
        &self,
        instance: &InstanceId,
        filter: &crate::domain::TaskFilter,
    ) -> Result<Vec<Task>> {
        let node = self.node(instance).await?;
        let limit = filter.limit.unwrap_or(1000).clamp(1, 10_000);
        if !filter.hierarchy {
            return Ok(node
                .store
                .list_tasks(
                    std::slice::from_ref(instance),
                    filter.status,
                    filter.after.as_ref(),
                    limit,
                )
                .await?);
        }
        // Descendants may live in other stores: ask each store for its own instances.
        let mut by_store: Vec<(crate::store::Store, Vec<InstanceId>)> = Vec::new();
        for n in self.subtree(instance).await {
            match by_store.iter_mut().find(|(s, _)| s.key() == n.store.key()) {
                Some((_, ids)) => ids.push(n.id().clone()),
                None => by_store.push((n.store.clone(), vec![n.id().clone()])),
            }
        }
        let mut out = Vec::new();
        for (store, ids) in by_store {
            out.extend(
                store
                    .list_tasks(&ids, filter.status, filter.after.as_ref(), limit)
                    .await?,
            );
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.truncate(limit as usize);
        Ok(out)
    }
}
