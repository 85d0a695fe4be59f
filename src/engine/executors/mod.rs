//! Executors: registration, changes, secret rotation, enabling and removal, and the tokens
//! they act with (`tokens.rs`). The registry lives in the root instance's database beside the
//! instance registry; every change is recorded in `executor_events`.
//!
//! An executor serves one project instance and, through [`Engine::project_of`], that project's
//! orchestration runs. Registration answers the signing secret and an executor token once:
//! the secret is kept (Hopper signs with it) but never shown again; the token is kept only as
//! a hash.

mod checks;
mod tokens;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

pub(crate) use tokens::Cache;
pub use tokens::{CACHE_TTL, Caller, MintedToken, TokenRequest, token_hash};

use super::Engine;
use crate::domain::{
    Executor, ExecutorId, ExecutorKind, InstanceId, TokenRole, events, millis_to_rfc3339,
    now_millis,
};
use crate::error::{HopperError, Result};
use crate::store::{ExecutorEvent, ExecutorFilter};

/// What registration asks for (`POST /v1/executors`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// `[a-z0-9][a-z0-9_-]{0,62}`, unique.
    pub name: String,
    pub kind: ExecutorKind,
    /// The project it serves: an instance id (`hopper-sark`) or a project name (`sark`).
    pub project: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Default: `task.available`, `task.cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub auto_claim: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub velocity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub sla: Option<serde_json::Value>,
    #[serde(default)]
    pub priority_boost: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
}

/// What registration answers: the secret and the token are shown here only.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Registered {
    pub executor: Executor,
    /// The Standard Webhooks signing secret (`whsec_…`) deliveries are signed with.
    pub secret: String,
    /// An executor token (`hop_…`) to claim and finish the project's tasks with.
    pub token: String,
}

/// A partial change (`PATCH /v1/executors/{id}`): absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutorUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ExecutorKind>,
    /// An empty string removes the URL (the executor pulls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_claim: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub velocity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub sla: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_boost: Option<BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The new secret a rotation answers, once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Rotated {
    pub secret: String,
    /// Until when the previous secret also signs (RFC 3339).
    pub previous_secret_until: String,
}

impl Engine {
    /// Registers an executor; answers its secret and an executor token, both shown only now.
    pub async fn register_executor(&self, reg: Registration) -> Result<Registered> {
        checks::name(&reg.name)?;
        checks::capabilities(&reg.capabilities)?;
        let wanted: Vec<String> = match reg.events {
            Some(e) => e,
            None => events::DEFAULT.iter().map(|e| (*e).to_owned()).collect(),
        };
        checks::events(&wanted)?;
        checks::velocity(reg.velocity.as_deref())?;
        let config = reg.config.unwrap_or_else(|| json!({}));
        checks::objects(reg.sla.as_ref(), &config)?;
        if let Some(url) = &reg.webhook_url {
            checks::webhook_url(url, &self.inner.configs.root.outbound.allowlist).await?;
        }
        let project = self.served_project(&reg.project).await?;
        let now = now_millis();
        let executor = Executor {
            id: ExecutorId::generate(),
            name: reg.name,
            kind: reg.kind,
            project,
            capabilities: reg.capabilities,
            webhook_url: reg.webhook_url,
            events: wanted,
            auto_claim: reg.auto_claim,
            velocity: reg.velocity,
            sla: reg.sla,
            priority_boost: reg.priority_boost,
            config,
            enabled: true,
            disabled_reason: None,
            disabled_at: None,
            failing_since: None,
            created_at: millis_to_rfc3339(now),
            updated_at: millis_to_rfc3339(now),
        };
        let secret = checks::new_secret();
        let store = &self.inner.registry;
        if !store.insert_executor(&executor, &secret, now).await? {
            return Err(HopperError::Conflict(format!(
                "an executor named `{}` exists",
                executor.name
            )));
        }
        // Before the answer: a task added once the caller has its 201 must record its event.
        self.want_outbox_for(&executor).await?;
        self.forget_cached();
        let detail = json!({ "project": executor.project, "kind": executor.kind });
        store
            .append_executor_event(&executor.id, "executor.registered", Some(&detail), now)
            .await?;
        let token = self
            .mint(TokenRole::Executor, Some(&executor), Some(&executor.name))
            .await?
            .token;
        let executor = self.get_executor(executor.id.as_str()).await?;
        tracing::info!(executor = %executor.id, name = %executor.name, project = %executor.project, "executor registered");
        Ok(Registered {
            executor,
            secret,
            token,
        })
    }

    /// The project instance a registration names: `hopper-sark` or `sark`. A project that
    /// has no instance yet is created as routing would (`child_instances.auto_create`).
    async fn served_project(&self, name: &str) -> Result<InstanceId> {
        let root = self.node(self.root()).await?;
        match self.project_for(&root, name).await? {
            Ok(node) => Ok(node.id().clone()),
            Err(why) if !root.config.child_instances.auto_create => Err(HopperError::NotFound(why)),
            Err(why) => Err(HopperError::Invalid(format!("project: {why}"))),
        }
    }

    /// An executor by id or name.
    pub async fn get_executor(&self, id_or_name: &str) -> Result<Executor> {
        self.inner
            .registry
            .get_executor(id_or_name)
            .await?
            .ok_or_else(|| {
                HopperError::NotFound(format!(
                    "executor `{}` not found",
                    super::log_str(id_or_name)
                ))
            })
    }

    /// Executors, optionally those serving `project` (an instance id or project name).
    pub async fn list_executors(&self, project: Option<&str>) -> Result<Vec<Executor>> {
        let project = project.map(|p| {
            if p.starts_with("hopper-") {
                p.to_owned()
            } else {
                format!("hopper-{p}")
            }
        });
        Ok(self
            .inner
            .registry
            .list_executors(&ExecutorFilter {
                project,
                enabled: None,
            })
            .await?)
    }

    pub async fn update_executor(&self, id_or_name: &str, up: ExecutorUpdate) -> Result<Executor> {
        let mut e = self.get_executor(id_or_name).await?;
        let mut changed = Vec::new();
        if let Some(kind) = up.kind {
            e.kind = kind;
            changed.push("kind");
        }
        if let Some(url) = up.webhook_url {
            if url.is_empty() {
                e.webhook_url = None;
            } else {
                checks::webhook_url(&url, &self.inner.configs.root.outbound.allowlist).await?;
                e.webhook_url = Some(url);
            }
            changed.push("webhook_url");
        }
        if let Some(caps) = up.capabilities {
            checks::capabilities(&caps)?;
            e.capabilities = caps;
            changed.push("capabilities");
        }
        if let Some(ev) = up.events {
            checks::events(&ev)?;
            e.events = ev;
            changed.push("events");
        }
        if let Some(a) = up.auto_claim {
            e.auto_claim = a;
            changed.push("auto_claim");
        }
        if let Some(v) = up.velocity {
            checks::velocity(Some(&v))?;
            e.velocity = Some(v);
            changed.push("velocity");
        }
        if let Some(s) = up.sla {
            e.sla = Some(s);
            changed.push("sla");
        }
        if let Some(p) = up.priority_boost {
            e.priority_boost = p;
            changed.push("priority_boost");
        }
        if let Some(c) = up.config {
            e.config = c;
            changed.push("config");
        }
        checks::objects(e.sla.as_ref(), &e.config)?;
        let now = now_millis();
        let store = &self.inner.registry;
        if !changed.is_empty() {
            if !store.update_executor(&e, now).await? {
                return Err(HopperError::NotFound(format!(
                    "executor `{}` not found",
                    e.id
                )));
            }
            store
                .append_executor_event(
                    &e.id,
                    "executor.updated",
                    Some(&json!({ "fields": changed })),
                    now,
                )
                .await?;
        }
        match up.enabled {
            Some(true) if !e.enabled => {
                self.enable_executor(e.id.as_str()).await?;
            }
            Some(false) if e.enabled => {
                self.disable_executor(e.id.as_str(), None).await?;
            }
            _ => {}
        }
        self.forget_cached();
        let e = self.get_executor(e.id.as_str()).await?;
        // A webhook added, or the executor enabled: before the answer, as at registration.
        self.want_outbox_for(&e).await?;
        Ok(e)
    }

    /// A new signing secret, shown once; the previous one also signs for
    /// `outbound.rotation_grace_seconds`.
    pub async fn rotate_executor_secret(&self, id_or_name: &str) -> Result<Rotated> {
        let e = self.get_executor(id_or_name).await?;
        let secret = checks::new_secret();
        let now = now_millis();
        let grace = self.inner.configs.root.outbound.rotation_grace_seconds;
        let until = now.saturating_add((grace.min(i64::MAX as u64 / 1000) as i64) * 1000);
        let store = &self.inner.registry;
        if !store
            .rotate_executor_secret(&e.id, &secret, until, now)
            .await?
        {
            return Err(HopperError::NotFound(format!(
                "executor `{}` not found",
                e.id
            )));
        }
        let detail = json!({ "previous_secret_until": millis_to_rfc3339(until) });
        store
            .append_executor_event(&e.id, "executor.secret_rotated", Some(&detail), now)
            .await?;
        Ok(Rotated {
            secret,
            previous_secret_until: millis_to_rfc3339(until),
        })
    }

    pub async fn disable_executor(
        &self,
        id_or_name: &str,
        reason: Option<&str>,
    ) -> Result<Executor> {
        self.set_enabled(id_or_name, false, reason).await
    }

    /// Enables an executor again; its run of failed deliveries starts over.
    pub async fn enable_executor(&self, id_or_name: &str) -> Result<Executor> {
        self.set_enabled(id_or_name, true, None).await
    }

    async fn set_enabled(
        &self,
        id_or_name: &str,
        on: bool,
        reason: Option<&str>,
    ) -> Result<Executor> {
        let e = self.get_executor(id_or_name).await?;
        let reason = reason
            .map(|r| super::log_str(r).to_owned())
            .or_else(|| (!on).then(|| "disabled by an administrator".to_owned()));
        let now = now_millis();
        self.inner
            .registry
            .set_executor_enabled(e.id.as_str(), on, reason.as_deref(), now)
            .await?;
        self.forget_cached();
        let e = self.get_executor(e.id.as_str()).await?;
        if on {
            self.want_outbox_for(&e).await?;
        }
        Ok(e)
    }

    /// Removes an executor; its tokens are revoked with it. Its history stays.
    pub async fn remove_executor(&self, id_or_name: &str) -> Result<Executor> {
        let e = self.get_executor(id_or_name).await?;
        let now = now_millis();
        let store = &self.inner.registry;
        store.delete_executor(&e.id, now).await?;
        store
            .append_executor_event(&e.id, "executor.removed", None, now)
            .await?;
        self.forget_cached();
        Ok(e)
    }

    pub async fn executor_events(&self, id_or_name: &str) -> Result<Vec<ExecutorEvent>> {
        let e = self.get_executor(id_or_name).await?;
        Ok(self.inner.registry.executor_events(&e.id).await?)
    }

    /// Pending tasks of `node` that no enabled executor serving it can take; `None` when no
    /// executor serves it (then nobody is expected to take them by capability).
    pub(super) async fn unassignable(&self, node: &super::Node) -> Result<Option<i64>> {
        let Some(project) = self.project_of(node.id()).await? else {
            return Ok(None);
        };
        let serving = self.list_executors(Some(project.as_str())).await?;
        if serving.is_empty() {
            return Ok(None);
        }
        let enabled: Vec<&Executor> = serving.iter().filter(|e| e.enabled).collect();
        let n = node
            .store
            .pending_requirements(node.id())
            .await?
            .into_iter()
            .filter(|(needs, _)| !enabled.iter().any(|e| e.can_take(needs)))
            .map(|(_, n)| n)
            .sum();
        Ok(Some(n))
    }

    /// Whether `executor` serves `instance` (its project, or one of the project's runs).
    pub async fn serves(&self, executor: &Executor, instance: &InstanceId) -> Result<bool> {
        Ok(self.project_of(instance).await?.as_ref() == Some(&executor.project))
    }
}
