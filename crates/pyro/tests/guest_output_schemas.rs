//! The guest-only tools' real results validate against their `outputSchema`: shells,
//! services, the offline disk tools and a guest `vm_run`, called over a real
//! `pyro mcp serve --profile workspace-full` with the rmcp client, whose `call` checks
//! every answer (`tests/common/rmcp_call.rs`). Together with `mcp_profiles.rs` (every
//! other tool, on host_compat) every tool's real `structuredContent` is validated. Like
//! every guest test this never skips: without the guest assets it fails and says to run
//! scripts/setup.

mod common;
#[path = "common/rmcp_call.rs"]
mod rmcp_call;
use rmcp_call::{call, Client};

use pyro::{Runtime, RuntimeConfig};
use rmcp::model::CallToolResult;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::{json, Map, Value};
use std::path::Path;

const ENV: &str = "debian:12-base";

async fn mcp(state: &Path) -> Client {
    let rt =
        Runtime::new(RuntimeConfig { state_dir: state.to_path_buf(), ..RuntimeConfig::from_env() });
    let report = rt.doctor();
    assert!(report.runtime_ok, "guest backend not ready ({:?}); run scripts/setup", report.issues);
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.args(["mcp", "serve", "--no-project-source", "--profile", "workspace-full"])
        .env("PYRO_STATE_DIR", state)
        .env_remove("PYRO_BACKEND");
    ().serve(TokioChildProcess::new(cmd).expect("spawn pyro mcp serve")).await.expect("init")
}

fn ok(name: &str, result: CallToolResult) -> Map<String, Value> {
    assert_ne!(result.is_error, Some(true), "{name} failed: {result:?}");
    match result.structured_content {
        Some(Value::Object(map)) => map,
        other => panic!("{name}: no structured content: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_only_tools_answer_with_results_that_validate_against_their_output_schema() {
    let state = common::guest_tempdir();
    let host = tempfile::tempdir().expect("tempdir");
    let client = mcp(state.path()).await;
    let mut called = Vec::new();
    macro_rules! answer {
        ($name:literal, $args:expr) => {{
            called.push($name);
            ok($name, call(&client, $name, $args).await)
        }};
    }

    let run = answer!("vm_run", json!({"environment": ENV, "command": "uname -r"}));
    assert_eq!(run["execution_mode"], "guest");
    assert!(["clone", "cold"].contains(&run["metadata"]["boot"].as_str().unwrap_or("")), "{run:?}");

    let ws = answer!("workspace_create", json!({"environment": ENV}));
    let id = ws["workspace_id"].as_str().expect("id").to_string();
    answer!("workspace_file_write", json!({"workspace_id": id, "path": "a.txt", "text": "one\n"}));

    let shell = answer!("shell_open", json!({"workspace_id": id, "cols": 80, "rows": 24}));
    let shell_id = shell["shell_id"].as_str().expect("shell id").to_string();
    let sh = |extra: Value| {
        let mut args = json!({"workspace_id": id, "shell_id": shell_id});
        args.as_object_mut().expect("obj").extend(extra.as_object().expect("obj").clone());
        args
    };
    answer!("shell_write", sh(json!({"input": "echo ready"})));
    answer!("shell_read", sh(json!({"plain": true, "wait_for_idle_ms": 300})));
    let signal = answer!("shell_signal", sh(json!({"signal_name": "INT"})));
    assert_eq!(signal["signal"], "INT");
    answer!("shell_close", sh(json!({})));

    let svc = json!({"workspace_id": id, "service_name": "idle"});
    let started = answer!(
        "service_start",
        json!({"workspace_id": id, "service_name": "idle", "command": "touch up; exec sleep 300",
               "ready_file": "up", "ready_timeout_seconds": 30})
    );
    assert_eq!(started["state"], "running", "{started:?}");
    let listed = answer!("service_list", json!({"workspace_id": id}));
    assert_eq!(listed["count"], 1);
    answer!("service_status", svc.clone());
    answer!("service_logs", svc.clone());
    let stopped = answer!("service_stop", svc);
    assert!(stopped["stop_reason"].is_string(), "{stopped:?}");

    answer!("workspace_stop", json!({"workspace_id": id}));
    answer!("workspace_disk_list", json!({"workspace_id": id}));
    let read = answer!("workspace_disk_read", json!({"workspace_id": id, "path": "a.txt"}));
    assert_eq!(read["content"], "one\n");
    let image = host.path().join("disk.img");
    answer!("workspace_disk_export", json!({"workspace_id": id, "output_path": image}));
    answer!("workspace_delete", json!({"workspace_id": id}));
    client.cancel().await.expect("shutdown");

    for name in rmcp_call::GUEST_ONLY_TOOLS {
        assert!(called.contains(&name), "{name} not validated");
    }
}
