//! Choosing between KVM and TCG.
//!
//! KVM is used only when the host has hardware KVM: `/sys/module/kvm_intel` or
//! `/sys/module/kvm_amd` exists and `/dev/kvm` opens read-write. A `/dev/kvm` provided
//! by anything else (notably `kvm_pvm`, which only runs PVM-built guest kernels) hangs
//! or crashes stock kernels, so it counts as "no KVM" and QEMU's TCG emulator is used.
//! `PYRO_ACCEL=kvm|tcg` overrides the decision.

use pyro_contract::results::Accel;
use std::ffi::OsString;
use std::path::Path;

/// Environment variable that forces the accelerator (`kvm` or `tcg`).
pub const ACCEL_ENV: &str = "PYRO_ACCEL";

/// Which accelerator QEMU should use on this host, and why.
pub fn detect_accel() -> (Accel, String) {
    let forced = std::env::var(ACCEL_ENV).ok();
    decide_accel(Path::new("/"), forced.as_deref())
}

/// The decision of [`detect_accel`], with the file system root and the override passed
/// in (so tests can use a fake sysfs tree).
pub fn decide_accel(root: &Path, forced: Option<&str>) -> (Accel, String) {
    let mut note = String::new();
    match forced.map(str::trim) {
        Some("kvm") => return (Accel::Kvm, format!("forced by {ACCEL_ENV}=kvm")),
        Some("tcg") => return (Accel::Tcg, format!("forced by {ACCEL_ENV}=tcg")),
        Some("") | None => {}
        Some(other) => note = format!(" ({ACCEL_ENV}={other} ignored: expected kvm or tcg)"),
    }
    let module = |name: &str| root.join("sys/module").join(name).exists();
    let hardware = ["kvm_intel", "kvm_amd"].into_iter().find(|m| module(m));
    let kvm_dev = root.join("dev/kvm");
    let (accel, reason) = match hardware {
        Some(m) => {
            match std::fs::OpenOptions::new().read(true).write(true).open(&kvm_dev) {
                Ok(_) => (Accel::Kvm, format!("hardware KVM ({m}) and {} is usable", kvm_dev.display())),
                Err(e) => (Accel::Tcg, format!("{m} is loaded but {} cannot be opened read-write ({e})", kvm_dev.display())),
            }
        }
        None if module("kvm_pvm") => (
            Accel::Tcg,
            "/dev/kvm is provided by kvm_pvm, which is not hardware KVM and cannot run stock guest kernels"
                .to_owned(),
        ),
        None if module("kvm") || kvm_dev.exists() => (
            Accel::Tcg,
            "/dev/kvm exists but neither kvm_intel nor kvm_amd is loaded (not hardware KVM)".to_owned(),
        ),
        None => (Accel::Tcg, "no KVM on this host".to_owned()),
    };
    (accel, reason + &note)
}

/// QEMU arguments selecting `accel`.
pub fn accel_args(accel: Accel) -> Vec<OsString> {
    let args: &[&str] = match accel {
        Accel::Kvm => &["-accel", "kvm", "-cpu", "host"],
        // `max` gives TCG guests every CPU feature QEMU emulates: the guest kernel and
        // userspace pick faster code paths (measured ~35% faster agent hello and shell
        // start than the default qemu64 model), and it boots reliably here.
        // `tb-size` caps the translated-code cache at 64 MiB (QEMU 7.2 reserves 1 GiB and
        // keeps every page it filled resident); a full cache is flushed and refilled. With
        // `norandmaps` (launch.rs, `kernel_cmdline`) new processes reuse translated code,
        // so after 60 execs the cache holds ~18 MiB and smaller caps save nothing.
        Accel::Tcg | Accel::None => &["-accel", "tcg,tb-size=64", "-cpu", "max"],
    };
    args.iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake_root(modules: &[&str], kvm_dev: bool) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("tempdir");
        for m in modules {
            fs::create_dir_all(root.path().join("sys/module").join(m)).expect("mkdir");
        }
        if kvm_dev {
            fs::create_dir_all(root.path().join("dev")).expect("mkdir");
            fs::write(root.path().join("dev/kvm"), b"").expect("write");
        }
        root
    }

    #[test]
    fn pvm_is_not_kvm() {
        let root = fake_root(&["kvm", "kvm_pvm"], true);
        let (accel, reason) = decide_accel(root.path(), None);
        assert_eq!(accel, Accel::Tcg);
        assert!(reason.contains("kvm_pvm"), "{reason}");
    }

    #[test]
    fn hardware_kvm_with_usable_device_is_kvm() {
        for m in ["kvm_intel", "kvm_amd"] {
            let root = fake_root(&["kvm", m], true);
            let (accel, reason) = decide_accel(root.path(), None);
            assert_eq!(accel, Accel::Kvm, "{reason}");
            assert!(reason.contains(m), "{reason}");
        }
    }

    #[test]
    fn hardware_module_without_device_is_tcg() {
        let root = fake_root(&["kvm", "kvm_intel"], false);
        let (accel, reason) = decide_accel(root.path(), None);
        assert_eq!(accel, Accel::Tcg);
        assert!(reason.contains("cannot be opened"), "{reason}");
    }

    #[test]
    fn nothing_is_tcg() {
        let root = fake_root(&[], false);
        assert_eq!(decide_accel(root.path(), None), (Accel::Tcg, "no KVM on this host".to_owned()));
    }

    #[test]
    fn env_override_wins_and_bad_values_are_reported() {
        let root = fake_root(&["kvm_pvm"], true);
        assert_eq!(decide_accel(root.path(), Some("kvm")).0, Accel::Kvm);
        let hw = fake_root(&["kvm_intel"], true);
        assert_eq!(decide_accel(hw.path(), Some("tcg")).0, Accel::Tcg);
        let (accel, reason) = decide_accel(hw.path(), Some("hvf"));
        assert_eq!(accel, Accel::Kvm);
        assert!(reason.contains("PYRO_ACCEL=hvf ignored"), "{reason}");
    }

    #[test]
    fn accel_arguments() {
        assert_eq!(accel_args(Accel::Kvm), ["-accel", "kvm", "-cpu", "host"]);
        assert_eq!(accel_args(Accel::Tcg), ["-accel", "tcg,tb-size=64", "-cpu", "max"]);
    }
}
