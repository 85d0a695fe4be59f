//! `outbound:`: how tasks are delivered to executors' webhooks (only read from the root
//! instance's file). Defaults follow the Standard Webhooks spec's retry schedule.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Deliver at all (workers run inside `hopper serve`).
    pub enabled: bool,
    /// One attempt's deadline, connect to last byte of the answer.
    pub timeout_seconds: u64,
    /// Delay before each attempt, the first usually 0: the spec's schedule is immediately, 5 s,
    /// 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h. After the last the message is dead.
    pub retry_schedule_seconds: Vec<u64>,
    /// Each delay is spread by up to this fraction either way, so retries of many messages to
    /// one endpoint do not arrive together.
    pub jitter: f64,
    /// A `Retry-After` on 429/503 is honoured up to this many seconds.
    pub max_retry_after_seconds: u64,
    /// After a secret rotation the old secret also signs for this long.
    pub rotation_grace_seconds: u64,
    /// An endpoint whose every delivery failed for this long is disabled (`executor.disabled`).
    pub disable_after_failing_seconds: u64,
    /// Hosts or CIDRs a webhook URL may point at although they are loopback, private,
    /// link-local or cloud metadata addresses (e.g. `127.0.0.0/8`, `executor.internal`). Also
    /// `HOPPER_OUTBOUND_ALLOWLIST`, comma-separated, added to these.
    pub allowlist: Vec<String>,
    /// Deliveries in flight at once, across executors.
    pub max_in_flight: usize,
    /// Deliveries in flight at once to one executor.
    pub per_executor_concurrency: usize,
    /// Deliveries per second to one executor (0: no limit).
    pub per_executor_rate_per_second: u32,
    /// How much of a response body an attempt keeps for `hopper deliveries show`.
    pub response_excerpt_bytes: usize,
    /// A claimed delivery stays locked for twice `timeout_seconds` plus this long (room for
    /// the wait for an executor's slot and for the result's write). It is how long the rows of
    /// a process killed mid-delivery wait before another process sends them.
    pub claim_margin_seconds: u64,
    /// A PEM file of extra certificate authorities trusted for https webhooks (an internal
    /// CA), beside the bundled Mozilla roots. A file that does not load stops start-up.
    pub ca_file: Option<String>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout_seconds: 15,
            retry_schedule_seconds: vec![
                0, 5, 300, 1_800, 7_200, 18_000, 36_000, 50_400, 72_000, 86_400,
            ],
            jitter: 0.2,
            max_retry_after_seconds: 3_600,
            rotation_grace_seconds: 86_400,
            disable_after_failing_seconds: 5 * 86_400,
            allowlist: Vec::new(),
            max_in_flight: 256,
            per_executor_concurrency: 16,
            per_executor_rate_per_second: 0,
            response_excerpt_bytes: 1_024,
            claim_margin_seconds: 30,
            ca_file: None,
        }
    }
}
