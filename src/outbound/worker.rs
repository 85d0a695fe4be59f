//! The delivery worker: claims due deliveries, sends them, records the outcome.
//!
//! **Claims** (`Store::claim_deliveries`) mark a batch with this worker's id and a lock
//! deadline: processes sharing a PostgreSQL never send the same attempt twice, and a process
//! killed mid-delivery leaves its rows to be claimed again after `locked_until`. A claim never
//! asks for more than the free global slots (`outbound.max_in_flight`) nor more of an executor
//! than its free room under `per_executor_concurrency`, and never looks at the rows of an
//! executor without room: a slow or dead endpoint holds its own slots, never the others', and
//! its backlog costs the claims nothing. When one of its attempts ends, the worker looks again.
//!
//! **Sending** (`attempt.rs`) checks the URL again (DNS resolved then), signs, and posts; an
//! auto-claim delivery first refreshes its claim under its lease.
//!
//! **Results** go through a channel to one writer task that records them many per transaction
//! (`Store::record_attempts`), then does the executor bookkeeping: `failing_since` cleared on a
//! success and set on a failure, the executor disabled after 410 Gone or once it has failed for
//! `outbound.disable_after_failing_seconds`. A disabled executor's deliveries stay pending (the
//! claim skips them): re-enabling it resumes them.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::attempt::{self, Done};
use super::url_policy::UrlPolicy;
use crate::config::OutboundConfig;
use crate::domain::{Actor, DeliveryStatus, TaskId, now_millis};
use crate::engine::Engine;
use crate::store::{AttemptRecord, DeliveryTarget, Store};

/// Rows claimed per statement at most.
const CLAIM_BATCH: usize = 256;
/// Attempts written per transaction at most.
const WRITE_BATCH: usize = 512;

/// What every attempt shares.
pub(super) struct Shared {
    pub engine: Engine,
    pub config: OutboundConfig,
    pub policy: UrlPolicy,
    pub client: reqwest::Client,
    pub root: Store,
    /// In flight per executor, for the claim's exclusion list.
    busy: Mutex<HashMap<String, usize>>,
    limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl Shared {
    /// What each enabled target may still take: its concurrency limit (at most its rate
    /// limit's one second's worth) less what is in flight to it; executors without room are
    /// left out.
    fn rooms(&self, targets: &HashMap<String, DeliveryTarget>) -> Vec<(String, i64)> {
        let limit = match self.config.per_executor_rate_per_second {
            0 => self.config.per_executor_concurrency,
            r => self.config.per_executor_concurrency.min(r as usize),
        }
        .max(1);
        let busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        targets
            .values()
            .filter(|t| t.enabled)
            .filter_map(|t| {
                let room = limit.saturating_sub(busy.get(&t.id).copied().unwrap_or(0));
                (room > 0).then(|| (t.id.clone(), room as i64))
            })
            .collect()
    }

    fn enter(&self, executor: &str) {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy.entry(executor.to_owned()).or_default() += 1;
    }

    /// An attempt ended; `true` when its executor was at its limit (rows of it may be
    /// waiting that the last claim had to leave).
    fn leave(&self, executor: &str) -> bool {
        let limit = self.config.per_executor_concurrency.max(1);
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let Some(n) = busy.get_mut(executor) else {
            return false;
        };
        let was_full = *n >= limit;
        *n = n.saturating_sub(1);
        if *n == 0 {
            busy.remove(executor);
        }
        was_full
    }

    /// The executor's rate limiter, if `per_executor_rate_per_second` sets one.
    fn limiter(&self, executor: &str) -> Option<Arc<DefaultDirectRateLimiter>> {
        let rate = NonZeroU32::new(self.config.per_executor_rate_per_second)?;
        let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            map.entry(executor.to_owned())
                .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_second(rate))))
                .clone(),
        )
    }
}

