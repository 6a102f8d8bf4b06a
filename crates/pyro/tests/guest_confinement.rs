//! Confinement of the QEMU behind every guest, checked on real guests: seccomp, the
//! unprivileged uid when pyro is root, the cgroup limits, a CPU quota that holds, a
//! denied system call that kills QEMU and is reported, and pyro as an ordinary user.

mod common;

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn pyro_cli(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.env("PYRO_STATE_DIR", state);
    cmd
}

fn cli_json(state: &Path, args: &[&str]) -> Value {
    let out = pyro_cli(state).args(args).arg("--json").output().expect("run pyro");
    assert!(
        out.status.success(),
        "pyro {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn create(state: &Path, vcpus: &str) -> String {
    let out = pyro_cli(state)
        .args(["workspace", "create", "debian:12-base", "--vcpu-count", vcpus, "--id-only"])
        .output()
        .expect("create");
    assert!(out.status.success(), "create failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn sandbox(state: &Path, id: &str) -> PathBuf {
    state.join("workspaces").join(id).join("sandbox")
}

fn qemu_pid(state: &Path, id: &str) -> i32 {
    let text = std::fs::read_to_string(sandbox(state, id).join("qemu.pid")).expect("pidfile");
    text.trim().parse().expect("pid")
}

fn status_field(pid: i32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("euid")
}

fn passwd_uid(user: &str) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == user).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// The directory of the pyro cgroup that `pid` is in for `controller` (v1) or the
/// unified one (v2), with the file that holds the limit asked for.
fn cgroup_file(pid: i32, controller: &str, v1_file: &str, v2_file: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) =
            (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if !path.starts_with("/pyro/sandbox-") {
            continue;
        }
        if controllers.split(',').any(|c| c == controller) {
            return PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}")).join(v1_file);
        }
        if controllers.is_empty() {
            return PathBuf::from(format!("/sys/fs/cgroup{path}")).join(v2_file);
        }
    }
    panic!("QEMU {pid} is in no pyro cgroup for {controller}: {text}");
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .into()
}

/// Seconds of CPU (user + system) `pid` has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // After the command: state is field 3 of stat; utime and stime are 14 and 15.
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // Clock ticks per second, from getconf (no unsafe sysconf call in a test).
    let hz = Command::new("getconf").arg("CLK_TCK").output().expect("getconf");
    let hz: f64 = String::from_utf8_lossy(&hz.stdout).trim().parse().unwrap_or(100.0);
    ticks / hz
}

/// Ask QEMU (over its QMP socket) to migrate to `exec:`, which makes it fork: denied.
fn qmp_migrate_exec(socket: &Path) {
    let stream = UnixStream::connect(socket).expect("connect qmp");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).expect("greeting");
    assert!(line.contains("QMP"), "{line}");
    writer.write_all(b"{\"execute\":\"qmp_capabilities\"}\n").expect("caps");
    line.clear();
    reader.read_line(&mut line).expect("caps answer");
    writer
        .write_all(b"{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:cat >/dev/null\"}}\n")
        .expect("migrate");
    // QEMU dies while (or before) answering; whatever comes back does not matter.
    line.clear();
    let _ = reader.read_line(&mut line);
}

