//! The contract between Hopper's core and its integrations.
//!
//! Integrations depend on this crate and never on the core, so the dependency arrows point one
//! way: a source verifies a raw request and turns it into a [`TaskDraft`] (or a comment, or a
//! recorded "ignored"); the core stores it and decides where it goes.

mod draft;
mod inbound;
mod plugin;
mod report;
pub mod secret;
pub mod sync;
pub mod text;
pub mod verify;

pub use draft::{Priority, SourceRef, TaskDraft};
pub use inbound::{
    Action, InboundError, InboundHeaders, InboundRequest, InboundSource, Interpretation, Receipt,
    StoredRequest, Verified,
};
pub use plugin::{BuildResult, Plugin, SourceSettings};
pub use report::{Delivered, Moment, Report, ReportError, Reporter, ReporterResult};
pub use secret::Secret;
pub use sync::{IssueDraft, IssueState, OpenedIssue};
