//! The QEMU command line, the overlay disk, and starting QEMU detached.
//!
//! QEMU is detached by pyro ([`super::spawn`]), not by `-daemonize`, so it can run
//! under its whole seccomp filter ([`SANDBOX_OPTION`]). [`launch`] returns once QMP
//! answers, which QEMU only does after it opened every file and socket: by then the
//! pidfile, QMP socket and agent sockets exist, and the VM lives on after the calling
//! process exits.
//!
//! QEMU reaches its files without walking any directory above the sandbox dir, so it
//! works under an unprivileged uid whatever the permissions of `/root` or the state
//! directory: files inside the sandbox dir are named relative to its working directory
//! (the sandbox dir), and the read-only kernel, initramfs and base image are opened by
//! pyro and inherited (`/proc/self/fd/<n>`). The absolute sandbox dir still appears on
//! the command line, as the guest name ([`identity_arg`]), which is how a pid is
//! recognised as this sandbox's QEMU.

use super::super::{BackendError, NetworkSpec, VolumeSpec};
use super::accel::accel_args;
use super::cgroup::{self, Limits, SandboxCgroup};
use super::confine::{self, BackingImage};
use super::layout::{remove_if_exists, SandboxPaths, CONSOLE_LOG, DISK_FILE, QMP_SOCKET};
use super::process;
use super::qmp::QmpClient;
use super::spawn::{self, Credentials, DetachedCommand, SpawnError};
use pyro_contract::results::Accel;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable overriding the QEMU binary.
pub const QEMU_ENV: &str = "PYRO_QEMU";
/// Environment variable overriding the `qemu-img` binary.
pub const QEMU_IMG_ENV: &str = "PYRO_QEMU_IMG";

/// Kernel command line shared by every boot (measured in QEMU-NOTES: each option
/// trims guest boot time; `panic=-1` with `-no-reboot` makes a panicking guest exit).
pub const KERNEL_CMDLINE: &str = "console=ttyS0 quiet reboot=t panic=-1 mitigations=off lsm= cryptomgr.notests \
                                  tsc=reliable no_timer_check i8042.noaux i8042.nokbd i8042.nopnp audit=0 \
                                  random.trust_cpu=on";

/// QEMU's seccomp filter: every system call family QEMU 7.2 can deny is denied
/// (obsolete calls, set*uid/set*gid/setsid, fork/exec, scheduler and CPU affinity
/// changes). A QEMU that tries one dies with SIGSYS (or gets EPERM), so pyro never
/// asks QEMU for anything that spawns (e.g. `migrate uri=exec:`; use `fd:`).
pub const SANDBOX_OPTION: &str =
    "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// Prefix of the guest name that identifies a sandbox's QEMU (see [`identity_arg`]).
pub const IDENTITY_PREFIX: &str = "pyro:";

/// Guest address on QEMU's user network.
pub const GUEST_IP: &str = "10.0.2.15";

/// The QEMU binary: `$PYRO_QEMU`, else `qemu-system-x86_64` from `PATH`.
pub fn qemu_binary() -> PathBuf {
    std::env::var_os(QEMU_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("qemu-system-x86_64"))
}

/// The `qemu-img` binary: `$PYRO_QEMU_IMG`, else the one next to `$PYRO_QEMU`, else
/// `qemu-img` from `PATH`.
pub fn qemu_img_binary() -> PathBuf {
    if let Some(img) = std::env::var_os(QEMU_IMG_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(img);
    }
    if let Some(qemu) = std::env::var_os(QEMU_ENV).filter(|v| !v.is_empty()) {
        if let Some(sibling) = Path::new(&qemu).parent().map(|d| d.join("qemu-img")) {
            if sibling.is_file() {
                return sibling;
            }
        }
    }
    PathBuf::from("qemu-img")
}

