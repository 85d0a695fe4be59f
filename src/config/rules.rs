use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `project_routing_rules.yaml`: how the global instance picks a project and how a project
/// instance decides between an orchestration run and a single assignee.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingRules {
    /// Where tasks go when no project scores above zero; unset leaves them in triage.
    pub default_project: Option<String>,
    pub projects: BTreeMap<String, ProjectRule>,
    pub orchestration: OrchestrationRule,
    /// Executor assigned to tasks that do not need orchestration; unset queues them for anyone.
    pub default_executor: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectRule {
    pub keywords: Vec<String>,
    pub tags: Vec<String>,
    pub capabilities: Vec<String>,
    /// Multiplier per tag, as in the specification's `priority_boost`.
    pub priority_boost: BTreeMap<String, f64>,
    /// Where tasks come from: `kind` or `kind:container`, e.g. `github`,
    /// `github:acme/sark`, `slack:C024BE91L`, `email:sark@example.com` (+4 each match).
    pub sources: Vec<String>,
    /// Priorities this project takes (`urgent`, `high`, ...): +1 when the task's is listed.
    pub priorities: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrchestrationRule {
    /// Any of these tags sends a project task to an orchestration run.
    pub tags: Vec<String>,
    /// Any of these words in title or description does too.
    pub keywords: Vec<String>,
}

/// The shipped rules file, compiled in for runs without a config file.
const BUILTIN: &str = include_str!("../../config/project_routing_rules.yaml");

impl RoutingRules {
    /// The shipped `project_routing_rules.yaml`. A unit test parses it, so the fallback to no
    /// rules cannot happen in a released build.
    pub fn builtin() -> Self {
        serde_yaml::from_str(BUILTIN).unwrap_or_default()
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            key: "(file)".into(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of the rules file at `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let err = |key: String, reason: String| ConfigError {
            file: file.clone(),
            key,
            reason,
        };
        let value: serde_json::Value =
            serde_yaml::from_str(text).map_err(|e| err("(yaml)".into(), e.to_string()))?;
        if value.is_null() {
            return Ok(Self::default());
        }
        serde_path_to_error::deserialize(value)
            .map_err(|e| err(e.path().to_string(), e.into_inner().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_rules_parse() {
        let parsed: Result<RoutingRules, _> = serde_yaml::from_str(BUILTIN);
        let rules = parsed.expect("the shipped rules file parses");
        assert!(rules.projects.contains_key("sark"));
        assert!(rules.orchestration.tags.iter().any(|t| t == "feature"));
    }
}
