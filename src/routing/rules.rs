//! The rules file as a routing provider (global scope) and as the project instance's router
//! (orchestration run or single assignee).
//!
//! Global scoring is the specification's: keyword +2, tag +3, capability +5, plus this build's
//! source +4 and priority +1, times the project's `priority_boost` for the task's tags; the
//! best positive score wins, ties to the first project (configured ones in name order, then
//! live ones without rules). The rules are compiled into an index when loaded — one
//! Aho-Corasick pass over the task's text for every keyword, tags and sources by hash — so a
//! decision costs what the task matches, not what the file holds (1,000 projects: see
//! `benches/routing.rs`).

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use async_trait::async_trait;

use super::chain::{Answer, Choice, Provider};
use super::explain::Alternative;
use super::live_rules::LiveRules;
use super::{ProjectInfo, Route, Router, RoutingDecision};
use crate::config::{ProjectRule, RoutingRules};
use crate::domain::{Scope, TaskDraft};

/// Rules with their index.
pub struct Compiled {
    pub rules: RoutingRules,
    /// Configured project names, in the file's (name) order.
    names: Vec<String>,
    keywords: Option<AhoCorasick>,
    /// Pattern id → (project index, keyword).
    keyword_owner: Vec<(usize, String)>,
    by_tag: HashMap<String, Vec<usize>>,
    by_source: HashMap<String, Vec<usize>>,
    by_capability: HashMap<String, Vec<usize>>,
}

impl Compiled {
    pub fn new(rules: RoutingRules) -> Self {
        let names: Vec<String> = rules.projects.keys().cloned().collect();
        let mut patterns = Vec::new();
        let mut keyword_owner = Vec::new();
        let mut by_tag: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_source: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_capability: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, rule) in rules.projects.values().enumerate() {
            for k in rule.keywords.iter().filter(|k| !k.trim().is_empty()) {
                patterns.push(k.to_lowercase());
                keyword_owner.push((i, k.clone()));
            }
            for t in &rule.tags {
                by_tag.entry(t.clone()).or_default().push(i);
            }
            for s in &rule.sources {
                by_source.entry(s.to_lowercase()).or_default().push(i);
            }
            for c in &rule.capabilities {
                by_capability.entry(c.clone()).or_default().push(i);
            }
        }
        // Overlapping matches: "mcp server" and "server" both count, as substring tests did.
        let keywords = AhoCorasickBuilder::new()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .ok()
            .filter(|_| !patterns.is_empty());
        Self {
            rules,
            names,
            keywords,
            keyword_owner,
            by_tag,
            by_source,
            by_capability,
        }
    }

    fn rule(&self, i: usize) -> Option<&ProjectRule> {
        self.rules.projects.get(self.names.get(i)?)
    }
}

/// One project's score and what made it.
#[derive(Default, Clone)]
struct Score {
    points: f64,
    why: Vec<String>,
}

impl Score {
    fn add(&mut self, points: f64, why: impl FnOnce() -> String) {
        self.points += points;
        self.why.push(why());
    }
}

/// The source keys a task matches: `kind` and `kind:container`, lowercased.
fn source_keys(task: &TaskDraft) -> Vec<String> {
    let Some(s) = &task.source else {
        return vec![];
    };
    let kind = s.kind.to_lowercase();
    let mut keys = vec![kind.clone()];
    if let Some(c) = &s.container {
        keys.push(format!("{kind}:{}", c.to_lowercase()));
    }
    keys
}

/// Scores every project the task touches. Index `names.len() + j` is live project `j` without
/// rules.
fn score(c: &Compiled, task: &TaskDraft, projects: &[ProjectInfo]) -> HashMap<usize, Score> {
    let mut scores: HashMap<usize, Score> = HashMap::new();
    if let Some(ac) = &c.keywords {
        let text = format!("{} {}", task.title, task.description).to_lowercase();
        let mut seen = vec![false; c.keyword_owner.len()];
        for m in ac.find_overlapping_iter(&text) {
            let id = m.pattern().as_usize();
            if std::mem::replace(&mut seen[id], true) {
                continue;
            }
            let (i, k) = &c.keyword_owner[id];
            scores
                .entry(*i)
                .or_default()
                .add(2.0, || format!("keyword `{k}`"));
        }
    }
    for tag in &task.tags {
        for &i in c.by_tag.get(tag).into_iter().flatten() {
            scores
                .entry(i)
                .or_default()
                .add(3.0, || format!("tag `{tag}`"));
        }
    }
    for key in source_keys(task) {
        for &i in c.by_source.get(&key).into_iter().flatten() {
            scores
                .entry(i)
                .or_default()
                .add(4.0, || format!("source `{key}`"));
        }
    }
    let priority = format!("{:?}", task.priority).to_lowercase();
    for (i, rule) in c.rules.projects.values().enumerate() {
        if rule
            .priorities
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&priority))
        {
            scores
                .entry(i)
                .or_default()
                .add(1.0, || format!("priority `{priority}`"));
        }
    }
    if !task.required_capabilities.is_empty() {
        capability_scores(c, task, projects, &mut scores);
    }
    for (&i, s) in scores.iter_mut() {
        let Some(rule) = c.rule(i) else { continue };
        for tag in &task.tags {
            if let Some(boost) = rule.priority_boost.get(tag) {
                s.points *= boost;
                s.why.push(format!("×{boost} for `{tag}`"));
            }
        }
    }
    scores
}

