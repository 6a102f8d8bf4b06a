//! The MCP server as a client sees it: `pyro mcp serve --profile P` driven by the rmcp
//! client over stdio. Host execution is forced (`PYRO_BACKEND=host_compat` plus the
//! explicit `allow_host_compat` argument) so these tests do not depend on the guest.

#[path = "common/rmcp_call.rs"]
mod rmcp_call;
use pyro_contract::{tools_for, Profile};
use rmcp::model::CallToolResult;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use rmcp_call::{call, Client};
use serde_json::{json, Map, Value};
use std::path::Path;

async fn start(profile: &str, state: &Path) -> Client {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.args(["mcp", "serve", "--no-project-source", "--profile", profile])
        .env("PYRO_STATE_DIR", state)
        .env("PYRO_BACKEND", "host_compat");
    let transport = TokioChildProcess::new(cmd).expect("spawn pyro mcp serve");
    ().serve(transport).await.expect("initialize")
}

fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ok(result: CallToolResult) -> Map<String, Value> {
    assert_ne!(result.is_error, Some(true), "tool failed: {}", text(&result));
    // The text content is the structured result as compact JSON.
    let body = text(&result);
    assert!(!body.contains('\n'), "not compact: {body}");
    let parsed: Value = serde_json::from_str(&body).expect("text content is JSON");
    assert_eq!(serde_json::to_string(&parsed).expect("encode"), body, "not compact JSON");
    assert_eq!(Some(&parsed), result.structured_content.as_ref());
    match result.structured_content {
        Some(Value::Object(map)) => map,
        other => panic!("no structured content: {other:?}"),
    }
}

fn err(result: CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "expected a tool error, got {result:?}");
    text(&result)
}

/// A tool error's `kind` (its `structuredContent` was checked against the tool's
/// `outputSchema` by `call`).
fn kind(result: &CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "expected a tool error, got {result:?}");
    let structured = result.structured_content.as_ref().expect("structured error");
    structured["error"]["kind"].as_str().expect("kind").to_string()
}

#[tokio::test]
async fn each_profile_lists_exactly_its_tools_and_refuses_the_others() {
    for profile in Profile::ALL {
        let state = tempfile::tempdir().expect("tempdir");
        let client = start(profile.name(), state.path()).await;
        let info = client.peer_info().expect("server info");
        let instructions = info.instructions.clone().unwrap_or_default();
        assert!(instructions.contains(profile.name()), "{instructions}");
        let mut listed: Vec<String> = client
            .list_all_tools()
            .await
            .expect("list")
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        listed.sort();
        let mut expected: Vec<String> = tools_for(profile).map(|t| t.name.to_string()).collect();
        expected.sort();
        assert_eq!(listed, expected, "profile {profile}");
        if profile != Profile::WorkspaceFull {
            let refused =
                call(&client, "shell_open", json!({"workspace_id": "0123456789ab"})).await;
            assert_eq!(kind(&refused), "out_of_profile");
            let message = err(refused);
            assert!(message.contains("workspace-full"), "{message}");
            assert!(message.contains(profile.name()), "{message}");
        }
        let unknown = call(&client, "no_such_tool", json!({})).await;
        assert_eq!(kind(&unknown), "not_found");
        let message = err(unknown);
        assert!(message.contains("Unknown tool: no_such_tool"), "{message}");
        client.cancel().await.expect("shutdown");
    }
}

#[tokio::test]
async fn core_profile_rejects_full_only_arguments_and_creates_nothing() {
    let state = tempfile::tempdir().expect("tempdir");
    let client = start("workspace-core", state.path()).await;
    let tools = client.list_all_tools().await.expect("list");
    let create = tools.iter().find(|t| t.name == "workspace_create").expect("create listed");
    let props = create.input_schema.get("properties").expect("properties").to_string();
    assert!(!props.contains("secrets") && !props.contains("network_policy"), "{props}");
    for extra in [
        json!({"secrets": [{"name": "TOKEN", "value": "s3cr3t-value"}]}),
        json!({"network_policy": "egress"}),
    ] {
        let mut args = json!({"environment": "debian:12", "allow_host_compat": true});
        args.as_object_mut().expect("obj").extend(extra.as_object().expect("obj").clone());
        let refused = call(&client, "workspace_create", args).await;
        assert_eq!(kind(&refused), "out_of_profile");
        let message = err(refused);
        assert!(message.contains("workspace-full"), "{message}");
        assert!(!message.contains("s3cr3t-value"), "secret echoed: {message}");
    }
    let message = err(call(
        &client,
        "workspace_exec",
        json!({"workspace_id": "0123456789ab", "command": "true", "secret_env": {"A": "B"}}),
    )
    .await);
    assert!(message.contains("workspace-full"), "{message}");
    let listed = ok(call(&client, "workspace_list", json!({})).await);
    assert_eq!(listed["count"], 0);
    client.cancel().await.expect("shutdown");
}