/// Run `binary --version` and return its first line.
fn binary_version(binary: &Path, what: &str) -> Result<String, BackendError> {
    let output = Command::new(binary).arg("--version").stdin(Stdio::null()).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            BackendError::MissingAsset {
                what: format!("{what} (install the Debian package with `scripts/setup`, or set {QEMU_ENV})"),
                path: binary.to_path_buf(),
            }
        } else {
            BackendError::io(format!("cannot run {}", binary.display()), e)
        }
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let first = stdout.lines().next().unwrap_or_default().trim().to_owned();
    if !output.status.success() || first.is_empty() {
        return Err(BackendError::Boot(format!(
            "`{} --version` failed ({}): {}",
            binary.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(first)
}

/// The version line of the QEMU binary, e.g. `QEMU emulator version 7.2.22 (...)`.
pub fn qemu_version() -> Result<String, BackendError> {
    binary_version(&qemu_binary(), "QEMU (qemu-system-x86_64)")
}

/// The version line of `qemu-img`.
pub fn qemu_img_version() -> Result<String, BackendError> {
    binary_version(&qemu_img_binary(), "qemu-img")
}

/// Everything the QEMU command line depends on.
#[derive(Debug, Clone)]
pub struct LaunchConfig<'a> {
    /// The sandbox directory.
    pub paths: &'a SandboxPaths,
    /// Accelerator.
    pub accel: Accel,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// `vmlinux`.
    pub kernel: &'a Path,
    /// `initrd.img`.
    pub initrd: &'a Path,
    /// Network.
    pub network: &'a NetworkSpec,
    /// Number of agent ports.
    pub agent_ports: usize,
    /// Guest RAM in a file (templates and their clones); anonymous memory when `None`.
    pub memory_file: Option<MemoryFile<'a>>,
    /// Start paused, waiting for `migrate-incoming` (`-incoming defer`): a clone.
    pub incoming: bool,
    /// Run QEMU as this user and group (pyro must be root); `None`: pyro's own. Under
    /// another user QEMU gets every backing image and the RAM file as inherited files
    /// (see `confine.rs`).
    pub credentials: Option<Credentials>,
    /// The workspace volume's disks; `None`: placeholders (a fresh writable overlay in
    /// the sandbox dir over `empty_volume`, and `empty_volume` as the baseline), which a
    /// template and a one-shot VM get and never mount.
    pub volume: Option<&'a VolumeSpec>,
    /// The shared empty volume image ([`super::volume::empty_image`]).
    pub empty_volume: &'a Path,
}

/// File name of the placeholder volume overlay in a sandbox dir.
pub const VOLUME_PLACEHOLDER: &str = "volume-placeholder.qcow2";

/// The names QEMU opens the volume's disks by (always files pyro opened for it).
#[derive(Debug, Clone)]
pub struct VolumeFiles {
    /// The writable overlay.
    pub active: PathBuf,
    /// Its backing chain, nearest first (the baseline image last).
    pub backing: Vec<BackingImage>,
    /// QMP node names of the overlay, then of each backing image
    /// ([`super::volume::node_name`]), for snapshots and merges of the running chain.
    pub node_names: Vec<String>,
    /// The baseline image, for the read-only baseline disk.
    pub baseline: PathBuf,
}

/// Guest RAM backed by a file (`memory-backend-file`).
#[derive(Debug, Clone, Copy)]
pub struct MemoryFile<'a> {
    /// The RAM file.
    pub path: &'a Path,
    /// `share=on` (a template: guest writes reach the file) or `share=off` (a clone: a
    /// private copy-on-write mapping of it).
    pub shared: bool,
}

/// The names QEMU opens its inputs outside the sandbox dir by: paths, or
/// `/proc/self/fd/<n>` of files pyro opened for it.
#[derive(Debug, Clone)]
pub struct InputFiles {
    /// The kernel.
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The disk's backing chain, nearest first, when it is given explicitly (empty:
    /// QEMU follows the paths in the image headers).
    pub backing: Vec<BackingImage>,
    /// The RAM file, when there is one.
    pub memory: Option<PathBuf>,
    /// The volume's disks.
    pub volume: VolumeFiles,
}

impl InputFiles {
    /// The paths of `config` as they are, with fixed placeholder names for the volume
    /// (whose real names are inherited files, see [`launch`]): the template key is made
    /// from these.
    pub fn paths(config: &LaunchConfig<'_>) -> Self {
        InputFiles {
            kernel: config.kernel.to_path_buf(),
            initrd: config.initrd.to_path_buf(),
            backing: Vec::new(),
            memory: config.memory_file.map(|m| m.path.to_path_buf()),
            volume: VolumeFiles {
                active: PathBuf::from(VOLUME_PLACEHOLDER),
                backing: Vec::new(),
                node_names: vec![super::volume::node_name(Path::new(VOLUME_PLACEHOLDER))],
                baseline: PathBuf::from("/pyro-volume/baseline"),
            },
        }
    }
}

/// `,backing.driver=..,backing.read-only=on,backing.file.filename=..` nested for each
/// image of `chain` (nearest first), with `backing.node-name=` from `node_names` where
/// given.
fn backing_options(drive: &mut OsString, chain: &[BackingImage], node_names: &[String]) {
    let mut prefix = String::from(",");
    for (i, image) in chain.iter().enumerate() {
        prefix.push_str("backing.");
        drive.push(format!("{prefix}driver={}{prefix}read-only=on", image.format));
        if let Some(name) = node_names.get(i) {
            drive.push(format!("{prefix}node-name={name}"));
        }
        drive.push(opt_path(&format!("{prefix}file.filename="), &image.path));
    }
}

/// `-name` value naming the sandbox dir: it marks the process as this sandbox's QEMU
/// (compared with `/proc/<pid>/cmdline`; QEMU never opens it).
pub fn identity_arg(paths: &SandboxPaths) -> OsString {
    let mut name = OsString::from(IDENTITY_PREFIX);
    name.push(opt_value(paths.dir().as_os_str()));
    name
}

/// Escape a value for QEMU's `key=value,...` option syntax (a comma is doubled).
fn opt_value(value: &OsStr) -> OsString {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    for b in bytes {
        out.push(*b);
        if *b == b',' {
            out.push(b',');
        }
    }
    OsString::from(std::ffi::OsStr::from_bytes(&out))
}

/// `prefix` followed by an escaped path.
fn opt_path(prefix: &str, path: &Path) -> OsString {
    let mut s = OsString::from(prefix);
    s.push(opt_value(path.as_os_str()));
    s
}

/// The kernel command line for a sandbox.
pub fn kernel_cmdline(network_enabled: bool, accel: Accel) -> String {
    let mut line = KERNEL_CMDLINE.to_owned();
    if accel != Accel::Kvm && guest_aslr_off() {
        // Under TCG, QEMU 7.2 keys translated code by guest virtual address, so with
        // address-space randomisation every new process (each exec) maps the shell and
        // libc somewhere new and QEMU translates them again: measured, an exec of `true`
        // took 27-40 ms and the code cache grew ~0.8 MiB per exec; with `norandmaps`
        // 8-14 ms and the cache stays small. KVM runs guest code natively, so it keeps ASLR.
        line.push_str(" norandmaps");
    }
    if network_enabled {
        line.push_str(" pyro.net=1");
    }
    line
}

/// Environment variable: `on` keeps address-space randomisation in TCG guests (slower
/// execs, more QEMU memory; see [`kernel_cmdline`]).
pub const GUEST_ASLR_ENV: &str = "PYRO_GUEST_ASLR";

/// Whether TCG guests boot with `norandmaps` (the default; `PYRO_GUEST_ASLR=on` keeps ASLR).
fn guest_aslr_off() -> bool {
    !matches!(std::env::var(GUEST_ASLR_ENV).as_deref(), Ok("on") | Ok("1") | Ok("true"))
}

/// The `-netdev` value for the user network with the published ports.
fn netdev_value(network: &NetworkSpec) -> String {
    let mut value = String::from("user,id=n0");
    for (host, guest) in &network.published_ports {
        value.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
    }
    value
}

/// Check what QEMU would reject less clearly.
pub fn validate(config: &LaunchConfig<'_>) -> Result<(), BackendError> {
    let bad = |msg: String| Err(BackendError::Boot(msg));
    if config.vcpu_count == 0 {
        return bad("vcpu_count must be at least 1".into());
    }
    if config.mem_mib < 64 {
        return bad(format!(
            "mem_mib {} is too small: the guest needs at least 64 MiB",
            config.mem_mib
        ));
    }
    if !config.network.enabled && !config.network.published_ports.is_empty() {
        return bad("published ports need the network enabled".into());
    }
    for (host, guest) in &config.network.published_ports {
        if *host == 0 || *guest == 0 {
            return bad(format!("cannot publish port {host}->{guest}: ports must be 1-65535"));
        }
    }
    Ok(())
}

/// The QEMU arguments (without the binary) for a sandbox, whose read-only inputs QEMU
/// opens as `files`. QEMU runs in the sandbox dir: its own files are relative names.
pub fn qemu_args(config: &LaunchConfig<'_>, files: &InputFiles) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    match config.memory_file {
        None => push(&["-M", "q35"]),
        Some(_) => push(&["-M", "q35,memory-backend=mem0"]),
    }
    let accel = accel_args(config.accel);
    args.extend(accel);
    let mem = config.mem_mib.to_string();
    let smp = config.vcpu_count.to_string();
    args.extend(
        [
            "-m",
            &mem,
            "-smp",
            &smp,
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-sandbox",
            SANDBOX_OPTION,
        ]
        .iter()
        .map(OsString::from),
    );
    if let Some(memory) = config.memory_file {
        args.push("-object".into());
        let mut object =
            OsString::from(format!("memory-backend-file,id=mem0,size={}M,", config.mem_mib));
        object.push(opt_path("mem-path=", files.memory.as_deref().unwrap_or(memory.path)));
        object.push(if memory.shared { ",share=on" } else { ",share=off" });
        args.push(object);
    }
    if config.incoming {
        args.push("-incoming".into());
        args.push("defer".into());
    }
    args.push("-name".into());
    args.push(identity_arg(config.paths));
    // No `-pidfile`: QEMU resolves that path with realpath(3), which needs every
    // directory above the sandbox dir to be searchable by the QEMU user (`/root` is
    // not). pyro writes the pidfile itself from the pid it spawned ([`write_pidfile`]).
    args.push("-qmp".into());
    args.push(format!("unix:{QMP_SOCKET},server=on,wait=off").into());
    // The console starts on a file and is switched to a ring buffer in QEMU once the
    // agent is up (console.rs explains the cap).
    args.push("-chardev".into());
    args.push(format!("file,id={},path={CONSOLE_LOG}", super::console::CONSOLE_CHARDEV).into());
    args.push("-serial".into());
    args.push(format!("chardev:{}", super::console::CONSOLE_CHARDEV).into());
    args.push("-kernel".into());
    args.push(files.kernel.clone().into());
    args.push("-initrd".into());
    args.push(files.initrd.clone().into());
    args.push("-append".into());
    args.push(kernel_cmdline(config.network.enabled, config.accel).into());
    args.push("-drive".into());
    let mut drive =
        OsString::from(format!("file={DISK_FILE},if=none,id=root,format=qcow2,cache=writeback"));
    backing_options(&mut drive, &files.backing, &[]);
    args.push(drive);
    args.extend(["-device", "virtio-blk-pci,drive=root"].map(OsString::from));
    // The workspace volume and its baseline, found by the agent by serial. Same device
    // line in templates (placeholders) and clones (the workspace's own chain).
    let mut volume = opt_path("file=", &files.volume.active);
    volume.push(",if=none,id=vol,format=qcow2,cache=writeback");
    let names = &files.volume.node_names;
    if let Some(top) = names.first() {
        volume.push(format!(",node-name={top}"));
    }
    backing_options(&mut volume, &files.volume.backing, names.get(1..).unwrap_or_default());
    let mut baseline = opt_path("file=", &files.volume.baseline);
    baseline.push(",if=none,id=base,format=raw,read-only=on");
    args.extend([
        "-drive".into(),
        volume,
        "-device".into(),
        format!("virtio-blk-pci,drive=vol,serial={}", pyro_protocol::WORKSPACE_VOLUME_SERIAL)
            .into(),
        "-drive".into(),
        baseline,
        "-device".into(),
        format!("virtio-blk-pci,drive=base,serial={}", pyro_protocol::BASELINE_VOLUME_SERIAL)
            .into(),
    ]);
    args.extend(["-device", "virtio-serial-pci,id=vs0"].map(OsString::from));
    for i in 0..config.agent_ports {
        args.push("-chardev".into());
        args.push(
            format!(
                "socket,id=agent{i},path={},server=on,wait=off",
                SandboxPaths::agent_socket_name(i)
            )
            .into(),
        );
        args.push("-device".into());
        args.push(
            format!(
                "virtserialport,bus=vs0.0,chardev=agent{i},name={}",
                pyro_protocol::agent_port_name(i)
            )
            .into(),
        );
    }
    if config.memory_file.is_none() {
        // The guest hands freed memory back (free page reporting), so a used, idle guest
        // shrinks again. Not with RAM in a file: QEMU 7.2 discards reported pages of a
        // file-backed RAM block with fallocate(PUNCH_HOLE) even when the mapping is
        // private, which would zero those pages in the template every clone maps.
        args.push("-device".into());
        args.push("virtio-balloon-pci,free-page-reporting=on".into());
    }
    if config.network.enabled {
        args.push("-netdev".into());
        args.push(netdev_value(config.network).into());
        args.push("-device".into());
        args.push("virtio-net-pci,netdev=n0,romfile=".into());
    }
    args
}

