use std::path::{Path, PathBuf};

use serde_json::Value;

use super::redact::Expanded;
use super::{HopperConfig, MASK, RoutingRules, Secret, Storage, mask_url_passwords};
use crate::domain::Scope;

/// A configuration mistake, reported at start-up with the file, the key and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(file: &str, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Settings from the command line or `HOPPER_*` variables; they win over the file.
#[derive(Clone, Default)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub data_dir: Option<String>,
    pub bind: Option<String>,
    pub admin_token: Option<String>,
    /// `HOPPER_OUTBOUND_ALLOWLIST`: comma-separated hosts or CIDRs, added to the file's.
    pub outbound_allowlist: Vec<String>,
    /// `HOPPER_LLM_BASE_URL`, `HOPPER_LLM_API_KEY`, `HOPPER_LLM_MODEL`: used where the file
    /// sets none.
    pub llm_base_url: Option<String>,
    pub llm_api_key: Option<String>,
    pub llm_model: Option<String>,
}

/// The admin token and a database password must not reach a log line through `{:?}`.
impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self
            .database_url
            .as_deref()
            .map(|u| mask_url_passwords(u).unwrap_or_else(|| u.to_owned()));
        f.debug_struct("Overrides")
            .field("database_url", &url)
            .field("data_dir", &self.data_dir)
            .field("bind", &self.bind)
            .field("admin_token", &self.admin_token.as_ref().map(|_| MASK))
            .field("llm_base_url", &self.llm_base_url)
            .field("llm_api_key", &self.llm_api_key.as_ref().map(|_| MASK))
            .field("llm_model", &self.llm_model)
            .finish()
    }
}

impl Overrides {
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            database_url: var("HOPPER_DATABASE_URL"),
            data_dir: var("HOPPER_DATA_DIR"),
            bind: var("HOPPER_BIND"),
            admin_token: var("HOPPER_ADMIN_TOKEN"),
            outbound_allowlist: var("HOPPER_OUTBOUND_ALLOWLIST")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            llm_base_url: var("HOPPER_LLM_BASE_URL"),
            llm_api_key: var("HOPPER_LLM_API_KEY"),
            llm_model: var("HOPPER_LLM_MODEL"),
        }
    }
}

/// The root instance's configuration plus the templates its children are made from.
#[derive(Debug, Clone)]
pub struct ConfigSet {
    pub root: HopperConfig,
    pub project: HopperConfig,
    pub orchestration: HopperConfig,
    pub rules: RoutingRules,
    /// The rules file routing watches for edits (it may not exist yet); `None` for the
    /// built-in rules.
    pub rules_file: Option<PathBuf>,
    /// Where the root file was read from, if anywhere.
    pub source: Option<PathBuf>,
}

impl ConfigSet {
    /// Built-in defaults only: what `hopper serve` runs with when there is no file.
    pub fn defaults() -> Self {
        Self {
            root: HopperConfig::for_global(),
            project: HopperConfig::for_project(),
            orchestration: HopperConfig::for_orchestration(),
            rules: RoutingRules::default(),
            rules_file: None,
            source: None,
        }
    }

