//! From a tool name and JSON arguments to an SDK call, under a profile.
//!
//! The table of which tools exist, their schemas, results and profiles is
//! [`pyro_contract::tool_table`]; this file checks the surface, parses the arguments
//! into a [`ToolCall`] and runs it with [`Pyro::call`] (one exhaustive `match`).

use crate::project::ProjectSource;
use crate::runtime::PyroError;
use crate::sdk::Pyro;
use pyro_contract::params::WorkspaceCreateParams;
use pyro_contract::results::Workspace;
use pyro_contract::{ErrorKind, ErrorReport, Profile, Surface, ToolCall, ToolName, ToolOutput};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What a server adds to the bare dispatcher: its project source and default
/// environment.
#[derive(Debug, Default)]
pub(crate) struct ServerContext {
    pub(crate) project: Option<Arc<ProjectSource>>,
    /// Why the requested project source could not be resolved.
    pub(crate) project_error: Option<String>,
    pub(crate) environment: Option<String>,
}

impl ServerContext {
    /// Say in `workspace_create`'s description and schema what this server does
    /// without `seed_path` and `environment`.
    pub(crate) fn adjust_create(&self, schema: &mut Map<String, Value>, description: &mut String) {
        if let Some(env) = &self.environment {
            if let Some(Value::Array(required)) = schema.get_mut("required") {
                required.retain(|v| v != "environment");
            }
            if let Some(Value::Object(prop)) =
                schema.get_mut("properties").and_then(|p| p.get_mut("environment"))
            {
                prop.insert(
                    "description".into(),
                    Value::String(format!("Environment name; this server's default is `{env}`.")),
                );
            }
        }
        if let Some(project) = &self.project {
            description.push_str(&format!(
                " When seed_path is omitted, this server seeds /workspace from {}.",
                project.describe()
            ));
        } else if let Some(error) = &self.project_error {
            description.push_str(&format!(
                " This server's project source is unavailable ({error}); pass seed_path."
            ));
        }
    }
}

/// Why a tool call failed: the report a model (or a client) reads, `{kind, message,
/// hint}`. Its `Display` is the one line of the text content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.line())]
pub struct ToolCallError(pub ErrorReport);

impl ToolCallError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ToolCallError(ErrorReport::new(kind, message))
    }

    /// The error report.
    pub fn report(&self) -> &ErrorReport {
        &self.0
    }

    fn invalid_arguments(name: &str, e: impl std::fmt::Display) -> Self {
        ToolCallError::new(ErrorKind::InvalidArgument, format!("invalid arguments for {name}: {e}"))
            .hint(format!("the tool's inputSchema in tools/list says what {name} accepts"))
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }
}

impl From<PyroError> for ToolCallError {
    fn from(e: PyroError) -> Self {
        ToolCallError(e.report())
    }
}

/// Parse `args` as `tool`'s parameters on `surface`.
fn parse(
    tool: ToolName,
    surface: Surface,
    args: Map<String, Value>,
) -> Result<ToolCall, ToolCallError> {
    let name = tool.name();
    // A parameter that the surface narrowed away gets a message naming the profile
    // that accepts it; then the arguments parse as the full parameter type, whose
    // defaults are what the narrowed schemas promise.
    if surface.narrows(name) {
        if let Some(exposed) = surface.tool(name) {
            let full = tool.spec().schema_for(Profile::WorkspaceFull);
            let shown = exposed.input_schema();
            for key in args.keys() {
                if full["properties"].get(key).is_some() && shown["properties"].get(key).is_none() {
                    return Err(ToolCallError::new(
                        ErrorKind::OutOfProfile,
                        format!("{name} in {surface} does not accept `{key}`; it needs profile workspace-full"),
                    ));
                }
            }
        }
    }
    ToolCall::parse(tool, Value::Object(args))
        .map_err(|e| ToolCallError::invalid_arguments(name, e))
}

/// Check that `name` is callable in `surface` (a profile or a mode).
pub fn check_profile(name: &str, surface: impl Into<Surface>) -> Result<ToolName, ToolCallError> {
    let surface = surface.into();
    match ToolName::from_name(name) {
        None => Err(ToolCallError::new(ErrorKind::NotFound, format!("Unknown tool: {name}"))
            .hint("tools/list names the tools of this server")),
        Some(tool) if surface.tool(name).is_some() => Ok(tool),
        Some(tool) => {
            let spec = tool.spec();
            let home = Profile::ALL.into_iter().find(|p| spec.in_profile(*p)).unwrap_or_default();
            Err(ToolCallError::new(
                ErrorKind::OutOfProfile,
                format!(
                    "tool {name} is not available in {surface}; it is part of profile {home} \
                     (start the server with `pyro mcp serve --profile {home}`)"
                ),
            ))
        }
    }
}

/// Run tool `name` with `args` as exposed by `surface` (a [`Profile`] or a
/// [`pyro_contract::Mode`]), without a project source or default environment; the
/// answer is the tool's `structuredContent`.
pub async fn call_tool(
    pyro: &Pyro,
    surface: impl Into<Surface>,
    name: &str,
    args: Map<String, Value>,
) -> Result<Value, ToolCallError> {
    let output = call_tool_in(pyro, surface.into(), &ServerContext::default(), name, args).await?;
    encode(&output)
}

/// The result as `structuredContent`.
pub(crate) fn encode(output: &ToolOutput) -> Result<Value, ToolCallError> {
    output.to_value().map_err(|e| {
        ToolCallError::new(ErrorKind::Internal, format!("could not encode the result: {e}"))
    })
}

async fn workspace_create(
    pyro: &Pyro,
    context: &ServerContext,
    p: WorkspaceCreateParams,
) -> Result<Workspace, ToolCallError> {
    if p.seed_path.is_some() {
        return Ok(pyro.workspace_create(p).await?);
    }
    match (&context.project, &context.project_error) {
        (Some(project), _) => Ok(pyro.workspace_create_from_project(p, project.clone()).await?),
        (None, Some(error)) => Err(ToolCallError::new(
            ErrorKind::InvalidArgument,
            format!(
                "this server's project source is unavailable: {error}. Pass seed_path, or restart \
                 the server with --project-path DIR, --repo-url URL or --no-project-source"
            ),
        )),
        (None, None) => Ok(pyro.workspace_create(p).await?),
    }
}

/// [`call_tool`] with a server's context: check the surface, parse, run.
pub(crate) async fn call_tool_in(
    pyro: &Pyro,
    surface: Surface,
    context: &ServerContext,
    name: &str,
    mut args: Map<String, Value>,
) -> Result<ToolOutput, ToolCallError> {
    let tool = check_profile(name, surface)?;
    if tool == ToolName::WorkspaceCreate {
        if let Some(env) = &context.environment {
            args.entry("environment").or_insert_with(|| Value::String(env.clone()));
        }
    }
    run(pyro, context, parse(tool, surface, args)?).await
}

/// Run one parsed call: the SDK's [`Pyro::call`], except that `workspace_create` without
/// `seed_path` seeds from this server's project source.
async fn run(
    pyro: &Pyro,
    context: &ServerContext,
    call: ToolCall,
) -> Result<ToolOutput, ToolCallError> {
    match call {
        ToolCall::WorkspaceCreate(p) => {
            Ok(ToolOutput::WorkspaceCreate(workspace_create(pyro, context, p).await?))
        }
        other => Ok(pyro.call(other).await?),
    }
}
