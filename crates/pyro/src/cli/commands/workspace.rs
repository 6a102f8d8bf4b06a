//! `pyro workspace ...`: lifecycle, exec, history, snapshots and reset. Files, diff,
//! export and sync are in [`super::files`]; shells in [`super::shells`]; disk tools in
//! [`super::disk`]; services in [`super::services`].

use super::{disk, files, services, shells};
use crate::cli::args::{
    SnapshotCommand, WorkspaceCommand, WorkspaceCreateArgs, WorkspaceExecArgs, WorkspaceUpdateArgs,
};
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output::{self, emit, labels_inline, name_of, timestamp};
use crate::cli::parse;
use pyro::params::{
    SnapshotParams, WorkspaceCreateParams, WorkspaceExecParams, WorkspaceResetParams,
    WorkspaceUpdateParams,
};
use pyro::results::{Workspace, WorkspaceExecResult, WorkspaceList, WorkspaceLogs};
use pyro::Pyro;
use std::io::{self, Write};

/// Run a `workspace` subcommand.
pub async fn run(pyro: &Pyro, cmd: WorkspaceCommand) -> Result<ExitCode, CliError> {
    match cmd {
        WorkspaceCommand::Create(a) => create(pyro, a).await,
        WorkspaceCommand::List(a) => {
            let list = pyro.workspace_list().await?;
            emit(a.out.json, &list, print_list)?;
            Ok(ExitCode::Success)
        }
        WorkspaceCommand::Update(a) => {
            let json = a.out.json;
            let ws = pyro.workspace_update(update_params(a)?).await?;
            emit(json, &ws, |w, ws| summary(w, "Workspace ID", ws))?;
            Ok(ExitCode::Success)
        }
        WorkspaceCommand::Exec(a) => exec(pyro, a).await,
        WorkspaceCommand::Status(a) => {
            let ws = pyro.workspace_status(a.workspace_id).await?;
            emit(a.out.json, &ws, |w, ws| summary(w, "Workspace ID", ws))?;
            Ok(ExitCode::Success)
        }
        WorkspaceCommand::Logs(a) => {
            let logs = pyro.workspace_logs(a.workspace_id).await?;
            emit(a.out.json, &logs, print_logs)?;
            Ok(ExitCode::Success)
        }
        WorkspaceCommand::Summary(a) => {
            let s = pyro.summarize_workspace(a.workspace_id).await?;
            emit(a.out.json, &s, |w, s| w.write_all(s.text.as_bytes()))?;
            Ok(ExitCode::Success)
        }
        WorkspaceCommand::Stop(a) => {
            let ws = pyro.workspace_stop(a.workspace_id).await?;
            emit(a.out.json, &ws, |w, ws| summary(w, "Stopped workspace ID", ws))?;
            Ok(ExitCode::Success)
        }
        WorkspaceCommand::Start(a) => {
            let ws = pyro.workspace_start(a.workspace_id).await?;
            emit(a.out.json, &ws, |w, ws| summary(w, "Started workspace ID", ws))?;
            Ok(ExitCode::Success)
        }
        WorkspaceCommand::Delete(a) => {
            let result = pyro.workspace_delete(a.workspace_id).await?;
            emit(a.out.json, &result, |w, r| writeln!(w, "Deleted workspace: {}", r.workspace_id))?;
            Ok(ExitCode::Success)
        }
        WorkspaceCommand::Reset(a) => {
            let params =
                WorkspaceResetParams { workspace_id: a.workspace_id, snapshot: a.snapshot };
            let result = pyro.workspace_reset(params).await?;
            emit(a.out.json, &result, |w, r| {
                summary(w, "Reset workspace ID", &r.workspace)?;
                let info = &r.workspace_reset;
                writeln!(w, "Reset source: {} ({})", info.snapshot_name, info.kind)?;
                writeln!(
                    w,
                    "Reset restore: destination={} entry_count={} bytes_written={}",
                    info.destination, info.entry_count, info.bytes_written
                )
            })?;
            Ok(ExitCode::Success)
        }
        WorkspaceCommand::Snapshot(cmd) => snapshot(pyro, cmd).await,
        WorkspaceCommand::Sync(cmd) => files::sync(pyro, cmd).await,
        WorkspaceCommand::Export(a) => files::export(pyro, a).await,
        WorkspaceCommand::Diff(a) => files::diff(pyro, a).await,
        WorkspaceCommand::File(cmd) => files::file(pyro, cmd).await,
        WorkspaceCommand::Patch(cmd) => files::patch(pyro, cmd).await,
        WorkspaceCommand::Disk(cmd) => disk::run(pyro, cmd).await,
        WorkspaceCommand::Shell(cmd) => shells::run(pyro, cmd).await,
        WorkspaceCommand::Service(cmd) => services::service(pyro, cmd).await,
    }
}

