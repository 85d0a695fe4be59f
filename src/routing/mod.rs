//! Routing: where a task goes next.
//!
//! The global instance asks a chain of providers (`chain.rs`: rules, capabilities, an LLM, an
//! external decider); the first that decides with enough confidence wins, and every step is
//! kept as the decision's explanation (`explain.rs`). Project instances decide between an
//! orchestration run and a single assignee with the rules file; orchestration instances queue
//! by priority.

mod capabilities;
mod chain;
mod explain;
mod live_rules;
pub mod llm;
mod memory;
mod priority;
mod providers;
pub mod remote;
mod rules;
pub mod sage;

use std::sync::Arc;

use async_trait::async_trait;

pub use capabilities::CapabilitiesProvider;
pub use chain::{Answer, Chain, Choice, Provider, Verdict};
pub use explain::{Alternative, Explanation, Step, StepOutcome};
pub use live_rules::{LiveRules, watch_rules};
pub use memory::MemoryProvider;
pub use priority::PriorityRouter;
pub use providers::{LlmProvider, SageProvider, is_complex};

pub use rules::{RulesProvider, RulesRouter};

use crate::domain::{Scope, TaskDraft};

/// A project the global instance can route to, with the executors that serve it.
#[derive(Debug, Clone, Default)]
pub struct ProjectInfo {
    pub name: String,
    /// The project's own (instance metadata) and its enabled executors' capabilities.
    pub capabilities: Vec<String>,
    pub executors: Vec<ExecutorInfo>,
}

/// The projects routing sees, with an index of who declares which capability, built once
/// whenever the list changes rather than walked per decision: with 1,000 projects a walk of
/// every capability of every project was 10,000-20,000 string comparisons per task requiring a
/// capability (`benches/routing.rs`: the chain at 12,000-20,000 decisions/s on such tasks).
#[derive(Debug, Default)]
pub struct Projects {
    list: Vec<ProjectInfo>,
    /// Capability → indexes of the projects that declare it (themselves or an executor), in
    /// list order.
    by_capability: std::collections::HashMap<String, Vec<usize>>,
}

impl Projects {
    pub fn new(list: Vec<ProjectInfo>) -> Self {
        let mut by_capability: std::collections::HashMap<String, Vec<usize>> =
            std::collections::HashMap::new();
        for (i, p) in list.iter().enumerate() {
            let executors = p.executors.iter().flat_map(|e| &e.capabilities);
            for c in p.capabilities.iter().chain(executors) {
                let v = by_capability.entry(c.clone()).or_default();
                if v.last() != Some(&i) {
                    v.push(i);
                }
            }
        }
        Self {
            list,
            by_capability,
        }
    }

    /// No projects (what routers below the global instance are given).
    pub fn none() -> &'static Projects {
        static NONE: std::sync::LazyLock<Projects> = std::sync::LazyLock::new(Projects::default);
        &NONE
    }

    /// The projects declaring `capability`, by index, in list order.
    pub fn with_capability(&self, capability: &str) -> &[usize] {
        self.by_capability
            .get(capability)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

impl std::ops::Deref for Projects {
    type Target = [ProjectInfo];
    fn deref(&self) -> &[ProjectInfo] {
        &self.list
    }
}

impl From<Vec<ProjectInfo>> for Projects {
    fn from(list: Vec<ProjectInfo>) -> Self {
        Self::new(list)
    }
}

/// An enabled executor, as routing sees it.
#[derive(Debug, Clone, Default)]
pub struct ExecutorInfo {
    pub name: String,
    pub capabilities: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Global: hand the task to this project's instance.
    Project(String),
    /// Global: no project fits; the task waits in the global triage queue.
    Triage,
    /// Project: start an orchestration run.
    Orchestrate,
    /// Project: queue it for this executor only.
    Assign(String),
    /// Queue it here for any executor.
    Queue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoutingDecision {
    pub route: Route,
    pub confidence: f64,
    pub reasoning: String,
    pub decided_by: &'static str,
    /// The provider asked for an orchestration run in the project (the LLM's
    /// `needs_orchestration`).
    pub needs_orchestration: bool,
    /// The chain as it ran (global decisions only).
    pub explanation: Option<Arc<Explanation>>,
}

impl RoutingDecision {
    pub fn new(
        route: Route,
        confidence: f64,
        reasoning: impl Into<String>,
        by: &'static str,
    ) -> Self {
        Self {
            route,
            confidence,
            reasoning: reasoning.into(),
            decided_by: by,
            needs_orchestration: false,
            explanation: None,
        }
    }

    /// What a history event keeps of the decision.
    pub fn detail(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "confidence": self.confidence,
            "reasoning": self.reasoning,
            "decided_by": self.decided_by,
        });
        if self.needs_orchestration {
            v["needs_orchestration"] = true.into();
        }
        if let Some(e) = &self.explanation {
            v["chain"] = serde_json::to_value(&e.chain).unwrap_or_default();
        }
        v
    }
}

#[async_trait]
pub trait Router: Send + Sync {
    async fn route(&self, scope: Scope, task: &TaskDraft, projects: &Projects) -> RoutingDecision;

    /// The decision, if it can be made without waiting on anything (no model, no network).
    /// Such a decision is written in the same commit that records an inbound event, instead of
    /// by a second write after the sender has its answer. A router that would have to ask
    /// something keeps the default.
    fn decide_now(
        &self,
        _scope: Scope,
        _task: &TaskDraft,
        _projects: &Projects,
    ) -> Option<RoutingDecision> {
        None
    }
}
