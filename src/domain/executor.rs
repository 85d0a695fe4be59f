//! Executors: whoever does a project's work (an agent runner, a CI system, a team's bot, a
//! person's tool), where their work is delivered, and what they can do. Field names follow the
//! v1.0.0 spec's project registration (`capabilities`, `auto_claim`, `priority_boost`,
//! `velocity`, `sla`, `executor_config` as `config`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::InstanceId;

/// An executor id: `exec_` followed by a UUIDv7.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "exec_019a5c2e7c1e7b3f8a4d2c1b0e9f8a7b")]
pub struct ExecutorId(String);

impl ExecutorId {
    pub fn generate() -> Self {
        Self(format!("exec_{}", uuid::Uuid::now_v7().simple()))
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let hex = s
            .strip_prefix("exec_")
            .ok_or_else(|| format!("executor id `{s}` must start with `exec_`"))?;
        if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("executor id `{s}` is malformed"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ExecutorId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ExecutorId> for String {
    fn from(id: ExecutorId) -> Self {
        id.0
    }
}

impl fmt::Display for ExecutorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// A project's own runner (the design's Czarina, SARK).
    Project,
    Human,
    External,
    Ci,
}

impl ExecutorKind {
    pub const ALL: [ExecutorKind; 4] = [
        ExecutorKind::Project,
        ExecutorKind::Human,
        ExecutorKind::External,
        ExecutorKind::Ci,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutorKind::Project => "project",
            ExecutorKind::Human => "human",
            ExecutorKind::External => "external",
            ExecutorKind::Ci => "ci",
        }
    }
}

impl FromStr for ExecutorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExecutorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown executor kind `{s}` (project, human, external, ci)"))
    }
}

/// The events an executor can subscribe to. The task events are recorded by the database in
/// the same transaction as the change (see the outbox migration); `executor.disabled` is
/// recorded when Hopper stops delivering to an endpoint.
pub mod events {
    pub const TASK_AVAILABLE: &str = "task.available";
    pub const TASK_ASSIGNED: &str = "task.assigned";
    pub const TASK_UPDATED: &str = "task.updated";
    pub const TASK_CANCELLED: &str = "task.cancelled";
    pub const EXECUTOR_DISABLED: &str = "executor.disabled";
    pub const ALL: [&str; 4] = [TASK_AVAILABLE, TASK_ASSIGNED, TASK_UPDATED, TASK_CANCELLED];
    /// What a registration without `events` subscribes to.
    pub const DEFAULT: [&str; 2] = [TASK_AVAILABLE, TASK_CANCELLED];
}

/// An executor as stored and shown. Its signing secret is not part of it: the secret is shown
/// once, at registration or rotation, and never again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Executor {
    pub id: ExecutorId,
    pub name: String,
    pub kind: ExecutorKind,
    /// The instance it serves (a project instance, e.g. `hopper-sark`); its orchestration runs
    /// are served too.
    pub project: InstanceId,
    pub capabilities: Vec<String>,
    /// Where deliveries go; without one the executor pulls with `get_next`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    pub events: Vec<String>,
    /// Deliveries carry the task already claimed for this executor, with its `lease_id`.
    pub auto_claim: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub velocity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub sla: Option<serde_json::Value>,
    #[serde(default)]
    pub priority_boost: BTreeMap<String, f64>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    /// Since when every delivery to it has failed (RFC 3339), if they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Executor {
    /// Whether this executor can take a task that requires `required`: every required
    /// capability is among its own. The same rule decides claims and deliveries.
    pub fn can_take(&self, required: &[String]) -> bool {
        required.iter().all(|r| self.capabilities.contains(r))
    }

    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == event)
    }
}

/// What a token may do. The admin token from config is `Admin`; minted tokens are stored hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenRole {
    /// Everything.
    Admin,
    /// Every read, no change.
    Read,
    /// The tasks of the instances its executor serves, and its own executor record.
    Executor,
}

impl TokenRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::Admin => "admin",
            TokenRole::Read => "read",
            TokenRole::Executor => "executor",
        }
    }
}

impl FromStr for TokenRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(TokenRole::Admin),
            "read" => Ok(TokenRole::Read),
            "executor" => Ok(TokenRole::Executor),
            _ => Err(format!("unknown token role `{s}` (admin, read, executor)")),
        }
    }
}
