//! Who calls a tool, checked by the REST API's own rules (`api::auth`), never a copy of them.
//! Each tool names the REST route it stands for; [`permitted`] decides on that route exactly as
//! `/v1` does (admin: all; read: `GET` only; executor: the same allowlist), then the resource
//! checks ([`check_task`], [`check_instance`]) and the acting executor ([`acting_as`]) are the
//! REST handlers' functions.
//!
//! Over HTTP the caller comes from the bearer token of each request. Over stdio there is no
//! token: on the local database the operator is the admin (as with every other CLI command),
//! and against a server (`--server --token`) the server applies these rules itself.

use axum::http::Method;

use crate::api::auth::{Caller, acting_as, actor, check_instance, check_task, permitted};
use crate::api::error::ApiError;
use crate::domain::{Actor, InstanceId, TaskId};
use crate::engine::Engine;

use super::error::ToolError;

#[derive(Clone)]
pub struct Access {
    caller: Caller,
    /// Where to look tasks and instances up for an executor token's checks (HTTP only).
    engine: Option<Engine>,
    /// Over stdio: who claims when a call names no executor (`hopper mcp --executor`).
    default_executor: Option<String>,
}

impl Access {
    /// stdio: the local operator, or a remote server that checks the token itself.
    pub fn trusted(default_executor: Option<String>) -> Self {
        Self {
            caller: Caller::Admin,
            engine: None,
            default_executor,
        }
    }

    /// HTTP: the caller the request's bearer token resolved to.
    pub fn token(engine: Engine, caller: Caller) -> Self {
        Self {
            caller,
            engine: Some(engine),
            default_executor: None,
        }
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// May the caller use the REST route `method route` at all.
    pub fn permit(&self, method: &str, route: &str) -> Result<(), ToolError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| ToolError::invalid("unknown method"))?;
        permitted(&self.caller, &method, route).map_err(ToolError::from)
    }

    pub async fn check_task(&self, task: &TaskId) -> Result<(), ToolError> {
        match &self.engine {
            Some(engine) => check_task(engine, &self.caller, task).await,
            None => self.no_engine(),
        }
        .map_err(ToolError::from)
    }

    pub async fn check_instance(&self, instance: &InstanceId) -> Result<(), ToolError> {
        match &self.engine {
            Some(engine) => check_instance(engine, &self.caller, instance).await,
            None => self.no_engine(),
        }
        .map_err(ToolError::from)
    }

    /// Only the admin and read callers pass without an engine to check against; an executor
    /// caller exists only over HTTP, where there is one.
    fn no_engine(&self) -> Result<(), ApiError> {
        match self.caller {
            Caller::Executor(_) => Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "no engine to check an executor token against",
            )),
            _ => Ok(()),
        }
    }

    /// Who claims: an executor token's own executor, else the named one (or the default).
    pub fn claimant(&self, named: Option<String>) -> Result<String, ToolError> {
        acting_as(
            &self.caller,
            named.or_else(|| self.default_executor.clone()),
        )?
        .ok_or_else(|| {
            ToolError::invalid(
                "`executor` is required: who claims (or start `hopper mcp --executor NAME`)",
            )
        })
    }

    /// Who acts on a claimed task (`heartbeat`, `complete`, `fail`, `release`), as REST reads
    /// `executor` and `lease_id`. The stdio default executor stands in only with a lease.
    pub fn actor(&self, named: Option<String>, lease: Option<String>) -> Result<Actor, ToolError> {
        let named = match (named, &lease) {
            (None, Some(_)) => self.default_executor.clone(),
            (named, _) => named,
        };
        actor(&self.caller, named, lease).map_err(ToolError::from)
    }

    /// The executor token's executor, if that is the caller.
    pub fn executor(&self) -> Option<&crate::domain::Executor> {
        match &self.caller {
            Caller::Executor(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}
