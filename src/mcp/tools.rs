//! The tools: one catalog (name, description, schemas, the REST route each stands for) and one
//! dispatch over [`HopperService`], so stdio on the local database, stdio against a server and
//! HTTP inside `hopper serve` run the same code. Every call is first allowed on its REST route
//! (`Access::permit`), then checked on its task or instance as the REST handler checks it.

use std::sync::{Arc, LazyLock};

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::args::*;
use super::auth::Access;
use super::error::ToolError;
use super::schema;
use crate::api::extract::{instance_id, task_id};
use crate::domain::{InstanceId, InstanceStats, InstanceTree, MemoryQuery, Task, TaskFilter};
use crate::engine::{LeaseRequest, RerouteRequest, RoutingReport};
use crate::service::HopperService;

/// One tool: what the client sees, and the REST route whose rules it follows.
struct Spec {
    name: &'static str,
    description: &'static str,
    method: &'static str,
    route: &'static str,
    input: fn() -> Arc<JsonObject>,
    output: fn() -> Arc<JsonObject>,
}

macro_rules! spec {
    ($name:literal, $method:literal $route:literal, $input:ty => $output:ty, $description:literal) => {
        Spec {
            name: $name,
            description: $description,
            method: $method,
            route: $route,
            input: schema::of::<$input>,
            output: schema::of::<$output>,
        }
    };
}

const SPECS: &[Spec] = &[
    spec!("add_task", "POST" "/v1/instances/{id}/tasks", AddTask => Task,
        "Add a task to Hopper (the global instance by default, which routes it to a project)."),
    spec!("get_next", "POST" "/v1/instances/{id}/next", GetNext => Next,
        "Claim the next task this executor can do (its capabilities, its project). The task carries the claim's lease_id: keep it for heartbeat, complete, fail and release. task is null when none is waiting."),
    spec!("claim", "POST" "/v1/tasks/{id}/claim", Claim => Task,
        "Claim one task by id (pending, or one whose lease ran out); the answer carries the lease_id."),
    spec!("heartbeat", "POST" "/v1/tasks/{id}/heartbeat", Heartbeat => Task,
        "Report progress on a claimed task: extends its lease. Fails with lease_lost when the lease is no longer current."),
    spec!("complete", "POST" "/v1/tasks/{id}/complete", Complete => Task,
        "Finish a claimed task under its lease, with feedback (durations, complexity, was it a good match) that routing learns from."),
    spec!("fail", "POST" "/v1/tasks/{id}/fail", Fail => Task,
        "Mark a claimed task failed, with the reason."),
    spec!("release", "POST" "/v1/tasks/{id}/release", Release => Task,
        "Give a claimed task back to its queue for someone else."),
    spec!("list_tasks", "GET" "/v1/instances/{id}/tasks", ListTasks => Tasks,
        "List an instance's tasks (hierarchy: its descendants' too), optionally by status."),
    spec!("get_task", "GET" "/v1/tasks/{id}", TaskRef => TaskDetail,
        "One task with its full event history."),
    spec!("instances_tree", "GET" "/v1/instances/tree", NoArgs => InstanceTree,
        "The instance hierarchy (global, projects, orchestration runs) with open task counts."),
    spec!("instance_stats", "GET" "/v1/instances/{id}/stats", InstanceRef => InstanceStats,
        "Task counts of an instance by status, the oldest pending task's age, its children."),
    spec!("explain_routing", "GET" "/v1/tasks/{id}/routing", TaskRef => RoutingReport,
        "How a task was routed: every decision on its delegation path, the provider chain, alternatives and corrections."),
    spec!("route_task", "POST" "/v1/tasks/{id}/route", RouteTask => Task,
        "Send a pending task (or a routed one nobody claimed) to another project; the correction is recorded and learnt from."),
    spec!("search_memory", "GET" "/v1/memory/search", SearchMemory => Hits,
        "Search the episodes routing learns from (decisions, corrections, outcomes), best match first."),
    spec!("list_executors", "GET" "/v1/executors", ListExecutors => Executors,
        "The registered executors (who does each project's work, with their capabilities); never their secrets."),
];

/// The catalog as `tools/list` answers it, built once.
pub fn catalog() -> &'static [Tool] {
    static TOOLS: LazyLock<Vec<Tool>> = LazyLock::new(|| {
        SPECS
            .iter()
            .map(|s| {
                let read_only = s.method == "GET";
                Tool::new(s.name, s.description, (s.input)())
                    .with_raw_output_schema((s.output)())
                    .with_annotations(
                        ToolAnnotations::new()
                            .read_only(read_only)
                            .destructive(false)
                            .idempotent(read_only)
                            .open_world(false),
                    )
            })
            .collect()
    });
    &TOOLS
}

fn parse<T: DeserializeOwned>(args: JsonObject) -> Result<T, ToolError> {
    serde_json::from_value(Value::Object(args)).map_err(ToolError::invalid)
}

fn answer<T: Serialize>(v: T) -> Result<Value, ToolError> {
    serde_json::to_value(v).map_err(|e| ToolError {
        status: 500,
        code: "internal".into(),
        message: format!("answer not serialisable: {e}"),
    })
}

