//! Project-aware startup of `pyro mcp serve`, driven by the rmcp client: auto-detected
//! checkouts, `--project-path`, `--repo-url` (a `file://` bare repository),
//! `--no-project-source`, `--environment`, and what `pyro doctor` says it would use.
//! Host execution is forced so these run without a guest; the guest-backed end-to-end
//! check is the repro-fix recipe in `recipes.rs`.

#[path = "common/git.rs"]
mod git_helper;
#[path = "common/rmcp_call.rs"]
mod rmcp_call;
use rmcp::model::CallToolResult;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use rmcp_call::{call, Client};
use serde_json::{json, Map, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use git_helper::git;

/// A checkout with tracked, staged, modified, untracked and ignored files; the ignored
/// build output holds a sparse 600 MiB file (larger than any seed) that nobody may read.
fn messy_checkout(root: &Path) {
    fs::create_dir_all(root.join("src")).expect("mkdir");
    fs::write(root.join("README.md"), "hello\n").expect("write");
    fs::write(root.join("src/lib.rs"), "pub fn answer() -> u32 { 41 }\n").expect("write");
    fs::write(root.join(".gitignore"), "target/\n*.log\n").expect("write");
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "init"]);
    fs::write(root.join("src/lib.rs"), "pub fn answer() -> u32 { 42 }\n").expect("modify");
    fs::write(root.join("staged.txt"), "staged\n").expect("write");
    git(root, &["add", "staged.txt"]);
    fs::write(root.join("untracked.txt"), "scratch\n").expect("write");
    fs::write(root.join("debug.log"), "noise\n").expect("write");
    fs::create_dir_all(root.join("target/debug")).expect("mkdir");
    let big = fs::File::create(root.join("target/debug/huge.bin")).expect("create");
    big.set_len(600 * 1024 * 1024).expect("sparse");
    fs::set_permissions(root.join("target/debug/huge.bin"), fs::Permissions::from_mode(0o000))
        .expect("chmod");
    // Tracked symlinks: one inside (kept), two pointing out (left out of the seed).
    std::os::unix::fs::symlink("README.md", root.join("readme-link")).expect("symlink");
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd-link")).expect("symlink");
    std::os::unix::fs::symlink("../../outside", root.join("src/up-link")).expect("symlink");
    git(root, &["add", "readme-link", "passwd-link", "src/up-link"]);
}

async fn serve(cwd: &Path, state: &Path, tmp: &Path, args: &[&str]) -> Client {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.args(["mcp", "serve"])
        .args(args)
        .current_dir(cwd)
        .env("PYRO_STATE_DIR", state)
        .env("TMPDIR", tmp)
        .env("PYRO_BACKEND", "host_compat");
    let transport = TokioChildProcess::new(cmd).expect("spawn pyro mcp serve");
    ().serve(transport).await.expect("initialize")
}

fn ok(result: CallToolResult) -> Map<String, Value> {
    let text: Vec<String> =
        result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect();
    assert_ne!(result.is_error, Some(true), "tool failed: {}", text.join("\n"));
    match result.structured_content {
        Some(Value::Object(map)) => map,
        other => panic!("no structured content: {other:?}"),
    }
}

async fn create_description(client: &Client) -> String {
    let tools = client.list_all_tools().await.expect("list");
    let create = tools.iter().find(|t| t.name == "workspace_create").expect("listed");
    create.description.as_deref().unwrap_or_default().to_string()
}

async fn files_of(client: &Client, id: &str) -> Vec<String> {
    let out = ok(call(
        client,
        "workspace_exec",
        json!({"workspace_id": id, "command": "find . -type f | sort"}),
    )
    .await);
    out["stdout"].as_str().unwrap_or_default().lines().map(str::to_string).collect()
}

