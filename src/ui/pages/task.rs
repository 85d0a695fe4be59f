//! A task: its fields, its history, the routing explanation (each provider's turn and the
//! alternatives it weighed), where it came from and where it was handed to, its deliveries
//! and reports, its feedback; and the actions re-route, cancel and release, each shown only
//! to a caller the API would let do it.

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::super::UiState;
use super::super::error::{UiError, UiResult};
use super::super::layout::{self, Nav};
use super::super::session::{Form, Session};
use super::{Done, Id, Nothing, Query, done_message, given, task_id};
use crate::api::auth::{Caller, check_task};
use crate::domain::{Actor, DeliveryFilter, InstanceFilter, Scope, Task};
use crate::engine::{RerouteRequest, RoutingReport};

pub fn router() -> Router<UiState> {
    Router::new()
        .route("/ui/tasks/{id}", get(page))
        .route("/ui/tasks/{id}/reroute", post(reroute))
        .route("/ui/tasks/{id}/cancel", post(cancel))
        .route("/ui/tasks/{id}/release", post(release))
}

fn fields(t: &Task) -> Markup {
    let row = |k: &str, v: Markup| html! { div { dt { (k) } dd { (v) } } };
    let text = |v: Option<&str>| html! { (v.unwrap_or("—")) };
    html! {
        dl class="fields" {
            (row("Status", layout::status(t.status)))
            (row("Instance", html! { a href={ "/ui/instances/" (t.instance_id) } { (t.instance_id) } }))
            (row("Priority", text(Some(t.priority.as_str()))))
            (row("Tags", text(Some(t.tags.join(", ").as_str()))))
            (row("Project", text(t.project.as_deref())))
            (row("Executor asked for", text(t.executor.as_deref())))
            (row("Claimed by", text(t.claimed_by.as_deref())))
            (row("Lease expires", text(t.lease_expires_at.as_deref())))
            (row("Attempts", text(Some(t.attempts.to_string().as_str()))))
            (row("Requester", text(t.requester.as_deref())))
            (row("Source", text(t.source.as_ref().map(|s| s.kind.as_str()))))
            (row("Required capabilities", text(Some(t.required_capabilities.join(", ").as_str()))))
            (row("Due", text(t.due_at.as_deref())))
            (row("Created", text(Some(t.created_at.as_str()))))
            (row("Finished", text(t.finished_at.as_deref())))
            (row("Failure", text(t.failure_reason.as_deref())))
        }
        @if !t.description.is_empty() { h2 { "Description" } pre class="wrap" { (t.description) } }
    }
}

