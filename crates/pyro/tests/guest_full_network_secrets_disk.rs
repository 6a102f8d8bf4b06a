//! `workspace-full` features in real guests: secrets (`secret_env`, redaction, where the
//! values may and may not be), network policies (`off` has no NIC, `egress` reaches the
//! host through the user-mode gateway), one-shot VM network info, and the offline disk
//! tools on a stopped workspace. These tests boot QEMU guests from the images
//! `scripts/setup` builds and never skip.
//!
//! Network rule: the only host address a guest is ever pointed at is a listener this
//! test runs on 127.0.0.1, reached from the guest as the gateway 10.0.2.2.

mod common;
#[path = "common/rmcp_call.rs"]
mod rmcp_call;
use common::guest_runtime as runtime;
use rmcp_call::{call, Client};

use pyro::params::*;
use pyro::results::{ExecutionMode, VmState};
use rmcp::model::CallToolResult;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const ENV: &str = "debian:12-base";

/// A value that appears nowhere else on this machine.
fn unique(tag: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
    format!("{tag}-{:x}-{nanos:x}-Zq9", std::process::id())
}

fn pyro_cli(state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pyro"))
        .args(args)
        .env("PYRO_STATE_DIR", state)
        .output()
        .expect("run pyro")
}

fn cli_json(state: &Path, args: &[&str]) -> (Value, String) {
    let out = pyro_cli(state, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{args:?}: {e}\nstdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (value, stdout)
}

fn sha256_hex(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("hash").to_string()
}

/// Files under `root` (recursively) whose bytes contain `needle`. GNU grep skips the
/// holes of sparse files (disk images), so this stays fast on multi-GB images.
fn files_containing(root: &Path, needle: &str) -> Vec<PathBuf> {
    let out = Command::new("grep")
        .args(["-r", "-l", "-a", "-F", "-e", needle, "--"])
        .arg(root)
        .output()
        .expect("grep");
    assert!(out.status.code().is_some_and(|c| c <= 1), "grep failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).lines().map(PathBuf::from).collect()
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn secret_env(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(pairs.iter().map(|(s, e)| (s.to_string(), e.to_string())).collect())
}

#[test]
fn secrets_work_in_the_guest_never_leak_and_the_disk_tools_read_the_stopped_workspace() {
    let state = common::guest_tempdir();
    let host = common::guest_tempdir();
    let rt = runtime(state.path());
    let token = unique("tok");
    let api = unique("api");
    let api_file = host.path().join("api-key.txt");
    std::fs::write(&api_file, &api).expect("write secret file");

    // Create through the CLI with --secret and --secret-file.
    let (ws, stdout) = cli_json(
        state.path(),
        &[
            "workspace",
            "create",
            ENV,
            "--name",
            "secrets",
            "--secret",
            &format!("TOKEN={token}"),
            "--secret-file",
            &format!("API_KEY={}", api_file.display()),
            "--json",
        ],
    );
    assert_eq!(ws["execution_mode"], "guest", "{ws}");
    assert_eq!(
        ws["secrets"],
        json!([{"name": "API_KEY", "source_kind": "file"}, {"name": "TOKEN", "source_kind": "literal"}])
    );
    assert!(!stdout.contains(&token) && !stdout.contains(&api), "create output shows a value");
    let id = ws["workspace_id"].as_str().expect("id").to_string();
    let ws_dir = state.path().join("workspaces").join(&id);

    // Host storage: only secrets/<NAME>.secret, 0600 in a 0700 directory.
    let secrets_dir = ws_dir.join("secrets");
    assert_eq!(mode_of(&secrets_dir), 0o700);
    assert_eq!(std::fs::read_to_string(secrets_dir.join("TOKEN.secret")).expect("read"), token);
    assert_eq!(mode_of(&secrets_dir.join("TOKEN.secret")), 0o600);
    assert_eq!(mode_of(&secrets_dir.join("API_KEY.secret")), 0o600);

    // secret_env through the CLI: the command sees the value and compares it with the file.
    let (exec, stdout) = cli_json(
        state.path(),
        &[
            "workspace",
            "exec",
            &id,
            "--secret-env",
            "TOKEN=MY_TOKEN",
            "--json",
            "--",
            "sh",
            "-c",
            "test \"$MY_TOKEN\" = \"$(cat /run/pyro-secrets/TOKEN)\" && echo match; printf %s \"$MY_TOKEN\" | sha256sum",
        ],
    );
    let out = exec["stdout"].as_str().expect("stdout");
    assert!(out.starts_with("match\n"), "{exec}");
    assert!(out.contains(&sha256_hex(&token)), "the guest saw another value: {exec}");
    assert!(!stdout.contains(&token));

    // A failing command that prints both secrets: they come back redacted.
    let r = rt
        .workspace_exec(WorkspaceExecParams {
            secret_env: secret_env(&[("TOKEN", "TOKEN"), ("API_KEY", "API_KEY")]),
            ..WorkspaceExecParams::new(
                &id,
                "echo \"token=$TOKEN\"; echo \"api=$(cat /run/pyro-secrets/API_KEY)\" >&2; \
                 stat -c '%a %U' /run/pyro-secrets/TOKEN /run/pyro-secrets; \
                 stat -f -c %T /run/pyro-secrets; exit 3",
            )
        })
        .expect("exec");
    assert_eq!(r.exit_code, 3);
    assert_eq!(r.stdout, "token=[REDACTED]\n400 root\n700 root\ntmpfs\n");
    assert_eq!(r.stderr, "api=[REDACTED]\n");

    // Not mapped, not in the environment; unknown or malformed mappings are refused.
    let r = rt
        .workspace_exec(WorkspaceExecParams::new(&id, "printenv TOKEN || echo unset"))
        .expect("exec");
    assert_eq!(r.stdout, "unset\n");
    let err = rt
        .workspace_exec(WorkspaceExecParams {
            secret_env: secret_env(&[("NOPE", "NOPE")]),
            ..WorkspaceExecParams::new(&id, "true")
        })
        .expect_err("unknown secret");
    assert_eq!(err.to_string(), "secret_env references unknown workspace secret 'NOPE'");
    let err = rt
        .workspace_exec(WorkspaceExecParams {
            secret_env: secret_env(&[("TOKEN", "BAD-NAME")]),
            ..WorkspaceExecParams::new(&id, "true")
        })
        .expect_err("bad env name");
    assert!(err.to_string().contains("BAD-NAME"), "{err}");

    // A command that carries a value literally: history keeps it redacted.
    let literal = format!("echo {token} | wc -c");
    let r = rt.workspace_exec(WorkspaceExecParams::new(&id, &literal)).expect("exec");
    assert_eq!(r.command, literal, "the caller's own command comes back as given");
    assert_eq!(r.stdout.trim(), (token.len() + 1).to_string());
    let last = rt.workspace_status(&id).expect("status").last_command.expect("last command");
    assert_eq!(last.command, "echo [REDACTED] | wc -c");

    rt.workspace_file_write(WorkspaceFileWriteParams {
        workspace_id: id.clone(),
        path: "notes/before-stop.txt".into(),
        text: "written before stop\n".into(),
    })
    .expect("write");
    rt.workspace_exec(WorkspaceExecParams::new(&id, "ln -s notes/before-stop.txt link && sync"))
        .expect("exec");

    // Nothing pyro returns or keeps shows a value.
    let status = serde_json::to_string(&rt.workspace_status(&id).expect("status")).expect("json");
    let list = serde_json::to_string(&rt.workspace_list().expect("list")).expect("json");
    let logs = serde_json::to_string(&rt.workspace_logs(&id).expect("logs")).expect("json");
    let diff = serde_json::to_string(&rt.workspace_diff(&id).expect("diff")).expect("json");
    for (what, text) in [("status", &status), ("list", &list), ("logs", &logs), ("diff", &diff)] {
        assert!(!text.contains(&token) && !text.contains(&api), "{what} shows a value: {text}");
    }
    assert!(
        logs.contains("token=[REDACTED]") && logs.contains("echo [REDACTED] | wc -c"),
        "{logs}"
    );

    // The state dir holds the values only in secrets/*.secret: not in workspace.json,
    // the history, the baseline, the console log, or the guest disk (after a sync).
    let found = files_containing(state.path(), &token);
    assert_eq!(found, [secrets_dir.join("TOKEN.secret")], "token found in {found:?}");
    let found = files_containing(state.path(), &api);
    assert_eq!(found, [secrets_dir.join("API_KEY.secret")], "api key found in {found:?}");
    assert!(
        !files_containing(state.path(), "written before stop").is_empty(),
        "the search must see file contents inside the guest disk"
    );

    // Disk tools need a stopped workspace.
    let err = rt
        .workspace_disk_list(WorkspaceFileListParams {
            workspace_id: id.clone(),
            path: "/workspace".into(),
            recursive: false,
        })
        .expect_err("running");
    assert!(
        err.to_string()
            .starts_with(&format!("workspace '{id}' must be stopped before workspace_disk_list")),
        "{err}"
    );
    let stopped = rt.workspace_stop(&id).expect("stop");
    assert_eq!(stopped.state, VmState::Stopped);

    // disk list (CLI) and read (SDK and CLI) of the stopped disk.
    let (listed, _) =
        cli_json(state.path(), &["workspace", "disk", "list", &id, "--recursive", "--json"]);
    let entries = listed["entries"].as_array().expect("entries");
    let find = |p: &str| entries.iter().find(|e| e["path"] == p).cloned();
    assert_eq!(find("/workspace/notes").expect("notes")["artifact_type"], "directory");
    let file = find("/workspace/notes/before-stop.txt").expect("file");
    assert_eq!(file["size_bytes"], 20);
    let link = find("/workspace/link").expect("link");
    assert_eq!(
        (link["artifact_type"].clone(), link["link_target"].clone()),
        (json!("symlink"), json!("notes/before-stop.txt"))
    );
    assert!(listed.get("execution_mode").is_none(), "{listed}");
    let read = rt
        .workspace_disk_read(WorkspaceFileReadParams {
            workspace_id: id.clone(),
            path: "notes/before-stop.txt".into(),
            max_bytes: 65536,
        })
        .expect("disk read");
    assert_eq!(
        (read.content.as_str(), read.size_bytes, read.truncated),
        ("written before stop\n", 20, false)
    );
    assert_eq!(read.path, "/workspace/notes/before-stop.txt");
    let out = pyro_cli(
        state.path(),
        &[
            "workspace",
            "disk",
            "read",
            &id,
            "/workspace/notes/../notes/before-stop.txt",
            "--max-bytes",
            "5",
            "--content-only",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "writt");
    let err = rt
        .workspace_disk_read(WorkspaceFileReadParams {
            workspace_id: id.clone(),
            path: "notes".into(),
            max_bytes: 10,
        })
        .expect_err("directory");
    assert!(err.to_string().contains("only supports regular files"), "{err}");
    let err = rt
        .workspace_disk_read(WorkspaceFileReadParams {
            workspace_id: id.clone(),
            path: "notes/before-stop.txt".into(),
            max_bytes: 0,
        })
        .expect_err("max_bytes 0");
    assert!(err.to_string().contains("max_bytes must be positive"), "{err}");
    // Absolute paths reach the whole guest file system.
    let hostname = rt
        .workspace_disk_read(WorkspaceFileReadParams {
            workspace_id: id.clone(),
            path: "/etc/hostname".into(),
            max_bytes: 100,
        })
        .expect("read /etc/hostname");
    assert_eq!(hostname.content, "pyro\n");

    // The secrets lived on the guest's /run tmpfs: nothing of them is on the disk.
    let run = rt
        .workspace_disk_list(WorkspaceFileListParams {
            workspace_id: id.clone(),
            path: "/run".into(),
            recursive: true,
        })
        .expect("list /run");
    assert!(run.entries.iter().all(|e| !e.path.starts_with("/run/pyro-secrets")), "{run:?}");
    let err = rt
        .workspace_disk_read(WorkspaceFileReadParams {
            workspace_id: id.clone(),
            path: "/run/pyro-secrets/TOKEN".into(),
            max_bytes: 100,
        })
        .expect_err("not on disk");
    assert!(err.to_string().contains("does not exist"), "{err}");

    // disk export: a raw ext4 image without the values.
    let image = host.path().join("out/disk.img");
    let (export, _) = cli_json(
        state.path(),
        &["workspace", "disk", "export", &id, "--output", image.to_str().expect("utf8"), "--json"],
    );
    assert_eq!(export["disk_format"], "ext4");
    let size = std::fs::metadata(&image).expect("image").len();
    assert_eq!(export["bytes_written"], size);
    let mut magic = [0u8; 2];
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&image).expect("open");
        f.seek(SeekFrom::Start(1080)).expect("seek");
        f.read_exact(&mut magic).expect("read");
    }
    assert_eq!(u16::from_le_bytes(magic), 0xEF53, "no ext4 superblock magic");
    assert_eq!(files_containing(&image, "written before stop"), std::slice::from_ref(&image));
    assert!(files_containing(&image, &token).is_empty(), "token on the disk image");
    assert!(files_containing(&image, &api).is_empty(), "api key on the disk image");
    let again = pyro_cli(
        state.path(),
        &["workspace", "disk", "export", &id, "--output", image.to_str().expect("utf8")],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Start: the secrets are installed again.
    assert_eq!(rt.workspace_start(&id).expect("start").state, VmState::Started);
    let r = rt
        .workspace_exec(WorkspaceExecParams::new(
            &id,
            "stat -c %a /run/pyro-secrets/TOKEN; sha256sum < /run/pyro-secrets/TOKEN",
        ))
        .expect("exec");
    assert!(
        r.stdout.starts_with("400\n") && r.stdout.contains(&sha256_hex(&token)),
        "{}",
        r.stdout
    );

    // A value copied into /workspace is redacted in diff and file reads.
    rt.workspace_exec(WorkspaceExecParams::new(&id, "cat /run/pyro-secrets/TOKEN > leaked.txt"))
        .expect("exec");
    let d = rt.workspace_diff(&id).expect("diff");
    let leaked = d.entries.iter().find(|e| e.path == "leaked.txt").expect("leaked.txt in diff");
    let patch = leaked.text_patch.as_deref().expect("text patch");
    assert!(patch.contains("+[REDACTED]") && !patch.contains(&token), "{patch}");
    assert!(!d.patch.contains(&token));
    let f = rt
        .workspace_file_read(WorkspaceFileReadParams {
            workspace_id: id.clone(),
            path: "leaked.txt".into(),
            max_bytes: 65536,
        })
        .expect("read");
    assert_eq!(f.content, "[REDACTED]");
    let exported = host.path().join("leaked-copy.txt");
    let x = rt
        .workspace_export(WorkspaceExportParams {
            workspace_id: id.clone(),
            path: "leaked.txt".into(),
            output_path: exported.display().to_string(),
        })
        .expect("export");
    assert!(!serde_json::to_string(&x).expect("json").contains(&token));

    // Reset: a fresh disk, the secrets installed again.
    let reset = rt
        .workspace_reset(WorkspaceResetParams {
            workspace_id: id.clone(),
            snapshot: "baseline".into(),
        })
        .expect("reset");
    assert_eq!(reset.workspace.reset_count, 1);
    let r = rt
        .workspace_exec(WorkspaceExecParams {
            secret_env: secret_env(&[("API_KEY", "K")]),
            ..WorkspaceExecParams::new(
                &id,
                "test \"$K\" = \"$(cat /run/pyro-secrets/API_KEY)\" && echo match; ls /run/pyro-secrets",
            )
        })
        .expect("exec");
    assert_eq!(r.stdout, "match\nAPI_KEY\nTOKEN\n");
    rt.workspace_delete(&id).expect("delete");
    assert!(!ws_dir.exists());
}

/// A TCP server on 127.0.0.1 that answers every connection with one line and counts them.
struct HostServer {
    port: u16,
    hits: Arc<AtomicUsize>,
}

const GREETING: &str = "pyro-net-ok";

fn host_server() -> HostServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(format!("{GREETING}\n").as_bytes());
        }
    });
    HostServer { port, hits }
}

