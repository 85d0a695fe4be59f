//! The SMTP door for email: the listener lives in the email integration; this adapter hands
//! what it accepts to the engine, like the HTTP gateway does. Its messages are recorded under
//! the endpoint `smtp` with their envelope for headers, which is how a replay finds them.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::future::BoxFuture;
use hopper_email::EmailSource;
use hopper_email::smtp::{ENDPOINT, Envelope, Rejection, Sink};
use hopper_integration_api::{InboundError, InboundSource, SourceSettings};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, Ingest};
use crate::error::HopperError;
use crate::inbound::instance_of;

struct EngineSink {
    engine: Engine,
    source: EmailSource,
}

impl Sink for EngineSink {
    fn deliver(
        &self,
        raw: Vec<u8>,
        envelope: Envelope,
    ) -> BoxFuture<'_, Result<String, Rejection>> {
        Box::pin(async move {
            let interpretation =
                self.source
                    .interpret_smtp(&raw, &envelope)
                    .map_err(|e| match e {
                        InboundError::Refused(why) => Rejection::Refused(why),
                        other => Rejection::Permanent(other.to_string()),
                    })?;
            let instance = instance_of(&self.source).map_err(Rejection::Permanent)?;
            let headers = envelope.stored_headers();
            let receipt = self
                .engine
                .ingest(Ingest {
                    source: self.source.kind().to_owned(),
                    endpoint: ENDPOINT.into(),
                    instance,
                    headers,
                    body: raw.into(),
                    interpretation,
                    replay_of: None,
                })
                .await
                .map_err(|e| match e {
                    HopperError::Invalid(m) | HopperError::NotFound(m) => Rejection::Permanent(m),
                    other => {
                        tracing::error!(error = %other, "could not store an SMTP message");
                        Rejection::Temporary("temporary failure, try again later".into())
                    }
                })?;
            Ok(receipt.event_id)
        })
    }
}

/// Starts the listener if `inbound.email.smtp.bind` is set; returns the bound address.
pub async fn start(
    engine: &Engine,
    shutdown: CancellationToken,
) -> std::io::Result<Option<SocketAddr>> {
    let source = email_source(engine).map_err(std::io::Error::other)?;
    let bind = source.config.smtp.bind.clone();
    let Some(bind) = bind.filter(|b| !b.trim().is_empty()) else {
        return Ok(None);
    };
    let listener = TcpListener::bind(&bind).await?;
    let addr = listener.local_addr()?;
    spawn(engine.clone(), source, listener, shutdown).map_err(std::io::Error::other)?;
    Ok(Some(addr))
}

/// Serves SMTP on an already-bound listener (tests bind port 0). Fails if the configured TLS
/// certificate cannot be loaded.
pub fn spawn(
    engine: Engine,
    source: EmailSource,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let config = source.config.smtp.clone();
    let tls = hopper_email::smtp::tls_acceptor(&config)?;
    let max = source.config.max_message_bytes;
    let sink = Arc::new(EngineSink { engine, source });
    tokio::spawn(async move {
        let stop = async move { shutdown.cancelled().await };
        hopper_email::smtp::serve(listener, config, max, sink, tls, stop).await;
    });
    Ok(())
}

/// The email source as the root config describes it.
pub fn email_source(engine: &Engine) -> Result<EmailSource, String> {
    let null = serde_json::Value::Null;
    let section = engine.configs().root.inbound.get("email").unwrap_or(&null);
    let env = |k: &str| std::env::var(k).ok();
    EmailSource::from_settings(&SourceSettings { section, env: &env })
}
