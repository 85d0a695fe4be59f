//! The remote deciders as links of the chain: `llm` and `sage`. Neither can decide without
//! asking, so a chain that reaches one routes after the sender's answer; both abstain at once
//! (and so let the chain decide at once) when they are not configured, and the LLM when the
//! task fails the complexity test.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Projects;
use super::chain::{Answer, Choice, Provider};
use super::live_rules::LiveRules;
use super::llm::{LlmClient, LlmSettings};
use super::remote::{Candidate, Limits, RemoteOutcome, RouteRequest, TaskSummary};
use super::sage::{SageClient, SageSettings};
use crate::config::{Complexity, IntelligenceConfig};
use crate::domain::TaskDraft;

/// What the remote deciders are asked: the task with its source, and every project they may
/// choose: live ones (with executors) and those the rules name that have no instance yet.
pub fn route_request(task: &TaskDraft, projects: &Projects, rules: &LiveRules) -> RouteRequest {
    let mut summary = TaskSummary::from(task);
    summary.source = task
        .source
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok());
    let mut candidates: Vec<Candidate> = projects
        .iter()
        .map(|p| Candidate {
            name: p.name.clone(),
            capabilities: p.capabilities.clone(),
            executors: p.executors.iter().map(|e| e.name.clone()).collect(),
        })
        .collect();
    let compiled = rules.load();
    for (name, rule) in &compiled.rules.projects {
        if !projects.iter().any(|p| &p.name == name) {
            candidates.push(Candidate {
                name: name.clone(),
                capabilities: rule.capabilities.clone(),
                executors: vec![],
            });
        }
    }
    candidates.sort_by(|a, b| a.name.cmp(&b.name));
    RouteRequest {
        task: summary,
        projects: candidates,
    }
}

/// The complexity test: `Ok(why it is complex)` or `Err(why it is simple)`.
pub fn is_complex(when: &Complexity, task: &TaskDraft) -> Result<String, String> {
    if !when.is_set() {
        return Ok("no complexity test configured".into());
    }
    let len = task.title.chars().count() + task.description.chars().count();
    if when.min_length > 0 && len >= when.min_length {
        return Ok(format!("{len} characters (min_length {})", when.min_length));
    }
    if let Some(t) = task.tags.iter().find(|t| when.tags.contains(t)) {
        return Ok(format!("tag `{t}`"));
    }
    let text = format!("{} {}", task.title, task.description).to_lowercase();
    if let Some(k) = when
        .keywords
        .iter()
        .find(|k| text.contains(&k.to_lowercase()))
    {
        return Ok(format!("keyword `{k}`"));
    }
    Err(format!(
        "simple task ({len} characters, no listed tag or keyword): not asked"
    ))
}

fn answer_of(outcome: RemoteOutcome) -> Answer {
    match outcome {
        RemoteOutcome::Decided {
            project,
            confidence,
            reason,
            needs_orchestration,
            trace,
        } => Answer {
            verdict: super::Verdict::Decided(Choice {
                project,
                confidence,
                reason,
                needs_orchestration,
                alternatives: vec![],
            }),
            trace: serde_json::to_value(trace).ok(),
        },
        RemoteOutcome::Abstained { reason, trace } => Answer {
            verdict: super::Verdict::Abstained(reason),
            trace: trace.and_then(|t| serde_json::to_value(t).ok()),
        },
    }
}

/// `llm` in the chain.
pub struct LlmProvider {
    client: Result<LlmClient, String>,
    when: Complexity,
    min_confidence: Option<f64>,
    rules: LiveRules,
}

impl LlmProvider {
    /// From `intelligence:` (env fallbacks already applied). A missing base URL or a client
    /// that cannot be built leaves a provider that abstains with the reason.
    pub fn from_config(i: &IntelligenceConfig, rules: LiveRules) -> Self {
        let client = match &i.llm.base_url {
            None => {
                Err("not configured: set intelligence.llm.base_url or HOPPER_LLM_BASE_URL".into())
            }
            Some(url) => LlmClient::new(LlmSettings {
                base_url: url.clone(),
                api_key: i.llm.api_key.clone(),
                model: i.model.clone().unwrap_or_else(|| "gpt-4o-mini".into()),
                temperature: i.temperature.unwrap_or(0.2),
                timeout: Duration::from_millis(i.llm.timeout_ms.max(1)),
                max_tokens: i.llm.max_tokens,
                json_mode: i.llm.json_mode,
                limits: Limits {
                    max_concurrency: i.llm.max_concurrency.max(1),
                    max_queue: i.llm.max_queue,
                    // A turn no later than one answer's own deadline.
                    max_wait: Some(Duration::from_millis(i.llm.timeout_ms.max(1))),
                },
                max_prompt_projects: i.llm.max_prompt_projects,
            })
            .map_err(|e| format!("not usable: {e}")),
        };
        Self {
            client,
            when: i.llm.when.clone(),
            min_confidence: i.llm.min_confidence,
            rules,
        }
    }

