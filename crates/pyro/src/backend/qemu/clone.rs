//! Making templates and starting sandboxes as clones of them.
//!
//! # Recipe (stock QEMU 7.2)
//!
//! - **Template**: a cold boot with guest RAM in a file (`memory-backend-file`,
//!   `share=on`) over a fresh overlay; after the hello, one exec of `true` (captures the
//!   login environment, faults in the shell) and a `sync`; then over QMP
//!   `x-ignore-shared`, `stop`, `migrate` to an `fd:` we pass with `getfd` (the state file
//!   holds device state only: the RAM stays in its file), `quit`. Files are fsynced and
//!   `meta.json` written last.
//! - **Clone**: an overlay backed by the template's frozen overlay; QEMU with the same
//!   command line except the RAM is mapped privately (`share=off`: copy-on-write pages of
//!   the template's file) and `-incoming defer`; over QMP `x-ignore-shared`,
//!   `migrate-incoming` from the state file (again an `fd:`), wait for `completed`,
//!   `cont`. Then the hello, and before anything else the clone is made its own machine:
//!   the wall clock is set from the host (`set_clock`) and the RNG reseeded with host
//!   entropy (`add_entropy`). Secrets and published ports come later, from the runtime.
//!
//! `fd:` migration (rather than `exec:`) works under QEMU's `-sandbox spawn=deny`.
//!
//! # Never worse than cold
//!
//! Every failure here is returned as a reason and the caller boots cold. A clone whose
//! state QEMU refuses, or that does not answer, retires the template (the next create
//! builds a new one); a failed build leaves nothing behind.

use super::super::{BackendError, SandboxSpec};
use super::assets::{BootAssets, EnvironmentAssets};
use super::boot;
use super::channel::{AgentHello, QemuChannel, Session};
use super::confine;
use super::launch::{self, LaunchConfig, MemoryFile};
use super::layout::{remove_if_exists, SandboxPaths};
use super::process;
use super::qmp::QmpClient;
use super::template::{self, TemplateBuild, TemplateInputs, TemplateMeta, TemplateSlot};
use crate::backend::AgentChannel;
use pyro_contract::results::Accel;
use pyro_protocol::{ExecRequest, Request, Response, AGENT_PORT_COUNT};
use serde_json::json;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Timeout of each QMP read and write.
const QMP_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a state save or load may take.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a clone may take from `cont` to its hello before it counts as broken.
const CLONE_HELLO_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest QEMU may take until QMP answers.
const QEMU_START_TIMEOUT: Duration = Duration::from_secs(30);
/// QMP name of the state file descriptor.
const STATE_FD: &str = "pyro-state";
/// Capability of agents that answer `set_clock` and `add_entropy`.
const CLONE_CAPABILITY: &str = "clone_fixup";
/// Bytes of host entropy given to each clone.
const ENTROPY_BYTES: usize = 64;

/// What a sandbox is booted with (everything but its directory).
#[derive(Debug, Clone, Copy)]
pub(super) struct Machine<'a> {
    pub spec: &'a SandboxSpec,
    pub boot: &'a BootAssets,
    pub env: &'a EnvironmentAssets,
    pub accel: Accel,
    /// The shared empty volume image (the placeholders' bottom).
    pub empty_volume: &'a Path,
}

impl<'a> Machine<'a> {
    /// The launch configuration of this machine in `paths`.
    pub fn config(
        &self,
        paths: &'a SandboxPaths,
        memory_file: Option<MemoryFile<'a>>,
        incoming: bool,
    ) -> LaunchConfig<'a> {
        LaunchConfig {
            paths,
            accel: self.accel,
            vcpu_count: self.spec.vcpu_count,
            mem_mib: self.spec.mem_mib,
            kernel: &self.boot.kernel,
            initrd: &self.boot.initrd,
            network: &self.spec.network,
            agent_ports: AGENT_PORT_COUNT,
            memory_file,
            incoming,
            credentials: confine::qemu_identity().credentials(),
            volume: self.spec.volume.as_ref(),
            empty_volume: self.empty_volume,
        }
    }

    /// The template inputs of this machine (see [`template`]).
    pub fn inputs(&self) -> Result<TemplateInputs, BackendError> {
        let placeholder = SandboxPaths::new(Path::new("/"))?;
        let ram = Path::new("/pyro-template/ram");
        let config = self.config(&placeholder, Some(MemoryFile { path: ram, shared: true }), false);
        let args = launch::qemu_args(&config, &launch::InputFiles::paths(&config));
        let machine = args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
        Ok(TemplateInputs {
            format: template::TEMPLATE_FORMAT,
            machine,
            components: template::components(self.boot, self.env, &launch::qemu_binary()),
        })
    }
}

