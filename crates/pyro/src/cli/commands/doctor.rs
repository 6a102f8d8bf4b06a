//! `pyro doctor`: what this host can run.

use crate::cli::args::{DoctorArgs, GcArgs};
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output::{emit, name_of, yes_no};
use pyro::project::ProjectSourceReport;
use pyro::runtime::daily_loop::DailyLoopStatus;
use pyro::runtime::DoctorReport;
use pyro::Pyro;
use serde::Serialize;
use std::io::{self, Write};

/// `pyro doctor --json`: the runtime report plus what `pyro mcp serve` would seed from.
#[derive(Debug, Serialize)]
struct DoctorOutput {
    #[serde(flatten)]
    report: DoctorReport,
    /// The project source `pyro mcp serve` would use with the same flags, and why.
    project_source: ProjectSourceReport,
    /// With `--environment`: whether that environment is warm, cold or stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    daily_loop: Option<DailyLoopStatus>,
}

/// Run `pyro doctor`. The exit code is 0 even when the runtime is not usable: the
/// report is the answer (`runtime_ok` says whether guests can boot).
pub async fn run(pyro: &Pyro, args: &DoctorArgs) -> Result<ExitCode, CliError> {
    tracing::debug!(platform = ?args.platform, "doctor");
    let report = pyro.doctor().await?;
    let choice = super::mcp::project_choice(&args.project)?;
    let project_source = match choice.report() {
        Ok(report) => report,
        Err(e) => ProjectSourceReport {
            origin_kind: pyro::project::OriginKind::None,
            origin_ref: None,
            git_tracked_only: false,
            reason: format!("unusable: {e}"),
        },
    };
    let daily_loop = match &args.project.environment {
        Some(env) => {
            let rt = pyro.runtime().clone();
            let env = env.clone();
            Some(
                tokio::task::spawn_blocking(move || rt.daily_loop_status(&env))
                    .await
                    .map_err(|e| CliError::Invalid(format!("doctor failed: {e}")))??,
            )
        }
        None => None,
    };
    let output = DoctorOutput { report, project_source, daily_loop };
    emit(args.out.json, &output, print)?;
    Ok(ExitCode::Success)
}

fn print(w: &mut dyn Write, out: &DoctorOutput) -> io::Result<()> {
    let r = &out.report;
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
    writeln!(w, "Confinement: seccomp: {}", r.confinement.seccomp)?;
    writeln!(w, "Confinement: user: {}", r.confinement.qemu_user)?;
    writeln!(w, "Confinement: limits: {}", r.confinement.cgroup)?;
    writeln!(w, "State dir: {}", r.state_dir)?;
    writeln!(w, "Environment cache: {}", r.cache_dir)?;
    for e in &r.environments {
        let state = if e.installed { "installed" } else { "not installed" };
        writeln!(w, "Environment: {} [{state}]", e.name)?;
    }
    let t = &r.templates;
    writeln!(
        w,
        "Clones: {}{}",
        t.clones,
        t.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
    )?;
    for tpl in &t.templates {
        let what = match (&tpl.environment, tpl.vcpu_count, tpl.mem_mib, tpl.network) {
            (Some(env), Some(vcpu), Some(mem), Some(net)) => {
                format!("{env} {vcpu} vCPU {mem} MiB{}", if net { " network" } else { "" })
            }
            _ => "incomplete".to_string(),
        };
        let state = match &tpl.stale {
            Some(why) => format!("stale: {why}"),
            None => "current".to_string(),
        };
        writeln!(
            w,
            "Template: {} {what} [{state}] users={} size={} MiB",
            tpl.key,
            tpl.users,
            tpl.bytes / (1024 * 1024)
        )?;
    }
    let p = &out.project_source;
    writeln!(
        w,
        "Project source: {}{} ({})",
        p.origin_kind.name(),
        p.origin_ref.as_ref().map(|r| format!(" {r}")).unwrap_or_default(),
        p.reason
    )?;
    if let Some(d) = &out.daily_loop {
        let state = serde_json::to_value(d.state).ok();
        let state = state.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
        writeln!(w, "Daily loop ({}): {state}", d.environment)?;
        for reason in &d.reasons {
            writeln!(w, "  why: {reason}")?;
        }
        if let Some(fix) = &d.fix {
            writeln!(w, "  fix: {fix}")?;
        }
        for note in &d.notes {
            writeln!(w, "  note: {note}")?;
        }
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

/// Run `pyro gc`: remove leftovers of crashed pyro processes and say what went.
pub async fn gc(pyro: &Pyro, args: &GcArgs) -> Result<ExitCode, CliError> {
    let report = pyro.gc().await?;
    emit(args.out.json, &report, print_gc)?;
    Ok(ExitCode::Success)
}

fn print_gc(w: &mut dyn Write, r: &pyro::runtime::sweep::SweepReport) -> io::Result<()> {
    if r.is_clean() {
        return writeln!(w, "Nothing to remove.");
    }
    for id in &r.half_made_workspaces {
        writeln!(w, "removed half-made workspace {id}")?;
    }
    for q in &r.orphan_qemus {
        writeln!(w, "killed QEMU {q}")?;
    }
    for v in &r.orphan_vms {
        writeln!(w, "removed orphan vm {v}")?;
    }
    for f in &r.stray_files {
        writeln!(w, "removed stray file {f}")?;
    }
    Ok(())
}