/// Stage two of `workspace create`: labels, secrets and paths into the request.
pub fn create_params(a: &WorkspaceCreateArgs) -> Result<WorkspaceCreateParams, CliError> {
    let mut secrets = a.secrets.iter().map(|s| parse::secret(s)).collect::<Result<Vec<_>, _>>()?;
    for raw in &a.secret_files {
        secrets.push(parse::secret_file(raw)?);
    }
    let seed_path = match &a.seed_path {
        Some(p) => Some(parse::absolute(p)?.display().to_string()),
        None => None,
    };
    Ok(WorkspaceCreateParams {
        environment: a.environment.clone(),
        vcpu_count: a.sizing.vcpu_count,
        mem_mib: a.sizing.mem_mib,
        ttl_seconds: a.sizing.ttl_seconds,
        network_policy: a.network_policy.0,
        allow_host_compat: a.host.allow_host_compat,
        seed_path,
        secrets: if secrets.is_empty() { None } else { Some(secrets) },
        name: a.name.clone(),
        labels: parse::labels(&a.labels)?,
    })
}

async fn create(pyro: &Pyro, a: WorkspaceCreateArgs) -> Result<ExitCode, CliError> {
    let params = create_params(&a)?;
    let ws = pyro.workspace_create(params).await?;
    if a.id_only {
        output::stdout_text(&format!("{}\n", ws.workspace_id))?;
    } else {
        emit(a.out.json, &ws, |w, ws| summary(w, "Workspace ID", ws))?;
    }
    Ok(ExitCode::Success)
}

/// Stage two of `workspace update`.
pub fn update_params(a: WorkspaceUpdateArgs) -> Result<WorkspaceUpdateParams, CliError> {
    Ok(WorkspaceUpdateParams {
        labels: parse::labels(&a.labels)?,
        workspace_id: a.workspace_id,
        name: a.name,
        clear_name: a.clear_name,
        clear_labels: if a.clear_labels.is_empty() { None } else { Some(a.clear_labels) },
    })
}

/// Stage two of `workspace exec`.
pub fn exec_params(a: &WorkspaceExecArgs) -> Result<WorkspaceExecParams, CliError> {
    Ok(WorkspaceExecParams {
        workspace_id: a.workspace_id.clone(),
        command: parse::command(&a.command)?,
        timeout_seconds: a.timeout_seconds,
        secret_env: parse::secret_env(&a.secret_env)?,
    })
}

async fn exec(pyro: &Pyro, a: WorkspaceExecArgs) -> Result<ExitCode, CliError> {
    let params = exec_params(&a)?;
    if a.out.json {
        let result = pyro.workspace_exec(params).await?;
        output::json(&result)?;
        return Ok(ExitCode::Guest(result.exit_code));
    }
    let terminal = std::sync::Arc::new(crate::cli::stream::TerminalWatch::default());
    let result = pyro::runtime::watch::scope(terminal.clone(), pyro.workspace_exec(params)).await?;
    print_exec(&result, &terminal)?;
    Ok(ExitCode::Guest(result.exit_code))
}

fn print_exec(
    r: &WorkspaceExecResult,
    terminal: &crate::cli::stream::TerminalWatch,
) -> Result<(), CliError> {
    terminal.print_result_output(&r.stdout, &r.stderr)?;
    let truncated = if r.truncated { " truncated=yes" } else { "" };
    output::note(&format!(
        "[workspace-exec] workspace_id={} sequence={} cwd={} execution_mode={} exit_code={} \
         duration_ms={}{truncated}",
        r.workspace_id,
        r.sequence,
        r.cwd,
        name_of(&r.execution_mode),
        r.exit_code,
        r.duration_ms
    ));
    Ok(())
}

