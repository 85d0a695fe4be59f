//! `hopper deliveries list|show|retry`: outbound deliveries, locally or with `--server`.

use clap::Subcommand;

use super::output::{print_value, say};
use crate::domain::{Delivery, DeliveryFilter, DeliveryStatus};
use crate::service::HopperService;

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// Newest first.
    List {
        /// An executor id (`exec_…`), or `report:github` (`gitlab`, `slack`, `email`) for reports.
        #[arg(long)]
        executor: Option<String>,
        /// pending, delivered, dead or cancelled.
        #[arg(long)]
        status: Option<DeliveryStatus>,
        /// A task id.
        #[arg(long)]
        task: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One delivery, its signed body and every attempt.
    Show { id: String },
    /// Send a dead or pending delivery again now.
    Retry { id: String },
}

pub async fn run(s: &dyn HopperService, cmd: &DeliveriesCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        DeliveriesCommand::List {
            executor,
            status,
            task,
            limit,
        } => {
            let filter = DeliveryFilter {
                executor: executor.clone(),
                status: *status,
                task: task.clone(),
                limit: Some(*limit),
            };
            let list = s.list_deliveries(&filter).await?;
            if json {
                print_value(&list);
            } else {
                print_list(&list);
            }
        }
        DeliveriesCommand::Show { id } | DeliveriesCommand::Retry { id } => {
            let d = match cmd {
                DeliveriesCommand::Retry { .. } => s.retry_delivery(id).await?,
                _ => s.get_delivery(id).await?,
            };
            if json {
                print_value(&d);
                return Ok(());
            }
            print_list(std::slice::from_ref(&d.delivery));
            say!("next attempt: {}", d.delivery.next_attempt_at);
            if let Some(e) = &d.delivery.last_error {
                say!("last error:   {e}");
            }
            say!(
                "\n{:<4} {:<26} {:<6} {:>8}  RESPONSE / ERROR",
                "#",
                "AT",
                "STATUS",
                "MS"
            );
            for a in &d.history {
                let code = a.status_code.map(|c| c.to_string());
                let what = a.error.as_deref().or(a.response.as_deref()).unwrap_or("");
                say!(
                    "{:<4} {:<26} {:<6} {:>8}  {}",
                    a.attempt,
                    a.at,
                    code.as_deref().unwrap_or("-"),
                    a.latency_ms,
                    what.chars().take(120).collect::<String>()
                );
            }
        }
    }
    Ok(())
}

fn print_list(list: &[Delivery]) {
    say!(
        "{:<36} {:<37} {:<15} {:<10} {:>8} TASK",
        "ID",
        "EXECUTOR",
        "EVENT",
        "STATUS",
        "ATTEMPTS"
    );
    for d in list {
        say!(
            "{:<36} {:<37} {:<15} {:<10} {:>8} {}",
            d.id,
            d.executor_id,
            d.event,
            d.status.as_str(),
            d.attempts,
            d.task_id
        );
    }
}