/// A clone that answered.
#[derive(Debug)]
pub(super) struct CloneOutcome {
    pub pid: i32,
    pub hello: AgentHello,
    pub key: String,
    pub build_dir: String,
    pub disk_create: Duration,
    pub qemu_launch: Duration,
    pub restore: Duration,
    pub launch_to_hello: Duration,
    pub template_build: Duration,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Start `paths` as a clone of the template of `machine`, making the template first when
/// there is none. `Err` is the reason to boot cold instead (nothing is left running).
pub(super) fn start_as_clone(
    cache_dir: &Path,
    paths: &SandboxPaths,
    machine: &Machine<'_>,
    boot_timeout: Duration,
    templates: bool,
) -> Result<CloneOutcome, String> {
    if !templates {
        return Err("templates are off for this backend".into());
    }
    if !template::templates_enabled() {
        return Err(format!("templates are off ({}=off)", template::TEMPLATES_ENV));
    }
    if !machine.spec.network.published_ports.is_empty() {
        return Err("ports published at boot".into());
    }
    let inputs = machine.inputs().map_err(|e| e.to_string())?;
    let key = inputs.key();
    let slot = TemplateSlot::new(cache_dir, &key);
    if let Some(reason) = slot.recent_failure(boot_timeout) {
        return Err(format!("the template failed recently: {reason}"));
    }
    let mut template_build = Duration::ZERO;
    let build = match slot.current() {
        Some(build) => build,
        None => {
            let started = Instant::now();
            let build = ensure_template(&slot, machine, inputs, boot_timeout)?;
            template_build = started.elapsed();
            build
        }
    };
    // Shared: prune (exclusive) cannot remove the build while a clone loads it.
    let _lock = match slot.lock(false, boot_timeout) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Err("the template stayed locked".into()),
        Err(e) => return Err(e.to_string()),
    };
    match clone(&build, paths, machine) {
        Ok(mut outcome) => {
            outcome.key = key;
            outcome.template_build = template_build;
            if let Err(e) = build.add_user(paths.dir()) {
                tracing::warn!(error = %e, "cannot record the template's user");
            }
            Ok(outcome)
        }
        Err(failure) => {
            tracing::warn!(template = %build.dir().display(), reason = %failure.reason, "clone failed; booting cold");
            if failure.template_broken {
                slot.retire_current();
                slot.note_failure(&failure.reason, false, boot_timeout);
            }
            Err(format!("clone failed: {}", failure.reason))
        }
    }
}

/// Make the template of `machine` now unless it exists; returns its key.
pub(super) fn prepare(
    cache_dir: &Path,
    machine: &Machine<'_>,
    boot_timeout: Duration,
) -> Result<String, String> {
    if !template::templates_enabled() {
        return Err(format!("templates are off ({}=off)", template::TEMPLATES_ENV));
    }
    let inputs = machine.inputs().map_err(|e| e.to_string())?;
    let key = inputs.key();
    let slot = TemplateSlot::new(cache_dir, &key);
    if slot.current().is_none() {
        ensure_template(&slot, machine, inputs, boot_timeout)?;
    }
    Ok(key)
}

/// The current build of `slot`, made now (under the exclusive lock) if missing.
fn ensure_template(
    slot: &TemplateSlot,
    machine: &Machine<'_>,
    inputs: TemplateInputs,
    boot_timeout: Duration,
) -> Result<TemplateBuild, String> {
    // Another process may be building it: wait for its boot and save.
    let wait = boot_timeout * 2 + Duration::from_secs(30);
    let _lock = match slot.lock(true, wait) {
        Ok(Some(lock)) => lock,
        Ok(None) => return Err("another process is still making the template".into()),
        Err(e) => return Err(e.to_string()),
    };
    if let Some(build) = slot.current() {
        return Ok(build);
    }
    slot.clear_incomplete();
    let build = slot.new_build().map_err(|e| e.to_string())?;
    match make_template(&build, machine, inputs, slot.key(), boot_timeout) {
        Ok(meta) => {
            tracing::info!(key = %meta.key, boot_ms = meta.boot_ms, save_ms = meta.save_ms, state_bytes = meta.state_bytes, "template made");
            slot.set_current(&build).map_err(|e| e.to_string())?;
            Ok(build)
        }
        Err(e) => {
            if let Some(pid) = process::qemu_pid(build.paths()) {
                process::kill_and_wait(pid);
            }
            let _ = std::fs::remove_dir_all(build.dir());
            let reason = format!("cannot make the template: {e}");
            slot.note_failure(&reason, matches!(e, BackendError::Unsupported { .. }), boot_timeout);
            Err(reason)
        }
    }
}

