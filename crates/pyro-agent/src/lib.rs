//! The sandbox side of pyro's host↔agent protocol ([`pyro_protocol`]).
//!
//! # Overview
//!
//! [`Sandbox`] performs one protocol [`Request`] at a time ([`Sandbox::handle`]) against
//! a workspace directory: the guest path `/workspace` and everything below it map to
//! that directory. It runs in two places:
//!
//! - inside the guest, in the `pyro-guest-agent` binary ([`Sandbox::guest`]): the
//!   workspace directory is `/workspace` itself, exec may use any working directory and
//!   inherits the agent's environment, and `shutdown` powers the VM off;
//! - on the host, in pyro's explicit `host_compat` backend ([`Sandbox::host_compat`]):
//!   the workspace is a host directory, exec must run inside it with a clean
//!   environment, and `shutdown` is unsupported.
//!
//! [`serve`] / [`FrameServer`] run the line-framed request loop over any reader and
//! writer. [`archive`] holds the tar code the host also uses on its own side.
//!
//! # Invariants
//!
//! - Request paths are absolute guest paths under `/workspace`; `..`, paths elsewhere
//!   and symlinks in intermediate components are refused ([`paths`]). Read and write
//!   refuse a final symlink too; list and export report it as a link; delete removes
//!   the link itself. Nothing ever follows a symlink out of the workspace.
//! - [`Sandbox::handle`] does not panic on any input: every failure becomes
//!   [`Response::Error`] with a [`SandboxError::kind`] and a message naming the path.
//!
//! # Example
//!
//! ```
//! use pyro_agent::Sandbox;
//! use pyro_protocol::{Request, Response};
//!
//! let dir = tempfile::tempdir()?;
//! let sandbox = Sandbox::host_compat(dir.path());
//! let response = sandbox.handle(Request::WriteFile {
//!     path: "/workspace/notes/hello.txt".into(),
//!     data_b64: "aGk=".into(), // "hi"
//! });
//! assert!(matches!(response, Response::Written { bytes_written: 2 }));
//! assert_eq!(std::fs::read(dir.path().join("notes/hello.txt"))?, b"hi");
//!
//! let escape = sandbox.handle(Request::ReadFile { path: "/workspace/../etc/passwd".into(), max_bytes: 10 });
//! assert!(matches!(escape, Response::Error { kind: pyro_protocol::ErrorKind::PathEscape, .. }));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Limitations
//!
//! - Requests and answers are whole messages: file contents, archives and captured
//!   output are held in memory and sent as one base64 line.
//! - Names that are not valid UTF-8 are listed lossily (they cannot be addressed).
//! - Path checks and their use are separate system calls (see [`paths`]).
#![deny(missing_docs)]

pub mod archive;
mod change_watch;
mod error;
mod exec;
mod exec_streams;
mod files;
pub mod login_env;
pub mod paths;
pub mod port_wake;
mod pty;
pub mod secrets;
mod serve;
pub mod services;
pub mod shells;
pub mod sys;
mod transfers;
mod tree_diff;
pub mod volume;

pub use error::SandboxError;
pub use exec::{PIPE_GRACE, TIMEOUT_EXIT_CODE};
pub use serve::{serve, FrameServer, InFlight};

use base64::Engine as _;
use pyro_protocol::{ExecRequest, Request, Response, PROTOCOL_VERSION};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What an archive of the tree at `root` would count: entries below it (directories,
/// regular files, symlinks) and regular-file bytes, never following a symlink or
/// leaving its file system. The host counts a seed's tree with it, the agent
/// `/workspace` ([`Request::TreeTotals`]), so both count alike.
pub fn tree_totals(root: &Path) -> Result<pyro_protocol::TreeTotals, SandboxError> {
    tree_diff::totals::count_tree(root)
}

/// Version of this agent (the crate version), reported in `hello`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Capabilities reported in `hello`.
pub const CAPABILITIES: &[&str] = &[
    "exec",
    "files",
    "tar",
    "secrets",
    "shells",
    "services",
    "clone_fixup",
    "tar_stream",
    "tree_diff",
    "exec_stream",
    pyro_protocol::VOLUME_CAPABILITY,
    pyro_protocol::CHANGE_WATCH_CAPABILITY,
    pyro_protocol::TREE_TOTALS_CAPABILITY,
];

/// The plan of `req` in `cwd` with `base_env`.
fn exec_plan<'a>(
    req: &'a ExecRequest,
    cwd: &'a Path,
    base_env: exec::BaseEnv,
) -> exec::ExecPlan<'a> {
    exec::ExecPlan {
        command: &req.command,
        cwd,
        base_env,
        env: &req.env,
        timeout: Duration::from_millis(req.timeout_ms),
        max_output_bytes: usize::try_from(req.max_output_bytes).unwrap_or(usize::MAX),
    }
}

