use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{IntelligenceConfig, IntelligenceProvider, Retention};
use crate::domain::Scope;

pub use hopper_integration_api::Secret;

/// One instance's configuration: the shape of `config/*.yaml`. `Debug` shows the redacted
/// registry form (see `registry_json`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HopperConfig {
    pub scope: Scope,
    /// May contain `{project_name}` and `{run_id}`.
    pub instance_id: String,
    #[serde(default)]
    pub parent: Option<String>,
    pub intelligence: IntelligenceConfig,
    pub memory: MemoryConfig,
    pub persistence: PersistenceConfig,
    pub integrations: IntegrationsConfig,
    pub child_instances: ChildInstancesConfig,
    pub tasks: TasksConfig,
    pub orchestration: OrchestrationConfig,
    /// Only read from the root instance's file.
    pub server: ServerConfig,
    /// Inbound sources (`github`, `gitlab`, `slack`, `email`, `http`), each section parsed by
    /// its integration. Only read from the root instance's file.
    #[serde(default)]
    pub inbound: std::collections::BTreeMap<String, serde_json::Value>,
    /// Deliveries to executors' webhooks. Only read from the root instance's file.
    #[serde(default)]
    pub outbound: super::OutboundConfig,
    /// Reports back to tasks' sources. Only read from the root instance's file.
    #[serde(default)]
    pub reports: super::ReportsConfig,
    /// Two-way issue sync per project. Only read from the root instance's file.
    #[serde(default)]
    pub sync: super::SyncConfig,
    /// The values the file wrote as `${VAR}`, so the registry never sees what they expand to.
    #[serde(skip)]
    pub(super) expanded: Vec<super::redact::Expanded>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    #[serde(default)]
    pub episodic: Option<BackendConfig>,
    #[serde(default)]
    pub consolidated: Option<BackendConfig>,
    #[serde(default)]
    pub learning: bool,
}

impl BackendConfig {
    /// `backend` with nothing else set (`null`, `git` at its default path, ...).
    pub fn named(backend: &str) -> Self {
        Self {
            backend: backend.into(),
            url: None,
            index: None,
            path: None,
            repository: None,
            consolidation_schedule: None,
            branch: None,
        }
    }
}

impl MemoryConfig {
    /// Whether episodes are recorded: unless `memory.episodic.backend` is `null`.
    pub fn episodic_enabled(&self) -> bool {
        self.episodic.as_ref().is_none_or(|b| b.backend != "null")
    }

    /// Start-up checks: `(key, reason)` of a backend this build does not have. Never a silent
    /// fallback: a config naming one refuses to start.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if let Some(b) = &self.episodic
            && !matches!(b.backend.as_str(), "sqlite" | "postgresql" | "null")
        {
            return Err((
                "memory.episodic.backend".into(),
                format!(
                    "`{}` is not in this build: episodes live in the instance's database                      (`sqlite` or `postgresql`), or nowhere (`null`)",
                    b.backend
                ),
            ));
        }
        if let Some(b) = &self.consolidated
            && !matches!(b.backend.as_str(), "git" | "gitlab")
        {
            return Err((
                "memory.consolidated.backend".into(),
                format!("`{}`: expected `git` or `gitlab`", b.backend),
            ));
        }
        Ok(())
    }
}