fn make_template(
    build: &TemplateBuild,
    machine: &Machine<'_>,
    inputs: TemplateInputs,
    key: &str,
    boot_timeout: Duration,
) -> Result<TemplateMeta, BackendError> {
    let started = Instant::now();
    launch::create_overlay(&machine.env.rootfs, &build.disk())?;
    let ram = build.ram();
    let mut config =
        machine.config(build.paths(), Some(MemoryFile { path: &ram, shared: true }), false);
    // A template never holds a workspace's volume: placeholders, never mounted.
    config.volume = None;
    launch::validate(&config)?;
    let outcome = boot::boot(&config, boot_timeout)?;
    if !outcome.hello.capabilities.iter().any(|c| c == CLONE_CAPABILITY) {
        if let Some(pid) = process::qemu_pid(build.paths()) {
            process::kill_and_wait(pid);
        }
        return Err(BackendError::Unsupported {
            backend: "qemu",
            operation: format!(
                "cloning with guest agent {} (no {CLONE_CAPABILITY}; rebuild the boot assets with `scripts/setup`)",
                outcome.hello.agent_version
            ),
        });
    }
    warm_up(build.paths())?;
    let boot_ms = ms(started.elapsed());
    let save_started = Instant::now();
    save_state(build.paths(), &build.state())?;
    if !process::wait_gone(outcome.pid, Duration::from_secs(10)) {
        process::kill_and_wait(outcome.pid);
    }
    let save_ms = ms(save_started.elapsed());
    super::cgroup::remove(build.paths());
    boot::remove_runtime_files(build.paths(), AGENT_PORT_COUNT)?;
    for file in [build.ram(), build.state(), build.disk()] {
        File::open(&file)
            .and_then(|f| f.sync_all())
            .map_err(|e| BackendError::io(format!("cannot sync {}", file.display()), e))?;
    }
    let state_bytes = std::fs::metadata(build.state()).map(|m| m.len()).unwrap_or(0);
    let meta = TemplateMeta {
        format: template::TEMPLATE_FORMAT,
        key: key.to_owned(),
        inputs,
        environment: machine.spec.environment.clone(),
        vcpu_count: machine.spec.vcpu_count,
        mem_mib: machine.spec.mem_mib,
        network: machine.spec.network.enabled,
        accel: format!("{:?}", machine.accel).to_lowercase(),
        qemu_version: launch::qemu_version().unwrap_or_else(|_| "unknown".into()),
        created_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        state_bytes,
        boot_ms,
        save_ms,
    };
    build.write_meta(&meta)?;
    Ok(meta)
}

/// Run what the first exec of every clone would run anyway, then flush the disk.
fn warm_up(paths: &SandboxPaths) -> Result<(), BackendError> {
    let mut channel = QemuChannel::connect_with_timeout(paths.dir(), Duration::from_secs(10))?;
    let exec = Request::Exec(ExecRequest {
        command: "true".into(),
        cwd: "/".into(),
        env: BTreeMap::new(),
        timeout_ms: 30_000,
        max_output_bytes: 1024,
    });
    match channel.call(exec, Duration::from_secs(40))? {
        Response::Exec(out) if out.exit_code == 0 => {}
        other => {
            return Err(BackendError::Boot(format!("template warm-up exec failed: {other:?}")))
        }
    }
    channel.call(Request::Sync, Duration::from_secs(30))?;
    Ok(())
}

fn ignore_shared(qmp: &mut QmpClient) -> Result<(), BackendError> {
    qmp.execute(
        "migrate-set-capabilities",
        Some(json!({ "capabilities": [{ "capability": "x-ignore-shared", "state": true }] })),
    )?;
    Ok(())
}

/// Stop the guest and save its device state to `state`; QEMU quits after.
fn save_state(paths: &SandboxPaths, state: &Path) -> Result<(), BackendError> {
    let mut qmp = QmpClient::connect(&paths.qmp_socket(), QMP_TIMEOUT)?;
    ignore_shared(&mut qmp)?;
    qmp.execute("stop", None)?;
    // The build dir belongs to the QEMU user: never follow a name it left there.
    remove_if_exists(state)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(state)
        .map_err(|e| BackendError::io(format!("cannot create {}", state.display()), e))?;
    qmp.pass_fd(STATE_FD, file.as_fd())?;
    qmp.execute("migrate", Some(json!({ "uri": format!("fd:{STATE_FD}") })))?;
    qmp.wait_for_migration(MIGRATION_TIMEOUT)?;
    qmp.quit()?;
    Ok(())
}

/// Why a clone failed, and whether the template is to blame.
#[derive(Debug)]
struct CloneFailure {
    reason: String,
    template_broken: bool,
}

