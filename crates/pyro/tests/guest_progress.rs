//! Progress, cancellation and streamed output in real guests:
//!
//! - an rmcp client that sends a `progressToken` gets `notifications/progress` with the
//!   phases of `workspace_create` (in order) and, for `workspace_exec`, the elapsed time and the
//!   tail of the command's output while it still runs;
//! - `notifications/cancelled` kills a `sleep 600` in the guest (it is gone from the
//!   guest's process list) and the call ends with a `cancelled` tool error;
//! - cancelling a `workspace_create` while it seeds leaves no workspace and no QEMU;
//! - `pyro workspace exec` and `pyro run` in human mode write a command's first line
//!   before the command ends (read from the child's stdout as it comes).

mod common;

use common::guest_tempdir;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, CancelledNotification,
    CancelledNotificationParam, ClientNotification, ClientRequest, ProgressNotificationParam,
    ProgressToken, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestHandle, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

const ENV: &str = "debian:12-base";

/// An rmcp client that keeps every progress notification it receives.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    arrived: Arc<tokio::sync::Notify>,
}

impl Recorder {
    fn messages(&self, token: &ProgressToken) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|p| &p.progress_token == token)
            .filter_map(|p| p.message.clone())
            .collect()
    }

    /// Wait until a progress message of `token` satisfies `want` (bounded: a guest test
    /// that waits forever helps nobody).
    async fn wait_for(&self, token: &ProgressToken, want: impl Fn(&str) -> bool) -> String {
        for _ in 0..600 {
            if let Some(found) = self.messages(token).into_iter().find(|m| want(m)) {
                return found;
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), self.arrived.notified()).await;
        }
        panic!("no matching progress for {token:?}: {:?}", self.messages(token));
    }
}

impl ClientHandler for Recorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).push(params);
        self.arrived.notify_waiters();
    }
}

async fn client(state: &Path, recorder: Recorder) -> Client {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.env("PYRO_STATE_DIR", state)
        .args(["mcp", "serve", "--no-project-source", "--profile", "workspace-core"])
        .stderr(Stdio::null());
    recorder.serve(TokioChildProcess::new(cmd).expect("spawn pyro mcp serve")).await.expect("init")
}

type Client = RunningService<RoleClient, Recorder>;

/// Send a tool call (rmcp gives every request its own progress token); the handle
/// has the token and the id.
async fn send(client: &Client, name: &str, args: Value) -> RequestHandle<RoleClient> {
    let Value::Object(map) = args else { panic!("args must be an object") };
    let params = CallToolRequestParams::new(name.to_string()).with_arguments(map);
    client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .expect("send")
}

async fn answer(handle: RequestHandle<RoleClient>) -> CallToolResult {
    let answer = tokio::time::timeout(Duration::from_secs(300), handle.await_response())
        .await
        .expect("the call ends")
        .expect("an answer");
    match answer {
        ServerResult::CallToolResult(result) => result,
        other => panic!("{other:?}"),
    }
}

async fn call(client: &Client, name: &str, args: Value) -> (CallToolResult, ProgressToken) {
    let handle = send(client, name, args).await;
    let token = handle.progress_token.clone();
    (answer(handle).await, token)
}

/// Cancel the call `handle` (`notifications/cancelled` with its request id). The client
/// ends its side of the call at once (rmcp answers a cancelled request itself), so this
/// checks that it ended as cancelled; what the server did is for the caller to check.
async fn cancel(client: &Client, handle: RequestHandle<RoleClient>) {
    client
        .send_notification(ClientNotification::CancelledNotification(CancelledNotification::new(
            CancelledNotificationParam::new(Some(handle.id.clone()), Some("test".into())),
        )))
        .await
        .expect("cancel");
    let ended = tokio::time::timeout(Duration::from_secs(60), handle.await_response())
        .await
        .expect("the cancelled call ends");
    assert!(matches!(ended, Err(rmcp::ServiceError::Cancelled { .. })), "{ended:?}");
}

