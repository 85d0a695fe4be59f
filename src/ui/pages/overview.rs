//! The overview: the instance tree with its counts (open, claimed, done, ...), the oldest
//! pending task's age and the last hour's throughput per instance, and, for those who may
//! see them, the failing executors and the dead letters. Every part refreshes live.

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};

use super::super::UiState;
use super::super::error::UiResult;
use super::super::layout::{self, Nav, count};
use super::super::session::Session;
use crate::api::auth::Caller;
use crate::domain::{
    DeliveryFilter, DeliveryStatus, Instance, InstanceFilter, InstanceId, TaskStatus, now_millis,
};
use crate::store::InstanceCounts;

pub fn router() -> Router<UiState> {
    Router::new().route("/ui", get(page))
}

/// One row of the tree: an instance, its depth and its counts.
struct Row {
    instance: Instance,
    depth: usize,
    counts: Option<InstanceCounts>,
}

/// The instances `session` may see, in tree order (depth first, children by name).
async fn rows(s: &UiState, session: &Session) -> UiResult<Vec<Row>> {
    let all = s
        .engine()
        .list_instances(&InstanceFilter::default())
        .await?;
    let mut out = Vec::new();
    // Depth-first from the roots; `list_instances` is small (one row per instance).
    let children = |parent: &Option<InstanceId>| {
        let mut c: Vec<&Instance> = all
            .iter()
            .filter(|i| &i.parent_instance_id == parent)
            .collect();
        c.sort_by(|a, b| b.instance_id.cmp(&a.instance_id));
        c
    };
    let mut order: Vec<(&Instance, usize)> = Vec::new();
    let mut pending: Vec<(&Instance, usize)> =
        children(&None).into_iter().map(|i| (i, 0)).collect();
    while let Some((i, depth)) = pending.pop() {
        order.push((i, depth));
        for c in children(&Some(i.instance_id.clone())) {
            pending.push((c, depth + 1));
        }
    }
    let since = now_millis() - 3_600_000;
    for (i, depth) in order {
        if let Caller::Executor(e) = &session.caller
            && !s.engine().serves(e, &i.instance_id).await.unwrap_or(false)
        {
            continue;
        }
        let counts = match s.engine().node(&i.instance_id).await {
            Ok(node) => Some(node.store.instance_counts(&i.instance_id, since).await?),
            Err(_) => None,
        };
        out.push(Row {
            instance: i.clone(),
            depth,
            counts,
        });
    }
    Ok(out)
}

fn tree(rows: &[Row]) -> Markup {
    let cols = [
        TaskStatus::Pending,
        TaskStatus::Claimed,
        TaskStatus::Routed,
        TaskStatus::Done,
        TaskStatus::Failed,
    ];
    html! {
        section id="tree" data-live aria-labelledby="tree-h" {
            h2 id="tree-h" { "Instances" }
            table {
                caption class="sr-only" { "The instance tree with task counts" }
                thead { tr {
                    th scope="col" { "Instance" }
                    th scope="col" { "Scope" }
                    @for c in cols { th scope="col" class="num" { (c.as_str()) } }
                    th scope="col" class="num" { "Oldest pending" }
                    th scope="col" class="num" { "Finished, last hour" }
                } }
                tbody {
                    @for r in rows {
                        tr {
                            th scope="row" class={ "depth-" (r.depth.min(4)) } {
                                a href={ "/ui/instances/" (r.instance.instance_id) } { (r.instance.instance_id) }
                            }
                            td { (r.instance.scope.as_str()) }
                            @match &r.counts {
                                Some(c) => {
                                    @for s in cols { td class="num" { (count(c.get(s))) } }
                                    td class="num" { @if let Some(t) = c.oldest_pending { (layout::age(t)) } @else { "—" } }
                                    td class="num" { (count(c.finished_since)) }
                                }
                                None => { td colspan="7" class="muted" { "not loaded" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn health(s: &UiState, session: &Session) -> UiResult<Markup> {
    if !session.may(&Method::GET, "/v1/executors") {
        return Ok(html! {});
    }
    let failing: Vec<_> = s
        .engine()
        .list_executors(None)
        .await?
        .into_iter()
        .filter(|e| !e.enabled || e.failing_since.is_some())
        .collect();
    let dead = crate::outbound::deliveries::list(
        s.engine(),
        &DeliveryFilter {
            status: Some(DeliveryStatus::Dead),
            limit: Some(101),
            ..Default::default()
        },
    )
    .await?;
    Ok(html! {
        div class="cards" id="health" data-live {
            section aria-labelledby="failing-h" class="card" {
                h2 id="failing-h" { "Failing executors " span class="pill" { (failing.len()) } }
                @if failing.is_empty() { p class="muted" { "None: every executor is enabled and delivering." } }
                ul {
                    @for e in &failing {
                        li {
                            a href={ "/ui/executors/" (e.id) } { (e.name) } " "
                            @if !e.enabled { (layout::badge("disabled")) }
                            @if let Some(f) = &e.failing_since { " failing since " (f) }
                        }
                    }
                }
            }
            section aria-labelledby="dead-h" class="card" {
                h2 id="dead-h" { "Dead letters " span class="pill" { (if dead.len() > 100 { "100+".to_owned() } else { dead.len().to_string() }) } }
                @if dead.is_empty() { p class="muted" { "None." } }
                ul {
                    @for d in dead.iter().take(10) {
                        li {
                            a href={ "/ui/deliveries/" (d.id) } { (d.event) " → " (layout::short(&d.executor_id)) }
                            " " span class="muted" { (d.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    })
}

async fn page(State(s): State<UiState>, session: Session) -> UiResult<Response> {
    let rows = rows(&s, &session).await?;
    let health = health(&s, &session).await?;
    let body = html! {
        (health)
        (tree(&rows))
    };
    Ok(layout::page("Overview", Nav::Overview, &session, body))
}