#[tokio::test]
async fn bad_input_gives_clear_tool_errors() {
    let state = tempfile::tempdir().expect("tempdir");
    let client = start("workspace-full", state.path()).await;
    let bad = call(&client, "workspace_create", json!({"environment": 12})).await;
    assert_eq!(kind(&bad), "invalid_argument");
    let message = err(bad);
    assert!(message.contains("invalid arguments for workspace_create"), "{message}");
    let message =
        err(call(&client, "workspace_exec", json!({"workspace_id": "0123456789ab"})).await);
    assert!(message.contains("missing field `command`"), "{message}");
    let missing = call(&client, "workspace_status", json!({"workspace_id": "0123456789ab"})).await;
    assert_eq!(kind(&missing), "not_found");
    let message = err(missing);
    assert!(message.contains("workspace '0123456789ab' does not exist"), "{message}");
    let message =
        err(call(&client, "workspace_status", json!({"workspace_id": "../../etc"})).await);
    assert!(message.contains("does not exist"), "{message}");
    let message = err(call(
        &client,
        "workspace_create",
        json!({"environment": "debian:99", "allow_host_compat": true}),
    )
    .await);
    assert!(message.contains("unknown environment 'debian:99'"), "{message}");
    let closed = call(&client, "workspace_create", json!({"environment": "debian:12"})).await;
    assert_eq!(kind(&closed), "guest_unavailable");
    let message = err(closed);
    assert!(message.contains("allow_host_compat"), "fail closed must say how to opt in: {message}");
    assert!(message.contains("pyro doctor"), "{message}");
    client.cancel().await.expect("shutdown");
}

#[tokio::test]
async fn host_compat_workspace_flow_over_mcp() {
    let state = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let client = start("workspace-core", state.path()).await;
    let ws = ok(call(
        &client,
        "workspace_create",
        json!({"environment": "debian:12", "allow_host_compat": true, "name": "mcp-flow"}),
    )
    .await);
    assert_eq!(ws["execution_mode"], "host_compat");
    assert_eq!(ws["state"], "started");
    let id = ws["workspace_id"].as_str().expect("id").to_string();

    let written = ok(call(
        &client,
        "workspace_file_write",
        json!({"workspace_id": id, "path": "src/app.txt", "text": "hello\n"}),
    )
    .await);
    assert_eq!(written["bytes_written"], 6);
    let exec = ok(call(
        &client,
        "workspace_exec",
        json!({"workspace_id": id, "command": "cat src/app.txt; echo err >&2; exit 4"}),
    )
    .await);
    assert_eq!(exec["stdout"], "hello\n");
    assert_eq!(exec["stderr"], "err\n");
    assert_eq!(exec["exit_code"], 4);
    assert_eq!(exec["execution_mode"], "host_compat");

    let diff = ok(call(&client, "workspace_diff", json!({"workspace_id": id})).await);
    assert_eq!(diff["changed"], true);
    assert_eq!(diff["summary"]["added"], 1);
    assert!(diff["patch"].as_str().expect("patch").contains("+hello"), "{diff:?}");

    let target = out.path().join("exported.txt");
    let export = ok(call(
        &client,
        "workspace_export",
        json!({"workspace_id": id, "path": "src/app.txt", "output_path": target}),
    )
    .await);
    assert_eq!(export["artifact_type"], "file");
    assert_eq!(std::fs::read(&target).expect("exported"), b"hello\n");
    let again = err(call(
        &client,
        "workspace_export",
        json!({"workspace_id": id, "path": "src/app.txt", "output_path": target}),
    )
    .await);
    assert!(again.contains("already exists"), "{again}");

    let escape = err(call(
        &client,
        "workspace_file_read",
        json!({"workspace_id": id, "path": "../../etc/passwd"}),
    )
    .await);
    assert!(escape.contains("must stay inside /workspace"), "{escape}");

    let reset = ok(call(&client, "workspace_reset", json!({"workspace_id": id})).await);
    assert_eq!(reset["reset_count"], 1);
    let diff = ok(call(&client, "workspace_diff", json!({"workspace_id": id})).await);
    assert_eq!(diff["changed"], false);
    let gone = err(call(
        &client,
        "workspace_file_read",
        json!({"workspace_id": id, "path": "src/app.txt"}),
    )
    .await);
    assert!(gone.contains("does not exist"), "{gone}");

    let deleted = ok(call(&client, "workspace_delete", json!({"workspace_id": id})).await);
    assert_eq!(deleted["deleted"], true);
    assert!(!state.path().join("workspaces").join(&id).exists());
    client.cancel().await.expect("shutdown");
}