    /// What `hopper serve` runs with when there is no file: the defaults plus the design's
    /// routing rules (`config/project_routing_rules.yaml`, built in), so a fresh install
    /// routes the README's examples instead of leaving everything in triage.
    pub fn embedded() -> Self {
        Self {
            rules: RoutingRules::builtin(),
            ..Self::defaults()
        }
    }

    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut set = match path {
            None => Self::embedded(),
            Some(path) => Self::load_files(path)?,
        };
        set.apply(overrides);
        Ok(set)
    }

    fn load_files(path: &Path) -> Result<Self, ConfigError> {
        let root = load_file(path, None)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let project = match &root.child_instances.default_config {
            Some(file) => load_file(&dir.join(file), Some(Scope::Project))?,
            None => HopperConfig::for_project(),
        };
        let orchestration = match &project.child_instances.default_config {
            Some(file) => load_file(&dir.join(file), Some(Scope::Orchestration))?,
            None => HopperConfig::for_orchestration(),
        };
        let rules_file = project
            .intelligence
            .config_file
            .clone()
            .or_else(|| root.intelligence.config_file.clone())
            .unwrap_or_else(|| "project_routing_rules.yaml".into());
        let rules_path = dir.join(rules_file);
        let rules = if rules_path.exists() {
            RoutingRules::load(&rules_path)?
        } else {
            RoutingRules::default()
        };
        Ok(Self {
            root,
            project,
            orchestration,
            rules,
            rules_file: Some(rules_path),
            source: Some(path.to_owned()),
        })
    }

    fn apply(&mut self, o: &Overrides) {
        if let Some(url) = &o.database_url {
            let storage = if url.starts_with("sqlite:") {
                Storage::Sqlite
            } else {
                Storage::Postgresql
            };
            self.root.persistence.storage = storage;
            self.root.persistence.url = Some(url.clone());
            self.root.persistence.path = None;
            for key in ["storage", "url", "path"] {
                self.root.forget_expanded(&["persistence", key]);
            }
        }
        if let Some(dir) = &o.data_dir {
            self.root.server.data_dir = dir.clone();
            self.root.forget_expanded(&["server", "data_dir"]);
        }
        if let Some(bind) = &o.bind {
            self.root.server.bind = bind.clone();
            self.root.forget_expanded(&["server", "bind"]);
        }
        if let Some(token) = &o.admin_token {
            self.root.server.admin_token = Some(Secret::new(token.clone()));
            self.root.forget_expanded(&["server", "admin_token"]);
        }
        for cfg in [&mut self.root, &mut self.project] {
            let i = &mut cfg.intelligence;
            if i.llm.base_url.is_none() {
                i.llm.base_url = o.llm_base_url.clone();
            }
            if i.llm.api_key.is_none() {
                i.llm.api_key = o.llm_api_key.clone().map(Secret::new);
            }
            if i.model.is_none() {
                i.model = o.llm_model.clone();
            }
        }
        for entry in &o.outbound_allowlist {
            if !self.root.outbound.allowlist.contains(entry) {
                self.root.outbound.allowlist.push(entry.clone());
            }
        }
    }

    pub fn template(&self, scope: Scope) -> &HopperConfig {
        match scope {
            Scope::Global => &self.root,
            Scope::Project => &self.project,
            Scope::Orchestration => &self.orchestration,
        }
    }

    /// Features the config names that this build does not deliver yet: said out loud at
    /// start-up instead of being silently ignored.
    pub fn not_enabled_features(&self) -> Vec<String> {
        let mut out = Vec::new();
        for cfg in [&self.root, &self.project, &self.orchestration] {
            let who = cfg.scope.as_str();
            let chain = cfg.intelligence.chain();
            let i = &cfg.intelligence;
            if cfg.scope == Scope::Global {
                if chain.contains(&super::ProviderKind::Llm) && i.llm.base_url.is_none() {
                    out.push(format!(
                        "{who}: the llm routing provider has no intelligence.llm.base_url \
                         (or HOPPER_LLM_BASE_URL): it abstains and the next provider decides"
                    ));
                }
                if chain.contains(&super::ProviderKind::Sage) && i.sage.url.is_none() {
                    out.push(format!(
                        "{who}: the sage routing provider has no intelligence.sage.url: \
                         it abstains and the next provider decides"
                    ));
                }
            }
            let integ = &cfg.integrations;
            for (key, t) in [("github", &integ.github), ("gitlab", &integ.gitlab)] {
                if t.as_ref().is_some_and(|t| t.enabled) {
                    out.push(format!(
                        "{who}: integrations.{key} is not enabled in this build"
                    ));
                }
            }
        }
        out.dedup();
        out
    }
}

/// Reads one YAML file: `${VAR}` / `${VAR:-default}` expanded in every string, laid over the
/// scope's defaults, then checked key by key.
fn load_file(path: &Path, expect: Option<Scope>) -> Result<HopperConfig, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&file, "(file)", format!("cannot read: {e}")))?;
    let mut value: Value = serde_yaml::from_str(&text)
        .map_err(|e| ConfigError::new(&file, "(yaml)", e.to_string()))?;
    if value.is_null() {
        value = Value::Object(Default::default());
    }
    let expanded =
        expand_env(&mut value).map_err(|(key, reason)| ConfigError::new(&file, key, reason))?;
    let scope = match value.get("scope") {
        None => expect.unwrap_or(Scope::Global),
        Some(v) => v
            .as_str()
            .ok_or_else(|| "must be a string".to_owned())
            .and_then(|s| s.parse())
            .map_err(|reason| ConfigError::new(&file, "scope", reason))?,
    };
    if let Some(expected) = expect
        && scope != expected
    {
        return Err(ConfigError::new(
            &file,
            "scope",
            format!("this template is used for {expected} instances but says {scope}"),
        ));
    }
    let mut merged = serde_json::to_value(HopperConfig::for_scope(scope))
        .map_err(|e| ConfigError::new(&file, "(defaults)", e.to_string()))?;
    strip_redacted(&mut merged);
    merge(&mut merged, value);
    let mut config: HopperConfig = serde_path_to_error::deserialize(merged).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::new(&file, key, e.into_inner().to_string())
    })?;
    config
        .memory
        .validate()
        .map_err(|(key, reason)| ConfigError::new(&file, key, reason))?;
    config.expanded = expanded;
    Ok(config)
}

