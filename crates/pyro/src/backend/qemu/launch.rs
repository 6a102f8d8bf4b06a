//! The QEMU command line, the overlay disk, and starting QEMU detached.
//!
//! QEMU runs with `-daemonize`: the process we start forks the VM process, waits until
//! it has opened every file and socket, then exits. When [`launch`] returns, the
//! pidfile, QMP socket and agent sockets exist, and the VM lives on after the calling
//! process exits.

use super::super::{BackendError, NetworkSpec};
use super::accel::accel_args;
use super::layout::{SandboxPaths, QMP_SOCKET};
use pyro_contract::results::Accel;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
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
pub fn kernel_cmdline(network_enabled: bool) -> String {
    if network_enabled {
        format!("{KERNEL_CMDLINE} pyro.net=1")
    } else {
        KERNEL_CMDLINE.to_owned()
    }
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

/// The QEMU arguments (without the binary) for a sandbox.
pub fn qemu_args(config: &LaunchConfig<'_>) -> Vec<OsString> {
    let paths = config.paths;
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
            "-daemonize",
            "-no-reboot",
        ]
        .iter()
        .map(OsString::from),
    );
    if let Some(memory) = config.memory_file {
        args.push("-object".into());
        let mut object =
            OsString::from(format!("memory-backend-file,id=mem0,size={}M,", config.mem_mib));
        object.push(opt_path("mem-path=", memory.path));
        object.push(if memory.shared { ",share=on" } else { ",share=off" });
        args.push(object);
    }
    if config.incoming {
        args.push("-incoming".into());
        args.push("defer".into());
    }
    args.push("-pidfile".into());
    args.push(paths.pidfile().into());
    args.push("-qmp".into());
    let mut qmp = OsString::from("unix:");
    qmp.push(opt_value(paths.qemu_socket_arg(QMP_SOCKET).as_os_str()));
    qmp.push(",server=on,wait=off");
    args.push(qmp);
    // The console starts on a file and is switched to a ring buffer in QEMU once the
    // agent is up (console.rs explains the cap).
    args.push("-chardev".into());
    let mut console = OsString::from(format!("file,id={},path=", super::console::CONSOLE_CHARDEV));
    console.push(opt_value(paths.console_log().as_os_str()));
    args.push(console);
    args.push("-serial".into());
    args.push(format!("chardev:{}", super::console::CONSOLE_CHARDEV).into());
    args.push("-kernel".into());
    args.push(config.kernel.into());
    args.push("-initrd".into());
    args.push(config.initrd.into());
    args.push("-append".into());
    args.push(kernel_cmdline(config.network.enabled).into());
    args.push("-drive".into());
    let mut drive = opt_path("file=", &paths.disk());
    drive.push(",if=none,id=root,format=qcow2,cache=writeback");
    args.push(drive);
    args.extend(
        ["-device", "virtio-blk-pci,drive=root", "-device", "virtio-serial-pci,id=vs0"]
            .map(OsString::from),
    );
    for i in 0..config.agent_ports {
        args.push("-chardev".into());
        let mut chardev = OsString::from(format!("socket,id=agent{i},path="));
        chardev.push(opt_value(
            paths.qemu_socket_arg(&SandboxPaths::agent_socket_name(i)).as_os_str(),
        ));
        chardev.push(",server=on,wait=off");
        args.push(chardev);
        args.push("-device".into());
        args.push(
            format!(
                "virtserialport,bus=vs0.0,chardev=agent{i},name={}",
                pyro_protocol::agent_port_name(i)
            )
            .into(),
        );
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

/// Start QEMU detached for `config`; returns how long the daemonizing parent took
/// (by then every socket is listening and the pidfile is written).
pub fn launch(config: &LaunchConfig<'_>) -> Result<Duration, BackendError> {
    let binary = qemu_binary();
    let started = Instant::now();
    let output = Command::new(&binary)
        .args(qemu_args(config))
        .current_dir(config.paths.dir())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BackendError::MissingAsset {
                    what: format!(
                        "QEMU (install qemu-system-x86 with `scripts/setup`, or set {QEMU_ENV})"
                    ),
                    path: binary.clone(),
                }
            } else {
                BackendError::io(format!("cannot run {}", binary.display()), e)
            }
        })?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        let mut message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        if message.is_empty() {
            message = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        }
        return Err(BackendError::Boot(format!(
            "QEMU failed to start ({}): {message}",
            output.status
        )));
    }
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        }
    }

    fn value_after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
    }

    #[test]
    fn offline_tcg_command_line() {
        let paths = SandboxPaths::from_canonical(PathBuf::from("/w/ab/sandbox"));
        let network = NetworkSpec::default();
        let args = strings(&qemu_args(&config(&paths, &network, Accel::Tcg)));
        let joined = args.join(" ");
        assert!(joined.starts_with("-M q35 -accel tcg -cpu max -m 512 -smp 2 -nodefaults -no-user-config -display none -daemonize -no-reboot"), "{joined}");
        assert_eq!(value_after(&args, "-pidfile"), ["/w/ab/sandbox/qemu.pid"]);
        assert_eq!(value_after(&args, "-qmp"), ["unix:/w/ab/sandbox/qmp.sock,server=on,wait=off"]);
        assert_eq!(value_after(&args, "-serial"), ["chardev:console"]);
        assert_eq!(value_after(&args, "-kernel"), ["/c/boot/vmlinux"]);
        assert_eq!(value_after(&args, "-initrd"), ["/c/boot/initrd.img"]);
        assert_eq!(value_after(&args, "-append"), [KERNEL_CMDLINE]);
        assert_eq!(
            value_after(&args, "-drive"),
            ["file=/w/ab/sandbox/disk.qcow2,if=none,id=root,format=qcow2,cache=writeback"]
        );
        assert_eq!(
            value_after(&args, "-chardev"),
            [
                "file,id=console,path=/w/ab/sandbox/console.log",
                "socket,id=agent0,path=/w/ab/sandbox/agent-0.sock,server=on,wait=off",
                "socket,id=agent1,path=/w/ab/sandbox/agent-1.sock,server=on,wait=off"
            ]
        );
        assert_eq!(
            value_after(&args, "-device"),
            [
                "virtio-blk-pci,drive=root",
                "virtio-serial-pci,id=vs0",
                "virtserialport,bus=vs0.0,chardev=agent0,name=org.pyro.agent.0",
                "virtserialport,bus=vs0.0,chardev=agent1,name=org.pyro.agent.1"
            ]
        );
        assert!(value_after(&args, "-netdev").is_empty(), "no NIC at all when offline");
        assert!(!joined.contains("pyro.net"));
    }

    #[test]
    fn networked_kvm_command_line_publishes_on_loopback_only() {
        let paths = SandboxPaths::from_canonical(PathBuf::from("/w/ab/sandbox"));
        let network = NetworkSpec { enabled: true, published_ports: vec![(18080, 80), (2222, 22)] };
        let args = strings(&qemu_args(&config(&paths, &network, Accel::Kvm)));
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
    fn commas_in_paths_are_escaped_and_long_socket_paths_are_relative() {
        let dir = PathBuf::from(format!("/w/a,b/{}", "x".repeat(110)));
        let paths = SandboxPaths::from_canonical(dir.clone());
        let network = NetworkSpec::default();
        let args = strings(&qemu_args(&config(&paths, &network, Accel::Tcg)));
        let drive = value_after(&args, "-drive")[0];
        assert!(drive.starts_with("file=/w/a,,b/"), "{drive}");
        assert_eq!(value_after(&args, "-qmp"), ["unix:qmp.sock,server=on,wait=off"]);
        assert!(value_after(&args, "-chardev")[0].starts_with("file,id=console,path=/w/a,,b/"));
        assert!(value_after(&args, "-chardev")[1].contains("path=agent-0.sock,"));
        // -pidfile is not an option list: no escaping, and it identifies the process.
        assert_eq!(value_after(&args, "-pidfile")[0], dir.join("qemu.pid").to_string_lossy());
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
