//! Environments: the catalog of guest images, and building them from Debian packages.
//!
//! Cache layout (`$PYRO_CACHE_DIR`, default `~/.cache/pyro`):
//!
//! ```text
//! bin/pyro-guest-agent             static agent copied into every initramfs
//! boot/vmlinux, boot/initrd.img    Debian cloud kernel (PVH ELF) + initramfs
//! boot/boot.json                   kernel package/release, agent sha256, build time
//! environments/<name>/rootfs.ext4  base image per environment (read-only backing file)
//! environments/<name>/environment.json, packages.txt
//! ```
//!
//! Images are built by `assets/guest-build.sh` (embedded in the binary), which uses
//! `apt-get download`, `dpkg-deb`, `mmdebstrap` and `mkfs.ext4 -d`: nothing but Debian
//! packages, no container registry.

use super::error::{PyroError, Result};
use super::Runtime;
use pyro_contract::results::EnvironmentInfo;
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BUILD_SCRIPT: &str = include_str!("../../assets/guest-build.sh");
const INIT_SCRIPT: &str = include_str!("../../assets/initramfs-init.sh");

struct CatalogEntry {
    name: &'static str,
    description: &'static str,
    packages: &'static [&'static str],
}

const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "debian:12",
        description:
            "Debian 12 (bookworm) with git, python3, curl, ca-certificates, procps and less",
        packages: &["git", "python3", "curl", "ca-certificates", "procps", "less"],
    },
    CatalogEntry {
        name: "debian:12-base",
        description: "Minimal Debian 12 (bookworm): bash, coreutils, procps and the pyro agent",
        packages: &["procps"],
    },
    CatalogEntry {
        name: "debian:12-build",
        description:
            "Debian 12 (bookworm) with git, python3, curl, build-essential, pkg-config and make",
        packages: &[
            "git",
            "python3",
            "curl",
            "ca-certificates",
            "procps",
            "less",
            "build-essential",
            "pkg-config",
            "make",
        ],
    },
];

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

/// What `boot/boot.json` says.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BootAssets {
    /// Debian kernel package.
    #[serde(default)]
    pub kernel_package: Option<String>,
    /// Kernel release.
    #[serde(default)]
    pub kernel_release: Option<String>,
    /// sha256 of the agent in the initramfs.
    #[serde(default)]
    pub agent_sha256: Option<String>,
    /// Build time.
    #[serde(default)]
    pub built_at: Option<u64>,
}

/// Progress of a pull, reported phase by phase.
pub type PullProgress<'a> = &'a mut dyn FnMut(&str);

/// Static facts about the catalog.
#[derive(Debug)]
pub struct EnvironmentCatalog;

impl EnvironmentCatalog {
    /// Names of every environment, sorted.
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<_> = CATALOG.iter().map(|e| e.name).collect();
        names.sort();
        names
    }

    /// Fail unless `name` is in the catalog.
    pub fn require_known(name: &str) -> Result<()> {
        if CATALOG.iter().any(|e| e.name == name) {
            return Ok(());
        }
        Err(PyroError::invalid(format!(
            "unknown environment '{name}'; expected one of: {}",
            Self::names().join(", ")
        )))
    }

    /// Cache directory name of an environment (`debian:12` → `debian_12`).
    pub fn dir_name(name: &str) -> String {
        name.replace(':', "_")
    }
}

fn stale(path: &Path) -> bool {
    path.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > 3600)
}

/// Result of `pyro env prune`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PruneResult {
    /// Removed directories.
    pub deleted_environment_dirs: Vec<String>,
    /// How many.
    pub count: u64,
    /// Stale template builds removed (or stripped to the disk that clones still use).
    #[serde(default)]
    pub pruned_template_dirs: Vec<String>,
    /// Bytes freed by pruning templates.
    #[serde(default)]
    pub template_bytes_freed: u64,
}

impl Runtime {
    fn env_dir(&self, name: &str) -> PathBuf {
        self.config.cache_dir.join("environments").join(EnvironmentCatalog::dir_name(name))
    }

