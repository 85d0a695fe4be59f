//! One API at every scope. [`HopperService`] is implemented in-process by [`Engine`] and
//! remotely by [`crate::client::HopperClient`]; [`Hopper`] binds it to one instance so code
//! reads like the design: `global.add_task(..)`, `global.get_child_hopper("czarina")`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::Executor;
use crate::domain::{
    Actor, EventFilter, Feedback, InboundEventView, IngestReceipt, Instance, InstanceFilter,
    InstanceId, InstanceStats, InstanceTree, Task, TaskDraft, TaskEvent, TaskFilter, TaskId,
};
use crate::engine::{
    Engine, ExecutorUpdate, LeaseRequest, MintedToken, Registered, Registration, Rotated,
    TokenRequest,
};
use crate::error::Result;
use crate::store::ApiToken;

#[async_trait]
pub trait HopperService: Send + Sync {
    async fn add_task(&self, instance: &InstanceId, task: TaskDraft) -> Result<Task>;
    /// Claims the best task for `executor`; the task carries the claim's `lease_id`.
    async fn get_next(
        &self,
        instance: &InstanceId,
        executor: &str,
        lease: LeaseRequest,
    ) -> Result<Option<Task>>;
    async fn get_task(&self, task: &TaskId) -> Result<Task>;
    async fn task_history(&self, task: &TaskId) -> Result<Vec<TaskEvent>>;
    async fn list_tasks(&self, instance: &InstanceId, filter: &TaskFilter) -> Result<Vec<Task>>;
    async fn claim(&self, task: &TaskId, executor: &str, lease: LeaseRequest) -> Result<Task>;
    /// Extends the lease `actor` (an executor with its `lease_id`) holds.
    async fn heartbeat(&self, task: &TaskId, actor: &Actor, lease: LeaseRequest) -> Result<Task>;
    async fn complete(
        &self,
        task: &TaskId,
        actor: &Actor,
        feedback: Option<Feedback>,
    ) -> Result<Task>;
    async fn fail(&self, task: &TaskId, actor: &Actor, reason: &str) -> Result<Task>;
    async fn release(&self, task: &TaskId, actor: &Actor) -> Result<Task>;
    async fn cancel(&self, task: &TaskId, actor: &Actor) -> Result<Task>;
    /// Every routing decision on the task's delegation path, with the provider chain.
    async fn explain_routing(&self, task: &TaskId) -> Result<crate::engine::RoutingReport>;
    /// Sends a pending or unclaimed routed task to another project, recording a correction.
    async fn reroute(&self, task: &TaskId, req: &crate::engine::RerouteRequest) -> Result<Task>;
    /// The orchestration plan the task would get (nothing is created).
    async fn plan(&self, task: &TaskId) -> Result<crate::engine::Plan>;
    async fn get_child_hopper(&self, parent: &InstanceId, child: &str) -> Result<Instance>;
    async fn register_child(
        &self,
        parent: &InstanceId,
        child: &str,
        metadata: serde_json::Value,
    ) -> Result<Instance>;
    async fn notify_parent(
        &self,
        instance: &InstanceId,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<()>;
    async fn get_instance(&self, instance: &InstanceId) -> Result<Instance>;
    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>>;
    async fn instance_tree(&self) -> Result<InstanceTree>;
    async fn stats(&self, instance: &InstanceId) -> Result<InstanceStats>;
    async fn archive_and_delete(&self, instance: &InstanceId) -> Result<serde_json::Value>;
    /// Stored inbound events, newest first.
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<InboundEventView>>;
    /// One inbound event with its raw body.
    async fn get_event(&self, id: &str) -> Result<InboundEventView>;
    /// Episodes ranked by how well they match the query.
    async fn search_memory(
        &self,
        q: &crate::domain::MemoryQuery,
    ) -> Result<Vec<crate::domain::MemoryHit>>;
    /// Reads an inbound event again with the current configuration.
    async fn replay_event(&self, id: &str) -> Result<IngestReceipt>;
    /// Outbound deliveries, newest first.
    async fn list_deliveries(
        &self,
        filter: &crate::domain::DeliveryFilter,
    ) -> Result<Vec<crate::domain::Delivery>>;
    /// One delivery with its signed body and every attempt.
    async fn get_delivery(&self, id: &str) -> Result<crate::domain::DeliveryDetail>;
    /// Sends a dead or pending delivery again now.
    async fn retry_delivery(&self, id: &str) -> Result<crate::domain::DeliveryDetail>;

    // Executors and tokens (admin). Executors are named by id or name.
    /// Registers an executor; the answer's secret and token are shown only there.
    async fn register_executor(&self, req: Registration) -> Result<Registered>;
    /// Executors, those serving `project` (`sark` or `hopper-sark`) when given.
    async fn list_executors(&self, project: Option<&str>) -> Result<Vec<Executor>>;
    async fn get_executor(&self, executor: &str) -> Result<Executor>;
    async fn update_executor(&self, executor: &str, change: ExecutorUpdate) -> Result<Executor>;
    async fn rotate_executor_secret(&self, executor: &str) -> Result<Rotated>;
    async fn disable_executor(&self, executor: &str, reason: Option<&str>) -> Result<Executor>;
    async fn enable_executor(&self, executor: &str) -> Result<Executor>;
    async fn remove_executor(&self, executor: &str) -> Result<Executor>;
    /// Mints a token; its value is in the answer only.
    async fn mint_token(&self, req: &TokenRequest) -> Result<MintedToken>;
    async fn list_tokens(&self) -> Result<Vec<ApiToken>>;
    async fn revoke_token(&self, id: &str) -> Result<ApiToken>;
}

/// A handle on one instance: the design's `Hopper` object.
#[derive(Clone)]
pub struct Hopper {
    service: Arc<dyn HopperService>,
    id: InstanceId,
}

impl Hopper {
    pub fn new(service: Arc<dyn HopperService>, id: InstanceId) -> Self {
        Self { service, id }
    }

