//! `pyro host connect|print-config|doctor|repair`: thin wrappers over [`pyro::host`].

use crate::cli::args::{HostCommand, HostServeArgs};
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output::emit;
use pyro::host::{
    self, ConnectResult, HostDoctorEntry, HostEnv, HostKind, ServeCommand, ServeFlags,
};
use serde::Serialize;
use std::io::{self, Write};

fn canonical(args: &HostServeArgs) -> ServeCommand {
    let p = &args.project;
    let flags = ServeFlags {
        surface: args.surface.surface(),
        project_path: p
            .project_path
            .as_ref()
            .map(|d| std::fs::canonicalize(d).unwrap_or(d.clone())),
        repo_url: p.repo_url.clone(),
        repo_ref: p.repo_ref.clone(),
        no_project_source: p.no_project_source,
        environment: p.environment.clone(),
    };
    ServeCommand::new(args.program.clone(), &flags)
}

fn host_error(e: host::HostError) -> CliError {
    CliError::Invalid(e.to_string())
}

#[derive(Debug, Serialize)]
struct PrintConfig {
    host: HostKind,
    config_path: String,
    command: Vec<String>,
    snippet: String,
}

#[derive(Debug, Serialize)]
struct Doctor {
    hosts: Vec<HostDoctorEntry>,
}

/// Run a `host` subcommand.
pub fn run(cmd: HostCommand) -> Result<ExitCode, CliError> {
    let env = HostEnv::from_env();
    match cmd {
        HostCommand::Connect(a) => {
            let cmd = canonical(&a.serve);
            let r =
                host::connect(&env, a.host.kind(), &cmd, a.dry_run, false).map_err(host_error)?;
            emit(a.out.json, &r, print_connect)?;
            Ok(ExitCode::Success)
        }
        HostCommand::Repair(a) => {
            let cmd = canonical(&a.serve);
            let r =
                host::connect(&env, a.host.kind(), &cmd, a.dry_run, true).map_err(host_error)?;
            emit(a.out.json, &r, print_connect)?;
            Ok(ExitCode::Success)
        }
        HostCommand::PrintConfig(a) => {
            let cmd = canonical(&a.serve);
            let kind = a.host.kind();
            let out = PrintConfig {
                host: kind,
                config_path: env.config_path(kind).display().to_string(),
                command: cmd.argv(),
                snippet: host::print_config(kind, &cmd),
            };
            emit(a.out.json, &out, |w, p| w.write_all(p.snippet.as_bytes()))?;
            Ok(ExitCode::Success)
        }
        HostCommand::Doctor(a) => {
            let cmd = canonical(&a.serve);
            let hosts: Vec<HostKind> = match a.host {
                Some(h) => vec![h.kind()],
                None => HostKind::ALL.to_vec(),
            };
            let entries = hosts
                .into_iter()
                .map(|h| host::doctor(&env, h, &cmd))
                .collect::<Result<Vec<_>, _>>()
                .map_err(host_error)?;
            emit(a.out.json, &Doctor { hosts: entries }, print_doctor)?;
            Ok(ExitCode::Success)
        }
    }
}

fn print_connect(w: &mut dyn Write, r: &ConnectResult) -> io::Result<()> {
    match r.action.as_str() {
        "unchanged" => writeln!(
            w,
            "{}: pyro is already configured and current ({})",
            r.host.name(),
            r.config_path
        )?,
        "registered_with_cli" => {
            for c in &r.cli_commands {
                writeln!(w, "{} run: {}", if r.dry_run { "would" } else { "ran" }, c.join(" "))?;
            }
        }
        _ => {
            if let Some(diff) = &r.diff {
                w.write_all(diff.as_bytes())?;
            }
            if let Some(b) = &r.backup_path {
                writeln!(w, "backup: {b}")?;
            }
            let verb = if r.dry_run { "would write" } else { "wrote" };
            writeln!(w, "{}: {verb} {}", r.host.name(), r.config_path)?;
        }
    }
    for d in &r.repaired {
        writeln!(w, "repaired: {d}")?;
    }
    writeln!(w, "command: {}", r.command.join(" "))
}

fn print_doctor(w: &mut dyn Write, d: &Doctor) -> io::Result<()> {
    for e in &d.hosts {
        let status = serde_json::to_value(e.status).ok();
        let status = status.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
        writeln!(w, "{}: {status} ({})", e.host.name(), e.config_path)?;
        for drift in &e.drift {
            writeln!(w, "  drift: {drift}")?;
        }
        for warning in &e.warnings {
            writeln!(w, "  warning: {warning}")?;
        }
        if let Some(fix) = &e.fix {
            writeln!(w, "  fix: {fix}")?;
        }
    }
    Ok(())
}
