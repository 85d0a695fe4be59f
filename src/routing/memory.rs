//! `memory` in the chain (`memory.learning: true`): routes a task where similar past tasks went
//! well, from the episodes the database records (`src/memory`).
//!
//! It finds the episodes whose text and tags best match the task's words (the store's full-text
//! search, LIMIT [`MAX_EPISODES`], so a decision reads a bounded number of rows however many
//! episodes there are), weighs each by how similar it is, how recent (half-life
//! [`HALF_LIFE_DAYS`]) and what happened (completed well > completed > only routed > failed; a
//! correction counts strongly against the project the work was moved from and for the one it
//! was moved to), and picks the project with the most net weight. Its confidence is that
//! project's share of all positive weight, scaled by how much evidence there is, so one routed
//! task alone is not enough to decide.
//!
//! Besides the episodes it leans on the last consolidated routing profile
//! ([`crate::memory::LearnedProfile`], loaded from the memory repository at start-up), a prior
//! of at most one good task's weight per project: what was learned survives a database reset.
//!
//! Why it never decides "now": the episodes are in the database, and reading them inside the
//! group commit that records a webhook would hold every other writer up for a query. Like `llm`
//! and `sage` it returns `None` from `decide_now`, so a chain that reaches it routes after the
//! sender has its answer and ingest stays unblocked. An in-memory index would let it decide at
//! once, but it would have to be kept in step with episodes written by every process sharing the
//! database; the query is simpler and always current.

use std::collections::HashMap;

use async_trait::async_trait;

use super::Projects;
use super::chain::{Answer, Choice, Provider};
use super::explain::Alternative;
use crate::domain::{Millis, TaskDraft, now_millis};
use crate::memory::{Episode, EpisodeKind, LearnedProfile, affinity};
use crate::store::{EpisodeHit, Store};

/// The most episodes one decision reads.
pub const MAX_EPISODES: i64 = 200;
/// An episode this old counts half as much as one from now.
pub const HALF_LIFE_DAYS: f64 = 30.0;
/// Net weight at which evidence counts for half: one task completed well is about 0.75.
const EVIDENCE_HALF: f64 = 0.5;
/// Words too common to say two tasks are alike.
const STOP: &[&str] = &[
    "the", "and", "for", "with", "from", "into", "this", "that", "are", "was", "were", "not",
    "but", "all", "any", "our", "its", "has", "have", "had", "can", "will", "should", "would",
    "when", "then", "than", "there", "their", "they", "you", "your", "also", "onto", "out",
];

/// `memory` in the chain, reading the registry's store.
pub struct MemoryProvider {
    store: Store,
    min_confidence: Option<f64>,
    learned: LearnedProfile,
}

/// How the consolidated profile is named among the things a decision leaned on.
const PROFILE: &str = "the consolidated profile";

impl MemoryProvider {
    pub fn new(store: Store, min_confidence: Option<f64>, learned: LearnedProfile) -> Self {
        Self {
            store,
            min_confidence,
            learned,
        }
    }

    /// The profile's `(project, weight)` for the task: none before any consolidation.
    fn prior(&self, task: &TaskDraft) -> Vec<(String, f64)> {
        self.learned
            .get()
            .map(|p| affinity(&p, &task.title, &task.tags))
            .unwrap_or_default()
    }
}

/// The words the search is asked for: title, description and tags, without the common ones.
fn query_words(task: &TaskDraft) -> String {
    let text = format!(
        "{} {} {}",
        task.title,
        task.description,
        task.tags.join(" ")
    );
    let mut seen: Vec<String> = Vec::new();
    for w in text.split(|c: char| !c.is_alphanumeric()) {
        let w = w.to_lowercase();
        if w.chars().count() >= 3 && !STOP.contains(&w.as_str()) && !seen.contains(&w) {
            seen.push(w);
        }
    }
    seen.join(" ")
}

/// What one episode says about projects: `(project, weight)` before similarity and recency.
fn evidence(e: &Episode) -> Vec<(String, f64)> {
    let Some(project) = e.project.clone() else {
        return vec![];
    };
    match e.kind {
        EpisodeKind::Routed => vec![(project, 0.3)],
        EpisodeKind::Completed if e.routing_correct == Some(false) => vec![(project, -1.0)],
        // Quality 0-5: 5 counts three times as much as 0; no feedback as a plain success.
        EpisodeKind::Completed => {
            let w = e.quality.map_or(1.0, |q| 0.5 + q.clamp(0.0, 5.0) / 5.0);
            vec![(project, w)]
        }
        EpisodeKind::Failed => vec![(project, -1.0)],
        // A person said it belonged elsewhere: stronger than any single outcome.
        EpisodeKind::Corrected => {
            let mut v = vec![(project, 1.5)];
            if let Some(from) = e.from_project.clone() {
                v.push((from, -2.0));
            }
            v
        }
    }
}

fn recency(at: Millis, now: Millis) -> f64 {
    let days = (now - at).max(0) as f64 / 86_400_000.0;
    0.5f64.powf(days / HALF_LIFE_DAYS)
}

#[derive(Default)]
struct Tally {
    net: f64,
    /// Task id → its positive contribution, to name the tasks leaned on.
    tasks: HashMap<String, f64>,
}

