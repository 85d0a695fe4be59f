//! `hopper executors …`: register, list, show, update, rotate-secret, disable, enable, remove.
//! Secrets and tokens are printed once, when they are made, with a line saying so.

use anyhow::Context;
use clap::Subcommand;

use super::output::{print_value, say};
use crate::domain::{Executor, ExecutorKind};
use crate::engine::{ExecutorUpdate, Registration};
use crate::service::HopperService;

#[derive(Debug, Subcommand)]
pub enum ExecutorsCommand {
    /// Register an executor; prints its signing secret and token once.
    Register {
        name: String,
        /// The project it serves: `sark` or `hopper-sark`.
        #[arg(long)]
        project: String,
        /// project, human, external or ci.
        #[arg(long, default_value = "project")]
        kind: String,
        /// Comma-separated.
        #[arg(long, value_delimiter = ',')]
        capabilities: Vec<String>,
        #[arg(long)]
        webhook_url: Option<String>,
        /// Comma-separated event types (default task.available,task.cancelled).
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        /// Deliveries carry the task already claimed.
        #[arg(long)]
        auto_claim: bool,
    },
    /// List executors (enabled or disabled, with the reason).
    List {
        #[arg(long)]
        project: Option<String>,
    },
    /// Show one executor (id or name).
    Show {
        executor: String,
    },
    /// Change an executor; what is not given stays.
    Update {
        executor: String,
        /// An empty value removes the URL.
        #[arg(long)]
        webhook_url: Option<String>,
        #[arg(long, value_delimiter = ',')]
        capabilities: Option<Vec<String>>,
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long)]
        auto_claim: Option<bool>,
        /// JSON object.
        #[arg(long)]
        config: Option<String>,
    },
    /// A new signing secret, printed once; the old one signs for the grace period too.
    RotateSecret {
        executor: String,
    },
    /// Stop deliveries to an executor.
    Disable {
        executor: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Enable {
        executor: String,
    },
    /// Remove an executor and revoke its tokens.
    Remove {
        executor: String,
    },
}

pub async fn executors(
    s: &dyn HopperService,
    cmd: &ExecutorsCommand,
    json: bool,
) -> anyhow::Result<()> {
    match cmd {
        ExecutorsCommand::Register {
            name,
            project,
            kind,
            capabilities,
            webhook_url,
            events,
            auto_claim,
        } => {
            let kind: ExecutorKind = kind.parse().map_err(anyhow::Error::msg)?;
            let reg = Registration {
                name: name.clone(),
                kind,
                project: project.clone(),
                capabilities: capabilities.clone(),
                webhook_url: webhook_url.clone(),
                events: events.clone(),
                auto_claim: *auto_claim,
                velocity: None,
                sla: None,
                priority_boost: Default::default(),
                config: None,
            };
            let r = s.register_executor(reg).await?;
            if json {
                print_value(&r);
            } else {
                print_executor(&r.executor);
                say!("secret: {}", r.secret);
                say!("token:  {}", r.token);
                say!("The secret and the token are not shown again: keep them now.");
            }
        }
        ExecutorsCommand::List { project } => {
            let list = s.list_executors(project.as_deref()).await?;
            if json {
                print_value(&list);
            } else {
                print_list(&list);
            }
        }
        ExecutorsCommand::Show { executor } => one(&s.get_executor(executor).await?, json),
        ExecutorsCommand::Update {
            executor,
            webhook_url,
            capabilities,
            events,
            auto_claim,
            config,
        } => {
            let config = config
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .context("--config must be a JSON object")?;
            let change = ExecutorUpdate {
                webhook_url: webhook_url.clone(),
                capabilities: capabilities.clone(),
                events: events.clone(),
                auto_claim: *auto_claim,
                config,
                ..Default::default()
            };
            one(&s.update_executor(executor, change).await?, json)
        }
        ExecutorsCommand::RotateSecret { executor } => {
            let r = s.rotate_executor_secret(executor).await?;
            if json {
                print_value(&r);
            } else {
                say!("secret: {}", r.secret);
                say!(
                    "The previous secret also signs until {}.",
                    r.previous_secret_until
                );
                say!("The secret is not shown again: keep it now.");
            }
        }
        ExecutorsCommand::Disable { executor, reason } => one(
            &s.disable_executor(executor, reason.as_deref()).await?,
            json,
        ),
        ExecutorsCommand::Enable { executor } => one(&s.enable_executor(executor).await?, json),
        ExecutorsCommand::Remove { executor } => {
            let e = s.remove_executor(executor).await?;
            if json {
                print_value(&e);
            } else {
                say!("removed {} ({}); its tokens are revoked", e.name, e.id);
            }
        }
    }
    Ok(())
}

fn one(e: &Executor, json: bool) {
    if json {
        print_value(e);
    } else {
        print_executor(e);
    }
}

fn state(e: &Executor) -> String {
    match (&e.enabled, &e.disabled_reason) {
        (true, _) => "enabled".to_owned(),
        (false, Some(r)) => format!("disabled ({r})"),
        (false, None) => "disabled".to_owned(),
    }
}

fn print_list(list: &[Executor]) {
    if list.is_empty() {
        say!("no executors");
        return;
    }
    say!(
        "{:<24} {:<9} {:<20} {:<30} STATE",
        "NAME",
        "KIND",
        "PROJECT",
        "CAPABILITIES"
    );
    for e in list {
        say!(
            "{:<24} {:<9} {:<20} {:<30} {}",
            e.name,
            e.kind.as_str(),
            e.project,
            e.capabilities.join(","),
            state(e)
        );
    }
}

fn print_executor(e: &Executor) {
    say!("{} ({})", e.name, e.id);
    say!("  kind:         {}", e.kind.as_str());
    say!("  project:      {}", e.project);
    say!("  capabilities: {}", e.capabilities.join(", "));
    say!(
        "  webhook_url:  {}",
        e.webhook_url
            .as_deref()
            .unwrap_or("(none: pulls with get_next)")
    );
    say!("  events:       {}", e.events.join(", "));
    say!("  auto_claim:   {}", e.auto_claim);
    say!("  state:        {}", state(e));
    if let Some(f) = &e.failing_since {
        say!("  failing since {f}");
    }
}
