//! The report worker: claims due report rows, asks the source's reporter (one attempt each,
//! `max_in_flight` at once), and records the outcome with the outbound retry schedule. A
//! `Retry-After` (or a rate-limit reset) the remote gave wins over the schedule, up to
//! `outbound.max_retry_after_seconds`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hopper_integration_api::{Delivered, Report, ReportError};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{PREFIX, Reporters};
use crate::config::OutboundConfig;
use crate::domain::{DeliveryStatus, now_millis};
use crate::engine::{Engine, MAX_HOLD};
use crate::outbound::next_delay;
use crate::store::{AttemptRecord, ClaimedDelivery};

/// Report rows claimed at once, and attempts in flight: reports come at the pace of task
/// changes, and the remote APIs limit their rate anyway.
const BATCH: i64 = 64;
const IN_FLIGHT: usize = 64;
/// Attempt results written per transaction.
const WRITE_BATCH: usize = 256;

/// Runs until `shutdown`. Attempts run as claimed, up to [`IN_FLIGHT`], and their results
/// are written in batches beside them, as the delivery worker does: a claimed batch no longer
/// waits for its slowest answer (a remote taking its whole timeout held 63 others) and its
/// write before the next claim. On a fast loopback remote the figures are the same
/// (`benches/reports`, 20,000 with 10% 502s: the reports keep up with the completions).
pub async fn run(
    engine: Engine,
    reporters: Arc<Reporters>,
    config: OutboundConfig,
    poll: Duration,
    shutdown: CancellationToken,
) {
    let worker = format!("rpt_{}", uuid::Uuid::now_v7().simple());
    let timeout = Duration::from_secs(config.timeout_seconds.max(1));
    let lock_ms = (timeout.as_millis() as i64) * 2
        + i64::try_from(config.claim_margin_seconds.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
    let wake = engine.delivery_signal();
    let root = engine.registry_store().clone();
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let (tx, rx) = mpsc::channel::<AttemptRecord>(IN_FLIGHT * 2);
    let writer = tokio::spawn(write_results(engine.clone(), worker.clone(), rx));
    let config = Arc::new(config);
    let mut idle = true;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let free = slots.available_permits().min(BATCH as usize);
        // A claim is a write transaction: while attempts are in flight, wait until a quarter
        // of the slots are free rather than claim one row per transaction as each comes back.
        let busy = slots.available_permits() < IN_FLIGHT;
        if free == 0 || (busy && free < IN_FLIGHT / 4) {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                p = slots.clone().acquire_owned() => drop(p),
            }
            continue;
        }
        if idle {
            // New work after a quiet spell (or at start) waits out a burst of ingest first,
            // then all of it goes before the next wait (`engine/pace.rs`).
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = engine.ingest_pace().wait_out(MAX_HOLD) => {}
            }
        }
        let now = now_millis();
        let claimed = match root
            .claim_reports(&worker, now, now + lock_ms, free as i64)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming reports failed; retrying");
                Vec::new()
            }
        };
        idle = claimed.is_empty();
        if idle {
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
            let (engine, reporters, config, tx) = (
                engine.clone(),
                reporters.clone(),
                config.clone(),
                tx.clone(),
            );
            tokio::spawn(async move {
                let record = attempt(&engine, &reporters, &config, timeout, &d).await;
                drop(permit);
                let _ = tx.send(record).await;
            });
        }
    }
    // Attempts in flight finish (each within the timeout) and their results are written.
    drop(tx);
    let _ = writer.await;
}

/// Writes results as they come, many per transaction.
async fn write_results(engine: Engine, worker: String, mut rx: mpsc::Receiver<AttemptRecord>) {
    let root = engine.registry_store().clone();
    let mut buf = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut buf, WRITE_BATCH).await > 0 {
        // A few milliseconds buy a fuller transaction when results trickle in: each write
        // rewrites the same pages whatever its size.
        if buf.len() < WRITE_BATCH / 8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            while buf.len() < WRITE_BATCH {
                match rx.try_recv() {
                    Ok(r) => buf.push(r),
                    Err(_) => break,
                }
            }
        }
        let batch = std::mem::take(&mut buf);
        if let Err(e) = root.record_attempts(&worker, &batch).await {
            // Locked rows are claimed again when their lock runs out: at least once.
            tracing::warn!(error = %e, "recording report attempts failed");
        }
        // The executors' worker shares the signal: pass it on so neither sleeps a poll.
        engine.deliveries_due();
    }
}

/// One attempt at one report (or issue export), and what it does to the row.
async fn attempt(
    engine: &Engine,
    reporters: &Reporters,
    config: &OutboundConfig,
    timeout: Duration,
    d: &ClaimedDelivery,
) -> AttemptRecord {
    let started = Instant::now();
    let kind = d.executor_id.strip_prefix(PREFIX).unwrap_or(&d.executor_id);
    let result = if d.event == crate::sync::EXPORT_EVENT {
        export(engine, reporters.get(kind), timeout, d).await
    } else {
        report(engine, reporters.get(kind), timeout, d).await
    };
    record(config, kind, d, started, result)
}