fn clone(
    build: &TemplateBuild,
    paths: &SandboxPaths,
    machine: &Machine<'_>,
) -> Result<CloneOutcome, CloneFailure> {
    let local = |e: BackendError| CloneFailure { reason: e.to_string(), template_broken: false };
    let started = Instant::now();
    create_clone_overlay(&build.disk(), &paths.disk()).map_err(local)?;
    let disk_create = started.elapsed();
    let ram = build.ram();
    let config = machine.config(paths, Some(MemoryFile { path: &ram, shared: false }), true);
    boot::remove_runtime_files(paths, AGENT_PORT_COUNT).map_err(local)?;
    let launch_started = Instant::now();
    let deadline = Instant::now() + QEMU_START_TIMEOUT;
    let qemu_launch =
        launch::launch(&config, deadline).map(|l| l.elapsed).map_err(|e| CloneFailure {
            reason: e.to_string(),
            // QEMU refusing the same command line the template ran with: the host changed.
            template_broken: true,
        })?;
    let result = restore_and_greet(build, paths, launch_started);
    match result {
        Ok((pid, hello, restore, launch_to_hello)) => Ok(CloneOutcome {
            pid,
            hello,
            key: String::new(),
            build_dir: build.dir().display().to_string(),
            disk_create,
            qemu_launch,
            restore,
            launch_to_hello,
            template_build: Duration::ZERO,
        }),
        Err(failure) => {
            if let Some(pid) = process::qemu_pid(paths) {
                process::kill_and_wait(pid);
            }
            let _ = boot::remove_runtime_files(paths, AGENT_PORT_COUNT);
            let _ = remove_if_exists(&paths.disk());
            Err(failure)
        }
    }
}

fn restore_and_greet(
    build: &TemplateBuild,
    paths: &SandboxPaths,
    launch_started: Instant,
) -> Result<(i32, AgentHello, Duration, Duration), CloneFailure> {
    let broken = |e: BackendError| CloneFailure { reason: e.to_string(), template_broken: true };
    let mut qmp = QmpClient::connect(&paths.qmp_socket(), QMP_TIMEOUT)
        .map_err(|e| CloneFailure { reason: e.to_string(), template_broken: false })?;
    ignore_shared(&mut qmp).map_err(broken)?;
    let state = std::os::unix::fs::OpenOptionsExt::custom_flags(
        std::fs::OpenOptions::new().read(true),
        libc::O_NOFOLLOW,
    )
    .open(build.state())
    .map_err(|e| CloneFailure {
        reason: format!("cannot open {}: {e}", build.state().display()),
        template_broken: true,
    })?;
    qmp.pass_fd(STATE_FD, state.as_fd()).map_err(|e| broken(e.into()))?;
    qmp.execute("migrate-incoming", Some(json!({ "uri": format!("fd:{STATE_FD}") })))
        .map_err(|e| broken(e.into()))?;
    qmp.wait_for_migration(MIGRATION_TIMEOUT).map_err(|e| broken(e.into()))?;
    let restore = launch_started.elapsed();
    qmp.execute("cont", None).map_err(|e| broken(e.into()))?;
    drop(qmp);
    let deadline = Instant::now() + CLONE_HELLO_TIMEOUT;
    let (pid, hello, mut session) =
        boot::wait_for_hello(paths, deadline, CLONE_HELLO_TIMEOUT).map_err(broken)?;
    let launch_to_hello = launch_started.elapsed();
    make_unique(&mut session).map_err(broken)?;
    // Same as after a cold boot: from here on user code may run.
    boot::cap_console(paths)
        .map_err(|e| CloneFailure { reason: e.to_string(), template_broken: false })?;
    Ok((pid, hello, restore, launch_to_hello))
}

/// Give a fresh clone its own wall clock and RNG state.
fn make_unique(session: &mut Session) -> Result<(), BackendError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let timeout = Duration::from_secs(10);
    let mut entropy = [0u8; ENTROPY_BYTES];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut entropy))
        .map_err(|e| BackendError::io("cannot read host entropy from /dev/urandom", e))?;
    let request = Request::AddEntropy {
        data_b64: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, entropy),
    };
    expect_done(session.call(request, deadline, timeout)?, "add_entropy")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| BackendError::Protocol(format!("host clock before 1970: {e}")))?;
    let unix_time_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
    expect_done(session.call(Request::SetClock { unix_time_ns }, deadline, timeout)?, "set_clock")
}

fn expect_done(response: Response, what: &str) -> Result<(), BackendError> {
    match response {
        Response::Done => Ok(()),
        other => Err(BackendError::Protocol(format!("the agent refused {what}: {other:?}"))),
    }
}

/// `disk` as a qcow2 overlay on the template's frozen qcow2 overlay.
fn create_clone_overlay(template_disk: &Path, disk: &Path) -> Result<(), BackendError> {
    remove_if_exists(disk)?;
    let output = launch::run_qemu_img(|c| {
        c.args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"]).arg(template_disk).arg(disk);
    })?;
    if !output.status.success() {
        return Err(BackendError::Boot(format!(
            "qemu-img could not create the overlay {} on {}: {}",
            disk.display(),
            template_disk.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}
