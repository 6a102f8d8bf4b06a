//! The public contract of pyro, as data: every tool's name, description, typed
//! parameters (with JSON Schema) and results, the profiles and modes that expose them,
//! and the error report every surface gives.
//!
//! Each tool is one row of [`tool_table!`]; from the rows come [`TOOLS`] (the MCP
//! server's `tools/list` with input and output schemas, the OpenAI strict tools, the
//! docs tables), [`ToolName`], [`ToolCall`] (parsed arguments, one variant per tool) and
//! [`ToolOutput`] (typed results), and [`MODE_TOOLS`]. pyro's `Pyro::call` (which its
//! MCP server runs) is one exhaustive `match` from `ToolCall` to `ToolOutput`; its CLI
//! and SDK methods are checked against the rows by tests. Errors are [`ErrorReport`]s, `{kind, message, hint}`.
//!
//! ```
//! use pyro_contract::{tools_for, Profile, ToolCall, ToolName};
//! let core: Vec<_> = tools_for(Profile::WorkspaceCore).map(|t| t.name).collect();
//! assert!(core.contains(&"workspace_exec"));
//! assert!(!core.contains(&"shell_open"));
//!
//! let tool = ToolName::from_name("workspace_status").unwrap();
//! let call = ToolCall::parse(tool, serde_json::json!({"workspace_id": "0123456789ab"})).unwrap();
//! assert_eq!(call.tool(), ToolName::WorkspaceStatus);
//! assert_eq!((tool.spec().output_schema)()["type"], "object");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
mod mode;
pub mod openai;
pub mod params;
mod profile;
pub mod results;
mod tools;

pub use error::{ErrorKind, ErrorReport, GuestErrorKind, ToolError};
pub use mode::{ExposedTool, Mode, Surface, UnknownModeError};
pub use profile::{Profile, UnknownProfileError};
pub use tools::{
    tool, tools_for, Effect, Hints, ModeTool, ToolCall, ToolName, ToolOutput, ToolSpec, MODE_TOOLS,
    TOOLS,
};
