//! The in-process Hopper: every instance of the hierarchy, their stores, and the rules that
//! move tasks between them. `Engine` implements [`crate::service::HopperService`]; the REST API
//! and the CLI's local mode drive it, and [`crate::service::Hopper`] wraps it per instance.

mod add;
mod bubble;
mod decompose;
mod executors;
mod idle;
mod inbound;
mod indexer;
mod lifecycle;
mod live;
mod memory;
mod names;
mod nodes;
mod outbox;
mod pace;
mod recovery;
mod reroute;
mod route_now;
mod routing;
mod sweeper;
mod synced;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::RwLock;

use crate::config::{ConfigSet, IntelligenceProvider};
use crate::domain::{InstanceId, Scope, Task, TaskId};
use crate::error::{HopperError, Result};
use crate::routing::{PriorityRouter, Router, RulesRouter};
use crate::store::{Store, StoreKey, StoreSet};

pub use decompose::{Plan, PlanPhase, PlanTask};
pub use executors::{
    CACHE_TTL, Caller, ExecutorUpdate, MintedToken, Registered, Registration, Rotated,
    TokenRequest, token_hash,
};
pub use inbound::Ingest;
pub use indexer::spawn_indexer;
pub use lifecycle::LeaseRequest;
pub use nodes::Node;
pub use pace::{IngestPace, MAX_HOLD};
pub use reroute::{DecisionRecord, RerouteRequest, RoutingReport};
pub use sweeper::spawn_sweeper;

