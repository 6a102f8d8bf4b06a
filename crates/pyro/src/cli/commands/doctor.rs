//! `pyro doctor`: what this host can run.

use crate::cli::args::DoctorArgs;
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output::{emit, name_of, yes_no};
use pyro::runtime::DoctorReport;
use pyro::Pyro;
use std::io::{self, Write};

/// Run `pyro doctor`. The exit code is 0 even when the runtime is not usable: the
/// report is the answer (`runtime_ok` says whether guests can boot).
pub async fn run(pyro: &Pyro, args: &DoctorArgs) -> Result<ExitCode, CliError> {
    tracing::debug!(platform = ?args.platform, "doctor");
    let report = pyro.doctor().await?;
    emit(args.out.json, &report, print)?;
    Ok(ExitCode::Success)
}

fn print(w: &mut dyn Write, r: &DoctorReport) -> io::Result<()> {
    writeln!(w, "Platform: {}", r.platform)?;
    writeln!(w, "pyro: {}", r.pyro_version)?;
    writeln!(w, "Runtime: {}", if r.runtime_ok { "PASS" } else { "FAIL" })?;
    writeln!(w, "QEMU: {}", r.qemu_version.as_deref().unwrap_or("not found"))?;
    writeln!(w, "Acceleration: {} ({})", name_of(&r.accel), r.accel_reason)?;
    writeln!(
        w,
        "KVM: exists={} accessible={} module={}",
        yes_no(r.kvm.exists),
        yes_no(r.kvm.accessible),
        r.kvm.module.as_deref().unwrap_or("-")
    )?;
    writeln!(
        w,
        "Boot assets: {}{}",
        if r.boot_assets_present { "present" } else { "missing" },
        r.kernel_release.as_ref().map(|k| format!(" (kernel {k})")).unwrap_or_default()
    )?;
    writeln!(w, "Guest agent: {}", r.guest_agent.as_deref().unwrap_or("not found"))?;
    writeln!(w, "State dir: {}", r.state_dir)?;
    writeln!(w, "Environment cache: {}", r.cache_dir)?;
    for e in &r.environments {
        let state = if e.installed { "installed" } else { "not installed" };
        writeln!(w, "Environment: {} [{state}]", e.name)?;
    }
    if r.issues.is_empty() {
        writeln!(w, "Issues: none")?;
    } else {
        writeln!(w, "Issues:")?;
        for issue in &r.issues {
            writeln!(w, "- {}", issue.problem)?;
            writeln!(w, "  fix: {}", issue.fix)?;
        }
    }
    Ok(())
}
