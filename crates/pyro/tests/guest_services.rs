//! Services in real guests (QEMU; TCG here, KVM where available): readiness probes,
//! failures, logs, process-group stops, published ports reached from the host, and
//! services that outlive the process that started them. Like every guest test these
//! never skip: without the guest assets they fail and say to run scripts/setup.
//!
//! Network traffic only ever goes to 127.0.0.1 (on the host, or inside the guest).

mod common;
#[path = "common/rmcp_call.rs"]
mod rmcp_call;
use common::exec_ok as exec;
use common::guest_runtime as runtime;
use rmcp_call::{call, Client};

use pyro::params::*;
use pyro::results::{Service, ServiceReadiness, ServiceState, VmState};
use pyro::{PyroError, Runtime};
use rmcp::model::CallToolResult;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn start(rt: &Runtime, p: ServiceStartParams) -> Service {
    let what = format!("start {}", p.service_name);
    rt.service_start(p).expect(&what)
}

fn id(workspace_id: &str, name: &str) -> ServiceIdParams {
    ServiceIdParams { workspace_id: workspace_id.into(), service_name: name.into() }
}

/// `GET path` on the host's 127.0.0.1:port with a plain TcpStream; (status, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {answer:?}")))?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Nothing accepts connections on 127.0.0.1:port (slirp may accept and then reset when
/// the guest side is gone, so a connection that yields no answer counts as closed too).
fn host_port_closed(port: u16) -> bool {
    match TcpStream::connect(("127.0.0.1", port)) {
        Err(_) => true,
        Ok(mut s) => {
            let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
            let _ = write!(s, "GET / HTTP/1.0\r\n\r\n");
            let mut buf = [0u8; 16];
            matches!(s.read(&mut buf), Ok(0) | Err(_))
        }
    }
}

