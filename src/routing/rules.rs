use std::collections::HashMap;

use async_trait::async_trait;

use super::{ProjectInfo, Route, Router, RoutingDecision};
use crate::config::{ProjectRule, RoutingRules};
use crate::domain::{Scope, TaskDraft};

/// The specification's rule-based intelligence: keyword +2, tag +3, capability +5, times the
/// project's priority boosts; the best positive score wins.
pub struct RulesRouter {
    rules: RoutingRules,
}

impl RulesRouter {
    pub fn new(rules: RoutingRules) -> Self {
        Self { rules }
    }

    fn route_global(&self, task: &TaskDraft, projects: &[ProjectInfo]) -> RoutingDecision {
        let text = format!("{} {}", task.title, task.description).to_lowercase();
        // Configured projects first (in name order), then live ones without rules: ties go to
        // the first. Looked up by name, so a decision is linear in the number of projects.
        let live: HashMap<&str, &ProjectInfo> =
            projects.iter().map(|p| (p.name.as_str(), p)).collect();
        let names = self.rules.projects.keys().map(String::as_str).chain(
            projects
                .iter()
                .map(|p| p.name.as_str())
                .filter(|n| !self.rules.projects.contains_key(*n)),
        );
        let no_rule = ProjectRule::default();
        let mut best: Option<(&str, f64)> = None;
        for name in names {
            let rule = self.rules.projects.get(name).unwrap_or(&no_rule);
            let has_capability = |c: &String| {
                rule.capabilities.contains(c)
                    || live.get(name).is_some_and(|p| p.capabilities.contains(c))
            };
            let mut score = 0.0;
            score += 2.0
                * rule
                    .keywords
                    .iter()
                    .filter(|k| text.contains(&k.to_lowercase()))
                    .count() as f64;
            score += 3.0 * task.tags.iter().filter(|t| rule.tags.contains(t)).count() as f64;
            score += 5.0
                * task
                    .required_capabilities
                    .iter()
                    .filter(|c| has_capability(c))
                    .count() as f64;
            for tag in &task.tags {
                score *= rule.priority_boost.get(tag).copied().unwrap_or(1.0);
            }
            if score > 0.0 && best.is_none_or(|(_, s)| score > s) {
                best = Some((name, score));
            }
        }
        match (best, &self.rules.default_project) {
            (Some((name, score)), _) => RoutingDecision {
                route: Route::Project(name.to_owned()),
                confidence: (score / 10.0).min(1.0),
                reasoning: format!("keyword/tag/capability match score {score}"),
                decided_by: "rules",
            },
            (None, Some(default)) => RoutingDecision {
                route: Route::Project(default.clone()),
                confidence: 0.5,
                reasoning: "no strong match, using the default project".into(),
                decided_by: "rules",
            },
            (None, None) => RoutingDecision {
                route: Route::Triage,
                confidence: 0.0,
                reasoning: "no project matched and no default_project is set".into(),
                decided_by: "rules",
            },
        }
    }

    fn route_project(&self, task: &TaskDraft) -> RoutingDecision {
        let o = &self.rules.orchestration;
        let text = format!("{} {}", task.title, task.description).to_lowercase();
        let why = if task.needs_orchestration {
            Some("needs_orchestration was set".to_owned())
        } else if let Some(t) = task.tags.iter().find(|t| o.tags.contains(t)) {
            Some(format!("tag `{t}` calls for orchestration"))
        } else {
            o.keywords
                .iter()
                .find(|k| text.contains(&k.to_lowercase()))
                .map(|k| format!("keyword `{k}` calls for orchestration"))
        };
        let (route, reasoning) = match (why, &self.rules.default_executor, &task.executor) {
            (Some(why), _, _) => (Route::Orchestrate, why),
            (None, _, Some(e)) => (
                Route::Assign(e.clone()),
                format!("requested executor `{e}`"),
            ),
            (None, Some(e), None) => (Route::Assign(e.clone()), format!("default executor `{e}`")),
            (None, None, None) => (Route::Queue, "queued for any executor".into()),
        };
        RoutingDecision {
            route,
            confidence: 1.0,
            reasoning,
            decided_by: "rules",
        }
    }
}

