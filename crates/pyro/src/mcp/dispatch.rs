//! From a tool name and JSON arguments to an SDK call, under a profile.
//!
//! The table of which tools exist, their schemas and profiles is
//! [`pyro_contract::TOOLS`]; this file only maps each name to its SDK method.

use crate::project::ProjectSource;
use crate::sdk::Pyro;
use pyro_contract::params::*;
use pyro_contract::{tool, Profile, Surface};
use serde::de::DeserializeOwned;
use serde::Serialize;
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

/// Why a tool call failed, as text for the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolCallError(pub String);

fn parse<T: DeserializeOwned>(
    name: &str,
    surface: Surface,
    args: &Map<String, Value>,
) -> Result<T, ToolCallError> {
    // A parameter that the surface narrowed away gets a message naming the profile
    // that accepts it; then the arguments parse as the full parameter type, whose
    // defaults are what the narrowed schemas promise.
    if surface.narrows(name) {
        if let (Some(spec), Some(exposed)) = (tool(name), surface.tool(name)) {
            let full = spec.schema_for(Profile::WorkspaceFull);
            let shown = exposed.input_schema();
            for key in args.keys() {
                if full["properties"].get(key).is_some() && shown["properties"].get(key).is_none() {
                    return Err(ToolCallError(format!(
                        "{name} in {surface} does not accept `{key}`; it needs profile workspace-full"
                    )));
                }
            }
        }
    }
    serde_json::from_value(Value::Object(args.clone()))
        .map_err(|e| ToolCallError(format!("invalid arguments for {name}: {e}")))
}

fn id_of(name: &str, args: &Map<String, Value>, field: &str) -> Result<String, ToolCallError> {
    let allowed: &[&str] = &[field];
    if let Some(extra) = args.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ToolCallError(format!(
            "invalid arguments for {name}: unknown field `{extra}`"
        )));
    }
    match args.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => {
            Err(ToolCallError(format!("invalid arguments for {name}: `{field}` must be a string")))
        }
        None => {
            Err(ToolCallError(format!("invalid arguments for {name}: missing field `{field}`")))
        }
    }
}

fn to_value<T: Serialize>(result: Result<T, crate::PyroError>) -> Result<Value, ToolCallError> {
    let value = result.map_err(|e| ToolCallError(e.to_string()))?;
    serde_json::to_value(value)
        .map_err(|e| ToolCallError(format!("could not encode the result: {e}")))
}

/// Check that `name` is callable in `surface` (a profile or a mode).
pub fn check_profile(name: &str, surface: impl Into<Surface>) -> Result<(), ToolCallError> {
    let surface = surface.into();
    match tool(name) {
        None => Err(ToolCallError(format!("Unknown tool: {name}"))),
        Some(_) if surface.tool(name).is_some() => Ok(()),
        Some(spec) => {
            let home = Profile::ALL.into_iter().find(|p| spec.in_profile(*p)).unwrap_or_default();
            Err(ToolCallError(format!(
                "tool {name} is not available in {surface}; it is part of profile {home} \
                 (start the server with `pyro mcp serve --profile {home}`)"
            )))
        }
    }
}

/// Run tool `name` with `args` as exposed by `surface` (a [`Profile`] or a
/// [`pyro_contract::Mode`]), without a project source or default environment.
pub async fn call_tool(
    pyro: &Pyro,
    surface: impl Into<Surface>,
    name: &str,
    args: Map<String, Value>,
) -> Result<Value, ToolCallError> {
    call_tool_in(pyro, surface.into(), &ServerContext::default(), name, args).await
}

async fn workspace_create(
    pyro: &Pyro,
    surface: Surface,
    context: &ServerContext,
    mut args: Map<String, Value>,
) -> Result<Value, ToolCallError> {
    const NAME: &str = "workspace_create";
    if let Some(env) = &context.environment {
        args.entry("environment").or_insert_with(|| Value::String(env.clone()));
    }
    let p: WorkspaceCreateParams = parse(NAME, surface, &args)?;
    if p.seed_path.is_some() {
        return to_value(pyro.workspace_create(p).await);
    }
    match (&context.project, &context.project_error) {
        (Some(project), _) => {
            to_value(pyro.workspace_create_from_project(p, project.clone()).await)
        }
        (None, Some(error)) => Err(ToolCallError(format!(
            "this server's project source is unavailable: {error}. Pass seed_path, or restart \
             the server with --project-path DIR, --repo-url URL or --no-project-source"
        ))),
        (None, None) => to_value(pyro.workspace_create(p).await),
    }
}