/// The decision from the hits (best match first) and the profile's prior.
pub fn weigh(hits: &[EpisodeHit], prior: &[(String, f64)], now: Millis) -> Answer {
    if hits.is_empty() && prior.is_empty() {
        return Answer::abstain("no similar past tasks");
    }
    let top = hits.iter().map(|h| h.score).fold(0.0f64, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    let mut by: HashMap<String, Tally> = HashMap::new();
    for h in hits {
        let similar = (h.score / top).clamp(0.05, 1.0);
        let factor = similar * recency(h.episode.at, now);
        for (project, w) in evidence(&h.episode) {
            let t = by.entry(project).or_default();
            t.net += w * factor;
            if w > 0.0 {
                *t.tasks.entry(h.episode.task_id.clone()).or_default() += w * factor;
            }
        }
    }
    for (project, w) in prior {
        let t = by.entry(project.clone()).or_default();
        t.net += w;
        if *w > 0.0 {
            *t.tasks.entry(PROFILE.to_owned()).or_default() += w;
        }
    }
    let positive: f64 = by.values().map(|t| t.net.max(0.0)).sum();
    let mut ranked: Vec<(&String, &Tally)> = by.iter().filter(|(_, t)| t.net > 0.0).collect();
    ranked.sort_by(|a, b| b.1.net.total_cmp(&a.1.net).then_with(|| a.0.cmp(b.0)));
    let Some((project, best)) = ranked.first() else {
        return Answer::abstain(format!(
            "{} similar past episodes{}, none in favour of a project",
            hits.len(),
            if prior.is_empty() {
                ""
            } else {
                " and the consolidated profile"
            }
        ));
    };
    let share = best.net / positive;
    let confidence = (share * best.net / (best.net + EVIDENCE_HALF)).clamp(0.0, 1.0);
    let mut leaned: Vec<(&String, &f64)> = best.tasks.iter().collect();
    leaned.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let ids: Vec<&str> = leaned.iter().take(3).map(|(id, _)| id.as_str()).collect();
    let reason = format!(
        "similar past tasks went well in `{project}` (weight {:.2} of {:.2} from {} episodes); \
         leaned on {}",
        best.net,
        positive,
        hits.len(),
        ids.join(", ")
    );
    Answer::decided(Choice {
        project: (*project).clone(),
        confidence,
        reason,
        needs_orchestration: false,
        alternatives: ranked
            .iter()
            .skip(1)
            .take(3)
            .map(|(p, t)| Alternative {
                project: (*p).clone(),
                score: t.net,
            })
            .collect(),
    })
}

#[async_trait]
impl Provider for MemoryProvider {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn min_confidence(&self) -> Option<f64> {
        self.min_confidence
    }

    /// Never at once (module docs): the episodes are read outside the commit.
    fn decide_now(&self, task: &TaskDraft, _: &Projects) -> Option<Answer> {
        if query_words(task).is_empty() {
            return Some(Answer::abstain("no words to compare with past tasks"));
        }
        None
    }

    async fn decide(&self, task: &TaskDraft, _: &Projects) -> Answer {
        let words = query_words(task);
        if words.is_empty() {
            return Answer::abstain("no words to compare with past tasks");
        }
        let prior = self.prior(task);
        match self.store.search_episodes(&words, MAX_EPISODES).await {
            Ok(hits) => weigh(&hits, &prior, now_millis()),
            // The profile alone still knows something; without it, nothing to go on.
            Err(e) if prior.is_empty() => {
                Answer::abstain(format!("could not read past episodes: {e}"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "memory: episodes unreadable, deciding on the profile");
                weigh(&[], &prior, now_millis())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Verdict;

    fn hit(task: &str, kind: EpisodeKind, project: &str, from: Option<&str>) -> EpisodeHit {
        EpisodeHit {
            episode: Episode {
                seq: 0,
                instance_id: "hopper-global".into(),
                task_id: task.into(),
                kind,
                at: 0,
                project: Some(project.into()),
                from_project: from.map(Into::into),
                decided_by: None,
                confidence: None,
                title: String::new(),
                text: String::new(),
                tags: vec![],
                quality: Some(5.0),
                routing_correct: None,
                notes: None,
                duration_ms: None,
            },
            snippet: String::new(),
            score: 1.0,
        }
    }

    #[test]
    fn corrections_outweigh_routes_and_failures_lose() {
        let hits = [
            hit("t1", EpisodeKind::Routed, "a", None),
            hit("t1", EpisodeKind::Corrected, "b", Some("a")),
            hit("t2", EpisodeKind::Failed, "c", None),
            hit("t3", EpisodeKind::Completed, "c", None),
            hit("t4", EpisodeKind::Completed, "b", None),
        ];
        let Verdict::Decided(c) = weigh(&hits, &[], 0).verdict else {
            panic!("decides")
        };
        assert_eq!(c.project, "b");
        assert!(
            c.reason.contains("t1") && c.reason.contains("t4"),
            "{}",
            c.reason
        );
        assert!(c.confidence > 0.5 && c.confidence <= 1.0);
        assert!(matches!(weigh(&[], &[], 0).verdict, Verdict::Abstained(_)));
    }

    #[test]
    fn old_episodes_count_less_and_common_words_are_dropped() {
        assert!((recency(0, 30 * 86_400_000) - 0.5).abs() < 1e-9);
        let t = TaskDraft::new("Fix the gate for MCP").with_tags(["security"]);
        assert_eq!(query_words(&t), "fix gate mcp security");
    }
}