#[tokio::test]
async fn a_checkout_seeds_only_tracked_files_and_is_never_modified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("project");
    messy_checkout(&repo);
    let status_before = git(&repo, &["status", "--porcelain", "--ignored"]);
    let state = tempfile::tempdir().expect("state");
    let tmp = tempfile::tempdir().expect("tmp");
    // Started in a subdirectory: the checkout's top level is the project.
    let client = serve(&repo.join("src"), state.path(), tmp.path(), &[]).await;
    let description = create_description(&client).await;
    let top = fs::canonicalize(&repo).expect("canonical");
    assert!(
        description.contains(&format!("Git-tracked files of the project {}", top.display())),
        "{description}"
    );
    let ws = ok(call(
        &client,
        "workspace_create",
        json!({"environment": "debian:12", "allow_host_compat": true}),
    )
    .await);
    let seed = &ws["workspace_seed"];
    assert_eq!(seed["origin_kind"], "project_path", "{seed}");
    assert_eq!(seed["origin_ref"], top.display().to_string(), "{seed}");
    let id = ws["workspace_id"].as_str().expect("id");
    let files = files_of(&client, id).await;
    assert_eq!(
        files,
        ["./.gitignore", "./README.md", "./src/lib.rs", "./staged.txt"],
        "tracked + staged only, never untracked or ignored"
    );
    let links = ok(call(
        &client,
        "workspace_exec",
        json!({"workspace_id": id, "command": "find . -type l | sort"}),
    )
    .await);
    assert_eq!(links["stdout"], "./readme-link\n", "only the link that stays inside");
    let lib =
        ok(call(&client, "workspace_file_read", json!({"workspace_id": id, "path": "src/lib.rs"}))
            .await);
    assert!(lib["content"].as_str().unwrap_or_default().contains("42"), "working-tree content");
    // An explicit seed_path wins over the project.
    let other = dir.path().join("other");
    fs::create_dir_all(&other).expect("mkdir");
    fs::write(other.join("only.txt"), "x").expect("write");
    let ws2 = ok(call(
        &client,
        "workspace_create",
        json!({"environment": "debian:12", "allow_host_compat": true,
               "seed_path": other.display().to_string()}),
    )
    .await);
    assert_eq!(ws2["workspace_seed"]["origin_kind"], "seed_path");
    let id2 = ws2["workspace_id"].as_str().expect("id");
    assert_eq!(files_of(&client, id2).await, ["./only.txt"]);
    for id in [id, id2] {
        ok(call(&client, "workspace_delete", json!({"workspace_id": id})).await);
    }
    client.cancel().await.expect("shutdown");
    assert_eq!(git(&repo, &["status", "--porcelain", "--ignored"]), status_before);
}

#[tokio::test]
async fn repo_url_seeds_a_clean_clone_that_is_removed_on_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    messy_checkout(&work);
    git(&work, &["commit", "-q", "-am", "second"]);
    git(&work, &["tag", "v1"]);
    let commit = git(&work, &["rev-parse", "HEAD"]);
    fs::write(work.join("README.md"), "after the tag\n").expect("write");
    git(&work, &["commit", "-q", "-am", "third"]);
    let bare = dir.path().join("origin.git");
    git(dir.path(), &["clone", "-q", "--bare", work.to_str().expect("utf8"), "origin.git"]);
    let url = format!("file://{}", bare.display());
    let state = tempfile::tempdir().expect("state");
    let tmp = tempfile::tempdir().expect("tmp");
    let client =
        serve(dir.path(), state.path(), tmp.path(), &["--repo-url", &url, "--repo-ref", "v1"])
            .await;
    assert!(create_description(&client).await.contains("a clean clone of"));
    let ws = ok(call(
        &client,
        "workspace_create",
        json!({"environment": "debian:12", "allow_host_compat": true}),
    )
    .await);
    assert_eq!(ws["workspace_seed"]["origin_kind"], "repo_url");
    assert_eq!(ws["workspace_seed"]["origin_ref"], format!("{url}@{commit}"));
    let id = ws["workspace_id"].as_str().expect("id");
    let readme =
        ok(call(&client, "workspace_file_read", json!({"workspace_id": id, "path": "README.md"}))
            .await);
    assert_eq!(readme["content"], "hello\n", "the tagged commit, not the later one");
    assert!(files_of(&client, id).await.contains(&"./staged.txt".to_string()));
    ok(call(&client, "workspace_delete", json!({"workspace_id": id})).await);
    let clones = || {
        fs::read_dir(tmp.path())
            .expect("tmp")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("pyro-repo-"))
            .count()
    };
    assert_eq!(clones(), 1, "the clone lives in pyro's own temp dir while serving");
    client.cancel().await.expect("shutdown");
    for _ in 0..50 {
        if clones() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(clones(), 0, "the clone is removed when the server exits");
}

