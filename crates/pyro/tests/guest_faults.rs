//! Crash safety with real guests (QEMU; TCG here): `PYRO_FAULT=<point>` makes a `pyro`
//! process SIGKILL itself at a fault point of create, snapshot, reset, stop, start or
//! delete (`pyro::runtime::fault::POINTS`). After each kill, `status` must tell the
//! truth, the workspace must be usable again or deletable, `pyro doctor` must report what
//! was left and `pyro gc` must remove it, and at the end no QEMU and no file of the
//! workspace is left. Also kill -9 of QEMU and of `pyro mcp serve` in the middle of a
//! call. Like every guest test these never skip.

mod common;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn pyro(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.env("PYRO_STATE_DIR", state).env_remove("PYRO_FAULT");
    cmd
}

fn run(state: &Path, args: &[&str]) -> Output {
    pyro(state).args(args).output().expect("run pyro")
}

/// Run and require success; the parsed `--json` output.
fn json_ok(state: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = run(state, &all);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Run `args` with `PYRO_FAULT=point` and require that it died of SIGKILL there.
fn killed_at(state: &Path, point: &str, args: &[&str]) {
    let out = pyro(state).env("PYRO_FAULT", point).args(args).output().expect("run pyro");
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{args:?} did not die at {point}: {:?} {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn qemus_under(state: &Path) -> Vec<String> {
    let out = Command::new("pgrep").args(["-af", "qemu-system"]).output().expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&state.display().to_string()))
        .map(str::to_owned)
        .collect()
}

fn state_of(state: &Path, id: &str) -> (String, Value) {
    let status = json_ok(state, &["workspace", "status", id]);
    (status["state"].as_str().expect("state").to_owned(), status)
}

fn exec_out(state: &Path, id: &str, command: &str) -> String {
    let out = run(state, &["workspace", "exec", id, "--json", "--", "sh", "-c", command]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{command}: {text}{}", String::from_utf8_lossy(&out.stderr));
    let out: Value = serde_json::from_str(&text).expect("json");
    out["stdout"].as_str().expect("stdout").to_owned()
}

/// `pyro gc` removes exactly what `pyro doctor` reported, and afterwards doctor is clean.
fn doctor_then_gc(state: &Path) -> Value {
    let doctor = json_ok(state, &["doctor"]);
    let reported = doctor["leftovers"].clone();
    let gc = json_ok(state, &["gc"]);
    for key in ["half_made_workspaces", "orphan_qemus", "stray_files"] {
        assert_eq!(
            reported[key].as_array().map(Vec::len),
            gc[key].as_array().map(Vec::len),
            "doctor reported {reported} but gc removed {gc}"
        );
    }
    let after = json_ok(state, &["doctor"]);
    for key in ["half_made_workspaces", "orphan_qemus", "orphan_vms", "stray_files"] {
        assert_eq!(after["leftovers"][key], json!([]), "left after gc: {}", after["leftovers"]);
    }
    gc
}

#[test]
fn pyro_killed_at_every_fault_point_leaves_a_truthful_usable_state() {
    let state = common::guest_tempdir();
    let s = state.path();
    let mut survived = Vec::new();

    // create: the record comes first, so every kill leaves something recognisable.
    for point in ["create.recorded", "create.volume", "create.booted", "create.seeded"] {
        killed_at(s, point, &["workspace", "create", "debian:12-base"]);
        let gc = doctor_then_gc(s);
        assert_eq!(gc["half_made_workspaces"].as_array().map(Vec::len), Some(1), "{point}: {gc}");
        let list = json_ok(s, &["workspace", "list"]);
        assert_eq!(list["count"], 0, "{point}: a half-made workspace is listed: {list}");
        assert!(qemus_under(s).is_empty(), "{point}: QEMU left: {:?}", qemus_under(s));
        let dirs = std::fs::read_dir(s.join("workspaces")).map(|d| d.count()).unwrap_or(0);
        assert_eq!(dirs, 0, "{point}: workspace directories left");
        survived.push(point);
    }

    let created = json_ok(s, &["workspace", "create", "debian:12-base"]);
    let id = created["workspace_id"].as_str().expect("id").to_owned();
    exec_out(s, &id, "echo base > /workspace/a.txt");

    // snapshot
    // Killed with /workspace frozen: the agent thaws it by its deadline, and the overlay
    // made for the snapshot is a stray file no record names.
    killed_at(s, "snapshot.frozen", &["workspace", "snapshot", "create", &id, "s1"]);
    let gc = doctor_then_gc(s);
    assert_eq!(
        gc["stray_files"].as_array().map(Vec::len),
        Some(1),
        "the half-made snapshot overlay: {gc}"
    );
    assert_eq!(exec_out(s, &id, "echo thawed > /workspace/t && cat /workspace/t"), "thawed\n");
    // Killed after the switch: the layer is in the chain, unnamed; nothing is listed.
    killed_at(s, "snapshot.layered", &["workspace", "snapshot", "create", &id, "s1"]);
    let gc = doctor_then_gc(s);
    assert_eq!(gc["stray_files"].as_array().map(Vec::len), Some(0), "{gc}");
    let snapshots = json_ok(s, &["workspace", "snapshot", "list", &id]);
    assert!(!snapshots.to_string().contains("\"s1\""), "a killed snapshot is listed: {snapshots}");
    json_ok(s, &["workspace", "snapshot", "create", &id, "s1"]);
    survived.extend(["snapshot.frozen", "snapshot.layered"]);

    // reset: recorded stopped from the moment the VM goes down.
    for point in ["reset.stopped", "reset.overlay", "reset.booted", "reset.restored"] {
        exec_out(s, &id, "echo changed > /workspace/a.txt");
        killed_at(s, point, &["workspace", "reset", &id, "--snapshot", "s1"]);
        let (st, status) = state_of(s, &id);
        assert_eq!(st, "stopped", "{point}: {status}");
        assert!(status["last_error"].as_str().unwrap_or_default().contains("reset"), "{status}");
        doctor_then_gc(s);
        assert!(qemus_under(s).is_empty(), "{point}: QEMU left after gc");
        json_ok(s, &["workspace", "reset", &id, "--snapshot", "s1"]);
        assert_eq!(exec_out(s, &id, "cat /workspace/a.txt"), "base\n", "{point}");
        survived.push(point);
    }

    // stop
    killed_at(s, "stop.services", &["workspace", "stop", &id]);
    assert_eq!(state_of(s, &id).0, "started", "stop.services: the VM still runs");
    assert_eq!(exec_out(s, &id, "echo up"), "up\n");
    killed_at(s, "stop.stopped", &["workspace", "stop", &id]);
    let (st, status) = state_of(s, &id);
    assert_eq!(st, "stopped", "stop.stopped: {status}");
    assert!(status["last_error"].is_string(), "stop.stopped says why: {status}");
    assert!(qemus_under(s).is_empty());
    survived.extend(["stop.services", "stop.stopped"]);

    // start (from a clean stop, so the record says stopped)
    json_ok(s, &["workspace", "stop", &id]);
    killed_at(s, "start.booted", &["workspace", "start", &id]);
    assert_eq!(state_of(s, &id).0, "stopped", "start.booted: not recorded started");
    let gc = doctor_then_gc(s);
    assert_eq!(gc["orphan_qemus"].as_array().map(Vec::len), Some(1), "start.booted: {gc}");
    json_ok(s, &["workspace", "start", &id]);
    assert_eq!(exec_out(s, &id, "cat /workspace/a.txt"), "base\n");
    survived.push("start.booted");

    // delete
    killed_at(s, "delete.destroyed", &["workspace", "delete", &id]);
    assert!(qemus_under(s).is_empty(), "delete.destroyed: QEMU left");
    assert_eq!(state_of(s, &id).0, "stopped");
    json_ok(s, &["workspace", "delete", &id]);
    survived.push("delete.destroyed");

    assert!(qemus_under(s).is_empty());
    let dirs = std::fs::read_dir(s.join("workspaces")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(dirs, 0, "workspace directories left");
    let mut all: Vec<&str> = pyro::runtime::fault::POINTS.to_vec();
    all.sort();
    survived.sort();
    assert_eq!(survived, all, "every fault point is exercised");
    println!("fault points survived: {}", survived.len());
}

#[test]
fn kill_9_of_mcp_serve_mid_call_and_of_qemu_mid_call() {
    let state = common::guest_tempdir();
    let s = state.path();
    let created = json_ok(s, &["workspace", "create", "debian:12-base"]);
    let id = created["workspace_id"].as_str().expect("id").to_owned();

    // kill -9 of `pyro mcp serve` while an exec is running in the guest.
    let mut serve = pyro(s)
        .args(["mcp", "serve", "--no-project-source"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mcp serve");
    let mut stdin = serve.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(serve.stdout.take().expect("stdout"));
    for message in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "guest_faults", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ] {
        writeln!(stdin, "{message}").expect("write");
    }
    let mut line = String::new();
    stdout.read_line(&mut line).expect("initialize answer");
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "workspace_exec",
        "arguments": {"workspace_id": id, "command": "sleep 3; echo late > /workspace/late.txt"}}});
    writeln!(stdin, "{call}").expect("write");
    stdin.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(800));
    serve.kill().expect("kill -9 mcp serve");
    serve.wait().expect("reap");
    let (st, status) = state_of(s, &id);
    assert_eq!(st, "started", "{status}");
    assert_eq!(exec_out(s, &id, "echo after-serve-died"), "after-serve-died\n");
    doctor_then_gc(s);

    // kill -9 of QEMU while an exec runs: a clear error, the truth in status, a start fixes it.
    let pid: i32 = std::fs::read_to_string(s.join("workspaces").join(&id).join("sandbox/qemu.pid"))
        .expect("pidfile")
        .trim()
        .parse()
        .expect("pid");
    let exec = pyro(s)
        .args(["workspace", "exec", &id, "--", "sleep", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exec");
    std::thread::sleep(Duration::from_millis(1500));
    Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill qemu");
    let out = exec.wait_with_output().expect("exec result");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("guest"), "{err}");
    let (st, status) = state_of(s, &id);
    assert_eq!(st, "stopped", "{status}");
    json_ok(s, &["workspace", "start", &id]);
    assert_eq!(exec_out(s, &id, "echo back"), "back\n");
    json_ok(s, &["workspace", "delete", &id]);
    assert!(qemus_under(s).is_empty());
}
