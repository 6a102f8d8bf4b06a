//! `pyro env ...`: the environment catalog and cache.

use crate::cli::args::EnvCommand;
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output::{self, emit, timestamp, yes_no};
use pyro::results::EnvironmentInfo;
use pyro::Pyro;
use serde::Serialize;
use std::io::{self, Write};

/// The `--json` object of `env list`.
#[derive(Debug, Serialize)]
pub struct EnvList {
    /// Number of environments.
    pub count: usize,
    /// The catalog, in catalog order.
    pub environments: Vec<EnvironmentInfo>,
}

/// Run an `env` subcommand.
pub async fn run(pyro: &Pyro, cmd: EnvCommand) -> Result<ExitCode, CliError> {
    match cmd {
        EnvCommand::List(a) => {
            let environments = pyro.env_list().await?;
            let list = EnvList { count: environments.len(), environments };
            emit(a.out.json, &list, |w, list| {
                for e in &list.environments {
                    let state = if e.installed { "installed" } else { "not installed" };
                    writeln!(w, "{} [{state}] {}", e.name, e.description)?;
                }
                Ok(())
            })?;
        }
        EnvCommand::Pull(a) => {
            let info = pyro.env_pull(a.environment, |line: &str| output::note(line)).await?;
            emit(a.out.json, &info, |w, info| details(w, "Pulled", info))?;
        }
        EnvCommand::Inspect(a) => {
            let info = pyro.env_inspect(a.environment).await?;
            emit(a.out.json, &info, |w, info| details(w, "Environment", info))?;
        }
        EnvCommand::Prune(a) => {
            let r = pyro.env_prune().await?;
            emit(a.out.json, &r, |w, r| {
                let noun = if r.count == 1 { "entry" } else { "entries" };
                writeln!(w, "Deleted {} cached environment {noun}.", r.count)?;
                for dir in &r.deleted_environment_dirs {
                    writeln!(w, "- {dir}")?;
                }
                if !r.pruned_template_dirs.is_empty() {
                    writeln!(
                        w,
                        "Pruned {} stale template build(s), {} MiB freed.",
                        r.pruned_template_dirs.len(),
                        r.template_bytes_freed / (1024 * 1024)
                    )?;
                    for dir in &r.pruned_template_dirs {
                        writeln!(w, "- {dir}")?;
                    }
                }
                Ok(())
            })?;
        }
    }
    Ok(ExitCode::Success)
}

fn details(w: &mut dyn Write, heading: &str, e: &EnvironmentInfo) -> io::Result<()> {
    writeln!(w, "{heading}: {}", e.name)?;
    writeln!(w, "Distribution: {} {}", e.distribution, e.distribution_version)?;
    writeln!(w, "Installed: {}", yes_no(e.installed))?;
    writeln!(w, "Install dir: {}", e.install_dir)?;
    let packages =
        if e.default_packages.is_empty() { "-".to_string() } else { e.default_packages.join(", ") };
    writeln!(w, "Default packages: {packages}")?;
    writeln!(w, "Description: {}", e.description)?;
    if let Some(at) = e.built_at {
        // Whole seconds; the conversion to f64 is exact for any realistic time.
        writeln!(w, "Built at: {}", timestamp(at as f64))?;
    }
    if let Some(size) = e.size_bytes {
        writeln!(w, "Image size: {size} bytes")?;
    }
    if let Some(count) = e.package_count {
        writeln!(w, "Packages installed: {count}")?;
    }
    if let Some(kernel) = &e.kernel_release {
        writeln!(w, "Guest kernel: {kernel}")?;
    }
    if let Some(packages) = &e.installed_packages {
        writeln!(w, "Packages:")?;
        for p in packages {
            writeln!(w, "  {p}")?;
        }
    }
    Ok(())
}
