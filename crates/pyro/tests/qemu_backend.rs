//! `QemuBackend` against a real guest (TCG on hosts without hardware KVM).
//!
//! Needs the boot assets and an environment image in `$PYRO_CACHE_DIR` (default
//! `~/.cache/pyro`), built by `scripts/setup`. It never skips: without them it fails and
//! says so. `PYRO_TEST_ENVIRONMENT` picks the environment (default: the first of
//! `debian:12-base`, `debian:12`, `debian:12-build` that is installed).

mod common;

use base64::Engine as _;
use pyro::backend::qemu::{assets, detect_accel, QemuBackend};
use pyro::backend::{AgentChannel, Backend, BackendError, NetworkSpec, SandboxSpec};
use pyro::results::ExecutionMode;
use pyro_protocol::{ExecOutput, ExecRequest, Request, Response};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The cache dir and environment to boot, or a panic saying how to get them.
fn assets_or_fail() -> (PathBuf, String) {
    let cache = assets::default_cache_dir();
    if let Err(e) = assets::boot_assets(&cache) {
        panic!(
            "guest boot assets are missing in {}: {e}. Run scripts/setup first",
            cache.display()
        );
    }
    let installed = assets::installed_environments(&cache);
    let wanted = std::env::var("PYRO_TEST_ENVIRONMENT").ok();
    let env = match wanted {
        Some(name) => name,
        None => ["debian:12-base", "debian:12", "debian:12-build"]
            .into_iter()
            .find(|n| installed.iter().any(|i| i == n))
            .unwrap_or_else(|| {
                panic!(
                    "no environment image in {}/environments (found {installed:?}); run scripts/setup \
                     or `pyro env pull debian:12-base`",
                    cache.display()
                )
            })
            .to_owned(),
    };
    (cache, env)
}

/// Destroys the sandbox even when an assertion fails, so no QEMU outlives the test.
struct Cleanup<'a> {
    backend: &'a QemuBackend,
    dir: PathBuf,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.backend.destroy(&self.dir);
    }
}

fn exec(
    channel: &mut dyn AgentChannel,
    command: &str,
    timeout: Duration,
) -> Result<ExecOutput, BackendError> {
    let request = Request::Exec(ExecRequest {
        command: command.to_owned(),
        cwd: "/workspace".to_owned(),
        env: Default::default(),
        timeout_ms: u64::try_from(timeout.as_millis()).expect("ms"),
        max_output_bytes: 1 << 20,
    });
    match channel.call(request, timeout + Duration::from_secs(5))? {
        Response::Exec(out) => Ok(out),
        other => panic!("unexpected answer to exec {command:?}: {other:?}"),
    }
}

fn stdout(out: &ExecOutput) -> String {
    let bytes = base64::engine::general_purpose::STANDARD.decode(&out.stdout_b64).expect("base64");
    String::from_utf8(bytes).expect("utf8")
}

