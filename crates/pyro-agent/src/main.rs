//! `pyro-guest-agent`: the in-guest side of pyro's host↔agent protocol.
//!
//! Modes:
//! - `--init`: run as PID 1 (exec'd by the initramfs after switch_root, with /proc,
//!   /sys, /dev, /dev/pts and /run mounted). Sets up the environment, host name and
//!   directories, starts `--serve` as a child (restarting it if it dies) and reaps
//!   every orphan forever.
//! - `--serve`: serve every virtio-serial port named `org.pyro.agent*` on its own
//!   thread, forever, surviving host disconnects and reconnects.
//! - `--stdio`: serve one session on stdin/stdout in `host_compat` mode over the current
//!   directory (for tests and debugging).
//!
//! Diagnostics go to stderr, which is the console in the guest.

use pyro_agent::port_wake::{self, PortWaker};
use pyro_agent::sys::{self, Reaped};
use pyro_agent::{FrameServer, Sandbox};
use pyro_protocol::{AGENT_PORT_PREFIX, WORKSPACE_ROOT};
use std::fs::{self, OpenOptions};
use std::io::{self, BufReader};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const USAGE: &str = "usage: pyro-guest-agent --init | --serve | --stdio | --version";

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--init") => run_init(),
        Some("--serve") => run_serve(),
        Some("--stdio") => run_stdio(),
        Some(pyro_agent::login_env::PRINT_ENV_ARG) => {
            match pyro_agent::login_env::print_env0(&mut io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Some("--version") => {
            println!("pyro-guest-agent {}", pyro_agent::AGENT_VERSION);
            ExitCode::SUCCESS
        }
        None if std::process::id() == 1 => run_init(),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run_stdio() -> ExitCode {
    let dir = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("pyro-guest-agent: cannot read the current directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sandbox = Arc::new(Sandbox::host_compat(dir));
    match pyro_agent::serve(sandbox, io::stdin().lock(), io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pyro-guest-agent: reading stdin: {e}");
            ExitCode::FAILURE
        }
    }
}

/// PID 1. Never returns: if PID 1 exits the kernel panics.
fn run_init() -> ! {
    // Set before any thread exists (set_var is only sound single-threaded); every
    // process the agent starts inherits these.
    std::env::set_var("PATH", GUEST_PATH);
    std::env::set_var("HOME", "/root");
    std::env::set_var("LANG", "C.UTF-8");
    if let Err(e) = sys::set_hostname("pyro") {
        eprintln!("pyro-guest-agent: sethostname: {e}");
    }
    for dir in [WORKSPACE_ROOT, "/tmp", "/root"] {
        if let Err(e) = fs::create_dir_all(dir) {
            eprintln!("pyro-guest-agent: mkdir {dir}: {e}");
        }
    }
    if let Err(e) = fs::set_permissions("/tmp", fs::Permissions::from_mode(0o1777)) {
        eprintln!("pyro-guest-agent: chmod /tmp: {e}");
    }

    let mut server = spawn_server();
    let mut last_start = Instant::now();
    loop {
        match sys::wait_any_child() {
            Ok(Reaped::Child(pid)) if Some(pid) == server => {
                eprintln!("pyro-guest-agent: server process {pid} exited; restarting");
                server = None;
            }
            Ok(Reaped::Child(_)) => {}
            Ok(Reaped::NoChildren) => {
                server = None;
                thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                eprintln!("pyro-guest-agent: waitpid: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
        if server.is_none() {
            // Do not spin if the server dies at once.
            let since = last_start.elapsed();
            if since < Duration::from_secs(1) {
                thread::sleep(Duration::from_secs(1) - since);
            }
            server = spawn_server();
            last_start = Instant::now();
        }
    }
}

fn spawn_server() -> Option<u32> {
    match Command::new("/proc/self/exe").arg("--serve").spawn() {
        // The child is reaped by `wait_any_child`, not through this handle.
        Ok(child) => Some(child.id()),
        Err(e) => {
            eprintln!("pyro-guest-agent: cannot start the server: {e}");
            None
        }
    }
}

/// Agent ports: `(port name, device path)` from /sys/class/virtio-ports/*/name.
fn find_ports() -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir("/sys/class/virtio-ports") else { return Vec::new() };
    let mut ports: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = fs::read_to_string(entry.path().join("name")).ok()?;
            let name = name.trim();
            name.starts_with(AGENT_PORT_PREFIX)
                .then(|| (name.to_owned(), Path::new("/dev").join(entry.file_name())))
        })
        .collect();
    ports.sort();
    ports
}

fn run_serve() -> ExitCode {
    let sandbox = Arc::new(Sandbox::guest(WORKSPACE_ROOT));
    if let Err(e) = port_wake::install_noop_handler() {
        eprintln!("pyro-guest-agent: cannot install the SIGIO handler: {e}");
    }
    let started = Instant::now();
    let mut warned = false;
    let ports = loop {
        let ports = find_ports();
        if !ports.is_empty() {
            break ports;
        }
        if !warned && started.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "pyro-guest-agent: no {AGENT_PORT_PREFIX}* virtio-serial port yet; still looking"
            );
            warned = true;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let mut threads = Vec::new();
    for (name, device) in &ports {
        let sandbox = Arc::clone(&sandbox);
        let device = device.clone();
        let spawned = thread::Builder::new()
            .name(format!("port-{name}"))
            .spawn(move || serve_port(sandbox, &device));
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(e) => eprintln!("pyro-guest-agent: cannot start a thread for {name}: {e}"),
        }
    }
    eprintln!("PYRO-AGENT ready ports={} uptime={}", threads.len(), uptime());
    let warm = Arc::clone(&sandbox);
    if let Err(e) =
        thread::Builder::new().name("login-env".into()).spawn(move || warm.warm_login_env())
    {
        eprintln!("pyro-guest-agent: cannot start the login environment capture: {e}");
    }
    for handle in threads {
        let _ = handle.join();
    }
    // Every port thread ended (they only end by panicking): let init restart us.
    ExitCode::FAILURE
}

fn uptime() -> String {
    fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Serve one port forever. While no host is connected, reads return EOF at once, so
/// EOF means "sleep until the host side changes" ([`PortWaker`]: a SIGIO from the
/// driver, not polling); the device stays open and the writer is shared across
/// reconnects, so answers to requests of a vanished host may go to the next one (which
/// ignores ids it did not send).
fn serve_port(sandbox: Arc<Sandbox>, device: &Path) {
    loop {
        let file = match OpenOptions::new().read(true).write(true).open(device) {
            Ok(file) => file,
            Err(e) => {
                eprintln!("pyro-guest-agent: open {}: {e}", device.display());
                thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let writer = match file.try_clone() {
            Ok(writer) => writer,
            Err(e) => {
                eprintln!("pyro-guest-agent: dup {}: {e}", device.display());
                thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let (waker, problem) = PortWaker::arm(file.as_fd());
        if let Some(e) = problem {
            eprintln!(
                "pyro-guest-agent: cannot wait for host events on {} ({e}); polling",
                device.display()
            );
        }
        let server = FrameServer::new(Arc::clone(&sandbox), writer);
        loop {
            match server.run(BufReader::new(&file)) {
                // EOF: no host, or the host went away. Handlers still running keep
                // going and answer on the shared writer.
                Ok(in_flight) => drop(in_flight),
                Err(e) => {
                    eprintln!("pyro-guest-agent: read {}: {e}; reopening", device.display());
                    thread::sleep(Duration::from_millis(100));
                    break;
                }
            }
            waker.wait();
        }
    }
}