/// Run `qemu-img` with the arguments `args` adds; a missing binary says how to install it.
pub fn run_qemu_img(args: impl FnOnce(&mut Command)) -> Result<std::process::Output, BackendError> {
    let binary = qemu_img_binary();
    let mut command = Command::new(&binary);
    args(&mut command);
    command.stdin(Stdio::null()).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            BackendError::MissingAsset {
                what: "qemu-img (install qemu-utils with `scripts/setup`)".into(),
                path: binary.clone(),
            }
        } else {
            BackendError::io(format!("cannot run {}", binary.display()), e)
        }
    })
}

/// Create `disk` as a qcow2 overlay backed by the raw image `base` (any old `disk` is
/// replaced).
pub fn create_overlay(base: &Path, disk: &Path) -> Result<(), BackendError> {
    super::layout::remove_if_exists(disk)?;
    let output = run_qemu_img(|c| {
        c.args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"]).arg(base).arg(disk);
    })?;
    if !output.status.success() {
        return Err(BackendError::Boot(format!(
            "qemu-img could not create the overlay {} on {}: {}",
            disk.display(),
            base.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// How often [`launch`] checks whether QMP answers.
const READY_POLL: Duration = Duration::from_millis(5);
/// How long [`launch`] waits for the supervisor's record of a QEMU that died at start.
const EXIT_RECORD_WAIT: Duration = Duration::from_millis(500);
/// Bytes of `qemu.log` quoted when QEMU fails to start.
const LOG_TAIL_BYTES: u64 = 4096;

/// A QEMU that [`launch`] started.
#[derive(Debug, Clone)]
pub struct Launched {
    /// Its pid.
    pub pid: i32,
    /// From the first fork until QMP answered.
    pub elapsed: Duration,
    /// Its cgroup, or why it has none.
    pub cgroup: Result<SandboxCgroup, String>,
}

/// Open a read-only input QEMU inherits.
fn open_input(path: &Path, what: &str) -> Result<File, BackendError> {
    File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            BackendError::MissingAsset { what: what.to_owned(), path: path.to_path_buf() }
        } else {
            BackendError::io(format!("cannot open {}", path.display()), e)
        }
    })
}

/// Create a fresh file in the sandbox dir that QEMU (or its supervisor) writes to. The
/// sandbox dir may belong to the QEMU user, so an old name is removed and the new file
/// made with O_EXCL: a symlink left there is never followed.
fn create_output(path: &Path) -> Result<File, BackendError> {
    remove_if_exists(path)?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| BackendError::io(format!("cannot create {}", path.display()), e))
}

/// Open (a template: create) the RAM file for QEMU under `credentials`. QEMU reopens
/// it read-write through `/proc/self/fd/<n>`, which checks the file's own permissions,
/// so it must belong to the QEMU user.
fn open_memory_file(
    memory: MemoryFile<'_>,
    credentials: Credentials,
) -> Result<File, BackendError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(memory.shared)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(memory.path)
        .map_err(|e| BackendError::io(format!("cannot open {}", memory.path.display()), e))?;
    // Also for a clone of a template made before QEMU ran under its own user.
    std::os::unix::fs::fchown(&file, Some(credentials.uid), Some(credentials.gid)).map_err(
        |e| BackendError::io(format!("cannot give {} to the QEMU user", memory.path.display()), e),
    )?;
    Ok(file)
}