    pub fn client(&self) -> Option<&LlmClient> {
        self.client.as_ref().ok()
    }

    /// The answer when it needs no question.
    fn at_once(&self, task: &TaskDraft) -> Option<Answer> {
        if let Err(why) = &self.client {
            return Some(Answer::abstain(why.clone()));
        }
        is_complex(&self.when, task).err().map(Answer::abstain)
    }
}

#[async_trait]
impl Provider for LlmProvider {
    fn kind(&self) -> &'static str {
        "llm"
    }

    fn min_confidence(&self) -> Option<f64> {
        self.min_confidence
    }

    fn decide_now(&self, task: &TaskDraft, _: &Projects) -> Option<Answer> {
        self.at_once(task)
    }

    async fn decide(&self, task: &TaskDraft, projects: &Projects) -> Answer {
        if let Some(a) = self.at_once(task) {
            return a;
        }
        let Ok(client) = &self.client else {
            return Answer::abstain("not configured");
        };
        answer_of(
            client
                .route(&route_request(task, projects, &self.rules))
                .await,
        )
    }
}

/// `sage` in the chain.
pub struct SageProvider {
    client: Result<Arc<SageClient>, String>,
    min_confidence: Option<f64>,
    rules: LiveRules,
}

impl SageProvider {
    pub fn from_config(i: &IntelligenceConfig, rules: LiveRules) -> Self {
        let s = &i.sage;
        let client = match &s.url {
            None => Err("not configured: set intelligence.sage.url".into()),
            Some(url) => SageClient::new(SageSettings {
                url: url.clone(),
                secret: s.secret.clone(),
                timeout: Duration::from_millis(s.timeout_ms.max(1)),
                limits: Limits {
                    max_concurrency: s.max_concurrency.max(1),
                    max_queue: s.max_queue,
                    max_wait: Some(Duration::from_millis(s.timeout_ms.max(1))),
                },
            })
            .map(Arc::new)
            .map_err(|e| format!("not usable: {e}")),
        };
        Self {
            client,
            min_confidence: s.min_confidence,
            rules,
        }
    }
}

#[async_trait]
impl Provider for SageProvider {
    fn kind(&self) -> &'static str {
        "sage"
    }

    fn min_confidence(&self) -> Option<f64> {
        self.min_confidence
    }

    fn decide_now(&self, _: &TaskDraft, _: &Projects) -> Option<Answer> {
        self.client
            .as_ref()
            .err()
            .map(|why| Answer::abstain(why.clone()))
    }

    async fn decide(&self, task: &TaskDraft, projects: &Projects) -> Answer {
        match &self.client {
            Err(why) => Answer::abstain(why.clone()),
            Ok(c) => answer_of(c.route(&route_request(task, projects, &self.rules)).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_complexity_test_asks_only_about_long_tagged_or_keyword_tasks() {
        let when = Complexity {
            min_length: 40,
            tags: vec!["architecture".into()],
            keywords: vec!["migrate".into()],
        };
        assert!(is_complex(&when, &TaskDraft::new("Fix typo")).is_err());
        assert!(
            is_complex(
                &when,
                &TaskDraft::new("Fix typo").with_tags(["architecture"])
            )
            .is_ok()
        );
        assert!(is_complex(&when, &TaskDraft::new("Migrate the store")).is_ok());
        let mut long = TaskDraft::new("Rework");
        long.description = "x".repeat(40);
        assert_eq!(
            is_complex(&when, &long),
            Ok("46 characters (min_length 40)".into())
        );
        assert!(is_complex(&Complexity::default(), &TaskDraft::new("x")).is_ok());
    }
}
