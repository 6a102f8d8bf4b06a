//! The rmcp client side shared by tests that drive `pyro mcp serve` as a real MCP client.
//!
//! Every call through [`call`] checks the answer's shape against the contract: a result's
//! `structuredContent` validates against the tool's `outputSchema` (as the server lists
//! it), and an error carries `structuredContent` `{"error": {kind, message, hint}}`
//! that validates against it too, with the one-line message as text. So each test that
//! calls a tool through here also checks that tool's real result against its schema.

#[path = "output_schema.rs"]
mod output_schema;

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::RoleClient;
use serde_json::Value;

/// The tools only a real guest serves (host_compat refuses them): `mcp_profiles.rs`
/// validates every other tool's result, `guest_output_schemas.rs` these.
#[allow(dead_code)] // each test binary uses the part of this file it needs
pub const GUEST_ONLY_TOOLS: [&str; 13] = [
    "shell_open",
    "shell_read",
    "shell_write",
    "shell_signal",
    "shell_close",
    "service_start",
    "service_list",
    "service_status",
    "service_logs",
    "service_stop",
    "workspace_disk_export",
    "workspace_disk_list",
    "workspace_disk_read",
];

/// A connected rmcp client.
pub type Client = RunningService<RoleClient, ()>;

/// Call tool `name` with `args` (a JSON object) and check the answer against the tool's
/// `outputSchema` ([`check_structured`]); panics only on a transport failure or a
/// schema violation, so tool errors come back as results for the test to check.
pub async fn call(client: &Client, name: &str, args: Value) -> CallToolResult {
    let Value::Object(map) = args else { panic!("args must be an object") };
    let params = CallToolRequestParams::new(name.to_string()).with_arguments(map);
    let result = client.call_tool(params).await.expect("transport");
    let listed = client.list_all_tools().await.expect("tools/list");
    let schema = listed
        .iter()
        .find(|t| t.name == name)
        .and_then(|t| t.output_schema.as_deref().cloned())
        .map(Value::Object);
    check_structured(name, schema.as_ref(), &result);
    result
}

/// Check one answer: `structuredContent` is present and validates against `schema` (the
/// tool's `outputSchema`; for a tool the server does not list, errors are checked
/// against the contract's error envelope).
pub fn check_structured(name: &str, schema: Option<&Value>, result: &CallToolResult) {
    let structured = result
        .structured_content
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no structuredContent in {result:?}"));
    let is_error = result.is_error == Some(true);
    let envelope = pyro_contract::ErrorReport::envelope_schema();
    let schema = match schema {
        Some(schema) => schema,
        None => {
            assert!(is_error, "{name}: a result from a tool the server does not list");
            &envelope
        }
    };
    let problems = output_schema::problems(schema, structured);
    assert!(
        problems.is_empty(),
        "{name}: structuredContent does not validate against its outputSchema: {problems:?}\n{structured}"
    );
    if is_error {
        let report: pyro_contract::ErrorReport =
            serde_json::from_value(structured["error"].clone())
                .unwrap_or_else(|e| panic!("{name}: error report {structured}: {e}"));
        let text = result.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone());
        assert_eq!(text.as_deref(), Some(report.line().as_str()), "{name}: error text");
    }
}
