use crate::TaskDraft;

/// The parts of an HTTP request (or SMTP message) an inbound source needs. Verification works on
/// the raw bytes: a signature is checked before anything is parsed.
#[derive(Debug, Clone, Copy)]
pub struct InboundRequest<'a> {
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl<'a> InboundRequest<'a> {
    /// Header lookup, case-insensitive as HTTP requires.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head().header(name)
    }

    /// The headers alone, as [`InboundSource::precheck`] sees them.
    pub fn head(&self) -> InboundHeaders<'a> {
        InboundHeaders {
            headers: self.headers,
        }
    }

    /// The media type without parameters, lower-cased (`application/json`).
    pub fn media_type(&self) -> String {
        self.header("content-type")
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// Fails with 415 unless the media type is one of `accepted`.
    pub fn require_media_type(&self, accepted: &[&str]) -> Result<(), InboundError> {
        let mt = self.media_type();
        if accepted.iter().any(|a| *a == mt) {
            Ok(())
        } else {
            Err(InboundError::UnsupportedMediaType(format!(
                "`{}` (expected {})",
                if mt.is_empty() { "none" } else { &mt },
                accepted.join(" or ")
            )))
        }
    }
}

/// A request's headers before its body has been read: what [`InboundSource::precheck`] gets.
#[derive(Debug, Clone, Copy)]
pub struct InboundHeaders<'a> {
    pub headers: &'a [(String, String)],
}

impl<'a> InboundHeaders<'a> {
    /// Header lookup, case-insensitive as HTTP requires.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An event Hopper stored when it arrived, read back for a replay.
///
/// Only a request that passed its source's [`verify`](InboundSource::verify) (or the SMTP
/// listener's checks) is ever stored, so the stored record attests that the check was made on
/// arrival. The proof itself is gone: signatures and credentials are never stored, and a
/// signed timestamp has expired since. What can still be checked is each source's to decide,
/// in [`InboundSource::reinterpret`]; the core only hands the record over.
#[derive(Debug, Clone, Copy)]
pub struct StoredRequest<'a> {
    /// The stored event's id.
    pub event_id: &'a str,
    /// The `kind` of the source that recorded it (`github`, `http:deploys`).
    pub source: &'a str,
    /// The door it came in by: a source's path (`github`, `slack/events`), or `smtp`.
    pub endpoint: &'a str,
    /// When it was received, epoch milliseconds.
    pub received_at: i64,
    /// The body as received, with the headers as stored (no signatures, no credentials).
    pub request: InboundRequest<'a>,
}

impl StoredRequest<'_> {
    /// Fails unless the event was recorded by a source of this `kind`, through one of `doors`.
    /// The core finds the source by the door the event came in by; this makes the source
    /// confirm it, so it never takes as its own an event that another source verified.
    pub fn recorded_by(&self, kind: &str, doors: &[&str]) -> Result<(), InboundError> {
        if self.source == kind && doors.contains(&self.endpoint) {
            Ok(())
        } else {
            Err(InboundError::Refused(format!(
                "event {} came from `{}` at `{}`, not from this `{kind}` source",
                self.event_id, self.source, self.endpoint
            )))
        }
    }
}

/// Proof that a request passed its source's verification (on arrival, or, for a stored event,
/// [`InboundSource::reinterpret`]). Only sources build one: the core never calls
/// [`Verified::vouch`], so it cannot turn an unverified request into a task by mistake.
#[derive(Debug)]
pub struct Verified<T> {
    inner: T,
}

impl<T> Verified<T> {
    /// Called by a source's `verify` once the signature or token has been checked, and by its
    /// `reinterpret` once it has accepted a stored event.
    pub fn vouch(inner: T) -> Self {
        Self { inner }
    }

    pub fn get(&self) -> &T {
        &self.inner
    }

    pub fn into_inner(self) -> T {
        self.inner
    }
}

/// What a verified event means.
#[derive(Debug, Clone, PartialEq)]
pub struct Interpretation {
    /// The sender's delivery id: a redelivery with the same id creates nothing new.
    pub delivery_id: Option<String>,
    /// What the sender says happened (`issues.opened`, `Merge Request Hook.open`, `app_mention`).
    pub event_type: String,
    pub action: Action,
    /// The delivery id of an earlier event this one answers (an email's `In-Reply-To`): if
    /// that event made a task, this becomes a comment on it instead of a new task.
    pub replies_to: Option<String>,
    /// The issue the event is about, as it stands now (GitHub and GitLab issue events): what
    /// two-way sync compares with the task linked to it.
    pub issue: Option<Box<crate::sync::IssueState>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A new task (or a comment on an earlier one, see [`Interpretation::replies_to`]).
    Task(Box<TaskDraft>),
    /// Valid but uninteresting (e.g. an unconfigured action); recorded with the reason.
    Ignored { reason: String },
    /// Answered with this body and not recorded (ping, URL verification challenge).
    Reply { body: serde_json::Value },
}

