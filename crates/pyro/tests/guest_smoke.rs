//! Real guests: these tests boot QEMU VMs (TCG here, KVM where available) from the
//! images `scripts/setup` builds. They never skip: without the guest assets they fail
//! and say to run scripts/setup.

mod common;

use common::guest_runtime as runtime;
use pyro::params::*;
use pyro::results::{Accel, ExecutionMode, VmState};
use pyro::{PyroError, Runtime};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ENV: &str = "debian:12-base";

fn exec(rt: &Runtime, id: &str, command: &str) -> pyro::results::WorkspaceExecResult {
    rt.workspace_exec(WorkspaceExecParams::new(id, command)).expect(command)
}

fn qemu_pid(state: &Path, id: &str) -> i32 {
    let pidfile = state.join("workspaces").join(id).join("sandbox/qemu.pid");
    std::fs::read_to_string(&pidfile).expect("pidfile").trim().parse().expect("pid")
}

/// True while `pid` exists and is not a zombie (this host's init reaps orphans late).
fn process_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn pyro_cli(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.env("PYRO_STATE_DIR", state);
    cmd
}

#[test]
fn mcp_workspace_core_flow_in_a_guest_with_the_python_client() {
    let state = common::guest_tempdir();
    runtime(state.path());
    let out = Command::new("python3")
        .arg(format!("{}/tests/python/mcp_client_flow.py", env!("CARGO_MANIFEST_DIR")))
        .args([env!("CARGO_BIN_EXE_pyro"), "workspace-core", "flow"])
        .env("PYRO_STATE_DIR", state.path())
        .env("FLOW_ENVIRONMENT", ENV)
        .env("FLOW_EXPECT_MODE", "guest")
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok flow"), "{stdout}");
    // Nothing left running or on disk.
    let left: Vec<_> = std::fs::read_dir(state.path().join("workspaces")).expect("dir").collect();
    assert!(left.is_empty(), "leftover workspaces: {left:?}");
}

