//! A small inbound-only SMTP server (RFC 5321): enough for an MTA or a mail client to hand
//! Hopper a message. It relays nothing: `RCPT TO` accepts only the configured domains. A
//! message is answered `250` only after the sink has committed it; a failure to commit is
//! `451` (the sender keeps the message and retries), a refusal is `550`.
//!
//! Sessions are limited globally and per peer ([`peers`]); a client must start a transaction
//! within `greeting_timeout_secs` (the longer `timeout_seconds` applies only once `MAIL FROM`
//! is in), so idle connections cannot keep real senders out. Replies carry RFC 3463 enhanced
//! status codes.

mod peers;
mod tls;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::SmtpConfig;
pub use tls::tls_acceptor;

/// Where accepted messages go.
pub trait Sink: Send + Sync + 'static {
    /// Stores a message; `Ok` carries an id for the `250` reply.
    fn deliver(&self, raw: Vec<u8>, envelope: Envelope)
    -> BoxFuture<'_, Result<String, Rejection>>;
}

#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// The `MAIL FROM` reverse-path; empty for a bounce (`MAIL FROM:<>`).
    pub mail_from: String,
    pub recipients: Vec<String>,
}

/// The endpoint a message that came in by SMTP is recorded under (it has no webhook path).
pub const ENDPOINT: &str = "smtp";
const MAIL_FROM: &str = "smtp-mail-from";
const RCPT_TO: &str = "smtp-rcpt-to";

impl Envelope {
    /// What is recorded with the message in place of HTTP headers, which SMTP has none of;
    /// [`Envelope::from_stored`] reads it back for a replay.
    pub fn stored_headers(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert(MAIL_FROM.into(), self.mail_from.clone().into());
        map.insert(RCPT_TO.into(), self.recipients.clone().into());
        serde_json::Value::Object(map)
    }

    /// The envelope from the stored headers as (name, value) pairs, a list giving one pair
    /// per entry; what is missing is left empty.
    pub fn from_stored(headers: &[(String, String)]) -> Self {
        let values = |name: &'static str| {
            headers
                .iter()
                .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        Self {
            mail_from: values(MAIL_FROM).next().unwrap_or_default(),
            recipients: values(RCPT_TO).collect(),
        }
    }
}

#[derive(Debug)]
pub enum Rejection {
    /// 5xx: do not retry.
    Permanent(String),
    /// 5xx, by policy (sender not allowed, not authenticated): `550 5.7.1`.
    Refused(String),
    /// 4xx: try again later.
    Temporary(String),
}

/// Longest command line accepted (RFC 5321 allows 512; extensions add some).
const MAX_LINE: usize = 4096;

struct Ctx {
    config: SmtpConfig,
    max_bytes: usize,
    sink: Arc<dyn Sink>,
    tls: Option<TlsAcceptor>,
}

impl Ctx {
    fn idle(&self) -> Duration {
        Duration::from_secs(self.config.timeout_seconds.max(1))
    }

    fn greeting(&self) -> Duration {
        Duration::from_secs(self.config.greeting_timeout_secs.max(1))
    }
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
    let peers = peers::PeerLimit::new(config.max_connections_per_peer);
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
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, typically: retrying at once would spin.
                tracing::warn!(error = %e, "SMTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = peers.try_acquire(peer.ip()) else {
            tracing::debug!(%peer, "SMTP peer over its connection limit");
            turn_away(
                &stream,
                b"421 4.7.0 too many connections from your address, try later\r\n",
            );
            continue;
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            turn_away(&stream, b"421 4.3.2 too many connections, try later\r\n");
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &ctx).await {
                tracing::debug!(%peer, error = %e, "SMTP session ended");
            }
            drop((permit, slot));
        });
    }
}

