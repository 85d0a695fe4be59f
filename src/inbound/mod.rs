//! The inbound sources: which exist (built from the root config's `inbound:` section by the
//! plugins in `registry.rs`), and what the core keeps of what they deliver. Events come in by
//! the gateway's doors (HTTP webhooks, SMTP) and are read again by [`replay`]. It knows
//! neither the doors nor the REST API: they both use it.

pub(crate) mod registry;
mod replay;

pub use replay::replay;

use std::collections::HashMap;
use std::sync::Arc;

use hopper_integration_api::{InboundSource, SourceSettings};

use crate::config::{ConfigError, ConfigSet};
use crate::domain::InstanceId;

/// Headers never stored with an event: credentials and signatures.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-gitlab-token",
    "x-slack-signature",
    "webhook-signature",
];

/// Every configured inbound source, by the path it listens on below `/webhooks/`.
#[derive(Clone, Default)]
pub struct Sources {
    by_path: HashMap<String, Arc<dyn InboundSource>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("paths", &self.paths())
            .finish()
    }
}

impl Sources {
    /// Builds every source from the root config's `inbound:` section (and the environment,
    /// for secrets). Every registered source is built, configured or not (one without a
    /// secret refuses what it is sent). An unknown section or a bad key fails with the file,
    /// key and reason.
    pub fn from_configs(configs: &ConfigSet) -> Result<Self, ConfigError> {
        let env = |k: &str| std::env::var(k).ok();
        Self::build(configs, &env)
    }

    pub fn build(
        configs: &ConfigSet,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Self, ConfigError> {
        let file = configs
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(defaults)".into());
        let plugins = registry::plugins();
        let inbound = &configs.root.inbound;
        if let Some(unknown) = inbound
            .keys()
            .find(|k| !plugins.iter().any(|p| p.name == *k))
        {
            let known: Vec<_> = plugins.iter().map(|p| p.name).collect();
            return Err(ConfigError::new(
                &file,
                format!("inbound.{unknown}"),
                format!("unknown source (known: {})", known.join(", ")),
            ));
        }
        let mut by_path: HashMap<String, Arc<dyn InboundSource>> = HashMap::new();
        let null = serde_json::Value::Null;
        for plugin in plugins {
            let section = inbound.get(plugin.name).unwrap_or(&null);
            let settings = SourceSettings { section, env };
            let sources = (plugin.build)(&settings).map_err(|reason| {
                let (key, reason) = match reason.split_once(": ") {
                    Some((k, r)) if !k.contains(' ') => {
                        (format!("inbound.{}.{k}", plugin.name), r.to_owned())
                    }
                    _ => (format!("inbound.{}", plugin.name), reason),
                };
                ConfigError::new(&file, key, reason)
            })?;
            for s in sources {
                if let Some(instance) = s.instance()
                    && let Err(e) = InstanceId::parse(instance)
                {
                    return Err(ConfigError::new(
                        &file,
                        format!("inbound.{}.instance", plugin.name),
                        e,
                    ));
                }
                by_path.insert(s.path().to_owned(), Arc::from(s));
            }
        }
        Ok(Self { by_path })
    }

    /// The source listening at `path` (below `/webhooks/`, slashes around it ignored).
    pub fn source(&self, path: &str) -> Option<Arc<dyn InboundSource>> {
        self.by_path.get(path.trim_matches('/')).cloned()
    }

    pub fn paths(&self) -> Vec<String> {
        let mut p: Vec<_> = self.by_path.keys().cloned().collect();
        p.sort();
        p
    }

    /// The largest body any source accepts (0 without sources).
    pub fn largest_body(&self) -> usize {
        self.by_path
            .values()
            .map(|s| s.max_body_bytes())
            .max()
            .unwrap_or(0)
    }
}

/// The headers kept with an event: all but credentials and signatures.
pub fn kept_headers(pairs: &[(String, String)]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .filter(|(k, _)| !SECRET_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map)
}

/// The instance a source's tasks go to (`None`: the root). [`Sources::build`] refused a bad
/// one at start-up; the SMTP door builds its email source on its own, so it checks too.
pub fn instance_of(source: &dyn InboundSource) -> Result<Option<InstanceId>, String> {
    source.instance().map(InstanceId::parse).transpose()
}