fn probe(address: &str, port: u16) -> String {
    format!("timeout 15 bash -c 'exec 3<>/dev/tcp/{address}/{port} && cat <&3' 2>&1; echo rc=$?")
}

#[test]
fn network_off_has_no_nic_and_egress_reaches_the_host_through_the_gateway() {
    let state = common::guest_tempdir();
    let rt = runtime(state.path());
    let server = host_server();

    let off = rt.workspace_create(WorkspaceCreateParams::new(ENV)).expect("create off");
    assert_eq!(off.network_policy, NetworkPolicy::Off);
    assert!(!off.network_enabled && off.guest_ip.is_none());
    let r = rt
        .workspace_exec(WorkspaceExecParams::new(&off.workspace_id, "ls /sys/class/net"))
        .expect("exec");
    assert_eq!(r.stdout, "lo\n", "policy off must have no NIC");
    let r = rt
        .workspace_exec(WorkspaceExecParams::new(&off.workspace_id, probe("10.0.2.2", server.port)))
        .expect("exec");
    assert!(!r.stdout.contains(GREETING) && !r.stdout.contains("rc=0"), "{}", r.stdout);
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
    rt.workspace_delete(&off.workspace_id).expect("delete");

    let mut params = WorkspaceCreateParams::new(ENV);
    params.network_policy = NetworkPolicy::Egress;
    let on = rt.workspace_create(params).expect("create egress");
    let id = on.workspace_id.clone();
    assert_eq!(on.execution_mode, ExecutionMode::Guest);
    let status = rt.workspace_status(&id).expect("status");
    assert_eq!(status.network_policy, NetworkPolicy::Egress);
    assert!(status.network_enabled);
    assert_eq!(status.guest_ip.as_deref(), Some("10.0.2.15"));
    let r = rt
        .workspace_exec(WorkspaceExecParams::new(&id, "ls /sys/class/net; cat /etc/resolv.conf"))
        .expect("exec");
    assert_eq!(r.stdout, "eth0\nlo\nnameserver 10.0.2.3\n");
    let r = rt
        .workspace_exec(WorkspaceExecParams::new(&id, probe("10.0.2.2", server.port)))
        .expect("exec");
    assert_eq!(r.stdout, format!("{GREETING}\nrc=0\n"));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // The policy survives a stop and start.
    rt.workspace_stop(&id).expect("stop");
    rt.workspace_start(&id).expect("start");
    let r = rt
        .workspace_exec(WorkspaceExecParams::new(&id, probe("10.0.2.2", server.port)))
        .expect("exec");
    assert_eq!(r.stdout, format!("{GREETING}\nrc=0\n"));
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
    let (status, _) = cli_json(state.path(), &["workspace", "status", &id, "--json"]);
    assert_eq!(status["network_policy"], "egress");
    assert_eq!(status["network_enabled"], true);
    rt.workspace_delete(&id).expect("delete");
}

