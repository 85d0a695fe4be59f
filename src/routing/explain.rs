//! A routing decision's explanation: each provider of the chain, in order, with what it said.
//! Kept in the task's history (`routed` / `routing` events), shown by `hopper explain`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    /// This provider's choice won.
    Decided,
    /// It made no choice, saying why.
    Abstained,
    /// It chose, below its minimum confidence: the chain went on.
    BelowThreshold,
}

/// Another project a provider considered, with its score or confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Alternative {
    pub project: String,
    pub score: f64,
}

/// One provider's turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Step {
    pub provider: String,
    pub outcome: StepOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
    /// Microseconds this provider took.
    pub latency_us: u64,
    /// A remote provider's request and answer (for the LLM: the prompt and its reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub trace: Option<serde_json::Value>,
}

/// The chain as it ran.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Explanation {
    pub chain: Vec<Step>,
}

/// The head of a ranking — the winner and up to three alternatives — kept while candidates
/// stream past, and how many there were: what a provider's answer shows, without sorting every
/// candidate. With 1,000 projects a shared capability makes hundreds of candidates; sorting
/// them all was ~5% of a decision in `benches/routing.rs`.
pub(super) struct Top<T> {
    pub items: Vec<T>,
    pub count: usize,
}

impl<T> Top<T> {
    /// The winner and three alternatives.
    pub const KEEP: usize = 4;

    pub fn new() -> Self {
        Self {
            items: Vec::with_capacity(Self::KEEP + 1),
            count: 0,
        }
    }

    /// Adds `item`, ahead of the first kept item it `beats`; an item that beats none goes
    /// after them (so equal items keep the order they came in).
    pub fn offer(&mut self, item: T, beats: impl Fn(&T, &T) -> bool) {
        self.count += 1;
        let at = self
            .items
            .iter()
            .position(|old| beats(&item, old))
            .unwrap_or(self.items.len());
        if at < Self::KEEP {
            self.items.insert(at, item);
            self.items.truncate(Self::KEEP);
        }
    }
}
