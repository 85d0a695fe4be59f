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
use std::hash::{BuildHasherDefault, Hasher};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use async_trait::async_trait;

use super::chain::{Answer, Choice, Provider};
use super::explain::{Alternative, Top};
use super::live_rules::LiveRules;
use super::{Projects, Route, Router, RoutingDecision};
use crate::config::{ProjectRule, RoutingRules};
use crate::domain::{Scope, TaskDraft};

/// FxHash (rustc's) for [`Compiled::index`]: a task requiring a shared capability looks up
/// every live project that has it (hundreds of 1,000), and SipHash was ~6% of such a decision
/// in `benches/routing.rs`. The keys are project names from the rules file, the looked-up
/// ones the engine's live projects: nothing an outsider picks, so no flooding to resist.
#[derive(Default, Clone, Copy)]
struct NameHasher(u64);

impl NameHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Rules with their index.
pub struct Compiled {
    pub rules: RoutingRules,
    /// Configured project names, in the file's (name) order.
    names: Vec<String>,
    /// Name → index in `names`, so live projects find their rule without a per-decision map.
    index: HashMap<String, usize, BuildHasherDefault<NameHasher>>,
    keywords: Option<AhoCorasick>,
    /// Pattern id → (project index, keyword).
    keyword_owner: Vec<(usize, String)>,
    by_tag: HashMap<String, Vec<usize>>,
    by_source: HashMap<String, Vec<usize>>,
    by_capability: HashMap<String, Vec<usize>>,
    /// Lowercased priority → the projects that take it, in index order.
    by_priority: HashMap<String, Vec<usize>>,
    /// Projects with a `priority_boost`, by index.
    boosted: Vec<bool>,
}

impl Compiled {
    pub fn new(rules: RoutingRules) -> Self {
        let names: Vec<String> = rules.projects.keys().cloned().collect();
        let index = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let mut patterns = Vec::new();
        let mut keyword_owner = Vec::new();
        let mut by_tag: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_source: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_capability: HashMap<String, Vec<usize>> = HashMap::new();
        let mut by_priority: HashMap<String, Vec<usize>> = HashMap::new();
        let mut boosted = Vec::with_capacity(names.len());
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
            // As `eq_ignore_ascii_case` compared them; a priority listed twice counts once.
            for p in &rule.priorities {
                let holders = by_priority.entry(p.to_ascii_lowercase()).or_default();
                if holders.last() != Some(&i) {
                    holders.push(i);
                }
            }
            boosted.push(!rule.priority_boost.is_empty());
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
            index,
            keywords,
            keyword_owner,
            by_tag,
            by_source,
            by_capability,
            by_priority,
            boosted,
        }
    }

    fn rule(&self, i: usize) -> Option<&ProjectRule> {
        self.rules.projects.get(self.names.get(i)?)
    }
}

