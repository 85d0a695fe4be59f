//! One delivery attempt: refresh an auto-claim's lease, check the URL (DNS resolved now: an
//! address that was public at registration may not be any more), sign, post, classify.

use std::time::{Duration, Instant};

use super::schedule::{self, AttemptOutcome};
use super::sign;
use super::worker::{Release, Shared};
use crate::domain::{Actor, DeliveryStatus, TaskId, now_millis};
use crate::engine::LeaseRequest;
use crate::error::HopperError;
use crate::store::{AttemptRecord, ClaimedDelivery, DeliveryTarget};

/// What an attempt did, for the result writer.
pub(super) struct Done {
    pub delivery_id: String,
    pub executor_id: String,
    /// The `outcome` label of `hopper_deliveries_total`.
    pub outcome: &'static str,
    /// The attempt and the delivery's new state; `None` when nothing was sent.
    pub record: Option<AttemptRecord>,
    /// An auto-claim delivery: the claim to give back if it is dead.
    pub release: Option<Release>,
    /// Ended without an attempt (the auto-claim's lease is gone), and why.
    pub cancelled: Option<String>,
    /// The endpoint answered 410 Gone.
    pub gone: bool,
}

pub(super) async fn send(shared: &Shared, d: ClaimedDelivery, target: DeliveryTarget) -> Done {
    let mut done = Done {
        delivery_id: d.id.clone(),
        executor_id: d.executor_id.clone(),
        outcome: "retry",
        record: None,
        release: None,
        cancelled: None,
        gone: false,
    };
    if let (Some(lease), Ok(task)) = (&d.lease_id, TaskId::parse(&d.task_id)) {
        let actor = Actor::Executor {
            name: target.name.clone(),
            lease: lease.clone(),
        };
        match shared
            .engine
            .heartbeat(&task, &actor, LeaseRequest::default())
            .await
        {
            Ok(_) => done.release = Some((task, actor)),
            Err(
                e @ (HopperError::LeaseLost(_)
                | HopperError::Conflict(_)
                | HopperError::Forbidden(_)
                | HopperError::NotFound(_)),
            ) => {
                done.outcome = "cancelled";
                done.cancelled = Some(format!("the claim it carries is gone: {e}"));
                return done;
            }
            // The database hiccuped: try to send anyway, the executor's own calls will tell.
            Err(e) => tracing::warn!(delivery = %d.id, error = %e, "could not refresh the claim"),
        }
    }
    let started = Instant::now();
    let at = now_millis();
    let answer = post(shared, &d, &target).await;
    let latency = started.elapsed();
    metrics::histogram!("hopper_delivery_attempt_seconds").record(latency.as_secs_f64());
    let attempt = d.attempts + 1;
    let (status, retry_after, response, error) = match answer {
        Ok(a) => (Some(a.status), a.retry_after, Some(a.excerpt), None),
        Err(e) => (None, None, None, Some(e)),
    };
    let outcome = schedule::classify(status, retry_after.as_deref());
    let config = &shared.config;
    let max_retry_after = Duration::from_secs(config.max_retry_after_seconds);
    let next = |throttle: Option<Duration>| {
        schedule::next_delay(
            &config.retry_schedule_seconds,
            attempt as u32,
            config.jitter,
            throttle,
            max_retry_after,
            &mut rand::rng(),
        )
    };
    let (new_status, next_at) = match outcome {
        AttemptOutcome::Delivered => {
            done.outcome = "delivered";
            (DeliveryStatus::Delivered, at)
        }
        // Nothing is lost: the delivery waits, due, for the executor to be enabled again.
        AttemptOutcome::Gone => {
            done.outcome = "gone";
            done.gone = true;
            (DeliveryStatus::Pending, at)
        }
        AttemptOutcome::Retry | AttemptOutcome::Throttled { .. } => {
            let throttle = match outcome {
                AttemptOutcome::Throttled { retry_after } => {
                    done.outcome = "throttled";
                    retry_after
                }
                _ => None,
            };
            match next(throttle) {
                Some(delay) => (
                    DeliveryStatus::Pending,
                    at + delay.as_millis().min(i64::MAX as u128) as i64,
                ),
                None => {
                    done.outcome = "dead";
                    (DeliveryStatus::Dead, at)
                }
            }
        }
    };
    if new_status != DeliveryStatus::Dead {
        done.release = None;
    }
    done.record = Some(AttemptRecord {
        delivery_id: d.id,
        attempt,
        at,
        status_code: status.map(i64::from),
        latency_ms: latency.as_millis().min(i64::MAX as u128) as i64,
        response,
        error,
        new_status,
        next_attempt_at: next_at,
    });
    done
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    excerpt: String,
}

/// Checks, signs and posts; `Err` says why there is no answer.
async fn post(
    shared: &Shared,
    d: &ClaimedDelivery,
    target: &DeliveryTarget,
) -> Result<Answer, String> {
    let url = shared
        .policy
        .check(&target.webhook_url)
        .await
        .map_err(|e| format!("webhook URL refused: {e}"))?
        .into_url();
    let now = now_millis();
    let timestamp = now / 1000;
    let secrets = target.signing_secrets(now);
    let signature = sign::signature_header(&secrets, &d.id, timestamp, d.payload.as_bytes())
        .map_err(|e| format!("cannot sign: {e}"))?;
    let response = shared
        .client
        .post(url)
        .header("webhook-id", &d.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header("content-type", "application/json")
        .body(d.payload.clone())
        .send()
        .await
        .map_err(describe)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let excerpt = excerpt(response, shared.config.response_excerpt_bytes).await;
    Ok(Answer {
        status,
        retry_after,
        excerpt,
    })
}

/// The start of the answer's body: read only as far as the excerpt goes, so a huge or endless
/// answer costs nothing.
async fn excerpt(mut response: reqwest::Response, max: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < max {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk[..chunk.len().min(max - buf.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// A transport error in a line, with its cause (reqwest's own message hides it).
fn describe(e: reqwest::Error) -> String {
    // The URL is the executor's, known already; its query may carry a token (`?token=…`) and
    // this text is stored, listed by `hopper deliveries` and shown on the dashboard.
    let e = e.without_url();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut msg = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    /// An executor's URL may carry a token in its query; a failed attempt's stored text does
    /// not repeat it.
    #[tokio::test]
    async fn a_failed_attempt_does_not_repeat_the_url() {
        let e = reqwest::get("http://127.0.0.1:9/hook?token=sekrit-q")
            .await
            .unwrap_err();
        let text = super::describe(e);
        assert!(text.starts_with("could not connect"), "{text}");
        assert!(!text.contains("sekrit-q"), "{text}");
    }
}
