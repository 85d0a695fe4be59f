use super::*;
use crate::config::ProjectRule;
use crate::domain::SourceRef;
use crate::routing::{ProjectInfo, Projects, Verdict};

fn rules() -> RoutingRules {
    let mut r = RoutingRules::default();
    r.projects.insert(
        "sark".into(),
        ProjectRule {
            keywords: vec!["policy".into(), "mcp server".into()],
            tags: vec!["security".into(), "mcp".into()],
            ..ProjectRule::default()
        },
    );
    r.projects.insert(
        "czarina".into(),
        ProjectRule {
            tags: vec!["orchestration".into()],
            sources: vec!["github:acme/czarina".into()],
            ..ProjectRule::default()
        },
    );
    r.orchestration.tags = vec!["feature".into()];
    r
}

fn provider() -> RulesProvider {
    RulesProvider::new(LiveRules::new(rules()))
}

fn decided(a: Answer) -> Choice {
    match a.verdict {
        Verdict::Decided(c) => c,
        other => panic!("expected a decision, got {other:?}"),
    }
}

#[test]
fn tags_keywords_and_sources_score() {
    let p = provider();
    let c = decided(p.answer(
        &TaskDraft::new("Add MCP server").with_tags(["security"]),
        Projects::none(),
    ));
    assert_eq!(c.project, "sark");
    assert_eq!(
        c.reason,
        "score 5 from keyword `mcp server`, tag `security`"
    );
    assert_eq!(c.confidence, 0.75);
    let mut t = TaskDraft::new("Flaky job");
    t.source = Some(SourceRef {
        kind: "github".into(),
        container: Some("Acme/Czarina".into()),
        ..SourceRef::default()
    });
    let c = decided(p.answer(&t, Projects::none()));
    assert_eq!(c.project, "czarina");
    assert!(
        c.reason.contains("source `github:acme/czarina`"),
        "{}",
        c.reason
    );
    let a = p.answer(&TaskDraft::new("Water the plants"), Projects::none());
    assert_eq!(
        a.verdict,
        Verdict::Abstained("no rule matched (2 projects in the rules)".into())
    );
}

#[test]
fn a_keyword_counts_once_and_alternatives_are_listed() {
    let p = provider();
    let t = TaskDraft::new("policy policy policy").with_tags(["orchestration"]);
    let c = decided(p.answer(&t, Projects::none()));
    assert_eq!(c.project, "czarina", "tag +3 beats one keyword +2");
    assert_eq!(c.alternatives.len(), 1);
    assert_eq!(c.alternatives[0].project, "sark");
    assert_eq!(c.alternatives[0].score, 2.0);
}

#[test]
fn live_projects_score_by_their_registered_capabilities() {
    let p = provider();
    let live = |name: &str, caps: &[&str]| ProjectInfo {
        name: name.into(),
        capabilities: caps.iter().map(|c| (*c).to_owned()).collect(),
        executors: vec![],
    };
    let projects = Projects::new(vec![
        live("infra", &["terraform"]),
        live("sark", &["python"]),
    ]);
    let mut t = TaskDraft::new("Provision the runners");
    t.required_capabilities = vec!["terraform".into()];
    assert_eq!(decided(p.answer(&t, &projects)).project, "infra");
    // A configured project gets the capabilities its instance registered as well.
    t.required_capabilities = vec!["python".into()];
    assert_eq!(decided(p.answer(&t, &projects)).project, "sark");
    // Equal scores: configured projects come first.
    let projects = Projects::new(vec![live("aardvark", &["go"]), live("sark", &["go"])]);
    t.required_capabilities = vec!["go".into()];
    assert_eq!(decided(p.answer(&t, &projects)).project, "sark");
}

#[tokio::test]
async fn project_decides_orchestration_or_queue() {
    let router = RulesRouter::new(LiveRules::new(rules()));
    let t = TaskDraft::new("Big thing").with_tags(["feature"]);
    assert_eq!(
        router
            .route(Scope::Project, &t, Projects::none())
            .await
            .route,
        Route::Orchestrate
    );
    let t = TaskDraft::new("Fix typo");
    assert_eq!(
        router
            .route(Scope::Project, &t, Projects::none())
            .await
            .route,
        Route::Queue
    );
}