/// Where a [`Sandbox`] runs, which decides the few behaviours that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SandboxMode {
    /// Inside the guest VM: any absolute exec cwd, inherited environment, shutdown
    /// powers off.
    Guest,
    /// On the host for the `host_compat` backend: exec cwd must be inside the workspace,
    /// clean environment (PATH, HOME = workspace dir, LANG=C.UTF-8, plus the request's),
    /// shutdown unsupported.
    HostCompat,
}

/// Performs protocol requests against one workspace directory. Cheap to share: wrap it
/// in an `Arc` and call [`Sandbox::handle`] from several threads at once.
#[derive(Debug)]
pub struct Sandbox {
    workspace_dir: PathBuf,
    mode: SandboxMode,
    power_off: bool,
    shells: shells::Shells,
    services: services::Services,
    login_env: login_env::LoginEnv,
    transfers: transfers::Transfers,
    baseline_dir: Option<PathBuf>,
    execs: exec_streams::ExecStreams,
    /// The change tracking of `/workspace`, from the mount that started it.
    change_watch: std::sync::Mutex<Option<std::sync::Arc<change_watch::ChangeWatch>>>,
}

impl Sandbox {
    /// A [`SandboxMode::HostCompat`] sandbox over `workspace_dir` (the restrictive
    /// mode, as used by the host backend); same as [`Sandbox::host_compat`].
    pub fn new(workspace_dir: PathBuf) -> Self {
        Sandbox::host_compat(workspace_dir)
    }

    /// A sandbox for use inside the guest (`workspace_dir` is normally `/workspace`).
    pub fn guest(workspace_dir: impl Into<PathBuf>) -> Self {
        Sandbox {
            workspace_dir: workspace_dir.into(),
            mode: SandboxMode::Guest,
            power_off: true,
            shells: shells::Shells::default(),
            services: services::Services::default(),
            login_env: login_env::LoginEnv::default(),
            // On the guest's root disk, not the /run or /tmp tmpfs: spools never sit
            // in guest memory.
            transfers: transfers::Transfers::new(PathBuf::from("/var/tmp/pyro-transfers")),
            baseline_dir: Some(PathBuf::from(pyro_protocol::BASELINE_MOUNT)),
            execs: exec_streams::ExecStreams::default(),
            change_watch: Default::default(),
        }
    }

    /// A sandbox for the host's `host_compat` backend over a host directory.
    pub fn host_compat(workspace_dir: impl Into<PathBuf>) -> Self {
        Sandbox {
            workspace_dir: workspace_dir.into(),
            mode: SandboxMode::HostCompat,
            power_off: false,
            shells: shells::Shells::default(),
            services: services::Services::default(),
            login_env: login_env::LoginEnv::default(),
            transfers: transfers::Transfers::new(std::env::temp_dir()),
            baseline_dir: None,
            execs: exec_streams::ExecStreams::default(),
            change_watch: Default::default(),
        }
    }

