//! The runtime: workspaces, one-shot VMs, environments and their state on disk.
//!
//! Every surface (SDK, MCP server, CLI) calls these blocking methods; the async SDK runs
//! them on tokio's blocking pool. The runtime talks to sandboxes only through the
//! [`Backend`] trait and the agent protocol, so each operation is written once.

mod agent;
pub mod change_sets;
pub mod daily_loop;
pub mod diff;
mod disk;
pub mod doctor;
pub mod environments;
mod error;
mod exec_stream;
pub mod fault;
mod missing;
pub mod patch;
mod pool;
mod review;
mod secrets;
pub mod seed;
mod services;
mod shells;
pub mod state;
pub mod sweep;
pub mod terminal;
pub mod transfer;
pub mod tree_diff;
pub mod validate;
mod vm;
pub mod volume;
mod volume_snapshots;
pub mod watch;
mod workspace;

pub use doctor::DoctorReport;
pub use environments::{EnvironmentCatalog, PullProgress};
pub use error::{PyroError, Result};
pub use pyro_contract::results::{NetworkInfo, ReapResult};
pub use pyro_contract::results::{
    SnapshotDeleteResult, SnapshotInfo, SnapshotList, SnapshotResult,
};

use crate::backend::host_compat::HostCompatBackend;
use crate::backend::qemu::QemuBackend;
use crate::backend::{Backend, BackendKind, Capabilities};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Where pyro keeps things.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Workspaces and their disks (`$PYRO_STATE_DIR`, default `~/.local/share/pyro`).
    pub state_dir: PathBuf,
    /// Kernel, initramfs and environment images (`$PYRO_CACHE_DIR`, default `~/.cache/pyro`).
    pub cache_dir: PathBuf,
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"))
}

impl RuntimeConfig {
    /// Read `PYRO_STATE_DIR` and `PYRO_CACHE_DIR`, falling back to the XDG-style defaults.
    pub fn from_env() -> Self {
        let state_dir = std::env::var_os("PYRO_STATE_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home().join(".local/share/pyro"));
        let cache_dir = std::env::var_os("PYRO_CACHE_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| home().join(".cache/pyro"));
        RuntimeConfig { state_dir, cache_dir }
    }
}

/// One-shot VMs live only as long as the runtime that created them.
impl Drop for Runtime {
    fn drop(&mut self) {
        self.delete_all_vms();
    }
}

/// The pyro runtime. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct Runtime {
    config: RuntimeConfig,
    /// The backends it runs sandboxes with, in order of preference.
    backends: Vec<Arc<dyn Backend>>,
    vms: Mutex<vm::VmTable>,
    channels: Arc<pool::ChannelPool>,
}

impl Runtime {
    /// A runtime with the default backends: QEMU guests over the cache in `config`,
    /// and the explicit `host_compat` fallback.
    pub fn new(config: RuntimeConfig) -> Self {
        let backends: Vec<Arc<dyn Backend>> = vec![
            Arc::new(QemuBackend::new(config.cache_dir.clone())),
            Arc::new(HostCompatBackend::new()),
        ];
        Self::with_backends(config, backends)
    }

    /// A runtime over the given backends, in order of preference (at most one per
    /// [`BackendKind`]; a later one of the same kind is ignored). A new sandbox gets
    /// the first isolated backend that is available ([`Capabilities::isolated`]), or
    /// with `allow_host_compat` the first one that is not. Records of a kind no given
    /// backend has fail with a clear error.
    pub fn with_backends(
        config: RuntimeConfig,
        backends: impl IntoIterator<Item = Arc<dyn Backend>>,
    ) -> Self {
        let mut unique: Vec<Arc<dyn Backend>> = Vec::new();
        for backend in backends {
            if !unique.iter().any(|b| b.kind() == backend.kind()) {
                unique.push(backend);
            }
        }
        Runtime {
            config,
            backends: unique,
            vms: Mutex::new(vm::VmTable::default()),
            channels: Arc::default(),
        }
    }

    /// A runtime configured from the environment.
    pub fn from_env() -> Self {
        Self::new(RuntimeConfig::from_env())
    }

    /// Its configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Delete expired one-shot VMs and workspaces (stopping their VMs); returns how
    /// many were removed. The MCP server calls this periodically; every other call
    /// enforces TTLs lazily on what it touches.
    pub fn reap_expired(&self) -> usize {
        let vms = self.vm_reap_expired().map(|r| r.count as usize).unwrap_or(0);
        vms + self.reap_expired_workspaces().len()
    }

    /// The backend of `kind`; one that refuses everything when this runtime has none.
    fn backend(&self, kind: BackendKind) -> &Arc<dyn Backend> {
        static MISSING: std::sync::OnceLock<[Arc<dyn Backend>; 2]> = std::sync::OnceLock::new();
        if let Some(backend) = self.backends.iter().find(|b| b.kind() == kind) {
            return backend;
        }
        let missing = MISSING.get_or_init(|| {
            [
                Arc::new(missing::MissingBackend(BackendKind::Qemu)),
                Arc::new(missing::MissingBackend(BackendKind::HostCompat)),
            ]
        });
        match kind {
            BackendKind::Qemu => &missing[0],
            BackendKind::HostCompat => &missing[1],
        }
    }

    /// What the backend of `kind` can do.
    fn capabilities(&self, kind: BackendKind) -> Capabilities {
        self.backend(kind).capabilities()
    }

    /// Every backend of this runtime (for sweeps that must look at all of them).
    fn all_backends(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        self.backends.iter()
    }

    /// Choose the backend for a new sandbox: the first isolated one that is
    /// available, host execution only with the explicit opt-in, otherwise fail closed.
    ///
    /// `PYRO_BACKEND=host_compat` turns the isolated backends off (for tests and hosts
    /// without QEMU); host execution still needs the opt-in.
    fn choose_backend(&self, allow_host_compat: bool) -> Result<BackendKind> {
        let forced_host = std::env::var("PYRO_BACKEND").is_ok_and(|v| v == "host_compat");
        let mut reasons = Vec::new();
        for backend in self.backends.iter().filter(|b| b.capabilities().isolated) {
            if forced_host {
                reasons.push("PYRO_BACKEND=host_compat turns the guest backend off".to_string());
                break;
            }
            match backend.available() {
                Ok(()) => return Ok(backend.kind()),
                Err(reason) => reasons.push(reason),
            }
        }
        if allow_host_compat {
            if let Some(host) = self.backends.iter().find(|b| !b.capabilities().isolated) {
                return Ok(host.kind());
            }
        }
        if reasons.is_empty() {
            reasons.push("this runtime has no guest backend".to_string());
        }
        Err(PyroError::GuestUnavailable { reason: reasons.join("; ") })
    }
}