fn instance_or_global(s: Option<String>) -> Result<InstanceId, ToolError> {
    match s {
        Some(s) => Ok(instance_id(&s)?),
        None => Ok(InstanceId::global()),
    }
}

/// Runs the tool `name` for `access`; the answer is the tool's structured content.
pub async fn call(
    svc: &dyn HopperService,
    access: &Access,
    name: &str,
    args: JsonObject,
) -> Result<Value, ToolError> {
    let Some(spec) = SPECS.iter().find(|s| s.name == name) else {
        return Err(ToolError {
            status: 404,
            code: "not_found".into(),
            message: format!("no tool `{}`", crate::engine::log_str(name)),
        });
    };
    access.permit(spec.method, spec.route)?;
    match name {
        "add_task" => {
            let a: AddTask = parse(args)?;
            let instance = instance_or_global(a.instance.clone())?;
            access.check_instance(&instance).await?;
            answer(svc.add_task(&instance, a.into_draft()).await?)
        }
        "get_next" => {
            let a: GetNext = parse(args)?;
            let instance = instance_id(&a.instance)?;
            access.check_instance(&instance).await?;
            let executor = access.claimant(a.executor)?;
            let lease = LeaseRequest {
                seconds: a.lease_seconds,
            };
            let task = svc.get_next(&instance, &executor, lease).await?;
            answer(Next { task })
        }
        "claim" => {
            let a: Claim = parse(args)?;
            let id = task_id(&a.task_id)?;
            access.check_task(&id).await?;
            let executor = access.claimant(a.executor)?;
            let lease = LeaseRequest {
                seconds: a.lease_seconds,
            };
            answer(svc.claim(&id, &executor, lease).await?)
        }
        "heartbeat" => {
            let a: Heartbeat = parse(args)?;
            let id = task_id(&a.task_id)?;
            access.check_task(&id).await?;
            let actor = access.actor(a.executor, Some(a.lease_id))?;
            let lease = LeaseRequest {
                seconds: a.lease_seconds,
            };
            answer(svc.heartbeat(&id, &actor, lease).await?)
        }
        "complete" => {
            let a: Complete = parse(args)?;
            let id = task_id(&a.task_id)?;
            access.check_task(&id).await?;
            let actor = access.actor(a.executor, a.lease_id)?;
            answer(svc.complete(&id, &actor, a.feedback).await?)
        }
        "fail" => {
            let a: Fail = parse(args)?;
            let id = task_id(&a.task_id)?;
            access.check_task(&id).await?;
            let actor = access.actor(a.executor, a.lease_id)?;
            answer(svc.fail(&id, &actor, &a.reason).await?)
        }
        "release" => {
            let a: Release = parse(args)?;
            let id = task_id(&a.task_id)?;
            access.check_task(&id).await?;
            let actor = access.actor(a.executor, a.lease_id)?;
            answer(svc.release(&id, &actor).await?)
        }
        "list_tasks" => {
            let a: ListTasks = parse(args)?;
            let instance = instance_or_global(a.instance)?;
            access.check_instance(&instance).await?;
            let filter = TaskFilter {
                status: a.status,
                hierarchy: a.hierarchy,
                limit: a.limit,
                after: a.after.as_deref().map(task_id).transpose()?,
            };
            answer(Tasks {
                tasks: svc.list_tasks(&instance, &filter).await?,
            })
        }
        "get_task" => {
            let a: TaskRef = parse(args)?;
            let id = task_id(&a.task_id)?;
            access.check_task(&id).await?;
            let task = svc.get_task(&id).await?;
            let history = svc.task_history(&id).await?;
            answer(TaskDetail { task, history })
        }
        "instances_tree" => {
            let _: NoArgs = parse(args)?;
            answer(svc.instance_tree().await?)
        }
        "instance_stats" => {
            let a: InstanceRef = parse(args)?;
            let instance = instance_id(&a.instance)?;
            access.check_instance(&instance).await?;
            answer(svc.stats(&instance).await?)
        }
        "explain_routing" => {
            let a: TaskRef = parse(args)?;
            let id = task_id(&a.task_id)?;
            access.check_task(&id).await?;
            answer(svc.explain_routing(&id).await?)
        }
        "route_task" => {
            let a: RouteTask = parse(args)?;
            let id = task_id(&a.task_id)?;
            access.check_task(&id).await?;
            let req = RerouteRequest {
                project: a.project,
                reason: a.reason,
            };
            answer(svc.reroute(&id, &req).await?)
        }
        "search_memory" => {
            let a: SearchMemory = parse(args)?;
            let q = MemoryQuery {
                q: a.q,
                instance: a.instance,
                limit: a.limit,
            };
            answer(Hits {
                hits: svc.search_memory(&q).await?,
            })
        }
        "list_executors" => {
            let a: ListExecutors = parse(args)?;
            answer(Executors {
                executors: svc.list_executors(a.project.as_deref()).await?,
            })
        }
        _ => Err(ToolError::invalid(format!("tool `{name}` has no handler"))),
    }
}
