//! Backends: what actually runs a sandbox.
//!
//! A backend boots (or prepares) one sandbox per directory and hands out
//! [`AgentChannel`]s that speak the [`pyro_protocol`] to the agent inside it. The
//! runtime composes every workspace operation (exec, files, diff, export, reset, ...)
//! from protocol requests, so backends stay small and all surfaces behave the same.
//!
//! - [`qemu::QemuBackend`]: the default. A QEMU microVM per sandbox, detached from the
//!   process that started it (pidfile, QMP and agent sockets live in the sandbox dir),
//!   so every later CLI call or MCP request reconnects to the same guest.
//! - [`host_compat::HostCompatBackend`]: runs the agent's request handler in-process
//!   against a host directory. Only used when the caller explicitly allows it, and
//!   every result says `execution_mode: host_compat`.

pub mod environments;
pub mod host_compat;
pub mod limits;
// Signals and file locks on QEMU processes need a few libc calls, each with a SAFETY note.
#[allow(unsafe_code)]
pub mod qemu;

use pyro_contract::results::{Accel, ExecutionMode};
use pyro_protocol::{Request, Response};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which backend runs a sandbox. Stored in each workspace record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// QEMU guest VM.
    Qemu,
    /// Host directory (explicit opt-in only).
    HostCompat,
}

impl BackendKind {
    /// Stable name.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Qemu => "qemu",
            BackendKind::HostCompat => "host_compat",
        }
    }
}

/// What a backend can do. The runtime asks this instead of branching on
/// [`BackendKind`], so a new backend only declares its abilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Where its commands run (reported in every result).
    pub execution_mode: ExecutionMode,
    /// Whether it can run sandboxes isolated from the host: the runtime chooses such a
    /// backend by default, and one that is not only with the caller's explicit opt-in
    /// (`allow_host_compat`).
    pub isolated: bool,
    /// Commands run (`exec`).
    pub exec: bool,
    /// Secrets can be installed in the sandbox (a guest tmpfs, never the host).
    pub secrets: bool,
    /// Interactive shells on a PTY.
    pub shells: bool,
    /// Long-running named services.
    pub services: bool,
    /// A guest network (outbound user-mode networking).
    pub network: bool,
    /// Host ports forwarded into the sandbox ([`Backend::publish_port`]).
    pub published_ports: bool,
    /// The root disk can be exported as a raw image ([`Backend::export_raw_disk`]).
    pub raw_disk: bool,
    /// Fresh sandboxes can be cloned from templates ([`Backend::prepare_template`]).
    pub clones: bool,
    /// `/workspace` can be a volume of disk images ([`SandboxSpec::volume`]): the runtime
    /// seeds it on the host and takes snapshots and resets as disk layers.
    pub volumes: bool,
    /// Working directory of one-shot VM commands (`vm_exec`, `vm_run`).
    pub vm_exec_cwd: &'static str,
}

impl Capabilities {
    /// Everything off except exec in `/workspace`, in `mode`; turn on what the
    /// backend has with the builder-style setters below.
    pub const fn minimal(execution_mode: ExecutionMode) -> Self {
        Capabilities {
            execution_mode,
            isolated: false,
            exec: true,
            secrets: false,
            shells: false,
            services: false,
            network: false,
            published_ports: false,
            raw_disk: false,
            clones: false,
            volumes: false,
            vm_exec_cwd: "/workspace",
        }
    }

    /// A real guest with everything pyro's guest agent serves: secrets, shells,
    /// services, network, published ports, raw disk export, clones and volumes, and
    /// one-shot commands in `/root`.
    pub const fn full_guest() -> Self {
        Capabilities {
            execution_mode: ExecutionMode::Guest,
            isolated: true,
            exec: true,
            secrets: true,
            shells: true,
            services: true,
            network: true,
            published_ports: true,
            raw_disk: true,
            clones: true,
            volumes: true,
            vm_exec_cwd: "/root",
        }
    }

    /// With `isolated` set to `on`.
    pub const fn isolated(mut self, on: bool) -> Self {
        self.isolated = on;
        self
    }