/// Why a project scored, borrowed from the rules and the task: written out only for the
/// winner.
#[derive(Clone, Copy)]
enum Why<'a> {
    Keyword(&'a str),
    Tag(&'a str),
    Source(&'a str),
    Priority(&'a str),
    Capability(&'a str),
    Boost(f64, &'a str),
}

impl std::fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Keyword(k) => write!(f, "keyword `{k}`"),
            Why::Tag(t) => write!(f, "tag `{t}`"),
            Why::Source(s) => write!(f, "source `{s}`"),
            Why::Priority(p) => write!(f, "priority `{p}`"),
            Why::Capability(c) => write!(f, "capability `{c}`"),
            Why::Boost(b, t) => write!(f, "×{b} for `{t}`"),
        }
    }
}

/// Every project's score for one task, dense by project index, and what made them.
///
/// Measured with `benches/routing.rs` (1,000 projects, one thread, a quiet 2-core machine):
/// a `HashMap<usize, Score>` with a `Vec<String>` of formatted reasons per project, a name map
/// rebuilt per decision and a walk of every rule for `priorities` gave 23,600 decisions/s (p99
/// 0.18 ms) on the mixed tasks and 7,500/s (p50 0.135 ms) through the chain on tasks requiring
/// capabilities (hundreds of projects scored, each reason formatted). Points in a flat array,
/// reasons as borrowed [`Why`]s formatted for the winner only, and the name map and
/// priorities indexed at load: 97,000/s (p50 0.002 ms, p99 0.047 ms) and 20,700/s (p50 0.050
/// ms). What remains on capability tasks is the walk in [`capability_scores`].
struct Scores<'a> {
    points: Vec<f64>,
    /// Indices with points, in the order they first scored.
    touched: Vec<usize>,
    why: Vec<(usize, Why<'a>)>,
}

impl<'a> Scores<'a> {
    fn new(n: usize) -> Self {
        Self {
            points: vec![0.0; n],
            touched: Vec::new(),
            why: Vec::new(),
        }
    }

    /// `points` is always positive, so 0 means "not scored yet".
    fn add(&mut self, i: usize, points: f64, why: Why<'a>) {
        if self.points[i] == 0.0 {
            self.touched.push(i);
        }
        self.points[i] += points;
        self.why.push((i, why));
    }

    fn reasons(&self, i: usize) -> String {
        let mut out = String::new();
        for (_, w) in self.why.iter().filter(|(j, _)| *j == i) {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&w.to_string());
        }
        out
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
fn score<'a>(
    c: &'a Compiled,
    task: &'a TaskDraft,
    source_keys: &'a [String],
    projects: &Projects,
) -> Scores<'a> {
    let mut scores = Scores::new(c.names.len() + projects.len());
    if let Some(ac) = &c.keywords {
        let text = format!("{} {}", task.title, task.description).to_lowercase();
        let mut seen = vec![false; c.keyword_owner.len()];
        for m in ac.find_overlapping_iter(&text) {
            let id = m.pattern().as_usize();
            if std::mem::replace(&mut seen[id], true) {
                continue;
            }
            let (i, k) = &c.keyword_owner[id];
            scores.add(*i, 2.0, Why::Keyword(k));
        }
    }
    for tag in &task.tags {
        for &i in c.by_tag.get(tag).into_iter().flatten() {
            scores.add(i, 3.0, Why::Tag(tag));
        }
    }
    for key in source_keys {
        for &i in c.by_source.get(key).into_iter().flatten() {
            scores.add(i, 4.0, Why::Source(key));
        }
    }
    let priority = task.priority.as_str();
    for &i in c.by_priority.get(priority).into_iter().flatten() {
        scores.add(i, 1.0, Why::Priority(priority));
    }
    if !task.required_capabilities.is_empty() {
        capability_scores(c, task, projects, &mut scores);
    }
    for k in 0..scores.touched.len() {
        let i = scores.touched[k];
        if !c.boosted.get(i).copied().unwrap_or(false) {
            continue;
        }
        let Some(rule) = c.rule(i) else { continue };
        for tag in &task.tags {
            if let Some(boost) = rule.priority_boost.get(tag) {
                scores.points[i] *= boost;
                scores.why.push((i, Why::Boost(*boost, tag)));
            }
        }
    }
    scores
}

/// +5 per required capability the project has: in its rule, or declared by its instance or
/// its executors (from the projects' capability index: what the task requires, not what
/// every project declares, is what a decision walks).
fn capability_scores<'a>(
    c: &'a Compiled,
    task: &'a TaskDraft,
    projects: &Projects,
    scores: &mut Scores<'a>,
) {
    for cap in &task.required_capabilities {
        let mut holders: Vec<usize> = c.by_capability.get(cap).cloned().unwrap_or_default();
        for &j in projects.with_capability(cap) {
            let name = projects[j].name.as_str();
            holders.push(c.index.get(name).copied().unwrap_or(c.names.len() + j));
        }
        holders.sort_unstable();
        holders.dedup();
        for i in holders {
            scores.add(i, 5.0, Why::Capability(cap));
        }
    }
}

fn name_of<'a>(c: &'a Compiled, projects: &'a Projects, i: usize) -> &'a str {
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

    pub fn answer(&self, task: &TaskDraft, projects: &Projects) -> Answer {
        let c = self.rules.load();
        let keys = source_keys(task);
        let scores = score(&c, task, &keys, projects);
        // Best first, ties to the lower index.
        let mut ranked = Top::new();
        for &i in &scores.touched {
            let points = scores.points[i];
            if points > 0.0 {
                ranked.offer((points, i), |a: &(f64, usize), b| {
                    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).is_lt()
                });
            }
        }
        let ranked = ranked.items;
        let Some(&(points, best)) = ranked.first() else {
            return Answer::abstain(format!(
                "no rule matched ({} projects in the rules)",
                c.names.len()
            ));
        };
        let alternatives = ranked
            .iter()
            .skip(1)
            .take(3)
            .map(|&(score, i)| Alternative {
                project: name_of(&c, projects, i).to_owned(),
                score,
            })
            .collect();
        Answer::decided(Choice {
            project: name_of(&c, projects, best).to_owned(),
            confidence: (0.5 + points / 20.0).min(1.0),
            reason: format!("score {points} from {}", scores.reasons(best)),
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

    fn decide_now(&self, task: &TaskDraft, projects: &Projects) -> Option<Answer> {
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
    async fn route(&self, scope: Scope, task: &TaskDraft, _: &Projects) -> RoutingDecision {
        self.decide(scope)(task)
    }

    fn decide_now(&self, scope: Scope, task: &TaskDraft, _: &Projects) -> Option<RoutingDecision> {
        Some(self.decide(scope)(task))
    }
}

#[cfg(test)]
mod tests;
