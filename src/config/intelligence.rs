//! `intelligence:`: how an instance decides where a task goes. On the global instance that is
//! a chain of providers (`providers: [rules, llm, capabilities]`); the design's single
//! `provider:` key still works and names a chain of its own (see [`IntelligenceConfig::chain`]).

use serde::{Deserialize, Serialize};

use super::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntelligenceProvider {
    Rules,
    SimplePriority,
    Llm,
    Sage,
    /// The design's "rules when simple, LLM when complex".
    Hybrid,
}

/// One link of the global instance's routing chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Rules,
    Capabilities,
    Llm,
    Sage,
    /// Where similar past tasks went well (`src/routing/memory.rs`); first in the default
    /// chain when `memory.learning` is on.
    Memory,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Rules => "rules",
            ProviderKind::Capabilities => "capabilities",
            ProviderKind::Llm => "llm",
            ProviderKind::Sage => "sage",
            ProviderKind::Memory => "memory",
        }
    }
}

/// How an orchestration run gets its phases and tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecomposeMode {
    /// The fixed `orchestration.phases` template.
    #[default]
    Template,
    /// Ask the LLM for phases and subtasks; an invalid answer falls back to the template.
    Llm,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntelligenceConfig {
    pub provider: IntelligenceProvider,
    /// The chain, first to last; overrides what `provider` implies.
    #[serde(default)]
    pub providers: Option<Vec<ProviderKind>>,
    /// The LLM's model (`HOPPER_LLM_MODEL` when unset).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Rules file, relative to the config file's folder.
    #[serde(default)]
    pub config_file: Option<String>,
    /// A provider's decision below this confidence passes the task to the next provider.
    #[serde(default = "default_min_confidence")]
    pub min_confidence: f64,
    /// How often the rules file is checked for changes (0: never reloaded).
    #[serde(default = "default_reload")]
    pub rules_reload_seconds: u64,
    #[serde(default)]
    pub llm: LlmConfig,
    #[serde(default)]
    pub sage: SageConfig,
    /// `intelligence.memory`: the `memory` provider's own settings.
    #[serde(default)]
    pub memory: MemoryRoutingConfig,
    #[serde(default)]
    pub decompose: DecomposeMode,
    #[serde(default)]
    pub decompose_limits: DecomposeLimits,
}

fn default_min_confidence() -> f64 {
    0.5
}

fn default_reload() -> u64 {
    2
}

impl IntelligenceConfig {
    pub fn new(provider: IntelligenceProvider) -> Self {
        Self {
            provider,
            providers: None,
            model: None,
            temperature: None,
            config_file: None,
            min_confidence: default_min_confidence(),
            rules_reload_seconds: default_reload(),
            llm: LlmConfig::default(),
            sage: SageConfig::default(),
            memory: MemoryRoutingConfig::default(),
            decompose: DecomposeMode::default(),
            decompose_limits: DecomposeLimits::default(),
        }
    }

    /// The global instance's chain: `providers` when given, else what `provider` names
    /// (`llm` and `sage` ask first and fall back to rules, `hybrid` asks rules first and the
    /// LLM only for what rules cannot place).
    pub fn chain(&self) -> Vec<ProviderKind> {
        use ProviderKind as P;
        if let Some(p) = &self.providers {
            return p.clone();
        }
        match self.provider {
            IntelligenceProvider::Rules | IntelligenceProvider::SimplePriority => vec![P::Rules],
            IntelligenceProvider::Llm => vec![P::Llm, P::Rules],
            IntelligenceProvider::Sage => vec![P::Sage, P::Rules],
            IntelligenceProvider::Hybrid => vec![P::Rules, P::Llm, P::Capabilities],
        }
    }

