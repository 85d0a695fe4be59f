//! The contract between Hopper's core and its integrations.
//!
//! Integrations depend on this crate and never on the core, so the dependency arrows point one
//! way: a source turns a *verified* request into a [`TaskDraft`]; the core decides where it goes.

mod draft;
mod inbound;

pub use draft::{Priority, SourceRef, TaskDraft};
pub use inbound::{InboundError, InboundRequest, InboundSource, Outcome, Verified};
