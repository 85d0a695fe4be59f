use crate::TaskDraft;

/// The parts of an HTTP request (or SMTP message) an inbound source needs. Verification works on
/// the raw bytes: a signature is checked before anything is parsed.
#[derive(Debug, Clone)]
pub struct InboundRequest<'a> {
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl InboundRequest<'_> {
    /// Header lookup, case-insensitive as HTTP requires.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Proof that a request passed its source's verification. Only a source can build one, so the
/// core cannot turn an unverified request into a task by mistake.
#[derive(Debug)]
pub struct Verified<T> {
    inner: T,
}

impl<T> Verified<T> {
    /// Called by a source's `verify` once the signature or token has been checked.
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

/// What a verified event turns into.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A new task, plus the sender's delivery id used to drop redeliveries.
    Task {
        delivery_id: Option<String>,
        draft: Box<TaskDraft>,
    },
    /// Valid but uninteresting (e.g. an unconfigured action); recorded with the reason.
    Ignored { reason: String },
    /// The source must answer with this body itself (ping, URL verification challenge).
    Reply { body: serde_json::Value },
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
}

/// One inbound integration (GitHub, GitLab, Slack, email, generic HTTP).
pub trait InboundSource: Send + Sync {
    /// Stable name, used in routes (`/webhooks/{name}`), metrics and the `source.kind` field.
    fn name(&self) -> &'static str;

    /// Checks the signature or token on the raw request, in constant time.
    fn verify<'a>(
        &self,
        request: InboundRequest<'a>,
    ) -> Result<Verified<InboundRequest<'a>>, InboundError>;

    /// Decides what a verified request means.
    fn interpret(&self, request: &Verified<InboundRequest<'_>>) -> Result<Outcome, InboundError>;
}
