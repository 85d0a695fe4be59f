//! Export: tasks of a project that exports open issues, and finishing them closes those.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::priority_label;
use crate::config::ProjectSync;
use crate::domain::{SourceRef, Task, TaskId, events, now_millis};
use crate::engine::Engine;
use crate::error::Result;
use crate::outbound::dispatch::new_message_id;
use crate::reports::PREFIX;
use crate::store::{NewDelivery, OutboxEntry, SyncLink};
use hopper_integration_api::{IssueDraft, OpenedIssue, sync::marker};

/// The `event` of an export row in `deliveries`.
pub const EXPORT_EVENT: &str = "sync.export";

/// An export row's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Export {
    pub provider: String,
    pub project: String,
    pub draft: IssueDraft,
}

/// Whether `task` came from an issue of the synced repository (it has an issue already).
fn from_the_repository(task: &Task, sync: &ProjectSync) -> bool {
    task.source.as_ref().is_some_and(|s| {
        s.kind == sync.provider
            && s.container
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(&sync.repository))
    })
}

/// The export row an outbox entry makes: a task becoming available in a project that exports
/// (`in_project`: the copy in the project itself, not in one of its runs), unless it is paired
/// already or came from that repository. Its event id is the task's, so a task released and
/// available again (or an entry read twice) opens one issue.
pub async fn export_row(
    engine: &Engine,
    entry: &OutboxEntry,
    task: &Task,
    project: Option<&str>,
    in_project: bool,
) -> Result<Option<NewDelivery>> {
    if entry.event != events::TASK_AVAILABLE || !in_project {
        return Ok(None);
    }
    let Some(project) = project else {
        return Ok(None);
    };
    let Some(sync) = engine
        .configs()
        .root
        .sync
        .project(project)
        .filter(|s| s.mode.exports())
    else {
        return Ok(None);
    };
    if from_the_repository(task, sync) {
        return Ok(None);
    }
    // The pair names the task at the top: what the issue stands for is the whole piece of
    // work, and that is the task whose finishing is reported.
    let top: &TaskId = task.parent_task_id.as_ref().unwrap_or(&task.id);
    let root = engine.registry_store();
    if root.sync_link_by_task(top.as_str()).await?.is_some() {
        return Ok(None);
    }
    let mut labels = sync.labels.clone();
    for t in &task.tags {
        if !labels.iter().any(|l| l.eq_ignore_ascii_case(t)) {
            labels.push(t.clone());
        }
    }
    labels.push(priority_label(task.priority));
    let mut body = task.description.trim().to_owned();
    if !body.is_empty() {
        body.push_str("\n\n");
    }
    body.push_str(&format!(
        "---\nHopper task `{top}`, project `{project}`.\n{}",
        marker(top.as_str())
    ));
    let export = Export {
        provider: sync.provider.clone(),
        project: project.to_owned(),
        draft: IssueDraft {
            repository: sync.repository.clone(),
            title: task.title.clone(),
            body,
            labels,
            task_id: top.to_string(),
            retried: false,
        },
    };
    Ok(Some(NewDelivery {
        id: new_message_id(),
        executor_id: format!("{PREFIX}{}", sync.provider),
        event_id: format!("sync-export:{top}"),
        event: EXPORT_EVENT.to_owned(),
        task_id: top.to_string(),
        instance_id: task.instance_id.to_string(),
        payload: json!(export).to_string(),
        lease_id: None,
        at: now_millis(),
    }))
}

/// Records the pair once the issue exists, and says so in the task's history.
pub async fn exported(engine: &Engine, export: &Export, opened: &OpenedIssue) -> Result<()> {
    let now = now_millis();
    let draft = &export.draft;
    let link = SyncLink {
        provider: export.provider.clone(),
        repository: draft.repository.clone(),
        number: opened.number.clone(),
        task_id: draft.task_id.clone(),
        project: export.project.clone(),
        url: opened.url.clone(),
        handle: Some(opened.handle.to_string()),
        origin: "export".into(),
        pushed_state: None,
        created_at: now,
        updated_at: now,
    };
    engine.registry_store().insert_sync_link(&link).await?;
    if let Ok(id) = TaskId::parse(&draft.task_id) {
        let ev = crate::store::EventRecord::new("synced", format!("sync:{}", export.provider))
            .with(json!({
                "provider": export.provider,
                "repository": draft.repository,
                "number": opened.number,
                "url": opened.url,
            }));
        engine.append_history(&id, &ev).await?;
    }
    Ok(())
}

/// Where the report of a finishing top task goes when the task is paired with an issue of a
/// project that exports: that issue (closed on success), instead of the task's own source.
pub async fn closing_source(engine: &Engine, task: &Task) -> Result<Option<SourceRef>> {
    if engine.configs().root.sync.is_empty() {
        return Ok(None);
    }
    let Some(link) = engine
        .registry_store()
        .sync_link_by_task(task.id.as_str())
        .await?
    else {
        return Ok(None);
    };
    let exports = engine
        .configs()
        .root
        .sync
        .project(&link.project)
        .is_some_and(|s| s.mode.exports());
    if !exports {
        return Ok(None);
    }
    Ok(Some(SourceRef {
        kind: link.provider.clone(),
        container: Some(link.repository.clone()),
        external_id: Some(format!("{}#{}", link.repository, link.number)),
        url: Some(link.url.clone()),
        reply_handle: link
            .handle
            .as_deref()
            .and_then(|h| serde_json::from_str(h).ok()),
    }))
}