    /// With `secrets` set to `on`.
    pub const fn secrets(mut self, on: bool) -> Self {
        self.secrets = on;
        self
    }

    /// With `shells` set to `on`.
    pub const fn shells(mut self, on: bool) -> Self {
        self.shells = on;
        self
    }

    /// With `network` set to `on`.
    pub const fn network(mut self, on: bool) -> Self {
        self.network = on;
        self
    }

    /// With `published_ports` set to `on`.
    pub const fn published_ports(mut self, on: bool) -> Self {
        self.published_ports = on;
        self
    }

    /// With `services` set to `on`.
    pub const fn services(mut self, on: bool) -> Self {
        self.services = on;
        self
    }
}

/// Network of a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkSpec {
    /// Give the guest a NIC with outbound (user-mode) networking.
    pub enabled: bool,
    /// `(host_port, guest_port)` pairs forwarded from 127.0.0.1 on the host.
    pub published_ports: Vec<(u16, u16)>,
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// Directory owned by this sandbox (created by the runtime, removed on delete).
    pub dir: PathBuf,
    /// Environment name, e.g. `debian:12`.
    pub environment: String,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// Network.
    pub network: NetworkSpec,
    /// The workspace volume to attach and mount at `/workspace`; `None`: the guest gets
    /// placeholder disks it never mounts, and `/workspace` stays on its root disk
    /// (one-shot VMs). Backends without disks ignore it.
    pub volume: Option<VolumeSpec>,
    /// Set while the volume's baseline is still being written (a seed's `mke2fs` runs
    /// while the guest boots): the backend waits on it before the guest mounts the
    /// volume. `None`: the images are complete.
    pub volume_ready: Option<VolumeReady>,
}

/// Waits until a workspace volume's images are complete, returning why they could not
/// be made. May be called more than once; every call after the first returns at once.
#[derive(Clone)]
pub struct VolumeReady(std::sync::Arc<dyn Fn() -> Result<(), BackendError> + Send + Sync>);

impl VolumeReady {
    /// A waiter that runs `wait`.
    pub fn new(wait: impl Fn() -> Result<(), BackendError> + Send + Sync + 'static) -> Self {
        VolumeReady(std::sync::Arc::new(wait))
    }

    /// Block until the images are complete.
    pub fn wait(&self) -> Result<(), BackendError> {
        (self.0)()
    }
}

impl Debug for VolumeReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VolumeReady")
    }
}

/// The disk chain of a workspace volume (see docs/architecture.md, "Workspace volume"):
/// an ext4 file system whose bottom is the baseline image, then frozen qcow2 layers (the
/// named snapshots), then the writable qcow2 overlay the guest mounts at `/workspace`.
/// Every image has the same virtual size ([`qemu::volume::volume_size_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// The baseline image (raw ext4): bottom of the chain, and the read-only disk the
    /// guest mounts at `/run/pyro-baseline`.
    pub baseline: PathBuf,
    /// Frozen qcow2 layers above the baseline, bottom first.
    pub layers: Vec<PathBuf>,
    /// The writable qcow2 overlay on top (backed by the last layer, else the baseline).
    pub active: PathBuf,
    /// The paths (relative to `/workspace`) that may differ from the baseline in this
    /// chain, when the runtime knows them (empty right after create and after a reset
    /// to the baseline; the set taken with a snapshot on a reset onto it); `None`:
    /// unknown. Handed to the guest agent's change tracking
    /// ([`pyro_protocol::Request::MountWorkspace`]), so the first diff needs no full walk.
    pub known_changes: Option<Vec<String>>,
}

/// Facts about a booted sandbox, recorded by the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    /// Acceleration used.
    pub accel: Accel,
    /// Why this acceleration (e.g. "kvm_pvm is not hardware KVM").
    pub accel_reason: String,
    /// Where commands run.
    pub execution_mode: ExecutionMode,
    /// Guest `uname -r`, from the agent's hello.
    pub guest_kernel: Option<String>,
    /// Environment build identifier.
    pub environment_version: Option<String>,
    /// Guest address when networked.
    pub guest_ip: Option<String>,
    /// Extra details (boot time, pid, ...), shown in `metadata`.
    pub metadata: BTreeMap<String, String>,
}

