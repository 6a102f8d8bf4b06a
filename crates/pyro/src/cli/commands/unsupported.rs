//! `pyro workspace {shell, service} ...`: parsed and validated in full, then
//! handed to [`Pyro::not_yet`], which answers with a clear "not supported" error (exit
//! 1) until the library implements them. When it does, only the calls here change.

use crate::cli::args::{ServiceCommand, ServiceStartArgs, ShellCommand, ShellOpenArgs};
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output;
use crate::cli::parse;
use pyro::params::{
    ServiceIdParams, ServiceLogsParams, ServiceStartParams, ShellIdParams, ShellOpenParams,
    ShellReadParams, ShellSignalParams, ShellWriteParams, WorkspaceIdParams,
};
use pyro::Pyro;
use std::fmt::Debug;

/// Feature names passed to [`Pyro::not_yet`] (the same as the MCP server uses).
const SHELLS: &str = "interactive shells";
const SERVICES: &str = "services";

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

/// Stage two of `service start`: the command after `--`, at most one readiness probe,
/// `--publish` and `--secret-env` values.
pub fn service_start_params(a: ServiceStartArgs) -> Result<ServiceStartParams, CliError> {
    parse::at_most_one_readiness([
        a.ready_file.is_some(),
        a.ready_tcp.is_some(),
        a.ready_http.is_some(),
        a.ready_command.is_some(),
    ])?;
    Ok(ServiceStartParams {
        command: parse::command(&a.command)?,
        secret_env: parse::secret_env(&a.secret_env)?,
        published_ports: parse::publish_all(&a.publish)?,
        workspace_id: a.workspace_id,
        service_name: a.service_name,
        cwd: a.cwd,
        ready_file: a.ready_file,
        ready_tcp: a.ready_tcp,
        ready_http: a.ready_http,
        ready_command: a.ready_command,
        ready_timeout_seconds: a.ready_timeout_seconds,
        ready_interval_ms: a.ready_interval_ms,
    })
}

/// `workspace service ...`.
pub async fn service(pyro: &Pyro, cmd: ServiceCommand) -> Result<ExitCode, CliError> {
    match cmd {
        ServiceCommand::Start(a) => {
            let json = a.out.json;
            let params = service_start_params(a)?;
            call(pyro, json, SERVICES, &params.workspace_id, &params).await?;
        }
        ServiceCommand::List(a) => {
            let params = WorkspaceIdParams { workspace_id: a.workspace_id.clone() };
            call(pyro, a.out.json, SERVICES, &a.workspace_id, &params).await?;
        }
        ServiceCommand::Status(a) | ServiceCommand::Stop(a) => {
            let params = ServiceIdParams {
                workspace_id: a.workspace_id.clone(),
                service_name: a.service_name,
            };
            call(pyro, a.out.json, SERVICES, &a.workspace_id, &params).await?;
        }
        ServiceCommand::Logs(a) => {
            let params = ServiceLogsParams {
                workspace_id: a.workspace_id.clone(),
                service_name: a.service_name,
                tail_lines: a.tail_lines,
                all: a.all,
            };
            call(pyro, a.out.json, SERVICES, &a.workspace_id, &params).await?;
        }
    }
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Command, WorkspaceCommand};
    use clap::Parser;

    fn service_start(args: &[&str]) -> ServiceStartArgs {
        let cli = Cli::try_parse_from(["pyro", "workspace", "service", "start"].iter().chain(args))
            .expect("parse");
        match cli.command {
            Command::Workspace(WorkspaceCommand::Service(ServiceCommand::Start(a))) => a,
            other => panic!("wrong command: {other:?}"),
        }
    }

    #[test]
    fn service_start_builds_the_request() {
        let a = service_start(&[
            "w",
            "web",
            "--ready-tcp",
            "127.0.0.1:8080",
            "--publish",
            "18080:8080",
            "--publish",
            "9000",
            "--",
            "python3",
            "-m",
            "http.server",
            "8080",
        ]);
        let p = service_start_params(a).expect("params");
        assert_eq!(p.command, "python3 -m http.server 8080");
        assert_eq!(p.ready_tcp.as_deref(), Some("127.0.0.1:8080"));
        let ports = p.published_ports.expect("ports");
        assert_eq!(ports[0].host_port, Some(18080));
        assert_eq!(ports[1].host_port, None);
        assert_eq!((p.ready_timeout_seconds, p.ready_interval_ms), (30, 500));
    }

    #[test]
    fn service_start_rejects_two_probes_and_a_missing_command() {
        let a = service_start(&["w", "web", "--ready-file", "a", "--ready-http", "u", "--", "x"]);
        assert!(service_start_params(a).expect_err("two").to_string().contains("at most one"));
        let a = service_start(&["w", "web"]);
        assert_eq!(
            service_start_params(a).expect_err("none").to_string(),
            "command is required after `--`"
        );
    }
}
