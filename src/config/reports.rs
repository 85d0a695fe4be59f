//! `reports:`: telling a task's source what happened to it (only read from the root
//! instance's file). Each integration's sub-section (`reports.github`, `reports.gitlab`,
//! `reports.slack`, `reports.email`) holds its connection (URL, token: see the integration)
//! plus the policy keys below, which override the section's defaults; `projects` overrides
//! both per project.
//!
//! ```yaml
//! reports:
//!   on: [completed, failed]          # the default: with a token set, completions report
//!   github:
//!     token: ${GITHUB_TOKEN}
//!     on: [routed, completed, failed]
//!     labels: {routed: ["hopper:routed/{{ project }}"], completed: ["hopper:done"]}
//!     close_on_success: true
//!   projects:
//!     sark: {on: [routed, claimed, completed, failed]}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use hopper_integration_api::Moment;

/// The policy keys a sub-section may carry besides its connection.
pub const POLICY_KEYS: &[&str] = &["on", "templates", "labels", "close_on_success"];

/// What to report, and how it reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportPolicy {
    /// The moments reported (`routed`, `claimed`, `completed`, `failed`).
    pub on: Option<Vec<Moment>>,
    /// Message templates per moment (minijinja: `{{ project }}`, `{{ task.title }}`, ...).
    pub templates: BTreeMap<Moment, String>,
    /// Labels added per moment (templates too); `routed/...` labels of earlier moments are
    /// not removed.
    pub labels: BTreeMap<Moment, Vec<String>>,
    /// Close the issue or merge request when its task completes.
    pub close_on_success: Option<bool>,
}

impl ReportPolicy {
    /// `self` with what `over` sets on top.
    pub fn merged(&self, over: &ReportPolicy) -> ReportPolicy {
        let mut out = self.clone();
        if over.on.is_some() {
            out.on = over.on.clone();
        }
        for (m, t) in &over.templates {
            out.templates.insert(*m, t.clone());
        }
        for (m, l) in &over.labels {
            out.labels.insert(*m, l.clone());
        }
        if over.close_on_success.is_some() {
            out.close_on_success = over.close_on_success;
        }
        out
    }

    pub fn reports(&self, m: Moment) -> bool {
        match &self.on {
            Some(on) => on.contains(&m),
            None => matches!(m, Moment::Completed | Moment::Failed),
        }
    }
}

/// Read from one map: the policy keys, `projects`, and every other key an integration's
/// section (checked by its reporter's builder at start-up).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Value", into = "serde_json::Value")]
pub struct ReportsConfig {
    /// Defaults for every source.
    pub policy: ReportPolicy,
    /// Per project (`sark`), over the source's policy.
    pub projects: BTreeMap<String, ReportPolicy>,
    /// The integrations' sections, as written (connection and policy keys).
    pub sources: BTreeMap<String, serde_json::Value>,
}

impl TryFrom<serde_json::Value> for ReportsConfig {
    type Error = String;
    fn try_from(v: serde_json::Value) -> Result<Self, String> {
        let serde_json::Value::Object(mut m) = v else {
            return match v {
                serde_json::Value::Null => Ok(Self::default()),
                _ => Err("reports: expected a map".into()),
            };
        };
        let projects = match m.remove("projects") {
            Some(p) => serde_json::from_value(p).map_err(|e| format!("projects: {e}"))?,
            None => BTreeMap::new(),
        };
        let policy = source_policy(&serde_json::Value::Object(m.clone()))?;
        let sources = m
            .into_iter()
            .filter(|(k, _)| !POLICY_KEYS.contains(&k.as_str()))
            .collect();
        Ok(Self {
            policy,
            projects,
            sources,
        })
    }
}

impl From<ReportsConfig> for serde_json::Value {
    fn from(c: ReportsConfig) -> Self {
        let mut m = match serde_json::to_value(&c.policy) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        if !c.projects.is_empty() {
            m.insert(
                "projects".into(),
                serde_json::to_value(&c.projects).unwrap_or_default(),
            );
        }
        m.extend(c.sources);
        serde_json::Value::Object(m)
    }
}

impl ReportsConfig {
    /// The policy for a report from `source` about a task of `project`.
    pub fn policy(&self, source: &str, project: Option<&str>) -> Result<ReportPolicy, String> {
        let mut p = self.policy.clone();
        if let Some(section) = self.sources.get(source) {
            p = p.merged(&source_policy(section)?);
        }
        if let Some(over) = project.and_then(|n| self.projects.get(n)) {
            p = p.merged(over);
        }
        Ok(p)
    }

    /// A source's section without the policy keys: what its reporter builder reads.
    pub fn connection(&self, source: &str) -> serde_json::Value {
        match self.sources.get(source) {
            Some(serde_json::Value::Object(m)) => serde_json::Value::Object(
                m.iter()
                    .filter(|(k, _)| !POLICY_KEYS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            _ => serde_json::Value::Null,
        }
    }
}

/// The policy keys of a source's section.
fn source_policy(section: &serde_json::Value) -> Result<ReportPolicy, String> {
    let Some(m) = section.as_object() else {
        return Ok(ReportPolicy::default());
    };
    let only: serde_json::Map<String, serde_json::Value> = m
        .iter()
        .filter(|(k, _)| POLICY_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::from_value(serde_json::Value::Object(only)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_over_source_over_defaults() {
        let c: ReportsConfig = serde_yaml::from_str(
            "on: [completed]\n\
             github: {token: t, on: [routed, completed], close_on_success: true}\n\
             projects: {sark: {on: [failed]}}\n",
        )
        .unwrap();
        let p = c.policy("github", None).unwrap();
        assert!(p.reports(Moment::Routed) && p.close_on_success == Some(true));
        assert!(!c.policy("slack", None).unwrap().reports(Moment::Routed));
        let p = c.policy("github", Some("sark")).unwrap();
        assert!(p.reports(Moment::Failed) && !p.reports(Moment::Completed));
        assert_eq!(c.connection("github"), serde_json::json!({"token": "t"}));
        assert!(ReportPolicy::default().reports(Moment::Completed));
        assert!(!ReportPolicy::default().reports(Moment::Claimed));
    }
}
