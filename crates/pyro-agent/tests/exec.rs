//! Exec behaviour through the public API: timeouts kill the whole process tree,
//! output caps, and background processes that keep the pipes open.

use base64::Engine as _;
use pyro_agent::Sandbox;
use pyro_protocol::{ExecOutput, ExecRequest, Request, Response};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn exec(sandbox: &Sandbox, command: &str, timeout_ms: u64, max_output_bytes: u64) -> ExecOutput {
    let request = Request::Exec(ExecRequest {
        command: command.to_owned(),
        cwd: "/workspace".to_owned(),
        env: BTreeMap::new(),
        timeout_ms,
        max_output_bytes,
    });
    match sandbox.handle(request) {
        Response::Exec(out) => out,
        other => panic!("unexpected answer: {other:?}"),
    }
}

fn decode(b64: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(b64).expect("base64")
}

/// True once `pid` no longer runs (gone, or a zombie waiting for its reaper).
fn is_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next());
            matches!(state, Some("Z") | Some("X"))
        }
    }
}

fn wait_dead(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if is_dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    is_dead(pid)
}

fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(pid) = text.trim().parse() {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "no pid written to {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn timeout_kills_the_whole_process_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::host_compat(dir.path());
    let started = Instant::now();
    let out = exec(&sandbox, "echo before; sleep 100 & echo $! > bg.pid; sleep 100", 700, 1024);
    let elapsed = started.elapsed();
    assert!(out.timed_out);
    assert_eq!(out.exit_code, 124);
    assert_eq!(out.signal, Some(libc::SIGKILL));
    assert_eq!(decode(&out.stdout_b64), b"before\n");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(out.duration_ms >= 700, "duration_ms {}", out.duration_ms);
    let bg = read_pid(&dir.path().join("bg.pid"));
    assert!(wait_dead(bg, Duration::from_secs(3)), "background sleep {bg} survived the timeout");
}

#[test]
fn output_over_the_cap_is_truncated_but_fully_drained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::host_compat(dir.path());
    // 4 MiB is far more than a pipe buffer: the command only finishes if we keep reading.
    let out = exec(&sandbox, "head -c 4194304 /dev/zero; echo done >&2", 20_000, 1000);
    assert_eq!(out.exit_code, 0);
    assert!(!out.timed_out);
    assert!(out.truncated);
    assert_eq!(decode(&out.stdout_b64), vec![0u8; 1000]);
    assert_eq!(decode(&out.stderr_b64), b"done\n");

    let out = exec(&sandbox, "printf 12345", 20_000, 5);
    assert!(!out.truncated, "exactly at the cap is not truncated");
    assert_eq!(decode(&out.stdout_b64), b"12345");
    let out = exec(&sandbox, "printf 123456 >&2", 20_000, 5);
    assert!(out.truncated, "stderr over the cap sets the flag too");
    assert_eq!(decode(&out.stderr_b64), b"12345");
}

#[test]
fn background_child_holding_the_pipes_does_not_block_the_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::host_compat(dir.path());
    let started = Instant::now();
    let out = exec(&sandbox, "(sleep 3; echo late) & echo $! > bg.pid; echo early", 20_000, 1024);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "waited for the background child: {elapsed:?}");
    assert_eq!(out.exit_code, 0);
    assert!(!out.timed_out);
    assert_eq!(decode(&out.stdout_b64), b"early\n");
    // The background process was not killed: it is left to finish on its own.
    let bg = read_pid(&dir.path().join("bg.pid"));
    assert!(!is_dead(bg), "background process {bg} should still run");
}

#[test]
fn host_compat_env_is_clean_plus_extras() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sandbox = Sandbox::host_compat(dir.path());
    std::env::set_var("PYRO_AGENT_TEST_LEAK", "leaked");
    let request = Request::Exec(ExecRequest {
        command: "env | sort".to_owned(),
        cwd: "/workspace".to_owned(),
        env: BTreeMap::from([("EXTRA".to_owned(), "1".to_owned())]),
        timeout_ms: 10_000,
        max_output_bytes: 65536,
    });
    let Response::Exec(out) = sandbox.handle(request) else { panic!("exec failed") };
    let text = String::from_utf8(decode(&out.stdout_b64)).expect("utf8");
    assert!(text.contains("EXTRA=1\n"), "{text}");
    assert!(text.contains("LANG=C.UTF-8\n"), "{text}");
    assert!(text.contains(&format!("HOME={}\n", dir.path().display())), "{text}");
    assert!(!text.contains("PYRO_AGENT_TEST_LEAK"), "{text}");
}