#[test]
fn qemu_runs_under_seccomp_its_own_uid_and_cgroup_and_a_denied_syscall_kills_it_visibly() {
    let state = common::guest_tempdir();
    let id = create(state.path(), "1");
    let pid = qemu_pid(state.path(), &id);

    // Seccomp filter, no new privileges.
    assert_eq!(status_field(pid, "Seccomp:"), "2", "QEMU has no seccomp filter");
    assert_eq!(status_field(pid, "NoNewPrivs:"), "1");
    // Not root when pyro is root; pyro's own uid otherwise.
    let uid: u32 = status_field(pid, "Uid:").parse().expect("uid");
    if euid() == 0 {
        let expected = passwd_uid("pyro-qemu").expect("scripts/setup creates the user pyro-qemu");
        assert_eq!(uid, expected, "QEMU must run as pyro-qemu when pyro is root");
        // The workspace's own files stay out of its reach.
        let workspace = state.path().join("workspaces").join(&id);
        let meta = std::fs::metadata(&workspace).expect("workspace dir");
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
        let sandbox_meta = std::fs::metadata(sandbox(state.path(), &id)).expect("sandbox");
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&sandbox_meta), uid);
        assert_eq!(sandbox_meta.permissions().mode() & 0o777, 0o700);
    } else {
        assert_eq!(uid, euid());
    }

    // The status says so, from the live process.
    let status = cli_json(state.path(), &["workspace", "status", &id]);
    let metadata = &status["metadata"];
    assert_eq!(metadata["confinement_seccomp"], "filter", "{metadata}");
    assert_eq!(metadata["confinement_uid"], uid.to_string(), "{metadata}");
    let doctor = cli_json(state.path(), &["doctor"]);
    assert!(
        doctor["confinement"]["seccomp"].as_str().unwrap_or("").contains("spawn=deny"),
        "{}",
        doctor["confinement"]
    );

    // The cgroup holds the limits (1 vCPU, 1024 MiB guest RAM by default).
    if euid() == 0 {
        assert_eq!(
            metadata["confinement"],
            "seccomp, uid ".to_owned() + &uid.to_string() + ", cgroup"
        );
        let mem_mib = status["mem_mib"].as_u64().expect("mem_mib");
        let memory = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max");
        assert_eq!(read_trim(&memory), ((mem_mib + 384 + mem_mib / 8) << 20).to_string());
        let pids = cgroup_file(pid, "pids", "pids.max", "pids.max");
        assert_eq!(read_trim(&pids), "256");
        let cpu = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max");
        let quota = read_trim(&cpu);
        assert!(quota == "100000" || quota == "100000 100000", "cpu quota {quota}");
    }

    // A system call the filter denies (fork, for migrate exec:) kills QEMU, and status
    // says the workspace stopped and why.
    qmp_migrate_exec(&sandbox(state.path(), &id).join("qmp.sock"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let status = cli_json(state.path(), &["workspace", "status", &id]);
        if status["state"] == "stopped" || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["state"], "stopped", "{status}");
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("SIGSYS") && error.contains("seccomp"), "{error}");
    assert!(
        status["metadata"]["stopped_reason"].as_str().unwrap_or("").contains("SIGSYS"),
        "{status}"
    );
    // It starts again, confined again.
    cli_json(state.path(), &["workspace", "start", &id]);
    let pid = qemu_pid(state.path(), &id);
    assert_eq!(status_field(pid, "Seccomp:"), "2");
    cli_json(state.path(), &["workspace", "delete", &id]);
}

#[test]
fn a_guest_spinning_on_every_vcpu_uses_at_most_its_cpu_quota() {
    let state = common::guest_tempdir();
    let id = create(state.path(), "2");
    let pid = qemu_pid(state.path(), &id);
    let quota_cores = 2.0;
    let spin = "for i in 1 2; do (end=$(($(date +%s) + 14)); while [ $(date +%s) -lt $end ]; do :; done) & done; wait";
    let spinner = {
        let state = state.path().to_path_buf();
        let id = id.clone();
        std::thread::spawn(move || {
            pyro_cli(&state)
                .args(["workspace", "exec", &id, "--timeout-seconds", "60", "--", "sh", "-c", spin])
                .output()
        })
    };
    // Let both vCPUs get going, then measure 10 s of QEMU's CPU time.
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, t0) = (cpu_seconds(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(10));
    let (cpu1, wall) = (cpu_seconds(pid), t0.elapsed().as_secs_f64());
    let used = cpu1 - cpu0;
    let out = spinner.join().expect("spinner").expect("exec");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("QEMU used {used:.2} s of CPU in {wall:.2} s with a quota of {quota_cores} cores");
    // The quota holds over any 100 ms period; 5% and one period of slack for the edges.
    assert!(used <= quota_cores * wall * 1.05 + 0.1, "QEMU used {used:.2} s in {wall:.2} s");
    assert!(used > 0.5, "the guest did not spin at all ({used:.2} s)");
    if euid() == 0 {
        // The kernel enforced it: the cgroup's CPU accounting saw this QEMU.
        let stat = cgroup_file(pid, "cpu", "cpu.stat", "cpu.stat");
        assert!(read_trim(&stat).contains("nr_periods"), "no CPU accounting in {}", stat.display());
    }
    cli_json(state.path(), &["workspace", "delete", &id]);
}