#[test]
fn vm_network_info_tells_what_the_one_shot_guest_really_has() {
    let state = common::guest_tempdir();
    let rt = runtime(state.path());
    let server = host_server();

    let mut create = VmCreateParams {
        environment: ENV.into(),
        vcpu_count: 1,
        mem_mib: 512,
        ttl_seconds: 600,
        network: false,
        allow_host_compat: false,
    };
    let offline = rt.vm_create(create.clone()).expect("create");
    let info = rt.vm_network_info(&offline.vm_id).expect("info");
    assert!(!info.network_enabled && !info.outbound_connectivity_expected);
    assert_eq!(info.reason.as_deref(), Some("network configuration is unavailable for this VM"));
    assert!(info.guest_ip.is_none() && info.mac_address.is_none());
    rt.vm_delete(&offline.vm_id).expect("delete");

    create.network = true;
    let vm = rt.vm_create(create).expect("create");
    let before = rt.vm_network_info(&vm.vm_id).expect("info");
    assert!(before.network_enabled);
    assert!(!before.outbound_connectivity_expected, "not running yet: {before:?}");
    assert!(before.reason.as_deref().is_some_and(|r| r.contains("not running")), "{before:?}");
    rt.vm_start(&vm.vm_id).expect("start");
    let info = rt.vm_network_info(&vm.vm_id).expect("info");
    assert!(info.outbound_connectivity_expected && info.reason.is_none(), "{info:?}");
    assert_eq!(info.guest_ip.as_deref(), Some("10.0.2.15"));
    assert_eq!(info.network_mode.as_deref(), Some("user"));
    assert!(info.tap_name.is_none());
    let gateway = info.gateway_ip.clone().expect("gateway");
    let mac = info.mac_address.clone().expect("mac");
    let r = rt
        .vm_exec(VmExecParams {
            vm_id: vm.vm_id.clone(),
            command: format!(
                "cat /sys/class/net/eth0/address; grep -c '^nameserver {}$' /etc/resolv.conf; {}",
                info.dns_servers[0],
                probe(&gateway, server.port)
            ),
            timeout_seconds: 60,
        })
        .expect("exec");
    assert_eq!(r.stdout, format!("{mac}\n1\n{GREETING}\nrc=0\n"));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    assert!(rt.vm_network_info(&vm.vm_id).is_err(), "vm_exec deletes the VM");
}

