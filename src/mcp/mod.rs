//! The MCP server: coding assistants (Claude Desktop, Claude Code, Cursor, any MCP client) add
//! tasks, take the next one they can do, report progress and finish it, and read the hierarchy
//! and memory, with the REST API's rules and tokens.
//!
//! Why this shape: the tools are built on [`HopperService`] (`tools`), so the three ways in
//! share one implementation: `hopper mcp` over stdio on the local database (an [`Engine`]),
//! `hopper mcp --server URL --token T` over stdio against a server (a `HopperClient`, the
//! server checking the token), and streamable HTTP at `/mcp` of `hopper serve` (`http`), where
//! each request's bearer token is checked by the REST API's own functions (`auth`). Schemas
//! are the REST API's (`schema`), errors its codes and messages (`error`). rmcp, the official
//! SDK, owns the protocol: versions, framing, sessions.

mod args;
mod auth;
mod error;
pub mod http;
mod resources;
mod schema;
mod tools;

use std::sync::Arc;

use axum::http::request::Parts;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Extensions, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};

pub use auth::Access;
pub use error::ToolError;

use crate::api::auth::Caller;
use crate::engine::Engine;
use crate::service::HopperService;

const INSTRUCTIONS: &str = "Hopper routes tasks to projects and their executors. To work: \
get_next (your instance and executor) claims a task and returns its lease_id; heartbeat while \
you work; complete (with feedback) or fail or release under that lease_id. add_task adds work; \
list_tasks, get_task, instances_tree, instance_stats, explain_routing and search_memory look.";

/// One MCP server over a [`HopperService`].
#[derive(Clone)]
pub struct HopperMcp {
    service: Arc<dyn HopperService>,
    mode: Mode,
}

#[derive(Clone)]
enum Mode {
    /// stdio: one caller for the whole session.
    Fixed(Access),
    /// HTTP: the caller of each request, as `http` resolved its bearer token.
    PerRequest(Engine),
}

impl HopperMcp {
    /// For stdio: the local operator, or a remote server that checks its token itself.
    pub fn stdio(service: Arc<dyn HopperService>, default_executor: Option<String>) -> Self {
        Self {
            service,
            mode: Mode::Fixed(Access::trusted(default_executor)),
        }
    }

    /// For HTTP inside `hopper serve`: every request carries its own token.
    pub fn http(engine: Engine) -> Self {
        Self {
            service: Arc::new(engine.clone()),
            mode: Mode::PerRequest(engine),
        }
    }

    fn access(&self, extensions: &Extensions) -> Result<Access, ToolError> {
        match &self.mode {
            Mode::Fixed(access) => Ok(access.clone()),
            Mode::PerRequest(engine) => extensions
                .get::<Parts>()
                .and_then(|p| p.extensions.get::<Caller>())
                .cloned()
                .map(|caller| Access::token(engine.clone(), caller))
                .ok_or_else(|| crate::api::error::ApiError::unauthorized().into()),
        }
    }
}

impl ServerHandler for HopperMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_resources()
                .enable_tools()
                .build(),
        )
        .with_server_info(Implementation::new("hopper", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::catalog().to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.as_ref();
        let outcome = match self.access(&context.extensions) {
            Ok(access) => {
                let args = request.arguments.clone().unwrap_or_default();
                tools::call(self.service.as_ref(), &access, name, args).await
            }
            Err(e) => Err(e),
        };
        let result = match outcome {
            Ok(value) => CallToolResult::structured(value),
            Err(e) => {
                tracing::debug!(tool = %crate::engine::log_str(name), code = %e.code, "mcp tool refused");
                e.into_result()
            }
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let access = self
            .access(&context.extensions)
            .map_err(ToolError::into_protocol)?;
        let listed = resources::list(self.service.as_ref(), &access)
            .await
            .map_err(ToolError::into_protocol)?;
        Ok(ListResourcesResult::with_all_items(listed))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let access = self
            .access(&context.extensions)
            .map_err(ToolError::into_protocol)?;
        let contents = resources::read(self.service.as_ref(), &access, &request.uri)
            .await
            .map_err(ToolError::into_protocol)?;
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}

/// `hopper mcp`: serves MCP on stdin/stdout until the client closes them.
pub async fn serve_stdio(
    service: Arc<dyn HopperService>,
    default_executor: Option<String>,
) -> anyhow::Result<()> {
    let running = HopperMcp::stdio(service, default_executor)
        .serve(rmcp::transport::stdio())
        .await?;
    running.waiting().await?;
    Ok(())
}