    pub fn instance_id(&self) -> &InstanceId {
        &self.id
    }

    pub async fn add_task(&self, task: TaskDraft) -> Result<Task> {
        self.service.add_task(&self.id, task).await
    }

    pub async fn get_next(&self, executor: &str) -> Result<Option<Task>> {
        self.service
            .get_next(&self.id, executor, LeaseRequest::default())
            .await
    }

    pub async fn claim(&self, task: &TaskId, executor: &str) -> Result<Task> {
        self.service
            .claim(task, executor, LeaseRequest::default())
            .await
    }

    /// Completes `task` as the claim that returned it (its executor and `lease_id`).
    pub async fn complete(&self, task: &Task, feedback: Option<Feedback>) -> Result<Task> {
        let actor = Actor::holder(task).ok_or_else(|| {
            crate::error::HopperError::Invalid(format!("task {} carries no claim", task.id))
        })?;
        self.service.complete(&task.id, &actor, feedback).await
    }

    pub async fn get_child_hopper(&self, child: &str) -> Result<Hopper> {
        let inst = self.service.get_child_hopper(&self.id, child).await?;
        Ok(Hopper::new(self.service.clone(), inst.instance_id))
    }

    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<Task>> {
        self.service.list_tasks(&self.id, filter).await
    }

    pub async fn stats(&self) -> Result<InstanceStats> {
        self.service.stats(&self.id).await
    }

    pub async fn is_empty(&self) -> Result<bool> {
        let s = self.stats().await?;
        let open = ["pending", "claimed", "routed"]
            .iter()
            .map(|k| s.tasks.get(*k).copied().unwrap_or(0))
            .sum::<i64>();
        Ok(open == 0)
    }

    pub async fn notify_parent(&self, kind: &str, detail: serde_json::Value) -> Result<()> {
        self.service.notify_parent(&self.id, kind, detail).await
    }

