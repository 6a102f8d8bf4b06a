//! `pyro workspace service {start, list, status, logs, stop}`: long-running services.
//!
//! Each invocation is its own process; the service lives in the guest, so one started
//! by one call is listed, inspected and stopped by the next ones (by name).
//!
//! Human output: `start`, `status` and `stop` print one `[workspace-service-<op>] ...`
//! summary line on stderr; `logs` prints the service's stdout on stdout and its stderr
//! on stderr, then the summary; `list` prints one `<name> [<state>] cwd=...` line per
//! service on stdout. A service that failed to become ready is a result, not an error
//! (exit 0, `state=failed stop_reason=...`).

use crate::cli::args::{ServiceCommand, ServiceStartArgs};
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output::{self, emit, name_of};
use crate::cli::parse;
use pyro::params::{ServiceIdParams, ServiceLogsParams, ServiceStartParams};
use pyro::results::{PublishedPort, Service, ServiceList};
use pyro::Pyro;
use std::io::{self, Write};

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

/// `127.0.0.1:H->G/tcp,...`.
fn ports_inline(ports: &[PublishedPort]) -> String {
    ports
        .iter()
        .map(|p| format!("{}:{}->{}/{}", p.host, p.host_port, p.guest_port, p.protocol))
        .collect::<Vec<_>>()
        .join(",")
}

/// The `[workspace-service-<op>]` summary of a service.
pub fn summary(op: &str, s: &Service) -> String {
    let mut line = format!(
        "[workspace-service-{op}] workspace_id={} service_name={} state={} cwd={} execution_mode={}",
        s.workspace_id,
        s.service_name,
        name_of(&s.state),
        s.cwd,
        name_of(&s.execution_mode)
    );
    if !s.published_ports.is_empty() {
        line.push_str(&format!(" published_ports={}", ports_inline(&s.published_ports)));
    }
    if let Some(reason) = &s.stop_reason {
        line.push_str(&format!(" stop_reason={reason}"));
    }
    if let Some(code) = s.exit_code {
        line.push_str(&format!(" exit_code={code}"));
    }
    line
}

fn print_list(w: &mut dyn Write, list: &ServiceList) -> io::Result<()> {
    if list.services.is_empty() {
        return writeln!(w, "No workspace services found.");
    }
    for s in &list.services {
        write!(w, "{} [{}] cwd={}", s.service_name, name_of(&s.state), s.cwd)?;
        if !s.published_ports.is_empty() {
            write!(w, " published={}", ports_inline(&s.published_ports))?;
        }
        writeln!(w)?;
    }
    Ok(())
}

/// Print a service result: JSON, or the summary line on stderr.
fn report(json: bool, op: &str, service: &Service) -> Result<(), CliError> {
    if json {
        output::json(service)
    } else {
        output::note(&summary(op, service));
        Ok(())
    }
}

/// `workspace service ...`.
pub async fn service(pyro: &Pyro, cmd: ServiceCommand) -> Result<ExitCode, CliError> {
    match cmd {
        ServiceCommand::Start(a) => {
            let json = a.out.json;
            let service = pyro.service_start(service_start_params(a)?).await?;
            report(json, "start", &service)?;
        }
        ServiceCommand::List(a) => {
            let list = pyro.service_list(a.workspace_id).await?;
            emit(a.out.json, &list, print_list)?;
        }
        ServiceCommand::Status(a) => {
            let params =
                ServiceIdParams { workspace_id: a.workspace_id, service_name: a.service_name };
            report(a.out.json, "status", &pyro.service_status(params).await?)?;
        }
        ServiceCommand::Stop(a) => {
            let params =
                ServiceIdParams { workspace_id: a.workspace_id, service_name: a.service_name };
            report(a.out.json, "stop", &pyro.service_stop(params).await?)?;
        }
        ServiceCommand::Logs(a) => {
            let params = ServiceLogsParams {
                workspace_id: a.workspace_id,
                service_name: a.service_name,
                tail_lines: a.tail_lines,
                all: a.all,
            };
            let logs = pyro.service_logs(params).await?;
            if a.out.json {
                output::json(&logs)?;
            } else {
                output::stdout_text(&logs.stdout)?;
                output::stderr_text(&logs.stderr);
                let truncated = if logs.truncated { " truncated=yes" } else { "" };
                output::note(&format!("{}{truncated}", summary("logs", &logs.service)));
            }
        }
    }
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Command, WorkspaceCommand};
    use clap::Parser;
    use pyro::results::{ExecutionMode, ServiceState};

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

    fn sample(state: ServiceState) -> Service {
        Service {
            workspace_id: "0123456789ab".into(),
            service_name: "web".into(),
            state,
            command: "python3 -m http.server".into(),
            cwd: "/workspace".into(),
            started_at: 1.0,
            ended_at: None,
            exit_code: None,
            pid: Some(42),
            execution_mode: ExecutionMode::Guest,
            readiness: None,
            ready_at: Some(1.0),
            stop_reason: None,
            published_ports: vec![PublishedPort {
                host: "127.0.0.1".into(),
                host_port: 18080,
                guest_port: 8080,
                protocol: "tcp".into(),
            }],
        }
    }

    #[test]
    fn human_lines_follow_the_reference_format() {
        let s = sample(ServiceState::Running);
        assert_eq!(
            summary("start", &s),
            "[workspace-service-start] workspace_id=0123456789ab service_name=web state=running \
             cwd=/workspace execution_mode=guest published_ports=127.0.0.1:18080->8080/tcp"
        );
        let mut failed = sample(ServiceState::Failed);
        failed.published_ports.clear();
        failed.stop_reason = Some("readiness_timeout".into());
        failed.exit_code = Some(143);
        assert!(summary("start", &failed)
            .ends_with("execution_mode=guest stop_reason=readiness_timeout exit_code=143"));
        let list = ServiceList {
            workspace_id: s.workspace_id.clone(),
            count: 2,
            running_count: 1,
            services: vec![s, failed],
        };
        let mut out = Vec::new();
        print_list(&mut out, &list).expect("print");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "web [running] cwd=/workspace published=127.0.0.1:18080->8080/tcp\n\
             web [failed] cwd=/workspace\n"
        );
        let mut out = Vec::new();
        let empty = ServiceList { services: Vec::new(), count: 0, running_count: 0, ..list };
        print_list(&mut out, &empty).expect("print");
        assert_eq!(out, b"No workspace services found.\n");
    }
}