async fn snapshot(pyro: &Pyro, cmd: SnapshotCommand) -> Result<ExitCode, CliError> {
    match cmd {
        SnapshotCommand::Create(a) => {
            let params =
                SnapshotParams { workspace_id: a.workspace_id, snapshot_name: a.snapshot_name };
            let r = pyro.snapshot_create(params).await?;
            emit(a.out.json, &r, |w, r| {
                let s = &r.snapshot;
                writeln!(
                    w,
                    "[workspace-snapshot-create] workspace_id={} snapshot_name={} kind={} \
                     entry_count={} bytes_written={}",
                    r.workspace_id, s.snapshot_name, s.kind, s.entry_count, s.bytes_written
                )
            })?;
        }
        SnapshotCommand::List(a) => {
            let list = pyro.snapshot_list(a.workspace_id).await?;
            emit(a.out.json, &list, |w, list| {
                if list.snapshots.is_empty() {
                    return writeln!(w, "No workspace snapshots found.");
                }
                for s in &list.snapshots {
                    writeln!(
                        w,
                        "{} [{}] created_at={} entry_count={} bytes_written={} deletable={}",
                        s.snapshot_name,
                        s.kind,
                        timestamp(s.created_at),
                        s.entry_count,
                        s.bytes_written,
                        output::yes_no(s.deletable)
                    )?;
                }
                Ok(())
            })?;
        }
        SnapshotCommand::Delete(a) => {
            let params =
                SnapshotParams { workspace_id: a.workspace_id, snapshot_name: a.snapshot_name };
            let r = pyro.snapshot_delete(params).await?;
            emit(a.out.json, &r, |w, r| {
                writeln!(w, "Deleted workspace snapshot: {}", r.snapshot_name)
            })?;
        }
    }
    Ok(ExitCode::Success)
}

/// The workspace summary block of create, status, update, stop, start and reset.
pub fn summary(w: &mut dyn Write, heading: &str, ws: &Workspace) -> io::Result<()> {
    writeln!(w, "{heading}: {}", ws.workspace_id)?;
    if let Some(name) = &ws.name {
        writeln!(w, "Name: {name}")?;
    }
    if !ws.labels.is_empty() {
        writeln!(w, "Labels: {}", labels_inline(&ws.labels))?;
    }
    writeln!(w, "Environment: {}", ws.environment)?;
    writeln!(w, "State: {}", name_of(&ws.state))?;
    writeln!(w, "Workspace: {}", ws.workspace_path)?;
    writeln!(w, "Last activity at: {}", timestamp(ws.last_activity_at))?;
    writeln!(w, "Expires at: {}", timestamp(ws.expires_at))?;
    writeln!(w, "Network policy: {}", ws.network_policy.name())?;
    let seed = &ws.workspace_seed;
    match &seed.seed_path {
        Some(path) => writeln!(w, "Workspace seed: {} from {path}", seed.mode)?,
        None => writeln!(w, "Workspace seed: {}", seed.mode)?,
    }
    if !ws.secrets.is_empty() {
        let secrets: Vec<String> =
            ws.secrets.iter().map(|s| format!("{} ({})", s.name, s.source_kind)).collect();
        writeln!(w, "Secrets: {}", secrets.join(", "))?;
    }
    writeln!(w, "Execution mode: {} (accel={})", name_of(&ws.execution_mode), name_of(&ws.accel))?;
    writeln!(w, "Resources: {} vCPU / {} MiB", ws.vcpu_count, ws.mem_mib)?;
    writeln!(w, "Command count: {}", ws.command_count)?;
    writeln!(w, "Reset count: {}", ws.reset_count)?;
    if let Some(at) = ws.last_reset_at {
        writeln!(w, "Last reset at: {}", timestamp(at))?;
    }
    writeln!(w, "Services: {}/{} running", ws.running_service_count, ws.service_count)?;
    if let Some(last) = &ws.last_command {
        writeln!(w, "Last command: {} (exit_code={})", last.command, last.exit_code)?;
    }
    if let Some(err) = &ws.last_error {
        writeln!(w, "Last error: {err}")?;
    }
    Ok(())
}

fn print_list(w: &mut dyn Write, list: &WorkspaceList) -> io::Result<()> {
    if list.workspaces.is_empty() {
        return writeln!(w, "No workspaces.");
    }
    for row in &list.workspaces {
        let mut line = format!("[workspace] workspace_id={}", row.workspace_id);
        if let Some(name) = &row.name {
            line.push_str(&format!(" name='{name}'"));
        }
        line.push_str(&format!(" state={} environment={}", name_of(&row.state), row.environment));
        if !row.labels.is_empty() {
            let labels: Vec<String> = row.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            line.push_str(&format!(" labels={}", labels.join(",")));
        }
        line.push_str(&format!(
            " last_activity_at={} expires_at={} commands={} services={}/{}",
            timestamp(row.last_activity_at),
            timestamp(row.expires_at),
            row.command_count,
            row.running_service_count,
            row.service_count
        ));
        writeln!(w, "{line}")?;
    }
    Ok(())
}

