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
//! The delivery worker (`worker`) and the fan-out of events into the outbox (`dispatch`) are
//! built on these: the outbox row is written in the transaction that caused the event, the
//! worker claims due rows, checks the URL, signs, sends with the policy's client, classifies the
//! answer and schedules the next attempt.

mod address;
mod attempt;
pub mod deliveries;
pub mod dispatch;
mod run;
pub mod schedule;
pub mod sign;
pub mod url_policy;
mod worker;

pub use run::{OutboundHandle, spawn};
pub use schedule::{AttemptOutcome, classify, next_delay, parse_retry_after};
pub use sign::{SignError, generate_secret, sign, signature_header};
pub use url_policy::{AddressClass, CheckedUrl, UrlPolicy, UrlPolicyError, UrlRefused};
