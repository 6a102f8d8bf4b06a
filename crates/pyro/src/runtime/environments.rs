//! Environments: pyro's catalog of guest environments, and the runtime's view of them.
//!
//! The catalog (names, descriptions, packages) is pyro's; what is installed and where,
//! and how images are built, belong to the backend that boots them
//! ([`crate::backend::Backend::environments`]; QEMU:
//! [`crate::backend::qemu::environments`]). A runtime without such a backend lists the
//! catalog as not installed and cannot pull.

use super::error::{PyroError, Result};
use super::Runtime;
pub use crate::backend::environments::{BootAssets, PruneResult, PullProgress};
use crate::backend::environments::{EnvironmentError, EnvironmentStore};
use pyro_contract::results::EnvironmentInfo;

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

impl From<EnvironmentError> for PyroError {
    fn from(e: EnvironmentError) -> Self {
        match e {
            EnvironmentError::Invalid(message) => PyroError::InvalidArgument(message),
            EnvironmentError::Io { context, path, source } => PyroError::io(context, path, source),
        }
    }
}

fn catalog_entry(name: &str) -> Result<&'static CatalogEntry> {
    EnvironmentCatalog::require_known(name)?;
    CATALOG
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| PyroError::invalid(format!("unknown environment '{name}'")))
}

impl Runtime {
    /// The environment store of the first backend that has one.
    fn environment_store(&self) -> Option<&dyn EnvironmentStore> {
        self.all_backends().find_map(|b| b.environments())
    }

    /// Boot assets, if built.
    pub fn boot_assets(&self) -> Option<BootAssets> {
        self.environment_store().and_then(|store| store.boot_assets())
    }

    /// Where the static guest agent is: `$PYRO_GUEST_AGENT`, the cache, or next to this
    /// executable.
    pub fn guest_agent_path(&self) -> Option<std::path::PathBuf> {
        self.environment_store().and_then(|store| store.guest_agent())
    }

    fn env_info(&self, entry: &CatalogEntry, packages: bool) -> EnvironmentInfo {
        let mut info = EnvironmentInfo {
            name: entry.name.into(),
            description: entry.description.into(),
            distribution: "debian".into(),
            distribution_version: "12".into(),
            default_packages: entry.packages.iter().map(|p| p.to_string()).collect(),
            installed: false,
            install_dir: String::new(),
            built_at: None,
            size_bytes: None,
            package_count: None,
            kernel_release: None,
            installed_packages: None,
        };
        if let Some(store) = self.environment_store() {
            store.inspect(&mut info, packages);
        }
        info
    }

    /// Every environment, sorted by name.
    pub fn env_list(&self) -> Vec<EnvironmentInfo> {
        let mut all: Vec<_> = CATALOG.iter().map(|e| self.env_info(e, false)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// One environment.
    pub fn env_inspect(&self, name: &str) -> Result<EnvironmentInfo> {
        Ok(self.env_info(catalog_entry(name)?, true))
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
        let entry = catalog_entry(name)?;
        let store = self.environment_store().ok_or_else(|| PyroError::Unsupported {
            backend: "none".into(),
            operation: "env pull".into(),
            hint: "; this runtime has no backend that keeps environment images".into(),
        })?;
        store.pull(name, entry.packages, progress)?;
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
            volume_ready: None,
        };
        match self.backend(kind).prepare_template(&spec) {
            Ok(Some(key)) => progress(&format!("[pull] phase=template key={key} status=ready")),
            Ok(None) => {}
            Err(e) => progress(&format!("[pull] phase=template status=skipped reason={e}")),
        }
    }

    /// Remove partial builds and directories of unknown environments.
    pub fn env_prune(&self) -> Result<PruneResult> {
        let known: Vec<String> =
            CATALOG.iter().map(|e| EnvironmentCatalog::dir_name(e.name)).collect();
        match self.environment_store() {
            Some(store) => Ok(store.prune(&known)?),
            None => Ok(PruneResult::default()),
        }
    }
}