#[tokio::test]
async fn no_project_source_and_default_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    messy_checkout(dir.path());
    let state = tempfile::tempdir().expect("state");
    let tmp = tempfile::tempdir().expect("tmp");
    let client = serve(
        dir.path(),
        state.path(),
        tmp.path(),
        &["--no-project-source", "--environment", "debian:12-base"],
    )
    .await;
    let tools = client.list_all_tools().await.expect("list");
    let create = tools.iter().find(|t| t.name == "workspace_create").expect("listed");
    assert!(!create.description.as_deref().unwrap_or_default().contains("seeds /workspace"));
    let required = create.input_schema.get("required").cloned().unwrap_or(json!([]));
    assert!(!required.to_string().contains("environment"), "{required}");
    let ws = ok(call(&client, "workspace_create", json!({"allow_host_compat": true})).await);
    assert_eq!(ws["environment"], "debian:12-base");
    assert_eq!(ws["workspace_seed"]["origin_kind"], "none");
    assert_eq!(ws["workspace_seed"]["entry_count"], 0);
    let id = ws["workspace_id"].as_str().expect("id");
    ok(call(&client, "workspace_delete", json!({"workspace_id": id})).await);
    client.cancel().await.expect("shutdown");
}

fn pyro(cwd: &Path, args: &[&str]) -> std::process::Output {
    let state = tempfile::tempdir().expect("state");
    Command::new(env!("CARGO_BIN_EXE_pyro"))
        .args(args)
        .current_dir(cwd)
        .env("PYRO_STATE_DIR", state.path())
        .output()
        .expect("pyro runs")
}

#[test]
fn doctor_reports_the_project_source_and_bad_choices_fail_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("p");
    messy_checkout(&repo);
    let out = pyro(&repo, &["doctor", "--json"]);
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let source = &report["project_source"];
    assert_eq!(source["origin_kind"], "project_path", "{report}");
    assert_eq!(source["git_tracked_only"], true);
    assert!(source["reason"].as_str().unwrap_or_default().contains("Git checkout"), "{source}");
    let out = pyro(dir.path(), &["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["project_source"]["origin_kind"], "none");
    assert!(report["project_source"]["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("--project-path"));
    let human = pyro(&repo, &["doctor"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("Project source: project_path"), "{text}");

    let out = pyro(dir.path(), &["mcp", "serve", "--project-path", "/nonexistent/project"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--project-path /nonexistent/project"), "{stderr}");
    assert!(stderr.contains("--no-project-source"), "says what to do next: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    let out = pyro(dir.path(), &["mcp", "serve", "--repo-url", "file:///nonexistent/repo.git"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("git clone"));
    let out = pyro(dir.path(), &["mcp", "serve", "--mode", "inspect", "--profile", "vm-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be used with"));
}

#[tokio::test]
async fn sdk_servers_take_a_mode_and_a_project_and_report_an_unusable_one_on_create() {
    use pyro::project::{OriginKind, ProjectSourceChoice};
    use pyro::{Mode, Pyro, RuntimeConfig, ServerOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("p");
    messy_checkout(&repo);
    let state = tempfile::tempdir().expect("state");
    let pyro = Pyro::with_config(RuntimeConfig {
        state_dir: state.path().to_path_buf(),
        cache_dir: state.path().join("cache"),
    });
    let options = ServerOptions::new(Mode::ReproFix)
        .with_project(ProjectSourceChoice::ProjectPath(repo.clone()))
        .with_environment("debian:12-base");
    let server = pyro.try_create_server(options).expect("project resolves");
    assert_eq!(server.project().map(|p| p.origin_kind()), Some(OriginKind::ProjectPath));
    assert_eq!(server.profile(), None);
    let create = server.tools().into_iter().find(|t| t.name == "workspace_create").expect("tool");
    assert!(create.description.as_deref().unwrap_or_default().contains("Git-tracked files"));

    let missing = ServerOptions::new(Mode::Inspect)
        .with_project(ProjectSourceChoice::ProjectPath(dir.path().join("gone")));
    assert!(pyro.try_create_server(missing.clone()).is_err(), "try_ fails at once");
    let lenient = pyro.create_server(missing);
    let create = lenient.tools().into_iter().find(|t| t.name == "workspace_create").expect("tool");
    assert!(create.description.as_deref().unwrap_or_default().contains("unavailable"));
    let result = lenient
        .call(
            "workspace_create",
            serde_json::Map::from_iter([("environment".into(), json!("debian:12"))]),
        )
        .await;
    assert_eq!(result.is_error, Some(true));
    let text = format!("{:?}", result.content);
    assert!(text.contains("--project-path") && text.contains("seed_path"), "{text}");
}
