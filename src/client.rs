//! `HopperClient`: the same [`HopperService`] API, spoken over the REST API.

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::domain::Executor;
use crate::domain::{
    Actor, EventFilter, Feedback, InboundEventView, IngestReceipt, Instance, InstanceFilter,
    InstanceId, InstanceStats, InstanceTree, Task, TaskDraft, TaskEvent, TaskFilter, TaskId,
};
use crate::engine::{
    ExecutorUpdate, LeaseRequest, MintedToken, Registered, Registration, Rotated, TokenRequest,
};
use crate::error::{HopperError, Result};
use crate::service::HopperService;
use crate::store::ApiToken;

#[derive(Clone)]
pub struct HopperClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl HopperClient {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| HopperError::Transport(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| HopperError::Transport(e.to_string()))?;
        if status.is_success() {
            return Ok((status, bytes.to_vec()));
        }
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let code = v["error"]["code"].as_str().unwrap_or("error").to_owned();
        let message = v["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        Err(match status {
            StatusCode::NOT_FOUND => HopperError::NotFound(message),
            StatusCode::CONFLICT if code == "lease_lost" => HopperError::LeaseLost(message),
            StatusCode::CONFLICT => HopperError::Conflict(message),
            StatusCode::FORBIDDEN => HopperError::Forbidden(message),
            StatusCode::UNPROCESSABLE_ENTITY => HopperError::Invalid(message),
            _ => HopperError::Remote {
                status: status.as_u16(),
                code,
                message,
            },
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T> {
        let (_, bytes) = self.send(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| HopperError::Transport(format!("unexpected response: {e}")))
    }
}

fn to_body<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| HopperError::Invalid(e.to_string()))
}

/// A path segment or query value, percent-encoded beyond the characters ids and names use.
fn segment(s: &str) -> String {
    use std::fmt::Write;
    s.bytes()
        .fold(String::with_capacity(s.len()), |mut out, b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
            out
        })
}

fn actor_body(actor: &Actor) -> Value {
    match actor {
        Actor::Executor { name, lease } => json!({ "executor": name, "lease_id": lease }),
        Actor::Admin | Actor::System => json!({}),
    }
}

fn claim_body(executor: &str, lease: LeaseRequest) -> Value {
    match lease.seconds {
        Some(secs) => json!({ "executor": executor, "lease_seconds": secs }),
        None => json!({ "executor": executor }),
    }
}

#[derive(serde::Deserialize)]
struct WithHistory {
    history: Vec<TaskEvent>,
}