/// Errors of backends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// A required asset (QEMU, kernel, image) is missing.
    #[error("{what} is missing ({path}); run `pyro doctor` to see how to install it")]
    MissingAsset {
        /// What is missing.
        what: String,
        /// Where it was expected.
        path: PathBuf,
    },
    /// The guest did not come up.
    #[error("guest failed to boot: {0}")]
    Boot(String),
    /// The host has too little free disk space for a new guest disk.
    #[error(
        "only {free_mib} MiB free on the file system of {path}; pyro needs at least {needed_mib} MiB free to create a guest disk (it grows up to its image's size): free some space, or lower the margin with PYRO_MIN_FREE_MIB"
    )]
    NoSpace {
        /// The sandbox directory.
        path: PathBuf,
        /// Free MiB (for unprivileged users).
        free_mib: u64,
        /// The margin.
        needed_mib: u64,
    },
    /// The sandbox is not running.
    #[error("the sandbox is not running")]
    NotRunning,
    /// The guest (or QEMU) died or closed the channel during a request.
    #[error(
        "the guest stopped responding during the request (it may have crashed or been killed): {0}"
    )]
    GuestDied(String),
    /// A request took longer than its deadline.
    #[error("the guest did not answer within {0:?}")]
    Timeout(Duration),
    /// Protocol violation.
    #[error("agent protocol error: {0}")]
    Protocol(String),
    /// The guest sent something that is not a valid answer (too long, not JSON, a flood,
    /// a forged size). The guest is untrusted: its workspace's agent is unhealthy.
    #[error(
        "the guest agent sent an invalid answer: {0} (something in the guest broke the protocol; \
         stop and start it for a fresh agent)"
    )]
    InvalidAnswer(String),
    /// The backend cannot do this.
    #[error("{operation} is not supported by backend {backend}")]
    Unsupported {
        /// Backend name.
        backend: &'static str,
        /// Operation.
        operation: String,
    },
    /// I/O on a host path.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

impl BackendError {
    /// Wrap an I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BackendError::Io { context: context.into(), source }
    }
}

/// A connection to the agent of one sandbox.
pub trait AgentChannel: Send {
    /// Send one request and wait for its answer, at most `timeout`.
    fn call(&mut self, request: Request, timeout: Duration) -> Result<Response, BackendError>;

    /// Whether the agent behind this channel named `capability` in its hello (opening
    /// the session if needed). False when unknown: callers then use what every agent
    /// serves.
    fn supports(&mut self, _capability: &str) -> bool {
        false
    }
}

/// A way to run sandboxes.
pub trait Backend: Send + Sync + Debug {
    /// Which backend this is (stored in each record to find it again).
    fn kind(&self) -> BackendKind;

    /// What it can do.
    fn capabilities(&self) -> Capabilities;

    /// The store of the environments it boots (images, boot assets), when it keeps
    /// one. The default is none (it boots from nothing pyro builds).
    fn environments(&self) -> Option<&dyn environments::EnvironmentStore> {
        None
    }

    /// Whether this backend can boot sandboxes on this host right now; `Err` says why not
    /// and what to do.
    fn available(&self) -> Result<(), String>;

    /// Make a fresh sandbox in `spec.dir` from the environment and start it. Any
    /// previous disk in that directory is discarded.
    fn create(&self, spec: &SandboxSpec) -> Result<SandboxInfo, BackendError>;

    /// Start an existing, stopped sandbox with its disk as it was. Starting a running
    /// sandbox is a no-op that returns its info.
    fn start(&self, spec: &SandboxSpec) -> Result<SandboxInfo, BackendError>;

    /// Stop the sandbox, flushing its disk first when the guest still answers. Stopping a
    /// stopped sandbox is a no-op.
    fn stop(&self, dir: &Path) -> Result<(), BackendError>;

    /// Whether the sandbox is running (the truth, e.g. after QEMU was killed).
    fn is_running(&self, dir: &Path) -> bool;

    /// Stop the sandbox and remove everything the backend put in `dir`.
    fn destroy(&self, dir: &Path) -> Result<(), BackendError>;