    pub async fn archive_and_delete(&self) -> Result<serde_json::Value> {
        self.service.archive_and_delete(&self.id).await
    }
}

#[async_trait]
impl HopperService for Engine {
    async fn add_task(&self, instance: &InstanceId, task: TaskDraft) -> Result<Task> {
        Engine::add_task(self, instance, task).await
    }
    async fn get_next(
        &self,
        instance: &InstanceId,
        executor: &str,
        lease: LeaseRequest,
    ) -> Result<Option<Task>> {
        Engine::get_next_with(self, instance, executor, lease).await
    }
    async fn get_task(&self, task: &TaskId) -> Result<Task> {
        Engine::get_task(self, task).await
    }
    async fn task_history(&self, task: &TaskId) -> Result<Vec<TaskEvent>> {
        Engine::task_history(self, task).await
    }
    async fn list_tasks(&self, instance: &InstanceId, filter: &TaskFilter) -> Result<Vec<Task>> {
        Engine::list_tasks(self, instance, filter).await
    }
    async fn claim(&self, task: &TaskId, executor: &str, lease: LeaseRequest) -> Result<Task> {
        Engine::claim_with(self, task, executor, lease).await
    }
    async fn heartbeat(&self, task: &TaskId, actor: &Actor, lease: LeaseRequest) -> Result<Task> {
        Engine::heartbeat(self, task, actor, lease).await
    }
    async fn complete(
        &self,
        task: &TaskId,
        actor: &Actor,
        feedback: Option<Feedback>,
    ) -> Result<Task> {
        Engine::complete(self, task, actor, feedback).await
    }
    async fn fail(&self, task: &TaskId, actor: &Actor, reason: &str) -> Result<Task> {
        Engine::fail(self, task, actor, reason).await
    }
    async fn release(&self, task: &TaskId, actor: &Actor) -> Result<Task> {
        Engine::release(self, task, actor).await
    }
    async fn cancel(&self, task: &TaskId, actor: &Actor) -> Result<Task> {
        Engine::cancel(self, task, actor).await
    }
    async fn explain_routing(&self, task: &TaskId) -> Result<crate::engine::RoutingReport> {
        Engine::explain_routing(self, task).await
    }
    async fn reroute(&self, task: &TaskId, req: &crate::engine::RerouteRequest) -> Result<Task> {
        Engine::reroute(self, task, req, &Actor::Admin).await
    }
    async fn plan(&self, task: &TaskId) -> Result<crate::engine::Plan> {
        Engine::plan_for(self, task).await
    }
    async fn get_child_hopper(&self, parent: &InstanceId, child: &str) -> Result<Instance> {
        Ok(self.child(parent, child, None).await?.instance.clone())
    }
    async fn register_child(
        &self,
        parent: &InstanceId,
        child: &str,
        metadata: serde_json::Value,
    ) -> Result<Instance> {
        Ok(self
            .child(parent, child, Some(metadata))
            .await?
            .instance
            .clone())
    }
    async fn notify_parent(
        &self,
        instance: &InstanceId,
        kind: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        Engine::notify_parent(self, instance, kind, detail).await
    }
    async fn get_instance(&self, instance: &InstanceId) -> Result<Instance> {
        Engine::get_instance(self, instance).await
    }
    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>> {
        Engine::list_instances(self, filter).await
    }
    async fn instance_tree(&self) -> Result<InstanceTree> {
        self.tree().await
    }
    async fn stats(&self, instance: &InstanceId) -> Result<InstanceStats> {
        Engine::stats(self, instance).await
    }
    async fn archive_and_delete(&self, instance: &InstanceId) -> Result<serde_json::Value> {
        Engine::archive_and_delete(self, instance).await
    }
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<InboundEventView>> {
        let limit = filter.limit.unwrap_or(100).clamp(1, 1000);
        let events = Engine::list_events(
            self,
            filter.source.as_deref(),
            filter.status.as_deref(),
            limit,
        )
        .await?;
        Ok(events.iter().map(|e| e.view(false)).collect())
    }
    async fn get_event(&self, id: &str) -> Result<InboundEventView> {
        Ok(Engine::get_event(self, id).await?.view(true))
    }
    async fn search_memory(
        &self,
        q: &crate::domain::MemoryQuery,
    ) -> Result<Vec<crate::domain::MemoryHit>> {
        Engine::search_memory(self, q).await
    }
    async fn replay_event(&self, id: &str) -> Result<IngestReceipt> {
        let sources = crate::inbound::Sources::from_configs(self.configs())?;
        crate::inbound::replay(self, &sources, id).await
    }
    async fn list_deliveries(
        &self,
        filter: &crate::domain::DeliveryFilter,
    ) -> Result<Vec<crate::domain::Delivery>> {
        crate::outbound::deliveries::list(self, filter).await
    }
    async fn get_delivery(&self, id: &str) -> Result<crate::domain::DeliveryDetail> {
        crate::outbound::deliveries::show(self, id).await
    }
    async fn retry_delivery(&self, id: &str) -> Result<crate::domain::DeliveryDetail> {
        crate::outbound::deliveries::retry(self, id).await
    }
    async fn register_executor(&self, req: Registration) -> Result<Registered> {
        Engine::register_executor(self, req).await
    }
    async fn list_executors(&self, project: Option<&str>) -> Result<Vec<Executor>> {
        Engine::list_executors(self, project).await
    }
    async fn get_executor(&self, executor: &str) -> Result<Executor> {
        Engine::get_executor(self, executor).await
    }
    async fn update_executor(&self, executor: &str, change: ExecutorUpdate) -> Result<Executor> {
        Engine::update_executor(self, executor, change).await
    }
    async fn rotate_executor_secret(&self, executor: &str) -> Result<Rotated> {
        Engine::rotate_executor_secret(self, executor).await
    }
    async fn disable_executor(&self, executor: &str, reason: Option<&str>) -> Result<Executor> {
        Engine::disable_executor(self, executor, reason).await
    }
    async fn enable_executor(&self, executor: &str) -> Result<Executor> {
        Engine::enable_executor(self, executor).await
    }
    async fn remove_executor(&self, executor: &str) -> Result<Executor> {
        Engine::remove_executor(self, executor).await
    }
    async fn mint_token(&self, req: &TokenRequest) -> Result<MintedToken> {
        Engine::mint_token(self, req).await
    }
    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        Engine::list_tokens(self).await
    }
    async fn revoke_token(&self, id: &str) -> Result<ApiToken> {
        Engine::revoke_token(self, id).await
    }
}
