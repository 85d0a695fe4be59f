use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::InstanceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Global,
    Project,
    Orchestration,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Global => "global",
            Scope::Project => "project",
            Scope::Orchestration => "orchestration",
        }
    }

    /// The scope of the children an instance of this scope creates.
    pub fn child_scope(self) -> Scope {
        match self {
            Scope::Global => Scope::Project,
            Scope::Project | Scope::Orchestration => Scope::Orchestration,
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "global" => Ok(Scope::Global),
            "project" => Ok(Scope::Project),
            "orchestration" => Ok(Scope::Orchestration),
            other => Err(format!(
                "unknown scope `{other}` (expected global, project or orchestration)"
            )),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InstanceStatus {
    Running,
    /// Finished and summarised; its ephemeral tasks are gone.
    Archived,
    /// An in-memory run that did not survive a restart.
    Lost,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Running => "running",
            InstanceStatus::Archived => "archived",
            InstanceStatus::Lost => "lost",
        }
    }
}

impl FromStr for InstanceStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => Ok(InstanceStatus::Running),
            "archived" => Ok(InstanceStatus::Archived),
            "lost" => Ok(InstanceStatus::Lost),
            other => Err(format!("unknown instance status `{other}`")),
        }
    }
}

/// A registered Hopper instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Instance {
    pub instance_id: InstanceId,
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_instance_id: Option<InstanceId>,
    /// The resolved configuration the instance runs with.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    pub status: InstanceStatus,
    /// What a project registered (capabilities, webhook URL, ...).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Summary written when an orchestration run was archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub summary: Option<serde_json::Value>,
    pub created_at: String,
}

#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub scope: Option<Scope>,
    pub parent: Option<InstanceId>,
    pub include_archived: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceStats {
    pub instance_id: String,
    /// Task counts by status.
    pub tasks: BTreeMap<String, i64>,
    pub total: i64,
    /// Age of the oldest pending task, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_pending_age_seconds: Option<i64>,
    pub children: Vec<String>,
    /// Pending tasks no enabled executor serving this instance can take (it lacks a required
    /// capability, or none is enabled). Only for instances some executor serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unassignable: Option<i64>,
}

/// The instance hierarchy, as `hopper instances tree` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceTree {
    pub instance_id: String,
    pub scope: Scope,
    pub status: InstanceStatus,
    pub open_tasks: i64,
    #[schema(no_recursion)]
    pub children: Vec<InstanceTree>,
}
