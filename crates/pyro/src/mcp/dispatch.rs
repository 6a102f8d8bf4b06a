//! From a tool name and JSON arguments to an SDK call, under a profile.
//!
//! The table of which tools exist, their schemas and profiles is
//! [`pyro_contract::TOOLS`]; this file only maps each name to its SDK method.

use crate::sdk::Pyro;
use pyro_contract::params::*;
use pyro_contract::{tool, Profile};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// Why a tool call failed, as text for the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolCallError(pub String);

fn parse<T: DeserializeOwned>(
    name: &str,
    profile: Profile,
    args: &Map<String, Value>,
) -> Result<T, ToolCallError> {
    // A parameter that a wider profile offers gets a message naming that profile.
    if let Some(spec) = tool(name) {
        if profile == Profile::WorkspaceCore && spec.core_input_schema.is_some() {
            let full = spec.schema_for(Profile::WorkspaceFull);
            let core = spec.schema_for(Profile::WorkspaceCore);
            for key in args.keys() {
                if full["properties"].get(key).is_some() && core["properties"].get(key).is_none() {
                    return Err(ToolCallError(format!(
                        "{name} in profile workspace-core does not accept `{key}`; it needs profile workspace-full"
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

/// Check that `name` is callable in `profile`.
pub fn check_profile(name: &str, profile: Profile) -> Result<(), ToolCallError> {
    match tool(name) {
        None => Err(ToolCallError(format!("Unknown tool: {name}"))),
        Some(spec) if !spec.in_profile(profile) => {
            let home = Profile::ALL.into_iter().find(|p| spec.in_profile(*p)).unwrap_or_default();
            Err(ToolCallError(format!(
                "tool {name} is not available in profile {profile}; it is part of profile {home} \
                 (start the server with `pyro mcp serve --profile {home}`)"
            )))
        }
        Some(_) => Ok(()),
    }
}

/// Run tool `name` with `args` as exposed by `profile`.
pub async fn call_tool(
    pyro: &Pyro,
    profile: Profile,
    name: &str,
    args: Map<String, Value>,
) -> Result<Value, ToolCallError> {
    check_profile(name, profile)?;
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
        "workspace_create" => {
            let p: WorkspaceCreateParams = if profile == Profile::WorkspaceCore {
                parse::<WorkspaceCreateCoreParams>(name, profile, a)?.into()
            } else {
                parse(name, profile, a)?
            };
            to_value(pyro.workspace_create(p).await)
        }
        "workspace_list" => {
            parse::<NoParams>(name, profile, a)?;
            to_value(pyro.workspace_list().await)
        }
        "workspace_update" => to_value(pyro.workspace_update(parse(name, profile, a)?).await),
        "workspace_exec" => {
            let p: WorkspaceExecParams = if profile == Profile::WorkspaceCore {
                parse::<WorkspaceExecCoreParams>(name, profile, a)?.into()
            } else {
                parse(name, profile, a)?
            };
            to_value(pyro.workspace_exec(p).await)
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
