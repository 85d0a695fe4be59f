//! Configuration: the design's YAML files, layered as built-in defaults → file → `HOPPER_*`
//! environment → command-line flags. Every key has a default, so no file is needed at all.

mod intelligence;
mod load;
mod outbound;
mod redact;
mod reports;
mod retention;
mod rules;
mod sync;
mod types;

pub use intelligence::{
    Complexity, DecomposeLimits, DecomposeMode, IntelligenceConfig, IntelligenceProvider,
    LlmConfig, ProviderKind, SageConfig,
};
pub use load::{ConfigError, ConfigSet, Overrides};
pub use outbound::OutboundConfig;
pub use redact::{MASK, is_secret_key, mask_url_passwords, redact_json};
pub use reports::{ReportPolicy, ReportsConfig};
pub use retention::Retention;
pub use rules::{ProjectRule, RoutingRules};
pub use sync::{ProjectSync, SyncConfig, SyncMode};
pub use types::*;
