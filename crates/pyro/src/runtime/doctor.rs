//! `pyro doctor`: what this host can run, and what to do about what it cannot.

use super::Runtime;
use crate::backend::qemu;
use pyro_contract::results::{Accel, EnvironmentInfo};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One problem and its fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Issue {
    /// What is wrong.
    pub problem: String,
    /// What to run or do.
    pub fix: String,
}

/// `/dev/kvm` facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KvmInfo {
    /// Device node exists.
    pub exists: bool,
    /// Readable and writable by us.
    pub accessible: bool,
    /// Kernel module providing it (`kvm_intel`, `kvm_amd`, `kvm_pvm`, ...), if any.
    pub module: Option<String>,
}

/// How guests are confined on this host (see docs/security.md, "Confinement").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConfinementReport {
    /// QEMU's seccomp filter (`-sandbox ...`), always on.
    pub seccomp: String,
    /// Who QEMU runs as.
    pub qemu_user: String,
    /// The uid QEMU runs as.
    pub qemu_uid: u32,
    /// Whether QEMU runs as root (pyro is root and the QEMU user is missing).
    pub qemu_runs_as_root: bool,
    /// The cgroup limits, or why guests have none.
    pub cgroup: String,
    /// Whether each guest gets its own cgroup.
    pub cgroup_limits: bool,
}

/// What `doctor` says about confinement; problems go to `issues`.
fn confinement_report(issues: &mut Vec<Issue>) -> ConfinementReport {
    let identity = qemu::confine::qemu_identity();
    if let qemu::confine::QemuIdentity::Root { reason } = &identity {
        issues.push(Issue {
            problem: format!(
                "QEMU runs as root ({reason}): a guest that escapes QEMU owns the host"
            ),
            fix: "run scripts/setup (creates the system user pyro-qemu), or set PYRO_QEMU_USER"
                .into(),
        });
    }
    let cgroup = qemu::cgroup::doctor_check();
    if let Err(reason) = &cgroup {
        issues.push(Issue {
            problem: reason.clone(),
            fix: "run pyro as root on a host with cgroup v2 (cpu, memory, pids) or v1 cpu, memory and pids hierarchies".into(),
        });
    }
    ConfinementReport {
        seccomp: format!("QEMU runs under -sandbox {}", qemu::launch::SANDBOX_OPTION),
        qemu_user: identity.describe(),
        qemu_uid: identity.uid(),
        qemu_runs_as_root: identity.uid() == 0,
        cgroup_limits: cgroup.is_ok(),
        cgroup: cgroup.unwrap_or_else(|reason| reason),
    }
}

/// The doctor's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DoctorReport {
    /// `linux-x86_64`.
    pub platform: String,
    /// pyro version.
    pub pyro_version: String,
    /// True when guests can boot (QEMU, kernel, initramfs and at least one image present).
    pub runtime_ok: bool,
    /// QEMU binary version line, if it runs.
    pub qemu_version: Option<String>,
    /// Acceleration guests will use.
    pub accel: Accel,
    /// Why that acceleration.
    pub accel_reason: String,
    /// KVM device facts.
    pub kvm: KvmInfo,
    /// Guest kernel release, when built.
    pub kernel_release: Option<String>,
    /// Boot assets (kernel and initramfs) present.
    pub boot_assets_present: bool,
    /// Static guest agent binary found.
    pub guest_agent: Option<String>,
    /// State directory.
    pub state_dir: String,
    /// Cache directory.
    pub cache_dir: String,
    /// Environments and whether they are installed.
    pub environments: Vec<EnvironmentInfo>,
    /// Template VMs and whether fresh guests start as their clones.
    pub templates: qemu::template::ClonesReport,
    /// How guests are confined.
    pub confinement: ConfinementReport,
    /// Problems, each with its fix.
    pub issues: Vec<Issue>,
    /// Leftovers of crashed pyro processes (not removed; `pyro gc` removes them).
    pub leftovers: super::sweep::SweepReport,
}

