//! The MCP server: one type, [`PyroMcpServer`], whose `tools/list` and `tools/call`
//! are generated from the contract table for the chosen [`Profile`].
//!
//! - `tools/list` returns exactly the profile's tools, in registration order, with the
//!   profile's (possibly narrowed) input schemas.
//! - `tools/call` of a tool outside the profile is a tool error naming the profile
//!   that has it; bad arguments and runtime failures are tool errors too, with a
//!   message a model can act on.
//! - Every tool declares an `outputSchema` (made from its result type in the contract);
//!   results carry `structuredContent` (the JSON object, valid against that schema) and
//!   the same JSON as compact text.
//! - Errors are `isError: true` with the one-line message (and hint) as text and
//!   `structuredContent` `{"error": {kind, message, hint}}` ([`pyro_contract::ErrorReport`]).

mod dispatch;
mod options;
mod progress;

pub use dispatch::{call_tool, check_profile, ToolCallError};
pub use options::ServerOptions;

use crate::project::{ProjectSource, ProjectSourceError};
use crate::sdk::Pyro;
use dispatch::ServerContext;
use pyro_contract::{ExposedTool, Profile, Surface, ToolError};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use std::sync::Arc;

/// pyro's MCP server for one profile or mode.
#[derive(Debug, Clone)]
pub struct PyroMcpServer {
    pyro: Pyro,
    surface: Surface,
    context: Arc<ServerContext>,
}

impl PyroMcpServer {
    /// A server over `pyro` exposing `options` (a [`Profile`], a [`pyro_contract::Mode`]
    /// or full [`ServerOptions`]). A project source that cannot be resolved does not
    /// stop the server: `workspace_create` without `seed_path` then fails with the
    /// reason. Use [`PyroMcpServer::try_new`] to fail at once instead.
    pub fn new(pyro: Pyro, options: impl Into<ServerOptions>) -> Self {
        let options = options.into();
        let (project, project_error) = match options.project.resolve() {
            Ok(project) => (project, None),
            Err(e) => (None, Some(e.to_string())),
        };
        Self::build(pyro, options, project, project_error)
    }

    /// Like [`PyroMcpServer::new`], but a project source that cannot be resolved (a
    /// missing `--project-path`, a failed clone) is an error.
    pub fn try_new(
        pyro: Pyro,
        options: impl Into<ServerOptions>,
    ) -> Result<Self, ProjectSourceError> {
        let options = options.into();
        let project = options.project.resolve()?;
        Ok(Self::build(pyro, options, project, None))
    }

    fn build(
        pyro: Pyro,
        options: ServerOptions,
        project: Option<ProjectSource>,
        project_error: Option<String>,
    ) -> Self {
        let context = ServerContext {
            project: project.map(Arc::new),
            project_error,
            environment: options.environment,
        };
        PyroMcpServer { pyro, surface: options.surface, context: Arc::new(context) }
    }

    /// The profile, for a profile server (`None` for a mode).
    pub fn profile(&self) -> Option<Profile> {
        match self.surface {
            Surface::Profile(p) => Some(p),
            Surface::Mode(_) => None,
        }
    }

    /// The profile or mode.
    pub fn surface(&self) -> Surface {
        self.surface
    }

    /// The project source `workspace_create` seeds from without `seed_path`.
    pub fn project(&self) -> Option<&ProjectSource> {
        self.context.project.as_deref()
    }

    fn to_tool(&self, exposed: &ExposedTool) -> Tool {
        let mut schema = match exposed.input_schema() {
            Value::Object(map) => map,
            _ => Default::default(),
        };
        let mut description = exposed.description().to_string();
        if exposed.name() == "workspace_create" {
            self.context.adjust_create(&mut schema, &mut description);
        }
        // Only the hints that differ from MCP's defaults are sent (the token budget).
        let [read_only, destructive, idempotent, open_world] = exposed.hints().declared();
        let mut annotations = ToolAnnotations::new();
        annotations.read_only_hint = read_only;
        annotations.destructive_hint = destructive;
        annotations.idempotent_hint = idempotent;
        annotations.open_world_hint = open_world;
        let output = match (exposed.spec.output_schema)() {
            Value::Object(map) => map,
            _ => Default::default(),
        };
        Tool::new(exposed.name(), description, Arc::new(schema))
            .with_raw_output_schema(Arc::new(output))
            .with_annotations(annotations)
    }

    /// The tools this server lists.
    pub fn tools(&self) -> Vec<Tool> {
        self.surface.tools().iter().map(|t| self.to_tool(t)).collect()
    }

    /// Serve MCP over stdin/stdout until the client disconnects. While serving, expired
    /// workspaces and one-shot VMs are reaped every 30 seconds.
    pub async fn serve_stdio(self) -> Result<(), std::io::Error> {
        let runtime = self.pyro.runtime().clone();
        let reaper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tick.tick().await;
                let rt = runtime.clone();
                let _ = tokio::task::spawn_blocking(move || rt.reap_expired()).await;
            }
        });
        let service = self
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let result = service.waiting().await.map_err(|e| std::io::Error::other(e.to_string()));
        reaper.abort();
        result.map(|_| ())
    }

    /// Call one tool; errors become tool error results.
    pub async fn call(&self, name: &str, args: serde_json::Map<String, Value>) -> CallToolResult {
        let answer = dispatch::call_tool_in(&self.pyro, self.surface, &self.context, name, args)
            .await
            .and_then(|output| dispatch::encode(&output));
        match answer {
            // `structured` sends the same value as compact JSON text: the text is for a
            // model's context, where indentation costs tokens.
            Ok(value) => CallToolResult::structured(value),
            Err(err) => {
                // The text is the one line a model reads; `structuredContent` carries the
                // report for clients that branch on `kind`.
                let report = ToolError { error: err.0.clone() };
                let mut result = CallToolResult::error(vec![ContentBlock::text(err.to_string())]);
                result.structured_content = serde_json::to_value(report).ok();
                result
            }
        }
    }
}

impl ServerHandler for PyroMcpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("pyro", env!("CARGO_PKG_VERSION")))
            .with_instructions(self.surface.instructions())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.surface.tool(name).map(|t| self.to_tool(&t))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.clone().unwrap_or_default();
        // Progress (with a progressToken) and cancellation travel with the call.
        let (watch, sender) = progress::McpWatch::new(&context);
        let call = self.call(&request.name, args);
        let result = crate::runtime::watch::scope(Arc::new(watch), call).await;
        if let Some(sender) = sender {
            // The watch is gone with the call: the sender flushes and ends.
            let _ = sender.await;
        }
        Ok(result.into())
    }
}