/// Poll the logs until `needle` shows up in stdout.
fn wait_for_stdout(rt: &Runtime, ws: &str, name: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logs = rt
            .service_logs(ServiceLogsParams { all: true, ..ServiceLogsParams::new(ws, name) })
            .expect("logs");
        if logs.stdout.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "{needle:?} never appeared: {logs:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn services_in_one_guest_ready_fail_log_stop_and_publish_to_the_host() {
    let state = common::guest_tempdir();
    let rt = runtime(state.path());
    let ws = rt
        .workspace_create(WorkspaceCreateParams {
            network_policy: NetworkPolicy::EgressPublishedPorts,
            secrets: Some(vec![SecretInput {
                name: "API_TOKEN".into(),
                value: Some("tok-7f3a9c-very-secret".into()),
                file_path: None,
            }]),
            ..WorkspaceCreateParams::new("debian:12")
        })
        .expect("create");
    let ws = ws.workspace_id;
    rt.workspace_file_write(WorkspaceFileWriteParams {
        workspace_id: ws.clone(),
        path: "site/hello.txt".into(),
        text: "hello from the guest\n".into(),
    })
    .expect("write");

    // 1. HTTP readiness inside the guest, then a published port reached from the host.
    let mut web = ServiceStartParams::new(&ws, "web", "exec python3 -m http.server 8080")
        .with_readiness(ServiceReadiness::Http { url: "http://127.0.0.1:8080/".into() });
    web.cwd = "site".into();
    web.published_ports = Some(vec![PublishedPortInput { guest_port: 8080, host_port: None }]);
    let web = start(&rt, web);
    assert_eq!(web.state, ServiceState::Running, "{web:?}");
    assert_eq!(web.cwd, "/workspace/site");
    assert!(web.ready_at.is_some_and(|r| r >= web.started_at), "{web:?}");
    assert_eq!(
        web.readiness,
        Some(ServiceReadiness::Http { url: "http://127.0.0.1:8080/".into() })
    );
    let port = &web.published_ports[0];
    assert_eq!(
        (port.host.as_str(), port.guest_port, port.protocol.as_str()),
        ("127.0.0.1", 8080, "tcp")
    );
    assert!(port.host_port >= 1025);
    let host_port = port.host_port;
    let (status, body) = http_get(host_port, "/hello.txt").expect("GET from the host");
    assert_eq!(status, 200);
    assert_eq!(body, "hello from the guest\n");
    let (status, _) = http_get(host_port, "/missing").expect("GET 404");
    assert_eq!(status, 404);

    // The same name cannot start twice while it runs.
    let again =
        rt.service_start(ServiceStartParams::new(&ws, "web", "true")).expect_err("already running");
    assert_eq!(again.to_string(), format!("service 'web' is already running in workspace '{ws}'"));

    // 2. File readiness: ready only once the file exists.
    let mut filed = ServiceStartParams::new(&ws, "filed", "sleep 1; touch .ready; exec sleep 300");
    filed.ready_file = Some(".ready".into());
    filed.ready_interval_ms = 100;
    let filed = start(&rt, filed);
    assert_eq!(filed.state, ServiceState::Running);
    assert_eq!(filed.readiness, Some(ServiceReadiness::File { path: "/workspace/.ready".into() }));
    let waited = filed.ready_at.expect("ready_at") - filed.started_at;
    assert!(waited >= 0.9, "ready after {waited}s, before the file existed");
    assert!(exec(&rt, &ws, "test -e .ready && echo yes").contains("yes"));

    // 3. A process that exits before it is ready: a failed result, not an error.
    let mut boom = ServiceStartParams::new(&ws, "boom", "echo going down >&2; exit 3");
    boom.ready_file = Some("never".into());
    let boom = start(&rt, boom);
    assert_eq!(boom.state, ServiceState::Failed);
    assert_eq!(boom.stop_reason.as_deref(), Some("process_exited_before_ready"));
    assert_eq!(boom.exit_code, Some(3));
    let logs = rt.service_logs(ServiceLogsParams::new(&ws, "boom")).expect("logs");
    assert_eq!(logs.stderr, "going down\n");

    // 4. Readiness timeout: the whole process group is gone afterwards.
    let mut slow = ServiceStartParams::new(
        &ws,
        "slow",
        "sleep 300 & echo $! > /tmp/slow-child.pid; exec sleep 301",
    );
    slow.ready_file = Some("never-appears".into());
    slow.ready_timeout_seconds = 3;
    let begun = Instant::now();
    let slow = start(&rt, slow);
    assert!(begun.elapsed() >= Duration::from_secs(3), "gave up early: {:?}", begun.elapsed());
    assert_eq!(slow.state, ServiceState::Failed);
    assert_eq!(slow.stop_reason.as_deref(), Some("readiness_timeout"));
    let left = exec(
        &rt,
        &ws,
        &format!(
            "kill -0 $(cat /tmp/slow-child.pid) 2>/dev/null && echo child-alive; \
             kill -0 {} 2>/dev/null && echo leader-alive; echo checked",
            slow.pid.expect("pid")
        ),
    );
    assert_eq!(left, "checked\n", "processes left behind by the readiness timeout");

    // 5. Logs: tail and all; a mapped secret is redacted.
    let mut counter = ServiceStartParams::new(
        &ws,
        "counter",
        "for i in 1 2 3 4 5; do echo line$i; done; echo \"err-line $TOKEN\" >&2; exec sleep 300",
    );
    counter.secret_env = Some([("API_TOKEN".to_string(), "TOKEN".to_string())].into());
    assert_eq!(start(&rt, counter).state, ServiceState::Running);
    wait_for_stdout(&rt, &ws, "counter", "line5");
    let tail = rt
        .service_logs(ServiceLogsParams { tail_lines: 2, ..ServiceLogsParams::new(&ws, "counter") })
        .expect("tail");
    assert_eq!(
        (tail.stdout.as_str(), tail.stderr.as_str()),
        ("line4\nline5\n", "err-line [REDACTED]\n")
    );
    assert!(tail.truncated);
    assert_eq!(tail.tail_lines, Some(2));
    let all = rt
        .service_logs(ServiceLogsParams { all: true, ..ServiceLogsParams::new(&ws, "counter") })
        .expect("all");
    assert_eq!(all.stdout, "line1\nline2\nline3\nline4\nline5\n");
    assert!(!all.truncated);
    assert_eq!(all.tail_lines, None);
    let bad = rt
        .service_logs(ServiceLogsParams { tail_lines: 0, ..ServiceLogsParams::new(&ws, "counter") })
        .expect_err("tail 0");
    assert!(bad.to_string().contains("tail_lines must be positive"), "{bad}");

    // Counts in the workspace status and the list.
    let status = rt.workspace_status(&ws).expect("status");
    assert_eq!((status.service_count, status.running_service_count), (5, 3));
    let list = rt.service_list(&ws).expect("list");
    let names: Vec<&str> = list.services.iter().map(|s| s.service_name.as_str()).collect();
    assert_eq!(names, ["boom", "counter", "filed", "slow", "web"]);
    assert_eq!((list.count, list.running_count), (5, 3));

    // 6. Stop reaches the whole process group, including a background child.
    let tree = ServiceStartParams::new(
        &ws,
        "tree",
        "sleep 300 & echo $! > /tmp/tree-child.pid; exec sleep 302",
    );
    assert_eq!(start(&rt, tree).state, ServiceState::Running);
    // The service has no readiness probe, so it may not have written the pid yet (an exec
    // is one fast process now): wait for the file first.
    let child_alive = || {
        exec(
            &rt,
            &ws,
            "for i in $(seq 100); do test -s /tmp/tree-child.pid && break; sleep 0.1; done; \
             kill -0 $(cat /tmp/tree-child.pid) 2>/dev/null && echo alive; true",
        )
    };
    assert_eq!(child_alive(), "alive\n");
    let stopped = rt.service_stop(id(&ws, "tree")).expect("stop");
    assert_eq!(stopped.state, ServiceState::Stopped);
    assert_eq!(stopped.stop_reason.as_deref(), Some("sigterm"));
    assert_eq!(child_alive(), "", "the background child survived service_stop");
    // Stopping a stopped service returns it unchanged.
    assert_eq!(rt.service_stop(id(&ws, "tree")).expect("again"), stopped);

    // Stopping the web service removes its published port.
    let stopped = rt.service_stop(id(&ws, "web")).expect("stop web");
    assert_eq!(stopped.state, ServiceState::Stopped);
    assert!(host_port_closed(host_port), "127.0.0.1:{host_port} still answers after the stop");

    // Unknown services.
    let err = rt.service_status(id(&ws, "nope")).expect_err("unknown");
    assert!(matches!(err, PyroError::UnknownService { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("service 'nope' does not exist in workspace '{ws}'"));

    // 7. Service records and logs never show up in diff or export.
    let diff = rt.workspace_diff(&ws).expect("diff");
    let changed: Vec<&str> = diff.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(changed, [".ready", "site/hello.txt"], "{diff:?}");
    let out = state.path().join("export");
    rt.workspace_export(WorkspaceExportParams {
        workspace_id: ws.clone(),
        path: "/workspace".into(),
        output_path: out.display().to_string(),
    })
    .expect("export");
    let mut exported: Vec<String> = walk(&out);
    exported.sort();
    assert_eq!(exported, [".ready", "site", "site/hello.txt"]);

    // A host port that is taken on the host: the service fails, nothing is left.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = squatter.local_addr().expect("addr").port();
    let mut blocked = ServiceStartParams::new(&ws, "blocked", "exec sleep 303");
    blocked.published_ports =
        Some(vec![PublishedPortInput { guest_port: 9, host_port: Some(taken) }]);
    let blocked = start(&rt, blocked);
    assert_eq!(blocked.state, ServiceState::Failed, "{blocked:?}");
    assert_eq!(blocked.stop_reason.as_deref(), Some("published_port_failed"));
    assert!(blocked.published_ports.is_empty());
    let gone = exec(
        &rt,
        &ws,
        &format!("kill -0 {} 2>/dev/null && echo alive; true", blocked.pid.expect("pid")),
    );
    assert_eq!(gone, "");
    drop(squatter);

    // 8. Workspace stop ends the services (SIGTERM first) and drops their records.
    let polite = ServiceStartParams::new(
        &ws,
        "polite",
        "trap 'echo bye > /workspace/said-bye; exit 0' TERM; while :; do sleep 1; done",
    );
    assert_eq!(start(&rt, polite).state, ServiceState::Running);
    let restart = ServiceStartParams::new(&ws, "web", "exec python3 -m http.server 8081")
        .with_readiness(ServiceReadiness::Tcp { address: "127.0.0.1:8081".into() });
    let mut restart = restart;
    restart.published_ports =
        Some(vec![PublishedPortInput { guest_port: 8081, host_port: Some(host_port) }]);
    let restarted = start(&rt, restart);
    assert_eq!(restarted.state, ServiceState::Running, "the stopped name starts again");
    assert_eq!(restarted.published_ports[0].host_port, host_port, "the freed host port is reused");
    assert_eq!(http_get(host_port, "/").expect("GET").0, 200);
    let stopped_ws = rt.workspace_stop(&ws).expect("stop workspace");
    assert_eq!(stopped_ws.state, VmState::Stopped);
    assert_eq!((stopped_ws.service_count, stopped_ws.running_service_count), (0, 0));
    assert!(host_port_closed(host_port));
    let started = rt.workspace_start(&ws).expect("start workspace");
    assert_eq!((started.service_count, started.running_service_count), (0, 0));
    assert_eq!(rt.service_list(&ws).expect("list").count, 0);
    assert_eq!(exec(&rt, &ws, "cat said-bye"), "bye\n", "no SIGTERM before the stop");
    rt.workspace_delete(&ws).expect("delete");
}

/// Relative paths of everything under `dir`.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(dir).expect("prefix").display().to_string());
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Across processes: the CLI and the MCP server
// ---------------------------------------------------------------------------------

fn pyro_cli(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pyro"))
        .args(args)
        .env("PYRO_STATE_DIR", state)
        .env_remove("PYRO_BACKEND")
        .output()
        .expect("run pyro")
}

fn cli_json(state: &Path, args: &[&str]) -> Value {
    let out = pyro_cli(state, args);
    assert!(out.status.success(), "pyro {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

async fn mcp(state: &Path) -> Client {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pyro"));
    cmd.args(["mcp", "serve", "--no-project-source", "--profile", "workspace-full"])
        .env("PYRO_STATE_DIR", state)
        .env_remove("PYRO_BACKEND");
    ().serve(TokioChildProcess::new(cmd).expect("spawn pyro mcp serve")).await.expect("init")
}

fn ok(result: CallToolResult) -> Map<String, Value> {
    assert_ne!(result.is_error, Some(true), "tool failed: {result:?}");
    match result.structured_content {
        Some(Value::Object(map)) => map,
        other => panic!("no structured content: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_started_by_one_process_is_listed_and_stopped_by_others() {
    let state = common::guest_tempdir();
    let s = state.path();
    runtime(s);
    let created = pyro_cli(s, &["workspace", "create", "debian:12-base", "--id-only"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let ws = String::from_utf8(created.stdout).expect("utf8").trim().to_string();

    // Process 1 (CLI) starts it and exits.
    let started = cli_json(
        s,
        &[
            "workspace",
            "service",
            "start",
            &ws,
            "bg",
            "--ready-file",
            "up",
            "--json",
            "--",
            "sh",
            "-c",
            "touch up; echo serving; exec sleep 300",
        ],
    );
    assert_eq!(started["state"], "running", "{started}");
    assert_eq!(started["readiness"], json!({"type": "file", "path": "/workspace/up"}));
    let pid = started["pid"].as_u64().expect("pid");

    // Process 2 (CLI) sees it; human list format.
    let listed = pyro_cli(s, &["workspace", "service", "list", &ws]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "bg [running] cwd=/workspace\n");
    let status = cli_json(s, &["workspace", "status", &ws, "--json"]);
    assert_eq!(
        (status["service_count"].as_u64(), status["running_service_count"].as_u64()),
        (Some(1), Some(1))
    );

    // Process 3 (MCP server) inspects it, starts another one with flattened readiness
    // (file wins over command), and stops the first.
    let client = mcp(s).await;
    let svc =
        ok(call(&client, "service_status", json!({"workspace_id": ws, "service_name": "bg"}))
            .await);
    assert_eq!((svc["state"].as_str(), svc["pid"].as_u64()), (Some("running"), Some(pid)));
    let second = ok(call(
        &client,
        "service_start",
        json!({
            "workspace_id": ws, "service_name": "second", "command": "touch second.up; exec sleep 300",
            "ready_command": "false", "ready_file": "second.up", "ready_timeout_seconds": 20
        }),
    )
    .await);
    assert_eq!(second["state"], "running", "{second:?}");
    assert_eq!(second["readiness"], json!({"type": "file", "path": "/workspace/second.up"}));
    let logs = ok(call(
        &client,
        "service_logs",
        json!({"workspace_id": ws, "service_name": "bg", "tail_lines": 5}),
    )
    .await);
    assert_eq!(
        (logs["stdout"].as_str(), logs["tail_lines"].as_u64()),
        (Some("serving\n"), Some(5))
    );
    let stopped =
        ok(call(&client, "service_stop", json!({"workspace_id": ws, "service_name": "bg"})).await);
    assert_eq!(
        (stopped["state"].as_str(), stopped["stop_reason"].as_str()),
        (Some("stopped"), Some("sigterm"))
    );
    let missing =
        call(&client, "service_status", json!({"workspace_id": ws, "service_name": "ghost"})).await;
    assert_eq!(missing.is_error, Some(true));
    client.cancel().await.expect("close the MCP session");

    // Process 4 (CLI) sees the stop; the counts follow.
    let list = cli_json(s, &["workspace", "service", "list", &ws, "--json"]);
    assert_eq!((list["count"].as_u64(), list["running_count"].as_u64()), (Some(2), Some(1)));
    assert_eq!(list["services"][0]["service_name"], "bg");
    assert_eq!(list["services"][0]["state"], "stopped");
    let stop = pyro_cli(s, &["workspace", "service", "stop", &ws, "second"]);
    assert!(stop.status.success());
    let line = String::from_utf8_lossy(&stop.stderr);
    assert!(
        line.starts_with(&format!(
            "[workspace-service-stop] workspace_id={ws} service_name=second state=stopped cwd=/workspace execution_mode=guest"
        )),
        "{line}"
    );

    // Published ports need the policy.
    let refused = pyro_cli(
        s,
        &["workspace", "service", "start", &ws, "web", "--publish", "8080", "--json", "--", "true"],
    );
    assert_eq!(refused.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&refused.stdout).expect("json error");
    assert_eq!(
        err["error"]["message"],
        "published ports require workspace network_policy 'egress+published-ports'"
    );

    let deleted = pyro_cli(s, &["workspace", "delete", &ws]);
    assert!(deleted.status.success());
}