/// A memory backend (`sqlite`, `opensearch`, `gitlab`, `git`, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub backend: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub consolidation_schedule: Option<String>,
    /// The branch consolidated memory is committed to (`main` by default).
    #[serde(default)]
    pub branch: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// Use the parent instance's database.
    Inherit,
    Sqlite,
    #[serde(alias = "postgres")]
    Postgresql,
    Memory,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistenceConfig {
    pub storage: Storage,
    /// PostgreSQL (or `sqlite:`) URL.
    #[serde(default)]
    pub url: Option<String>,
    /// SQLite file path; may contain `{project_name}` and `{data_dir}`.
    #[serde(default)]
    pub path: Option<String>,
    pub retention: Retention,
    /// How long inbound events (the raw webhooks and mail, with their bodies) are kept for
    /// inspection, replay and deduplication. Redeliveries come within days (GitHub keeps
    /// deliveries 3 days), so 90 days keeps those deduplicated; an email reply to a message
    /// older than this starts a new task instead of a comment. `forever` keeps them all.
    pub inbound_retention: Retention,
    /// SQLite files only: `full` (default) fsyncs every commit, so an acknowledged write
    /// survives power loss; `normal` survives process crashes only, for more throughput.
    /// Read from the root instance's file; it applies to every SQLite file of the process.
    #[serde(default)]
    pub sqlite_synchronous: SqliteSync,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToggleConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationsConfig {
    #[serde(default)]
    pub mcp: Option<ToggleConfig>,
    #[serde(default)]
    pub github: Option<ToggleConfig>,
    #[serde(default)]
    pub gitlab: Option<ToggleConfig>,
    #[serde(default)]
    pub parent_hopper: bool,
    #[serde(default)]
    pub local_cli: bool,
    #[serde(default)]
    pub worker_api: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChildInstancesConfig {
    pub auto_create: bool,
    /// Template for children, relative to this file's folder.
    #[serde(default)]
    pub default_config: Option<String>,
    /// How many orchestration levels may nest below a project (run + phase = 2).
    pub max_depth: u32,
    /// Auto-created projects whose name the rules file does not know stop here (they wait in
    /// triage with the reason); `0` lifts the bound.
    #[serde(default = "default_max_children")]
    pub max_children: usize,
    /// A project with a database file of its own that nobody used for this long (and that
    /// holds no claimed or delegated work) has the file closed, its threads ended; the next
    /// use opens it again. `0`: never.
    #[serde(default = "default_idle_close_seconds")]
    pub idle_close_seconds: u64,
}

fn default_idle_close_seconds() -> u64 {
    300
}

fn default_max_children() -> usize {
    100
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TasksConfig {
    /// How long a claim holds without a heartbeat.
    pub lease_seconds: u64,
    /// The longest lease a caller may ask for with `lease_seconds` on a claim or heartbeat.
    #[serde(default = "default_max_lease_seconds")]
    pub max_lease_seconds: u64,
}

fn default_max_lease_seconds() -> u64 {
    86_400
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrchestrationConfig {
    /// Phase children created for every run, in order.
    pub phases: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: String,
    /// Falls back to `HOPPER_ADMIN_TOKEN`, then a token generated into the data dir.
    #[serde(default)]
    pub admin_token: Option<Secret>,
    pub data_dir: String,
    /// Largest request body the REST API accepts.
    pub body_limit_bytes: usize,
    /// How often leases and retention are swept.
    pub sweep_interval_ms: u64,
    /// A connection whose next request line and headers have not all arrived by then is
    /// closed (idle keep-alive connections too), so clients that stall mid-request cannot pile
    /// up connections. 0 turns it off.
    pub header_read_timeout_ms: u64,
    /// A webhook body that has not fully arrived by then is answered 408. Senders give up
    /// sooner anyway (GitHub after 10 s). 0 turns it off.
    pub body_read_timeout_ms: u64,
    /// Webhook body bytes held in memory at once, across requests (a body is read whole
    /// before its signature can be checked). Past it, requests wait up to a second, then get
    /// 503 with Retry-After. 0 turns it off.
    pub max_inflight_body_bytes: u64,
    /// How much of `max_inflight_body_bytes` the requests from one address (an IPv6 /64) may
    /// hold at once, so one sender cannot take it all. Unset: an eighth of it, but at least
    /// the largest inbound `max_body_bytes`. 0 turns it off (behind a reverse proxy every
    /// request comes from the proxy's address).
    #[serde(default)]
    pub max_inflight_body_bytes_per_peer: Option<u64>,
}

impl HopperConfig {
    pub fn for_scope(scope: Scope) -> Self {
        match scope {
            Scope::Global => Self::for_global(),
            Scope::Project => Self::for_project(),
            Scope::Orchestration => Self::for_orchestration(),
        }
    }

    /// The embedded default: a global instance on `./.hopper/hopper.db`.
    pub fn for_global() -> Self {
        Self {
            scope: Scope::Global,
            instance_id: "hopper-global".into(),
            parent: None,
            intelligence: IntelligenceConfig::new(IntelligenceProvider::Rules),
            memory: MemoryConfig::default(),
            persistence: PersistenceConfig {
                storage: Storage::Sqlite,
                url: None,
                path: Some("{data_dir}/hopper.db".into()),
                retention: Retention::Forever,
                inbound_retention: Retention::ninety_days(),
                sqlite_synchronous: SqliteSync::Full,
            },
            integrations: IntegrationsConfig::default(),
            child_instances: ChildInstancesConfig {
                auto_create: true,
                default_config: None,
                max_depth: 2,
                max_children: default_max_children(),
                idle_close_seconds: default_idle_close_seconds(),
            },
            tasks: TasksConfig {
                lease_seconds: 300,
                max_lease_seconds: default_max_lease_seconds(),
            },
            orchestration: OrchestrationConfig::default(),
            server: ServerConfig::default(),
            inbound: Default::default(),
            outbound: Default::default(),
            reports: Default::default(),
            sync: Default::default(),
            expanded: Vec::new(),
        }
    }

    /// Projects share their parent's database unless told otherwise.
    pub fn for_project() -> Self {
        Self {
            scope: Scope::Project,
            instance_id: "hopper-{project_name}".into(),
            parent: Some("hopper-global".into()),
            persistence: PersistenceConfig {
                storage: Storage::Inherit,
                url: None,
                path: None,
                retention: Retention::parse("1_year").unwrap_or(Retention::Forever),
                inbound_retention: Retention::ninety_days(),
                sqlite_synchronous: SqliteSync::Full,
            },
            integrations: IntegrationsConfig {
                parent_hopper: true,
                local_cli: true,
                ..IntegrationsConfig::default()
            },
            ..Self::for_global()
        }
    }

    /// Runs live in memory and disappear when they finish.
    pub fn for_orchestration() -> Self {
        Self {
            scope: Scope::Orchestration,
            instance_id: "hopper-{project_name}-run-{run_id}".into(),
            parent: Some("hopper-{project_name}".into()),
            intelligence: IntelligenceConfig::new(IntelligenceProvider::SimplePriority),
            persistence: PersistenceConfig {
                storage: Storage::Memory,
                url: None,
                path: None,
                retention: Retention::RunDuration,
                inbound_retention: Retention::ninety_days(),
                sqlite_synchronous: SqliteSync::Full,
            },
            integrations: IntegrationsConfig {
                parent_hopper: true,
                worker_api: true,
                ..IntegrationsConfig::default()
            },
            ..Self::for_global()
        }
    }
}

impl Default for OrchestrationConfig {
    fn default() -> Self {
        Self {
            phases: vec!["design".into(), "implement".into(), "test".into()],
        }
    }
}

impl ServerConfig {
    pub fn header_read_timeout(&self) -> Option<Duration> {
        millis_or_off(self.header_read_timeout_ms)
    }

    pub fn body_read_timeout(&self) -> Option<Duration> {
        millis_or_off(self.body_read_timeout_ms)
    }
}

/// `0` turns a timeout off.
fn millis_or_off(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            admin_token: None,
            data_dir: ".hopper".into(),
            body_limit_bytes: 1024 * 1024,
            sweep_interval_ms: 1000,
            header_read_timeout_ms: 30_000,
            body_read_timeout_ms: 30_000,
            max_inflight_body_bytes: 256 * 1024 * 1024,
            max_inflight_body_bytes_per_peer: None,
        }
    }
}