    /// Boot assets, if built.
    pub fn boot_assets(&self) -> Option<BootAssets> {
        let dir = self.config.cache_dir.join("boot");
        if !dir.join("vmlinux").exists() || !dir.join("initrd.img").exists() {
            return None;
        }
        let text = fs::read_to_string(dir.join("boot.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn env_info(&self, entry: &CatalogEntry) -> EnvironmentInfo {
        let dir = self.env_dir(entry.name);
        let built: Option<BuiltEnvironment> = fs::read_to_string(dir.join("environment.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let installed = built.is_some() && dir.join("rootfs.ext4").exists();
        let built = built.unwrap_or_default();
        EnvironmentInfo {
            name: entry.name.into(),
            description: entry.description.into(),
            distribution: "debian".into(),
            distribution_version: "12".into(),
            default_packages: entry.packages.iter().map(|p| p.to_string()).collect(),
            installed,
            install_dir: dir.display().to_string(),
            built_at: built.built_at,
            size_bytes: built.size_bytes,
            package_count: built.package_count,
            kernel_release: self.boot_assets().and_then(|b| b.kernel_release),
            installed_packages: None,
        }
    }

    /// Every environment, sorted by name.
    pub fn env_list(&self) -> Vec<EnvironmentInfo> {
        let mut all: Vec<_> = CATALOG.iter().map(|e| self.env_info(e)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// One environment.
    pub fn env_inspect(&self, name: &str) -> Result<EnvironmentInfo> {
        EnvironmentCatalog::require_known(name)?;
        let entry = CATALOG
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| PyroError::invalid(format!("unknown environment '{name}'")))?;
        let mut info = self.env_info(entry);
        if info.installed {
            let list = self.env_dir(name).join("packages.txt");
            info.installed_packages = fs::read_to_string(&list).ok().map(|text| {
                text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
            });
        }
        Ok(info)
    }

    /// Where the static guest agent is: `$PYRO_GUEST_AGENT`, the cache, or next to this
    /// executable.
    pub fn guest_agent_path(&self) -> Option<PathBuf> {
        let mut candidates = Vec::new();
        if let Some(p) = std::env::var_os("PYRO_GUEST_AGENT") {
            candidates.push(PathBuf::from(p));
        }
        candidates.push(self.config.cache_dir.join("bin/pyro-guest-agent"));
        if let Ok(exe) = std::env::current_exe() {
            if let Some(dir) = exe.parent() {
                candidates.push(dir.join("pyro-guest-agent"));
            }
        }
        candidates.into_iter().find(|p| p.is_file())
    }

    fn run_build_step(&self, args: &[&str], packages: Option<&[&str]>) -> Result<()> {
        let scripts = self.config.cache_dir.join("scripts");
        fs::create_dir_all(&scripts).map_err(|e| PyroError::io("could not create", &scripts, e))?;
        let script = scripts.join("guest-build.sh");
        let init = scripts.join("initramfs-init.sh");
        super::state::write_atomic(&script, BUILD_SCRIPT.as_bytes())?;
        super::state::write_atomic(&init, INIT_SCRIPT.as_bytes())?;
        // The build's output goes to our stderr: stdout may be an MCP stream.
        let stderr = std::io::stderr().as_fd().try_clone_to_owned().map_err(|e| {
            PyroError::io("could not duplicate stderr", Path::new("/dev/stderr"), e)
        })?;
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
            .map_err(|e| PyroError::io("could not run the image builder", &script, e))?;
        if !status.success() {
            return Err(PyroError::InvalidArgument(format!(
                "building guest assets failed ({status}) at step `{}`; see the messages above",
                args.first().copied().unwrap_or("?")
            )));
        }
        Ok(())
    }

    /// Build (or confirm) the boot assets and an environment image.
    pub fn env_pull(&self, name: &str, progress: PullProgress<'_>) -> Result<EnvironmentInfo> {
        // Phases also go to the call's watch (MCP progress).
        let watch = super::watch::current();
        let mut report = |line: &str| {
            if let Some(watch) = &watch {
                watch.phase(line);
            }
            progress(line);
        };
        let progress: PullProgress<'_> = &mut report;
        EnvironmentCatalog::require_known(name)?;
        let entry = CATALOG
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| PyroError::invalid(format!("unknown environment '{name}'")))?;
        let cache = self.config.cache_dir.display().to_string();
        progress(&format!("[pull] phase=host-deps environment={name}"));
        self.run_build_step(&["host-deps"], None)?;
        match self.guest_agent_path() {
            Some(agent) => {
                progress(&format!("[pull] phase=boot-assets agent={}", agent.display()));
                self.run_build_step(&["boot", &cache, &agent.display().to_string()], None)?;
            }
            None if self.boot_assets().is_some() => {
                progress("[pull] phase=boot-assets status=present (no agent binary to refresh it)");
            }
            None => {
                return Err(PyroError::invalid(
                    "the static guest agent binary was not found; run scripts/setup (or set PYRO_GUEST_AGENT)",
                ))
            }
        }
        progress(&format!("[pull] phase=rootfs environment={name}"));
        self.run_build_step(&["rootfs", &cache, name], Some(entry.packages))?;
        self.pull_template(name, progress);
        progress(&format!("[pull] phase=ready environment={name}"));
        self.env_inspect(name)
    }

    /// Make the default template of `name` (the sizing of a default workspace or
    /// `vm_run`, no network), so the first create clones. Best effort: a failure only
    /// means the first create boots cold.
    fn pull_template(&self, name: &str, progress: PullProgress<'_>) {
        let Ok(kind) = self.choose_backend(false) else { return };
        if !self.capabilities(kind).clones {
            return;
        }
        progress(&format!("[pull] phase=template environment={name}"));
        let spec = crate::backend::SandboxSpec {
            dir: self.config.cache_dir.clone(),
            environment: name.to_owned(),
            vcpu_count: pyro_contract::params::DEFAULT_VCPU_COUNT,
            mem_mib: pyro_contract::params::DEFAULT_MEM_MIB,
            network: crate::backend::NetworkSpec::default(),
            volume: None,
        };
        match self.backend(kind).prepare_template(&spec) {
            Ok(Some(key)) => progress(&format!("[pull] phase=template key={key} status=ready")),
            Ok(None) => {}
            Err(e) => progress(&format!("[pull] phase=template status=skipped reason={e}")),
        }
    }

    /// Remove partial builds and directories of unknown environments.
    pub fn env_prune(&self) -> Result<PruneResult> {
        let root = self.config.cache_dir.join("environments");
        let known: Vec<String> =
            CATALOG.iter().map(|e| EnvironmentCatalog::dir_name(e.name)).collect();
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
            removed.map_err(|e| PyroError::io("could not remove", &path, e))?;
            deleted.push(name);
        }
        deleted.sort();
        let (pruned_template_dirs, template_bytes_freed) =
            crate::backend::qemu::template::prune_stale(
                &self.config.cache_dir,
                &crate::backend::qemu::qemu_binary(),
            );
        Ok(PruneResult {
            count: deleted.len() as u64,
            deleted_environment_dirs: deleted,
            pruned_template_dirs,
            template_bytes_freed,
        })
    }
}
