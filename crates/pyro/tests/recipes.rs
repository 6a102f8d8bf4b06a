//! Use-case recipes as tests, on real guests, each through `pyro mcp serve` with a real
//! MCP client:
//!
//! - repro-fix-loop from a project checkout (`--mode repro-fix`, the official Python
//!   client): create without seed_path, reproduce, read, patch, rerun, diff, summary,
//!   export, reset, delete; the checkout is never modified;
//! - the daily loop: `pyro doctor --environment` (cold) → `pyro prepare` → doctor (warm)
//!   → `pyro host connect codex` → the registered command served to the rmcp client →
//!   create, exec, reset as the retry, delete; then stale manifests say why.
//!
//! Guests boot under TCG here (seconds each), so the recipes stay few.

mod common;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::{json, Map, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A project whose `check.sh` fails until `src/answer.txt` says 42, with ignored build
/// output (including an unreadable file) and an untracked scratch file.
fn failing_project(root: &Path) {
    fs::create_dir_all(root.join("src")).expect("mkdir");
    fs::write(root.join("src/answer.txt"), "41\n").expect("write");
    fs::write(
        root.join("check.sh"),
        "a=$(cat src/answer.txt)\nif [ \"$a\" = 42 ]; then echo ok; else echo \"got $a, want 42\"; exit 1; fi\n",
    )
    .expect("write");
    fs::write(root.join(".gitignore"), "build/\n").expect("write");
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "failing"]);
    fs::create_dir_all(root.join("build")).expect("mkdir");
    fs::write(root.join("build/secret.o"), "generated").expect("write");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(root.join("build/secret.o"), fs::Permissions::from_mode(0o000))
        .expect("chmod");
    fs::write(root.join("notes.txt"), "untracked").expect("write");
}

#[test]
fn repro_fix_loop_from_a_project_checkout_with_the_python_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("project");
    failing_project(&project);
    let status_before = git(&project, &["status", "--porcelain", "--ignored"]);
    let state = common::guest_tempdir();
    let export = tempfile::tempdir().expect("export");
    let script = format!("{}/tests/python/recipe_repro_fix.py", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_pyro"))
        .arg(&project)
        .arg(export.path())
        .env("PYRO_STATE_DIR", state.path())
        .output()
        .expect("python3 runs (scripts/setup installs the mcp package)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok recipe repro-fix"),
        "recipe failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(git(&project, &["status", "--porcelain", "--ignored"]), status_before);
    assert_eq!(fs::read_to_string(project.join("src/answer.txt")).expect("read"), "41\n");
}

/// A private cache made of hard links to the shared one, so the manifest this test
/// writes (and edits) is its own.
fn private_cache(into: &Path) -> PathBuf {
    let shared = std::env::var_os("PYRO_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/pyro"));
    let cache = into.join("cache");
    let status = Command::new("cp").arg("-al").arg(&shared).arg(&cache).status().expect("cp runs");
    assert!(status.success(), "cp -al {}", shared.display());
    cache
}