/// Hard-link what a guest needs from the cache into `dir`, readable by anyone, with the
/// directories pyro writes to owned by `uid`.
fn private_cache(source: &Path, dir: &Path, uid: u32, gid: u32) {
    let chown = |p: &Path| std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
    for sub in ["", "boot", "bin", "environments", "environments/debian_12-base"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        chown(&d);
    }
    for file in [
        "boot/vmlinux",
        "boot/initrd.img",
        "boot/boot.json",
        "bin/pyro-guest-agent",
        "environments/debian_12-base/rootfs.ext4",
        "environments/debian_12-base/environment.json",
        "environments/debian_12-base/packages.txt",
    ] {
        let from = source.join(file);
        if from.exists() {
            std::fs::hard_link(&from, dir.join(file)).expect("link");
        }
    }
}

#[test]
fn pyro_runs_a_guest_as_an_ordinary_user() {
    if euid() != 0 {
        // Already an ordinary user: the other guest tests are this test.
        let state = common::guest_tempdir();
        let out = pyro_cli(state.path()).args(["run", "debian:12-base", "--", "true"]).output();
        assert!(out.expect("run").status.success());
        return;
    }
    let (uid, gid) = (65534u32, 65534u32); // nobody:nogroup
    let top = common::guest_tempdir();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let source = std::env::var_os("PYRO_CACHE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/pyro")
    });
    let cache = top.path().join("cache");
    private_cache(&source, &cache, uid, gid);
    let home = top.path().join("home");
    std::fs::create_dir(&home).expect("home");
    std::os::unix::fs::chown(&home, Some(uid), Some(gid)).expect("chown");
    // The pyro binary lives under target/, readable by anyone (not under /root).
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--", "env"])
        .arg(format!("HOME={}", home.display()))
        .arg(format!("PYRO_CACHE_DIR={}", cache.display()))
        .arg(format!("PYRO_STATE_DIR={}", home.join("state").display()))
        .arg("PYRO_TEMPLATES=off")
        .arg(env!("CARGO_BIN_EXE_pyro"))
        .args(["run", "debian:12-base", "--json", "--", "sh", "-c", "id -u; cat /proc/version"])
        .output()
        .expect("runuser");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pyro as nobody failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(result["execution_mode"], "guest", "{result}");
    let guest_out = result["stdout"].as_str().unwrap_or_default();
    assert!(guest_out.starts_with("0\n"), "the command runs as root in the guest: {guest_out}");
    assert!(guest_out.contains("Linux version"), "{guest_out}");
    // Its QEMU ran as nobody, under the filter; vm_run results say so.
    assert_eq!(result["metadata"]["confinement_seccomp"], "filter", "{result}");
    assert_eq!(result["metadata"]["confinement_uid"], uid.to_string(), "{result}");
    // Nothing of nobody's run is left: no QEMU runs from this cache.
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(!cmdline.contains(&*home.to_string_lossy()), "QEMU left running: {cmdline}");
        }
    }
}

#[test]
fn create_refuses_when_the_host_is_short_of_disk_space() {
    let state = common::guest_tempdir();
    let out = pyro_cli(state.path())
        .env("PYRO_MIN_FREE_MIB", u64::MAX.to_string())
        .args(["workspace", "create", "debian:12-base"])
        .output()
        .expect("create");
    assert!(!out.status.success(), "create succeeded without the free-space margin");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MiB free") && stderr.contains("PYRO_MIN_FREE_MIB"), "{stderr}");
    let list = cli_json(state.path(), &["workspace", "list"]);
    assert_eq!(
        list["count"].as_u64().or_else(|| list["workspaces"].as_array().map(|a| a.len() as u64)),
        Some(0),
        "{list}"
    );
}
