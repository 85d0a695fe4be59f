//! Outbound delivery: tasks reach executors as signed webhooks (the Standard Webhooks spec).
//!
//! The building blocks here are pure and independent of storage:
//! - `sign`: `whsec_` secrets and the `webhook-signature` header; during a secret rotation the
//!   old and the new secret both sign, so a receiver holding either accepts the message.
//! - `url_policy`: where a webhook may point. URLs are checked at registration and before every
//!   send, and the delivery client re-checks every DNS answer at connect time, so loopback,
//!   private, link-local and metadata addresses are unreachable unless `outbound.allowlist` /
//!   `HOPPER_OUTBOUND_ALLOWLIST` names them. Redirects are never followed.
//! - `schedule`: what an attempt's answer means (delivered, retry, gone, throttled) and the wait
//!   before the next attempt (the spec's schedule with jitter, `Retry-After` within bounds,
//!   dead letter after the last).
//!
//! Built on them, the delivery itself:
//! - The outbox: triggers on `tasks` (migration 12) record every task event in `task_outbox`,
//!   in the transaction of the change, whichever path wrote it.
//! - `dispatch`: outbox rows → `deliveries` in the root store (one per interested executor,
//!   idempotent), claiming for auto-claim executors.
//! - `worker` and `attempt`: claim due deliveries (SKIP LOCKED on PostgreSQL, a lock deadline
//!   everywhere), check the URL, sign, send with the policy's client, classify, record many
//!   results per transaction, disable endpoints that answer 410 or keep failing.
//! - `deliveries`: list, show, retry, recover (the API and the CLI).
//! - `run`: [`spawn`] starts the dispatcher, the worker and the metrics refresher for an engine
//!   and returns an [`OutboundHandle`] to join once the token is cancelled; `hopper serve`
//!   calls it, and so can a benchmark. A benchmark enqueues deliveries directly with
//!   `Store::insert_deliveries` (on `Engine::registry_store`) and executors with
//!   `Store::put_executor` (then `Engine::refresh_outbox_wanted`, as registration would), or
//!   drives the dispatcher by hand with [`dispatch::dispatch_all`].

mod address;
mod attempt;
pub mod deliveries;
pub mod dispatch;
mod run;
pub mod schedule;
pub mod sign;
pub mod url_policy;
mod worker;

pub use run::{OutboundHandle, OutboundStartError, spawn, spawn_with};
pub use schedule::{AttemptOutcome, classify, next_delay, parse_retry_after};
pub use sign::{SignError, generate_secret, sign, signature_header};
pub use url_policy::{AddressClass, CheckedUrl, UrlPolicy, UrlPolicyError, UrlRefused};
