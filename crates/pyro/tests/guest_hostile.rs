//! Hostile guests, for real (QEMU; TCG here): a program in the guest kills the agent's
//! `--serve` process, takes every agent port over and writes an endless line; another
//! floods the serial console. The host must stay bounded (RSS measured here), report a
//! clear error, say the agent is unhealthy, keep other workspaces and a long-lived
//! `pyro mcp serve` working, and keep at most the console cap on disk. Like every guest
//! test these never skip: without the guest assets they fail and say to run
//! scripts/setup.

mod common;
#[path = "common/mcp_stdio.rs"]
mod mcp_stdio;
#[path = "common/peak_rss.rs"]
mod peak_rss;

use common::exec_ok as exec_stdout;
use common::guest_runtime as runtime;
use pyro::params::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The takeover, as the issue measured it: kill every agent server (they run as
/// `/proc/self/exe --serve`, so their comm is `exe`) again and again, and hold every
/// agent port with a writer of an endless line of `A`s (no newline ever).
const TAKEOVER: &str = r#"#!/bin/sh
sleep 1
(
  while :; do
    for d in /proc/[0-9]*; do
      read -r c < "$d/comm" 2>/dev/null || continue
      [ "$c" = exe ] && kill -9 "${d#/proc/}" 2>/dev/null
    done
    sleep 0.3
  done
) &
for n in /sys/class/virtio-ports/*; do
  read -r name < "$n/name"
  case "$name" in org.pyro.agent*)
    dev="/dev/${n##*/}"
    ( while :; do tr '\0' A < /dev/zero > "$dev" 2>/dev/null; sleep 0.05; done ) &
  esac
done
wait
"#;

fn pyro_cli(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.env("PYRO_STATE_DIR", state);
    cmd
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("rss field")
}

/// Run a CLI call under `/usr/bin/time`: (exit ok, stdout+stderr, peak RSS in KiB).
fn cli_with_peak_rss(state: &Path, args: &[&str]) -> (bool, String, u64) {
    let run = peak_rss::run(state, &[], args);
    (run.ok, format!("{}{}", run.stdout, run.stderr), run.peak_kib)
}

/// Bound on the peak RSS of one CLI call against a hostile guest (the issue measured
/// 2.5-3.2 GiB before the caps).
const CLI_PEAK_BOUND_KIB: u64 = 64 * 1024;
/// Bound on how much a long-lived `pyro mcp serve` may grow over the hostile calls.
const MCP_GROWTH_BOUND_KIB: u64 = 32 * 1024;

