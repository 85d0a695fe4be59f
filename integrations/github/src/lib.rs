//! GitHub webhooks: `POST /webhooks/github`.
//!
//! Verified with `X-Hub-Signature-256` (HMAC-SHA256 of the raw body, `sha256=` + hex) before
//! anything is parsed; parsed with octocrab's webhook models (`issues`, the busiest event, with
//! octocrab's action and a slim issue model: see `interpret`). Works the same for repository and
//! organisation webhooks and GitHub App deliveries (the installation id is kept on the task so
//! the outbound side can answer as the App).

mod config;
mod interpret;
pub mod report;

use hopper_integration_api::{
    InboundError, InboundRequest, InboundSource, Interpretation, Plugin, Secret, SourceSettings,
    StoredRequest, Verified, verify,
};

pub use config::GithubConfig;
pub use report::{GithubReportConfig, GithubReporter};

pub fn plugin() -> Plugin {
    Plugin {
        name: "github",
        build,
        reporter: Some(report::reporter),
    }
}

fn build(settings: &SourceSettings<'_>) -> Result<Vec<Box<dyn InboundSource>>, String> {
    let config: GithubConfig = settings.parse()?;
    let secret = settings.secret(config.secret.clone(), "HOPPER_GITHUB_WEBHOOK_SECRET");
    Ok(vec![Box::new(GithubSource { config, secret })])
}

pub struct GithubSource {
    config: GithubConfig,
    secret: Option<Secret>,
}

impl GithubSource {
    pub fn new(config: GithubConfig, secret: Option<Secret>) -> Self {
        Self { config, secret }
    }
}

impl InboundSource for GithubSource {
    fn kind(&self) -> &str {
        "github"
    }

    fn path(&self) -> &str {
        "github"
    }

    fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    fn instance(&self) -> Option<&str> {
        self.config.instance.as_deref()
    }

    fn verify<'a>(
        &self,
        request: InboundRequest<'a>,
    ) -> Result<Verified<InboundRequest<'a>>, InboundError> {
        let secret = self.secret.as_ref().ok_or(InboundError::NotConfigured)?;
        let signature = request
            .header("x-hub-signature-256")
            .and_then(|v| v.trim().strip_prefix("sha256="))
            .ok_or(InboundError::Unauthorized)?;
        if verify::hmac_sha256_hex(secret, &[request.body], signature) {
            Ok(Verified::vouch(request))
        } else {
            Err(InboundError::Unauthorized)
        }
    }

    fn interpret(
        &self,
        request: &Verified<InboundRequest<'_>>,
    ) -> Result<Interpretation, InboundError> {
        interpret::interpret(&self.config, request.get())
    }

    /// `X-Hub-Signature-256` is never stored, so the HMAC cannot be checked again: the stored
    /// record stands for it. Whether the secret is configured today does not matter either; it
    /// verifies new deliveries, not this one. `interpret` still checks `X-GitHub-Event` and
    /// the JSON against today's settings.
    fn reinterpret(&self, stored: StoredRequest<'_>) -> Result<Interpretation, InboundError> {
        stored.recorded_by(self.kind(), &[self.path()])?;
        self.interpret(&Verified::vouch(stored.request))
    }
}
