use async_trait::async_trait;

use super::{Projects, Route, Router, RoutingDecision};
use crate::domain::{Scope, TaskDraft};

/// `simple_priority`: no decisions, just a priority queue (orchestration runs).
pub struct PriorityRouter;

#[async_trait]
impl Router for PriorityRouter {
    async fn route(&self, _: Scope, _: &TaskDraft, _: &Projects) -> RoutingDecision {
        queued()
    }

    fn decide_now(&self, _: Scope, _: &TaskDraft, _: &Projects) -> Option<RoutingDecision> {
        Some(queued())
    }
}

fn queued() -> RoutingDecision {
    RoutingDecision::new(Route::Queue, 1.0, "queued by priority", "simple_priority")
}
