//! The rmcp client side shared by tests that drive `pyro mcp serve` as a real MCP client.

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::RoleClient;
use serde_json::Value;

/// A connected rmcp client.
pub type Client = RunningService<RoleClient, ()>;

/// Call tool `name` with `args` (a JSON object); panics only on a transport failure, so
/// tool errors come back as results for the test to check.
pub async fn call(client: &Client, name: &str, args: Value) -> CallToolResult {
    let Value::Object(map) = args else { panic!("args must be an object") };
    let params = CallToolRequestParams::new(name.to_string()).with_arguments(map);
    client.call_tool(params).await.expect("transport")
}
