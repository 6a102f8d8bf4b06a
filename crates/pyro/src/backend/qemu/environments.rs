//! The QEMU backend's environment store in its cache directory (`$PYRO_CACHE_DIR`,
//! default `~/.cache/pyro`):
//!
//! ```text
//! bin/pyro-guest-agent             static agent copied into every initramfs
//! boot/vmlinux, boot/initrd.img    Debian cloud kernel (PVH ELF) + initramfs
//! boot/boot.json                   kernel package/release, agent sha256, build time
//! environments/<name>/rootfs.ext4  base image per environment (read-only backing file)
//! environments/<name>/environment.json, packages.txt
//! templates/...                    template VMs clones start from (see `template`)
//! ```
//!
//! Images are built by `assets/guest-build.sh` (embedded in the binary), which uses
//! `apt-get download`, `dpkg-deb`, `mmdebstrap` and `mkfs.ext4 -d`: nothing but Debian
//! packages, no container registry.

use super::super::environments::{
    BootAssets, EnvironmentError, EnvironmentStore, PruneResult, PullProgress,
};
use super::assets;
use pyro_contract::results::EnvironmentInfo;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BUILD_SCRIPT: &str = include_str!("../../../assets/guest-build.sh");
const INIT_SCRIPT: &str = include_str!("../../../assets/initramfs-init.sh");

/// What `environment.json` in the cache says.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct BuiltEnvironment {
    #[serde(default)]
    built_at: Option<u64>,
    #[serde(default)]
    size_bytes: Option<u64>,
    #[serde(default)]
    package_count: Option<u64>,
}

/// Environments as files under one cache directory.
#[derive(Debug, Clone)]
pub struct QemuEnvironments {
    cache_dir: PathBuf,
}

fn io(context: &str, path: &Path, source: std::io::Error) -> EnvironmentError {
    EnvironmentError::Io { context: context.to_owned(), path: path.to_path_buf(), source }
}

/// Write `bytes` to `path` through a temporary file beside it and a rename.
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), EnvironmentError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| io("could not write", path, e))?;
    tmp.write_all(bytes).map_err(|e| io("could not write", path, e))?;
    tmp.persist(path).map_err(|e| io("could not write", path, e.error))?;
    Ok(())
}

fn stale(path: &Path) -> bool {
    path.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > 3600)
}

impl QemuEnvironments {
    /// The store in `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Self {
        QemuEnvironments { cache_dir }
    }

    fn env_dir(&self, name: &str) -> PathBuf {
        assets::environment_dir(&self.cache_dir, name)
    }

    fn run_build_step(
        &self,
        args: &[&str],
        packages: Option<&[&str]>,
    ) -> Result<(), EnvironmentError> {
        let scripts = self.cache_dir.join("scripts");
        fs::create_dir_all(&scripts).map_err(|e| io("could not create", &scripts, e))?;
        let script = scripts.join("guest-build.sh");
        let init = scripts.join("initramfs-init.sh");
        write_replacing(&script, BUILD_SCRIPT.as_bytes())?;
        write_replacing(&init, INIT_SCRIPT.as_bytes())?;
        // The build's output goes to our stderr: stdout may be an MCP stream.
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| io("could not duplicate stderr", Path::new("/dev/stderr"), e))?;
        let mut command = Command::new("bash");
        if let Some(packages) = packages {
            command.env("PYRO_ENV_PACKAGES", packages.join(" "));
        }
        let status = command
            .arg(&script)
            .args(args)
            .env("PYRO_INITRAMFS_INIT", &init)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stderr))
            .status()
            .map_err(|e| io("could not run the image builder", &script, e))?;
        if !status.success() {
            return Err(EnvironmentError::Invalid(format!(
                "building guest assets failed ({status}) at step `{}`; see the messages above",
                args.first().copied().unwrap_or("?")
            )));
        }
        Ok(())
    }
}

impl EnvironmentStore for QemuEnvironments {
    fn inspect(&self, info: &mut EnvironmentInfo, packages: bool) {
        let dir = self.env_dir(&info.name);
        let built: Option<BuiltEnvironment> = fs::read_to_string(dir.join("environment.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        info.installed = built.is_some() && dir.join("rootfs.ext4").exists();
        let built = built.unwrap_or_default();
        info.install_dir = dir.display().to_string();
        info.built_at = built.built_at;
        info.size_bytes = built.size_bytes;
        info.package_count = built.package_count;
        info.kernel_release = self.boot_assets().and_then(|b| b.kernel_release);
        if packages && info.installed {
            info.installed_packages =
                fs::read_to_string(dir.join("packages.txt")).ok().map(|text| {
                    text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
                });
        }
    }

    fn boot_assets(&self) -> Option<BootAssets> {
        let dir = assets::boot_dir(&self.cache_dir);
        if !dir.join("vmlinux").exists() || !dir.join("initrd.img").exists() {
            return None;
        }
        let text = fs::read_to_string(dir.join("boot.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// `$PYRO_GUEST_AGENT`, the cache, or next to this executable.
    fn guest_agent(&self) -> Option<PathBuf> {
        let mut candidates = Vec::new();
        if let Some(p) = std::env::var_os("PYRO_GUEST_AGENT") {
            candidates.push(PathBuf::from(p));
        }
        candidates.push(self.cache_dir.join("bin/pyro-guest-agent"));
        if let Ok(exe) = std::env::current_exe() {
            if let Some(dir) = exe.parent() {
                candidates.push(dir.join("pyro-guest-agent"));
            }
        }
        candidates.into_iter().find(|p| p.is_file())
    }

    fn pull(
        &self,
        name: &str,
        packages: &[&str],
        progress: PullProgress<'_>,
    ) -> Result<(), EnvironmentError> {
        let cache = self.cache_dir.display().to_string();
        progress(&format!("[pull] phase=host-deps environment={name}"));
        self.run_build_step(&["host-deps"], None)?;
        match self.guest_agent() {
            Some(agent) => {
                progress(&format!("[pull] phase=boot-assets agent={}", agent.display()));
                self.run_build_step(&["boot", &cache, &agent.display().to_string()], None)?;
            }
            None if self.boot_assets().is_some() => {
                progress("[pull] phase=boot-assets status=present (no agent binary to refresh it)");
            }
            None => {
                return Err(EnvironmentError::Invalid(
                    "the static guest agent binary was not found; run scripts/setup (or set PYRO_GUEST_AGENT)"
                        .into(),
                ))
            }
        }
        progress(&format!("[pull] phase=rootfs environment={name}"));
        self.run_build_step(&["rootfs", &cache, name], Some(packages))
    }

    fn prune(&self, known: &[String]) -> Result<PruneResult, EnvironmentError> {
        let root = self.cache_dir.join("environments");
        let mut deleted = Vec::new();
        for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            // Lock files belong to the builder; a `.partial-*` build is only stale once
            // nothing has touched it for an hour (a running build keeps writing).
            if name.starts_with(".lock") || (name.starts_with(".partial") && !stale(&path)) {
                continue;
            }
            let complete =
                path.join("environment.json").exists() && path.join("rootfs.ext4").exists();
            if known.contains(&name) && complete {
                continue;
            }
            let removed =
                if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            removed.map_err(|e| io("could not remove", &path, e))?;
            deleted.push(name);
        }
        deleted.sort();
        let (pruned_template_dirs, template_bytes_freed) =
            super::template::prune_stale(&self.cache_dir, &super::qemu_binary());
        Ok(PruneResult {
            count: deleted.len() as u64,
            deleted_environment_dirs: deleted,
            pruned_template_dirs,
            template_bytes_freed,
        })
    }
}
