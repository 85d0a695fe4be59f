//! The engine's routing parts: the global chain built from config, the live rules and their
//! watcher, and the executors the chain sees (reloaded when this process changes one, and at
//! least every [`EXECUTORS_TTL`] for changes made by other processes).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::config::{ConfigSet, ProviderKind};
use crate::routing::{
    CapabilitiesProvider, Chain, ExecutorInfo, LiveRules, LlmProvider, MemoryProvider, Provider,
    RulesProvider, SageProvider,
};
use crate::store::{ExecutorFilter, Store};

/// How long another process's executor change may go unseen by routing.
const EXECUTORS_TTL: Duration = Duration::from_secs(5);

/// Routing's state inside the engine.
pub(super) struct RoutingParts {
    pub rules: LiveRules,
    pub chain: Arc<Chain>,
    /// The LLM asked for orchestration plans (`intelligence.decompose: llm`).
    pub decomposer: Option<crate::routing::llm::LlmClient>,
    /// The consolidated routing profile the `memory` provider leans on (loaded at start-up).
    pub learned: crate::memory::LearnedProfile,
    stale: AtomicBool,
    loaded_at: std::sync::Mutex<Option<Instant>>,
    refreshing: tokio::sync::Mutex<()>,
    pub stop: CancellationToken,
}

impl RoutingParts {
    /// `registry`: the store the `memory` provider reads episodes from.
    pub fn new(configs: &ConfigSet, registry: &Store) -> Self {
        let rules = LiveRules::new(configs.rules.clone());
        let intelligence = &configs.root.intelligence;
        let kinds = intelligence.chain_learning(configs.root.memory.learning);
        tracing::info!(chain = ?kinds, "global routing chain");
        let learned = crate::memory::LearnedProfile::default();
        let providers: Vec<Arc<dyn Provider>> = kinds
            .into_iter()
            .map(|kind| provider(kind, configs, &rules, registry, &learned))
            .collect();
        let chain = Arc::new(Chain::new(
            providers,
            intelligence.min_confidence,
            rules.clone(),
        ));
        let stop = CancellationToken::new();
        if let Some(path) = &configs.rules_file
            && intelligence.rules_reload_seconds > 0
        {
            crate::routing::watch_rules(
                rules.clone(),
                path.clone(),
                Duration::from_secs(intelligence.rules_reload_seconds),
                stop.clone(),
            );
        }
        // A second LLM client only when runs are planned by it (`Engine::plan_draft` asks
        // nothing otherwise).
        let plans = [&configs.root, &configs.project]
            .iter()
            .any(|c| c.intelligence.decompose == crate::config::DecomposeMode::Llm);
        let decomposer = plans
            .then(|| {
                LlmProvider::from_config(intelligence, rules.clone())
                    .client()
                    .cloned()
            })
            .flatten();
        Self {
            rules,
            chain,
            decomposer,
            learned,
            stale: AtomicBool::new(true),
            loaded_at: std::sync::Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            stop,
        }
    }

    fn due(&self) -> bool {
        if self.stale.load(Ordering::Acquire) {
            return true;
        }
        let at = *self.loaded_at.lock().unwrap_or_else(|p| p.into_inner());
        at.is_none_or(|t| t.elapsed() >= EXECUTORS_TTL)
    }

    pub fn executors_changed(&self) {
        self.stale.store(true, Ordering::Release);
    }
}

fn provider(
    kind: ProviderKind,
    configs: &ConfigSet,
    rules: &LiveRules,
    registry: &Store,
    learned: &crate::memory::LearnedProfile,
) -> Arc<dyn Provider> {
    let i = &configs.root.intelligence;
    match kind {
        ProviderKind::Rules => Arc::new(RulesProvider::new(rules.clone())),
        ProviderKind::Capabilities => Arc::new(CapabilitiesProvider),
        ProviderKind::Llm => Arc::new(LlmProvider::from_config(i, rules.clone())),
        ProviderKind::Sage => Arc::new(SageProvider::from_config(i, rules.clone())),
        ProviderKind::Memory => Arc::new(MemoryProvider::new(
            registry.clone(),
            i.memory.min_confidence,
            learned.clone(),
        )),
    }
}

impl Engine {
    /// Reloads the executors routing sees when this process changed one or the last load is
    /// older than [`EXECUTORS_TTL`]. One caller reloads; the others route with what is there.
    pub(super) async fn refresh_routing_executors(&self) {
        let parts = &self.inner.routing;
        if !parts.due() {
            return;
        }
        let Ok(_guard) = parts.refreshing.try_lock() else {
            return;
        };
        parts.stale.store(false, Ordering::Release);
        let listed = self
            .inner
            .registry
            .list_executors(&ExecutorFilter::default())
            .await;
        let executors = match listed {
            Ok(e) => e,
            Err(e) => {
                parts.stale.store(true, Ordering::Release);
                tracing::warn!(error = %e, "routing could not read the executors");
                return;
            }
        };
        let mut by_project: HashMap<String, Vec<ExecutorInfo>> = HashMap::new();
        for e in executors.into_iter().filter(|e| e.enabled) {
            let name = e.project.as_str();
            let name = name.strip_prefix("hopper-").unwrap_or(name).to_owned();
            by_project.entry(name).or_default().push(ExecutorInfo {
                name: e.name,
                capabilities: e.capabilities,
            });
        }
        self.inner.nodes.write().await.set_executors(by_project);
        *parts.loaded_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// The rules in force (the file as last loaded).
    pub fn routing_rules(&self) -> Arc<crate::config::RoutingRules> {
        Arc::new(self.inner.routing.rules.get().rules.clone())
    }
}