/// Overlays `over` on `base`: maps merge key by key, anything else replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Defaults never hold secrets; drop the placeholder a serialised `Secret` would leave.
fn strip_redacted(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| v.as_str() != Some(hopper_integration_api::secret::REDACTED));
            m.values_mut().for_each(strip_redacted);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_redacted),
        _ => {}
    }
}

/// Expands every string in place and says where each expanded value sits, with the text it
/// was written as: values from the environment are treated as secrets wherever they land.
fn expand_env(v: &mut Value) -> Result<Vec<Expanded>, (String, String)> {
    type Found = Vec<Expanded>;
    fn walk(
        v: &mut Value,
        path: &mut Vec<String>,
        found: &mut Found,
    ) -> Result<(), (String, String)> {
        match v {
            Value::String(s) if s.contains("${") => {
                let expanded = expand_str(s).map_err(|r| (path.join("."), r))?;
                // An unset variable with no default leaves the key unset, so its default applies.
                if expanded.is_empty() {
                    *v = Value::Null;
                } else {
                    let template = std::mem::replace(s, expanded);
                    found.push(Expanded {
                        path: path.clone(),
                        template,
                    });
                }
            }
            Value::Object(m) => {
                for (k, child) in m.iter_mut() {
                    path.push(k.clone());
                    walk(child, path, found)?;
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, child) in a.iter_mut().enumerate() {
                    path.push(i.to_string());
                    walk(child, path, found)?;
                    path.pop();
                }
            }
            _ => {}
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(v, &mut Vec::new(), &mut found)?;
    Ok(found)
}

/// `${NAME}` or `${NAME:-fallback}`; an unset `${NAME}` expands to nothing.
pub(crate) fn expand_str(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
        let inner = &after[..end];
        let (name, fallback) = match inner.split_once(":-") {
            Some((n, f)) => (n, Some(f)),
            None => (inner, None),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("`${{{inner}}}` is not a valid variable reference"));
        }
        match std::env::var(name).ok().filter(|v| !v.is_empty()) {
            Some(val) => out.push_str(&val),
            None => out.push_str(fallback.unwrap_or("")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variables_with_fallbacks() {
        assert_eq!(
            expand_str("a${HOPPER_TEST_SURELY_UNSET:-b}c").unwrap(),
            "abc"
        );
        assert_eq!(expand_str("${HOPPER_TEST_SURELY_UNSET}").unwrap(), "");
        assert!(expand_str("${oops").is_err());
        assert!(expand_str("${a b}").is_err());
    }

    #[test]
    fn expanded_values_are_shown_as_written_and_overrides_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("global.yaml");
        // PATH is set wherever tests run: a variable the test need not set itself.
        let yaml = "intelligence:\n  provider: rules\n  model: ${PATH}\n\
                    server:\n  bind: ${PATH:-127.0.0.1:1}\n  data_dir: ${PATH}\n\
                    persistence:\n  storage: sqlite\n  url: ${PATH}\n\
                    inbound:\n  github:\n    secret: ${PATH}\n";
        std::fs::write(&file, yaml).unwrap();
        let o = Overrides {
            database_url: Some("postgres://u:pw-9f@h/db".into()),
            admin_token: Some("tok-9f".into()),
            ..Overrides::default()
        };
        let set = ConfigSet::load(Some(&file), &o).unwrap();
        let path = std::env::var("PATH").unwrap();
        assert_eq!(set.root.intelligence.model.as_deref(), Some(path.as_str()));
        let shown = set.root.registry_json();
        assert_eq!(shown["intelligence"]["model"], "${PATH}");
        assert_eq!(shown["server"]["bind"], "${PATH:-127.0.0.1:1}");
        assert_eq!(shown["server"]["data_dir"], "${PATH}");
        assert_eq!(shown["persistence"]["url"], "postgres://u:***@h/db");
        assert_eq!(shown["server"]["admin_token"], "***");
        assert_eq!(shown["inbound"]["github"]["secret"], "***");
        let debug = format!("{set:?} {o:?}");
        assert!(debug.contains("${PATH}"), "{debug}");
        assert!(
            !debug.contains("pw-9f") && !debug.contains("tok-9f"),
            "{debug}"
        );
    }

    #[test]
    fn merge_overlays_nested_maps() {
        let mut base = serde_json::json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge(&mut base, serde_json::json!({"a": {"b": 9}, "d": null}));
        assert_eq!(base, serde_json::json!({"a": {"b": 9, "c": 2}, "d": null}));
    }
}