fn pyro_json(cache: &Path, state: &Path, home: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_pyro"))
        .args(args)
        .env("PYRO_CACHE_DIR", cache)
        .env("PYRO_STATE_DIR", state)
        .env("HOME", home)
        .current_dir(home)
        .output()
        .expect("pyro runs");
    assert!(
        out.status.success(),
        "pyro {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_loop_doctor_prepare_connect_serve_and_reset_as_the_retry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = private_cache(dir.path());
    let home = dir.path().join("home");
    fs::create_dir_all(home.join(".codex")).expect("mkdir");
    let state = common::guest_tempdir();
    let env = "debian:12-base";
    let doctor =
        pyro_json(&cache, state.path(), &home, &["doctor", "--environment", env, "--json"]);
    assert_eq!(doctor["daily_loop"]["state"], "cold", "{}", doctor["daily_loop"]);

    let prepared = pyro_json(&cache, state.path(), &home, &["prepare", env, "--json"]);
    assert_eq!(prepared["action"], "proved", "{prepared}");
    assert_eq!(prepared["status"]["state"], "warm");
    assert!(prepared["manifest"]["guest_kernel"].as_str().unwrap_or_default().starts_with("6."));
    let manifest_path = PathBuf::from(prepared["manifest_path"].as_str().expect("path"));
    assert!(manifest_path.starts_with(&cache), "the manifest lives in the cache");
    let listed = pyro_json(&cache, state.path(), &home, &["workspace", "list", "--json"]);
    assert_eq!(listed["count"], 0, "the proof workspace was deleted");
    let doctor =
        pyro_json(&cache, state.path(), &home, &["doctor", "--environment", env, "--json"]);
    assert_eq!(doctor["daily_loop"]["state"], "warm", "{}", doctor["daily_loop"]);
    let again = pyro_json(&cache, state.path(), &home, &["prepare", env, "--json"]);
    assert_eq!(again["action"], "already_warm");

    // Connect a host, then serve exactly what it registered.
    let pyro_bin = env!("CARGO_BIN_EXE_pyro");
    let connected = pyro_json(
        &cache,
        state.path(),
        &home,
        &[
            "host",
            "connect",
            "codex",
            "--mode",
            "repro-fix",
            "--no-project-source",
            "--environment",
            env,
            "--command",
            pyro_bin,
            "--json",
        ],
    );
    assert_eq!(connected["action"], "wrote_config");
    let config: toml_edit::DocumentMut =
        fs::read_to_string(home.join(".codex/config.toml")).expect("config").parse().expect("toml");
    let entry = &config["mcp_servers"]["pyro"];
    let program = entry["command"].as_str().expect("command").to_string();
    let args: Vec<String> = entry["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&args).env("PYRO_CACHE_DIR", &cache).env("PYRO_STATE_DIR", state.path());
    let client = ().serve(TokioChildProcess::new(cmd).expect("spawn")).await.expect("initialize");
    let call = |name: &'static str, args: Value| {
        let client = &client;
        async move {
            let Value::Object(map) = args else { panic!("object") };
            let r = client
                .call_tool(CallToolRequestParams::new(name).with_arguments(map))
                .await
                .expect("transport");
            assert_ne!(r.is_error, Some(true), "{name}: {r:?}");
            match r.structured_content {
                Some(Value::Object(m)) => m,
                other => panic!("{name}: {other:?}"),
            }
        }
    };
    let ws: Map<String, Value> = call("workspace_create", json!({})).await;
    assert_eq!(ws["environment"], env);
    assert_eq!(ws["execution_mode"], "guest");
    let id = ws["workspace_id"].as_str().expect("id").to_string();
    let w = json!({"workspace_id": id});
    let out =
        call("workspace_exec", json!({"workspace_id": id, "command": "echo try1 > t && exit 3"}))
            .await;
    assert_eq!(out["exit_code"], 3);
    let reset = call("workspace_reset", w.clone()).await;
    assert_eq!(reset["reset_count"], 1);
    let out = call("workspace_exec", json!({"workspace_id": id, "command": "test ! -e t"})).await;
    assert_eq!(out["exit_code"], 0, "reset is a clean retry");
    let summary = call("workspace_summary", w.clone()).await;
    assert_eq!(summary["since"], "reset");
    assert_eq!(summary["outcome"], "passed");
    call("workspace_delete", w).await;
    client.cancel().await.expect("shutdown");

    // Stale: the manifest was proven with another pyro and another agent.
    let mut manifest: Value =
        serde_json::from_str(&fs::read_to_string(&manifest_path).expect("manifest")).expect("json");
    manifest["fingerprint"]["pyro_version"] = json!("0.0.1");
    manifest["fingerprint"]["agent"] = json!("0000");
    fs::write(&manifest_path, serde_json::to_vec(&manifest).expect("encode")).expect("write");
    let doctor =
        pyro_json(&cache, state.path(), &home, &["doctor", "--environment", env, "--json"]);
    let daily = &doctor["daily_loop"];
    assert_eq!(daily["state"], "stale", "{daily}");
    let reasons = daily["reasons"].to_string();
    assert!(reasons.contains("pyro version changed (0.0.1"), "{reasons}");
    assert!(reasons.contains("guest agent changed"), "{reasons}");
    assert_eq!(daily["fix"], format!("pyro prepare {env}"));
}
