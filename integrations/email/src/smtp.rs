//! A small inbound-only SMTP server (RFC 5321): enough for an MTA or a mail client to hand
//! Hopper a message. It relays nothing: `RCPT TO` accepts only the configured domains. A
//! message is answered `250` only after the sink has committed it; a failure to commit is
//! `451` (the sender keeps the message and retries), a refusal is `550`.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::SmtpConfig;

/// Where accepted messages go.
pub trait Sink: Send + Sync + 'static {
    /// Stores a message; `Ok` carries an id for the `250` reply.
    fn deliver(&self, raw: Vec<u8>, envelope: Envelope)
    -> BoxFuture<'_, Result<String, Rejection>>;
}

#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub mail_from: String,
    pub recipients: Vec<String>,
}

#[derive(Debug)]
pub enum Rejection {
    /// 5xx: do not retry.
    Permanent(String),
    /// 4xx: try again later.
    Temporary(String),
}

/// Longest command line accepted (RFC 5321 allows 512; extensions add some).
const MAX_LINE: usize = 4096;

/// The TLS acceptor for `STARTTLS`, if the config names a certificate and key.
pub fn tls_acceptor(config: &SmtpConfig) -> Result<Option<TlsAcceptor>, String> {
    // An unset `${VAR:-}` leaves an empty string: that means "not configured".
    let set = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let (Some(cert), Some(key)) = (set(&config.tls_cert), set(&config.tls_key)) else {
        if config.require_tls {
            return Err("smtp.require_tls needs smtp.tls_cert and smtp.tls_key".into());
        }
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("smtp.tls_cert: {cert}: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("smtp.tls_key: {key}: {e}"))?;
    let server = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("smtp TLS: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("smtp.tls_cert: {e}"))?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

struct Ctx {
    config: SmtpConfig,
    max_bytes: usize,
    sink: Arc<dyn Sink>,
    tls: Option<TlsAcceptor>,
}

/// Serves SMTP on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    config: SmtpConfig,
    max_message_bytes: usize,
    sink: Arc<dyn Sink>,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let ctx = Arc::new(Ctx {
        config,
        max_bytes: max_message_bytes,
        sink,
        tls,
    });
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            let mut s = stream;
            let _ = s
                .write_all(b"421 too many connections, try later\r\n")
                .await;
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &ctx).await {
                tracing::debug!(%peer, error = %e, "SMTP session ended");
            }
            drop(permit);
        });
    }
}

fn domain_of(addr: &str) -> Option<String> {
    addr.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase())
}

/// The address inside `FROM:<a@b> SIZE=1` / `TO:<a@b>`.
fn path_arg(arg: &str) -> Option<(String, &str)> {
    let start = arg.find('<')?;
    let end = arg[start..].find('>')? + start;
    Some((arg[start + 1..end].trim().to_owned(), arg[end + 1..].trim()))
}

async fn connection(stream: tokio::net::TcpStream, ctx: &Ctx) -> std::io::Result<()> {
    let greeting = format!("220 {} ESMTP Hopper\r\n", ctx.config.hostname);
    let Some(plain) = session(stream, ctx, false, Some(&greeting)).await? else {
        return Ok(());
    };
    let Some(acceptor) = &ctx.tls else {
        return Ok(());
    };
    // After STARTTLS the client starts over with EHLO, and gets no second greeting.
    let secured = acceptor.accept(plain).await?;
    session(secured, ctx, true, None).await.map(|_| ())
}

