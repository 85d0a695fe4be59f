//! Import: what an issue event of a synced repository does to Hopper's side.

use chrono::DateTime;
use serde_json::json;

use super::from_labels;
use crate::config::ProjectSync;
use crate::domain::{Actor, SourceRef, TaskDraft, TaskId, TaskStatus};
use crate::engine::Engine;
use crate::error::{HopperError, Result};
use crate::store::{EventRecord, SyncLink};
use hopper_integration_api::{Action, IssueState};

/// What ingest does with an issue event, after sync looked at it.
#[derive(Debug)]
pub enum Inbound {
    /// Not sync's business: the event goes on as interpreted.
    Pass,
    /// Sync handled it (the change made, or why none was): recorded as `synced` with this.
    Handled(String),
    /// A task for the project from this issue: a new issue, or one reopened after its task
    /// finished (`relink`: the pair then moves to the new task).
    Task {
        project: String,
        draft: Box<TaskDraft>,
        relink: Option<Box<SyncLink>>,
    },
}

/// Looks at an issue event from `kind` (`github`, `gitlab`) of type `event_type`.
pub async fn inbound(
    engine: &Engine,
    kind: &str,
    event_type: &str,
    issue: &IssueState,
    action: &Action,
) -> Result<Inbound> {
    let sync = &engine.configs().root.sync;
    if sync.is_empty() {
        return Ok(Inbound::Pass);
    }
    let root = engine.registry_store();
    if let Some(link) = root
        .sync_link_by_issue(kind, &issue.repository, &issue.number)
        .await?
    {
        let Some(config) = sync.project(&link.project) else {
            return Ok(Inbound::Pass);
        };
        if !config.mode.imports() {
            return Ok(Inbound::Handled(format!(
                "sync: project {} exports to {} (mode export): changes made there are not taken",
                link.project, issue.repository
            )));
        }
        return apply(engine, &link, config, event_type, issue).await;
    }
    if let Some(task) = &issue.marked_task {
        return Ok(Inbound::Handled(format!(
            "sync: opened by Hopper for task {task}: not imported back"
        )));
    }
    let Some((project, config)) = sync.importer(kind, &issue.repository) else {
        return Ok(Inbound::Pass);
    };
    if !issue.open || !config.wants(&issue.labels) {
        return Ok(Inbound::Pass);
    }
    let mut draft = match action {
        Action::Task(d) => (**d).clone(),
        _ => draft_from(kind, issue),
    };
    let (tags, priority) = from_labels(&issue.labels, &config.labels);
    for t in tags {
        if !draft.tags.contains(&t) {
            draft.tags.push(t);
        }
    }
    if issue
        .labels
        .iter()
        .any(|l| l.to_ascii_lowercase().starts_with("priority:"))
    {
        draft.priority = priority;
    }
    draft.project = Some(project.to_owned());
    Ok(Inbound::Task {
        project: project.to_owned(),
        draft: Box::new(draft),
        relink: None,
    })
}

/// Records the pair of a task made from an issue (new, or reopened: the pair moves).
pub async fn linked(
    engine: &Engine,
    kind: &str,
    issue: &IssueState,
    project: &str,
    task: &str,
    relink: Option<&SyncLink>,
) -> Result<()> {
    let root = engine.registry_store();
    let now = crate::domain::now_millis();
    if let Some(link) = relink {
        root.relink_sync(link, task, now).await?;
        return Ok(());
    }
    let link = SyncLink {
        provider: kind.to_owned(),
        repository: issue.repository.clone(),
        number: issue.number.clone(),
        task_id: task.to_owned(),
        project: project.to_owned(),
        url: issue.url.clone(),
        handle: Some(issue.handle.to_string()),
        origin: "import".into(),
        pushed_state: None,
        created_at: now,
        updated_at: now,
    };
    root.insert_sync_link(&link).await?;
    Ok(())
}

fn draft_from(kind: &str, issue: &IssueState) -> TaskDraft {
    let mut d = TaskDraft::new(issue.title.clone());
    d.description = issue.body.clone();
    d.tags = vec![kind.to_owned(), "issue".to_owned()];
    d.requester = issue.actor.clone();
    d.source = Some(SourceRef {
        kind: kind.to_owned(),
        container: Some(issue.repository.clone()),
        external_id: Some(format!("{}#{}", issue.repository, issue.number)),
        url: Some(issue.url.clone()),
        reply_handle: Some(issue.handle.clone()),
    });
    d
}

fn millis(rfc3339: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A known issue changed: its state and labels against its task's.
async fn apply(
    engine: &Engine,
    link: &SyncLink,
    config: &ProjectSync,
    event_type: &str,
    issue: &IssueState,
) -> Result<Inbound> {
    let Ok(id) = TaskId::parse(&link.task_id) else {
        return Ok(Inbound::Handled(
            "sync: the pair names no valid task".into(),
        ));
    };
    let (task, node) = match engine.locate(&id).await {
        Ok(found) => found,
        Err(HopperError::NotFound(_)) => {
            return Ok(Inbound::Handled(format!("sync: task {id} is gone")));
        }
        Err(e) => return Err(e),
    };
    let handled = |why: String| Ok(Inbound::Handled(format!("sync: {why}")));
    // The later change wins: an event older than the task's last change lost already.
    if let (Some(remote), Some(local)) = (issue.updated_at, millis(&task.updated_at))
        && remote < local
    {
        return handled(format!(
            "issue {} changed before task {id} last did; Hopper's state stands",
            issue.number
        ));
    }
    let finished = task.status.is_terminal();
    let by = issue.actor.as_deref().unwrap_or("someone");
    if !issue.open {
        if finished {
            return handled(match link.pushed_state.as_deref() {
                Some("closed") => format!("the echo of Hopper closing issue {}", issue.number),
                _ => format!("task {id} is {} already", task.status.as_str()),
            });
        }
        let (work, _) = engine.work_task(id.clone(), node).await;
        engine.complete(&work, &Actor::System, None).await?;
        return handled(format!("issue closed by {by}: task {work} completed"));
    }
    let reopened = event_type.ends_with(".reopened") || event_type.ends_with(".reopen");
    if finished {
        if reopened && task.status != TaskStatus::Cancelled {
            let mut draft = draft_from(&link.provider, issue);
            let (tags, priority) = from_labels(&issue.labels, &config.labels);
            draft.tags.extend(tags);
            draft.priority = priority;
            draft.project = Some(link.project.clone());
            draft.description = format!(
                "Reopened by {by} after task {id} finished.\n\n{}",
                draft.description
            );
            return Ok(Inbound::Task {
                project: link.project.clone(),
                draft: Box::new(draft),
                relink: Some(Box::new(link.clone())),
            });
        }
        return handled(format!(
            "task {id} is {}: nothing to change",
            task.status.as_str()
        ));
    }
    let (tags, priority) = from_labels(&issue.labels, &config.labels);
    let kept: Vec<String> = task
        .tags
        .iter()
        .filter(|t| matches!(t.as_str(), "github" | "gitlab" | "issue"))
        .cloned()
        .chain(tags)
        .collect();
    if kept == task.tags && priority == task.priority {
        return handled(format!("task {id} has these labels already"));
    }
    let ev = EventRecord::new("retagged", format!("{}:{by}", link.provider))
        .with(json!({ "tags": kept, "priority": priority, "issue": issue.number }));
    engine.retag(&id, &kept, priority, &ev).await?;
    handled(format!(
        "labels of issue {} by {by}: task {id} tags {kept:?}, priority {}",
        issue.number,
        priority.as_str()
    ))
}