fn print_logs(w: &mut dyn Write, logs: &WorkspaceLogs) -> io::Result<()> {
    if logs.entries.is_empty() {
        return writeln!(w, "No workspace logs found.");
    }
    for e in &logs.entries {
        writeln!(
            w,
            "#{} exit_code={} duration_ms={} cwd={} execution_mode={}",
            e.sequence,
            e.exit_code,
            e.duration_ms,
            e.cwd,
            name_of(&e.execution_mode)
        )?;
        writeln!(w, "$ {}", e.command)?;
        w.write_all(e.stdout.as_bytes())?;
        if !e.stdout.is_empty() && !e.stdout.ends_with('\n') {
            writeln!(w)?;
        }
        if !e.stderr.is_empty() {
            w.flush()?;
            output::stderr_text(&e.stderr);
            if !e.stderr.ends_with('\n') {
                output::stderr_text("\n");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Command};
    use clap::Parser;

    fn ws_args(args: &[&str]) -> WorkspaceCommand {
        let cli = Cli::try_parse_from(["pyro", "workspace"].iter().chain(args)).expect("parse");
        match cli.command {
            Command::Workspace(cmd) => cmd,
            other => panic!("not a workspace command: {other:?}"),
        }
    }

    #[test]
    fn create_params_collects_labels_secrets_and_paths() {
        let WorkspaceCommand::Create(a) = ws_args(&[
            "create",
            "debian:12",
            "--label",
            "team=core",
            "--secret",
            "TOKEN=abc",
            "--secret-file",
            "KEY=key.txt",
            "--seed-path",
            "repo",
            "--network-policy",
            "egress",
        ]) else {
            panic!("wrong command")
        };
        let p = create_params(&a).expect("params");
        assert_eq!(p.labels.expect("labels").get("team").map(String::as_str), Some("core"));
        let secrets = p.secrets.expect("secrets");
        assert_eq!(secrets.len(), 2);
        assert_eq!(secrets[0].value.as_deref(), Some("abc"));
        assert!(secrets[1].file_path.as_deref().is_some_and(|f| f.starts_with('/')));
        assert!(p.seed_path.expect("seed").ends_with("/repo"));
        assert_eq!(p.network_policy, pyro::params::NetworkPolicy::Egress);
        assert!(!p.allow_host_compat);
    }

    #[test]
    fn create_params_rejects_bad_labels() {
        let WorkspaceCommand::Create(a) = ws_args(&["create", "debian:12", "--label", "novalue"])
        else {
            panic!("wrong command")
        };
        assert!(create_params(&a).expect_err("bad").to_string().contains("KEY=VALUE"));
    }

    #[test]
    fn exec_params_join_and_require_the_command() {
        let WorkspaceCommand::Exec(a) =
            ws_args(&["exec", "w1", "--secret-env", "TOKEN", "--", "sh", "-c", "exit 3"])
        else {
            panic!("wrong command")
        };
        let p = exec_params(&a).expect("params");
        assert_eq!(p.command, "sh -c 'exit 3'");
        assert_eq!(p.secret_env.expect("env").get("TOKEN").map(String::as_str), Some("TOKEN"));
        let WorkspaceCommand::Exec(a) = ws_args(&["exec", "w1"]) else { panic!("wrong command") };
        assert_eq!(
            exec_params(&a).expect_err("no cmd").to_string(),
            "command is required after `--`"
        );
    }

    #[test]
    fn update_params_map_clear_flags() {
        let WorkspaceCommand::Update(a) =
            ws_args(&["update", "w1", "--clear-name", "--clear-label", "a", "--label", "b=c"])
        else {
            panic!("wrong command")
        };
        let p = update_params(a).expect("params");
        assert!(p.clear_name && p.name.is_none());
        assert_eq!(p.clear_labels, Some(vec!["a".to_string()]));
        assert_eq!(p.labels.map(|l| l.len()), Some(1));
    }
}
