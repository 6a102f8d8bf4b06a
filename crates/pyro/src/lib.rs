//! pyro: disposable and persistent Linux microVM sandboxes for AI agents.
//!
//! Three surfaces over one runtime:
//!
//! - the SDK, [`Pyro`]: one async method per operation, typed requests and results;
//! - the MCP server, [`create_server`] / [`Pyro::create_server`]: the same operations
//!   as tools, in the profiles `vm-run`, `workspace-core` and `workspace-full`;
//! - the `pyro` CLI (the binary of this crate).
//!
//! Commands run inside a QEMU guest VM ([`backend::qemu`]); host execution
//! ([`backend::host_compat`]) only happens when the caller explicitly allows it, and
//! every result says which one ran it (`execution_mode`).
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod backend;
pub mod host;
pub mod mcp;
pub mod project;
pub mod runtime;
mod sdk;

pub use mcp::{PyroMcpServer, ServerOptions};
pub use pyro_contract::{
    openai, params, results, ErrorKind, ErrorReport, Mode, Profile, Surface, ToolCall, ToolName,
    ToolOutput,
};
pub use runtime::{PyroError, Runtime, RuntimeConfig};
pub use sdk::{create_server, Pyro};
