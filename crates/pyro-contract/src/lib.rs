//! The public contract of pyro, as data: every tool's name, description, typed
//! parameters (with JSON Schema) and results, and the profiles that expose them.
//!
//! Everything user-facing is generated from or checked against this crate: the MCP
//! server's `tools/list`, the CLI's help, the SDK's request types and the docs.
//!
//! ```
//! use pyro_contract::{tools_for, Profile};
//! let core: Vec<_> = tools_for(Profile::WorkspaceCore).map(|t| t.name).collect();
//! assert!(core.contains(&"workspace_exec"));
//! assert!(!core.contains(&"shell_open"));
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