async fn mcp(state: &Path) -> Client {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.args(["mcp", "serve", "--no-project-source", "--profile", "workspace-full"])
        .env("PYRO_STATE_DIR", state)
        .env("PYRO_BACKEND", "host_compat");
    ().serve(TokioChildProcess::new(cmd).expect("spawn")).await.expect("initialize")
}

fn error_text(result: &CallToolResult) -> String {
    assert_eq!(result.is_error, Some(true), "expected a tool error: {result:?}");
    result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect()
}

/// Without a guest, secrets, network policies and disk tools are refused with the
/// contract's messages (workspace-full over MCP; host execution forced).
#[tokio::test]
async fn host_compat_refuses_secrets_network_and_disk_tools_over_mcp() {
    let state = common::guest_tempdir();
    let client = mcp(state.path()).await;
    let value = unique("hc");
    let message = error_text(
        &call(
            &client,
            "workspace_create",
            json!({"environment": ENV, "allow_host_compat": true,
                   "secrets": [{"name": "TOKEN", "value": value}]}),
        )
        .await,
    );
    assert!(
        message.contains(
            "workspace secrets require guest execution and are unavailable for this workspace: "
        ),
        "{message}"
    );
    assert!(!message.contains(&value), "{message}");
    let message = error_text(
        &call(
            &client,
            "workspace_create",
            json!({"environment": ENV, "allow_host_compat": true, "network_policy": "egress"}),
        )
        .await,
    );
    assert!(
        message.contains("workspace network_policy requires guest networking and is unavailable for this workspace: "),
        "{message}"
    );
    let bad = error_text(
        &call(
            &client,
            "workspace_create",
            json!({"environment": ENV, "allow_host_compat": true,
                   "secrets": [{"name": "A", "value": "x"}, {"name": "A", "value": "y"}]}),
        )
        .await,
    );
    assert!(bad.contains("duplicate secret name 'A'"), "{bad}");
    let created =
        call(&client, "workspace_create", json!({"environment": ENV, "allow_host_compat": true}))
            .await;
    assert_ne!(created.is_error, Some(true), "{created:?}");
    let id =
        created.structured_content.expect("ws")["workspace_id"].as_str().expect("id").to_string();
    let message = error_text(
        &call(
            &client,
            "workspace_exec",
            json!({"workspace_id": id, "command": "true", "secret_env": {"TOKEN": "T"}}),
        )
        .await,
    );
    assert!(message.contains("workspace secrets require guest execution"), "{message}");
    for (tool, extra) in [
        ("workspace_disk_list", json!({})),
        ("workspace_disk_read", json!({"path": "a.txt"})),
        ("workspace_disk_export", json!({"output_path": state.path().join("x.img")})),
    ] {
        let mut args = json!({"workspace_id": id});
        args.as_object_mut().expect("obj").extend(extra.as_object().expect("obj").clone());
        let message = error_text(&call(&client, tool, args).await);
        assert!(
            message.contains(&format!("{tool} is unavailable for host_compat workspaces")),
            "{message}"
        );
    }
    assert!(!state.path().join("x.img").exists());
    client.cancel().await.expect("shutdown");
}

