use std::sync::Arc;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use super::logging::notice;
use super::output::{
    print_instances, print_stats, print_task, print_tasks, print_tree, print_value, say,
};
use super::{AddArgs, Cli, Command, CompleteArgs, InstancesCommand, ListArgs};
use crate::client::HopperClient;
use crate::config::{ConfigSet, Overrides};
use crate::domain::{Actor, Feedback, InstanceFilter, InstanceId, TaskDraft, TaskFilter, TaskId};
use crate::engine::{Engine, LeaseRequest};
use crate::service::HopperService;

fn configs(cli: &Cli) -> anyhow::Result<ConfigSet> {
    let mut o = Overrides::from_env();
    if cli.database_url.is_some() {
        o.database_url = cli.database_url.clone();
    }
    if cli.data_dir.is_some() {
        o.data_dir = cli.data_dir.clone();
    }
    if let Command::Serve { bind: Some(b) } = &cli.command {
        o.bind = Some(b.clone());
    }
    Ok(ConfigSet::load(cli.config.as_deref(), &o)?)
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Serve { .. } => return serve(&cli).await,
        Command::Mailgate { email_token } => {
            return super::inbound::mailgate(&cli, email_token.as_deref()).await;
        }
        Command::Migrate => {
            let engine = Engine::open(configs(&cli)?)
                .await
                .context("opening the database")?;
            engine.close().await;
            say!("migrations applied");
            return Ok(());
        }
        Command::Consolidate { instance, dry_run } => {
            let engine = Engine::open(configs(&cli)?)
                .await
                .context("opening the database")?;
            let done =
                super::memory::consolidate(&engine, instance.as_deref(), *dry_run, cli.json).await;
            engine.close().await;
            return done;
        }
        Command::Mcp { executor } => {
            let service = connect(&cli).await?;
            return crate::mcp::serve_stdio(service, executor.clone()).await;
        }
        _ => {}
    }
    let service = connect(&cli).await?;
    dispatch(&cli, service.as_ref()).await
}

async fn connect(cli: &Cli) -> anyhow::Result<Arc<dyn HopperService>> {
    match &cli.server {
        Some(url) => {
            let token = match &cli.token {
                Some(t) => t.clone(),
                None => crate::server::admin_token(&configs(cli)?)?
                    .0
                    .expose()
                    .to_owned(),
            };
            Ok(Arc::new(HopperClient::new(url, &token)))
        }
        None => Ok(Arc::new(
            Engine::open(configs(cli)?)
                .await
                .context("opening the local database")?,
        )),
    }
}

/// Ctrl-C, or SIGTERM (how systemd and container runtimes stop a service).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "SIGTERM handler not installed"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn serve(cli: &Cli) -> anyhow::Result<()> {
    let configs = configs(cli)?;
    for warning in configs.not_enabled_features() {
        tracing::warn!("{warning}");
    }
    // Built here to fail on a bad `inbound:` section before the database is opened.
    let sources = crate::inbound::Sources::from_configs(&configs)?;
    notice(format_args!(
        "webhook endpoints: /webhooks/{{{}}}",
        sources.paths().join(",")
    ));
    let (token, token_file) = crate::server::admin_token(&configs)?;
    if let Some(path) = token_file {
        notice(format_args!("admin token: {}", path.display()));
    }
    let bind = configs.root.server.bind.clone();
    let engine = Engine::open(configs)
        .await
        .context("opening the database")?;
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    notice(format_args!(
        "hopper listening on http://{}",
        listener.local_addr()?
    ));
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        stop_signal().await;
        notice(format_args!("stopping: finishing requests in flight"));
        stop.cancel();
    });
    crate::server::run(engine, token, listener, shutdown).await?;
    Ok(())
}

fn iid(s: &str) -> anyhow::Result<InstanceId> {
    InstanceId::parse(s).map_err(anyhow::Error::msg)
}