fn read_file(channel: &mut dyn AgentChannel, path: &str) -> Vec<u8> {
    match channel
        .call(Request::ReadFile { path: path.to_owned(), max_bytes: 1 << 20 }, CALL_TIMEOUT)
    {
        Ok(Response::FileData { data_b64, .. }) => {
            base64::engine::general_purpose::STANDARD.decode(data_b64).expect("base64")
        }
        other => panic!("unexpected answer to read_file {path}: {other:?}"),
    }
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn create_exec_reconnect_stop_start_crash_destroy() {
    let (cache, environment) = assets_or_fail();
    let backend = QemuBackend::new(cache);
    if let Err(why) = backend.available() {
        panic!("the QEMU backend is not available: {why}. Run scripts/setup first");
    }
    let tmp = common::guest_tempdir();
    let dir = tmp.path().join("sandbox");
    std::fs::create_dir(&dir).expect("mkdir");
    let _cleanup = Cleanup { backend: &backend, dir: dir.clone() };
    let spec = SandboxSpec {
        dir: dir.clone(),
        environment: environment.clone(),
        vcpu_count: 1,
        mem_mib: 512,
        network: NetworkSpec::default(),
        volume: None,
        volume_ready: None,
    };

    // create
    let info = backend.create(&spec).expect("create");
    eprintln!("create: {info:?}");
    assert_eq!(info.execution_mode, ExecutionMode::Guest);
    assert_eq!(info.accel, detect_accel().0);
    assert!(!info.accel_reason.is_empty());
    assert!(info.environment_version.is_some(), "{info:?}");
    assert_eq!(info.guest_ip, None, "no network asked for");
    let kernel = info.guest_kernel.clone().expect("guest kernel from hello");
    for key in ["boot_launch_to_hello_ms", "boot_qemu_launch_ms", "boot_total_ms", "qemu_pid"] {
        assert!(info.metadata.contains_key(key), "{key} missing in {:?}", info.metadata);
    }
    assert!(backend.is_running(&dir));
    for file in [
        "disk.qcow2",
        "qemu.pid",
        "qmp.sock",
        "agent-0.sock",
        "console.log",
        "qemu.log",
        "qemu.exit",
        "vm.json",
    ] {
        assert!(dir.join(file).exists(), "{file} missing");
    }

    // exec over one channel
    {
        let mut channel = backend.connect(&dir).expect("connect");
        let out = exec(channel.as_mut(), "uname -r", Duration::from_secs(30)).expect("uname");
        assert_eq!(out.exit_code, 0);
        assert_eq!(stdout(&out).trim(), kernel);
        let out = exec(channel.as_mut(), "echo hi > /workspace/f", Duration::from_secs(30))
            .expect("echo");
        assert_eq!(out.exit_code, 0);
    }

    // a new channel, like a new CLI process; two channels at once get different ports
    {
        let mut first = backend.connect_channel(&dir).expect("connect again");
        assert_eq!(read_file(&mut first, "/workspace/f"), b"hi\n");
        let mut second = backend.connect_channel(&dir).expect("second channel");
        assert_ne!(first.port(), second.port());
        let out = exec(&mut second, "cat /workspace/f", Duration::from_secs(30)).expect("cat");
        assert_eq!(stdout(&out), "hi\n");
        // Multi-megabyte frames both ways.
        let big: Vec<u8> =
            (0..4u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let data_b64 = base64::engine::general_purpose::STANDARD.encode(&big);
        let write = Request::WriteFile { path: "/workspace/big".into(), data_b64 };
        match second.call(write, CALL_TIMEOUT).expect("write big") {
            Response::Written { bytes_written } => assert_eq!(bytes_written, big.len() as u64),
            other => panic!("unexpected answer to write_file: {other:?}"),
        }
        let read = Request::ReadFile { path: "/workspace/big".into(), max_bytes: 8 << 20 };
        match second.call(read, CALL_TIMEOUT).expect("read big") {
            Response::FileData { data_b64, truncated: false, .. } => {
                let back = base64::engine::general_purpose::STANDARD.decode(data_b64).expect("b64");
                assert!(back == big, "4 MiB file came back different");
            }
            other => panic!("unexpected answer to read_file: {other:?}"),
        }
    }

    // stop, and start with the same disk
    backend.stop(&dir).expect("stop");
    assert!(!backend.is_running(&dir));
    assert!(!dir.join("qemu.pid").exists() && !dir.join("agent-0.sock").exists());
    assert!(matches!(backend.connect(&dir), Err(BackendError::NotRunning)));
    backend.stop(&dir).expect("stopping a stopped sandbox is a no-op");
    let info = backend.start(&spec).expect("start");
    assert!(backend.is_running(&dir));
    let pid = backend.qemu_pid(&dir).expect("pid");
    let again = backend.start(&spec).expect("start while running");
    assert_eq!(again, info, "starting a running sandbox returns its info");
    assert_eq!(backend.qemu_pid(&dir), Some(pid), "and does not boot it again");
    {
        let mut channel = backend.connect(&dir).expect("connect after start");
        assert_eq!(
            read_file(channel.as_mut(), "/workspace/f"),
            b"hi\n",
            "the disk survived stop/start"
        );
    }

    // QEMU killed during a long exec: the call fails promptly with GuestDied
    {
        let mut channel = backend.connect(&dir).expect("connect");
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let status =
                Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill");
            assert!(status.success());
            Instant::now()
        });
        let err = exec(channel.as_mut(), "sleep 30", Duration::from_secs(40))
            .expect_err("QEMU was killed");
        let returned = Instant::now();
        let killed_at = killer.join().expect("killer");
        assert!(matches!(err, BackendError::GuestDied(_)), "{err}");
        let delay = returned.saturating_duration_since(killed_at);
        assert!(delay < Duration::from_secs(3), "GuestDied came {delay:?} after the kill");
        assert!(!backend.is_running(&dir));
        let err = exec(channel.as_mut(), "true", Duration::from_secs(5)).expect_err("still dead");
        assert!(matches!(err, BackendError::NotRunning), "{err}");
    }

    // destroy leaves the directory empty
    backend.destroy(&dir).expect("destroy");
    assert!(!backend.is_running(&dir));
    assert_eq!(dir_entries(&dir), Vec::<String>::new());
}