/// [`call_tool`] with a server's context.
pub(crate) async fn call_tool_in(
    pyro: &Pyro,
    surface: Surface,
    context: &ServerContext,
    name: &str,
    args: Map<String, Value>,
) -> Result<Value, ToolCallError> {
    check_profile(name, surface)?;
    let profile = surface;
    let a = &args;
    match name {
        "vm_run" => to_value(pyro.vm_run(parse(name, profile, a)?).await),
        "vm_list_environments" => {
            parse::<NoParams>(name, profile, a)?;
            to_value(pyro.env_list().await.map(|result| serde_json::json!({ "result": result })))
        }
        "vm_create" => to_value(pyro.vm_create(parse(name, profile, a)?).await),
        "vm_start" => to_value(pyro.vm_start(id_of(name, a, "vm_id")?).await),
        "vm_exec" => to_value(pyro.vm_exec(parse(name, profile, a)?).await),
        "vm_stop" => to_value(pyro.vm_stop(id_of(name, a, "vm_id")?).await),
        "vm_delete" => to_value(pyro.vm_delete(id_of(name, a, "vm_id")?).await),
        "vm_status" => to_value(pyro.vm_status(id_of(name, a, "vm_id")?).await),
        "vm_network_info" => to_value(pyro.vm_network_info(id_of(name, a, "vm_id")?).await),
        "vm_reap_expired" => {
            parse::<NoParams>(name, profile, a)?;
            to_value(pyro.vm_reap_expired().await)
        }
        "workspace_create" => workspace_create(pyro, surface, context, args).await,
        "workspace_list" => {
            parse::<NoParams>(name, profile, a)?;
            to_value(pyro.workspace_list().await)
        }
        "workspace_update" => to_value(pyro.workspace_update(parse(name, profile, a)?).await),
        "workspace_exec" => {
            to_value(pyro.workspace_exec(parse::<WorkspaceExecParams>(name, profile, a)?).await)
        }
        "workspace_sync_push" => to_value(pyro.workspace_sync_push(parse(name, profile, a)?).await),
        "workspace_status" => {
            to_value(pyro.workspace_status(id_of(name, a, "workspace_id")?).await)
        }
        "workspace_stop" => to_value(pyro.workspace_stop(id_of(name, a, "workspace_id")?).await),
        "workspace_start" => to_value(pyro.workspace_start(id_of(name, a, "workspace_id")?).await),
        "workspace_logs" => to_value(pyro.workspace_logs(id_of(name, a, "workspace_id")?).await),
        "workspace_export" => to_value(pyro.workspace_export(parse(name, profile, a)?).await),
        "workspace_diff" => to_value(pyro.workspace_diff(id_of(name, a, "workspace_id")?).await),
        "workspace_summary" => {
            to_value(pyro.summarize_workspace(id_of(name, a, "workspace_id")?).await)
        }
        "workspace_file_list" => to_value(pyro.workspace_file_list(parse(name, profile, a)?).await),
        "workspace_file_read" => to_value(pyro.workspace_file_read(parse(name, profile, a)?).await),
        "workspace_file_write" => {
            to_value(pyro.workspace_file_write(parse(name, profile, a)?).await)
        }
        "workspace_patch_apply" => {
            to_value(pyro.workspace_patch_apply(parse(name, profile, a)?).await)
        }
        "snapshot_create" => to_value(pyro.snapshot_create(parse(name, profile, a)?).await),
        "snapshot_list" => to_value(pyro.snapshot_list(id_of(name, a, "workspace_id")?).await),
        "snapshot_delete" => to_value(pyro.snapshot_delete(parse(name, profile, a)?).await),
        "workspace_reset" => to_value(pyro.workspace_reset(parse(name, profile, a)?).await),
        "workspace_delete" => {
            to_value(pyro.workspace_delete(id_of(name, a, "workspace_id")?).await)
        }
        "workspace_disk_export" => {
            to_value(pyro.workspace_disk_export(parse(name, profile, a)?).await)
        }
        "workspace_disk_list" => to_value(pyro.workspace_disk_list(parse(name, profile, a)?).await),
        "workspace_disk_read" => to_value(pyro.workspace_disk_read(parse(name, profile, a)?).await),
        "shell_open" => to_value(pyro.shell_open(parse(name, profile, a)?).await),
        "shell_read" => to_value(pyro.shell_read(parse(name, profile, a)?).await),
        "shell_write" => to_value(pyro.shell_write(parse(name, profile, a)?).await),
        "shell_signal" => to_value(pyro.shell_signal(parse(name, profile, a)?).await),
        "shell_close" => to_value(pyro.shell_close(parse(name, profile, a)?).await),
        "service_start" => to_value(pyro.service_start(parse(name, profile, a)?).await),
        "service_list" => to_value(pyro.service_list(id_of(name, a, "workspace_id")?).await),
        "service_status" => to_value(pyro.service_status(parse(name, profile, a)?).await),
        "service_logs" => to_value(pyro.service_logs(parse(name, profile, a)?).await),
        "service_stop" => to_value(pyro.service_stop(parse(name, profile, a)?).await),
        other => Err(ToolCallError(format!("Unknown tool: {other}"))),
    }
}
