//! Executors: their health at a glance, each one's deliveries with every attempt and the
//! answer it got, and the operator's buttons: resend a delivery, recover the dead ones,
//! enable, disable, rotate the signing secret (the new secret is shown once, on the answer
//! to the POST, as the API does, and never again).

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
use super::super::redact;
use super::super::session::{Form, Session};
use super::{Done, Id, Nothing, Query, done_message, given};
use crate::domain::{Delivery, DeliveryFilter};
use crate::outbound::deliveries;

pub fn router() -> Router<UiState> {
    Router::new()
        .route("/ui/executors", get(list))
        .route("/ui/executors/{id}", get(show))
        .route("/ui/executors/{id}/enable", post(enable))
        .route("/ui/executors/{id}/disable", post(disable))
        .route("/ui/executors/{id}/recover", post(recover))
        .route("/ui/executors/{id}/rotate", post(rotate))
        .route("/ui/deliveries/{id}", get(delivery))
        .route("/ui/deliveries/{id}/resend", post(resend))
}

/// Deliveries as a table (also on the task page).
pub fn delivery_table(list: &[Delivery]) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { "Delivery" } th scope="col" { "Event" } th scope="col" { "To" }
                th scope="col" { "Status" } th scope="col" class="num" { "Attempts" }
                th scope="col" { "Last answer" } th scope="col" { "Created" }
            } }
            tbody {
                @for d in list {
                    tr {
                        td { a href={ "/ui/deliveries/" (d.id) } { (layout::short(&d.id)) } }
                        td { (d.event) }
                        td { @if d.executor_id.starts_with("exec_") { a href={ "/ui/executors/" (d.executor_id) } { (layout::short(&d.executor_id)) } } @else { (d.executor_id) } }
                        td { (layout::badge(d.status.as_str())) }
                        td class="num" { (d.attempts) }
                        td { (d.last_status.map(|s| s.to_string()).unwrap_or_default()) " " span class="muted" { (d.last_error.as_deref().unwrap_or("")) } }
                        td { (d.created_at) }
                    }
                }
            }
        }
        @if list.is_empty() { p class="muted" { "No delivery." } }
    }
}

async fn list(State(s): State<UiState>, session: Session) -> UiResult<Response> {
    session.must(&Method::GET, "/v1/executors")?;
    let executors = s.engine().list_executors(None).await?;
    let body = html! {
        div id="executors" data-live {
            table {
                caption class="sr-only" { "Executors and their health" }
                thead { tr {
                    th scope="col" { "Executor" } th scope="col" { "Project" } th scope="col" { "Kind" }
                    th scope="col" { "Health" } th scope="col" { "Webhook" } th scope="col" { "Capabilities" }
                } }
                tbody {
                    @for e in &executors {
                        tr {
                            td { a href={ "/ui/executors/" (e.id) } { (e.name) } }
                            td { (e.project) }
                            td { (e.kind.as_str()) }
                            td { (health(e)) }
                            td { (e.webhook_url.as_deref().map(redact::url).unwrap_or_default()) }
                            td { (e.capabilities.join(", ")) }
                        }
                    }
                }
            }
            @if executors.is_empty() { p class="muted" { "No executor is registered." } }
        }
    };
    Ok(layout::page("Executors", Nav::Executors, &session, body))
}

fn health(e: &crate::domain::Executor) -> Markup {
    html! {
        @if !e.enabled { (layout::badge("disabled")) " " span class="muted" { (e.disabled_reason.as_deref().unwrap_or("")) } }
        @else if let Some(f) = &e.failing_since { (layout::badge("failing")) " since " (f) }
        @else { (layout::badge("healthy")) }
    }
}

async fn show(
    State(s): State<UiState>,
    session: Session,
    Id(id): Id,
    Query(q): Query<Done>,
) -> UiResult<Response> {
    session.must(&Method::GET, "/v1/executors")?;
    let e = s.engine().get_executor(&id).await?;
    let list = deliveries::list(
        s.engine(),
        &DeliveryFilter {
            executor: Some(e.id.to_string()),
            limit: Some(100),
            ..Default::default()
        },
    )
    .await?;
    let admin = |route: &str| session.may(&Method::POST, route);
    let eid = e.id.as_str();
    let body = html! {
        (layout::notice(done_message(given(&q.done))))
        dl class="fields" {
            div { dt { "Health" } dd { (health(&e)) } }
            div { dt { "Project" } dd { a href={ "/ui/instances/" (e.project) } { (e.project) } } }
            div { dt { "Webhook" } dd { (e.webhook_url.as_deref().map(redact::url).unwrap_or_default()) } }
            div { dt { "Events" } dd { (e.events.join(", ")) } }
            div { dt { "Auto-claim" } dd { (e.auto_claim) } }
            div { dt { "Capabilities" } dd { (e.capabilities.join(", ")) } }
        }
        section class="actions" aria-label="Actions" {
            @if e.enabled && admin("/v1/executors/{id}/disable") {
                form method="post" action={ "/ui/executors/" (eid) "/disable" } class="inline" {
                    (layout::csrf(&session))
                    label { "Reason " input name="reason" size="20"; }
                    button type="submit" class="danger" { "Disable" }
                }
            }
            @if !e.enabled && admin("/v1/executors/{id}/enable") {
                (layout::action(&session, &format!("/ui/executors/{eid}/enable"), "Enable", ""))
            }
            @if admin("/v1/executors/{id}/recover") {
                form method="post" action={ "/ui/executors/" (eid) "/recover" } class="inline" {
                    (layout::csrf(&session))
                    label { "Dead since (RFC 3339) " input name="since" required size="22" value=(e.created_at); }
                    button type="submit" { "Recover" }
                }
            }
            @if admin("/v1/executors/{id}/rotate-secret") {
                (layout::action(&session, &format!("/ui/executors/{eid}/rotate"), "Rotate secret", ""))
            }
        }
        section aria-labelledby="d-h" id="deliveries" data-live {
            h2 id="d-h" { "Deliveries" }
            (delivery_table(&list))
        }
    };
    Ok(layout::page(
        &format!("Executor {}", e.name),
        Nav::Executors,
        &session,
        body,
    ))
}

