use hopper_integration_api::Secret;
use hopper_integration_api::text::Mapping;
use serde::Deserialize;

/// `inbound.github` in the config. Every key has a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GithubConfig {
    /// The webhook secret; else `HOPPER_GITHUB_WEBHOOK_SECRET`.
    pub secret: Option<Secret>,
    /// Instance the tasks go to (default: the root instance).
    pub instance: Option<String>,
    /// GitHub caps payloads at 25 MB.
    pub max_body_bytes: usize,
    /// `issues` actions that create a task.
    pub issue_actions: Vec<String>,
    /// `issues.labeled` creates a task only for these labels.
    pub trigger_labels: Vec<String>,
    /// `pull_request` actions that create a task.
    pub pull_request_actions: Vec<String>,
    /// A comment starting with this creates a task (`/hopper fix the flaky test`).
    pub command: String,
    /// Failed `workflow_run` / `check_suite` runs create a task.
    pub ci_failures: bool,
    pub mapping: Mapping,
}

impl Default for GithubConfig {
    fn default() -> Self {
        Self {
            secret: None,
            instance: None,
            max_body_bytes: 25 * 1024 * 1024,
            issue_actions: vec!["opened".into(), "reopened".into(), "labeled".into()],
            trigger_labels: vec!["hopper".into()],
            pull_request_actions: vec!["opened".into(), "review_requested".into()],
            command: "/hopper".into(),
            ci_failures: true,
            mapping: Mapping::default(),
        }
    }
}
