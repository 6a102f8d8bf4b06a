//! `QemuBackend` against a real guest (TCG on hosts without hardware KVM).
//!
//! Needs the boot assets and an environment image in `$PYRO_CACHE_DIR` (default
//! `~/.cache/pyro`), built by `scripts/setup`. It never skips: without them it fails and
//! says so. `PYRO_TEST_ENVIRONMENT` picks the environment (default: the first of
//! `debian:12-base`, `debian:12`, `debian:12-build` that is installed).

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
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("sandbox");
    std::fs::create_dir(&dir).expect("mkdir");
    let _cleanup = Cleanup { backend: &backend, dir: dir.clone() };
    let spec = SandboxSpec {
        dir: dir.clone(),
        environment: environment.clone(),
        vcpu_count: 1,
        mem_mib: 512,
        network: NetworkSpec::default(),
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
    for file in ["disk.qcow2", "qemu.pid", "qmp.sock", "agent-0.sock", "console.log", "vm.json"] {
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

/// Boot timings for the benchmarks doc: `cargo test -p pyro --test qemu_backend --
/// --ignored --nocapture boot_timings`. `PYRO_TIMING_BOOTS` sets the number of boots.
#[test]
#[ignore = "measurement, not a check; run explicitly"]
fn boot_timings() {
    let (cache, environment) = assets_or_fail();
    let backend = QemuBackend::new(cache);
    let boots: usize =
        std::env::var("PYRO_TIMING_BOOTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("sandbox");
    std::fs::create_dir(&dir).expect("mkdir");
    let _cleanup = Cleanup { backend: &backend, dir: dir.clone() };
    let spec = SandboxSpec {
        dir: dir.clone(),
        environment,
        vcpu_count: 1,
        mem_mib: 512,
        network: NetworkSpec::default(),
    };
    let mut samples: Vec<std::collections::BTreeMap<String, String>> = Vec::new();
    for i in 0..boots {
        let info = if i == 0 { backend.create(&spec) } else { backend.start(&spec) }.expect("boot");
        eprintln!("boot {i}: {:?}", info.metadata);
        samples.push(info.metadata);
        backend.stop(&dir).expect("stop");
    }
    let keys: std::collections::BTreeSet<&String> = samples
        .iter()
        .flat_map(|m| m.keys())
        .filter(|k| k.starts_with("boot_") && k.ends_with("_ms"))
        .collect();
    for key in keys {
        let mut values: Vec<u64> =
            samples.iter().filter_map(|m| m.get(key)?.parse().ok()).collect();
        values.sort_unstable();
        if let (Some(min), Some(max)) = (values.first(), values.last()) {
            eprintln!(
                "{key}: median {} (min {min}, max {max}, n {})",
                values[values.len() / 2],
                values.len()
            );
        }
    }
}