/// A free TCP port on 127.0.0.1 (free right now; good enough for a test).
fn free_local_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Read what the guest server sends on `127.0.0.1:<port>`, retrying while it starts.
fn fetch_pong(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            use std::io::Read;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        });
        match attempt {
            Ok(text) if !text.is_empty() => return text,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("127.0.0.1:{port} never answered: {other:?}"),
        }
    }
}

#[test]
fn networked_guest_publishes_a_port_on_loopback_from_a_long_sandbox_path() {
    let (cache, environment) = assets_or_fail();
    let backend = QemuBackend::new(cache);
    let tmp = common::guest_tempdir();
    // Longer than a unix socket address can hold: QEMU gets cwd-relative socket paths.
    let dir = tmp.path().join("d".repeat(60)).join("e".repeat(60)).join("sandbox");
    std::fs::create_dir_all(&dir).expect("mkdir");
    assert!(dir.join("agent-0.sock").as_os_str().len() > 108);
    let _cleanup = Cleanup { backend: &backend, dir: dir.clone() };
    let host_port = free_local_port();
    let spec = SandboxSpec {
        dir: dir.clone(),
        environment,
        vcpu_count: 1,
        mem_mib: 512,
        network: NetworkSpec { enabled: true, published_ports: vec![(host_port, 8000)] },
        volume: None,
        volume_ready: None,
    };
    let info = backend.create(&spec).expect("create");
    assert_eq!(info.guest_ip.as_deref(), Some("10.0.2.15"));
    let mut channel = backend.connect(&dir).expect("connect");
    let out =
        exec(channel.as_mut(), "grep -c 10.0.2.15 /proc/net/fib_trie", Duration::from_secs(30))
            .expect("address");
    assert_eq!(out.exit_code, 0, "eth0 has no 10.0.2.15: {}", stdout(&out));
    // A one-line server in the guest (perl-base is in every Debian root file system).
    let server = "setsid -f perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalPort => 8000, \
                  Listen => 5, ReuseAddr => 1) or die $!; while ($c = $s->accept) { print $c \"pong\\n\"; \
                  close $c }' </dev/null >/dev/null 2>&1";
    let out = exec(channel.as_mut(), server, Duration::from_secs(30)).expect("server");
    assert_eq!(out.exit_code, 0);
    let answer = fetch_pong(host_port);
    assert_eq!(answer, "pong\n");
    // Another forward added to the running guest over QMP.
    let extra_port = free_local_port();
    let mut qmp = backend.qmp(&dir).expect("qmp");
    qmp.hostfwd_add(extra_port, 8000).expect("hostfwd_add");
    assert!(qmp.hostfwd_add(extra_port, 8000).is_err(), "the host port is taken now");
    drop(qmp);
    assert_eq!(fetch_pong(extra_port), "pong\n");
    // Only loopback: the forward is not bound on other host addresses.
    let listening = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let needle = format!("0100007F:{host_port:04X}");
    assert!(listening.contains(&needle), "no 127.0.0.1:{host_port} listener");
    assert!(!listening.contains(&format!("00000000:{host_port:04X}")), "forward bound on 0.0.0.0");
    drop(channel);
    backend.destroy(&dir).expect("destroy");
    assert_eq!(dir_entries(&dir), Vec::<String>::new());
}