async fn start_with(args: &[&str], state: &Path) -> Client {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.args(["mcp", "serve", "--no-project-source"])
        .args(args)
        .env("PYRO_STATE_DIR", state)
        .env("PYRO_BACKEND", "host_compat");
    let transport = TokioChildProcess::new(cmd).expect("spawn pyro mcp serve");
    ().serve(transport).await.expect("initialize")
}

fn compact_size(tools: &[rmcp::model::Tool]) -> usize {
    serde_json::to_string(tools).expect("encode").len()
}

#[tokio::test]
async fn bare_serve_is_workspace_core() {
    let state = tempfile::tempdir().expect("tempdir");
    let client = start_with(&[], state.path()).await;
    let listed: Vec<String> = client
        .list_all_tools()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    let mut expected: Vec<String> =
        tools_for(Profile::WorkspaceCore).map(|t| t.name.to_string()).collect();
    expected.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, expected);
    assert!(listed.contains(&"workspace_summary".to_string()));
    let info = client.peer_info().expect("info");
    assert!(info.instructions.clone().unwrap_or_default().contains("workspace-core"));
    client.cancel().await.expect("shutdown");
    let sdk = pyro::Pyro::from_env().create_server(pyro::ServerOptions::default());
    assert_eq!(sdk.profile(), Some(Profile::WorkspaceCore));
    assert_eq!(pyro::create_server(Profile::default()).tools().len(), expected.len());
}

#[tokio::test]
async fn each_mode_lists_its_curated_tools_smaller_than_core_and_refuses_the_rest() {
    use pyro_contract::{Mode, Surface};
    let state = tempfile::tempdir().expect("tempdir");
    let core_client = start_with(&["--profile", "workspace-core"], state.path()).await;
    let core = core_client.list_all_tools().await.expect("list");
    core_client.cancel().await.expect("shutdown");
    for mode in Mode::ALL {
        let client = start_with(&["--mode", mode.name()], state.path()).await;
        let info = client.peer_info().expect("info");
        assert!(info.instructions.clone().unwrap_or_default().contains(mode.name()));
        let tools = client.list_all_tools().await.expect("list");
        let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        let mut expected: Vec<&str> =
            Surface::Mode(mode).tools().iter().map(|t| t.name()).collect();
        names.sort();
        expected.sort();
        assert_eq!(names, expected, "mode {mode}");
        assert!(tools.len() < core.len(), "mode {mode} has {} tools", tools.len());
        assert!(
            compact_size(&tools) < compact_size(&core),
            "mode {mode} tools/list is not smaller"
        );
        let create = tools.iter().find(|t| t.name == "workspace_create").expect("create");
        let props = create.input_schema.get("properties").expect("props").to_string();
        assert!(!props.contains("secrets") && !props.contains("vcpu_count"), "{mode}: {props}");
        // A tool outside the mode, and a parameter the mode narrowed away.
        let message =
            err(call(&client, "vm_run", json!({"environment": "debian:12", "command": "true"}))
                .await);
        assert!(message.contains(&format!("mode {}", mode.name())), "{message}");
        let message = err(call(
            &client,
            "workspace_create",
            json!({"environment": "debian:12", "vcpu_count": 2}),
        )
        .await);
        assert!(message.contains("does not accept `vcpu_count`"), "{message}");
        if mode == Mode::Inspect {
            let message = err(call(
                &client,
                "workspace_create",
                json!({"environment": "debian:12", "allow_host_compat": true}),
            )
            .await);
            assert!(message.contains("does not accept `allow_host_compat`"), "{message}");
        }
        client.cancel().await.expect("shutdown");
    }
    let listed = ok(call(&start_with(&[], state.path()).await, "workspace_list", json!({})).await);
    assert_eq!(listed["count"], 0, "refused calls created nothing");
}