    /// Connect to the agent of a running sandbox.
    fn connect(&self, dir: &Path) -> Result<Box<dyn AgentChannel>, BackendError>;

    /// An identity of the running guest in `dir` that changes when it is restarted (QEMU:
    /// its pid), so a kept session is only reused with the guest it was opened to.
    /// `None` (the default) means sessions are not kept.
    fn instance(&self, dir: &Path) -> Option<u64> {
        let _ = dir;
        None
    }

    /// Forward TCP `127.0.0.1:<host_port>` on the host (a free port of at least 1025 when
    /// `None`) to `guest_port` in the running sandbox; returns the host port. Forwards
    /// end with the sandbox. Backends without a guest network (the default) answer
    /// [`BackendError::Unsupported`].
    fn publish_port(
        &self,
        dir: &Path,
        host_port: Option<u16>,
        guest_port: u16,
    ) -> Result<u16, BackendError> {
        let _ = (dir, host_port, guest_port);
        Err(BackendError::Unsupported {
            backend: self.kind().name(),
            operation: "published ports".into(),
        })
    }

    /// Remove the forward of host port `host_port` made by [`Backend::publish_port`].
    fn unpublish_port(&self, dir: &Path, host_port: u16) -> Result<(), BackendError> {
        let _ = (dir, host_port);
        Err(BackendError::Unsupported {
            backend: self.kind().name(),
            operation: "published ports".into(),
        })
    }

    /// The forwards the running sandbox has now, as `(host_port, guest_port)` pairs.
    /// The default (no guest network) is none.
    fn published_ports(&self, dir: &Path) -> Result<Vec<(u16, u16)>, BackendError> {
        let _ = dir;
        Ok(Vec::new())
    }

    /// Make the fresh qcow2 `overlay` the writable top of the running sandbox's workspace
    /// volume; the former top becomes its read-only backing (a snapshot layer). The
    /// caller froze the guest's file system. Backends without volumes (the default)
    /// answer [`BackendError::Unsupported`].
    fn snapshot_volume(&self, dir: &Path, overlay: &Path) -> Result<(), BackendError> {
        let _ = (dir, overlay);
        Err(BackendError::Unsupported {
            backend: self.kind().name(),
            operation: "volume snapshots".into(),
        })
    }

    /// Copy into the running volume image `top` the data of its backing chain above
    /// `base`, so the layers between are no longer used. The default answers
    /// [`BackendError::Unsupported`].
    fn merge_volume(&self, dir: &Path, top: &Path, base: &Path) -> Result<(), BackendError> {
        let _ = (dir, top, base);
        Err(BackendError::Unsupported {
            backend: self.kind().name(),
            operation: "merging volume layers".into(),
        })
    }

    /// Make sure the template fresh sandboxes of `spec` are cloned from exists (made now
    /// if missing; `spec.dir` is not used). Returns its key, or `None` for backends
    /// without templates (the default).
    fn prepare_template(&self, spec: &SandboxSpec) -> Result<Option<String>, BackendError> {
        let _ = spec;
        Ok(None)
    }

    /// How the running sandbox in `dir` is confined (metadata entries, e.g.
    /// `confinement_seccomp`); empty when the backend has nothing to say.
    fn confinement(&self, dir: &Path) -> BTreeMap<String, String> {
        let _ = dir;
        BTreeMap::new()
    }

    /// Why the sandbox in `dir` stopped when nobody stopped it (e.g. "QEMU was killed by
    /// SIGSYS: ..."), when the backend knows.
    fn exit_reason(&self, dir: &Path) -> Option<String> {
        let _ = dir;
        None
    }

    /// Write the root disk of the stopped sandbox in `dir` to `output` as a raw file
    /// system image (`output` must not exist yet). Backends without a disk image (the
    /// default) answer [`BackendError::Unsupported`].
    fn export_raw_disk(&self, dir: &Path, output: &Path) -> Result<(), BackendError> {
        let _ = (dir, output);
        Err(BackendError::Unsupported {
            backend: self.kind().name(),
            operation: "exporting the root disk".into(),
        })
    }
}
