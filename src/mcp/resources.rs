//! Read-only resources a client attaches as context: `hopper://tasks/{id}` (a task with its
//! history) and `hopper://instances/{id}` (an instance with its counts), as JSON. Reads follow
//! the tools' rules: a task as `get_task`; an instance as `GET /v1/instances/{id}`, except
//! that an executor token may read the instances it serves (and only those, as everywhere).

use rmcp::model::{Resource, ResourceContents, ResourceTemplate};
use serde_json::json;

use super::auth::Access;
use super::error::ToolError;
use crate::api::extract::{instance_id, task_id};
use crate::domain::InstanceFilter;
use crate::service::HopperService;

pub const TASK_PREFIX: &str = "hopper://tasks/";
pub const INSTANCE_PREFIX: &str = "hopper://instances/";
const JSON: &str = "application/json";
/// A listing is for a client's picker, not a dump of a large hierarchy.
const MAX_LISTED: usize = 200;

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{TASK_PREFIX}{{id}}"), "task")
            .with_description("A task with its full event history")
            .with_mime_type(JSON),
        ResourceTemplate::new(format!("{INSTANCE_PREFIX}{{id}}"), "instance")
            .with_description("An instance with its task counts")
            .with_mime_type(JSON),
    ]
}

async fn may_read_instance(
    access: &Access,
    instance: &crate::domain::InstanceId,
) -> Result<(), ToolError> {
    if access.executor().is_some() {
        access.check_instance(instance).await
    } else {
        access.permit("GET", "/v1/instances/{id}")
    }
}

/// The instances the caller may read, as resources.
pub async fn list(svc: &dyn HopperService, access: &Access) -> Result<Vec<Resource>, ToolError> {
    if access.executor().is_none() {
        access.permit("GET", "/v1/instances")?;
    }
    let mut out = Vec::new();
    for inst in svc.list_instances(&InstanceFilter::default()).await? {
        if out.len() >= MAX_LISTED {
            break;
        }
        if may_read_instance(access, &inst.instance_id).await.is_ok() {
            let id = inst.instance_id.to_string();
            out.push(
                Resource::new(format!("{INSTANCE_PREFIX}{id}"), id)
                    .with_description("instance with its task counts")
                    .with_mime_type(JSON),
            );
        }
    }
    Ok(out)
}

/// Reads one resource.
pub async fn read(
    svc: &dyn HopperService,
    access: &Access,
    uri: &str,
) -> Result<ResourceContents, ToolError> {
    let value = if let Some(id) = uri.strip_prefix(TASK_PREFIX) {
        access.permit("GET", "/v1/tasks/{id}")?;
        let id = task_id(id)?;
        access.check_task(&id).await?;
        let task = svc.get_task(&id).await?;
        let history = svc.task_history(&id).await?;
        json!({ "task": task, "history": history })
    } else if let Some(id) = uri.strip_prefix(INSTANCE_PREFIX) {
        let id = instance_id(id)?;
        may_read_instance(access, &id).await?;
        let instance = svc.get_instance(&id).await?;
        let stats = svc.stats(&id).await.ok();
        json!({ "instance": instance, "stats": stats })
    } else {
        return Err(ToolError {
            status: 404,
            code: "not_found".into(),
            message: format!(
                "no resource `{}`: hopper://tasks/{{id}} or hopper://instances/{{id}}",
                crate::engine::log_str(uri)
            ),
        });
    };
    let text = serde_json::to_string_pretty(&value).map_err(ToolError::invalid)?;
    Ok(ResourceContents::text(text, uri).with_mime_type(JSON))
}
