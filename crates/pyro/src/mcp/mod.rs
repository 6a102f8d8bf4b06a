//! The MCP server: one type, [`PyroMcpServer`], whose `tools/list` and `tools/call`
//! are generated from the contract table for the chosen [`Profile`].
//!
//! - `tools/list` returns exactly the profile's tools, in registration order, with the
//!   profile's (possibly narrowed) input schemas.
//! - `tools/call` of a tool outside the profile is a tool error naming the profile
//!   that has it; bad arguments and runtime failures are tool errors too, with a
//!   message a model can act on.
//! - Results carry `structuredContent` (the JSON object) and the same JSON as text.

mod dispatch;

pub use dispatch::{call_tool, check_profile, ToolCallError};

use crate::sdk::Pyro;
use pyro_contract::{tools_for, Profile, ToolSpec};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use std::sync::Arc;

/// pyro's MCP server for one profile.
#[derive(Debug, Clone)]
pub struct PyroMcpServer {
    pyro: Pyro,
    profile: Profile,
}

fn to_tool(spec: &ToolSpec, profile: Profile) -> Tool {
    let schema = match spec.schema_for(profile) {
        Value::Object(map) => map,
        _ => Default::default(),
    };
    let annotations = ToolAnnotations::new()
        .read_only(spec.read_only)
        .destructive(spec.destructive)
        .open_world(false);
    Tool::new(spec.name, spec.description, Arc::new(schema)).with_annotations(annotations)
}

impl PyroMcpServer {
    /// A server over `pyro` exposing `profile`.
    pub fn new(pyro: Pyro, profile: Profile) -> Self {
        PyroMcpServer { pyro, profile }
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The tools this server lists.
    pub fn tools(&self) -> Vec<Tool> {
        tools_for(self.profile).map(|t| to_tool(t, self.profile)).collect()
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
        match call_tool(&self.pyro, self.profile, name, args).await {
            Ok(value) => {
                let text = serde_json::to_string_pretty(&value).unwrap_or_default();
                let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
                if value.is_object() {
                    result.structured_content = Some(value);
                }
                result
            }
            Err(err) => CallToolResult::error(vec![ContentBlock::text(err.0)]),
        }
    }
}

impl ServerHandler for PyroMcpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("pyro", env!("CARGO_PKG_VERSION")))
            .with_instructions(self.profile.instructions())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools_for(self.profile).find(|t| t.name == name).map(|t| to_tool(t, self.profile))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.clone().unwrap_or_default();
        Ok(self.call(&request.name, args).await.into())
    }
}
