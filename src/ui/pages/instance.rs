//! An instance: its counts, its children, and its queue, filtered by status, tag, priority
//! and executor, a page at a time in keyset order (`?after=` the last id shown: a page costs
//! the same at the millionth task as at the first; see `Store::task_page`).

use axum::Router;
use axum::extract::State;
use axum::http::Method;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::super::UiState;
use super::super::error::{UiError, UiResult};
use super::super::layout::{self, Nav, count};
use super::super::session::Session;
use super::{Id, Query, given, instance_id, task_id};
use crate::api::auth::check_instance;
use crate::domain::{InstanceFilter, Priority, Task, TaskStatus, now_millis};
use crate::store::TaskPage;

pub const PAGE_SIZE: i64 = 50;

pub fn router() -> Router<UiState> {
    Router::new().route("/ui/instances/{id}", get(page))
}

#[derive(Debug, Default, Deserialize)]
pub struct Filters {
    status: Option<String>,
    tag: Option<String>,
    priority: Option<String>,
    executor: Option<String>,
    after: Option<String>,
}

impl Filters {
    fn to_page(&self) -> UiResult<TaskPage> {
        Ok(TaskPage {
            status: given(&self.status)
                .map(str::parse::<TaskStatus>)
                .transpose()
                .map_err(UiError::BadRequest)?,
            tag: given(&self.tag).map(str::to_owned),
            priority: given(&self.priority)
                .map(str::parse::<Priority>)
                .transpose()
                .map_err(UiError::BadRequest)?,
            executor: given(&self.executor).map(str::to_owned),
            after: given(&self.after).map(task_id).transpose()?,
            limit: PAGE_SIZE + 1,
        })
    }

    /// This filter's query string with `after` set to `last`.
    fn next(&self, last: &str) -> String {
        let pairs = [
            ("status", &self.status),
            ("tag", &self.tag),
            ("priority", &self.priority),
            ("executor", &self.executor),
        ];
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            if let Some(v) = given(v) {
                q.append_pair(k, v);
            }
        }
        q.append_pair("after", last);
        q.finish()
    }
}

fn filter_form(id: &str, f: &Filters) -> Markup {
    let sel = |v: &Option<String>, opt: &str| given(v) == Some(opt);
    html! {
        form method="get" action={ "/ui/instances/" (id) } class="filters" aria-label="Filter the queue" {
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in TaskStatus::ALL {
                        option value=(s.as_str()) selected[sel(&f.status, s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label { "Tag " input name="tag" value=[given(&f.tag)] size="12"; }
            label { "Priority "
                select name="priority" {
                    option value="" { "any" }
                    @for p in ["low", "normal", "high", "urgent"] {
                        option value=(p) selected[sel(&f.priority, p)] { (p) }
                    }
                }
            }
            label { "Executor " input name="executor" value=[given(&f.executor)] size="14"; }
            button type="submit" { "Filter" }
            " " a href={ "/ui/instances/" (id) } { "Clear" }
        }
    }
}

pub fn task_table(tasks: &[Task]) -> Markup {
    html! {
        table {
            thead { tr {
                th scope="col" { "Task" }
                th scope="col" { "Title" }
                th scope="col" { "Status" }
                th scope="col" { "Priority" }
                th scope="col" { "Tags" }
                th scope="col" { "Executor" }
                th scope="col" { "Created" }
            } }
            tbody {
                @for t in tasks {
                    tr {
                        td { a href={ "/ui/tasks/" (t.id) } { (layout::short(t.id.as_str())) } }
                        td { (t.title) }
                        td { (layout::status(t.status)) }
                        td { (t.priority.as_str()) }
                        td { (t.tags.join(", ")) }
                        td { (t.claimed_by.as_deref().or(t.executor.as_deref()).unwrap_or("")) }
                        td { time { (t.created_at) } }
                    }
                }
            }
        }
        @if tasks.is_empty() { p class="muted" { "No task matches." } }
    }
}

async fn page(
    State(s): State<UiState>,
    session: Session,
    Id(id): Id,
    Query(f): Query<Filters>,
) -> UiResult<Response> {
    let id = instance_id(&id)?;
    session.must(&Method::GET, "/v1/instances/{id}/tasks")?;
    check_instance(s.engine(), &session.caller, &id).await?;
    let instance = s.engine().get_instance(&id).await?;
    let node = s.engine().node(&id).await?;
    let counts = node
        .store
        .instance_counts(&id, now_millis() - 3_600_000)
        .await?;
    let mut tasks = node.store.task_page(&id, &f.to_page()?).await?;
    let more = tasks.len() as i64 > PAGE_SIZE;
    tasks.truncate(PAGE_SIZE as usize);
    let children = s
        .engine()
        .list_instances(&InstanceFilter {
            parent: Some(id.clone()),
            ..Default::default()
        })
        .await?;
    let body = html! {
        p class="muted" {
            (instance.scope.as_str()) " · " (instance.status.as_str())
            @if let Some(p) = &instance.parent_instance_id {
                " · parent " a href={ "/ui/instances/" (p) } { (p) }
            }
        }
        section id="counts" data-live aria-labelledby="counts-h" {
            h2 id="counts-h" class="sr-only" { "Counts" }
            dl class="stats" {
                @for st in TaskStatus::ALL {
                    div { dt { (st.as_str()) } dd { (count(counts.get(st))) } }
                }
                div { dt { "oldest pending" } dd { @if let Some(t) = counts.oldest_pending { (layout::age(t)) } @else { "—" } } }
                div { dt { "finished, last hour" } dd { (count(counts.finished_since)) } }
            }
        }
        @if !children.is_empty() {
            section aria-labelledby="children-h" {
                h2 id="children-h" { "Children" }
                ul class="chips" {
                    @for c in &children {
                        li { a href={ "/ui/instances/" (c.instance_id) } { (c.instance_id) } " " span class="muted" { (c.scope.as_str()) } }
                    }
                }
            }
        }
        section aria-labelledby="queue-h" {
            h2 id="queue-h" { "Queue" }
            (filter_form(id.as_str(), &f))
            div id="queue" data-live { (task_table(&tasks)) }
            nav aria-label="Pages" class="pager" {
                @if given(&f.after).is_some() {
                    a href={ "/ui/instances/" (id) } { "First page" } " "
                }
                @if let (true, Some(last)) = (more, tasks.last()) {
                    a rel="next" id="next-page" href={ "/ui/instances/" (id) "?" (f.next(last.id.as_str())) } { "Next page" }
                }
            }
        }
    };
    Ok(layout::page(
        &format!("Instance {id}"),
        Nav::Overview,
        &session,
        body,
    ))
}
