//! Named modes: curated tool sets for one job each (repro-fix, inspect, cold-start,
//! review-eval), with narrowed schemas and descriptions written for that job.
//!
//! A mode is built on the tools of [`crate::TOOLS`]; it adds no tool and no backend. Its
//! rows are the `modes` section of the same `tool_table!` as the tools (built into
//! [`crate::MODE_TOOLS`]): each names a tool by its [`crate::ToolName`] and the parameters
//! the mode keeps. A [`Surface`] is what a server
//! exposes: one profile or one mode, never both.

use crate::profile::Profile;
use crate::tools::{tool, tools_for, Hints, ModeTool, ToolSpec, MODE_TOOLS};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

/// A named mode. The names are stable public API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Reproduce a failure in the project, patch it, rerun, diff and export the fix.
    ReproFix,
    /// Look at untrusted content offline: list, read, run one reporting command, export
    /// the report. No writes, no patches.
    Inspect,
    /// Validate that a fresh checkout starts: install, build, start its service and
    /// wait for readiness, read the logs.
    ColdStart,
    /// Review or evaluate with a checkpoint: snapshot, shells, edits, summary, reset to
    /// the snapshot.
    ReviewEval,
}

impl Mode {
    /// All modes, in documentation order.
    pub const ALL: [Mode; 4] = [Mode::ReproFix, Mode::Inspect, Mode::ColdStart, Mode::ReviewEval];

    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            Mode::ReproFix => "repro-fix",
            Mode::Inspect => "inspect",
            Mode::ColdStart => "cold-start",
            Mode::ReviewEval => "review-eval",
        }
    }

    /// What the mode is for, for MCP `instructions` and CLI help.
    pub fn instructions(self) -> &'static str {
        match self {
            Mode::ReproFix => {
                "pyro mode repro-fix: create a workspace from the project, run the failing \
                 command, read the files involved, apply a patch, rerun, then show the diff, \
                 summarize and export the fix. Reset to start over from the project."
            }
            Mode::Inspect => {
                "pyro mode inspect: look at untrusted content in an offline workspace. List \
                 and read files, run the smallest command that produces a report, export only \
                 the report and delete the workspace. Nothing here writes or patches files."
            }
            Mode::ColdStart => {
                "pyro mode cold-start: validate that a fresh copy of the project installs, \
                 builds and starts. Run the setup commands, start the service with a \
                 readiness check, read its logs, export what you found and delete the \
                 workspace."
            }
            Mode::ReviewEval => {
                "pyro mode review-eval: review or evaluate with a checkpoint. Take a named \
                 snapshot, work in a shell or with commands and file edits, capture the \
                 workspace summary before exporting the report, and reset to the snapshot to \
                 try again."
            }
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown mode name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown MCP mode '{0}'; expected one of: repro-fix, inspect, cold-start, review-eval")]
pub struct UnknownModeError(pub String);

impl FromStr for Mode {
    type Err = UnknownModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| UnknownModeError(s.to_string()))
    }
}

/// What a server exposes: a profile or a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    /// A profile's tools with the profile's schemas.
    Profile(Profile),
    /// A mode's curated tools with its narrowed schemas and descriptions.
    Mode(Mode),
}

impl Default for Surface {
    fn default() -> Self {
        Surface::Profile(Profile::default())
    }
}

impl From<Profile> for Surface {
    fn from(p: Profile) -> Self {
        Surface::Profile(p)
    }
}

impl From<Mode> for Surface {
    fn from(m: Mode) -> Self {
        Surface::Mode(m)
    }
}

impl fmt::Display for Surface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Surface::Profile(p) => write!(f, "profile {p}"),
            Surface::Mode(m) => write!(f, "mode {m}"),
        }
    }
}

/// One tool as a surface exposes it.
#[derive(Debug, Clone, Copy)]
pub struct ExposedTool {
    /// The tool's row in the contract.
    pub spec: &'static ToolSpec,
    /// The mode's row, when the surface is a mode.
    pub mode_row: Option<&'static ModeTool>,
    surface: Surface,
}

impl ExposedTool {
    /// The tool name.
    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// The description shown in `tools/list`.
    pub fn description(&self) -> &'static str {
        self.mode_row.map(|r| r.description).unwrap_or(self.spec.description)
    }

    /// The input schema shown in `tools/list`.
    pub fn input_schema(&self) -> Value {
        match (self.surface, self.mode_row) {
            (Surface::Mode(_), Some(row)) => row.schema(),
            (Surface::Profile(p), _) => self.spec.schema_for(p),
            (Surface::Mode(_), None) => self.spec.schema_for(Profile::WorkspaceFull),
        }
    }

    /// The MCP annotations (`readOnlyHint`, ...) on this surface.
    pub fn hints(&self) -> Hints {
        // One-shot VMs get their network from `network`, workspaces from `network_policy`.
        let switch = if self.name().starts_with("vm_") { "network" } else { "network_policy" };
        self.spec.effect.hints(self.surface.offers(switch))
    }

    /// This tool as `tools/list` shows it, on the fields the token budget counts: `name`,
    /// `description`, `inputSchema` and `annotations` (a server may adjust the
    /// description and schema of `workspace_create` for its project; the budget is
    /// measured without that).
    pub fn listing(&self) -> Value {
        serde_json::json!({
            "name": self.name(),
            "description": self.description(),
            "inputSchema": self.input_schema(),
            "annotations": self.hints().to_json(),
        })
    }
}

impl Surface {
    /// `profile NAME` or `mode NAME`'s bare name.
    pub fn name(self) -> &'static str {
        match self {
            Surface::Profile(p) => p.name(),
            Surface::Mode(m) => m.name(),
        }
    }

    /// MCP `instructions`.
    pub fn instructions(self) -> &'static str {
        match self {
            Surface::Profile(p) => p.instructions(),
            Surface::Mode(m) => m.instructions(),
        }
    }

    /// The tools, in `tools/list` order.
    pub fn tools(self) -> Vec<ExposedTool> {
        match self {
            Surface::Profile(p) => tools_for(p)
                .map(|spec| ExposedTool { spec, mode_row: None, surface: self })
                .collect(),
            Surface::Mode(m) => MODE_TOOLS
                .iter()
                .filter(|row| row.mode == m)
                .map(|row| ExposedTool {
                    spec: row.tool.spec(),
                    mode_row: Some(row),
                    surface: self,
                })
                .collect(),
        }
    }

    /// One exposed tool by name.
    pub fn tool(self, name: &str) -> Option<ExposedTool> {
        self.tools().into_iter().find(|t| t.name() == name)
    }

    /// Whether some tool of this surface takes parameter `name` (for example
    /// `network_policy`: then a workspace's guest may reach the network).
    pub fn offers(self, name: &str) -> bool {
        self.tools().iter().any(|t| t.input_schema()["properties"].get(name).is_some())
    }

    /// The size in bytes of the compact JSON of this surface's `tools/list` on the fields
    /// [`ExposedTool::listing`] names: what the tool list costs a model's context.
    pub fn listing_bytes(self) -> usize {
        let listing: Vec<Value> = self.tools().iter().map(ExposedTool::listing).collect();
        serde_json::to_string(&listing).map(|s| s.len()).unwrap_or(usize::MAX)
    }

    /// Whether this surface narrows `name`'s parameters relative to `workspace-full`.
    pub fn narrows(self, name: &str) -> bool {
        match self {
            Surface::Profile(Profile::WorkspaceCore) => {
                tool(name).is_some_and(|t| t.core_input_schema.is_some())
            }
            Surface::Profile(_) => false,
            Surface::Mode(_) => true,
        }
    }
}