fn routing(r: &RoutingReport) -> Markup {
    html! {
        section aria-labelledby="routing-h" {
            h2 id="routing-h" { "Routing" }
            @if let Some(reason) = &r.routing_reason { p { (reason) } }
            @for d in &r.decisions {
                article class="decision" {
                    h3 { (d.event) " at " (d.instance_id) " · " time { (d.at) }
                        @if let Some(to) = &d.to { " → " strong { (to) } }
                        @if let Some(by) = &d.decided_by { " by " (by) }
                        @if let Some(c) = d.confidence { " (" (format!("{c:.2}")) ")" }
                    }
                    @if let Some(why) = &d.reasoning { p { (why) } }
                    @if !d.chain.is_empty() {
                        table {
                            caption { "Provider chain" }
                            thead { tr { th scope="col" { "Provider" } th scope="col" { "Outcome" } th scope="col" { "Project" } th scope="col" { "Confidence" } th scope="col" { "Reason" } th scope="col" { "Alternatives" } } }
                            tbody {
                                @for s in &d.chain {
                                    tr {
                                        td { (s.provider) }
                                        td { (format!("{:?}", s.outcome)) }
                                        td { (s.project.as_deref().unwrap_or("—")) }
                                        td { @if let Some(c) = s.confidence { (format!("{c:.2}")) } }
                                        td { (s.reason) }
                                        td { @for a in &s.alternatives { (a.project) " " (format!("{:.2}", a.score)) "; " } }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(c) = &d.correction { (layout::pretty(&c.to_string())) }
                }
            }
        }
    }
}

async fn actions(s: &UiState, session: &Session, t: &Task) -> UiResult<Markup> {
    let id = t.id.as_str();
    let open = !t.status.is_terminal();
    let may_reroute = open && session.may(&Method::POST, "/v1/tasks/{id}/route");
    let may_cancel = open && session.may(&Method::POST, "/v1/tasks/{id}/cancel");
    let may_release = t.claimed_by.is_some()
        && t.status == crate::domain::TaskStatus::Claimed
        && session.may(&Method::POST, "/v1/tasks/{id}/release")
        && match &session.caller {
            Caller::Executor(e) => t.claimed_by.as_deref() == Some(e.name.as_str()),
            _ => true,
        };
    if !(may_reroute || may_cancel || may_release) {
        return Ok(html! {});
    }
    let projects = if may_reroute {
        s.engine()
            .list_instances(&InstanceFilter {
                scope: Some(Scope::Project),
                ..Default::default()
            })
            .await?
    } else {
        Vec::new()
    };
    Ok(html! {
        section aria-labelledby="actions-h" class="actions" {
            h2 id="actions-h" { "Actions" }
            @if may_reroute {
                form method="post" action={ "/ui/tasks/" (id) "/reroute" } class="reroute" {
                    (layout::csrf(session))
                    label { "Project " input name="project" id="reroute-project" list="projects" required size="16"; }
                    datalist id="projects" { @for p in &projects { option value=(p.instance_id) {} } }
                    label { "Reason " input name="reason" id="reroute-reason" size="24"; }
                    button type="submit" id="reroute" { "Re-route" }
                }
            }
            @if may_release { (layout::action(session, &format!("/ui/tasks/{id}/release"), "Release", "")) }
            @if may_cancel { (layout::action(session, &format!("/ui/tasks/{id}/cancel"), "Cancel task", "danger")) }
        }
    })
}

async fn page(
    State(s): State<UiState>,
    session: Session,
    Id(id): Id,
    Query(q): Query<Done>,
) -> UiResult<Response> {
    let id = task_id(&id)?;
    session.must(&Method::GET, "/v1/tasks/{id}")?;
    check_task(s.engine(), &session.caller, &id).await?;
    let task = s.engine().get_task(&id).await?;
    let history = s.engine().task_history(&id).await?;
    // The explanation names other projects: only for callers the API would show it to.
    let report = if session.may(&Method::GET, "/v1/tasks/{id}/routing") {
        s.engine().explain_routing(&id).await.ok()
    } else {
        None
    };
    let handed = match s.engine().node(&task.instance_id).await {
        Ok(node) => node.store.delegation_of(&id).await?,
        Err(_) => None,
    };
    let may_deliveries = session.may(&Method::GET, "/v1/deliveries");
    let deliveries = if may_deliveries {
        crate::outbound::deliveries::list(
            s.engine(),
            &DeliveryFilter {
                task: Some(id.to_string()),
                limit: Some(100),
                ..Default::default()
            },
        )
        .await?
    } else {
        Vec::new()
    };
    let actions = actions(&s, &session, &task).await?;
    let body = html! {
        (layout::notice(done_message(given(&q.done))))
        p class="lead" { (task.title) }
        (actions)
        (fields(&task))
        section aria-labelledby="deleg-h" {
            h2 id="deleg-h" { "Delegation" }
            ul {
                @if let Some(p) = &task.parent_task_id {
                    li { "Up: delegated from " a href={ "/ui/tasks/" (p) } { (p) } }
                }
                @if let Some(d) = &handed {
                    li { "Down: handed to " a href={ "/ui/instances/" (d.child_instance_id) } { (d.child_instance_id) }
                        " as " a href={ "/ui/tasks/" (d.child_task_id) } { (d.child_task_id) } }
                }
                @if task.parent_task_id.is_none() && handed.is_none() { li class="muted" { "Not delegated." } }
            }
        }
        @if let Some(r) = &report { (routing(r)) }
        section aria-labelledby="history-h" id="history" data-live {
            h2 id="history-h" { "History" }
            ol class="timeline" {
                @for e in &history {
                    li {
                        time { (e.at) } " " strong { (e.kind) }
                        @if let Some(a) = &e.actor { " by " (a) }
                        @if let Some(d) = &e.detail { details { summary { "detail" } (layout::pretty(&super::super::redact::value(d).to_string())) } }
                    }
                }
            }
        }
        @if may_deliveries {
            section aria-labelledby="deliv-h" {
                h2 id="deliv-h" { "Deliveries and reports" }
                (super::executors::delivery_table(&deliveries))
            }
        }
        @if let Some(f) = &task.feedback {
            section aria-labelledby="fb-h" {
                h2 id="fb-h" { "Feedback" }
                (layout::pretty(&serde_json::to_string(f).unwrap_or_default()))
            }
        }
    };
    Ok(layout::page(
        &format!("Task {}", task.id),
        Nav::Overview,
        &session,
        body,
    ))
}

fn back(id: &str, done: &str) -> Response {
    Redirect::to(&format!("/ui/tasks/{id}?done={done}")).into_response()
}

#[derive(Deserialize)]
struct RerouteForm {
    #[serde(default)]
    project: String,
    #[serde(default)]
    reason: String,
}

async fn reroute(
    State(s): State<UiState>,
    Id(id): Id,
    Form(session, f): Form<RerouteForm>,
) -> UiResult<Response> {
    let tid = task_id(&id)?;
    session.must(&Method::POST, "/v1/tasks/{id}/route")?;
    if f.project.trim().is_empty() {
        return Err(UiError::BadRequest(
            "name the project to re-route to".into(),
        ));
    }
    let req = RerouteRequest {
        project: f.project.trim().to_owned(),
        reason: Some(f.reason.trim().to_owned()).filter(|r| !r.is_empty()),
    };
    s.engine().reroute(&tid, &req, &Actor::Admin).await?;
    Ok(back(&id, "rerouted"))
}

async fn cancel(
    State(s): State<UiState>,
    Id(id): Id,
    Form(session, Nothing {}): Form<Nothing>,
) -> UiResult<Response> {
    let tid = task_id(&id)?;
    session.must(&Method::POST, "/v1/tasks/{id}/cancel")?;
    check_task(s.engine(), &session.caller, &tid).await?;
    s.engine().cancel(&tid, &Actor::Admin).await?;
    Ok(back(&id, "cancelled"))
}

async fn release(
    State(s): State<UiState>,
    Id(id): Id,
    Form(session, Nothing {}): Form<Nothing>,
) -> UiResult<Response> {
    let tid = task_id(&id)?;
    session.must(&Method::POST, "/v1/tasks/{id}/release")?;
    check_task(s.engine(), &session.caller, &tid).await?;
    // An executor releases its own claim, under the lease it holds; an admin any.
    let actor = match &session.caller {
        Caller::Executor(e) => {
            let t = s.engine().get_task(&tid).await?;
            match (&t.claimed_by, &t.lease_id) {
                (Some(by), Some(lease)) if *by == e.name => Actor::Executor {
                    name: e.name.clone(),
                    lease: lease.clone(),
                },
                _ => {
                    return Err(UiError::Forbidden(format!(
                        "executor `{}` does not hold this task",
                        e.name
                    )));
                }
            }
        }
        _ => Actor::Admin,
    };
    s.engine().release(&tid, &actor).await?;
    Ok(back(&id, "released"))
}
