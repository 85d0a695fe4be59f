//! The core's error type. `api::error` maps it to HTTP statuses in one place.

use crate::config::ConfigError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum HopperError {
    #[error("{0}")]
    NotFound(String),
    /// The request is well-formed but its content is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the current state (finished task, wrong status...).
    #[error("{0}")]
    Conflict(String),
    /// An executor acted under a lease that is no longer the task's current one: it expired,
    /// was released, or another claim took the task over.
    #[error("{0}")]
    LeaseLost(String),
    /// The caller may not do this (e.g. finishing a task another executor holds).
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An error a remote Hopper reported, kept as it was sent.
    #[error("{message}")]
    Remote {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach the Hopper server: {0}")]
    Transport(String),
    /// Somewhere Hopper writes to (the memory repository) is down or refused; the work is
    /// retried later and nothing was lost.
    #[error("{0}")]
    Unavailable(String),
    /// Hopper's own stored data does not read back (a bug or a hand edit).
    #[error("{0}")]
    Internal(String),
    /// A fault injected by a test to simulate a crash at a precise point.
    #[error("injected fault: {0}")]
    InjectedFault(&'static str),
}

pub type Result<T, E = HopperError> = std::result::Result<T, E>;