async fn mcp_profile(state: &Path, profile: &str) -> Client {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.args(["mcp", "serve", "--no-project-source", "--profile", profile])
        .env("PYRO_STATE_DIR", state)
        .env("PYRO_BACKEND", "host_compat");
    ().serve(TokioChildProcess::new(cmd).expect("spawn")).await.expect("initialize")
}

/// None of this leaks into `workspace-core`: no schema mentions secrets, secret_env or
/// network_policy, the disk tools are not offered, and passing the full-only arguments
/// is an error that does not echo a secret. `workspace-full` offers all of it.
#[tokio::test]
async fn workspace_core_offers_no_secrets_network_policy_or_disk_tools() {
    let state = common::guest_tempdir();
    let core = mcp_profile(state.path(), "workspace-core").await;
    let tools = core.list_all_tools().await.expect("list");
    for tool in &tools {
        let schema = serde_json::to_string(&tool.input_schema).expect("json");
        for word in ["secret", "network_policy"] {
            assert!(!schema.contains(word), "{} mentions {word}: {schema}", tool.name);
        }
        assert!(!tool.name.starts_with("workspace_disk_"), "{}", tool.name);
    }
    let value = unique("core");
    for (tool, args) in [
        (
            "workspace_create",
            json!({"environment": ENV, "allow_host_compat": true,
                   "secrets": [{"name": "TOKEN", "value": value}]}),
        ),
        (
            "workspace_create",
            json!({"environment": ENV, "allow_host_compat": true, "network_policy": "egress"}),
        ),
        (
            "workspace_exec",
            json!({"workspace_id": "0123456789ab", "command": "true", "secret_env": {"TOKEN": "T"}}),
        ),
        ("workspace_disk_list", json!({"workspace_id": "0123456789ab"})),
    ] {
        let message = error_text(&call(&core, tool, args).await);
        assert!(message.contains("workspace-full"), "{tool}: {message}");
        assert!(!message.contains(&value), "{tool} echoed a secret: {message}");
    }
    assert!(
        std::fs::read_dir(state.path().join("workspaces")).map_or(true, |mut d| d.next().is_none())
    );
    core.cancel().await.expect("shutdown");

    let full = mcp_profile(state.path(), "workspace-full").await;
    let tools = full.list_all_tools().await.expect("list");
    let schema = |name: &str| {
        let tool = tools.iter().find(|t| t.name == name).expect(name);
        serde_json::to_value(&tool.input_schema).expect("json")["properties"].clone()
    };
    let create = schema("workspace_create");
    assert!(create.get("secrets").is_some() && create.get("network_policy").is_some(), "{create}");
    assert!(schema("workspace_exec").get("secret_env").is_some());
    for name in ["workspace_disk_export", "workspace_disk_list", "workspace_disk_read"] {
        assert!(tools.iter().any(|t| t.name == name), "{name} missing from workspace-full");
    }
    full.cancel().await.expect("shutdown");
}
