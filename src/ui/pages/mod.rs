//! The pages, one module each, and what they share: the query-string extractor whose every
//! mistake is a 400 page, and the parsing of ids from paths.

mod events;
mod executors;
mod instance;
mod memory;
mod overview;
mod task;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::UiState;
use super::error::{UiError, UiResult};
use crate::domain::{InstanceId, TaskId};

/// A form with no fields of its own (`session::Form` checks its CSRF token).
#[derive(serde::Deserialize)]
pub(crate) struct Nothing {}

/// `?done=…`: what the last action did, shown once on the page it redirected to.
#[derive(serde::Deserialize)]
struct Done {
    done: Option<String>,
}

pub fn router() -> Router<UiState> {
    Router::new()
        .merge(overview::router())
        .merge(instance::router())
        .merge(task::router())
        .merge(events::router())
        .merge(executors::router())
        .merge(memory::router())
}

/// A query string; a malformed one is a 400 page.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<UiState> for Query<T> {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> UiResult<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| UiError::BadRequest(e.body_text()))
    }
}

/// A path's id; a malformed one is a 400 page.
pub struct Id(pub String);

impl FromRequestParts<UiState> for Id {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> UiResult<Self> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| Id(p.0))
            .map_err(|e| UiError::BadRequest(e.body_text()))
    }
}

pub fn instance_id(s: &str) -> UiResult<InstanceId> {
    InstanceId::parse(s).map_err(UiError::BadRequest)
}

pub fn task_id(s: &str) -> UiResult<TaskId> {
    TaskId::parse(s).map_err(UiError::BadRequest)
}

/// An optional query field: absent and empty (a form's blank select) are the same.
pub fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `?done=` after an action: one of the page's known messages, never the raw text.
pub fn done_message(done: Option<&str>) -> Option<&'static str> {
    Some(match done? {
        "rerouted" => "Re-routed.",
        "cancelled" => "Cancelled.",
        "released" => "Released: the task is pending again.",
        "replayed" => "Replayed: the event was read again with the current configuration.",
        "resent" => "Sent again.",
        "recovered" => "Recovered: the executor's dead deliveries are queued again.",
        "enabled" => "Enabled.",
        "disabled" => "Disabled.",
        _ => return None,
    })
}
