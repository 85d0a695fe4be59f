//! Hopper: a webhook gateway and hierarchical task router.
//!
//! The same code runs as a global instance, per-project instances and ephemeral orchestration
//! runs ("Hoppers all the way down"). See `ARCHITECTURE.md` for the module map.

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod gateway;
pub mod inbound;
pub mod mcp;
pub mod memory;
pub mod outbound;
pub mod reports;
pub mod routing;
pub mod server;
pub mod service;
pub mod store;
pub mod sync;
pub mod ui;

pub use engine::Engine;
pub use error::{HopperError, Result};

/// mimalloc instead of the system allocator, for every binary built on this crate (the server,
/// the tests, the benchmarks): a webhook delivery makes hundreds of short-lived allocations on
/// whichever worker thread runs it, and glibc's malloc spent 9% of the inbound benchmark's CPU
/// on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