#[async_trait]
impl Router for RulesRouter {
    async fn route(
        &self,
        scope: Scope,
        task: &TaskDraft,
        projects: &[ProjectInfo],
    ) -> RoutingDecision {
        self.decide(scope, task, projects)
    }

    fn decide_now(
        &self,
        scope: Scope,
        task: &TaskDraft,
        projects: &[ProjectInfo],
    ) -> Option<RoutingDecision> {
        Some(self.decide(scope, task, projects))
    }
}

impl RulesRouter {
    /// Rules look at the task and the configuration only: always decided at once.
    fn decide(&self, scope: Scope, task: &TaskDraft, projects: &[ProjectInfo]) -> RoutingDecision {
        if let Some(p) = &task.project
            && scope == Scope::Global
        {
            return RoutingDecision {
                route: Route::Project(p.clone()),
                confidence: 1.0,
                reasoning: "explicit project assignment".into(),
                decided_by: "rules",
            };
        }
        match scope {
            Scope::Global => self.route_global(task, projects),
            Scope::Project => self.route_project(task),
            Scope::Orchestration => RoutingDecision {
                route: Route::Queue,
                confidence: 1.0,
                reasoning: "queued by priority".into(),
                decided_by: "rules",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProjectRule;

    fn rules() -> RoutingRules {
        let mut r = RoutingRules::default();
        r.projects.insert(
            "sark".into(),
            ProjectRule {
                keywords: vec!["policy".into()],
                tags: vec!["security".into(), "mcp".into()],
                ..ProjectRule::default()
            },
        );
        r.projects.insert(
            "czarina".into(),
            ProjectRule {
                tags: vec!["orchestration".into()],
                ..ProjectRule::default()
            },
        );
        r.orchestration.tags = vec!["feature".into()];
        r
    }

    #[tokio::test]
    async fn global_routes_by_tags_then_triage() {
        let router = RulesRouter::new(rules());
        let t = TaskDraft::new("Add MCP server").with_tags(["security", "mcp"]);
        let d = router.route(Scope::Global, &t, &[]).await;
        assert_eq!(d.route, Route::Project("sark".into()));
        let t = TaskDraft::new("Water the plants");
        assert_eq!(
            router.route(Scope::Global, &t, &[]).await.route,
            Route::Triage
        );
        let t = TaskDraft::new("x").with_project("waypoint");
        assert_eq!(
            router.route(Scope::Global, &t, &[]).await.route,
            Route::Project("waypoint".into())
        );
    }

    #[tokio::test]
    async fn project_decides_orchestration_or_queue() {
        let router = RulesRouter::new(rules());
        let t = TaskDraft::new("Big thing").with_tags(["feature"]);
        assert_eq!(
            router.route(Scope::Project, &t, &[]).await.route,
            Route::Orchestrate
        );
        let t = TaskDraft::new("Fix typo");
        assert_eq!(
            router.route(Scope::Project, &t, &[]).await.route,
            Route::Queue
        );
    }

    #[tokio::test]
    async fn live_projects_score_by_their_registered_capabilities() {
        let router = RulesRouter::new(rules());
        let live = |name: &str, caps: &[&str]| ProjectInfo {
            name: name.into(),
            capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        };
        let projects = [live("infra", &["terraform"]), live("sark", &["python"])];
        let mut t = TaskDraft::new("Provision the runners");
        t.required_capabilities = vec!["terraform".into()];
        let d = router.route(Scope::Global, &t, &projects).await;
        assert_eq!(d.route, Route::Project("infra".into()));
        // A configured project gets the capabilities its instance registered as well.
        t.required_capabilities = vec!["python".into()];
        let d = router.route(Scope::Global, &t, &projects).await;
        assert_eq!(d.route, Route::Project("sark".into()));
        // Equal scores: configured projects come first.
        let projects = [live("aardvark", &["go"]), live("sark", &["go"])];
        t.required_capabilities = vec!["go".into()];
        let d = router.route(Scope::Global, &t, &projects).await;
        assert_eq!(d.route, Route::Project("sark".into()));
    }
}