async fn delivery(
    State(s): State<UiState>,
    session: Session,
    Id(id): Id,
    Query(q): Query<Done>,
) -> UiResult<Response> {
    session.must(&Method::GET, "/v1/deliveries/{id}")?;
    let d = deliveries::show(s.engine(), &id).await?;
    let may_resend = session.may(&Method::POST, "/v1/deliveries/{id}/retry");
    let body = html! {
        (layout::notice(done_message(given(&q.done))))
        (delivery_table(std::slice::from_ref(&d.delivery)))
        @if may_resend && d.delivery.status != crate::domain::DeliveryStatus::Delivered {
            (layout::action(&session, &format!("/ui/deliveries/{}/resend", d.delivery.id), "Resend", ""))
        }
        section id="attempts" data-live aria-labelledby="a-h" {
            h2 id="a-h" { "Attempts" }
            table {
                thead { tr { th scope="col" class="num" { "#" } th scope="col" { "At" } th scope="col" { "Status" } th scope="col" class="num" { "Latency" } th scope="col" { "Response or error" } } }
                tbody {
                    @for a in &d.history {
                        tr {
                            td class="num" { (a.attempt) }
                            td { (a.at) }
                            td { (a.status_code.map(|s| s.to_string()).unwrap_or_else(|| "—".into())) }
                            td class="num" { (a.latency_ms) " ms" }
                            td { (a.response.as_deref().or(a.error.as_deref()).unwrap_or("")) }
                        }
                    }
                }
            }
        }
        h2 { "Payload" }
        (layout::pretty(&redact::value(&d.payload).to_string()))
    };
    Ok(layout::page(
        &format!("Delivery {}", d.delivery.id),
        Nav::Executors,
        &session,
        body,
    ))
}

async fn resend(
    State(s): State<UiState>,
    Id(id): Id,
    Form(session, Nothing {}): Form<Nothing>,
) -> UiResult<Response> {
    session.must(&Method::POST, "/v1/deliveries/{id}/retry")?;
    deliveries::retry(s.engine(), &id).await?;
    Ok(Redirect::to(&format!("/ui/deliveries/{id}?done=resent")).into_response())
}

async fn enable(
    State(s): State<UiState>,
    Id(id): Id,
    Form(session, Nothing {}): Form<Nothing>,
) -> UiResult<Response> {
    session.must(&Method::POST, "/v1/executors/{id}/enable")?;
    let e = s.engine().enable_executor(&id).await?;
    Ok(Redirect::to(&format!("/ui/executors/{}?done=enabled", e.id)).into_response())
}

#[derive(Deserialize)]
struct DisableForm {
    #[serde(default)]
    reason: String,
}

async fn disable(
    State(s): State<UiState>,
    Id(id): Id,
    Form(session, f): Form<DisableForm>,
) -> UiResult<Response> {
    session.must(&Method::POST, "/v1/executors/{id}/disable")?;
    let reason = Some(f.reason.trim()).filter(|r| !r.is_empty());
    let e = s.engine().disable_executor(&id, reason).await?;
    Ok(Redirect::to(&format!("/ui/executors/{}?done=disabled", e.id)).into_response())
}

#[derive(Deserialize)]
struct RecoverForm {
    #[serde(default)]
    since: String,
}

async fn recover(
    State(s): State<UiState>,
    Id(id): Id,
    Form(session, f): Form<RecoverForm>,
) -> UiResult<Response> {
    session.must(&Method::POST, "/v1/executors/{id}/recover")?;
    if f.since.trim().is_empty() {
        return Err(UiError::BadRequest("say since when (RFC 3339)".into()));
    }
    deliveries::recover(s.engine(), &id, f.since.trim()).await?;
    Ok(Redirect::to(&format!("/ui/executors/{id}?done=recovered")).into_response())
}

/// The answer to the POST is the only place the new secret appears (`Cache-Control:
/// no-store`, like every dashboard page).
async fn rotate(
    State(s): State<UiState>,
    Id(id): Id,
    Form(session, Nothing {}): Form<Nothing>,
) -> UiResult<Response> {
    session.must(&Method::POST, "/v1/executors/{id}/rotate-secret")?;
    let e = s.engine().get_executor(&id).await?;
    let r = s.engine().rotate_executor_secret(&id).await?;
    let body = html! {
        p role="status" class="notice" { "The new signing secret of " (e.name) ". It is shown this once: copy it to the executor now." }
        pre id="new-secret" tabindex="0" { (r.secret) }
        p { "The previous secret also signs until " (r.previous_secret_until) "." }
        p { a href={ "/ui/executors/" (e.id) } { "Back to the executor" } }
    };
    Ok(layout::page(
        "New signing secret",
        Nav::Executors,
        &session,
        body,
    ))
}
