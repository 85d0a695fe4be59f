//! Memory: search the episodes (what was routed where, how it went), and read the pages
//! consolidation wrote, rendered again from the routing profile it stored (the same files it
//! committed: `memory::consolidate::files`), when it has run.

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use super::super::UiState;
use super::super::error::{UiError, UiResult};
use super::super::layout::{self, Nav};
use super::super::session::Session;
use super::{Query, given};
use crate::domain::MemoryQuery;
use crate::memory::consolidate::{RoutingProfile, files};

pub fn router() -> Router<UiState> {
    Router::new().route("/ui/memory", get(page))
}

#[derive(Debug, Default, Deserialize)]
struct Params {
    q: Option<String>,
    instance: Option<String>,
    /// A consolidated page to show.
    page: Option<String>,
}

async fn page(
    State(s): State<UiState>,
    session: Session,
    Query(p): Query<Params>,
) -> UiResult<Response> {
    session.must(&Method::GET, "/v1/memory/search")?;
    let hits = match given(&p.q) {
        Some(q) => Some(
            s.engine()
                .search_memory(&MemoryQuery {
                    q: q.to_owned(),
                    instance: given(&p.instance).map(str::to_owned),
                    limit: Some(50),
                })
                .await?,
        ),
        None => None,
    };
    let root = s.engine().root().clone();
    let state = s
        .engine()
        .node(&root)
        .await?
        .store
        .memory_state(root.as_str())
        .await?;
    let pages = match &state.profile {
        Some(text) => match serde_json::from_str::<RoutingProfile>(text) {
            Ok(profile) => files(&profile),
            Err(e) => {
                tracing::warn!(error = %e, "the stored routing profile does not parse");
                Default::default()
            }
        },
        None => Default::default(),
    };
    let shown = match given(&p.page) {
        Some(name) => Some((
            name,
            pages
                .get(name)
                .ok_or_else(|| UiError::BadRequest(format!("no consolidated page `{name}`")))?,
        )),
        None => None,
    };
    let body = html! {
        form method="get" action="/ui/memory" class="filters" role="search" {
            label { "Search " input name="q" type="search" value=[given(&p.q)] size="30"; }
            label { "Instance " input name="instance" value=[given(&p.instance)] size="14" placeholder="global"; }
            button type="submit" { "Search" }
        }
        @if let Some(hits) = &hits {
            section aria-labelledby="hits-h" {
                h2 id="hits-h" { (hits.len()) " episodes" }
                table {
                    thead { tr { th scope="col" { "Task" } th scope="col" { "Kind" } th scope="col" { "Project" } th scope="col" { "Match" } th scope="col" class="num" { "Score" } th scope="col" { "When" } } }
                    tbody {
                        @for h in hits {
                            tr {
                                td { a href={ "/ui/tasks/" (h.episode.task_id) } { (h.episode.title) } }
                                td { (format!("{:?}", h.episode.kind).to_lowercase()) }
                                td { (h.episode.project.as_deref().unwrap_or("—")) }
                                td { (h.snippet) }
                                td class="num" { (format!("{:.2}", h.score)) }
                                td { (layout::time(h.episode.at)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="pages-h" {
            h2 id="pages-h" { "Consolidated pages" }
            @if pages.is_empty() {
                p class="muted" { "Consolidation has not run yet (" code { "memory.consolidated" } ", " code { "hopper memory consolidate" } ")." }
            } @else {
                p class="muted" {
                    "Last run " (state.last_run_at.map(layout::time).unwrap_or_default())
                    @if let Some(c) = &state.last_commit { ", commit " code { (c) } }
                }
                ul class="chips" {
                    @for name in pages.keys() {
                        li { a href={ "/ui/memory?" (url::form_urlencoded::Serializer::new(String::new()).append_pair("page", name).finish()) } aria-current=[(Some(name.as_str()) == given(&p.page)).then_some("page")] { (name) } }
                    }
                }
            }
            @if let Some((name, text)) = shown {
                article { h3 { (name) } pre class="wrap" tabindex="0" { (text) } }
            }
        }
    };
    Ok(layout::page("Memory", Nav::Memory, &session, body))
}
