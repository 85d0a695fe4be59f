//! Starting and stopping outbound delivery inside a process: the dispatcher, the worker and
//! the metrics refresher, all stopped by one token.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::url_policy::{UrlPolicy, UrlPolicyError};
use super::{dispatch, worker};
use std::sync::Arc;

use crate::config::OutboundConfig;
use crate::engine::Engine;
use crate::reports::Reporters;

/// How often the dispatcher and the worker look without being woken: the engine wakes them
/// after its own writes, so this only bounds the delay for writes it did not make (background
/// routing, other processes). A poll of an empty outbox is one indexed read.
fn poll(engine: &Engine) -> Duration {
    match engine.registry_store().is_postgres() {
        true => Duration::from_millis(200),
        false => Duration::from_millis(50),
    }
}

/// The running delivery tasks; [`OutboundHandle::join`] waits for them once the token given to
/// [`spawn`] is cancelled.
pub struct OutboundHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl OutboundHandle {
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Why delivery cannot start: a setting in the root's `outbound:` section.
#[derive(Debug, thiserror::Error)]
pub enum OutboundStartError {
    #[error("outbound.allowlist: {0}")]
    Allowlist(#[from] UrlPolicyError),
    #[error("outbound.ca_file `{path}`: {reason}")]
    CaFile { path: String, reason: String },
    #[error("outbound HTTP client: {0}")]
    Client(String),
    /// `reports.<source>`: a reporter's config, or the policy keys.
    #[error("{0}")]
    Reports(String),
    /// `sync.<project>`: a bad entry, or a provider without a connection.
    #[error("{0}")]
    Sync(String),
    #[error("outbound start: {0}")]
    Engine(String),
}

/// Every synced project's provider must be able to write there.
fn check_sync(engine: &Engine, reporters: &Reporters) -> Result<(), OutboundStartError> {
    let sync = &engine.configs().root.sync;
    sync.validate().map_err(OutboundStartError::Sync)?;
    for (project, s) in &sync.0 {
        if reporters.get(&s.provider).is_none() {
            let env = match s.provider.as_str() {
                "github" => "HOPPER_GITHUB_TOKEN",
                _ => "HOPPER_GITLAB_TOKEN",
            };
            return Err(OutboundStartError::Sync(format!(
                "sync.{project}: no {} connection (set reports.{}.token or {env})",
                s.provider, s.provider
            )));
        }
    }
    Ok(())
}

/// The delivery client: the policy's resolver and the extra roots of `outbound.ca_file`.
fn client(
    config: &OutboundConfig,
    policy: &UrlPolicy,
) -> Result<reqwest::Client, OutboundStartError> {
    let mut roots = Vec::new();
    if let Some(path) = config.ca_file.as_deref().filter(|p| !p.trim().is_empty()) {
        let failed = |reason: String| OutboundStartError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
        roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| failed(e.to_string()))?;
        if roots.is_empty() {
            return Err(failed("no PEM certificate in the file".into()));
        }
    }
    let timeout = Duration::from_secs(config.timeout_seconds.max(1));
    policy
        .client(timeout, roots)
        .map_err(|e| OutboundStartError::Client(e.to_string()))
}

/// Starts the dispatcher, the worker, the report worker and the metrics refresher for
/// `engine`, per the root's `outbound:` and `reports:` sections; `None` when
/// `outbound.enabled` is false. Usable from a benchmark.
pub async fn spawn(
    engine: Engine,
    shutdown: CancellationToken,
) -> Result<Option<OutboundHandle>, OutboundStartError> {
    let reporters =
        Reporters::build(&engine.configs().root.reports).map_err(OutboundStartError::Reports)?;
    spawn_with(engine, Arc::new(reporters), shutdown).await
}

/// As [`spawn`], with the reporters given (tests bring their own).
pub async fn spawn_with(
    engine: Engine,
    reporters: Arc<Reporters>,
    shutdown: CancellationToken,
) -> Result<Option<OutboundHandle>, OutboundStartError> {
    let config = engine.configs().root.outbound.clone();
    check_sync(&engine, &reporters)?;
    if !config.enabled {
        if !engine.configs().root.sync.is_empty() {
            return Err(OutboundStartError::Sync(
                "sync: needs outbound.enabled (exports and closes ride the outbound worker)".into(),
            ));
        }
        return Ok(None);
    }
    let policy = UrlPolicy::new(&config.allowlist)?;
    let client = client(&config, &policy)?;
    let poll = poll(&engine);
    if !reporters.is_empty() {
        tracing::info!(sources = ?reporters.kinds(), "reports back to sources");
    }
    engine
        .set_reporters(reporters.clone())
        .await
        .map_err(|e| OutboundStartError::Engine(e.to_string()))?;
    let tasks = vec![
        tokio::spawn(crate::reports::run(
            engine.clone(),
            reporters,
            config.clone(),
            poll,
            shutdown.clone(),
        )),
        tokio::spawn(dispatch::run(engine.clone(), poll, shutdown.clone())),
        tokio::spawn(worker::run(
            engine.clone(),
            config,
            policy,
            client,
            poll,
            shutdown.clone(),
        )),
        tokio::spawn(refresh_metrics(engine, shutdown)),
    ];
    Ok(Some(OutboundHandle { tasks }))
}

/// Queue depth per executor and the age of the oldest undelivered message, every 5 s.
async fn refresh_metrics(engine: Engine, shutdown: CancellationToken) {
    let mut known: Vec<String> = Vec::new();
    loop {
        match engine.registry_store().delivery_backlog().await {
            Ok((depth, oldest)) => {
                // An executor whose queue emptied reads 0, not its last value.
                for id in &known {
                    if !depth.iter().any(|(d, _)| d == id) {
                        metrics::gauge!("hopper_deliveries_queue_depth", "executor" => id.clone())
                            .set(0.0);
                    }
                }
                known = depth.iter().map(|(id, _)| id.clone()).collect();
                for (id, n) in depth {
                    metrics::gauge!("hopper_deliveries_queue_depth", "executor" => id)
                        .set(n as f64);
                }
                let age = oldest
                    .map(|t| (crate::domain::now_millis() - t).max(0) as f64 / 1000.0)
                    .unwrap_or(0.0);
                metrics::gauge!("hopper_deliveries_oldest_undelivered_seconds").set(age);
            }
            Err(e) => tracing::debug!(error = %e, "delivery backlog not read"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
