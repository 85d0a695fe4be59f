//! The routing profile: cumulative figures per project that the memory routing provider loads.
//!
//! Every figure is an integer (counts, sums of milli-quality and of milliseconds) or a bounded
//! list ordered by a total order, so folding new episodes into a loaded profile gives exactly
//! what folding all episodes at once gives: no float rounding through JSON, no lost counts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::millis_to_rfc3339;
use crate::memory::{Episode, EpisodeKind};

/// The profile format; bumped when a field changes meaning.
pub const PROFILE_VERSION: u32 = 1;
/// How many feedback notes and corrections a project keeps: the pages show the latest few, and
/// "latest N of everything" equals "latest N of (latest N before) + new", so merging stays exact.
pub const KEEP_RECENT: usize = 5;
/// Quality is kept in thousandths so sums stay integers.
const MILLI: f64 = 1000.0;

/// Words too common in titles to say anything about where work goes.
const STOP_WORDS: &[&str] = &[
    "about", "after", "all", "and", "are", "but", "can", "for", "from", "has", "have", "into",
    "its", "not", "now", "on", "our", "out", "should", "that", "the", "then", "there", "this",
    "when", "will", "with", "why", "how", "what", "was", "were", "you", "your",
];

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RoutingProfile {
    pub version: u32,
    /// The highest episode `seq` included: the next run starts after it.
    pub watermark: i64,
    /// Episodes included in total (those without a project too).
    pub episodes: u64,
    /// Episodes that named no project (routed to triage).
    #[serde(default)]
    pub unassigned: u64,
    /// The first and last episode times included (RFC 3339 UTC), from the episodes themselves.
    #[serde(default)]
    pub first_at: Option<String>,
    #[serde(default)]
    pub last_at: Option<String>,
    pub projects: BTreeMap<String, ProjectProfile>,
    /// The database the watermark counts in (`<root>@<its creation time>`): a database reset
    /// starts counting again from its own first episode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProjectProfile {
    /// Episodes per kind (`routed`, `corrected`, `completed`, `failed`).
    pub kinds: BTreeMap<String, u64>,
    pub successes: u64,
    pub failures: u64,
    /// Sum of quality ratings in thousandths, and how many were rated: mean = sum / count.
    pub quality_milli_sum: i64,
    pub quality_count: u64,
    /// Sum of work durations and how many had one: a running mean.
    pub duration_ms_sum: i64,
    pub duration_count: u64,
    /// Feedback that said the routing was right / wrong.
    pub routing_right: u64,
    pub routing_wrong: u64,
    /// Re-routes that brought work here / took work away.
    pub corrections_in: u64,
    pub corrections_out: u64,
    /// Tags and title keywords of the work that came here, all counts kept so merging is exact
    /// (pages show the top few).
    pub tags: BTreeMap<String, u64>,
    pub keywords: BTreeMap<String, u64>,
    /// The latest feedback notes and corrections, oldest first.
    pub feedback: Vec<FeedbackNote>,
    pub corrections: Vec<Correction>,
    pub last_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackNote {
    pub seq: i64,
    pub at: String,
    pub task_id: String,
    pub title: String,
    /// Thousandths, like the sums.
    pub quality_milli: Option<i64>,
    pub routing_correct: Option<bool>,
    pub notes: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub seq: i64,
    pub at: String,
    pub task_id: String,
    pub title: String,
    pub from: Option<String>,
    pub to: String,
    pub notes: Option<String>,
}

impl RoutingProfile {
    pub fn new() -> Self {
        RoutingProfile {
            version: PROFILE_VERSION,
            ..Default::default()
        }
    }

    /// Folds one episode in. Callers feed episodes in `seq` order, above the watermark.
    pub fn add(&mut self, e: &Episode) {
        self.watermark = self.watermark.max(e.seq);
        self.episodes += 1;
        let at = millis_to_rfc3339(e.at);
        // RFC 3339 UTC with fixed millisecond precision sorts as text in time order.
        if self.first_at.as_ref().is_none_or(|f| at < *f) {
            self.first_at = Some(at.clone());
        }
        if self.last_at.as_ref().is_none_or(|l| at > *l) {
            self.last_at = Some(at.clone());
        }
        if e.kind == EpisodeKind::Corrected
            && let Some(from) = e.from_project.as_deref()
            && e.project.as_deref() != Some(from)
        {
            let p = self.projects.entry(from.to_string()).or_default();
            p.corrections_out += 1;
            push_recent(&mut p.corrections, correction(e, &at));
            p.touch(&at);
        }
        let Some(project) = e.project.as_deref() else {
            self.unassigned += 1;
            return;
        };
        let p = self.projects.entry(project.to_string()).or_default();
        p.touch(&at);
        *p.kinds.entry(e.kind.as_str().to_string()).or_default() += 1;
        match e.kind {
            EpisodeKind::Routed => p.count_work(e),
            EpisodeKind::Corrected => {
                p.corrections_in += 1;
                p.count_work(e);
                push_recent(&mut p.corrections, correction(e, &at));
            }
            EpisodeKind::Completed => p.successes += 1,
            EpisodeKind::Failed => p.failures += 1,
        }
        if let Some(q) = e.quality.filter(|q| q.is_finite()) {
            p.quality_milli_sum += milli(q);
            p.quality_count += 1;
        }
        if let Some(d) = e.duration_ms.filter(|d| *d >= 0) {
            p.duration_ms_sum = p.duration_ms_sum.saturating_add(d);
            p.duration_count += 1;
        }
        match e.routing_correct {
            Some(true) => p.routing_right += 1,
            Some(false) => p.routing_wrong += 1,
            None => {}
        }
        let notes = e.notes.as_deref().map(str::trim).unwrap_or_default();
        if e.kind != EpisodeKind::Corrected && (!notes.is_empty() || e.quality.is_some()) {
            push_recent(
                &mut p.feedback,
                FeedbackNote {
                    seq: e.seq,
                    at,
                    task_id: e.task_id.clone(),
                    title: e.title.clone(),
                    quality_milli: e.quality.filter(|q| q.is_finite()).map(milli),
                    routing_correct: e.routing_correct,
                    notes: notes.to_string(),
                },
            );
        }
    }
}

impl ProjectProfile {
    fn touch(&mut self, at: &str) {
        if self.last_at.as_deref().is_none_or(|l| at > l) {
            self.last_at = Some(at.to_string());
        }
    }

    /// Work arriving here (routed or corrected to): what kind of work it is.
    fn count_work(&mut self, e: &Episode) {
        let tags: BTreeSet<String> = e
            .tags
            .iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        for t in tags {
            *self.tags.entry(t).or_default() += 1;
        }
        for w in keywords(&e.title) {
            *self.keywords.entry(w).or_default() += 1;
        }
    }

    /// Completed and failed work.
    pub fn finished(&self) -> u64 {
        self.successes + self.failures
    }

    /// Successes over finished work, `None` before any finished.
    pub fn success_rate(&self) -> Option<f64> {
        let n = self.finished();
        (n > 0).then(|| self.successes as f64 / n as f64)
    }

    pub fn mean_quality(&self) -> Option<f64> {
        (self.quality_count > 0)
            .then(|| self.quality_milli_sum as f64 / MILLI / self.quality_count as f64)
    }

    pub fn mean_duration_ms(&self) -> Option<i64> {
        (self.duration_count > 0).then(|| self.duration_ms_sum / self.duration_count as i64)
    }

    /// The `n` largest counts, ties by name, so pages never depend on map order.
    pub fn top(counts: &BTreeMap<String, u64>, n: usize) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = counts.iter().map(|(k, c)| (k.as_str(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v.truncate(n);
        v
    }
}

/// A title's keywords: lower-case words of 3+ letters, not stop words, each once.
pub fn keywords(title: &str) -> BTreeSet<String> {
    title
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

fn milli(q: f64) -> i64 {
    (q * MILLI).round() as i64
}

fn correction(e: &Episode, at: &str) -> Correction {
    Correction {
        seq: e.seq,
        at: at.to_string(),
        task_id: e.task_id.clone(),
        title: e.title.clone(),
        from: e.from_project.clone(),
        to: e.project.clone().unwrap_or_default(),
        notes: e.notes.clone().filter(|n| !n.trim().is_empty()),
    }
}

/// Keeps the latest `KEEP_RECENT` by (time, seq): a total order, so the result does not depend
/// on how the episodes were split between runs.
fn push_recent<T: Recent>(list: &mut Vec<T>, item: T) {
    if list.iter().any(|x| x.key() == item.key()) {
        return;
    }
    list.push(item);
    list.sort_by(|a, b| a.key().cmp(&b.key()));
    if list.len() > KEEP_RECENT {
        list.drain(..list.len() - KEEP_RECENT);
    }
}

trait Recent {
    fn key(&self) -> (&str, i64);
}

impl Recent for FeedbackNote {
    fn key(&self) -> (&str, i64) {
        (&self.at, self.seq)
    }
}

impl Recent for Correction {
    fn key(&self) -> (&str, i64) {
        (&self.at, self.seq)
    }
}