#[tokio::test]
async fn summary_reports_commands_changes_and_events_since_the_last_reset() {
    let state = tempfile::tempdir().expect("tempdir");
    let client = start_with(&["--profile", "workspace-full"], state.path()).await;
    let ws = ok(call(
        &client,
        "workspace_create",
        json!({"environment": "debian:12", "allow_host_compat": true, "name": "fix-42"}),
    )
    .await);
    let id = ws["workspace_id"].as_str().expect("id").to_string();
    let w = json!({"workspace_id": id});
    ok(call(
        &client,
        "workspace_file_write",
        json!({"workspace_id": id, "path": "a.txt", "text": "one\n"}),
    )
    .await);
    ok(call(&client, "workspace_exec", json!({"workspace_id": id, "command": "test -e missing"}))
        .await);
    ok(call(
        &client,
        "workspace_patch_apply",
        json!({"workspace_id": id, "patch": "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\n"}),
    )
    .await);
    ok(call(&client, "workspace_exec", json!({"workspace_id": id, "command": "grep two a.txt"}))
        .await);
    ok(call(&client, "snapshot_create", json!({"workspace_id": id, "snapshot_name": "fixed"}))
        .await);
    let out = tempfile::tempdir().expect("out");
    let out_path = out.path().join("a.txt").display().to_string();
    ok(call(
        &client,
        "workspace_export",
        json!({"workspace_id": id, "path": "a.txt", "output_path": out_path}),
    )
    .await);
    let s = ok(call(&client, "workspace_summary", w.clone()).await);
    assert_eq!(s["workspace_id"], id.as_str());
    assert_eq!(s["since"], "created");
    assert_eq!(s["command_count"], 2);
    assert_eq!(s["failed_command_count"], 1);
    assert_eq!(s["outcome"], "passed");
    assert_eq!(s["last_command"]["command"], "grep two a.txt");
    assert_eq!(s["commands"][0]["exit_code"], 1);
    assert_eq!(s["changes"]["files"], json!(["added a.txt"]));
    assert_eq!(s["files_written"].as_array().map(Vec::len), Some(1));
    assert_eq!(s["patches_applied"][0]["kind"], "patch_apply");
    assert_eq!(s["snapshots"][0]["snapshot_name"], "fixed");
    assert_eq!(s["exports"][0]["output_path"], out_path.as_str());
    let text = s["text"].as_str().expect("text");
    for needle in [
        "fix-42",
        "**passed**",
        "`test -e missing` → exit 1",
        "added a.txt",
        "exported",
        "workspace_logs",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(text.lines().count() < 20, "short enough to paste:\n{text}");
    ok(call(&client, "workspace_reset", w.clone()).await);
    let s = ok(call(&client, "workspace_summary", w.clone()).await);
    assert_eq!(s["since"], "reset");
    assert_eq!(s["command_count"], 0);
    assert_eq!(s["outcome"], "no_commands");
    assert_eq!(s["patches_applied"], json!([]));
    assert_eq!(s["changes"]["summary"]["total"], 0);
    let message =
        err(call(&client, "workspace_summary", json!({"workspace_id": "0123456789ab"})).await);
    assert!(message.contains("does not exist"), "{message}");
    ok(call(&client, "workspace_delete", w).await);
    client.cancel().await.expect("shutdown");
}

/// The compact JSON of `tools/list` as a client receives it, on the fields the token
/// budget counts (crates/pyro-contract/tests/token_budget.rs).
fn budget_bytes(tools: &[rmcp::model::Tool]) -> usize {
    let listing: Vec<Value> = tools
        .iter()
        .map(|t| {
            let v = serde_json::to_value(t).expect("encode");
            json!({"name": v["name"], "description": v["description"],
                   "inputSchema": v["inputSchema"], "annotations": v["annotations"]})
        })
        .collect();
    serde_json::to_string(&listing).expect("encode").len()
}

#[tokio::test]
async fn served_tools_list_is_what_the_token_budget_measures() {
    use pyro_contract::{Hints, Mode, Surface};
    let state = tempfile::tempdir().expect("tempdir");
    let surfaces = Profile::ALL
        .into_iter()
        .map(Surface::Profile)
        .chain(Mode::ALL.into_iter().map(Surface::Mode));
    for surface in surfaces {
        let flag = match surface {
            Surface::Profile(_) => "--profile",
            Surface::Mode(_) => "--mode",
        };
        let client = start_with(&[flag, surface.name()], state.path()).await;
        let tools = client.list_all_tools().await.expect("list");
        let served = budget_bytes(&tools);
        println!("{surface}: {served} B served");
        assert_eq!(served, surface.listing_bytes(), "{surface}");
        for tool in &tools {
            let exposed = surface.tool(&tool.name).expect("listed tool is in the surface");
            let annotations = serde_json::to_value(&tool.annotations).expect("encode");
            assert_eq!(Hints::from_json(&annotations), exposed.hints(), "{surface} {}", tool.name);
        }
        client.cancel().await.expect("shutdown");
    }
}

/// The schemas no longer repeat `additionalProperties: false`; the server still refuses
/// an unknown argument of every tool, by name.
#[tokio::test]
async fn every_tool_refuses_an_unknown_argument() {
    let state = tempfile::tempdir().expect("tempdir");
    let client = start("workspace-full", state.path()).await;
    for spec in tools_for(Profile::WorkspaceFull) {
        let message = err(call(&client, spec.name, json!({"no_such_argument": 1})).await);
        assert!(message.contains("unknown field `no_such_argument`"), "{}: {message}", spec.name);
    }
    client.cancel().await.expect("shutdown");
}

/// Every tool of `workspace-full` answers over a real server, and `call` validates each
/// answer's `structuredContent` against the tool's `outputSchema` (results and errors).
/// On host_compat every tool succeeds except the guest-only ones (shells, services,
/// disk tools), whose results are validated by the guest tests (`recipes.rs`,
/// `guest_services.rs`, `guest_shells.rs`, `guest_full_network_secrets_disk.rs`); here
/// their errors are.
#[tokio::test]
async fn every_tool_answers_with_structured_content_that_validates_against_its_output_schema() {
    let state = tempfile::tempdir().expect("tempdir");
    let host = tempfile::tempdir().expect("tempdir");
    std::fs::write(host.path().join("pushed.txt"), "pushed\n").expect("seed file");
    let client = start("workspace-full", state.path()).await;
    let mut succeeded = std::collections::BTreeSet::new();
    let mut failed = std::collections::BTreeMap::new();
    macro_rules! answer {
        ($name:literal, $args:expr) => {{
            let result = call(&client, $name, $args).await;
            if result.is_error == Some(true) {
                failed.insert($name, kind(&result));
                Map::new()
            } else {
                succeeded.insert($name);
                ok(result)
            }
        }};
    }
    let compat = |extra: Value| {
        let mut args = json!({"environment": "debian:12", "allow_host_compat": true});
        args.as_object_mut().expect("obj").extend(extra.as_object().expect("obj").clone());
        args
    };

    answer!("vm_list_environments", json!({}));
    answer!("vm_run", compat(json!({"command": "echo hi"})));
    let vm = answer!("vm_create", compat(json!({})));
    let vm_id = vm["vm_id"].as_str().expect("vm id").to_string();
    answer!("vm_status", json!({"vm_id": vm_id}));
    answer!("vm_start", json!({"vm_id": vm_id}));
    answer!("vm_network_info", json!({"vm_id": vm_id}));
    answer!("vm_stop", json!({"vm_id": vm_id}));
    answer!("vm_start", json!({"vm_id": vm_id}));
    let exec = answer!("vm_exec", json!({"vm_id": vm_id, "command": "echo from-vm"}));
    assert_eq!(exec["cleanup"]["reason"], "post_exec_cleanup");
    let other = answer!("vm_create", compat(json!({})));
    answer!("vm_delete", json!({"vm_id": other["vm_id"]}));
    answer!("vm_reap_expired", json!({}));

    let ws = answer!("workspace_create", compat(json!({"name": "every-tool"})));
    let id = ws["workspace_id"].as_str().expect("workspace id").to_string();
    answer!("workspace_list", json!({}));
    answer!("workspace_update", json!({"workspace_id": id, "labels": {"team": "infra"}}));
    answer!("workspace_status", json!({"workspace_id": id}));
    answer!("workspace_file_write", json!({"workspace_id": id, "path": "a.txt", "text": "one\n"}));
    answer!("workspace_file_read", json!({"workspace_id": id, "path": "a.txt"}));
    answer!("workspace_file_list", json!({"workspace_id": id}));
    let patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\n";
    answer!("workspace_patch_apply", json!({"workspace_id": id, "patch": patch}));
    answer!("workspace_exec", json!({"workspace_id": id, "command": "cat a.txt"}));
    answer!("workspace_logs", json!({"workspace_id": id}));
    answer!("workspace_sync_push", json!({"workspace_id": id, "source_path": host.path()}));
    answer!("workspace_diff", json!({"workspace_id": id}));
    let target = host.path().join("exported.txt");
    answer!(
        "workspace_export",
        json!({"workspace_id": id, "path": "a.txt", "output_path": target})
    );
    answer!("snapshot_create", json!({"workspace_id": id, "snapshot_name": "s1"}));
    answer!("snapshot_list", json!({"workspace_id": id}));
    answer!("workspace_reset", json!({"workspace_id": id, "snapshot": "s1"}));
    answer!("snapshot_delete", json!({"workspace_id": id, "snapshot_name": "s1"}));
    answer!("workspace_summary", json!({"workspace_id": id}));
    answer!("shell_open", json!({"workspace_id": id}));
    let shell = json!({"workspace_id": id, "shell_id": "0123456789ab"});
    answer!("shell_read", shell.clone());
    answer!("shell_write", json!({"workspace_id": id, "shell_id": "0123456789ab", "input": "x"}));
    answer!("shell_signal", shell.clone());
    answer!("shell_close", shell);
    answer!("service_start", json!({"workspace_id": id, "service_name": "web", "command": "true"}));
    answer!("service_list", json!({"workspace_id": id}));
    let service = json!({"workspace_id": id, "service_name": "web"});
    answer!("service_status", service.clone());
    answer!("service_logs", service.clone());
    answer!("service_stop", service);
    answer!("workspace_stop", json!({"workspace_id": id}));
    answer!("workspace_disk_list", json!({"workspace_id": id}));
    answer!("workspace_disk_read", json!({"workspace_id": id, "path": "a.txt"}));
    let disk = host.path().join("disk.img");
    answer!("workspace_disk_export", json!({"workspace_id": id, "output_path": disk}));
    answer!("workspace_start", json!({"workspace_id": id}));
    answer!("workspace_delete", json!({"workspace_id": id}));
    client.cancel().await.expect("shutdown");

    let guest_only = rmcp_call::GUEST_ONLY_TOOLS;
    for t in tools_for(Profile::WorkspaceFull) {
        if guest_only.contains(&t.name) {
            assert!(failed.contains_key(t.name), "{} was not called", t.name);
        } else {
            assert!(
                succeeded.contains(t.name),
                "{} did not succeed: {:?}",
                t.name,
                failed.get(t.name)
            );
        }
    }
    // The guest-only tools say why, in kinds a client can branch on.
    for (name, kind) in &failed {
        assert!(
            ["unsupported", "not_found", "wrong_state"].contains(&kind.as_str()),
            "{name}: {kind} in {failed:?}"
        );
    }
}