#[test]
fn watchdog_kills_and_retries_a_guest_that_is_not_up_in_time() {
    let (cache, environment) = assets_or_fail();
    // No guest boots in 300 ms under TCG (nor reliably under KVM): both attempts time out.
    // The cold boot's watchdog is under test: no template clone.
    let backend =
        QemuBackend::new(cache).with_boot_timeout(Duration::from_millis(300)).without_templates();
    let tmp = common::guest_tempdir();
    let dir = tmp.path().join("sandbox");
    std::fs::create_dir(&dir).expect("mkdir");
    let _cleanup = Cleanup { backend: &backend, dir: dir.clone() };
    let spec = SandboxSpec {
        dir: dir.clone(),
        environment,
        vcpu_count: 1,
        mem_mib: 256,
        network: NetworkSpec::default(),
        volume: None,
        volume_ready: None,
    };
    let started = Instant::now();
    let err = backend.create(&spec).expect_err("cannot boot in 300 ms");
    let text = err.to_string();
    assert!(matches!(err, BackendError::Boot(_)), "{text}");
    assert!(text.contains("attempt 1") && text.contains("attempt 2"), "{text}");
    assert!(text.contains("console"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(!backend.is_running(&dir));
    // No QEMU of this sandbox is left anywhere.
    let needle = format!("pyro:{}", dir.canonicalize().expect("canonical").display());
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(!cmdline.contains(&needle), "QEMU left running: {cmdline}");
        }
    }
    // The disk stays, so a later start (with a sane deadline) can still boot it.
    assert!(dir.join("disk.qcow2").exists());
}

/// pyro's default state dir for root is below `/root` (mode 0700), which the QEMU user
/// cannot search. QEMU must still start (clone or cold), with every file it opens by name
/// relative to its sandbox dir; this regressed once (`chdir`, then QEMU's `-pidfile`).
#[test]
fn boots_below_a_directory_the_qemu_user_cannot_search() {
    use std::os::unix::fs::PermissionsExt;
    let (cache, environment) = assets_or_fail();
    let backend = QemuBackend::new(cache);
    let tmp = common::guest_tempdir();
    let private = tmp.path().join("private");
    std::fs::create_dir(&private).expect("mkdir");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let dir = private.join("sandbox");
    std::fs::create_dir(&dir).expect("mkdir");
    let _cleanup = Cleanup { backend: &backend, dir: dir.clone() };
    let spec = SandboxSpec {
        dir: dir.clone(),
        environment,
        vcpu_count: 1,
        mem_mib: 512,
        network: NetworkSpec::default(),
        volume: None,
        volume_ready: None,
    };
    let info = backend.create(&spec).expect("create below a 0700 directory");
    let pid: i32 = info.metadata["qemu_pid"].parse().expect("pid");
    assert_eq!(
        std::fs::read_to_string(dir.join("qemu.pid")).expect("pidfile").trim(),
        pid.to_string(),
        "the pidfile names the QEMU that runs"
    );
    let mut channel = backend.connect(&dir).expect("connect");
    let out = exec(channel.as_mut(), "echo up", Duration::from_secs(30)).expect("exec");
    assert_eq!(stdout(&out), "up\n");
    drop(channel);
    backend.destroy(&dir).expect("destroy");
    assert!(!backend.is_running(&dir));
}
