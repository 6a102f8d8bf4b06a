//! The runtime: workspaces, one-shot VMs, environments and their state on disk.
//!
//! Every surface (SDK, MCP server, CLI) calls these blocking methods; the async SDK runs
//! them on tokio's blocking pool. The runtime talks to sandboxes only through the
//! [`Backend`] trait and the agent protocol, so each operation is written once.

mod agent;
pub mod daily_loop;
pub mod diff;
mod disk;
pub mod doctor;
pub mod environments;
mod error;
pub mod fault;
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
pub mod validate;
mod vm;
mod workspace;

pub use doctor::DoctorReport;
pub use environments::{EnvironmentCatalog, PullProgress};
pub use error::{PyroError, Result};
pub use vm::{NetworkInfo, ReapResult};
pub use workspace::{SnapshotDeleteResult, SnapshotInfo, SnapshotList, SnapshotResult};

use crate::backend::host_compat::HostCompatBackend;
use crate::backend::qemu::QemuBackend;
use crate::backend::{Backend, BackendKind};
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
    qemu: Arc<dyn Backend>,
    host: Arc<dyn Backend>,
    vms: Mutex<vm::VmTable>,
    channels: Arc<pool::ChannelPool>,
}

impl Runtime {
    /// A runtime with the default backends.
    pub fn new(config: RuntimeConfig) -> Self {
        let qemu: Arc<dyn Backend> = Arc::new(QemuBackend::new(config.cache_dir.clone()));
        let host: Arc<dyn Backend> = Arc::new(HostCompatBackend::new());
        Runtime {
            config,
            qemu,
            host,
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

    fn backend(&self, kind: BackendKind) -> &Arc<dyn Backend> {
        match kind {
            BackendKind::Qemu => &self.qemu,
            BackendKind::HostCompat => &self.host,
        }
    }

    /// Choose the backend for a new sandbox: the guest when it is available, host
    /// execution only with the explicit opt-in, otherwise fail closed.
    ///
    /// `PYRO_BACKEND=host_compat` turns the guest backend off (for tests and hosts without
    /// QEMU); it still needs the opt-in.
    fn choose_backend(&self, allow_host_compat: bool) -> Result<BackendKind> {
        let forced_host = std::env::var("PYRO_BACKEND").is_ok_and(|v| v == "host_compat");
        let guest = if forced_host {
            Err("PYRO_BACKEND=host_compat turns the guest backend off".to_string())
        } else {
            self.qemu.available()
        };
        match guest {
            Ok(()) => Ok(BackendKind::Qemu),
            Err(_) if allow_host_compat => Ok(BackendKind::HostCompat),
            Err(reason) => Err(PyroError::GuestUnavailable { reason }),
        }
    }
}
