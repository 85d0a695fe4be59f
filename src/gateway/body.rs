//! Reading a webhook body: whole (it is verified and stored as received), within the source's
//! size limit, within the server's deadline, and within a budget of body bytes held in memory
//! across all requests at once.
//!
//! The budget is there because a body has to be read before its signature can be checked:
//! without it, anyone could make the gateway hold a few hundred 25 MB bodies at once. Each
//! request reserves what it announces (Content-Length, or the source's limit when it announces
//! nothing) for as long as it is handled; when the budget is spent, a request waits briefly
//! and then gets 503 with Retry-After rather than the process running out of memory.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::error::{ApiError, ApiResult};

/// How long a request waits for room in the budget before it is turned away.
const WAIT: Duration = Duration::from_secs(1);

/// Body bytes in memory at once, counted in KiB.
#[derive(Debug)]
pub(super) struct Budget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl Budget {
    /// `None` for 0 (no budget).
    pub fn new(bytes: u64) -> Option<Self> {
        let total_kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        let total_kib = total_kib.min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        (total_kib > 0).then(|| Self {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        })
    }

    /// Reserves room for `bytes` (at most the whole budget, so one request can always run
    /// alone), waiting up to [`WAIT`].
    async fn reserve(&self, bytes: u64) -> ApiResult<Reservation> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1))
            .unwrap_or(u32::MAX)
            .min(self.total_kib);
        let reserve = self.kib.clone().acquire_many_owned(kib);
        match tokio::time::timeout(WAIT, reserve).await {
            Ok(Ok(permit)) => {
                metrics::gauge!(RESERVED).increment(f64::from(kib));
                Ok(Reservation {
                    _permit: permit,
                    kib,
                })
            }
            // Timed out, or (never, the semaphore is not closed) closed.
            _ => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many webhook bodies in flight; retry shortly",
            )
            .retry_after(1)),
        }
    }
}

/// `hopper_inbound_body_kib_reserved`: how much of the budget requests hold right now.
const RESERVED: &str = "hopper_inbound_body_kib_reserved";

/// A request's share of the budget, given back when dropped.
pub(super) struct Reservation {
    _permit: OwnedSemaphorePermit,
    kib: u32,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        metrics::gauge!(RESERVED).decrement(f64::from(self.kib));
    }
}

/// What a body must stay within.
pub(super) struct Limits<'a> {
    pub max_bytes: usize,
    pub deadline: Option<Duration>,
    pub budget: Option<&'a Budget>,
}

/// The body, and its reservation in the budget (to be held until the request is answered).
pub(super) async fn read(
    body: Body,
    headers: &HeaderMap,
    limits: &Limits<'_>,
) -> ApiResult<(bytes::Bytes, Option<Reservation>)> {
    let limit = limits.max_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body exceeds this source's limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let reserved = match limits.budget {
        Some(b) => Some(b.reserve(declared.unwrap_or(limit as u64)).await?),
        None => None,
    };
    let read = axum::body::to_bytes(body, limit);
    let read = match limits.deadline {
        Some(d) => tokio::time::timeout(d, read).await.map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the body did not arrive within {} ms", d.as_millis()),
            )
        })?,
        None => read.await,
    };
    let bytes = read.map_err(|e| {
        let overflow = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if overflow {
            too_large()
        } else {
            ApiError::bad_request(format!("could not read the body: {e}"))
        }
    })?;
    Ok((bytes, reserved))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_no_budget() {
        assert!(Budget::new(0).is_none());
        assert_eq!(Budget::new(1).map(|b| b.total_kib), Some(1));
    }

    #[tokio::test]
    async fn one_request_larger_than_the_budget_still_runs_alone() {
        let budget = Budget::new(64 * 1024).unwrap();
        let big = budget.reserve(10 << 20).await.unwrap();
        assert_eq!(big.kib, 64);
        // Nothing else fits until it is given back.
        let refused = budget.reserve(1).await.err().unwrap();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.retry_after_secs, Some(1));
        drop(big);
        assert_eq!(budget.reserve(1).await.unwrap().kib, 1);
    }
}