fn tid(s: &str) -> anyhow::Result<TaskId> {
    TaskId::parse(s).map_err(anyhow::Error::msg)
}

/// An executor under its lease, or (with neither flag; clap makes them go together) admin.
fn actor(executor: &Option<String>, lease: &Option<String>) -> Actor {
    match (executor, lease) {
        (Some(name), Some(lease)) => Actor::Executor {
            name: name.clone(),
            lease: lease.clone(),
        },
        _ => Actor::Admin,
    }
}

fn lease(seconds: &Option<u64>) -> LeaseRequest {
    LeaseRequest { seconds: *seconds }
}

async fn dispatch(cli: &Cli, s: &dyn HopperService) -> anyhow::Result<()> {
    let json = cli.json;
    match &cli.command {
        Command::Serve { .. }
        | Command::Migrate
        | Command::Consolidate { .. }
        | Command::Mcp { .. }
        | Command::Mailgate { .. } => unreachable_command(),
        Command::Events(cmd) => super::inbound::events(s, cmd, json).await,
        Command::Deliveries(cmd) => super::deliveries::run(s, cmd, json).await,
        Command::Memory(cmd) => super::memory::run(s, cmd, json).await,
        Command::Add(a) => add(s, a, json).await,
        Command::List(l) | Command::Tasks(l) => list(s, l, json).await,
        Command::Show { id } => {
            let id = tid(id)?;
            let task = s.get_task(&id).await?;
            let history = s.task_history(&id).await?;
            if json {
                print_value(&serde_json::json!({ "task": task, "history": history }));
            } else {
                print_task(&task);
                for e in history {
                    say!("  {}  {:<14} {}", e.at, e.kind, e.actor.unwrap_or_default());
                }
            }
            Ok(())
        }
        Command::Next {
            instance,
            executor,
            lease_seconds,
        } => {
            match s
                .get_next(&iid(instance)?, executor, lease(lease_seconds))
                .await?
            {
                Some(t) => output(json, &t),
                None => {
                    if json {
                        say!("null");
                    } else {
                        say!("no task available");
                    }
                    Ok(())
                }
            }
        }
        Command::Claim {
            id,
            executor,
            lease_seconds,
        } => output(
            json,
            &s.claim(&tid(id)?, executor, lease(lease_seconds)).await?,
        ),
        Command::Heartbeat {
            id,
            executor,
            lease: lease_id,
            lease_seconds,
        } => {
            let who = actor(&Some(executor.clone()), &Some(lease_id.clone()));
            output(
                json,
                &s.heartbeat(&tid(id)?, &who, lease(lease_seconds)).await?,
            )
        }
        Command::Complete(c) => complete(s, c, json).await,
        Command::Fail {
            id,
            reason,
            executor,
            lease,
        } => output(
            json,
            &s.fail(&tid(id)?, &actor(executor, lease), reason).await?,
        ),
        Command::Release {
            id,
            executor,
            lease,
        } => output(json, &s.release(&tid(id)?, &actor(executor, lease)).await?),
        Command::Cancel { id } => output(json, &s.cancel(&tid(id)?, &Actor::Admin).await?),
        Command::Explain { id } => super::routing::explain(s, id, json).await,
        Command::Route(a) => super::routing::route(s, a, json).await,
        Command::Decompose(a) => super::routing::decompose(s, a, json).await,
        Command::Instances(cmd) => instances(s, cmd, json).await,
        Command::Executors(cmd) => super::executors::executors(s, cmd, json).await,
        Command::Tokens(cmd) => super::tokens::tokens(s, cmd, json).await,
        Command::Stats { instance } => {
            let stats = s.stats(&iid(instance)?).await?;
            if json {
                print_value(&stats)
            } else {
                print_stats(&stats)
            }
            Ok(())
        }
        Command::Status { instance } => {
            let id = iid(instance)?;
            let inst = s.get_instance(&id).await?;
            let stats = s.stats(&id).await?;
            if json {
                print_value(&serde_json::json!({ "instance": inst, "stats": stats }));
            } else {
                say!(
                    "{}  scope={}  status={}",
                    inst.instance_id,
                    inst.scope,
                    inst.status.as_str()
                );
                if let Some(p) = &inst.parent_instance_id {
                    say!("parent: {p}");
                }
                print_stats(&stats);
            }
            Ok(())
        }
    }
}