/// One SMTP session on `stream`. Returns the stream when the client asked for STARTTLS (what
/// it sent after the command is discarded, as RFC 3207 requires).
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    ctx: &Ctx,
    secured: bool,
    greeting: Option<&str>,
) -> std::io::Result<Option<S>> {
    let (config, max_bytes, sink) = (&ctx.config, ctx.max_bytes, ctx.sink.as_ref());
    let offer_tls = ctx.tls.is_some() && !secured;
    let timeout = Duration::from_secs(config.timeout_seconds.max(1));
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let host = &config.hostname;
    if let Some(g) = greeting {
        write.write_all(g.as_bytes()).await?;
    }
    let mut env: Option<Envelope> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(timeout, read_line(&mut reader, &mut line, MAX_LINE))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
        if n == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        let reply: String = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                env = None;
                let tls = if offer_tls { "250-STARTTLS\r\n" } else { "" };
                format!("250-{host}\r\n250-SIZE {max_bytes}\r\n{tls}250-8BITMIME\r\n250 PIPELINING")
            }
            "HELO" => format!("250 {host}"),
            "STARTTLS" if offer_tls => {
                write.write_all(b"220 ready to start TLS\r\n").await?;
                write.flush().await?;
                return Ok(Some(reader.into_inner().unsplit(write)));
            }
            "MAIL" if config.require_tls && !secured => "530 5.7.0 issue STARTTLS first".into(),
            "MAIL" => match path_arg(arg) {
                Some((from, params)) => {
                    let declared = params.split_whitespace().find_map(|p| {
                        p.to_ascii_uppercase()
                            .strip_prefix("SIZE=")
                            .and_then(|n| n.parse::<usize>().ok())
                    });
                    if declared.is_some_and(|n| n > max_bytes) {
                        "552 message exceeds the size limit".into()
                    } else {
                        env = Some(Envelope {
                            mail_from: from,
                            recipients: Vec::new(),
                        });
                        "250 OK".into()
                    }
                }
                None => "501 syntax: MAIL FROM:<address>".into(),
            },
            "RCPT" => match (&mut env, path_arg(arg)) {
                (None, _) => "503 MAIL first".into(),
                (_, None) => "501 syntax: RCPT TO:<address>".into(),
                (Some(e), Some((to, _))) => {
                    let ok = domain_of(&to)
                        .is_some_and(|d| config.domains.iter().any(|a| a.eq_ignore_ascii_case(&d)));
                    if !ok {
                        "550 relay not permitted".into()
                    } else if e.recipients.len() >= 100 {
                        "452 too many recipients".into()
                    } else {
                        e.recipients.push(to);
                        "250 OK".into()
                    }
                }
            },
            "DATA" => match env.take() {
                Some(e) if !e.recipients.is_empty() => {
                    write
                        .write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    match read_data(&mut reader, max_bytes, timeout).await? {
                        None => "552 message exceeds the size limit".into(),
                        Some(raw) => match sink.deliver(raw, e).await {
                            Ok(id) => format!("250 OK queued as {id}"),
                            Err(Rejection::Permanent(why)) => format!("550 {}", one_line(&why)),
                            Err(Rejection::Temporary(why)) => format!("451 {}", one_line(&why)),
                        },
                    }
                }
                other => {
                    env = other;
                    "503 RCPT first".into()
                }
            },
            "RSET" => {
                env = None;
                "250 OK".into()
            }
            "NOOP" => "250 OK".into(),
            "VRFY" => "252 cannot verify, send some mail".into(),
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(None);
            }
            _ => "502 command not implemented".into(),
        };
        write.write_all(reply.as_bytes()).await?;
        write.write_all(b"\r\n").await?;
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Reads one line of at most `max` bytes (longer lines are cut, the rest discarded).
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(total);
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(out.len());
        out.extend_from_slice(&buf[..take.min(room)]);
        r.consume(take);
        total += take;
        if done {
            return Ok(total);
        }
    }
}

/// Reads the message after `DATA` up to the lone `.` line, undoing dot-stuffing. `None` if it
/// outgrew `max` (the rest is still read, so the session stays in step).
async fn read_data<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
    timeout: Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut msg = Vec::new();
    let mut too_big = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(timeout, read_line(r, &mut line, max.saturating_add(3)))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle in DATA"))??;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "EOF in DATA",
            ));
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok((!too_big).then_some(msg));
        }
        let content = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        if msg.len() + content.len() > max {
            too_big = true;
            msg.clear();
        } else if !too_big {
            msg.extend_from_slice(content);
        }
    }
}