/// Answers and closes without waiting on the client: a fresh socket takes a short reply
/// without blocking, and the accept loop must never wait for a peer it is refusing.
fn turn_away(stream: &TcpStream, reply: &[u8]) {
    let _ = stream.try_write(reply);
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

async fn connection(stream: TcpStream, ctx: &Ctx) -> io::Result<()> {
    let greeting = format!("220 {} ESMTP Hopper\r\n", ctx.config.hostname);
    let Some(plain) = session(stream, ctx, false, Some(&greeting)).await? else {
        return Ok(());
    };
    let Some(acceptor) = &ctx.tls else {
        return Ok(());
    };
    // After STARTTLS the client starts over with EHLO, and gets no second greeting. The
    // handshake is bounded too: a client stalling in it would hold its slots for good.
    let secured = tokio::time::timeout(ctx.greeting(), acceptor.accept(plain))
        .await
        .map_err(|_| timed_out("TLS handshake"))??;
    session(secured, ctx, true, None).await.map(|_| ())
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// Writes a reply within `within`: a client that stops reading would otherwise block the
/// session, and keep its slots, once its unread replies fill the socket buffer.
async fn send<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8], within: Duration) -> io::Result<()> {
    tokio::time::timeout(within, w.write_all(bytes))
        .await
        .map_err(|_| timed_out("client is not reading"))?
}

