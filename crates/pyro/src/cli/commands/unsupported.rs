//! `pyro workspace shell ...`: parsed and validated in full, then
//! handed to [`Pyro::not_yet`], which answers with a clear "not supported" error (exit
//! 1) until the library implements them. When it does, only the calls here change.

use crate::cli::args::{ShellCommand, ShellOpenArgs};
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output;
use crate::cli::parse;
use pyro::params::{
    ShellIdParams, ShellOpenParams, ShellReadParams, ShellSignalParams, ShellWriteParams,
};
use pyro::Pyro;
use std::fmt::Debug;

/// Feature names passed to [`Pyro::not_yet`] (the same as the MCP server uses).
const SHELLS: &str = "interactive shells";

/// Send a fully built request to the library's placeholder and print whatever it
/// answers (today: always an error).
async fn call<P: Debug>(
    pyro: &Pyro,
    json: bool,
    feature: &'static str,
    workspace_id: &str,
    params: &P,
) -> Result<serde_json::Value, CliError> {
    tracing::debug!(?params, feature, "request");
    let value = pyro.not_yet(workspace_id, feature).await?;
    if json {
        output::json(&value)?;
    } else {
        let text = serde_json::to_string_pretty(&value).map_err(std::io::Error::from)?;
        output::stdout_text(&format!("{text}\n"))?;
    }
    Ok(value)
}

/// Stage two of `shell open`.
pub fn shell_open_params(a: &ShellOpenArgs) -> Result<ShellOpenParams, CliError> {
    Ok(ShellOpenParams {
        workspace_id: a.workspace_id.clone(),
        cwd: a.cwd.clone(),
        cols: a.cols,
        rows: a.rows,
        secret_env: parse::secret_env(&a.secret_env)?,
    })
}

/// `workspace shell ...`.
pub async fn shell(pyro: &Pyro, cmd: ShellCommand) -> Result<ExitCode, CliError> {
    match cmd {
        ShellCommand::Open(a) => {
            let params = shell_open_params(&a)?;
            if a.id_only {
                tracing::debug!(?params, "request");
                let value = pyro.not_yet(&a.workspace_id, SHELLS).await?;
                let id = value.get("shell_id").and_then(|v| v.as_str()).unwrap_or_default();
                output::stdout_text(&format!("{id}\n"))?;
            } else {
                call(pyro, a.out.json, SHELLS, &a.workspace_id, &params).await?;
            }
        }
        ShellCommand::Read(a) => {
            let params = ShellReadParams {
                workspace_id: a.workspace_id.clone(),
                shell_id: a.shell_id,
                cursor: a.cursor,
                max_chars: a.max_chars,
                plain: a.plain,
                wait_for_idle_ms: a.wait_for_idle_ms,
            };
            call(pyro, a.out.json, SHELLS, &a.workspace_id, &params).await?;
        }
        ShellCommand::Write(a) => {
            let params = ShellWriteParams {
                workspace_id: a.workspace_id.clone(),
                shell_id: a.shell_id,
                input: a.input,
                append_newline: !a.no_newline,
            };
            call(pyro, a.out.json, SHELLS, &a.workspace_id, &params).await?;
        }
        ShellCommand::Signal(a) => {
            let params = ShellSignalParams {
                workspace_id: a.workspace_id.clone(),
                shell_id: a.shell_id,
                signal_name: a.signal.name().to_string(),
            };
            call(pyro, a.out.json, SHELLS, &a.workspace_id, &params).await?;
        }
        ShellCommand::Close(a) => {
            let params =
                ShellIdParams { workspace_id: a.workspace_id.clone(), shell_id: a.shell_id };
            call(pyro, a.out.json, SHELLS, &a.workspace_id, &params).await?;
        }
    }
    Ok(ExitCode::Success)
}
