//! `hopper events ...` and `hopper mailgate`.

use std::io::Read;

use anyhow::Context;

use super::output::{print_value, say};
use super::{Cli, EventsCommand};
use crate::domain::{EventFilter, InboundEventView, millis_to_rfc3339};
use crate::service::HopperService;

pub async fn events(s: &dyn HopperService, cmd: &EventsCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::List {
            source,
            status,
            limit,
        } => {
            let filter = EventFilter {
                source: source.clone(),
                status: status.clone(),
                limit: Some(*limit),
            };
            let list = s.list_events(&filter).await?;
            if json {
                print_value(&list);
            } else {
                print_events(&list);
            }
        }
        EventsCommand::Show { id } => {
            let e = s.get_event(id).await?;
            if json {
                print_value(&e);
            } else {
                print_events(std::slice::from_ref(&e));
                say!("headers: {}", e.headers);
                if let Some(r) = &e.reason {
                    say!("reason:  {r}");
                }
                say!("\n{}", e.body.as_deref().unwrap_or_default());
            }
        }
        EventsCommand::Replay { id } => {
            let r = s.replay_event(id).await?;
            if json {
                print_value(&r);
            } else {
                say!(
                    "{} {} {}",
                    r.event_id,
                    r.status,
                    r.task_id.as_deref().unwrap_or("-")
                );
            }
        }
    }
    Ok(())
}

fn print_events(list: &[InboundEventView]) {
    say!(
        "{:<36} {:<14} {:<26} {:<10} {:<37} RECEIVED",
        "ID",
        "SOURCE",
        "EVENT",
        "STATUS",
        "TASK"
    );
    for e in list {
        say!(
            "{:<36} {:<14} {:<26} {:<10} {:<37} {}",
            e.id,
            e.source,
            e.event_type.chars().take(26).collect::<String>(),
            e.status,
            e.task_id.as_deref().unwrap_or("-"),
            millis_to_rfc3339(e.received_at)
        );
    }
}

/// Why `mailgate` failed, as the exit status an MTA understands (sysexits.h): 75 makes
/// Postfix keep the message and retry, 65/77 bounce it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct MailgateError {
    pub code: u8,
    pub message: String,
}

const EX_DATAERR: u8 = 65;
const EX_NOPERM: u8 = 77;
const EX_TEMPFAIL: u8 = 75;

/// Reads one message on stdin and posts it to the server's email endpoint.
pub async fn mailgate(cli: &Cli, token: Option<&str>) -> anyhow::Result<()> {
    let fail = |code, message: String| anyhow::Error::new(MailgateError { code, message });
    let server = cli
        .server
        .as_deref()
        .ok_or_else(|| fail(EX_TEMPFAIL, "mailgate needs --server or HOPPER_URL".into()))?;
    let token =
        token.ok_or_else(|| fail(EX_TEMPFAIL, "mailgate needs HOPPER_EMAIL_TOKEN".into()))?;
    let mut raw = Vec::new();
    std::io::stdin()
        .read_to_end(&mut raw)
        .context("reading the message from stdin")?;
    let resp = reqwest::Client::new()
        .post(format!("{}/webhooks/email", server.trim_end_matches('/')))
        .bearer_auth(token)
        .header("content-type", "message/rfc822")
        .body(raw)
        .send()
        .await
        .map_err(|e| fail(EX_TEMPFAIL, format!("cannot reach {server}: {e}")))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status.is_success() {
        if cli.json {
            say!("{body}");
        }
        return Ok(());
    }
    let code = match status.as_u16() {
        401 | 403 => EX_NOPERM,
        400 | 413 | 415 => EX_DATAERR,
        _ => EX_TEMPFAIL,
    };
    Err(fail(code, format!("server answered {status}: {body}")))
}
