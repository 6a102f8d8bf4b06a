//! [`QemuBackend`]: each sandbox is a QEMU guest (q35, PVH direct boot of the cached
//! Debian kernel) that runs detached from the process that started it.
//!
//! # Life of a sandbox
//!
//! - **create**: a qcow2 overlay on the environment's `rootfs.ext4`, then boot.
//! - **boot**: `qemu-system-x86_64` under its seccomp filter, detached by pyro (new
//!   session, a supervisor that records how it ends; see [`launch`]); the watchdog
//!   waits for the agent's hello on port 0 and relaunches once if it does not come in
//!   time ([`boot_timeout`]). The result, with the boot timings, goes to `vm.json`.
//! - **connect**: any process claims a free agent port with a flock and talks the
//!   [`pyro_protocol`] over its unix socket ([`QemuChannel`]).
//! - **stop**: `Sync` through the agent, QMP `quit` (else SIGTERM), SIGKILL after 5 s.
//! - **destroy**: stop, then remove every file the backend made.
//!
//! The files of a sandbox directory are listed in [`layout`]; the cache layout (kernel,
//! initramfs, environment images) in [`assets`]. The accelerator is chosen by
//! [`detect_accel`] (TCG where `/dev/kvm` is not hardware KVM).
//!
//! # Limitations
//!
//! - The overlay records the absolute path of its base image: rebuilding an
//!   environment in place invalidates the disks made from it. `start` refuses to boot
//!   such a disk (the environment's `built_at` changed) rather than corrupt it.
//! - Published ports are fixed at boot; [`qmp::hostfwd_add_command`] with
//!   [`QemuBackend::qmp`] can add more to a running guest.

pub mod accel;
pub mod assets;
mod boot;
pub mod cgroup;
pub mod channel;
mod clone;
pub mod confine;
pub mod console;
pub mod disk;
pub mod environments;
pub mod launch;
pub mod layout;
pub mod ports;
mod process;
pub mod qmp;
pub mod record;
pub mod spawn;
pub mod template;
pub mod usernet;
pub mod volume;

pub use accel::detect_accel;
pub use boot::{boot_timeout, BOOT_TIMEOUT_ENV, DEFAULT_BOOT_TIMEOUT};
pub use channel::{AgentHello, QemuChannel};
pub use launch::{qemu_binary, qemu_version};
pub use qmp::{QmpClient, QmpError};
pub use record::{BootTimings, CloneInfo, VmRecord};

use super::{
    AgentChannel, Backend, BackendError, BackendKind, Capabilities, SandboxInfo, SandboxSpec,
};
use assets::{BootAssets, EnvironmentAssets};
use launch::{LaunchConfig, GUEST_IP};
use layout::{remove_if_exists, SandboxPaths};
use pyro_contract::results::{Accel, ExecutionMode};
use pyro_protocol::{Request, AGENT_PORT_COUNT};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long stop waits for a free agent port and the hello before skipping the sync.
const STOP_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long stop waits for the guest's `Sync`.
const STOP_SYNC_TIMEOUT: Duration = Duration::from_secs(5);
/// How long stop waits for QEMU to exit after `quit`/SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Timeout of each QMP read and write.
const QMP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long mounting the workspace volume may take (connect, then the request).
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// What every start of a sandbox works on.
#[derive(Clone, Copy)]
struct Start<'a> {
    paths: &'a SandboxPaths,
    spec: &'a SandboxSpec,
    boot_assets: &'a BootAssets,
    env: &'a EnvironmentAssets,
    empty_volume: &'a Path,
    started: Instant,
}

/// Facts of one start that go into `vm.json`.
struct RecordFacts<'a> {
    accel: Accel,
    accel_reason: String,
    pid: i32,
    hello: &'a AgentHello,
    timings: BootTimings,
    clone: Option<CloneInfo>,
    cold_reason: Option<String>,
    template_dir: Option<String>,
}

/// Runs sandboxes as QEMU guests. See the module doc.
#[derive(Debug, Clone)]
pub struct QemuBackend {
    cache_dir: PathBuf,
    environments: environments::QemuEnvironments,
    boot_timeout: Option<Duration>,
    templates: bool,
}