fn fd_path(file: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// The last bytes of QEMU's log, for error messages.
fn log_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else { return String::new() };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut text = Vec::new();
    let skip = len.saturating_sub(LOG_TAIL_BYTES);
    if std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(skip)).is_err()
        || file.take(LOG_TAIL_BYTES).read_to_end(&mut text).is_err()
    {
        return String::new();
    }
    String::from_utf8_lossy(&text).trim().to_owned()
}

/// Why a QEMU that died during start died: its supervisor's record and its log.
pub fn start_failure(paths: &SandboxPaths, pid: i32) -> String {
    let deadline = Instant::now() + EXIT_RECORD_WAIT;
    let end = loop {
        match spawn::read_exit_record(&paths.qemu_exit()) {
            Some(record) if record.pid == pid => break Some(record.end),
            _ if Instant::now() >= deadline => break None,
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let mut message = match end {
        Some(end) => format!("QEMU {end}"),
        None => "QEMU exited".to_owned(),
    };
    let log = log_tail(&paths.qemu_log());
    if !log.is_empty() {
        message.push_str(": ");
        message.push_str(&log);
    }
    message
}

/// Start QEMU detached for `config` and wait (until `deadline`) until QMP answers.
pub fn launch(config: &LaunchConfig<'_>, deadline: Instant) -> Result<Launched, BackendError> {
    let paths = config.paths;
    let started = Instant::now();
    let kernel = open_input(config.kernel, "the guest kernel")?;
    let initrd = open_input(config.initrd, "the guest initramfs")?;
    let mut inherit = vec![];
    let volume = open_volume(config, &mut inherit)?;
    let mut files = InputFiles {
        kernel: fd_path(&kernel),
        initrd: fd_path(&initrd),
        backing: Vec::new(),
        memory: None,
        volume,
    };
    inherit.push(kernel);
    inherit.push(initrd);
    if let Some(credentials) = config.credentials {
        // QEMU cannot walk to these under its own uid: it gets them open.
        confine::hand_over_sandbox(paths, credentials)?;
        for image in confine::backing_chain(&paths.disk())? {
            let file = open_input(&image.path, "a backing image of the disk")?;
            files.backing.push(BackingImage { format: image.format, path: fd_path(&file) });
            inherit.push(file);
        }
        if let Some(memory) = config.memory_file {
            let file = open_memory_file(memory, credentials)?;
            files.memory = Some(fd_path(&file));
            inherit.push(file);
        }
    }
    let cgroup = cgroup::prepare(paths, Limits::for_guest(config.vcpu_count, config.mem_mib));
    if let Err(reason) = &cgroup {
        tracing::debug!(%reason, "QEMU runs without a cgroup");
    }
    let mut cgroup_procs = Vec::new();
    for procs in cgroup.iter().flat_map(|c| c.procs.iter()) {
        cgroup_procs.push(
            std::fs::OpenOptions::new()
                .write(true)
                .open(procs)
                .map_err(|e| BackendError::io(format!("cannot open {}", procs.display()), e))?,
        );
    }
    let command = DetachedCommand {
        program: qemu_binary(),
        args: qemu_args(config, &files),
        cwd: paths.dir().to_path_buf(),
        log: create_output(&paths.qemu_log())?,
        exit_file: create_output(&paths.qemu_exit())?,
        cgroup_procs,
        inherit,
        credentials: config.credentials,
    };
    let pid = spawn::spawn_detached(&command).map_err(|e| match e {
        SpawnError::NotFound(path) => BackendError::MissingAsset {
            what: format!("QEMU (install qemu-system-x86 with `scripts/setup`, or set {QEMU_ENV})"),
            path,
        },
        other => BackendError::Boot(other.to_string()),
    })?;
    drop(command);
    if let Err(e) = write_pidfile(paths, pid) {
        process::kill_and_wait(pid);
        return Err(e);
    }
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if !process::pid_alive(pid) {
            return Err(BackendError::Boot(format!(
                "QEMU failed to start: {}",
                start_failure(paths, pid)
            )));
        }
        if remaining.is_zero() {
            process::kill_and_wait(pid);
            return Err(BackendError::Boot(
                "QEMU started but its QMP socket did not answer in time".into(),
            ));
        }
        // QEMU answers QMP from its main loop, which runs once every device, file and
        // socket is set up: the moment `-daemonize` used to return.
        if QmpClient::connect(
            &paths.qmp_socket(),
            remaining.clamp(Duration::from_millis(10), Duration::from_secs(2)),
        )
        .is_ok()
        {
            return Ok(Launched { pid, elapsed: started.elapsed(), cgroup });
        }
        std::thread::sleep(READY_POLL);
    }
}

/// Open the volume's disks for QEMU (into `inherit`) and name them; for placeholders,
/// make a fresh overlay in the sandbox dir first. The writable overlay is given to the
/// QEMU user: QEMU reopens `/proc/self/fd/<n>`, which checks the file's own permissions.
fn open_volume(
    config: &LaunchConfig<'_>,
    inherit: &mut Vec<File>,
) -> Result<VolumeFiles, BackendError> {
    let placeholder;
    let (active, layers, baseline): (&Path, &[PathBuf], &Path) = match config.volume {
        Some(spec) => (&spec.active, &spec.layers, &spec.baseline),
        None => {
            placeholder = config.paths.dir().join(VOLUME_PLACEHOLDER);
            super::volume::create_overlay(config.empty_volume, "raw", &placeholder)?;
            (&placeholder, &[], config.empty_volume)
        }
    };
    let active_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(active)
        .map_err(|e| BackendError::io(format!("cannot open {}", active.display()), e))?;
    if let Some(credentials) = config.credentials {
        std::os::unix::fs::fchown(&active_file, Some(credentials.uid), Some(credentials.gid))
            .map_err(|e| {
                BackendError::io(format!("cannot give {} to the QEMU user", active.display()), e)
            })?;
    }
    let mut names = VolumeFiles {
        active: fd_path(&active_file),
        backing: Vec::new(),
        node_names: vec![super::volume::node_name(active)],
        baseline: PathBuf::new(),
    };
    inherit.push(active_file);
    for image in layers.iter().rev().map(PathBuf::as_path).chain([baseline]) {
        let file = open_input(image, "a layer of the workspace volume")?;
        let format = super::volume::image_format(image).to_owned();
        names.backing.push(BackingImage { format, path: fd_path(&file) });
        names.node_names.push(super::volume::node_name(image));
        inherit.push(file);
    }
    let base = open_input(baseline, "the baseline image of the workspace volume")?;
    names.baseline = fd_path(&base);
    inherit.push(base);
    Ok(names)
}

/// Record QEMU's pid in the sandbox dir. The dir belongs to the QEMU user, so the
/// file is made anew with `O_EXCL` (a name QEMU left there is removed first, and a link
/// raced into its place fails the launch instead of being followed).
fn write_pidfile(paths: &SandboxPaths, pid: i32) -> Result<(), BackendError> {
    use std::io::Write;
    let path = paths.pidfile();
    remove_if_exists(&path)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
        .map_err(|e| BackendError::io(format!("cannot create {}", path.display()), e))?;
    file.write_all(format!("{pid}\n").as_bytes())
        .map_err(|e| BackendError::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcg_guests_boot_without_address_randomisation_and_kvm_guests_with_it() {
        assert_eq!(kernel_cmdline(false, Accel::Tcg), format!("{KERNEL_CMDLINE} norandmaps"));
        assert_eq!(kernel_cmdline(true, Accel::Kvm), format!("{KERNEL_CMDLINE} pyro.net=1"));
        assert!(kernel_cmdline(true, Accel::Tcg).ends_with(" norandmaps pyro.net=1"));
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    fn config<'a>(
        paths: &'a SandboxPaths,
        network: &'a NetworkSpec,
        accel: Accel,
    ) -> LaunchConfig<'a> {
        LaunchConfig {
            paths,
            accel,
            vcpu_count: 2,
            mem_mib: 512,
            kernel: Path::new("/c/boot/vmlinux"),
            initrd: Path::new("/c/boot/initrd.img"),
            network,
            agent_ports: 2,
            memory_file: None,
            incoming: false,
            credentials: None,
            volume: None,
            empty_volume: Path::new("/c/volume/empty-8g.ext4"),
        }
    }

    fn args_of(config: &LaunchConfig<'_>) -> Vec<String> {
        strings(&qemu_args(config, &InputFiles::paths(config)))
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
    }

    #[test]
    fn offline_tcg_command_line() {
        let paths = SandboxPaths::from_canonical(PathBuf::from("/w/ab/sandbox"));
        let network = NetworkSpec::default();
        let args = args_of(&config(&paths, &network, Accel::Tcg));
        let joined = args.join(" ");
        assert!(joined.starts_with("-M q35 -accel tcg,tb-size=64 -cpu max -m 512 -smp 2 -nodefaults -no-user-config -display none -no-reboot"), "{joined}");
        assert!(!joined.contains("-daemonize"), "pyro detaches QEMU itself");
        assert_eq!(
            value_after(&args, "-sandbox"),
            ["on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]
        );
        assert_eq!(value_after(&args, "-name"), ["pyro:/w/ab/sandbox"]);
        assert!(value_after(&args, "-pidfile").is_empty(), "pyro writes the pidfile itself");
        assert_eq!(value_after(&args, "-qmp"), ["unix:qmp.sock,server=on,wait=off"]);
        assert_eq!(value_after(&args, "-serial"), ["chardev:console"]);
        assert_eq!(value_after(&args, "-kernel"), ["/c/boot/vmlinux"]);
        assert_eq!(value_after(&args, "-initrd"), ["/c/boot/initrd.img"]);
        assert_eq!(value_after(&args, "-append"), [format!("{KERNEL_CMDLINE} norandmaps")]);
        assert_eq!(
            value_after(&args, "-drive"),
            [
                "file=disk.qcow2,if=none,id=root,format=qcow2,cache=writeback",
                "file=volume-placeholder.qcow2,if=none,id=vol,format=qcow2,cache=writeback,\
                 node-name=volume-placeholder",
                "file=/pyro-volume/baseline,if=none,id=base,format=raw,read-only=on"
            ]
        );
        assert_eq!(
            value_after(&args, "-chardev"),
            [
                "file,id=console,path=console.log",
                "socket,id=agent0,path=agent-0.sock,server=on,wait=off",
                "socket,id=agent1,path=agent-1.sock,server=on,wait=off"
            ]
        );
        assert_eq!(
            value_after(&args, "-device"),
            [
                "virtio-blk-pci,drive=root",
                "virtio-blk-pci,drive=vol,serial=pyro-workspace",
                "virtio-blk-pci,drive=base,serial=pyro-baseline",
                "virtio-serial-pci,id=vs0",
                "virtserialport,bus=vs0.0,chardev=agent0,name=org.pyro.agent.0",
                "virtserialport,bus=vs0.0,chardev=agent1,name=org.pyro.agent.1",
                "virtio-balloon-pci,free-page-reporting=on"
            ]
        );
        assert!(value_after(&args, "-netdev").is_empty(), "no NIC at all when offline");
        assert!(!joined.contains("pyro.net"));
    }

    #[test]
    fn networked_kvm_command_line_publishes_on_loopback_only() {
        let paths = SandboxPaths::from_canonical(PathBuf::from("/w/ab/sandbox"));
        let network = NetworkSpec { enabled: true, published_ports: vec![(18080, 80), (2222, 22)] };
        let args = args_of(&config(&paths, &network, Accel::Kvm));
        assert_eq!(value_after(&args, "-accel"), ["kvm"]);
        assert_eq!(value_after(&args, "-cpu"), ["host"]);
        assert_eq!(
            value_after(&args, "-netdev"),
            ["user,id=n0,hostfwd=tcp:127.0.0.1:18080-:80,hostfwd=tcp:127.0.0.1:2222-:22"]
        );
        assert!(value_after(&args, "-device").contains(&"virtio-net-pci,netdev=n0,romfile="));
        assert!(value_after(&args, "-append")[0].ends_with(" pyro.net=1"));
    }

    #[test]
    fn commas_in_paths_are_escaped_and_sandbox_files_are_relative() {
        let dir = PathBuf::from(format!("/w/a,b/{}", "x".repeat(110)));
        let paths = SandboxPaths::from_canonical(dir.clone());
        let network = NetworkSpec::default();
        let config = config(&paths, &network, Accel::Tcg);
        let args = args_of(&config);
        assert_eq!(value_after(&args, "-name")[0], format!("pyro:/w/a,,b/{}", "x".repeat(110)));
        let drive = value_after(&args, "-drive")[0];
        assert_eq!(drive, "file=disk.qcow2,if=none,id=root,format=qcow2,cache=writeback");
        assert_eq!(value_after(&args, "-qmp"), ["unix:qmp.sock,server=on,wait=off"]);
        assert_eq!(value_after(&args, "-chardev")[0], "file,id=console,path=console.log");
        assert!(value_after(&args, "-chardev")[1].contains("path=agent-0.sock,"));
    }

    #[test]
    fn an_explicit_backing_chain_nests_and_escapes() {
        let paths = SandboxPaths::from_canonical(PathBuf::from("/w"));
        let network = NetworkSpec::default();
        let config = config(&paths, &network, Accel::Tcg);
        let mut files = InputFiles::paths(&config);
        files.backing = vec![
            BackingImage { format: "qcow2".into(), path: "/proc/self/fd/7".into() },
            BackingImage { format: "raw".into(), path: "/c/a,b".into() },
        ];
        let args = strings(&qemu_args(&config, &files));
        assert_eq!(
            value_after(&args, "-drive")[..1],
            ["file=disk.qcow2,if=none,id=root,format=qcow2,cache=writeback,\
              backing.driver=qcow2,backing.read-only=on,backing.file.filename=/proc/self/fd/7,\
              backing.backing.driver=raw,backing.backing.read-only=on,\
              backing.backing.file.filename=/c/a,,b"]
        );
    }

    #[test]
    fn validation_rejects_what_qemu_would_reject_obscurely() {
        let paths = SandboxPaths::from_canonical(PathBuf::from("/w"));
        let offline_with_ports = NetworkSpec { enabled: false, published_ports: vec![(8080, 80)] };
        assert!(validate(&config(&paths, &offline_with_ports, Accel::Tcg)).is_err());
        let zero = NetworkSpec { enabled: true, published_ports: vec![(0, 80)] };
        assert!(validate(&config(&paths, &zero, Accel::Tcg)).is_err());
        let ok = NetworkSpec { enabled: true, published_ports: vec![(8080, 80)] };
        assert!(validate(&config(&paths, &ok, Accel::Tcg)).is_ok());
        let mut tiny = config(&paths, &ok, Accel::Tcg);
        tiny.mem_mib = 16;
        assert!(validate(&tiny).is_err());
    }
}
