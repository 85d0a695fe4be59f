//! The global instance's routing chain: providers asked in order, the first that decides with
//! enough confidence wins, every turn recorded. Nothing decided → `default_project` when the
//! rules name one, else the global triage queue.
//!
//! A provider that must ask something (a model, a remote decider) says so by returning `None`
//! from [`Provider::decide_now`]; the chain then cannot decide at once and the task is routed
//! after the sender has its answer (the inbound path's deferred routing), so a slow LLM never
//! holds up ingest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::explain::{Alternative, Explanation, Step, StepOutcome};
use super::live_rules::LiveRules;
use super::{Projects, Route, Router, RoutingDecision};
use crate::domain::{Scope, TaskDraft};

/// A provider's choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub project: String,
    pub confidence: f64,
    pub reason: String,
    pub needs_orchestration: bool,
    pub alternatives: Vec<Alternative>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Decided(Choice),
    Abstained(String),
}

/// What a provider said, and for a remote one what it was asked and answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub verdict: Verdict,
    pub trace: Option<serde_json::Value>,
}

impl Answer {
    pub fn abstain(reason: impl Into<String>) -> Self {
        Self {
            verdict: Verdict::Abstained(reason.into()),
            trace: None,
        }
    }

    pub fn decided(choice: Choice) -> Self {
        Self {
            verdict: Verdict::Decided(choice),
            trace: None,
        }
    }
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// The name in config and explanations (`rules`, `llm`, ...).
    fn kind(&self) -> &'static str;

    /// Its own minimum confidence, overriding the chain's.
    fn min_confidence(&self) -> Option<f64> {
        None
    }

    /// The answer without waiting on anything, or `None` when it has to ask.
    fn decide_now(&self, task: &TaskDraft, projects: &Projects) -> Option<Answer>;

    async fn decide(&self, task: &TaskDraft, projects: &Projects) -> Answer {
        self.decide_now(task, projects)
            .unwrap_or_else(|| Answer::abstain("could not decide"))
    }
}

pub struct Chain {
    providers: Vec<Arc<dyn Provider>>,
    min_confidence: f64,
    rules: LiveRules,
}

impl Chain {
    pub fn new(providers: Vec<Arc<dyn Provider>>, min_confidence: f64, rules: LiveRules) -> Self {
        Self {
            providers,
            min_confidence,
            rules,
        }
    }

    /// The providers' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.providers.iter().map(|p| p.kind()).collect()
    }

    /// Records `answer` as a step; the decision when it wins.
    fn take(
        &self,
        p: &dyn Provider,
        answer: Answer,
        took: Duration,
        steps: &mut Vec<Step>,
    ) -> Option<Choice> {
        let min = p.min_confidence().unwrap_or(self.min_confidence);
        let latency_us = took.as_micros().min(u64::MAX as u128) as u64;
        let (outcome, choice, reason) = match answer.verdict {
            Verdict::Abstained(reason) => (StepOutcome::Abstained, None, reason),
            Verdict::Decided(c) if c.confidence < min => {
                let reason = format!(
                    "{} (confidence {:.2} below {min:.2})",
                    c.reason, c.confidence
                );
                (StepOutcome::BelowThreshold, Some(c), reason)
            }
            Verdict::Decided(c) => (StepOutcome::Decided, Some(c.clone()), c.reason),
        };
        let label = match outcome {
            StepOutcome::Decided => "decided",
            StepOutcome::Abstained => "abstained",
            StepOutcome::BelowThreshold => "below_threshold",
        };
        metrics::histogram!("hopper_routing_provider_seconds", "provider" => p.kind(), "outcome" => label)
            .record(took.as_secs_f64());
        steps.push(Step {
            provider: p.kind().to_owned(),
            outcome,
            project: choice.as_ref().map(|c| c.project.clone()),
            confidence: choice.as_ref().map(|c| c.confidence),
            reason,
            alternatives: choice
                .as_ref()
                .map(|c| c.alternatives.clone())
                .unwrap_or_default(),
            latency_us,
            trace: answer.trace,
        });
        choice.filter(|_| outcome == StepOutcome::Decided)
    }

    fn won(&self, by: &'static str, c: Choice, steps: Vec<Step>) -> RoutingDecision {
        RoutingDecision {
            route: Route::Project(c.project),
            confidence: c.confidence,
            reasoning: format!("{by}: {}", c.reason),
            decided_by: by,
            needs_orchestration: c.needs_orchestration,
            explanation: Some(Arc::new(Explanation { chain: steps })),
        }
    }

    /// Nobody decided: the default project, else triage, with every provider's reason.
    fn nobody(&self, steps: Vec<Step>) -> RoutingDecision {
        let why = steps
            .iter()
            .map(|s| format!("{}: {}", s.provider, s.reason))
            .collect::<Vec<_>>()
            .join("; ");
        let why = if why.is_empty() {
            "no routing provider is configured".to_owned()
        } else {
            format!("no provider decided ({why})")
        };
        let explanation = Some(Arc::new(Explanation { chain: steps }));
        match self.rules.load().rules.default_project.clone() {
            Some(project) => RoutingDecision {
                route: Route::Project(project.clone()),
                confidence: 0.5,
                reasoning: format!("{why}; default_project `{project}`"),
                decided_by: "default_project",
                needs_orchestration: false,
                explanation,
            },
            None => RoutingDecision {
                route: Route::Triage,
                confidence: 0.0,
                reasoning: why,
                decided_by: "chain",
                needs_orchestration: false,
                explanation,
            },
        }
    }
}

/// A task that names its project goes there: the caller decided.
fn explicit(task: &TaskDraft) -> Option<RoutingDecision> {
    let p = task.project.as_ref()?;
    let mut d = RoutingDecision::new(
        Route::Project(p.clone()),
        1.0,
        "explicit project assignment",
        "request",
    );
    d.explanation = Some(Arc::new(Explanation {
        chain: vec![Step {
            provider: "request".into(),
            outcome: StepOutcome::Decided,
            project: Some(p.clone()),
            confidence: Some(1.0),
            reason: "explicit project assignment".into(),
            alternatives: vec![],
            latency_us: 0,
            trace: None,
        }],
    }));
    Some(d)
}

#[async_trait]
impl Router for Chain {
    async fn route(&self, _scope: Scope, task: &TaskDraft, projects: &Projects) -> RoutingDecision {
        if let Some(d) = explicit(task) {
            return d;
        }
        let mut steps = Vec::with_capacity(self.providers.len());
        for p in &self.providers {
            let started = Instant::now();
            let answer = p.decide(task, projects).await;
            if let Some(c) = self.take(p.as_ref(), answer, started.elapsed(), &mut steps) {
                return self.won(p.kind(), c, steps);
            }
        }
        self.nobody(steps)
    }

    fn decide_now(
        &self,
        _scope: Scope,
        task: &TaskDraft,
        projects: &Projects,
    ) -> Option<RoutingDecision> {
        if let Some(d) = explicit(task) {
            return Some(d);
        }
        let mut steps = Vec::with_capacity(self.providers.len());
        for p in &self.providers {
            let started = Instant::now();
            let answer = p.decide_now(task, projects)?;
            if let Some(c) = self.take(p.as_ref(), answer, started.elapsed(), &mut steps) {
                return Some(self.won(p.kind(), c, steps));
            }
        }
        Some(self.nobody(steps))
    }
}
