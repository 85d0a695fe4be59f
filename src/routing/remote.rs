//! What the remote deciders (the LLM client in [`super::llm`] and the Sage client in
//! [`super::sage`]) share: the request they are asked, the outcome they give, the trace kept
//! with a decision, the concurrency gate, and the validation of an answer.
//!
//! A remote decider never fails: whatever goes wrong (timeout, refused connection, HTTP error,
//! an answer that is not JSON or names no candidate) becomes [`RemoteOutcome::Abstained`] with
//! a one-line reason meant for users, and the routing chain moves on to its next router.

mod answer;
mod text;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use answer::{Verdict, judge, outcome};
pub use text::{describe_send_error, elapsed_ms, one_line, read_body, truncate};

/// The most of an answer kept in a [`RemoteTrace`].
pub const MAX_TRACE_ANSWER: usize = 8 * 1024;

/// The task as a remote decider sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSummary {
    pub id: Option<String>,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: String,
    pub required_capabilities: Vec<String>,
    /// Where the task came from; the caller fills it in.
    pub source: Option<serde_json::Value>,
}

impl From<&crate::domain::TaskDraft> for TaskSummary {
    fn from(d: &crate::domain::TaskDraft) -> Self {
        Self {
            id: None,
            title: d.title.clone(),
            description: d.description.clone(),
            tags: d.tags.clone(),
            priority: d.priority.as_str().to_owned(),
            required_capabilities: d.required_capabilities.clone(),
            source: None,
        }
    }
}

/// A project the task may go to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Candidate {
    /// The project name without `hopper-`.
    pub name: String,
    pub capabilities: Vec<String>,
    /// The names of the project's executors.
    pub executors: Vec<String>,
}

/// What a remote decider is asked: where should this task go?
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteRequest {
    pub task: TaskSummary,
    pub projects: Vec<Candidate>,
}

/// What one call cost and said, kept with the routing decision (shown by `hopper explain`).
/// Never holds an API key or a signing secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteTrace {
    pub url: String,
    pub model: Option<String>,
    /// The JSON body sent (for the LLM, the messages).
    pub request: serde_json::Value,
    /// The raw body or the message content, truncated to 8 KiB.
    pub answer: Option<String>,
    pub status: Option<u16>,
    pub usage: Option<serde_json::Value>,
    pub latency_ms: u64,
}

/// A remote decider's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RemoteOutcome {
    Decided {
        project: String,
        confidence: f64,
        reason: String,
        needs_orchestration: bool,
        trace: RemoteTrace,
    },
    /// No decision; `reason` is one sentence for users. `trace` is `None` when no call was
    /// made (the queue was full).
    Abstained {
        reason: String,
        trace: Option<RemoteTrace>,
    },
}

impl RemoteOutcome {
    /// The trace, if a call was made.
    pub fn trace(&self) -> Option<&RemoteTrace> {
        match self {
            Self::Decided { trace, .. } => Some(trace),
            Self::Abstained { trace, .. } => trace.as_ref(),
        }
    }
}

/// How many calls a client makes at once and how many may wait for a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Calls in flight at once (0 counts as 1).
    pub max_concurrency: usize,
    /// Callers that may wait for a turn; one more abstains at once with "queue full".
    pub max_queue: usize,
    /// The longest a caller waits for a turn before abstaining (`None`: as long as it takes).
    /// A deep queue before a slow model would otherwise hold tasks unrouted for minutes
    /// (1,000 waiting, 4 at a time, 2 s each: over 8 minutes for the last).
    #[serde(default)]
    pub max_wait: Option<std::time::Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrency: 4,
            max_queue: 32,
            max_wait: None,
        }
    }
}

/// [`Limits`] in force: a semaphore of `max_concurrency` permits and a count of waiters.
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Takes a waiter off the count however the wait ends (including the caller giving up).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            permits: Arc::new(Semaphore::new(limits.max_concurrency.max(1))),
            waiting: AtomicUsize::new(0),
        }
    }

    /// A turn to call, or the reason to abstain at once when `max_queue` callers already wait.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, String> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let before = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        if before >= self.limits.max_queue {
            return Err(format!(
                "queue full: {before} waiting (max_queue {}) and {} in flight",
                self.limits.max_queue,
                self.limits.max_concurrency.max(1)
            ));
        }
        let turn = self.permits.clone().acquire_owned();
        let turn = match self.limits.max_wait {
            None => turn.await,
            Some(wait) => match tokio::time::timeout(wait, turn).await {
                Ok(t) => t,
                Err(_) => {
                    return Err(format!(
                        "no turn within {} ms ({} in flight, {before} waiting before it)",
                        wait.as_millis(),
                        self.limits.max_concurrency.max(1)
                    ));
                }
            },
        };
        turn.map_err(|_| "the client is shutting down".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_refuses_beyond_the_queue() {
        let gate = Gate::new(Limits {
            max_wait: None,
            max_concurrency: 1,
            max_queue: 0,
        });
        let held = gate.enter().await.unwrap();
        let refused = gate.enter().await.unwrap_err();
        assert!(refused.starts_with("queue full: 0 waiting"), "{refused}");
        drop(held);
        assert!(gate.enter().await.is_ok());
    }

    #[tokio::test]
    async fn a_turn_that_takes_too_long_is_given_up() {
        let gate = Gate::new(Limits {
            max_wait: Some(std::time::Duration::from_millis(50)),
            max_concurrency: 1,
            max_queue: 10,
        });
        let held = gate.enter().await.unwrap();
        let started = std::time::Instant::now();
        let refused = gate.enter().await.unwrap_err();
        assert!(refused.starts_with("no turn within 50 ms"), "{refused}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        drop(held);
        assert!(gate.enter().await.is_ok());
    }
}
