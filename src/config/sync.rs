//! `sync:`: two-way issue sync per project (only read from the root instance's file). The
//! provider's connection (URL, token) is its `reports.<provider>` section or environment.
//!
//! ```yaml
//! sync:
//!   sark:
//!     provider: github            # or gitlab
//!     repository: acme/sark       # a GitLab project path on gitlab
//!     mode: bidirectional         # import | export | bidirectional
//!     labels: [hopper]            # put on exported issues; import takes only issues with one
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which way tasks and issues flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Issues there become the project's tasks; closing and reopening them there finishes and
    /// reopens the tasks; their labels are the tasks' tags and priority.
    Import,
    /// The project's tasks open issues there; finishing a task closes its issue.
    Export,
    /// Both.
    Bidirectional,
}

impl SyncMode {
    pub fn imports(self) -> bool {
        matches!(self, SyncMode::Import | SyncMode::Bidirectional)
    }

    pub fn exports(self) -> bool {
        matches!(self, SyncMode::Export | SyncMode::Bidirectional)
    }
}

/// One project's sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSync {
    /// `github` or `gitlab`.
    pub provider: String,
    pub repository: String,
    pub mode: SyncMode,
    /// Labels put on exported issues; import takes only issues carrying one of them (every
    /// issue of the repository when empty).
    #[serde(default)]
    pub labels: Vec<String>,
}

impl ProjectSync {
    /// Whether an issue with `labels` is one this sync imports.
    pub fn wants(&self, labels: &[String]) -> bool {
        self.labels.is_empty()
            || labels
                .iter()
                .any(|l| self.labels.iter().any(|w| w.eq_ignore_ascii_case(l)))
    }
}

/// `sync:`: project name → its sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SyncConfig(pub BTreeMap<String, ProjectSync>);

impl SyncConfig {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn project(&self, name: &str) -> Option<&ProjectSync> {
        self.0.get(name)
    }

    /// The project that imports issues of `repository` from `provider`, with its sync.
    pub fn importer(&self, provider: &str, repository: &str) -> Option<(&str, &ProjectSync)> {
        self.0
            .iter()
            .find(|(_, s)| {
                s.mode.imports()
                    && s.provider == provider
                    && s.repository.eq_ignore_ascii_case(repository)
            })
            .map(|(p, s)| (p.as_str(), s))
    }

    /// Start-up checks: known providers, a repository each, one project per repository.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for (project, s) in &self.0 {
            if !matches!(s.provider.as_str(), "github" | "gitlab") {
                return Err(format!(
                    "sync.{project}.provider: `{}` (expected github or gitlab)",
                    s.provider
                ));
            }
            if s.repository.trim().is_empty() || s.repository.contains("..") {
                return Err(format!("sync.{project}.repository: not a repository path"));
            }
            if !seen.insert((s.provider.clone(), s.repository.to_ascii_lowercase())) {
                return Err(format!(
                    "sync.{project}: {} {} is synced with another project already",
                    s.provider, s.repository
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> SyncConfig {
        serde_yaml::from_str(y).unwrap()
    }

    #[test]
    fn modes_labels_and_checks() {
        let c = parse(
            "sark: {provider: github, repository: acme/sark, mode: bidirectional, labels: [hopper]}\n\
             docs: {provider: gitlab, repository: grp/docs, mode: export}",
        );
        c.validate().unwrap();
        let (p, s) = c.importer("github", "ACME/sark").unwrap();
        assert_eq!(p, "sark");
        assert!(s.wants(&["Hopper".into()]) && !s.wants(&["bug".into()]));
        assert!(c.importer("gitlab", "grp/docs").is_none(), "export only");
        let twice = parse(
            "a: {provider: github, repository: acme/x, mode: import}\n\
             b: {provider: github, repository: acme/X, mode: export}",
        );
        assert!(twice.validate().unwrap_err().contains("another project"));
        let bad = parse("a: {provider: jira, repository: x, mode: import}");
        assert!(bad.validate().unwrap_err().contains("github or gitlab"));
        assert!(
            serde_yaml::from_str::<SyncConfig>("a: {provider: github, repository: x, mode: both}")
                .is_err()
        );
    }
}
