//! `executors`, `api_tokens`, `executor_events`: their columns, named once, and the rows as
//! read. The signing secrets are read only by [`SecretsRow`], never into an [`Executor`].

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{corrupt, json, opt_json};
use crate::domain::{Executor, ExecutorId, InstanceId, TokenRole, millis_to_rfc3339};
use crate::store::error::{StoreError, StoreResult};

/// Every column an [`Executor`] is read from (not the secrets).
pub(in crate::store) const EXECUTOR_COLUMNS: &str = "id, name, kind, project, capabilities, \
    webhook_url, events, auto_claim, velocity, sla, priority_boost, config, enabled, \
    disabled_reason, disabled_at, failing_since, created_at, updated_at";

/// What registration writes: [`EXECUTOR_COLUMNS`]' first twelve, then the secret and times.
pub(in crate::store) const INSERT_EXECUTOR: &str = "INSERT INTO executors (id, name, kind, \
    project, capabilities, webhook_url, events, auto_claim, velocity, sla, priority_boost, \
    config, secret, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) \
    ON CONFLICT (name) DO NOTHING";

/// What an update may change, `$2` to `$10`, with `updated_at` as `$11`.
pub(in crate::store) const UPDATE_EXECUTOR: &str = "UPDATE executors SET capabilities = $2, \
    webhook_url = $3, events = $4, auto_claim = $5, velocity = $6, sla = $7, \
    priority_boost = $8, config = $9, kind = $10, updated_at = $11 WHERE id = $1";

pub(in crate::store) const TOKEN_COLUMNS: &str =
    "id, role, executor_id, name, created_at, revoked_at";

pub(in crate::store) const EXECUTOR_EVENT_COLUMNS: &str = "id, executor_id, at, kind, detail";

#[derive(sqlx::FromRow)]
pub(in crate::store) struct ExecutorRow {
    id: String,
    name: String,
    kind: String,
    project: String,
    capabilities: String,
    webhook_url: Option<String>,
    events: String,
    auto_claim: bool,
    velocity: Option<String>,
    sla: Option<String>,
    priority_boost: String,
    config: String,
    enabled: bool,
    disabled_reason: Option<String>,
    disabled_at: Option<i64>,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ExecutorRow> for Executor {
    type Error = StoreError;
    fn try_from(r: ExecutorRow) -> StoreResult<Executor> {
        Ok(Executor {
            id: ExecutorId::parse(&r.id).map_err(|e| corrupt("executors.id", e))?,
            name: r.name,
            kind: r.kind.parse().map_err(|e| corrupt("executors.kind", e))?,
            project: InstanceId::parse(&r.project).map_err(|e| corrupt("executors.project", e))?,
            capabilities: json("executors.capabilities", &r.capabilities)?,
            webhook_url: r.webhook_url,
            events: json("executors.events", &r.events)?,
            auto_claim: r.auto_claim,
            velocity: r.velocity,
            sla: opt_json("executors.sla", r.sla)?,
            priority_boost: json("executors.priority_boost", &r.priority_boost)?,
            config: json("executors.config", &r.config)?,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            disabled_at: r.disabled_at.map(millis_to_rfc3339),
            failing_since: r.failing_since.map(millis_to_rfc3339),
            created_at: millis_to_rfc3339(r.created_at),
            updated_at: millis_to_rfc3339(r.updated_at),
        })
    }
}

/// A minted API token as listed: never its value or hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiToken {
    /// `tok_` followed by a UUIDv7.
    pub id: String,
    pub role: TokenRole,
    /// The executor an executor token acts as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub executor_id: Option<ExecutorId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct TokenRow {
    id: String,
    role: String,
    executor_id: Option<String>,
    name: Option<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> StoreResult<ApiToken> {
        Ok(ApiToken {
            id: r.id,
            role: r.role.parse().map_err(|e| corrupt("api_tokens.role", e))?,
            executor_id: r
                .executor_id
                .map(|e| ExecutorId::parse(&e))
                .transpose()
                .map_err(|e| corrupt("api_tokens.executor_id", e))?,
            name: r.name,
            created_at: millis_to_rfc3339(r.created_at),
            revoked_at: r.revoked_at.map(millis_to_rfc3339),
        })
    }
}

/// One entry of an executor's history (`executor.registered`, `executor.secret_rotated`, `executor.disabled`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExecutorEvent {
    pub id: i64,
    #[schema(value_type = String)]
    pub executor_id: ExecutorId,
    pub at: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}

#[derive(sqlx::FromRow)]
pub(in crate::store) struct ExecutorEventRow {
    id: i64,
    executor_id: String,
    at: i64,
    kind: String,
    detail: Option<String>,
}

impl TryFrom<ExecutorEventRow> for ExecutorEvent {
    type Error = StoreError;
    fn try_from(r: ExecutorEventRow) -> StoreResult<ExecutorEvent> {
        Ok(ExecutorEvent {
            id: r.id,
            executor_id: ExecutorId::parse(&r.executor_id)
                .map_err(|e| corrupt("executor_events.executor_id", e))?,
            at: millis_to_rfc3339(r.at),
            kind: r.kind,
            detail: opt_json("executor_events.detail", r.detail)?,
        })
    }
}