/// At most the first 128 bytes of `s` (cut at a character boundary), for a span field that
/// comes from outside: a sender's delivery id is usually a UUID, but nothing stops it from
/// being 60 KB, and every log line inside the span would repeat it.
pub(crate) fn log_str(s: &str) -> &str {
    const MAX: usize = 128;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A crash point a test can arm to prove recovery (see `tests/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    /// Die after recording a delegation, before the child has the task.
    AfterDelegationRecorded = 1,
    /// Die after the child has the task, before the delegation is marked delegated.
    AfterChildInserted = 2,
    /// Die after an inbound event and its task are committed, before routing.
    BeforeInboundRouting = 3,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    configs: ConfigSet,
    stores: StoreSet,
    /// The root instance's store; it holds the instance registry.
    registry: Store,
    memory: StoreKey,
    /// This process, as owner of its in-memory runs.
    boot_id: String,
    root: InstanceId,
    nodes: RwLock<live::LiveNodes>,
    /// The project instances' router (orchestration or assignee), on the live rules.
    rules: Arc<dyn Router>,
    queue: Arc<dyn Router>,
    routing: routing::RoutingParts,
    fault: AtomicU8,
    /// Failed routing attempts per unrouted inbound event (see `routing_failed`).
    routing_tries: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// Poked after the task writes this engine makes, which the outbox triggers recorded: wakes
    /// the outbound dispatcher at once instead of at its next poll.
    outbox: Arc<tokio::sync::Notify>,
    /// Poked when deliveries became due (the dispatcher inserted some, a retry or recover):
    /// wakes the delivery worker. Its own signal, not `outbox`: `outbox` stores one permit for
    /// one waiter, and the dispatcher took it, so the worker slept out its 50 ms poll after
    /// every dispatch (paced 1,000/s: p50 67 ms from a task's write to the executor).
    deliveries: Arc<tokio::sync::Notify>,
    /// Tokens and executors by name, trusted for [`CACHE_TTL`] (see `executors/tokens.rs`).
    executor_cache: executors::Cache,
    /// Who reports back to tasks' sources; set once delivery starts (`outbound::spawn`).
    reporters: std::sync::OnceLock<Arc<crate::reports::Reporters>>,
    /// Webhooks accepted lately: what reports wait out (`pace.rs`).
    pace: pace::IngestPace,
}

impl Engine {
    /// Opens the root store, loads the instance registry and re-drives anything a previous
    /// process left half-done.
    pub async fn open(configs: ConfigSet) -> Result<Self> {
        let mut stores = StoreSet::new();
        stores.sqlite_full_sync =
            configs.root.persistence.sqlite_synchronous == crate::config::SqliteSync::Full;
        stores.memory = configs.root.memory.episodic_enabled();
        Self::open_with(configs, stores).await
    }

    pub async fn open_with(configs: ConfigSet, stores: StoreSet) -> Result<Self> {
        let root_key = nodes::root_store_key(&configs)?;
        let registry = stores.get(&root_key).await?;
        let boot_id = uuid::Uuid::now_v7().simple().to_string();
        let memory = StoreKey::Memory(format!("hopper-mem-{boot_id}"));
        registry
            .process_heartbeat(&boot_id, crate::domain::now_millis())
            .await?;
        let routing = routing::RoutingParts::new(&configs, &registry);
        let rules: Arc<dyn Router> = Arc::new(RulesRouter::new(routing.rules.clone()));
        let root = InstanceId::parse(&configs.root.instance_id)
            .map_err(|e| HopperError::Invalid(format!("instance_id: {e}")))?;
        let engine = Engine {
            inner: Arc::new(Inner {
                configs,
                stores,
                registry,
                memory,
                boot_id,
                root,
                nodes: RwLock::new(live::LiveNodes::default()),
                rules,
                queue: Arc::new(PriorityRouter),
                routing,
                fault: AtomicU8::new(Fault::None as u8),
                routing_tries: Default::default(),
                outbox: Arc::default(),
                deliveries: Arc::default(),
                executor_cache: Default::default(),
                reporters: Default::default(),
                pace: Default::default(),
            }),
        };
        // Before any project or run store is opened, so each is given the flag as it opens.
        engine.refresh_outbox_wanted().await?;
        engine.load_registry().await?;
        // Whatever an earlier process left must not keep this one from serving: recovery
        // reports what it cannot re-drive, and the sweeper tries again.
        if let Err(e) = engine.recover().await {
            tracing::error!(error = %e, "start-up recovery did not finish; the sweeper retries");
        }
        Ok(engine)
    }

    pub fn root(&self) -> &InstanceId {
        &self.inner.root
    }

    pub fn configs(&self) -> &ConfigSet {
        &self.inner.configs
    }

    pub fn stores(&self) -> &StoreSet {
        &self.inner.stores
    }

    /// The consolidated routing profile the `memory` provider leans on.
    pub fn learned_profile(&self) -> &crate::memory::LearnedProfile {
        &self.inner.routing.learned
    }

    /// The root instance's store: the registry, executors and deliveries.
    pub fn registry_store(&self) -> &Store {
        &self.inner.registry
    }

    /// What the outbound dispatcher waits on besides its poll (see `outbox_written`).
    /// The reporters, once delivery has started.
    pub fn reporters(&self) -> Option<&Arc<crate::reports::Reporters>> {
        self.inner.reporters.get()
    }

    /// Installs the reporters (once: later calls keep the first) and, if there are any, has
    /// every store record task events for them from now on.
    pub async fn set_reporters(&self, r: Arc<crate::reports::Reporters>) -> Result<()> {
        let any = !r.is_empty();
        let _ = self.inner.reporters.set(r);
        if any {
            self.want_outbox().await?;
        }
        Ok(())
    }

    /// How busy ingest is: the report worker and a report-only outbox pass wait out bursts.
    pub fn ingest_pace(&self) -> &pace::IngestPace {
        &self.inner.pace
    }

    pub fn outbox_signal(&self) -> Arc<tokio::sync::Notify> {
        self.inner.outbox.clone()
    }

    /// What the delivery worker waits on besides its poll (see `deliveries_due`).
    pub fn delivery_signal(&self) -> Arc<tokio::sync::Notify> {
        self.inner.deliveries.clone()
    }

    /// Says deliveries just became due: a stored permit for the one worker of this process.
    pub fn deliveries_due(&self) {
        self.inner.deliveries.notify_one();
    }

    /// Says a task write just recorded outbox events. A stored permit, no allocation: cheap
    /// enough for every write.
    pub(crate) fn outbox_written(&self) {
        self.inner.outbox.notify_one();
    }

    pub async fn ready(&self) -> Result<()> {
        Ok(self.inner.registry.ping().await?)
    }

    /// Stops cleanly: hands the work of this process's in-memory runs back to their projects,
    /// deregisters the process and closes every store.
    pub async fn close(&self) {
        self.inner.routing.stop.cancel();
        match self.hand_back_runs().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                tasks = n,
                "orchestration runs closed; their tasks handed back"
            ),
            Err(e) => tracing::warn!(error = %e, "could not hand back the work of open runs"),
        }
        if let Err(e) = self.inner.registry.process_gone(&self.inner.boot_id).await {
            tracing::warn!(error = %e, "could not deregister this process");
        }
        self.inner.stores.close_all().await;
    }

    /// Whether another live process owns the in-memory instance `id` (it is not lost, just not
    /// ours to serve).
    pub(crate) async fn owned_elsewhere(&self, id: &InstanceId) -> Result<bool> {
        let interval = self.inner.configs.root.server.sweep_interval_ms as i64;
        let since = crate::domain::now_millis() - (interval * 10).max(30_000);
        Ok(self.inner.registry.owner_alive(id, since).await?)
    }

    /// Arms a crash point (tests only).
    #[doc(hidden)]
    pub fn inject_fault(&self, fault: Fault) {
        self.inner.fault.store(fault as u8, Ordering::SeqCst);
    }

    fn check_fault(&self, at: Fault) -> Result<()> {
        if self.inner.fault.load(Ordering::SeqCst) == at as u8 {
            return Err(HopperError::InjectedFault(match at {
                Fault::AfterDelegationRecorded => "after delegation recorded",
                Fault::AfterChildInserted => "after child inserted",
                Fault::BeforeInboundRouting => "before inbound routing",
                Fault::None => "none",
            }));
        }
        Ok(())
    }

    /// The global instance asks the chain; a project its rules; `simple_priority` queues.
    fn router_for(&self, node: &Node) -> Arc<dyn Router> {
        match (node.config.intelligence.provider, node.scope()) {
            (IntelligenceProvider::SimplePriority, _) => self.inner.queue.clone(),
            (_, Scope::Global) => self.inner.routing.chain.clone(),
            (_, Scope::Project | Scope::Orchestration) => self.inner.rules.clone(),
        }
    }

    /// The live instance `id`. Another process sharing the database may have created it since
    /// this one loaded the registry, so a miss is looked up there before giving up.
    pub(crate) fn node<'a>(
        &'a self,
        id: &'a InstanceId,
    ) -> futures::future::BoxFuture<'a, Result<Arc<Node>>> {
        Box::pin(async move {
            if let Some(n) = self.inner.nodes.read().await.get(id) {
                n.touch();
                return Ok(n.clone());
            }
            let missing = || HopperError::NotFound(format!("instance `{id}` not found"));
            let inst = self
                .inner
                .registry
                .get_instance(id)
                .await?
                .ok_or_else(missing)?;
            if inst.status != crate::domain::InstanceStatus::Running {
                return Err(missing());
            }
            let parent_id = inst.parent_instance_id.clone().ok_or_else(missing)?;
            let parent = self.node(&parent_id).await?;
            let node = self.adopt(&parent, inst).await?.ok_or_else(missing)?;
            Ok(node)
        })
    }

    /// The project instance `id` belongs to: itself for a project, the project above it for an
    /// orchestration run or phase, `None` for the root. An executor serving a project serves
    /// exactly the instances for which this is its project (token scopes and deliveries both
    /// ask this).
    pub async fn project_of(&self, id: &InstanceId) -> Result<Option<InstanceId>> {
        let mut node = self.node(id).await?;
        loop {
            match node.scope() {
                crate::domain::Scope::Project => return Ok(Some(node.id().clone())),
                crate::domain::Scope::Global => return Ok(None),
                crate::domain::Scope::Orchestration => {}
            }
            let Some(parent) = node.parent().cloned() else {
                return Ok(None);
            };
            node = self.node(&parent).await?;
        }
    }

    /// Finds a task in whichever store holds it: the registry's store first (where global and,
    /// by default, project tasks live), then the in-memory runs, then any other.
    pub(crate) async fn locate(&self, id: &TaskId) -> Result<(Task, Arc<Node>)> {
        let mut stores = vec![self.inner.registry.clone()];
        for s in self.inner.stores.all().await {
            if s.key() != self.inner.registry.key() {
                stores.push(s);
            }
        }
        for store in stores {
            if let Some(task) = store.get_task(id).await? {
                let node = self.node(&task.instance_id).await?;
                return Ok((task, node));
            }
        }
        Err(HopperError::NotFound(format!("task `{id}` not found")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_str_cuts_long_outside_values_at_a_character_boundary() {
        assert_eq!(super::log_str("abc"), "abc");
        let long = "é".repeat(100); // 200 bytes, two per character
        let cut = super::log_str(&long);
        assert_eq!(cut.len(), 128);
        assert!(long.starts_with(cut));
        let odd = format!("x{long}"); // byte 128 falls inside a character
        assert_eq!(super::log_str(&odd).len(), 127);
    }
}