/// One SMTP session on `stream`. Returns the stream when the client asked for STARTTLS (what
/// it sent after the command is discarded, as RFC 3207 requires).
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    ctx: &Ctx,
    secured: bool,
    greeting: Option<&str>,
) -> io::Result<Option<S>> {
    let (config, max_bytes, sink) = (&ctx.config, ctx.max_bytes, ctx.sink.as_ref());
    let offer_tls = ctx.tls.is_some() && !secured;
    let idle = ctx.idle();
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let host = &config.hostname;
    if let Some(g) = greeting {
        send(&mut write, g.as_bytes(), idle).await?;
    }
    let mut greeted = false;
    let mut env: Option<Envelope> = None;
    // Outside a transaction the client must begin one by `start_by`, however many commands
    // it sends meanwhile (NOOP keeps nothing alive); inside one, `idle` between commands.
    let mut start_by = Instant::now() + ctx.greeting();
    let mut line = Vec::new();
    loop {
        line.clear();
        let deadline = match env {
            Some(_) => Instant::now() + idle,
            None => start_by,
        };
        let read = tokio::time::timeout_at(deadline, read_line(&mut reader, &mut line, MAX_LINE));
        let Ok(read) = read.await else {
            let bye = b"421 4.4.2 timeout, closing connection\r\n";
            let _ = send(&mut write, bye, Duration::from_secs(1)).await;
            return Err(timed_out("idle"));
        };
        let n = read?;
        if n == 0 {
            return Ok(None);
        }
        if n > line.len() {
            // The rest of the line has been read and dropped, so the session is still in
            // step: the client gets its error and may go on.
            send(&mut write, b"500 5.5.2 line too long\r\n", idle).await?;
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        let verb = verb.to_ascii_uppercase();
        if matches!(verb.as_str(), "EHLO" | "HELO" | "RSET") && env.take().is_some() {
            start_by = Instant::now() + ctx.greeting();
        }
        let reply: String = match verb.as_str() {
            "EHLO" => {
                greeted = true;
                let tls = if offer_tls { "250-STARTTLS\r\n" } else { "" };
                format!(
                    "250-{host}\r\n250-SIZE {max_bytes}\r\n{tls}250-8BITMIME\r\n\
                     250-ENHANCEDSTATUSCODES\r\n250 PIPELINING"
                )
            }
            "HELO" => {
                greeted = true;
                format!("250 {host}")
            }
            "STARTTLS" if offer_tls => {
                send(&mut write, b"220 2.0.0 ready to start TLS\r\n", idle).await?;
                write.flush().await?;
                return Ok(Some(reader.into_inner().unsplit(write)));
            }
            "MAIL" if !greeted => "503 5.5.1 send HELO or EHLO first".into(),
            "MAIL" if config.require_tls && !secured => "530 5.7.0 issue STARTTLS first".into(),
            "MAIL" if env.is_some() => "503 5.5.1 a transaction is open, RSET first".into(),
            "MAIL" => match path_arg(arg) {
                Some((from, params)) => {
                    let declared = params.split_whitespace().find_map(|p| {
                        p.to_ascii_uppercase()
                            .strip_prefix("SIZE=")
                            .and_then(|n| n.parse::<usize>().ok())
                    });
                    if declared.is_some_and(|n| n > max_bytes) {
                        "552 5.3.4 message exceeds the size limit".into()
                    } else {
                        env = Some(Envelope {
                            mail_from: from,
                            recipients: Vec::new(),
                        });
                        "250 2.1.0 OK".into()
                    }
                }
                None => "501 5.5.4 syntax: MAIL FROM:<address>".into(),
            },
            "RCPT" => match (&mut env, path_arg(arg)) {
                (None, _) => "503 5.5.1 send MAIL first".into(),
                (_, None) => "501 5.5.4 syntax: RCPT TO:<address>".into(),
                (Some(e), Some((to, _))) => {
                    let ok = domain_of(&to)
                        .is_some_and(|d| config.domains.iter().any(|a| a.eq_ignore_ascii_case(&d)));
                    if !ok {
                        "550 5.7.1 relay not permitted".into()
                    } else if e.recipients.len() >= 100 {
                        "452 4.5.3 too many recipients".into()
                    } else {
                        e.recipients.push(to);
                        "250 2.1.5 OK".into()
                    }
                }
            },
            "DATA" => match env.take() {
                Some(e) if !e.recipients.is_empty() => {
                    let go = b"354 end data with <CR><LF>.<CR><LF>\r\n";
                    send(&mut write, go, idle).await?;
                    let data = read_data(&mut reader, max_bytes, idle).await?;
                    start_by = Instant::now() + ctx.greeting();
                    match data {
                        None => "552 5.3.4 message exceeds the size limit".into(),
                        Some(raw) => deliver(sink, raw, e).await,
                    }
                }
                other => {
                    env = other;
                    "503 5.5.1 send RCPT first".into()
                }
            },
            "RSET" | "NOOP" => "250 2.0.0 OK".into(),
            "VRFY" => "252 2.5.0 cannot verify, send some mail".into(),
            "QUIT" => {
                send(&mut write, b"221 2.0.0 bye\r\n", idle).await?;
                return Ok(None);
            }
            _ => "502 5.5.1 command not implemented".into(),
        };
        send(&mut write, format!("{reply}\r\n").as_bytes(), idle).await?;
    }
}

/// The reply to a complete message.
async fn deliver(sink: &dyn Sink, raw: Vec<u8>, envelope: Envelope) -> String {
    let from = envelope.mail_from.clone();
    match sink.deliver(raw, envelope).await {
        Ok(id) => format!("250 2.0.0 OK queued as {id}"),
        Err(Rejection::Refused(why)) => {
            tracing::info!(mail_from = %from, reason = %why, "SMTP message refused");
            format!("550 5.7.1 {}", one_line(&why))
        }
        Err(Rejection::Permanent(why)) => format!("550 5.6.0 {}", one_line(&why)),
        Err(Rejection::Temporary(why)) => format!("451 4.3.0 {}", one_line(&why)),
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Reads one line of at most `max` bytes (longer lines are cut, the rest discarded).
/// Returns the bytes consumed: more than `out.len()` when the line was cut.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    out: &mut Vec<u8>,
    max: usize,
) -> io::Result<usize> {
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
) -> io::Result<Option<Vec<u8>>> {
    let mut msg = Vec::new();
    let mut too_big = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = tokio::time::timeout(timeout, read_line(r, &mut line, max.saturating_add(3)))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle in DATA"))??;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF in DATA"));
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