fn kvm_info() -> KvmInfo {
    let exists = Path::new("/dev/kvm").exists();
    let accessible = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    let module = ["kvm_intel", "kvm_amd", "kvm_pvm"]
        .into_iter()
        .find(|m| Path::new("/sys/module").join(m).exists())
        .map(str::to_string);
    KvmInfo { exists, accessible, module }
}

impl Runtime {
    /// Inspect the host.
    pub fn doctor(&self) -> DoctorReport {
        let mut issues = Vec::new();
        let qemu_version = match qemu::qemu_version() {
            Ok(v) => Some(v),
            Err(e) => {
                issues.push(Issue {
                    problem: format!("QEMU is not usable: {e}"),
                    fix: "run scripts/setup (installs the Debian package qemu-system-x86)".into(),
                });
                None
            }
        };
        let (accel, accel_reason) = qemu::detect_accel();
        if accel == Accel::Tcg {
            issues.push(Issue {
                problem: format!("no usable hardware KVM ({accel_reason}); guests run under TCG, about 10x slower to boot"),
                fix: "nothing required; on a host with kvm_intel/kvm_amd and access to /dev/kvm guests use KVM automatically".into(),
            });
        }
        let boot = self.boot_assets();
        if boot.is_none() {
            issues.push(Issue {
                problem: format!(
                    "guest kernel/initramfs missing in {}",
                    self.config.cache_dir.join("boot").display()
                ),
                fix: "run scripts/setup, or `pyro env pull debian:12`".into(),
            });
        }
        let agent = self.guest_agent_path();
        if agent.is_none() {
            issues.push(Issue {
                problem: "static guest agent binary (pyro-guest-agent) not found".into(),
                fix: "run scripts/setup, or set PYRO_GUEST_AGENT to its path".into(),
            });
        }
        let environments = self.env_list();
        if !environments.iter().any(|e| e.installed) {
            issues.push(Issue {
                problem: "no environment image is installed".into(),
                fix: "run `pyro env pull debian:12` (or scripts/setup for all three)".into(),
            });
        }
        let leftovers = self.sweep(false);
        if !leftovers.is_clean() {
            issues.push(Issue {
                problem: format!(
                    "leftovers of crashed pyro processes: {} half-made workspaces, {} QEMUs nobody owns, {} orphan VMs, {} stray files",
                    leftovers.half_made_workspaces.len(),
                    leftovers.orphan_qemus.len(),
                    leftovers.orphan_vms.len(),
                    leftovers.stray_files.len()
                ),
                fix: "run `pyro gc`".into(),
            });
        }
        let runtime_ok =
            qemu_version.is_some() && boot.is_some() && environments.iter().any(|e| e.installed);
        let templates = qemu::template::clones_report(&self.config.cache_dir, &qemu::qemu_binary());
        if templates.clones == "failing" {
            issues.push(Issue {
                problem: format!(
                    "guests cannot start as template clones ({}); they boot cold, ~10x slower",
                    templates.reason.as_deref().unwrap_or("unknown reason")
                ),
                fix: "rebuild the boot assets with scripts/setup; `pyro doctor --json` lists the templates"
                    .into(),
            });
        }
        let confinement = confinement_report(&mut issues);
        DoctorReport {
            platform: "linux-x86_64".into(),
            pyro_version: env!("CARGO_PKG_VERSION").into(),
            runtime_ok,
            qemu_version,
            accel,
            accel_reason,
            kvm: kvm_info(),
            kernel_release: boot.and_then(|b| b.kernel_release),
            boot_assets_present: self.boot_assets().is_some(),
            guest_agent: agent.map(|p| p.display().to_string()),
            state_dir: self.config.state_dir.display().to_string(),
            cache_dir: self.config.cache_dir.display().to_string(),
            environments,
            templates,
            confinement,
            issues,
            leftovers,
        }
    }
}
