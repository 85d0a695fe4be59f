//! Inbound events: what came in, from which source, what became of it; one event's headers
//! and raw body (pretty JSON, every signature, token and secret redacted), and replay.

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::html;
use serde::Deserialize;

use super::super::UiState;
use super::super::error::UiResult;
use super::super::layout::{self, Nav};
use super::super::redact;
use super::super::session::{Form, Session};
use super::{Done, Id, Nothing, Query, done_message, given};

pub fn router() -> Router<UiState> {
    Router::new()
        .route("/ui/events", get(list))
        .route("/ui/events/{id}", get(show))
        .route("/ui/events/{id}/replay", post(replay))
}

#[derive(Debug, Default, Deserialize)]
struct Filters {
    source: Option<String>,
    status: Option<String>,
}

const STATUSES: [&str; 4] = ["accepted", "commented", "ignored", "duplicate"];

async fn list(
    State(s): State<UiState>,
    session: Session,
    Query(f): Query<Filters>,
) -> UiResult<Response> {
    session.must(&Method::GET, "/v1/events")?;
    let events = s
        .engine()
        .list_events(given(&f.source), given(&f.status), 100)
        .await?;
    let events: Vec<_> = events.iter().map(|e| e.view(false)).collect();
    let sel = |v: &Option<String>, o: &str| given(v) == Some(o);
    let body = html! {
        form method="get" action="/ui/events" class="filters" aria-label="Filter events" {
            label { "Source " input name="source" value=[given(&f.source)] size="14"; }
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for st in STATUSES { option value=(st) selected[sel(&f.status, st)] { (st) } }
                }
            }
            button type="submit" { "Filter" }
        }
        div id="events" data-live {
            table {
                caption class="sr-only" { "Inbound events, newest first" }
                thead { tr {
                    th scope="col" { "Event" } th scope="col" { "Received" } th scope="col" { "Source" }
                    th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Task" }
                } }
                tbody {
                    @for e in &events {
                        tr {
                            td { a href={ "/ui/events/" (e.id) } { (layout::short(&e.id)) } }
                            td { (layout::time(e.received_at)) }
                            td { (e.source) }
                            td { (e.event_type) }
                            td { (layout::badge(&e.status)) @if let Some(r) = &e.reason { " " span class="muted" { (r) } } }
                            td { @if let Some(t) = &e.task_id { a href={ "/ui/tasks/" (t) } { (layout::short(t)) } } }
                        }
                    }
                }
            }
            @if events.is_empty() { p class="muted" { "No event matches." } }
        }
    };
    Ok(layout::page("Inbound events", Nav::Events, &session, body))
}

async fn show(
    State(s): State<UiState>,
    session: Session,
    Id(id): Id,
    Query(q): Query<Done>,
) -> UiResult<Response> {
    session.must(&Method::GET, "/v1/events/{id}")?;
    let e = s.engine().get_event(&id).await?.view(true);
    let headers = redact::headers(&e.headers);
    let may_replay = session.may(&Method::POST, "/v1/events/{id}/replay");
    let body = html! {
        (layout::notice(done_message(given(&q.done))))
        dl class="fields" {
            div { dt { "Source" } dd { (e.source) " (" (e.endpoint) ")" } }
            div { dt { "Type" } dd { (e.event_type) } }
            div { dt { "Delivery id" } dd { (e.delivery_id.as_deref().unwrap_or("—")) } }
            div { dt { "Received" } dd { (layout::time(e.received_at)) } }
            div { dt { "Status" } dd { (layout::badge(&e.status)) " " (e.reason.as_deref().unwrap_or("")) } }
            div { dt { "Instance" } dd { a href={ "/ui/instances/" (e.instance_id) } { (e.instance_id) } } }
            div { dt { "Task" } dd { @if let Some(t) = &e.task_id { a href={ "/ui/tasks/" (t) } { (t) } } @else { "—" } } }
            div { dt { "Replay of" } dd { @if let Some(r) = &e.replay_of { a href={ "/ui/events/" (r) } { (r) } } @else { "—" } } }
        }
        @if may_replay {
            (layout::action(&session, &format!("/ui/events/{}/replay", e.id), "Replay", ""))
        }
        h2 { "Headers" }
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } } }
            tbody { @for (k, v) in &headers { tr { td { (k) } td { (v) } } } }
        }
        h2 { "Body " span class="muted" { "(" (e.body_bytes) " bytes)" } }
        pre tabindex="0" id="raw-body" { (redact::body(e.body.as_deref().unwrap_or(""))) }
    };
    Ok(layout::page(
        &format!("Event {}", e.id),
        Nav::Events,
        &session,
        body,
    ))
}

async fn replay(
    State(s): State<UiState>,
    Id(id): Id,
    Form(session, Nothing {}): Form<Nothing>,
) -> UiResult<Response> {
    session.must(&Method::POST, "/v1/events/{id}/replay")?;
    let receipt = crate::inbound::replay(s.engine(), &s.app.sources, &id).await?;
    Ok(Redirect::to(&format!("/ui/events/{}?done=replayed", receipt.event_id)).into_response())
}