fn structured(result: &CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "tool error: {result:?}");
    result.structured_content.clone().expect("structured content")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_progress_shows_phases_and_output_tail_and_cancel_kills_the_command() {
    let state = guest_tempdir();
    let recorder = Recorder::default();
    let client = client(state.path(), recorder.clone()).await;

    let (created, token) = call(&client, "workspace_create", json!({ "environment": ENV })).await;
    let id = structured(&created)["workspace_id"].as_str().expect("id").to_string();
    let phases = recorder.messages(&token);
    assert!(phases.iter().any(|m| m == "booting"), "{phases:?}");
    assert!(phases.iter().any(|m| m.starts_with("booted")), "{phases:?}");
    let at = |phase: &str| phases.iter().position(|m| m.starts_with(phase));
    assert!(at("booting") < at("booted"), "phases come in order: {phases:?}");

    // The command waits for a file that is only made once its first line was seen
    // in a progress message: the tail arrived while it was still running.
    let exec_args = json!({
        "workspace_id": id,
        "command": "echo tail-marker-1; while [ ! -e /workspace/go ]; do sleep 0.2; done; echo after-go",
    });
    let running = send(&client, "workspace_exec", exec_args).await;
    let token = running.progress_token.clone();
    let tail = recorder.wait_for(&token, |m| m.contains("tail-marker-1")).await;
    assert!(tail.starts_with("running ("), "{tail}");
    let go = json!({ "workspace_id": id, "command": "touch /workspace/go" });
    structured(&call(&client, "workspace_exec", go).await.0);
    let done = structured(&answer(running).await);
    assert_eq!(done["stdout"], "tail-marker-1\nafter-go\n");
    assert_eq!(done["exit_code"], 0);

    // Cancel a long command by its request id once its progress says it runs.
    let sleep = json!({ "workspace_id": id, "command": "echo sleeping; exec sleep 600" });
    let handle = send(&client, "workspace_exec", sleep).await;
    recorder.wait_for(&handle.progress_token, |m| m.contains("sleeping")).await;
    let ps = json!({ "workspace_id": id, "command": "ps -eo args" });
    let before = structured(&call(&client, "workspace_exec", ps.clone()).await.0);
    assert!(before["stdout"].as_str().expect("ps").contains("sleep 600"), "{before}");
    // The server kills the command at its next read (about a second).
    cancel(&client, handle).await;
    let mut gone = false;
    for _ in 0..60 {
        let after = structured(&call(&client, "workspace_exec", ps.clone()).await.0);
        if !after["stdout"].as_str().expect("ps").contains("sleep 600") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(gone, "sleep 600 still runs in the guest after the cancel");
    // The cancelled command left no history entry; the others did.
    let logs = structured(&call(&client, "workspace_logs", json!({ "workspace_id": id })).await.0);
    let commands: Vec<&str> = logs["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["command"].as_str())
        .collect();
    assert!(!commands.iter().any(|c| c.contains("sleep 600")), "{commands:?}");

    structured(&call(&client, "workspace_delete", json!({ "workspace_id": id })).await.0);
    client.cancel().await.expect("close");
}

/// A seed large enough that seeding and booting outlast the trip of a cancel: a few
/// thousand small files.
fn write_seed(root: &Path) {
    for d in 0..40 {
        let dir = root.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..50 {
            std::fs::write(dir.join(format!("f{f}.txt")), format!("{d}/{f}\n").repeat(400))
                .expect("write");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_cancel_of_a_create_removes_the_half_made_workspace() {
    let state = guest_tempdir();
    let seed = tempfile::tempdir().expect("seed dir");
    write_seed(seed.path());
    let recorder = Recorder::default();
    let client = client(state.path(), recorder.clone()).await;

    let args = json!({ "environment": ENV, "seed_path": seed.path().display().to_string() });
    let handle = send(&client, "workspace_create", args).await;
    recorder.wait_for(&handle.progress_token, |m| m == "seeding").await;
    cancel(&client, handle).await;
    // The server stops at the create's next step and removes what it made; nothing
    // ever shows up as a workspace, and no guest of this state directory runs.
    let state_text = state.path().display().to_string();
    let mut clean = false;
    for _ in 0..120 {
        let listed = structured(&call(&client, "workspace_list", json!({})).await.0);
        let none = listed["workspaces"].as_array().is_some_and(|w| w.is_empty());
        let qemu = Command::new("pgrep").args(["-f", &state_text]).output().expect("pgrep");
        let dirs =
            std::fs::read_dir(state.path().join("workspaces")).map(|d| d.count()).unwrap_or(0);
        if none && !qemu.status.success() && dirs == 0 {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(clean, "a cancelled create left a workspace, its directory or a QEMU behind");
    client.cancel().await.expect("close");
}

/// Read `child`'s stdout line by line; the first line must come while the command in
/// the guest is still blocked, so it was streamed, not printed at the end.
#[test]
fn cli_human_mode_streams_output_as_it_comes() {
    let state = guest_tempdir();
    let pyro = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pyro"));
        cmd.env("PYRO_STATE_DIR", state.path()).args(args);
        cmd
    };
    let out = pyro(&["workspace", "create", ENV, "--json"]).output().expect("create");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ws: Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = ws["workspace_id"].as_str().expect("id").to_string();

    let script = "echo first-line; echo to-stderr >&2; while [ ! -e /workspace/go ]; do sleep 0.2; done; echo second-line";
    let mut child = pyro(&["workspace", "exec", &id, "--", "sh", "-c", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exec");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    assert_eq!(line, "first-line\n");
    line.clear();
    stderr.read_line(&mut line).expect("stderr line");
    assert_eq!(line, "to-stderr\n");
    assert!(child.try_wait().expect("wait").is_none(), "the command is still blocked");
    let go = pyro(&["workspace", "exec", &id, "--json", "--", "touch", "/workspace/go"])
        .output()
        .expect("go");
    assert!(go.status.success(), "{}", String::from_utf8_lossy(&go.stderr));
    line.clear();
    stdout.read_line(&mut line).expect("second line");
    assert_eq!(line, "second-line\n");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("rest");
    assert_eq!(rest, "", "nothing is printed twice");
    assert!(child.wait().expect("wait").success());

    // `--json` is unchanged: one object with the whole output.
    let json = pyro(&["workspace", "exec", &id, "--json", "--", "sh", "-c", "echo a; echo b"])
        .output()
        .expect("json exec");
    let result: Value = serde_json::from_slice(&json.stdout).expect("one json object");
    assert_eq!(result["stdout"], "a\nb\n");

    // `pyro run` streams too: its first line arrives while the guest still sleeps.
    let mut run = pyro(&["run", ENV, "--", "sh", "-c", "echo run-first; sleep 4; echo run-second"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run");
    let mut out = BufReader::new(run.stdout.take().expect("stdout"));
    line.clear();
    out.read_line(&mut line).expect("run first line");
    assert_eq!(line, "run-first\n");
    assert!(run.try_wait().expect("wait").is_none(), "pyro run is still running");
    line.clear();
    out.read_line(&mut line).expect("run second line");
    assert_eq!(line, "run-second\n");
    assert!(run.wait().expect("wait").success());

    let deleted = pyro(&["workspace", "delete", &id, "--json"]).output().expect("delete");
    assert!(deleted.status.success());
}