#[test]
fn cli_run_shows_a_guest_kernel_and_the_cli_workspace_flow_works() {
    let state = common::guest_tempdir();
    let rt = runtime(state.path());
    let guest_release = rt.doctor().kernel_release.expect("kernel release");
    let host_release =
        String::from_utf8(Command::new("uname").arg("-r").output().expect("uname").stdout)
            .expect("utf8");
    let out = pyro_cli(state.path())
        .args(["run", ENV, "--json", "--", "uname", "-a"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let uname = result["stdout"].as_str().expect("stdout");
    assert!(uname.contains(&guest_release), "{uname} does not show guest kernel {guest_release}");
    assert!(!uname.contains(host_release.trim()) || guest_release == host_release.trim());
    assert_eq!(result["execution_mode"], "guest");
    assert!(result["accel"] == "tcg" || result["accel"] == "kvm", "{result}");
    assert_eq!(result["cleanup"]["deleted"], true);

    let create = pyro_cli(state.path())
        .args(["workspace", "create", ENV, "--id-only"])
        .output()
        .expect("create");
    assert!(create.status.success(), "{}", String::from_utf8_lossy(&create.stderr));
    let id = String::from_utf8(create.stdout).expect("utf8").trim().to_string();
    let w = pyro_cli(state.path())
        .args(["workspace", "file", "write", &id, "notes/a.txt", "--text", "guest file\n"])
        .output()
        .expect("write");
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    let e = pyro_cli(state.path())
        .args(["workspace", "exec", &id, "--", "sh", "-c", "cat notes/a.txt; exit 7"])
        .output()
        .expect("exec");
    assert_eq!(e.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&e.stdout), "guest file\n");
    let d =
        pyro_cli(state.path()).args(["workspace", "diff", &id, "--json"]).output().expect("diff");
    let diff: serde_json::Value = serde_json::from_slice(&d.stdout).expect("json");
    assert_eq!(diff["entries"][0]["path"], "notes/a.txt");
    let target = state.path().join("export");
    let x = pyro_cli(state.path())
        .args(["workspace", "export", &id, "notes", "--output", target.to_str().expect("utf8")])
        .output()
        .expect("export");
    assert!(x.status.success(), "{}", String::from_utf8_lossy(&x.stderr));
    assert_eq!(std::fs::read(target.join("a.txt")).expect("exported"), b"guest file\n");
    let r =
        pyro_cli(state.path()).args(["workspace", "reset", &id, "--json"]).output().expect("reset");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let d =
        pyro_cli(state.path()).args(["workspace", "diff", &id, "--json"]).output().expect("diff");
    let diff: serde_json::Value = serde_json::from_slice(&d.stdout).expect("json");
    assert_eq!(diff["changed"], false);
    let pid = qemu_pid(state.path(), &id);
    let del = pyro_cli(state.path()).args(["workspace", "delete", &id]).output().expect("delete");
    assert!(del.status.success());
    assert!(!process_running(pid), "QEMU {pid} still running after delete");
    assert!(!state.path().join("workspaces").join(&id).exists());
}

#[test]
fn exec_limits_timeout_truncation_and_isolation_in_one_guest() {
    let state = common::guest_tempdir();
    let rt = runtime(state.path());
    let mut params = WorkspaceCreateParams::new(ENV);
    params.vcpu_count = 2;
    params.mem_mib = 512;
    let ws = rt.workspace_create(params).expect("create");
    assert_eq!(ws.execution_mode, ExecutionMode::Guest);
    assert!(matches!(ws.accel, Accel::Tcg | Accel::Kvm));
    let id = ws.workspace_id;

    // vCPU and memory sizing reach the guest.
    let sizing = exec(&rt, &id, "nproc; awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo");
    let mut lines = sizing.stdout.lines();
    assert_eq!(lines.next(), Some("2"), "{}", sizing.stdout);
    let mem: u64 = lines.next().and_then(|l| l.parse().ok()).expect("MemTotal");
    assert!((400..=512).contains(&mem), "guest sees {mem} MiB for mem_mib 512");

    // Timeout kills the whole process tree, including a background child.
    let t = rt
        .workspace_exec(WorkspaceExecParams {
            timeout_seconds: 2,
            ..WorkspaceExecParams::new(&id, "sleep 300 & echo $! > bg.pid; sleep 300")
        })
        .expect("timeout exec");
    assert_eq!(t.exit_code, 124);
    assert!(t.stderr.contains("timed out after 2s"), "{}", t.stderr);
    let check = exec(&rt, &id, "kill -0 $(cat bg.pid) 2>/dev/null && echo alive || echo gone");
    assert_eq!(check.stdout, "gone\n", "background child survived the timeout");

    // Output over the cap is cut and flagged.
    let big = exec(&rt, &id, "head -c 3000000 /dev/zero | tr '\\0' a");
    assert!(big.truncated);
    assert_eq!(big.stdout.len(), 1024 * 1024);

    // The guest cannot see the host's files.
    let marker = format!("/tmp/pyro-host-marker-{}", std::process::id());
    std::fs::write(&marker, "host").expect("marker");
    let seen =
        exec(&rt, &id, &format!("test -e {marker} && echo visible || echo hidden; uname -r"));
    std::fs::remove_file(&marker).expect("rm marker");
    assert!(seen.stdout.starts_with("hidden\n"), "{}", seen.stdout);
    rt.workspace_delete(&id).expect("delete");
}

#[test]
fn killing_qemu_mid_exec_is_reported_and_the_workspace_recovers() {
    let state = common::guest_tempdir();
    let rt = runtime(state.path());
    let id = rt.workspace_create(WorkspaceCreateParams::new(ENV)).expect("create").workspace_id;
    rt.workspace_file_write(WorkspaceFileWriteParams {
        workspace_id: id.clone(),
        path: "kept.txt".into(),
        text: "before the crash\n".into(),
    })
    .expect("write");
    exec(&rt, &id, "sync");
    let pid = qemu_pid(state.path(), &id);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill");
    });
    let started = Instant::now();
    let err = rt.workspace_exec(WorkspaceExecParams::new(&id, "sleep 60")).expect_err("guest died");
    killer.join().expect("killer");
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(matches!(err, PyroError::Backend(_)), "{err}");
    assert!(err.to_string().contains("stopped responding"), "{err}");
    let status = rt.workspace_status(&id).expect("status");
    assert_eq!(status.state, VmState::Stopped);
    assert!(status.last_error.is_some());
    let again = rt.workspace_exec(WorkspaceExecParams::new(&id, "true")).expect_err("stopped");
    assert!(again.to_string().contains("pyro workspace start"), "{again}");
    let started = rt.workspace_start(&id).expect("start again");
    assert_eq!(started.state, VmState::Started);
    let kept = exec(&rt, &id, "cat kept.txt");
    assert_eq!(kept.stdout, "before the crash\n");
    rt.workspace_delete(&id).expect("delete");
}
