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

/// `hopper consolidate`: one run on the local database, with a progress bar of the episodes
/// read on a terminal (none when stderr is a pipe or a file: logs and CI stay clean).
pub async fn consolidate(
    engine: &crate::engine::Engine,
    instance: Option<&str>,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let instance = instance
        .map(crate::domain::InstanceId::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--instance: {e}"))?;
    let repo = crate::memory::job::repo(&engine.configs().root)?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template(
            "consolidating {bar:30} {pos}/{len} episodes ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let progress = |read: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(read);
    };
    let done = crate::memory::job::consolidate(
        engine,
        repo.as_ref(),
        instance.as_ref(),
        dry_run,
        &progress,
    )
    .await;
    bar.finish_and_clear();
    let done = done?;
    if json {
        print_value(&done);
        return Ok(());
    }
    say!(
        "{} episodes folded in (watermark #{}) for {}",
        done.episodes,
        done.watermark,
        done.instance
    );
    for (path, bytes) in &done.files {
        say!("  {path}  {bytes} bytes");
    }
    match (&done.commit, dry_run) {
        (_, true) => say!("dry run: nothing committed"),
        (Some(c), _) => say!("committed {c}"),
        (None, _) => say!("nothing changed: no commit"),
    }
    Ok(())
}
