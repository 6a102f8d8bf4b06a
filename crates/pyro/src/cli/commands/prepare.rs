//! `pyro prepare`: warm the machine for an environment and prove the loop once.

use crate::cli::args::PrepareArgs;
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output::emit;
use pyro::runtime::daily_loop::PrepareResult;
use pyro::Pyro;
use std::io::{self, Write};

/// Run `pyro prepare`. Progress goes to stderr; the result to stdout.
pub async fn run(pyro: &Pyro, args: PrepareArgs) -> Result<ExitCode, CliError> {
    let rt = pyro.runtime().clone();
    let (env, network, force) = (args.environment.clone(), args.network, args.force);
    let result = tokio::task::spawn_blocking(move || {
        rt.prepare(&env, network, force, &mut |line: &str| eprintln!("{line}"))
    })
    .await
    .map_err(|e| CliError::Invalid(format!("prepare failed: {e}")))??;
    emit(args.out.json, &result, print)?;
    Ok(ExitCode::Success)
}

fn print(w: &mut dyn Write, r: &PrepareResult) -> io::Result<()> {
    let t = &r.manifest.timings;
    match r.action.as_str() {
        "already_warm" => writeln!(
            w,
            "{} is already warm (pyro prepare --force reruns the proof)",
            r.environment
        )?,
        _ => {
            writeln!(
                w,
                "{} is warm: create {} ms, exec {} ms, reset {} ms, delete {} ms{}",
                r.environment,
                t.create_ms,
                t.exec_ms,
                t.reset_ms,
                t.delete_ms,
                if r.pulled { format!(" (pulled in {} ms)", t.pull_ms) } else { String::new() }
            )?;
        }
    }
    let boot = |b: &Option<String>| b.clone().unwrap_or_else(|| "-".into());
    writeln!(w, "Guest starts: create {}, reset {}", boot(&t.create_boot), boot(&t.reset_boot))?;
    if let Some(reason) = &t.reset_cold_reason {
        writeln!(w, "Template: not used ({reason})")?;
    }
    writeln!(w, "Guest kernel: {}", r.manifest.guest_kernel)?;
    writeln!(w, "Manifest: {}", r.manifest_path)
}
