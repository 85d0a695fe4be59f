//! How a source is registered: a name, and a function that builds it from its config section.

use crate::{InboundSource, ReporterResult, Secret};

/// What a source's builder gets: its own config section (already `${VAR}`-expanded; `null`
/// when the config file has none) and the process environment, for secrets left unset there.
pub struct SourceSettings<'a> {
    pub section: &'a serde_json::Value,
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
}

impl SourceSettings<'_> {
    /// The section as the source's typed config; errors name the key (`a.b: reason`).
    pub fn parse<T: serde::de::DeserializeOwned + Default>(&self) -> Result<T, String> {
        if self.section.is_null() {
            return Ok(T::default());
        }
        serde_path_to_error::deserialize(self.section).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            }
        })
    }

    /// A secret from the config, else from the environment variable `var`.
    pub fn secret(&self, configured: Option<Secret>, var: &str) -> Option<Secret> {
        configured
            .filter(|s| !s.expose().trim().is_empty())
            .or_else(|| Secret::non_empty((self.env)(var)))
    }
}

/// What a source's builder returns: its endpoints, or the reason its config is wrong.
pub type BuildResult = Result<Vec<Box<dyn InboundSource>>, String>;

/// One registration line: `Plugin { name: "github", build: github::build }`.
pub struct Plugin {
    /// The key of its section under `inbound:` in the config.
    pub name: &'static str,
    /// Builds the source's endpoints (a source may have several, e.g. Slack's events and
    /// commands, or one per configured generic HTTP source).
    pub build: fn(&SourceSettings<'_>) -> BuildResult,
    /// Builds its reporter from its `reports.<name>` section, if it reports back.
    pub reporter: Option<fn(&SourceSettings<'_>) -> ReporterResult>,
}
