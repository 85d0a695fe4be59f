//! TEMPORARY (outbox14 before merging sign14): replaced by sign14's mod.rs plus these lines.
mod attempt;
pub mod deliveries;
pub mod dispatch;
mod run;
mod worker;

pub use run::{OutboundHandle, spawn};
pub mod schedule;
pub mod sign;
pub mod url_policy;
