//! Outbox events → report rows, beside the dispatcher's executor deliveries. What is reported:
//! - `routed`: a task appears in a project (`task.available` of a delegated copy);
//! - `claimed`: an executor claims it (`task.assigned`), at whatever depth;
//! - `completed` / `failed`: the task at the top (no parent) finishes.
//!
//! Only for tasks whose source has a reporter and whose policy (`reports:`) wants the moment.
//! The report is rendered now, from the task as this change left it.

use serde_json::json;

use super::{PREFIX, render};
use crate::domain::{Moment, Task, TaskStatus, events, now_millis};
use crate::engine::Engine;
use crate::error::Result;
use crate::outbound::dispatch::new_message_id;
use crate::store::{NewDelivery, OutboxEntry, Store};
use hopper_integration_api::Report;

/// The report rows a batch of `store`'s outbox makes.
pub async fn plan(
    engine: &Engine,
    store: &Store,
    batch: &[OutboxEntry],
) -> Result<Vec<NewDelivery>> {
    let Some(reporters) = engine.reporters() else {
        return Ok(Vec::new());
    };
    if reporters.is_empty() || batch.is_empty() {
        return Ok(Vec::new());
    }
    let mut ids: Vec<&str> = batch.iter().map(|e| e.task_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let tasks = store.get_tasks(&ids).await?;
    let reports = &engine.configs().root.reports;
    let mut rows = Vec::new();
    let syncing = !engine.configs().root.sync.is_empty();
    for entry in batch {
        let Some(task) = tasks.get(entry.task_id.as_str()) else {
            continue;
        };
        if task.source.is_none() && !syncing {
            continue;
        }
        // Looked up once per entry, for the export and the moment both.
        let (project, in_project) = project_name(engine, task).await;
        if syncing && entry.event == events::TASK_AVAILABLE {
            let export =
                crate::sync::export_row(engine, entry, task, project.as_deref(), in_project);
            rows.extend(export.await?);
        }
        let Some((moment, project)) = moment_of(entry, task, project, in_project) else {
            continue;
        };
        // A task paired with an issue it exported reports there, and closes it on success.
        let linked = match moment {
            Moment::Completed | Moment::Failed if syncing => {
                crate::sync::closing_source(engine, task).await?
            }
            _ => None,
        };
        let Some(source) = linked.as_ref().or(task.source.as_ref()) else {
            continue;
        };
        if reporters.get(&source.kind).is_none() {
            continue;
        }
        let policy = match reports.policy(&source.kind, project.as_deref()) {
            Ok(p) if p.reports(moment) => p,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reports: policy unreadable; not reported");
                continue;
            }
        };
        let ctx = render::context(task, moment, project.as_deref());
        let (text, add_labels) = match render::render(&policy, moment, &ctx) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "report not rendered");
                continue;
            }
        };
        let report = Report {
            moment,
            source: source.clone(),
            task_id: task.id.to_string(),
            title: task.title.clone(),
            text,
            add_labels,
            remove_labels: Vec::new(),
            close: moment == Moment::Completed
                && (linked.is_some() || policy.close_on_success == Some(true)),
        };
        rows.push(NewDelivery {
            id: new_message_id(),
            executor_id: format!("{PREFIX}{}", source.kind),
            event_id: entry.id.clone(),
            event: format!("report.{}", moment.as_str()),
            task_id: task.id.to_string(),
            instance_id: task.instance_id.to_string(),
            payload: json!(report).to_string(),
            lease_id: None,
            at: now_millis(),
        });
    }
    Ok(rows)
}

/// The project `task` is in (by name), and whether it is the copy in the project itself
/// rather than in one of its runs.
async fn project_name(engine: &Engine, task: &Task) -> (Option<String>, bool) {
    let project_id = engine.project_of(&task.instance_id).await.ok().flatten();
    let in_project = project_id.as_ref() == Some(&task.instance_id);
    let name = project_id.map(|p| {
        p.as_str()
            .strip_prefix("hopper-")
            .unwrap_or(p.as_str())
            .to_owned()
    });
    (name, in_project)
}

/// The moment an outbox event is, for `task` (in `project`; `in_project`: the copy in the
/// project itself, not in one of its runs), with the project it concerns.
fn moment_of(
    entry: &OutboxEntry,
    task: &Task,
    project: Option<String>,
    in_project: bool,
) -> Option<(Moment, Option<String>)> {
    let routed_to = || {
        task.routed_to.as_ref().map(|r| {
            r.as_str()
                .strip_prefix("hopper-")
                .unwrap_or(r.as_str())
                .to_owned()
        })
    };
    match entry.event.as_str() {
        events::TASK_AVAILABLE if task.parent_task_id.is_some() && in_project => {
            Some((Moment::Routed, project))
        }
        events::TASK_ASSIGNED => Some((Moment::Claimed, project)),
        events::TASK_UPDATED if task.parent_task_id.is_none() => match task.status {
            TaskStatus::Done => Some((Moment::Completed, project.or_else(routed_to))),
            TaskStatus::Failed => Some((Moment::Failed, project.or_else(routed_to))),
            _ => None,
        },
        _ => None,
    }
}