fn unconfigured(kind: &str) -> ReportError {
    // Unconfigured since (a token removed): it may come back; the schedule decides.
    ReportError::Retry {
        status: None,
        retry_after: None,
        message: format!("no `{kind}` reporter is configured"),
    }
}

fn timed_out(timeout: Duration) -> ReportError {
    ReportError::Retry {
        status: None,
        retry_after: None,
        message: format!("timed out after {} s", timeout.as_secs()),
    }
}

/// Opens the issue of an exported task, then records the pair. A retry first looks for the
/// issue an earlier attempt may have opened (its marker), so a lost answer opens no second.
async fn export(
    engine: &Engine,
    reporter: Option<&Arc<dyn hopper_integration_api::Reporter>>,
    timeout: Duration,
    d: &ClaimedDelivery,
) -> Result<Delivered, ReportError> {
    let mut export: crate::sync::Export =
        serde_json::from_str(&d.payload).map_err(|e| ReportError::Permanent {
            status: None,
            message: format!("the stored export does not parse: {e}"),
        })?;
    let Some(r) = reporter else {
        return Err(unconfigured(&export.provider));
    };
    export.draft.retried = d.attempts > 0;
    let opened = tokio::time::timeout(timeout, r.open_issue(&export.draft))
        .await
        .map_err(|_| timed_out(timeout))??;
    crate::sync::exported(engine, &export, &opened)
        .await
        .map_err(|e| ReportError::Retry {
            status: None,
            retry_after: None,
            message: format!("issue {} opened, recording it failed: {e}", opened.url),
        })?;
    Ok(Delivered {
        status: 201,
        detail: opened.url,
    })
}

async fn report(
    engine: &Engine,
    reporter: Option<&Arc<dyn hopper_integration_api::Reporter>>,
    timeout: Duration,
    d: &ClaimedDelivery,
) -> Result<Delivered, ReportError> {
    let kind = d.executor_id.strip_prefix(PREFIX).unwrap_or(&d.executor_id);
    match (serde_json::from_str::<Report>(&d.payload), reporter) {
        (Err(e), _) => Err(ReportError::Permanent {
            status: None,
            message: format!("the stored report does not parse: {e}"),
        }),
        (Ok(_), None) => Err(unconfigured(kind)),
        (Ok(report), Some(r)) => match tokio::time::timeout(timeout, r.report(&report)).await {
            Ok(Ok(done)) if report.close && !engine.configs().root.sync.is_empty() => {
                // What Hopper wrote, so the webhook it causes is known as its echo.
                let closed =
                    engine
                        .registry_store()
                        .set_sync_pushed(&d.task_id, "closed", now_millis());
                if let Err(e) = closed.await {
                    tracing::warn!(task = %d.task_id, error = %e, "sync: could not note the close");
                }
                Ok(done)
            }
            Ok(result) => result,
            Err(_) => Err(timed_out(timeout)),
        },
    }
}

/// What an attempt's result does to its row.
fn record(
    config: &OutboundConfig,
    kind: &str,
    d: &ClaimedDelivery,
    started: Instant,
    result: Result<Delivered, ReportError>,
) -> AttemptRecord {
    let at = now_millis();
    let latency_ms = started.elapsed().as_millis().min(i64::MAX as u128) as i64;
    let attempt = d.attempts + 1;
    let base = AttemptRecord {
        delivery_id: d.id.clone(),
        attempt,
        at,
        status_code: None,
        latency_ms,
        response: None,
        error: None,
        new_status: DeliveryStatus::Delivered,
        next_attempt_at: at,
    };
    match result {
        Ok(done) => {
            metrics::counter!("hopper_reports_total", "kind" => kind.to_owned(), "outcome" => "delivered").increment(1);
            AttemptRecord {
                status_code: Some(i64::from(done.status)),
                response: Some(done.detail),
                ..base
            }
        }
        Err(e) => {
            let status_code = e.status().map(i64::from);
            let (retry_after, permanent) = match &e {
                ReportError::Retry { retry_after, .. } => (*retry_after, false),
                ReportError::Permanent { .. } => (None, true),
            };
            let delay = (!permanent)
                .then(|| {
                    next_delay(
                        &config.retry_schedule_seconds,
                        u32::try_from(attempt).unwrap_or(u32::MAX),
                        config.jitter,
                        retry_after,
                        Duration::from_secs(config.max_retry_after_seconds),
                        &mut rand::rng(),
                    )
                })
                .flatten();
            let outcome = if delay.is_some() { "retry" } else { "dead" };
            metrics::counter!("hopper_reports_total", "kind" => kind.to_owned(), "outcome" => outcome).increment(1);
            AttemptRecord {
                status_code,
                error: Some(e.to_string()),
                new_status: if delay.is_some() {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::Dead
                },
                next_attempt_at: at + delay.map(|d| d.as_millis() as i64).unwrap_or(0),
                ..base
            }
        }
    }
}