impl Interpretation {
    pub fn new(delivery_id: Option<String>, event_type: impl Into<String>, action: Action) -> Self {
        Self {
            delivery_id,
            event_type: event_type.into(),
            action,
            replies_to: None,
            issue: None,
        }
    }

    pub fn task(
        delivery_id: Option<String>,
        event_type: impl Into<String>,
        draft: TaskDraft,
    ) -> Self {
        Self::new(delivery_id, event_type, Action::Task(Box::new(draft)))
    }

    pub fn about_issue(mut self, issue: crate::sync::IssueState) -> Self {
        self.issue = Some(Box::new(issue));
        self
    }

    pub fn replying_to(mut self, delivery_id: Option<String>) -> Self {
        self.replies_to = delivery_id;
        self
    }

    pub fn ignored(
        delivery_id: Option<String>,
        event_type: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::new(
            delivery_id,
            event_type,
            Action::Ignored {
                reason: reason.into(),
            },
        )
    }
}

/// What the core did with an event, for sources that shape their own answer (Slack's slash
/// commands answer with a message naming the task).
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub event_id: String,
    /// `accepted`, `duplicate`, `ignored` or `commented`.
    pub status: &'static str,
    pub task_id: Option<String>,
    pub title: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("missing or invalid signature")]
    Unauthorized,
    #[error("source not configured")]
    NotConfigured,
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("unsupported content type: {0}")]
    UnsupportedMediaType(String),
    /// Verified, but refused by policy (sender not on the allowlist, unknown recipient domain).
    #[error("refused: {0}")]
    Refused(String),
}

/// One inbound integration (GitHub, GitLab, Slack, email, generic HTTP).
pub trait InboundSource: Send + Sync {
    /// `source.kind` of the tasks it creates, and the label in metrics and `hopper events`.
    fn kind(&self) -> &str;

    /// Where it listens, below `/webhooks/` (`github`, `slack/events`, `http/deploys`).
    fn path(&self) -> &str;

    /// Largest body accepted; larger requests get 413 before they are read in full.
    fn max_body_bytes(&self) -> usize;

    /// The instance its tasks go to; `None` for the root (global) instance.
    fn instance(&self) -> Option<&str> {
        None
    }

    /// Checks, before the body is read, what the headers alone can show: a token in a header
    /// (GitLab's `X-Gitlab-Token`, the email door's bearer token), in constant time. A request
    /// that fails here is answered without its body ever being read, so an impostor cannot make
    /// the gateway hold bodies in memory. It is only a first gate: [`verify`](Self::verify)
    /// still runs on the whole request. The default lets every request through (a signature
    /// over the body, as GitHub's, can only be checked once the body is in).
    fn precheck(&self, _headers: InboundHeaders<'_>) -> Result<(), InboundError> {
        Ok(())
    }

    /// Checks the signature or token on the raw request, in constant time.
    fn verify<'a>(
        &self,
        request: InboundRequest<'a>,
    ) -> Result<Verified<InboundRequest<'a>>, InboundError>;

    /// Decides what a verified request means.
    fn interpret(
        &self,
        request: &Verified<InboundRequest<'_>>,
    ) -> Result<Interpretation, InboundError>;

    /// Reads a stored event again with this source's current configuration (a replay, after
    /// a mapping changed, say). Its signature cannot be checked again ([`StoredRequest`] says
    /// why): the source re-checks what it still can (that the event is its own; the headers
    /// and payload shape it relies on, in `interpret`), skips what no longer applies (a
    /// timestamp window), and vouches for the rest on the strength of the stored record.
    /// There is no default: each source decides what a stored event of its own is worth.
    fn reinterpret(&self, stored: StoredRequest<'_>) -> Result<Interpretation, InboundError>;

    /// A custom answer body; `None` answers with the receipt as JSON.
    fn acknowledge(&self, _receipt: &Receipt) -> Option<serde_json::Value> {
        None
    }
}