    /// Where streamed transfers spool their archives (default `/var/tmp/pyro-transfers`
    /// in the guest, the host's temp directory for `host_compat`).
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.transfers = transfers::Transfers::new(dir.into());
        self
    }

    /// The directory that [`pyro_protocol::BASELINE_MOUNT`] names in a tree diff (in the
    /// guest that path itself; a `host_compat` sandbox has none unless given one).
    pub fn with_baseline_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.baseline_dir = Some(dir.into());
        self
    }

    /// Whether a `shutdown` in guest mode really powers the machine off after answering
    /// (default true; tests turn it off).
    pub fn with_power_off(mut self, power_off: bool) -> Self {
        self.power_off = power_off && self.mode == SandboxMode::Guest;
        self
    }

    /// The mode.
    pub fn mode(&self) -> SandboxMode {
        self.mode
    }

    /// The directory backing `/workspace`.
    pub fn workspace_dir(&self) -> &Path {
        &self.workspace_dir
    }

    /// Map a guest path to its backing path, lexically (no file system access): refuses
    /// relative paths, `..` and paths outside `/workspace`.
    pub fn host_path(&self, guest: &str) -> Result<PathBuf, SandboxError> {
        Ok(paths::WorkspacePath::parse(guest)?.host_path(&self.workspace_dir))
    }

    /// Map and check a guest path against the file system (see [`paths::resolve`]).
    pub fn resolve(&self, guest: &str) -> Result<paths::ResolvedPath, SandboxError> {
        paths::resolve(&self.workspace_dir, &paths::WorkspacePath::parse(guest)?)
    }

    /// Perform one request. Never panics on input; failures become [`Response::Error`].
    pub fn handle(&self, request: Request) -> Response {
        self.try_handle(request)
            .unwrap_or_else(|err| Response::Error { kind: err.kind(), message: err.to_string() })
    }

    /// Perform one request, returning failures as [`SandboxError`].
    pub fn try_handle(&self, request: Request) -> Result<Response, SandboxError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let dir = self.workspace_dir.as_path();
        Ok(match request {
            Request::Hello { .. } => self.hello(),
            Request::Exec(exec) => Response::Exec(self.exec(&exec)?),
            Request::ExecStart(start) => {
                let (cwd, base_env) = self.exec_setting(&start.exec)?;
                let plan = exec_plan(&start.exec, &cwd, base_env);
                Response::ExecChunk(self.execs.start(&start.exec_id, &plan, &start.wait)?)
            }
            Request::ExecRead(read) => Response::ExecChunk(self.execs.read(&read)?),
            Request::ExecKill { exec_id } => {
                self.execs.kill(&exec_id)?;
                Response::Done
            }
            Request::ListFiles { path, recursive } => {
                Response::Files { entries: files::list(dir, &path, recursive)? }
            }
            Request::ReadFile { path, max_bytes } => {
                let data = files::read(dir, &path, max_bytes)?;
                Response::FileData {
                    size_bytes: data.size_bytes,
                    data_b64: b64.encode(&data.data),
                    truncated: data.truncated,
                }
            }
            Request::WriteFile { path, data_b64 } => {
                let data = decode(&data_b64, "data_b64")?;
                Response::Written { bytes_written: files::write(dir, &path, &data)? }
            }
            Request::DeletePath { path } => {
                files::delete(dir, &path)?;
                Response::Done
            }
            Request::ExportTar { path } => {
                let (bytes, artifact_type, stats) = files::export(dir, &path)?;
                Response::Tar { artifact_type, stats, data_b64: b64.encode(bytes) }
            }
            Request::ImportTar { dest, replace, data_b64 } => {
                let bytes = decode(&data_b64, "data_b64")?;
                // In a guest, links are data: one to /etc is inert (nothing is written
                // through a link, and a guest process could make it anyway), so a real
                // repository with absolute links imports whole. On the host
                // (host_compat) /workspace is a host directory: links stay contained.
                let links = self.import_links();
                Response::Imported { stats: files::import(dir, &dest, replace, &bytes, links)? }
            }
            Request::ExportOpen { path } => {
                let opened = self.transfers.open_export(dir, &path)?;
                transfer_opened(opened)
            }
            Request::ImportOpen { size_bytes } => {
                transfer_opened(self.transfers.open_import(size_bytes)?)
            }
            Request::TransferRead { transfer_id, offset, max_bytes } => {
                let data = self.transfers.read(&transfer_id, offset, max_bytes)?;
                Response::Chunk { offset, data_b64: b64.encode(data) }
            }
            Request::TransferWrite { transfer_id, offset, data_b64 } => {
                let data = decode(&data_b64, "data_b64")?;
                Response::Written { bytes_written: self.transfers.write(&transfer_id, offset, &data)? }
            }
            Request::ImportCommit { transfer_id, dest, replace } => {
                let file = self.transfers.take_import(&transfer_id)?;
                let stats = files::import_from(dir, &dest, replace, &*file, self.import_links())?;
                Response::Imported { stats }
            }
            Request::TreeDiffOpen { root, baseline_root, limits, full_walk } => {
                let current = self.tree_root(&root)?;
                let baseline = self.baseline_root(&baseline_root)?;
                // Tracking knows /workspace against the baseline mount only.
                let whole = root.trim_end_matches('/') == pyro_protocol::WORKSPACE_ROOT
                    && baseline_root.trim_end_matches('/') == pyro_protocol::BASELINE_MOUNT;
                let answer = match self.change_watch().filter(|_| whole && !full_walk) {
                    Some(watch) => change_watch::tracked_diff(&watch, &current, &baseline, limits)?,
                    None => tree_diff::diff_trees(&current, &baseline, limits)?,
                };
                transfer_opened(self.transfers.open_document(&answer, limits.max_answer_bytes)?)
            }
            Request::TransferClose { transfer_id } => {
                self.transfers.close(&transfer_id);
                Response::Done
            }
            Request::InstallSecrets { secrets } => match self.mode {
                SandboxMode::Guest => {
                    secrets::install(Path::new(pyro_protocol::SECRETS_DIR), &secrets)?;
                    Response::Done
                }
                SandboxMode::HostCompat => {
                    return Err(SandboxError::Unsupported(
                        "workspace secrets require guest execution and are unavailable in host_compat mode"
                            .to_owned(),
                    ))
                }
            },
            Request::Sync => {
                sys::sync_all();
                Response::Done
            }
            Request::MountWorkspace { known_changes } => {
                self.require_guest("mounting the workspace volume")?;
                let mounted_now = volume::mount_workspace()?;
                // Only a mount made just now has seen no change yet: track from here.
                let known = known_changes.as_deref().and_then(change_watch::from_wire);
                let tracked_known = mounted_now && self.start_change_watch(known.clone());
                // Without a known set the first diff walks both trees whole: have them in
                // memory by then. With one it is tracked and reads a few inodes of each,
                // but a snapshot's listing still walks /workspace: warm that one only.
                if tracked_known && known.is_some() {
                    tree_diff::warm_in_background(&[pyro_protocol::WORKSPACE_ROOT]);
                } else {
                    tree_diff::warm_in_background(&[
                        pyro_protocol::BASELINE_MOUNT,
                        pyro_protocol::WORKSPACE_ROOT,
                    ]);
                }
                Response::Done
            }
            Request::TreeTotals { baseline, full_walk } => {
                self.require_guest("counting the workspace")?;
                let current = Path::new(pyro_protocol::WORKSPACE_ROOT);
                let base = Path::new(pyro_protocol::BASELINE_MOUNT);
                let watch = self.change_watch().filter(|_| !full_walk);
                let (totals, tracked) = match (watch, baseline) {
                    (Some(watch), Some(baseline)) => {
                        change_watch::tracked_totals(&watch, current, base, baseline)?
                    }
                    _ => (tree_diff::totals::count_tree(current)?, false),
                };
                Response::TreeTotals { totals, tracked }
            }
            Request::ChangeCandidates => {
                self.require_guest("tracking workspace changes")?;
                let paths = self.change_watch().and_then(|watch| watch.change_set());
                Response::ChangeCandidates { paths }
            }
            Request::FreezeWorkspace { thaw_after_ms } => {
                self.require_guest("freezing the workspace")?;
                volume::freeze_workspace(thaw_after_ms)?;
                Response::Done
            }
            Request::ThawWorkspace => {
                self.require_guest("thawing the workspace")?;
                volume::thaw_workspace()?;
                Response::Done
            }
            Request::SetClock { unix_time_ns } => {
                self.require_guest("setting the clock")?;
                sys::set_wall_clock(unix_time_ns)
                    .map_err(|e| SandboxError::io("set", "the wall clock", e))?;
                Response::Done
            }
            Request::AddEntropy { data_b64 } => {
                self.require_guest("adding entropy")?;
                let data = decode(&data_b64, "data_b64")?;
                if data.is_empty() || data.len() > pyro_protocol::MAX_ENTROPY_BYTES {
                    return Err(SandboxError::Invalid(format!(
                        "add_entropy takes 1 to {} bytes, got {}",
                        pyro_protocol::MAX_ENTROPY_BYTES,
                        data.len()
                    )));
                }
                sys::add_entropy_and_reseed(&data)
                    .map_err(|e| SandboxError::io("add entropy to", "/dev/urandom", e))?;
                Response::Done
            }
            Request::Shutdown => match self.mode {
                SandboxMode::Guest => {
                    sys::sync_all();
                    Response::Done
                }
                SandboxMode::HostCompat => {
                    return Err(SandboxError::Unsupported(
                        "shutdown is not supported in host_compat mode".to_owned(),
                    ))
                }
            },
            request @ (Request::ShellOpen(_)
            | Request::ShellRead(_)
            | Request::ShellWrite { .. }
            | Request::ShellSignal { .. }
            | Request::ShellResize { .. }
            | Request::ShellClose { .. }) => match self.mode {
                SandboxMode::Guest => {
                    self.shells.handle(request, |cwd| self.host_compat_cwd(cwd))
                }
                SandboxMode::HostCompat => {
                    return Err(SandboxError::Unsupported(
                        "interactive shells require guest execution and are unavailable in host_compat mode"
                            .to_owned(),
                    ))
                }
            },
            request @ (Request::ServiceStart(_)
            | Request::ServiceStatus { .. }
            | Request::ServiceList
            | Request::ServiceLogs { .. }
            | Request::ServiceStop { .. }
            | Request::ServiceStopAll) => match self.mode {
                SandboxMode::Guest => self.services.handle(request, &self.workspace_dir, |cwd| {
                    self.host_compat_cwd(cwd)
                }),
                SandboxMode::HostCompat => {
                    return Err(SandboxError::Unsupported(
                        "services require guest execution and are unavailable in host_compat mode"
                            .to_owned(),
                    ))
                }
            },
            _ => return Err(SandboxError::Unsupported("unsupported operation".to_owned())),
        })
    }

    /// The change tracking of `/workspace`, if a mount started one.
    fn change_watch(&self) -> Option<std::sync::Arc<change_watch::ChangeWatch>> {
        self.change_watch.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Start tracking the just mounted `/workspace` with base `known`; false when the
    /// kernel refused (then every diff walks both trees, as before tracking existed).
    fn start_change_watch(&self, known: Option<change_watch::Candidates>) -> bool {
        let root = Path::new(pyro_protocol::WORKSPACE_ROOT);
        match change_watch::ChangeWatch::start(root, known) {
            Ok(watch) => {
                *self.change_watch.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(watch);
                true
            }
            Err(e) => {
                eprintln!("pyro-guest-agent: no change tracking of /workspace: {e}");
                false
            }
        }
    }

    /// The `hello` answer: versions, capabilities and the kernel release.
    pub fn hello(&self) -> Response {
        Response::Hello {
            agent_version: AGENT_VERSION.to_owned(),
            protocol: PROTOCOL_VERSION,
            capabilities: CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
            kernel_release: sys::kernel_release().unwrap_or_else(|_| "unknown".to_owned()),
        }
    }

    /// Called by the frame loop after the answer to a successful `shutdown` was written:
    /// in guest mode, gives the host a moment to read it, then powers off.
    pub fn finish_shutdown(&self) {
        if self.power_off {
            std::thread::sleep(Duration::from_millis(100));
            // If this returns, the machine cannot be powered off; keep serving.
            let _ = sys::power_off();
        }
    }

    /// Which symlink targets an import keeps: in a guest links are data (one to /etc is
    /// inert: nothing is written through a link, and a guest process could make it
    /// anyway); on the host (host_compat) /workspace is a host directory, so links stay
    /// contained.
    fn import_links(&self) -> archive::LinkTargets {
        match self.mode {
            SandboxMode::Guest => archive::LinkTargets::Kept,
            SandboxMode::HostCompat => archive::LinkTargets::Contained,
        }
    }

    /// A workspace directory to walk for a tree diff, reached without symlinks.
    fn tree_root(&self, guest: &str) -> Result<PathBuf, SandboxError> {
        let resolved = self.resolve(guest)?;
        match &resolved.metadata {
            None => Err(SandboxError::NotFound(resolved.guest())),
            Some(meta) if meta.file_type().is_symlink() => {
                Err(SandboxError::FinalSymlink(resolved.guest()))
            }
            Some(meta) if !meta.is_dir() => Err(SandboxError::NotADirectory(resolved.guest())),
            Some(_) if resolved.path.is_root() => Ok(self.workspace_dir.join(".")),
            Some(_) => Ok(resolved.host),
        }
    }

    /// The baseline of a tree diff: [`pyro_protocol::BASELINE_MOUNT`] (mapped to this
    /// sandbox's baseline directory) or a workspace directory.
    fn baseline_root(&self, guest: &str) -> Result<PathBuf, SandboxError> {
        if guest.trim_end_matches('/') != pyro_protocol::BASELINE_MOUNT {
            return self.tree_root(guest);
        }
        let none = || {
            SandboxError::Unsupported(format!(
                "no baseline is mounted at {}",
                pyro_protocol::BASELINE_MOUNT
            ))
        };
        let dir = self.baseline_dir.clone().ok_or_else(none)?;
        // In the guest only a file system mounted there is a baseline (a plain directory
        // left on the root disk is not).
        if self.mode == SandboxMode::Guest && !sys::is_mount_point(&dir) {
            return Err(none());
        }
        Ok(dir)
    }

    fn require_guest(&self, what: &str) -> Result<(), SandboxError> {
        match self.mode {
            SandboxMode::Guest => Ok(()),
            SandboxMode::HostCompat => Err(SandboxError::Unsupported(format!(
                "{what} requires guest execution and is unavailable in host_compat mode"
            ))),
        }
    }

    /// Capture the login environment now (guest mode), so the first exec does not pay
    /// for it. See [`login_env`].
    pub fn warm_login_env(&self) {
        if self.mode == SandboxMode::Guest {
            let _ = self.login_env.get();
        }
    }

    fn exec(&self, req: &ExecRequest) -> Result<pyro_protocol::ExecOutput, SandboxError> {
        let (cwd, base_env) = self.exec_setting(req)?;
        exec::run(&exec_plan(req, &cwd, base_env))
    }

    /// Working directory and base environment of a command, by mode.
    fn exec_setting(&self, req: &ExecRequest) -> Result<(PathBuf, exec::BaseEnv), SandboxError> {
        Ok(match self.mode {
            SandboxMode::Guest => (
                self.guest_cwd(&req.cwd)?,
                self.login_env.get().map_or(exec::BaseEnv::Inherit, exec::BaseEnv::Login),
            ),
            SandboxMode::HostCompat => (
                self.host_compat_cwd(&req.cwd)?,
                exec::BaseEnv::Clean { home: self.workspace_dir.clone() },
            ),
        })
    }

    /// Guest mode: any absolute directory; workspace paths go through the mapping.
    fn guest_cwd(&self, cwd: &str) -> Result<PathBuf, SandboxError> {
        let path = match paths::WorkspacePath::parse(cwd) {
            Ok(p) => p.host_path(&self.workspace_dir),
            Err(SandboxError::OutsideWorkspace(_)) => PathBuf::from(cwd),
            Err(e) => return Err(e),
        };
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => Ok(path),
            Ok(_) => Err(SandboxError::CwdNotDirectory(cwd.to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(SandboxError::NotFound(cwd.to_owned()))
            }
            Err(e) => Err(SandboxError::io("stat", cwd, e)),
        }
    }

    /// Host-compat mode: a real directory inside the workspace, reached without symlinks.
    fn host_compat_cwd(&self, cwd: &str) -> Result<PathBuf, SandboxError> {
        let resolved = self.resolve(cwd)?;
        match &resolved.metadata {
            None => Err(SandboxError::NotFound(resolved.guest())),
            Some(meta) if meta.file_type().is_symlink() => {
                Err(SandboxError::FinalSymlink(resolved.guest()))
            }
            Some(meta) if !meta.is_dir() => Err(SandboxError::CwdNotDirectory(resolved.guest())),
            Some(_) => Ok(resolved.host),
        }
    }
}