fn unreachable_command() -> anyhow::Result<()> {
    bail!("this command is handled before connecting")
}

fn output(json: bool, task: &crate::domain::Task) -> anyhow::Result<()> {
    if json {
        print_value(task)
    } else {
        print_task(task)
    }
    Ok(())
}

async fn add(s: &dyn HopperService, a: &AddArgs, json: bool) -> anyhow::Result<()> {
    let draft = TaskDraft {
        title: a.title.clone(),
        description: a.description.clone(),
        tags: a.tags.iter().filter(|t| !t.is_empty()).cloned().collect(),
        priority: a.priority.parse().map_err(anyhow::Error::msg)?,
        project: a.project.clone(),
        needs_orchestration: a.needs_orchestration,
        executor: a.executor.clone(),
        source: Some(crate::domain::SourceRef {
            kind: "cli".into(),
            ..Default::default()
        }),
        ..TaskDraft::default()
    };
    output(json, &s.add_task(&iid(&a.instance)?, draft).await?)
}

async fn list(s: &dyn HopperService, l: &ListArgs, json: bool) -> anyhow::Result<()> {
    let filter = TaskFilter {
        status: l
            .status
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        hierarchy: l.hierarchy,
        limit: l.limit,
        after: None,
    };
    let tasks = s.list_tasks(&iid(&l.instance)?, &filter).await?;
    if json {
        print_value(&tasks)
    } else {
        print_tasks(&tasks, l.hierarchy)
    }
    Ok(())
}

async fn complete(s: &dyn HopperService, c: &CompleteArgs, json: bool) -> anyhow::Result<()> {
    let mut feedback: Option<Feedback> = match &c.feedback {
        Some(text) => {
            Some(serde_json::from_str(text).context("--feedback is not valid feedback JSON")?)
        }
        None => None,
    };
    if c.quality.is_some() || c.notes.is_some() {
        let f = feedback.get_or_insert_with(Feedback::default);
        f.quality_score = c.quality.or(f.quality_score);
        f.notes = c.notes.clone().or(f.notes.take());
    }
    output(
        json,
        &s.complete(&tid(&c.id)?, &actor(&c.executor, &c.lease), feedback)
            .await?,
    )
}

async fn instances(
    s: &dyn HopperService,
    cmd: &InstancesCommand,
    json: bool,
) -> anyhow::Result<()> {
    match cmd {
        InstancesCommand::List { scope, parent, all } => {
            let filter = InstanceFilter {
                scope: scope
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(anyhow::Error::msg)?,
                parent: parent.as_deref().map(iid).transpose()?,
                include_archived: *all,
            };
            let list = s.list_instances(&filter).await?;
            if json {
                print_value(&list)
            } else {
                print_instances(&list)
            }
        }
        InstancesCommand::Tree => {
            let tree = s.instance_tree().await?;
            if json {
                print_value(&tree)
            } else {
                print_tree(&tree, "", true, true)
            }
        }
        InstancesCommand::Create {
            name,
            parent,
            metadata,
        } => {
            let parent = match parent {
                Some(p) => iid(p)?,
                None => InstanceId::global(),
            };
            let meta = match metadata {
                Some(m) => serde_json::from_str(m).context("--metadata must be a JSON object")?,
                None => serde_json::json!({}),
            };
            let inst = s.register_child(&parent, name, meta).await?;
            if json {
                print_value(&inst)
            } else {
                print_instances(&[inst])
            }
        }
        InstancesCommand::Archive { id } => print_value(&s.archive_and_delete(&iid(id)?).await?),
    }
    Ok(())
}