#[async_trait]
impl HopperService for HopperClient {
    async fn add_task(&self, instance: &InstanceId, task: TaskDraft) -> Result<Task> {
        let body = serde_json::to_value(task).map_err(|e| HopperError::Invalid(e.to_string()))?;
        self.call(
            Method::POST,
            &format!("/v1/instances/{instance}/tasks"),
            Some(body),
        )
        .await
    }
    async fn get_next(
        &self,
        instance: &InstanceId,
        executor: &str,
        lease: LeaseRequest,
    ) -> Result<Option<Task>> {
        let (status, bytes) = self
            .send(
                Method::POST,
                &format!("/v1/instances/{instance}/next"),
                Some(claim_body(executor, lease)),
            )
            .await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| HopperError::Transport(e.to_string()))
    }
    async fn get_task(&self, task: &TaskId) -> Result<Task> {
        self.call(Method::GET, &format!("/v1/tasks/{task}"), None)
            .await
    }
    async fn task_history(&self, task: &TaskId) -> Result<Vec<TaskEvent>> {
        let w: WithHistory = self
            .call(Method::GET, &format!("/v1/tasks/{task}"), None)
            .await?;
        Ok(w.history)
    }
    async fn list_tasks(&self, instance: &InstanceId, filter: &TaskFilter) -> Result<Vec<Task>> {
        let mut q = format!(
            "/v1/instances/{instance}/tasks?hierarchy={}",
            filter.hierarchy
        );
        if let Some(s) = filter.status {
            q.push_str(&format!("&status={s}"));
        }
        if let Some(l) = filter.limit {
            q.push_str(&format!("&limit={l}"));
        }
        if let Some(a) = &filter.after {
            q.push_str(&format!("&after={a}"));
        }
        self.call(Method::GET, &q, None).await
    }
    async fn claim(&self, task: &TaskId, executor: &str, lease: LeaseRequest) -> Result<Task> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{task}/claim"),
            Some(claim_body(executor, lease)),
        )
        .await
    }
    async fn heartbeat(&self, task: &TaskId, actor: &Actor, lease: LeaseRequest) -> Result<Task> {
        let mut body = actor_body(actor);
        if let Some(secs) = lease.seconds {
            body["lease_seconds"] = json!(secs);
        }
        self.call(
            Method::POST,
            &format!("/v1/tasks/{task}/heartbeat"),
            Some(body),
        )
        .await
    }
    async fn complete(
        &self,
        task: &TaskId,
        actor: &Actor,
        feedback: Option<Feedback>,
    ) -> Result<Task> {
        let mut body = actor_body(actor);
        body["feedback"] = serde_json::to_value(feedback).unwrap_or(Value::Null);
        self.call(
            Method::POST,
            &format!("/v1/tasks/{task}/complete"),
            Some(body),
        )
        .await
    }
    async fn fail(&self, task: &TaskId, actor: &Actor, reason: &str) -> Result<Task> {
        let mut body = actor_body(actor);
        body["reason"] = json!(reason);
        self.call(Method::POST, &format!("/v1/tasks/{task}/fail"), Some(body))
            .await
    }
    async fn release(&self, task: &TaskId, actor: &Actor) -> Result<Task> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{task}/release"),
            Some(actor_body(actor)),
        )
        .await
    }
    async fn cancel(&self, task: &TaskId, actor: &Actor) -> Result<Task> {
        self.call(
            Method::POST,
            &format!("/v1/tasks/{task}/cancel"),
            Some(actor_body(actor)),
        )
        .await
    }
    async fn explain_routing(&self, task: &TaskId) -> Result<crate::engine::RoutingReport> {
        self.call(Method::GET, &format!("/v1/tasks/{task}/routing"), None)
            .await
    }
    async fn reroute(&self, task: &TaskId, req: &crate::engine::RerouteRequest) -> Result<Task> {
        let body = serde_json::to_value(req).map_err(|e| HopperError::Invalid(e.to_string()))?;
        self.call(Method::POST, &format!("/v1/tasks/{task}/route"), Some(body))
            .await
    }
    async fn plan(&self, task: &TaskId) -> Result<crate::engine::Plan> {
        self.call(Method::GET, &format!("/v1/tasks/{task}/plan"), None)
            .await
    }
    async fn get_child_hopper(&self, parent: &InstanceId, child: &str) -> Result<Instance> {
        self.call(
            Method::POST,
            &format!("/v1/instances/{parent}/children/{child}"),
            None,
        )
        .await
    }
    async fn register_child(
        &self,
        parent: &InstanceId,
        child: &str,
        metadata: Value,
    ) -> Result<Instance> {
        self.call(
            Method::POST,
            "/v1/instances",
            Some(json!({ "name": child, "parent": parent, "metadata": metadata })),
        )
        .await
    }
    async fn notify_parent(&self, instance: &InstanceId, kind: &str, detail: Value) -> Result<()> {
        self.send(
            Method::POST,
            &format!("/v1/instances/{instance}/notify"),
            Some(json!({ "kind": kind, "detail": detail })),
        )
        .await?;
        Ok(())
    }
    async fn get_instance(&self, instance: &InstanceId) -> Result<Instance> {
        self.call(Method::GET, &format!("/v1/instances/{instance}"), None)
            .await
    }
    async fn list_instances(&self, filter: &InstanceFilter) -> Result<Vec<Instance>> {
        let mut q = format!("/v1/instances?include_archived={}", filter.include_archived);
        if let Some(s) = filter.scope {
            q.push_str(&format!("&scope={s}"));
        }
        if let Some(p) = &filter.parent {
            q.push_str(&format!("&parent={p}"));
        }
        self.call(Method::GET, &q, None).await
    }
    async fn instance_tree(&self) -> Result<InstanceTree> {
        self.call(Method::GET, "/v1/instances/tree", None).await
    }
    async fn stats(&self, instance: &InstanceId) -> Result<InstanceStats> {
        self.call(
            Method::GET,
            &format!("/v1/instances/{instance}/stats"),
            None,
        )
        .await
    }
    async fn archive_and_delete(&self, instance: &InstanceId) -> Result<Value> {
        self.call(Method::DELETE, &format!("/v1/instances/{instance}"), None)
            .await
    }
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<InboundEventView>> {
        let mut q = format!("/v1/events?limit={}", filter.limit.unwrap_or(100));
        if let Some(s) = &filter.source {
            q.push_str(&format!("&source={}", urlencode(s)));
        }
        if let Some(s) = &filter.status {
            q.push_str(&format!("&status={}", urlencode(s)));
        }
        self.call(Method::GET, &q, None).await
    }
    async fn search_memory(
        &self,
        q: &crate::domain::MemoryQuery,
    ) -> Result<Vec<crate::domain::MemoryHit>> {
        let mut path = format!("/v1/memory/search?q={}", urlencode(&q.q));
        if let Some(i) = &q.instance {
            path.push_str(&format!("&instance={}", urlencode(i)));
        }
        if let Some(l) = q.limit {
            path.push_str(&format!("&limit={l}"));
        }
        self.call(Method::GET, &path, None).await
    }
    async fn get_event(&self, id: &str) -> Result<InboundEventView> {
        self.call(Method::GET, &format!("/v1/events/{}", urlencode(id)), None)
            .await
    }
    async fn replay_event(&self, id: &str) -> Result<IngestReceipt> {
        self.call(
            Method::POST,
            &format!("/v1/events/{}/replay", urlencode(id)),
            None,
        )
        .await
    }
    async fn list_deliveries(
        &self,
        filter: &crate::domain::DeliveryFilter,
    ) -> Result<Vec<crate::domain::Delivery>> {
        let mut q = format!("/v1/deliveries?limit={}", filter.limit.unwrap_or(100));
        if let Some(e) = &filter.executor {
            q.push_str(&format!("&executor={}", urlencode(e)));
        }
        if let Some(s) = filter.status {
            q.push_str(&format!("&status={}", s.as_str()));
        }
        if let Some(t) = &filter.task {
            q.push_str(&format!("&task={}", urlencode(t)));
        }
        self.call(Method::GET, &q, None).await
    }
    async fn get_delivery(&self, id: &str) -> Result<crate::domain::DeliveryDetail> {
        self.call(
            Method::GET,
            &format!("/v1/deliveries/{}", urlencode(id)),
            None,
        )
        .await
    }
    async fn retry_delivery(&self, id: &str) -> Result<crate::domain::DeliveryDetail> {
        self.call(
            Method::POST,
            &format!("/v1/deliveries/{}/retry", urlencode(id)),
            None,
        )
        .await
    }
    async fn register_executor(&self, req: Registration) -> Result<Registered> {
        self.call(Method::POST, "/v1/executors", Some(to_body(&req)?))
            .await
    }
    async fn list_executors(&self, project: Option<&str>) -> Result<Vec<Executor>> {
        let path = match project {
            Some(p) => format!("/v1/executors?project={}", segment(p)),
            None => "/v1/executors".to_owned(),
        };
        self.call(Method::GET, &path, None).await
    }
    async fn get_executor(&self, executor: &str) -> Result<Executor> {
        let path = format!("/v1/executors/{}", segment(executor));
        self.call(Method::GET, &path, None).await
    }
    async fn update_executor(&self, executor: &str, change: ExecutorUpdate) -> Result<Executor> {
        let path = format!("/v1/executors/{}", segment(executor));
        self.call(Method::PATCH, &path, Some(to_body(&change)?))
            .await
    }
    async fn rotate_executor_secret(&self, executor: &str) -> Result<Rotated> {
        let path = format!("/v1/executors/{}/rotate-secret", segment(executor));
        self.call(Method::POST, &path, None).await
    }
    async fn disable_executor(&self, executor: &str, reason: Option<&str>) -> Result<Executor> {
        let path = format!("/v1/executors/{}/disable", segment(executor));
        self.call(Method::POST, &path, Some(json!({ "reason": reason })))
            .await
    }
    async fn enable_executor(&self, executor: &str) -> Result<Executor> {
        let path = format!("/v1/executors/{}/enable", segment(executor));
        self.call(Method::POST, &path, None).await
    }
    async fn remove_executor(&self, executor: &str) -> Result<Executor> {
        let path = format!("/v1/executors/{}", segment(executor));
        self.call(Method::DELETE, &path, None).await
    }
    async fn mint_token(&self, req: &TokenRequest) -> Result<MintedToken> {
        self.call(Method::POST, "/v1/tokens", Some(to_body(req)?))
            .await
    }
    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        self.call(Method::GET, "/v1/tokens", None).await
    }
    async fn revoke_token(&self, id: &str) -> Result<ApiToken> {
        let path = format!("/v1/tokens/{}", segment(id));
        self.call(Method::DELETE, &path, None).await
    }
}

/// Percent-encodes a query or path component.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