fn decode(data: &str, field: &'static str) -> Result<Vec<u8>, SandboxError> {
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|source| SandboxError::Base64 { field, source })
}

fn transfer_opened(opened: transfers::Opened) -> Response {
    Response::TransferOpened {
        transfer_id: opened.id,
        size_bytes: opened.size,
        artifact_type: opened.artifact_type,
        stats: opened.stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro_protocol::ErrorKind;

    #[test]
    fn hello_reports_versions_and_capabilities() {
        let sandbox = Sandbox::host_compat("/nonexistent");
        match sandbox.handle(Request::Hello { protocol: PROTOCOL_VERSION }) {
            Response::Hello { agent_version, protocol, capabilities, kernel_release } => {
                assert_eq!(agent_version, env!("CARGO_PKG_VERSION"));
                assert_eq!(protocol, PROTOCOL_VERSION);
                assert_eq!(capabilities, CAPABILITIES);
                assert!(capabilities.iter().any(|c| c == "secrets"));
                assert!(!kernel_release.is_empty() && kernel_release != "unknown");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn shutdown_is_unsupported_in_host_compat_and_done_in_guest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let response = Sandbox::host_compat(dir.path()).handle(Request::Shutdown);
        assert!(
            matches!(response, Response::Error { kind: ErrorKind::Unsupported, .. }),
            "{response:?}"
        );
        let guest = Sandbox::guest(dir.path()).with_power_off(false);
        assert!(matches!(guest.handle(Request::Shutdown), Response::Done));
        guest.finish_shutdown(); // must not power anything off
    }

    #[test]
    fn bad_base64_is_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let response = Sandbox::host_compat(dir.path())
            .handle(Request::WriteFile { path: "/workspace/f".into(), data_b64: "!!".into() });
        assert!(matches!(response, Response::Error { kind: ErrorKind::Invalid, .. }));
        assert!(!dir.path().join("f").exists());
    }

    #[test]
    fn exec_cwd_rules_depend_on_the_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::os::unix::fs::symlink("/", dir.path().join("root")).expect("symlink");
        let exec = |cwd: &str| {
            Request::Exec(ExecRequest {
                command: "pwd; echo \"$HOME\"".into(),
                cwd: cwd.into(),
                env: Default::default(),
                timeout_ms: 10_000,
                max_output_bytes: 4096,
            })
        };
        let host = Sandbox::host_compat(dir.path());
        match host.handle(exec("/workspace/sub")) {
            Response::Exec(out) => {
                let text = String::from_utf8(
                    base64::engine::general_purpose::STANDARD.decode(out.stdout_b64).expect("b64"),
                )
                .expect("utf8");
                let mut lines = text.lines();
                let pwd = PathBuf::from(lines.next().expect("pwd"));
                assert_eq!(
                    pwd.canonicalize().expect("canon"),
                    dir.path().join("sub").canonicalize().expect("canon")
                );
                assert_eq!(lines.next(), Some(dir.path().to_str().expect("utf8")));
            }
            other => panic!("{other:?}"),
        }
        for (cwd, kind) in [
            ("/tmp", ErrorKind::PathEscape),
            ("/workspace/root", ErrorKind::PathEscape),
            ("/workspace/root/etc", ErrorKind::PathEscape),
            ("/workspace/missing", ErrorKind::NotFound),
        ] {
            match host.handle(exec(cwd)) {
                Response::Error { kind: k, .. } => assert_eq!(k, kind, "{cwd}"),
                other => panic!("{cwd}: {other:?}"),
            }
        }
        // In the guest any absolute directory is fine.
        let guest = Sandbox::guest(dir.path()).with_power_off(false);
        assert!(matches!(guest.handle(exec("/tmp")), Response::Exec(out) if out.exit_code == 0));
        assert!(matches!(
            guest.handle(exec("relative")),
            Response::Error { kind: ErrorKind::Invalid, .. }
        ));
    }
}
