//! How an MCP server is configured: the tool surface (a profile or a mode), the project
//! source `workspace_create` seeds from when it gets no `seed_path`, and the default
//! environment.
//!
//! `ServerOptions::default()` is `workspace-core` with no project source and no default
//! environment, which is what `Pyro::create_server(ServerOptions::default())` and
//! `pyro::create_server(Profile::default())` serve. `pyro mcp serve` additionally
//! detects the Git checkout it was started in.

use crate::project::ProjectSourceChoice;
use pyro_contract::{Mode, Profile, Surface};

/// Options of [`super::PyroMcpServer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Which tools, schemas and descriptions the server lists.
    pub surface: Surface,
    /// What `workspace_create` seeds from without `seed_path`.
    pub project: ProjectSourceChoice,
    /// The environment `workspace_create` uses when the call names none.
    pub environment: Option<String>,
}

impl ServerOptions {
    /// Options exposing `surface`, with no project source.
    pub fn new(surface: impl Into<Surface>) -> Self {
        ServerOptions { surface: surface.into(), ..Default::default() }
    }

    /// Set the project source.
    pub fn with_project(mut self, project: ProjectSourceChoice) -> Self {
        self.project = project;
        self
    }

    /// Set the default environment.
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }
}

impl From<Profile> for ServerOptions {
    fn from(p: Profile) -> Self {
        ServerOptions::new(p)
    }
}

impl From<Mode> for ServerOptions {
    fn from(m: Mode) -> Self {
        ServerOptions::new(m)
    }
}

impl From<Surface> for ServerOptions {
    fn from(s: Surface) -> Self {
        ServerOptions::new(s)
    }
}
