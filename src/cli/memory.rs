//! `hopper memory search`.

use clap::Subcommand;

use super::output::{print_value, say};
use crate::domain::{MemoryQuery, millis_to_rfc3339};
use crate::service::HopperService;

#[derive(Debug, Subcommand)]
pub enum MemoryCommand {
    /// Episodes (routing decisions, corrections, outcomes) ranked by how well they match
    /// QUERY, with snippets.
    Search {
        query: String,
        /// The instance whose episodes to search (the global one by default).
        #[arg(long)]
        instance: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

pub async fn run(s: &dyn HopperService, cmd: &MemoryCommand, json: bool) -> anyhow::Result<()> {
    match cmd {
        MemoryCommand::Search {
            query,
            instance,
            limit,
        } => {
            let q = MemoryQuery {
                q: query.clone(),
                instance: instance.clone(),
                limit: Some(*limit),
            };
            let hits = s.search_memory(&q).await?;
            if json {
                print_value(&hits);
                return Ok(());
            }
            if hits.is_empty() {
                say!("no episodes match");
            }
            for h in hits {
                let e = &h.episode;
                say!(
                    "{:>7.2}  {}  {:<9} {:<16} {}",
                    h.score,
                    millis_to_rfc3339(e.at),
                    e.kind.as_str(),
                    e.project.as_deref().unwrap_or("-"),
                    e.task_id
                );
                say!("         {}", h.snippet);
            }
        }
    }
    Ok(())
}
