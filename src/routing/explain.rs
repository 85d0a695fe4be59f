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
