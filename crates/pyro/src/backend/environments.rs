//! The environments a backend boots from: where its images and boot assets are, how
//! they are built and pruned. The catalog (which environments exist, their packages)
//! belongs to pyro ([`crate::runtime::EnvironmentCatalog`]); what is installed, and
//! where, belongs to the backend that uses it ([`super::Backend::environments`]).

use pyro_contract::results::EnvironmentInfo;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::path::PathBuf;

/// Progress of a pull, reported phase by phase.
pub type PullProgress<'a> = &'a mut dyn FnMut(&str);

/// What the boot assets' `boot.json` says.
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

/// Result of `pyro env prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Why building or pruning environments failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvironmentError {
    /// Something the caller can fix (a failed build step, a missing agent binary); the
    /// message says what to do.
    #[error("{0}")]
    Invalid(String),
    /// I/O on a host path.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: String,
        /// The path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Where and how a backend keeps the environments it boots.
pub trait EnvironmentStore: Send + Sync + Debug {
    /// Fill in what is installed of `info.name` (installed, install dir, build facts,
    /// kernel release; with `packages`, the installed package list). The catalog's
    /// fields (description, default packages) are already set.
    fn inspect(&self, info: &mut EnvironmentInfo, packages: bool);

    /// The boot assets, when built.
    fn boot_assets(&self) -> Option<BootAssets>;

    /// The static guest agent binary that builds put into the boot assets.
    fn guest_agent(&self) -> Option<PathBuf>;

    /// Build (or confirm) the boot assets and the image of environment `name` with
    /// `packages`, reporting phases to `progress`.
    fn pull(
        &self,
        name: &str,
        packages: &[&str],
        progress: PullProgress<'_>,
    ) -> Result<(), EnvironmentError>;

    /// Remove partial builds, directories of environments not named in `known` (their
    /// directory names), and stale templates.
    fn prune(&self, known: &[String]) -> Result<PruneResult, EnvironmentError>;
}