impl QemuBackend {
    /// A backend using the boot assets and environment images under `cache_dir`
    /// (normally [`assets::default_cache_dir`]).
    pub fn new(cache_dir: PathBuf) -> Self {
        let environments = environments::QemuEnvironments::new(cache_dir.clone());
        QemuBackend { cache_dir, environments, boot_timeout: None, templates: true }
    }

    /// Use `timeout` as the boot deadline per attempt instead of [`boot_timeout`]
    /// (`$PYRO_BOOT_TIMEOUT_SECS`, else 30 s).
    pub fn with_boot_timeout(mut self, timeout: Duration) -> Self {
        self.boot_timeout = Some(timeout);
        self
    }

    /// Never start guests as template clones: every create boots cold (as with
    /// `PYRO_TEMPLATES=off`, for this backend only).
    pub fn without_templates(mut self) -> Self {
        self.templates = false;
        self
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Connect to the agent of a running sandbox, with the concrete channel type.
    pub fn connect_channel(&self, dir: &Path) -> Result<QemuChannel, BackendError> {
        QemuChannel::connect(dir)
    }

    /// The `vm.json` of a sandbox, if it has one.
    pub fn record(&self, dir: &Path) -> Option<VmRecord> {
        let paths = SandboxPaths::new(dir).ok()?;
        VmRecord::read(&paths.vm_record())
    }

    /// A QMP session with a running sandbox's QEMU (e.g. for
    /// [`qmp::hostfwd_add_command`]). Hold it briefly: QEMU serves one QMP client.
    pub fn qmp(&self, dir: &Path) -> Result<QmpClient, BackendError> {
        let paths = SandboxPaths::new(dir)?;
        if process::qemu_pid(&paths).is_none() {
            return Err(BackendError::NotRunning);
        }
        Ok(QmpClient::connect(&paths.qmp_socket(), QMP_TIMEOUT)?)
    }

    /// Move what the running guest's console ring holds into `console.log` (rotated,
    /// capped at `PYRO_CONSOLE_LOG_MAX_MIB`); returns the bytes moved.
    pub fn drain_console(&self, dir: &Path) -> Result<u64, BackendError> {
        let paths = SandboxPaths::new(dir)?;
        let mut qmp = self.qmp(dir)?;
        let max = super::limits::GuestLimits::from_env().max_console_bytes;
        Ok(console::drain(&mut qmp, &paths, max)?)
    }

    /// The pid of a sandbox's QEMU, when it runs.
    pub fn qemu_pid(&self, dir: &Path) -> Option<i32> {
        process::qemu_pid(&SandboxPaths::new(dir).ok()?)
    }

    /// Boot `spec` from the disk already in place and record the result.
    fn boot_sandbox(
        &self,
        start: &Start<'_>,
        disk_create: Option<Duration>,
        cold_reason: Option<String>,
        template_dir: Option<String>,
    ) -> Result<SandboxInfo, BackendError> {
        let Start { paths, spec, boot_assets, started, empty_volume, .. } = *start;
        let (accel, accel_reason) = detect_accel();
        let config = LaunchConfig {
            paths,
            accel,
            vcpu_count: spec.vcpu_count,
            mem_mib: spec.mem_mib,
            kernel: &boot_assets.kernel,
            initrd: &boot_assets.initrd,
            network: &spec.network,
            agent_ports: AGENT_PORT_COUNT,
            memory_file: None,
            incoming: false,
            credentials: confine::qemu_identity().credentials(),
            volume: spec.volume.as_ref(),
            empty_volume,
        };
        launch::validate(&config)?;
        let outcome = boot::boot(&config, self.boot_timeout.unwrap_or_else(boot_timeout)).map_err(
            |e| match e {
                BackendError::Boot(message) => BackendError::Boot(format!(
                    "{message}\n(accel: {accel:?}, {accel_reason}; console log: {})",
                    paths.console_log().display()
                )),
                other => other,
            },
        )?;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let secs_to_ms = |s: f64| (s * 1000.0).round().max(0.0) as u64;
        let timings = BootTimings {
            attempts: outcome.attempts,
            disk_create_ms: disk_create.map(ms),
            qemu_launch_ms: ms(outcome.qemu_launch),
            launch_to_hello_ms: ms(outcome.launch_to_hello),
            total_ms: ms(started.elapsed()),
            guest_stages: outcome
                .markers
                .stages
                .iter()
                .map(|(s, up)| (s.clone(), secs_to_ms(*up)))
                .collect(),
            agent_ready_ms: outcome.markers.agent_ready.map(secs_to_ms),
        };
        tracing::info!(
            dir = %paths.dir().display(),
            ?accel,
            launch_to_hello_ms = timings.launch_to_hello_ms,
            attempts = timings.attempts,
            "guest booted"
        );
        let facts = RecordFacts {
            accel,
            accel_reason,
            pid: outcome.pid,
            hello: &outcome.hello,
            timings,
            clone: None,
            cold_reason,
            template_dir,
        };
        Self::write_record(start, facts)
    }

    /// Write `vm.json` for a sandbox that just started and return its info.
    fn write_record(
        start: &Start<'_>,
        facts: RecordFacts<'_>,
    ) -> Result<SandboxInfo, BackendError> {
        let Start { paths, spec, boot_assets, env, .. } = *start;
        let record = VmRecord {
            version: record::RECORD_VERSION,
            accel: facts.accel,
            accel_reason: facts.accel_reason,
            environment: spec.environment.clone(),
            environment_version: env.version(),
            rootfs: env.rootfs.display().to_string(),
            kernel: boot_assets.kernel.display().to_string(),
            initrd: boot_assets.initrd.display().to_string(),
            vcpu_count: spec.vcpu_count,
            mem_mib: spec.mem_mib,
            network_enabled: spec.network.enabled,
            published_ports: spec.network.published_ports.clone(),
            agent_ports: AGENT_PORT_COUNT,
            pid: Some(facts.pid),
            guest_kernel: Some(facts.hello.kernel_release.clone()),
            agent_version: Some(facts.hello.agent_version.clone()),
            booted_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            boot: facts.timings,
            clone: facts.clone,
            cold_reason: facts.cold_reason,
            template_dir: facts.template_dir,
        };
        record.write(&paths.vm_record())?;
        Ok(record.info())
    }

    /// Record a sandbox started as a clone.
    fn record_clone(
        start: &Start<'_>,
        accel: (Accel, String),
        outcome: clone::CloneOutcome,
    ) -> Result<SandboxInfo, BackendError> {
        let Start { paths, started, .. } = *start;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let timings = BootTimings {
            attempts: 1,
            disk_create_ms: Some(ms(outcome.disk_create)),
            qemu_launch_ms: ms(outcome.qemu_launch),
            launch_to_hello_ms: ms(outcome.launch_to_hello),
            total_ms: ms(started.elapsed()),
            guest_stages: Vec::new(),
            agent_ready_ms: None,
        };
        tracing::info!(dir = %paths.dir().display(), template = %outcome.key, total_ms = timings.total_ms, "guest cloned");
        let facts = RecordFacts {
            accel: accel.0,
            accel_reason: accel.1,
            pid: outcome.pid,
            hello: &outcome.hello,
            timings,
            clone: Some(CloneInfo {
                template_key: outcome.key.clone(),
                restore_ms: ms(outcome.restore),
                template_build_ms: ms(outcome.template_build),
            }),
            cold_reason: None,
            template_dir: Some(outcome.build_dir.clone()),
        };
        Self::write_record(start, facts)
    }

    /// Drop this sandbox from the users of the template its old disk was backed by.
    fn forget_template(paths: &SandboxPaths) {
        let dir = VmRecord::read(&paths.vm_record()).and_then(|r| r.template_dir);
        if let Some(dir) = dir {
            template::remove_user(Path::new(&dir), paths.dir());
        }
    }

    /// Info for a running sandbox without a readable `vm.json`.
    fn fallback_info(&self, spec: &SandboxSpec, pid: i32) -> SandboxInfo {
        let (accel, accel_reason) = detect_accel();
        let mut metadata = std::collections::BTreeMap::new();
        metadata.insert("qemu_pid".to_owned(), pid.to_string());
        SandboxInfo {
            accel,
            accel_reason,
            execution_mode: ExecutionMode::Guest,
            guest_kernel: None,
            environment_version: assets::environment_assets(&self.cache_dir, &spec.environment)
                .ok()
                .and_then(|e| e.version()),
            guest_ip: spec.network.enabled.then(|| GUEST_IP.to_owned()),
            metadata,
        }
    }

    /// Have the agent of the sandbox that just started mount its workspace volume (after
    /// every cold boot and every clone: one path). A failure stops the guest.
    fn mount_volume(
        &self,
        paths: &SandboxPaths,
        known_changes: Option<Vec<String>>,
    ) -> Result<(), BackendError> {
        let result = (|| {
            let mut channel = QemuChannel::connect_with_timeout(paths.dir(), MOUNT_TIMEOUT)?;
            if !channel.supports(pyro_protocol::VOLUME_CAPABILITY) {
                return Err(BackendError::Unsupported {
                    backend: "qemu",
                    operation: "workspace volumes with this guest agent (rebuild the boot assets with `scripts/setup`)".into(),
                });
            }
            // Only an agent that tracks changes reads the set; spare the others the bytes.
            let known_changes =
                known_changes.filter(|_| channel.supports(pyro_protocol::CHANGE_WATCH_CAPABILITY));
            match channel.call(Request::MountWorkspace { known_changes }, MOUNT_TIMEOUT)? {
                pyro_protocol::Response::Done => Ok(()),
                pyro_protocol::Response::Error { message, .. } => Err(BackendError::Boot(format!(
                    "the guest could not mount the workspace volume: {message}"
                ))),
                _ => Err(BackendError::Protocol("unexpected answer to mount_workspace".into())),
            }
        })();
        if result.is_err() {
            let _ = self.stop_paths(paths);
        }
        result
    }

    /// Flush the guest's file systems, best effort.
    fn sync_guest(dir: &Path) {
        let result = QemuChannel::connect_with_timeout(dir, STOP_CONNECT_TIMEOUT)
            .and_then(|mut channel| channel.call(Request::Sync, STOP_SYNC_TIMEOUT));
        if let Err(e) = result {
            tracing::warn!(dir = %dir.display(), error = %e, "could not sync the guest before stopping it");
        }
    }

    fn stop_paths(&self, paths: &SandboxPaths) -> Result<(), BackendError> {
        if let Some(pid) = process::qemu_pid(paths) {
            Self::sync_guest(paths.dir());
            let quit = QmpClient::connect(&paths.qmp_socket(), QMP_TIMEOUT).and_then(|mut qmp| {
                let max = super::limits::GuestLimits::from_env().max_console_bytes;
                if let Err(e) = console::drain(&mut qmp, paths, max) {
                    tracing::warn!(pid, error = %e, "could not keep the console before stopping");
                }
                qmp.quit()
            });
            if let Err(e) = quit {
                tracing::warn!(pid, error = %e, "QMP quit failed; sending SIGTERM");
                let _ = process::send_signal(pid, process::Signal::Term);
            }
            if !process::wait_gone(pid, STOP_GRACE) {
                tracing::warn!(pid, "QEMU did not exit in time; sending SIGKILL");
                if !process::kill_and_wait(pid) {
                    return Err(BackendError::io(
                        format!("cannot stop the sandbox in {}", paths.dir().display()),
                        std::io::Error::other(format!(
                            "QEMU (pid {pid}) is still alive after SIGKILL"
                        )),
                    ));
                }
            }
        }
        cgroup::remove(paths);
        boot::remove_runtime_files(paths, AGENT_PORT_COUNT)
    }
}

impl Backend for QemuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Qemu
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::full_guest()
    }

    fn environments(&self) -> Option<&dyn crate::backend::environments::EnvironmentStore> {
        Some(&self.environments)
    }

    fn available(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let describe = |e: BackendError| match e {
            BackendError::MissingAsset { what, path } => {
                format!("{what} is missing ({})", path.display())
            }
            other => other.to_string(),
        };
        if let Err(e) = qemu_version() {
            problems.push(describe(e));
        }
        if let Err(e) = launch::qemu_img_version() {
            problems.push(describe(e));
        }
        if let Err(e) = assets::boot_assets(&self.cache_dir) {
            problems.push(describe(e));
        }
        if assets::installed_environments(&self.cache_dir).is_empty() {
            problems.push(format!(
                "no environment image in {} (run `pyro env pull debian:12`)",
                self.cache_dir.join("environments").display()
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn create(&self, spec: &SandboxSpec) -> Result<SandboxInfo, BackendError> {
        let started = Instant::now();
        let paths = SandboxPaths::new(&spec.dir)?;
        self.stop_paths(&paths)?;
        confine::check_free_space(paths.dir())?;
        let boot_assets = assets::boot_assets(&self.cache_dir)?;
        let env = assets::environment_assets(&self.cache_dir, &spec.environment)?;
        Self::forget_template(&paths);
        remove_if_exists(&paths.vm_record())?;
        let (accel, accel_reason) = detect_accel();
        let empty_volume = volume::empty_image(&self.cache_dir)?;
        let machine = clone::Machine {
            spec,
            boot: &boot_assets,
            env: &env,
            accel,
            empty_volume: &empty_volume,
        };
        let start = Start {
            paths: &paths,
            spec,
            boot_assets: &boot_assets,
            env: &env,
            empty_volume: &empty_volume,
            started,
        };
        let timeout = self.boot_timeout.unwrap_or_else(boot_timeout);
        let info =
            match clone::start_as_clone(&self.cache_dir, &paths, &machine, timeout, self.templates)
            {
                Ok(outcome) => Self::record_clone(&start, (accel, accel_reason), outcome)?,
                Err(cold_reason) => {
                    let disk_started = Instant::now();
                    launch::create_overlay(&env.rootfs, &paths.disk())?;
                    let disk_create = disk_started.elapsed();
                    self.boot_sandbox(&start, Some(disk_create), Some(cold_reason), None)?
                }
            };
        if let Some(volume) = &spec.volume {
            if let Some(ready) = &spec.volume_ready {
                ready.wait()?;
            }
            self.mount_volume(&paths, volume.known_changes.clone())?;
        }
        Ok(info)
    }

    fn start(&self, spec: &SandboxSpec) -> Result<SandboxInfo, BackendError> {
        let started = Instant::now();
        let paths = SandboxPaths::new(&spec.dir)?;
        let record = VmRecord::read(&paths.vm_record());
        if let Some(pid) = process::qemu_pid(&paths) {
            return Ok(match record {
                Some(record) => record.info(),
                None => self.fallback_info(spec, pid),
            });
        }
        if !paths.disk().is_file() {
            return Err(BackendError::Boot(format!(
                "the sandbox has no disk ({}): it was never created or was destroyed; create it again",
                paths.disk().display()
            )));
        }
        let boot_assets = assets::boot_assets(&self.cache_dir)?;
        let env = assets::environment_assets(&self.cache_dir, &spec.environment)?;
        if let Some(record) = &record {
            let created_from = record.environment_version.as_deref();
            if record.environment == spec.environment
                && created_from.is_some()
                && env.version().as_deref() != created_from
            {
                return Err(BackendError::Boot(format!(
                    "environment {} was rebuilt (built_at {} -> {}) after this sandbox's disk was made from it; \
                     the disk no longer matches its base image: reset or recreate the sandbox",
                    spec.environment,
                    created_from.unwrap_or("?"),
                    env.version().as_deref().unwrap_or("?")
                )));
            }
        }
        let template_dir = record.and_then(|r| r.template_dir);
        let empty_volume = volume::empty_image(&self.cache_dir)?;
        let start = Start {
            paths: &paths,
            spec,
            boot_assets: &boot_assets,
            env: &env,
            empty_volume: &empty_volume,
            started,
        };
        let info = self.boot_sandbox(&start, None, None, template_dir)?;
        if let Some(volume) = &spec.volume {
            self.mount_volume(&paths, volume.known_changes.clone())?;
        }
        Ok(info)
    }

    fn stop(&self, dir: &Path) -> Result<(), BackendError> {
        match SandboxPaths::new(dir) {
            Ok(paths) => self.stop_paths(&paths),
            Err(_) if !dir.exists() => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn is_running(&self, dir: &Path) -> bool {
        self.qemu_pid(dir).is_some()
    }

    fn destroy(&self, dir: &Path) -> Result<(), BackendError> {
        let paths = match SandboxPaths::new(dir) {
            Ok(paths) => paths,
            Err(_) if !dir.exists() => return Ok(()),
            Err(e) => return Err(e),
        };
        self.stop_paths(&paths)?;
        Self::forget_template(&paths);
        for file in paths.owned_files(AGENT_PORT_COUNT) {
            remove_if_exists(&file)?;
        }
        Ok(())
    }

    fn connect(&self, dir: &Path) -> Result<Box<dyn AgentChannel>, BackendError> {
        Ok(Box::new(self.connect_channel(dir)?))
    }

    fn instance(&self, dir: &Path) -> Option<u64> {
        self.qemu_pid(dir).and_then(|pid| u64::try_from(pid).ok())
    }

    fn publish_port(
        &self,
        dir: &Path,
        host_port: Option<u16>,
        guest_port: u16,
    ) -> Result<u16, BackendError> {
        ports::publish(&SandboxPaths::new(dir)?, host_port, guest_port)
    }

    fn unpublish_port(&self, dir: &Path, host_port: u16) -> Result<(), BackendError> {
        ports::unpublish(&SandboxPaths::new(dir)?, host_port)
    }

    fn published_ports(&self, dir: &Path) -> Result<Vec<(u16, u16)>, BackendError> {
        ports::list(&SandboxPaths::new(dir)?)
    }

    fn confinement(&self, dir: &Path) -> std::collections::BTreeMap<String, String> {
        self.qemu_pid(dir).map(confine::live_confinement).unwrap_or_default()
    }

    fn exit_reason(&self, dir: &Path) -> Option<String> {
        let paths = SandboxPaths::new(dir).ok()?;
        if process::qemu_pid(&paths).is_some() {
            return None;
        }
        // The supervisor writes the record a moment after QEMU is gone; while it runs
        // it holds a lock on the file.
        let mut record = spawn::read_exit_record(&paths.qemu_exit());
        let deadline = Instant::now() + Duration::from_millis(500);
        while record.is_none()
            && Instant::now() < deadline
            && spawn::exit_record_pending(&paths.qemu_exit())
        {
            std::thread::sleep(Duration::from_millis(10));
            record = spawn::read_exit_record(&paths.qemu_exit());
        }
        let record = record?;
        // Only the QEMU this sandbox last booted counts.
        let booted = VmRecord::read(&paths.vm_record()).and_then(|r| r.pid);
        (booted == Some(record.pid)).then(|| format!("QEMU {}", record.end))
    }

    fn export_raw_disk(&self, dir: &Path, output: &Path) -> Result<(), BackendError> {
        disk::export_raw(&SandboxPaths::new(dir)?, output)
    }

    fn snapshot_volume(&self, dir: &Path, overlay: &Path) -> Result<(), BackendError> {
        let mut qmp = self.qmp(dir)?;
        volume::snapshot_running(&mut qmp, overlay, confine::qemu_identity().credentials())
    }

    fn merge_volume(&self, dir: &Path, top: &Path, base: &Path) -> Result<(), BackendError> {
        let paths = SandboxPaths::new(dir)?;
        if process::qemu_pid(&paths).is_none() {
            return Err(BackendError::NotRunning);
        }
        let mut qmp = QmpClient::connect(&paths.qmp_socket(), Duration::from_secs(30))?;
        volume::stream_running(&mut qmp, top, base)
    }

    fn prepare_template(&self, spec: &SandboxSpec) -> Result<Option<String>, BackendError> {
        let boot_assets = assets::boot_assets(&self.cache_dir)?;
        let env = assets::environment_assets(&self.cache_dir, &spec.environment)?;
        let (accel, _) = detect_accel();
        let empty_volume = volume::empty_image(&self.cache_dir)?;
        let machine = clone::Machine {
            spec,
            boot: &boot_assets,
            env: &env,
            accel,
            empty_volume: &empty_volume,
        };
        let timeout = self.boot_timeout.unwrap_or_else(boot_timeout);
        clone::prepare(&self.cache_dir, &machine, timeout).map(Some).map_err(BackendError::Boot)
    }
}