/// Runs the worker until `shutdown`: claims, sends, and writes results. `worker_id` names this
/// process's claims (unique per process).
pub async fn run(
    engine: Engine,
    config: OutboundConfig,
    policy: UrlPolicy,
    client: reqwest::Client,
    poll: Duration,
    shutdown: CancellationToken,
) {
    let timeout = Duration::from_secs(config.timeout_seconds.max(1));
    let root = engine.registry_store().clone();
    let worker_id = format!("wrk_{}", uuid::Uuid::now_v7().simple());
    let max_in_flight = config.max_in_flight.max(1);
    let shared = Arc::new(Shared {
        engine,
        config,
        policy,
        client,
        root,
        busy: Mutex::default(),
        limiters: Mutex::default(),
    });
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let (tx, rx) = mpsc::channel::<Done>(max_in_flight * 2);
    let writer = tokio::spawn(write_results(shared.clone(), worker_id.clone(), rx));
    // A claim's lock outlives the attempt's own deadline, with room for the wait for an
    // executor's slot and for the result's write.
    let margin_ms = i64::try_from(shared.config.claim_margin_seconds.saturating_mul(1000))
        .unwrap_or(i64::MAX / 4);
    let lock_ms = (timeout.as_millis() as i64) * 2 + margin_ms;
    let wake = shared.engine.delivery_signal();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let free = slots.available_permits().min(CLAIM_BATCH);
        if free == 0 {
            // Every slot is taken: wait for one to come back.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => drop(p),
            }
            continue;
        }
        let targets: HashMap<String, DeliveryTarget> = match shared.root.delivery_targets().await {
            Ok(t) => t.into_iter().map(|t| (t.id.clone(), t)).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading executors failed; retrying");
                sleep_or_stop(&shutdown, poll).await;
                continue;
            }
        };
        let now = now_millis();
        let claimed = shared
            .root
            .claim_deliveries(
                &worker_id,
                now,
                now + lock_ms,
                free as i64,
                &shared.rooms(&targets),
            )
            .await;
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming deliveries failed; retrying");
                sleep_or_stop(&shutdown, poll).await;
                continue;
            }
        };
        if claimed.is_empty() {
            // The dispatcher pokes right after it inserts deliveries (so do retry and
            // recover, and a finished attempt of an executor that was at its limit); the poll
            // covers other processes and retries coming due.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            continue;
        }
        for d in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let Some(target) = targets.get(&d.executor_id).cloned() else {
                drop(permit);
                continue;
            };
            shared.enter(&d.executor_id);
            let shared = shared.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(l) = shared.limiter(&target.id) {
                    l.until_ready().await;
                }
                let executor = d.executor_id.clone();
                let done = attempt::send(&shared, d, target).await;
                if shared.leave(&executor) {
                    shared.engine.deliveries_due();
                }
                drop(permit);
                let _ = tx.send(done).await;
            });
        }
    }
    // Attempts in flight finish (each within the timeout) and their results are written.
    drop(tx);
    let _ = writer.await;
}

async fn sleep_or_stop(shutdown: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Writes results as they come, many per transaction.
async fn write_results(shared: Arc<Shared>, worker_id: String, mut rx: mpsc::Receiver<Done>) {
    let mut buf = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut buf, WRITE_BATCH).await > 0 {
        let batch = std::mem::take(&mut buf);
        if let Err(e) = write_batch(&shared, &worker_id, batch).await {
            // The rows stay locked until `locked_until` and are sent again then: at least
            // once, never lost.
            tracing::warn!(error = %e, "recording delivery attempts failed");
        }
    }
}

async fn write_batch(shared: &Shared, worker_id: &str, batch: Vec<Done>) -> crate::Result<()> {
    let now = now_millis();
    let mut records: Vec<AttemptRecord> = Vec::with_capacity(batch.len());
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    let mut gone = Vec::new();
    let mut releases = Vec::new();
    for d in batch {
        metrics::counter!("hopper_deliveries_total", "outcome" => d.outcome).increment(1);
        match d.record {
            Some(r) => {
                if r.new_status == DeliveryStatus::Delivered {
                    succeeded.push(d.executor_id.clone());
                } else {
                    failed.push(d.executor_id.clone());
                }
                if r.new_status == DeliveryStatus::Dead
                    && let Some(release) = d.release.clone()
                {
                    releases.push(release);
                }
                records.push(r);
            }
            None => {
                if let Some(reason) = &d.cancelled {
                    shared
                        .root
                        .end_delivery(&d.delivery_id, DeliveryStatus::Cancelled, reason, now)
                        .await?;
                }
            }
        }
        if d.gone {
            gone.push(d.executor_id);
        }
    }
    // An endpoint that answered 410 is disabled before its rows are unlocked: they are due
    // again at once, and a claim in between would send them straight back to it.
    gone.sort();
    gone.dedup();
    for id in gone {
        if shared
            .root
            .set_executor_enabled(&id, false, Some("endpoint answered 410 Gone"), now)
            .await?
        {
            tracing::warn!(executor = %id, "executor disabled: its endpoint answered 410 Gone");
        }
    }
    shared.root.record_attempts(worker_id, &records).await?;
    succeeded.sort();
    succeeded.dedup();
    failed.sort();
    failed.dedup();
    failed.retain(|f| succeeded.binary_search(f).is_err());
    shared.root.executors_succeeded(&succeeded).await?;
    let grace = (shared.config.disable_after_failing_seconds as i64).saturating_mul(1000);
    for id in shared
        .root
        .executors_failed(&failed, now, now - grace)
        .await?
    {
        tracing::warn!(executor = %id, "executor disabled: its deliveries kept failing");
    }
    // A dead auto-claim delivery gives its claim back, so the task can go to someone else.
    for (task, actor) in releases {
        if let Err(e) = shared.engine.release(&task, &actor).await {
            tracing::info!(task_id = %task, error = %e, "claim of a dead delivery not released");
        }
    }
    Ok(())
}

/// A claim to give back: the task and the executor holding it under its lease.
pub(super) type Release = (TaskId, Actor);
