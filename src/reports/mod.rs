//! Reports back to where tasks came from: a GitHub comment, a GitLab note, a Slack thread
//! reply, an email reply (the integrations' [`Reporter`]s), when a task is routed, claimed,
//! completed or failed, per `reports:` in the root config.
//!
//! They ride the outbound machinery: the task outbox records the change in the same
//! transaction as the change itself, the dispatcher turns it into a `deliveries` row for the
//! pseudo-executor `report:<kind>` (`plan.rs`, rendered then), and the report worker
//! (`worker.rs`) sends it with the outbound retry schedule, honouring the remote's
//! `Retry-After`. So reports are durable, retried, never block or fail the task, and show in
//! `hopper deliveries list|show|retry`.

mod plan;
mod render;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use hopper_integration_api::{Reporter, SourceSettings};

pub use plan::plan;
pub use render::render;
pub use worker::run;

/// The `executor_id` of a report row: `report:github`.
pub const PREFIX: &str = "report:";

/// The configured reporters, by source kind.
#[derive(Default)]
pub struct Reporters {
    by_kind: BTreeMap<&'static str, Arc<dyn Reporter>>,
}

impl Reporters {
    /// Builds every integration's reporter from its `reports.<name>` section and the
    /// environment; an integration without credentials has none.
    pub fn build(config: &crate::config::ReportsConfig) -> Result<Self, String> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mut by_kind = BTreeMap::new();
        for plugin in crate::inbound::registry::plugins() {
            let Some(build) = plugin.reporter else {
                continue;
            };
            let section = config.connection(plugin.name);
            let settings = SourceSettings {
                section: &section,
                env: &env,
            };
            let built = build(&settings).map_err(|e| format!("reports.{}: {e}", plugin.name))?;
            // A bad policy is a start-up error too, not a surprise at the first report.
            config
                .policy(plugin.name, None)
                .map_err(|e| format!("reports.{}: {e}", plugin.name))?;
            if let Some(r) = built {
                by_kind.insert(r.kind(), Arc::from(r));
            }
        }
        Ok(Self { by_kind })
    }

    pub fn from_list(list: Vec<Arc<dyn Reporter>>) -> Self {
        Self {
            by_kind: list.into_iter().map(|r| (r.kind(), r)).collect(),
        }
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Reporter>> {
        self.by_kind.get(kind)
    }

    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.by_kind.keys().copied().collect()
    }
}
