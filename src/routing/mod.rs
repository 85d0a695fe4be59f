//! Routing: where a task goes next. Each instance's `intelligence.provider` picks a router; the
//! LLM and learned-memory routers of later issues implement the same trait.

pub mod llm;
mod priority;
pub mod remote;
mod rules;
pub mod sage;

use async_trait::async_trait;

pub use priority::PriorityRouter;
pub use rules::RulesRouter;

use crate::domain::{Scope, TaskDraft};

/// A project the global instance can route to.
#[derive(Debug, Clone)]
pub struct ProjectInfo {
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
}

#[async_trait]
pub trait Router: Send + Sync {
    async fn route(
        &self,
        scope: Scope,
        task: &TaskDraft,
        projects: &[ProjectInfo],
    ) -> RoutingDecision;

    /// The decision, if it can be made without waiting on anything (no model, no network).
    /// Such a decision is written in the same commit that records an inbound event, instead of
    /// by a second write after the sender has its answer. A router that would have to ask
    /// something keeps the default.
    fn decide_now(
        &self,
        _scope: Scope,
        _task: &TaskDraft,
        _projects: &[ProjectInfo],
    ) -> Option<RoutingDecision> {
        None
    }
}