/// +5 per required capability the project has: in its rule, or declared by its instance or
/// its executors.
fn capability_scores(
    c: &Compiled,
    task: &TaskDraft,
    projects: &[ProjectInfo],
    scores: &mut HashMap<usize, Score>,
) {
    let index: HashMap<&str, usize> = c
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    for cap in &task.required_capabilities {
        let mut holders: Vec<usize> = c.by_capability.get(cap).cloned().unwrap_or_default();
        for (j, p) in projects.iter().enumerate() {
            if p.capabilities.contains(cap) {
                holders.push(
                    index
                        .get(p.name.as_str())
                        .copied()
                        .unwrap_or(c.names.len() + j),
                );
            }
        }
        holders.sort_unstable();
        holders.dedup();
        for i in holders {
            scores
                .entry(i)
                .or_default()
                .add(5.0, || format!("capability `{cap}`"));
        }
    }
}

fn name_of<'a>(c: &'a Compiled, projects: &'a [ProjectInfo], i: usize) -> &'a str {
    match c.names.get(i) {
        Some(n) => n,
        None => projects
            .get(i - c.names.len())
            .map(|p| p.name.as_str())
            .unwrap_or_default(),
    }
}

/// `rules` in the chain.
pub struct RulesProvider {
    rules: LiveRules,
}

impl RulesProvider {
    pub fn new(rules: LiveRules) -> Self {
        Self { rules }
    }

    pub fn answer(&self, task: &TaskDraft, projects: &[ProjectInfo]) -> Answer {
        let c = self.rules.load();
        let scores = score(&c, task, projects);
        let mut ranked: Vec<(usize, Score)> =
            scores.into_iter().filter(|(_, s)| s.points > 0.0).collect();
        ranked.sort_by(|a, b| b.1.points.total_cmp(&a.1.points).then(a.0.cmp(&b.0)));
        let Some((best, s)) = ranked.first() else {
            return Answer::abstain(format!(
                "no rule matched ({} projects in the rules)",
                c.names.len()
            ));
        };
        let alternatives = ranked
            .iter()
            .skip(1)
            .take(3)
            .map(|(i, s)| Alternative {
                project: name_of(&c, projects, *i).to_owned(),
                score: s.points,
            })
            .collect();
        Answer::decided(Choice {
            project: name_of(&c, projects, *best).to_owned(),
            confidence: (0.5 + s.points / 20.0).min(1.0),
            reason: format!("score {} from {}", s.points, s.why.join(", ")),
            needs_orchestration: false,
            alternatives,
        })
    }
}

#[async_trait]
impl Provider for RulesProvider {
    fn kind(&self) -> &'static str {
        "rules"
    }

    fn decide_now(&self, task: &TaskDraft, projects: &[ProjectInfo]) -> Option<Answer> {
        Some(self.answer(task, projects))
    }
}

/// A project instance's router: orchestration run or single assignee, by the rules file.
pub struct RulesRouter {
    rules: LiveRules,
}

impl RulesRouter {
    pub fn new(rules: LiveRules) -> Self {
        Self { rules }
    }

    fn route_project(&self, task: &TaskDraft) -> RoutingDecision {
        let c = self.rules.load();
        let o = &c.rules.orchestration;
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
        let (route, reasoning) = match (why, &c.rules.default_executor, &task.executor) {
            (Some(why), _, _) => (Route::Orchestrate, why),
            (None, _, Some(e)) => (
                Route::Assign(e.clone()),
                format!("requested executor `{e}`"),
            ),
            (None, Some(e), None) => (Route::Assign(e.clone()), format!("default executor `{e}`")),
            (None, None, None) => (Route::Queue, "queued for any executor".into()),
        };
        RoutingDecision::new(route, 1.0, reasoning, "rules")
    }

    fn decide(&self, scope: Scope) -> impl Fn(&TaskDraft) -> RoutingDecision + '_ {
        move |task| match scope {
            Scope::Project => self.route_project(task),
            // The chain routes the global instance; a router asked there queues.
            Scope::Global | Scope::Orchestration => {
                RoutingDecision::new(Route::Queue, 1.0, "queued by priority", "rules")
            }
        }
    }
}

#[async_trait]
impl Router for RulesRouter {
    async fn route(&self, scope: Scope, task: &TaskDraft, _: &[ProjectInfo]) -> RoutingDecision {
        self.decide(scope)(task)
    }

    fn decide_now(
        &self,
        scope: Scope,
        task: &TaskDraft,
        _: &[ProjectInfo],
    ) -> Option<RoutingDecision> {
        Some(self.decide(scope)(task))
    }
}

#[cfg(test)]
mod tests;