    /// The chain with `memory.learning` applied: when `providers` is not given, learning puts
    /// `memory` first (past outcomes before rules); an explicit `providers` list is taken as
    /// written, so `memory` goes where it names it or nowhere.
    pub fn chain_learning(&self, learning: bool) -> Vec<ProviderKind> {
        let mut chain = self.chain();
        if learning && self.providers.is_none() && !chain.contains(&ProviderKind::Memory) {
            chain.insert(0, ProviderKind::Memory);
        }
        chain
    }
}

/// `intelligence.llm`: an OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// e.g. `https://api.openai.com/v1` (`HOPPER_LLM_BASE_URL` when unset). Unset: the `llm`
    /// provider abstains, saying so, and the chain goes on.
    pub base_url: Option<String>,
    /// Better from the environment: `HOPPER_LLM_API_KEY`.
    pub api_key: Option<Secret>,
    pub timeout_ms: u64,
    pub max_tokens: u32,
    /// Asks for `response_format: json_object` (turn off for servers that refuse it).
    pub json_mode: bool,
    /// Questions in flight at once; more wait in a queue of `max_queue`, beyond which the
    /// provider abstains at once (routing never waits on an unbounded line).
    pub max_concurrency: usize,
    pub max_queue: usize,
    /// The most projects one prompt lists (the most relevant first).
    pub max_prompt_projects: usize,
    /// Overrides `intelligence.min_confidence` for this provider.
    pub min_confidence: Option<f64>,
    /// The complexity test: when any of these is set, the LLM is asked only about a task that
    /// passes one of them (long enough, a listed tag, a listed word).
    pub when: Complexity,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            base_url: None,
            api_key: None,
            timeout_ms: 10_000,
            max_tokens: 400,
            json_mode: true,
            max_concurrency: 4,
            max_queue: 1_000,
            max_prompt_projects: 100,
            min_confidence: None,
            when: Complexity::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Complexity {
    /// Title plus description at least this many characters long (0: not a criterion).
    pub min_length: usize,
    pub tags: Vec<String>,
    pub keywords: Vec<String>,
}

impl Complexity {
    pub fn is_set(&self) -> bool {
        self.min_length > 0 || !self.tags.is_empty() || !self.keywords.is_empty()
    }
}

/// `intelligence.sage`: an external HTTP decider (contract in the README).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SageConfig {
    pub url: Option<String>,
    /// A `whsec_` secret the requests are signed with, as outbound webhooks are.
    pub secret: Option<Secret>,
    pub timeout_ms: u64,
    pub max_concurrency: usize,
    pub max_queue: usize,
    pub min_confidence: Option<f64>,
}

impl Default for SageConfig {
    fn default() -> Self {
        Self {
            url: None,
            secret: None,
            timeout_ms: 5_000,
            max_concurrency: 8,
            max_queue: 1_000,
            min_confidence: None,
        }
    }
}

/// `intelligence.memory`: the `memory` routing provider.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryRoutingConfig {
    /// Overrides `intelligence.min_confidence` for this provider.
    pub min_confidence: Option<f64>,
}

/// Bounds on an LLM decomposition: an answer beyond them is refused (template instead).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecomposeLimits {
    pub max_phases: usize,
    pub max_tasks_per_phase: usize,
}

impl Default for DecomposeLimits {
    fn default() -> Self {
        Self {
            max_phases: 6,
            max_tasks_per_phase: 8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_puts_memory_first_unless_the_chain_is_given() {
        use ProviderKind as P;
        let mut i = IntelligenceConfig::new(IntelligenceProvider::Hybrid);
        assert_eq!(i.chain_learning(false), [P::Rules, P::Llm, P::Capabilities]);
        assert_eq!(
            i.chain_learning(true),
            [P::Memory, P::Rules, P::Llm, P::Capabilities]
        );
        i.providers = Some(vec![P::Rules, P::Memory]);
        assert_eq!(i.chain_learning(true), [P::Rules, P::Memory]);
        i.providers = Some(vec![P::Rules]);
        assert_eq!(i.chain_learning(true), [P::Rules]);
    }
}