#[test]
fn a_guest_that_takes_the_agent_ports_over_only_breaks_its_own_workspace() {
    let state = common::guest_tempdir();
    let rt = runtime(state.path());
    let create = |name: &str| {
        rt.workspace_create(WorkspaceCreateParams {
            name: Some(name.into()),
            ..WorkspaceCreateParams::new("debian:12-base")
        })
        .expect("create")
        .workspace_id
    };
    let hostile = create("hostile");
    let bystander = create("bystander");
    let mut mcp = mcp_stdio::Mcp::start(state.path(), &[]);
    let (is_error, text) =
        mcp.tool("workspace_exec", json!({ "workspace_id": bystander, "command": "echo warm" }));
    assert!(!is_error && text.contains("warm"), "{text}");
    let mcp_before = rss_kib(mcp.pid(), "VmRSS:");

    rt.workspace_file_write(WorkspaceFileWriteParams {
        workspace_id: hostile.clone(),
        path: "takeover.sh".into(),
        text: TAKEOVER.into(),
    })
    .expect("write the takeover");
    exec_stdout(&rt, &hostile, "setsid sh /workspace/takeover.sh </dev/null >/dev/null 2>&1 &");

    // Wait until the takeover holds the ports: calls start failing.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last;
    loop {
        let (ok, text, peak) =
            cli_with_peak_rss(state.path(), &["workspace", "exec", &hostile, "--", "echo", "hi"]);
        assert!(peak < CLI_PEAK_BOUND_KIB, "a CLI call grew to {peak} KiB: {text}");
        last = text;
        if !ok {
            break;
        }
        assert!(Instant::now() < deadline, "the takeover never took the ports: {last}");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Every later call: a clear error, bounded memory, within its deadline.
    let mut invalid_answers = 0;
    for round in 0..4 {
        let started = Instant::now();
        let (ok, text, peak) =
            cli_with_peak_rss(state.path(), &["workspace", "exec", &hostile, "--", "echo", "hi"]);
        let took = started.elapsed();
        println!("round {round}: peak RSS {peak} KiB in {took:?}: {}", text.trim());
        assert!(!ok, "a call to the hostile guest succeeded: {text}");
        assert!(peak < CLI_PEAK_BOUND_KIB, "a CLI call grew to {peak} KiB: {text}");
        assert_eq!(text.trim().lines().count(), 1, "one line of error: {text}");
        assert!(took < Duration::from_secs(30), "took {took:?}");
        if text.contains("the guest agent sent an invalid answer") {
            invalid_answers += 1;
        }
    }
    assert!(invalid_answers > 0, "no call said the agent sent an invalid answer: {last}");

    for _ in 0..3 {
        let (is_error, text) =
            mcp.tool("workspace_exec", json!({ "workspace_id": hostile, "command": "echo hi" }));
        assert!(is_error, "hostile exec over MCP succeeded: {text}");
        assert!(!text.is_empty());
    }
    let (is_error, text) =
        mcp.tool("workspace_exec", json!({ "workspace_id": bystander, "command": "echo b-ok" }));
    assert!(!is_error && text.contains("b-ok"), "bystander over MCP: {text}");
    let mcp_after = rss_kib(mcp.pid(), "VmRSS:");
    println!("mcp serve RSS {mcp_before} KiB -> {mcp_after} KiB");
    assert!(
        mcp_after.saturating_sub(mcp_before) < MCP_GROWTH_BOUND_KIB,
        "mcp serve grew from {mcp_before} to {mcp_after} KiB"
    );

    let status = rt.workspace_status(&hostile).expect("status");
    assert_eq!(status.metadata.get("agent_health").map(String::as_str), Some("unhealthy"));
    let last_error = status.last_error.expect("last_error");
    assert!(last_error.contains("invalid answer"), "{last_error}");
    let bystander_status = rt.workspace_status(&bystander).expect("status");
    assert_eq!(bystander_status.metadata.get("agent_health").map(String::as_str), Some("ok"));
    assert_eq!(exec_stdout(&rt, &bystander, "echo still-fine"), "still-fine\n");

    // A stop and start gives the workspace a fresh agent; delete then removes it all.
    rt.workspace_stop(&hostile).expect("stop the hostile workspace");
    rt.workspace_start(&hostile).expect("start it again");
    assert_eq!(exec_stdout(&rt, &hostile, "echo fresh"), "fresh\n");
    let status = rt.workspace_status(&hostile).expect("status");
    assert_eq!(status.metadata.get("agent_health").map(String::as_str), Some("ok"));
    rt.workspace_delete(&hostile).expect("delete");
    rt.workspace_delete(&bystander).expect("delete");
    let left = Command::new("pgrep")
        .args(["-f", &state.path().display().to_string()])
        .output()
        .expect("pgrep");
    assert!(left.stdout.is_empty(), "processes left: {}", String::from_utf8_lossy(&left.stdout));
}

#[test]
fn a_guest_flooding_its_console_keeps_the_host_log_capped() {
    let state = common::guest_tempdir();
    runtime(state.path());
    let cli = |args: &[&str]| {
        let out = pyro_cli(state.path())
            .env("PYRO_CONSOLE_LOG_MAX_MIB", "1")
            .args(args)
            .output()
            .expect("pyro");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    let created: Value =
        serde_json::from_str(&cli(&["workspace", "create", "debian:12-base", "--json"]))
            .expect("json");
    let id = created["workspace_id"].as_str().expect("id").to_owned();
    let sandbox = state.path().join("workspaces").join(&id).join("sandbox");
    let qemu_pid: u32 = std::fs::read_to_string(sandbox.join("qemu.pid"))
        .expect("pidfile")
        .trim()
        .parse()
        .expect("pid");
    let kept = || -> u64 {
        ["console.log", "console.log.1"]
            .iter()
            .filter_map(|f| std::fs::metadata(sandbox.join(f)).ok())
            .map(|m| m.len())
            .sum()
    };
    let boot_log = kept();
    cli(&[
        "workspace",
        "exec",
        &id,
        "--",
        "sh",
        "-c",
        "setsid sh -c 'while :; do echo CONSOLE-FLOOD-0123456789abcdef; done > /dev/ttyS0' \
         </dev/null >/dev/null 2>&1 &",
    ]);
    let rss_start = rss_kib(qemu_pid, "VmRSS:");
    std::thread::sleep(Duration::from_secs(15));
    let rss_mid = rss_kib(qemu_pid, "VmRSS:");
    std::thread::sleep(Duration::from_secs(15));
    let rss_end = rss_kib(qemu_pid, "VmRSS:");
    // With no pyro process around, QEMU keeps the flood in its ring: nothing on disk.
    assert_eq!(kept(), boot_log, "the console file grew while nobody drained it");
    println!("QEMU RSS while flooding: {rss_start} -> {rss_mid} -> {rss_end} KiB");
    assert!(rss_end.saturating_sub(rss_mid) < 16 * 1024, "QEMU grew {rss_mid} -> {rss_end} KiB");
    // Stop drains the ring into the rotated log: the flood is there, under the cap.
    cli(&["workspace", "stop", &id]);
    let log = std::fs::read(sandbox.join("console.log")).expect("console.log");
    assert!(
        String::from_utf8_lossy(&log).contains("CONSOLE-FLOOD-0123456789abcdef"),
        "the flood never reached the console"
    );
    let total = kept();
    println!("console kept after stop: {total} bytes (cap 1 MiB, boot log {boot_log})");
    assert!(total <= 1024 * 1024, "kept {total} bytes");
    assert!(total > 256 * 1024, "the drain kept only {total} bytes of a 30 s flood");
    cli(&["workspace", "delete", &id]);
}

#[test]
fn a_repository_with_absolute_symlinks_seeds_snapshots_resets_and_exports() {
    let state = common::guest_tempdir();
    let rt = runtime(state.path());
    let repo = state.path().join("repo");
    std::fs::create_dir_all(repo.join("src")).expect("repo");
    std::fs::write(repo.join("src/main.rs"), "fn main() {}\n").expect("write");
    std::os::unix::fs::symlink("/etc/os-release", repo.join("os-release")).expect("link");
    std::os::unix::fs::symlink("../../outside", repo.join("src/up")).expect("link");
    std::os::unix::fs::symlink("main.rs", repo.join("src/main-link")).expect("link");
    let id = rt
        .workspace_create(WorkspaceCreateParams {
            seed_path: Some(repo.display().to_string()),
            ..WorkspaceCreateParams::new("debian:12-base")
        })
        .expect("seed a repository with absolute and outward links")
        .workspace_id;
    assert_eq!(
        exec_stdout(&rt, &id, "readlink os-release src/up"),
        "/etc/os-release\n../../outside\n"
    );
    rt.snapshot_create(SnapshotParams { workspace_id: id.clone(), snapshot_name: "links".into() })
        .expect("snapshot");
    exec_stdout(&rt, &id, "rm os-release src/up");
    rt.workspace_reset(WorkspaceResetParams { workspace_id: id.clone(), snapshot: "links".into() })
        .expect("reset to a snapshot with absolute links");
    assert_eq!(exec_stdout(&rt, &id, "readlink os-release"), "/etc/os-release\n");
    let out = state.path().join("export");
    let export = rt
        .workspace_export(WorkspaceExportParams {
            workspace_id: id.clone(),
            path: "/workspace".into(),
            output_path: out.display().to_string(),
        })
        .expect("export");
    assert_eq!(export.symlink_count, 3);
    assert_eq!(
        std::fs::read_link(out.join("os-release")).expect("link"),
        Path::new("/etc/os-release")
    );
    assert_eq!(std::fs::read_link(out.join("src/up")).expect("link"), Path::new("../../outside"));
    assert!(!state.path().join("outside").exists(), "a link was followed on the host");
    rt.workspace_delete(&id).expect("delete");
}
