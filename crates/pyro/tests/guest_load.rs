//! Load with real guests (QEMU; TCG here): 8 workspaces x 16 execs sent at once through
//! one `pyro mcp serve`, while CLI processes exec on the same workspaces. Every exec
//! answers with its own output, none fails, and every one is in its workspace's history
//! exactly once. CPU heavy by nature; kept to the size the issue names, with cheap
//! commands, so it runs in CI in a couple of minutes on 2 cores.

mod common;
#[path = "common/mcp_stdio.rs"]
mod mcp_stdio;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

const WORKSPACES: usize = 8;
const MCP_EXECS_PER_WORKSPACE: usize = 16;
const CLI_EXECS_PER_WORKSPACE: usize = 2;

fn pyro(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.env("PYRO_STATE_DIR", state);
    cmd
}

fn json_ok(state: &Path, args: &[&str]) -> Value {
    let out = pyro(state).args(args).output().expect("pyro");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn eight_workspaces_sixteen_parallel_execs_each_through_one_server_and_the_cli() {
    let state = common::guest_tempdir();
    let s = state.path().to_path_buf();
    let started = Instant::now();
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WORKSPACES)
            .map(|_| {
                let s = s.clone();
                scope.spawn(move || {
                    let ws = json_ok(&s, &["workspace", "create", "debian:12-base", "--json"]);
                    ws["workspace_id"].as_str().expect("id").to_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("create")).collect()
    });
    println!("{WORKSPACES} workspaces created in {:?}", started.elapsed());

    let mut mcp = mcp_stdio::Mcp::start(&s, &[]);
    let mut expected: BTreeMap<u64, (String, String)> = BTreeMap::new();
    let started = Instant::now();
    let mut next = 1000u64;
    for n in 0..MCP_EXECS_PER_WORKSPACE {
        for id in &ids {
            let token = format!("mcp-{id}-{n}");
            mcp.send_tool(
                next,
                "workspace_exec",
                json!({ "workspace_id": id, "command": format!("echo {token}") }),
            );
            expected.insert(next, (id.clone(), token));
            next += 1;
        }
    }
    // CLI execs on the same workspaces at the same time.
    let cli: Vec<_> = ids
        .iter()
        .flat_map(|id| (0..CLI_EXECS_PER_WORKSPACE).map(move |n| (id.clone(), n)))
        .map(|(id, n)| {
            let token = format!("cli-{id}-{n}");
            let child = pyro(&s)
                .args(["workspace", "exec", &id, "--json", "--", "echo", &token])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("cli exec");
            (id, token, child)
        })
        .collect();

    let mut answered = BTreeSet::new();
    while answered.len() < expected.len() {
        let answer = mcp.next_answer();
        let id = answer["id"].as_u64().expect("numeric id");
        let Some((ws, token)) = expected.get(&id) else { continue };
        let result = &answer["result"];
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        assert_ne!(result["isError"], json!(true), "exec {token} on {ws} failed: {answer}");
        let out: Value = serde_json::from_str(text).expect("exec result json");
        assert_eq!(out["workspace_id"], json!(ws), "{out}");
        assert_eq!(out["stdout"], json!(format!("{token}\n")), "exec {token} got another's output");
        assert_eq!(out["exit_code"], 0);
        assert!(answered.insert(id), "answered twice: {id}");
    }
    for (id, token, child) in cli {
        let out = child.wait_with_output().expect("cli exec");
        assert!(out.status.success(), "cli exec {token}: {}", String::from_utf8_lossy(&out.stderr));
        let out: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(out["workspace_id"], json!(id));
        assert_eq!(out["stdout"], json!(format!("{token}\n")));
    }
    let total = WORKSPACES * (MCP_EXECS_PER_WORKSPACE + CLI_EXECS_PER_WORKSPACE);
    println!("{total} execs answered in {:?}", started.elapsed());

    for id in &ids {
        let logs = json_ok(&s, &["workspace", "logs", id, "--json"]);
        let entries = logs["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), MCP_EXECS_PER_WORKSPACE + CLI_EXECS_PER_WORKSPACE, "{id}");
        let sequences: BTreeSet<u64> =
            entries.iter().map(|e| e["sequence"].as_u64().expect("sequence")).collect();
        assert_eq!(sequences.len(), entries.len(), "duplicate sequences in {id}");
        let outputs: BTreeSet<&str> =
            entries.iter().map(|e| e["stdout"].as_str().expect("stdout")).collect();
        for n in 0..MCP_EXECS_PER_WORKSPACE {
            assert!(outputs.contains(format!("mcp-{id}-{n}\n").as_str()), "lost mcp-{id}-{n}");
        }
        for n in 0..CLI_EXECS_PER_WORKSPACE {
            assert!(outputs.contains(format!("cli-{id}-{n}\n").as_str()), "lost cli-{id}-{n}");
        }
        let status = json_ok(&s, &["workspace", "status", id, "--json"]);
        assert_eq!(status["command_count"], json!(entries.len()));
    }
    drop(mcp);
    for id in &ids {
        json_ok(&s, &["workspace", "delete", id, "--json"]);
    }
}
