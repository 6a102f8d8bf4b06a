//! Interactive shells in real guests (QEMU; TCG here, KVM where available): the CLI
//! across separate invocations, the SDK and the MCP dispatcher. Each test boots one
//! guest and checks several things in it; the tests take turns so that at most one of
//! their guests runs at a time.

mod common;

use pyro::params::*;
use pyro::results::{ShellReadResult, ShellState};
use pyro::{Profile, Pyro, PyroError, Runtime, RuntimeConfig};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_GUEST_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_GUEST_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn config(state: &Path) -> RuntimeConfig {
    RuntimeConfig { state_dir: state.to_path_buf(), ..RuntimeConfig::from_env() }
}

fn runtime(state: &Path) -> Runtime {
    let rt = Runtime::new(config(state));
    let report = rt.doctor();
    assert!(report.runtime_ok, "guest backend not ready ({:?}); run scripts/setup", report.issues);
    rt
}

fn cli(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pyro"))
        .env("PYRO_STATE_DIR", state)
        .args(args)
        .output()
        .expect("run pyro")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn cli_ok(state: &Path, args: &[&str]) -> Output {
    let out = cli(state, args);
    assert!(out.status.success(), "pyro {args:?} failed: {}", text(&out.stderr));
    out
}

fn cli_json(state: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_slice(&cli_ok(state, &all).stdout).expect("json output")
}

/// Read with `pyro workspace shell read` (a new process each time) from `cursor` until
/// `needle` shows up; returns the text read and the cursor after it.
fn cli_read_until(state: &Path, ws: &str, sid: &str, cursor: u64, needle: &str) -> (String, u64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = String::new();
    let mut cursor = cursor;
    loop {
        let c = cursor.to_string();
        let r = cli_json(
            state,
            &["workspace", "shell", "read", ws, sid, "--cursor", &c, "--wait-for-idle-ms", "500"],
        );
        assert_eq!(r["cursor"], cursor, "{r}");
        seen.push_str(r["output"].as_str().expect("output"));
        cursor = r["next_cursor"].as_u64().expect("next_cursor");
        if seen.contains(needle) {
            return (seen, cursor);
        }
        assert!(Instant::now() < deadline, "{needle:?} never appeared; got {seen:?}");
    }
}

fn read(rt: &Runtime, ws: &str, sid: &str, cursor: u64) -> ShellReadResult {
    let mut p = ShellReadParams::new(ws, sid, cursor);
    p.wait_for_idle_ms = Some(300);
    rt.shell_read(p).expect("shell_read")
}

/// Read through the SDK from `cursor` until `needle` shows up.
fn read_until(rt: &Runtime, ws: &str, sid: &str, cursor: u64, needle: &str) -> (String, u64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = String::new();
    let mut cursor = cursor;
    loop {
        let r = read(rt, ws, sid, cursor);
        seen.push_str(&r.output);
        cursor = r.next_cursor;
        if seen.contains(needle) {
            return (seen, cursor);
        }
        assert!(Instant::now() < deadline, "{needle:?} never appeared; got {seen:?}");
    }
}

fn write(rt: &Runtime, ws: &str, sid: &str, input: &str) {
    let r = rt.shell_write(ShellWriteParams::new(ws, sid, input)).expect("shell_write");
    assert_eq!(r.input_length, input.chars().count() as u64);
    assert_eq!(r.shell.state, ShellState::Running);
}

/// The end of a shell's output so far (to continue reading after it).
fn end_cursor(rt: &Runtime, ws: &str, sid: &str) -> u64 {
    read(rt, ws, sid, u64::MAX).next_cursor
}

#[test]
fn cli_shell_outlives_each_invocation_runs_python_and_is_interrupted_and_closed() {
    let _guest = serial();
    let state = common::guest_tempdir();
    let s = state.path();
    runtime(s);
    let ws = text(&cli_ok(s, &["workspace", "create", "debian:12", "--id-only"]).stdout)
        .trim()
        .to_string();
    let sid = text(&cli_ok(s, &["workspace", "shell", "open", &ws, "--id-only"]).stdout)
        .trim()
        .to_string();
    assert!(sid.len() == 12 && sid.bytes().all(|b| b.is_ascii_hexdigit()), "{sid:?}");
    assert!(s.join("workspaces").join(&ws).join("shells").join(format!("{sid}.json")).exists());

    // An interactive program, driven by separate pyro processes.
    let w = cli_json(s, &["workspace", "shell", "write", &ws, &sid, "--input", "python3 -q"]);
    assert_eq!((w["input_length"].as_u64(), w["append_newline"].as_bool()), (Some(10), Some(true)));
    assert_eq!(w["state"], "running");
    let (_, cursor) = cli_read_until(s, &ws, &sid, 0, ">>> ");
    cli_ok(s, &["workspace", "shell", "write", &ws, &sid, "--input", "print(6 * 7)"]);
    let (answer, _) = cli_read_until(s, &ws, &sid, cursor, "42");
    assert!(answer.contains("42\r\n"), "{answer:?}");
    cli_ok(s, &["workspace", "shell", "write", &ws, &sid, "--input", "exit()"]);
    cli_read_until(s, &ws, &sid, cursor, "pyro$ ");

    // Human output: the text on stdout, the summary on stderr.
    let human = cli_ok(s, &["workspace", "shell", "read", &ws, &sid, "--plain"]);
    let stdout = text(&human.stdout);
    assert!(stdout.contains("print(6 * 7)\n42\n"), "{stdout:?}");
    assert!(!stdout.contains('\u{1b}') && !stdout.contains('\r'), "{stdout:?}");
    let stderr = text(&human.stderr);
    assert!(
        stderr.starts_with(&format!(
            "[workspace-shell-read] workspace_id={ws} shell_id={sid} state=running cursor=0 next_cursor="
        )),
        "{stderr}"
    );
    assert!(stderr.contains(" plain=True wait_for_idle_ms=None execution_mode=guest"), "{stderr}");

    // INT interrupts the foreground job; the prompt comes back long before 100 s.
    cli_ok(s, &["workspace", "shell", "write", &ws, &sid, "--input", "sleep 100"]);
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let sig = cli_ok(s, &["workspace", "shell", "signal", &ws, &sid, "--signal", "INT"]);
    assert!(
        text(&sig.stderr).starts_with(&format!(
            "[workspace-shell-signal] workspace_id={ws} shell_id={sid} state=running"
        )),
        "{}",
        text(&sig.stderr)
    );
    cli_ok(s, &["workspace", "shell", "write", &ws, &sid, "--input", "echo \"int-$((6*7))\""]);
    cli_read_until(s, &ws, &sid, cursor, "int-42");
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());

    // Close ends it; afterwards it does not exist.
    let closed = cli_json(s, &["workspace", "shell", "close", &ws, &sid]);
    assert_eq!(closed["closed"], true);
    assert_eq!(closed["state"], "stopped");
    assert!(closed["ended_at"].as_f64().is_some(), "{closed}");
    let gone = cli(s, &["workspace", "shell", "read", &ws, &sid]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone.stderr).contains(&format!("shell '{sid}' does not exist in workspace '{ws}'")),
        "{}",
        text(&gone.stderr)
    );
    let gone = cli(s, &["workspace", "shell", "write", &ws, &sid, "--input", "x", "--json"]);
    let report: Value = serde_json::from_slice(&gone.stdout).expect("json error");
    assert_eq!(report["error"]["kind"], "not_found", "{report}");
    // Neither the interrupted sleep nor the closed bash is left in the guest.
    let ps = cli_ok(
        s,
        &[
            "workspace",
            "exec",
            &ws,
            "--",
            "sh",
            "-c",
            "ps -eo comm | grep -cE '^(sleep|bash)$' || true",
        ],
    );
    assert_eq!(text(&ps.stdout).trim(), "0");

    // Reset closes the shells of the old VM and drops their records.
    let again = text(&cli_ok(s, &["workspace", "shell", "open", &ws, "--id-only"]).stdout)
        .trim()
        .to_string();
    cli_ok(s, &["workspace", "reset", &ws]);
    assert!(!s.join("workspaces").join(&ws).join("shells").exists());
    let gone = cli(s, &["workspace", "shell", "read", &ws, &again]);
    assert!(
        text(&gone.stderr).contains(&format!("shell '{again}' does not exist in workspace '{ws}'")),
        "{}",
        text(&gone.stderr)
    );
    cli_ok(s, &["workspace", "delete", &ws]);
}

#[test]
fn sdk_and_mcp_shells_cursor_plain_resize_independence_exit_and_stop() {
    let _guest = serial();
    let state = common::guest_tempdir();
    let rt = runtime(state.path());
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let pyro = Pyro::with_config(config(state.path()));
    let mcp = |name: &str, args: Value| {
        let Value::Object(map) = args else { panic!("args must be an object") };
        tokio.block_on(pyro::mcp::call_tool(&pyro, Profile::WorkspaceFull, name, map))
    };
    let mut create = WorkspaceCreateParams::new("debian:12-base");
    create.secrets = Some(vec![SecretInput {
        name: "API_TOKEN".into(),
        value: Some("tok-5ecret-value".into()),
        file_path: None,
    }]);
    let ws = rt.workspace_create(create).expect("create").workspace_id;

    // Open through MCP with a size; the terminal has it.
    let opened = mcp("shell_open", json!({"workspace_id": ws, "cols": 90, "rows": 20}))
        .expect("mcp shell_open");
    assert_eq!((opened["cols"].as_u64(), opened["rows"].as_u64()), (Some(90), Some(20)));
    assert_eq!(opened["execution_mode"], "guest");
    assert_eq!(opened["state"], "running");
    let s1 = opened["shell_id"].as_str().expect("shell_id").to_string();
    write(&rt, &ws, &s1, "stty size");
    read_until(&rt, &ws, &s1, 0, "20 90");

    // Resize (SDK extension) changes what the terminal reports.
    let resized = rt
        .shell_resize(ShellResizeParams {
            workspace_id: ws.clone(),
            shell_id: s1.clone(),
            cols: 100,
            rows: 40,
        })
        .expect("resize");
    assert_eq!((resized.cols, resized.rows), (100, 40));
    let at = end_cursor(&rt, &ws, &s1);
    write(&rt, &ws, &s1, "stty size");
    read_until(&rt, &ws, &s1, at, "40 100");

    // Plain mode strips escapes; raw mode keeps them; both from the same cursor.
    let at = end_cursor(&rt, &ws, &s1);
    write(&rt, &ws, &s1, "printf '\\033[31mred\\033[0m\\n'");
    let (raw, _) = read_until(&rt, &ws, &s1, at, "\u{1b}[31mred\u{1b}[0m");
    assert!(raw.contains('\r'), "{raw:?}");
    let mut p = ShellReadParams::new(&ws, &s1, at);
    p.plain = true;
    let plain = rt.shell_read(p).expect("plain read");
    assert!(plain.plain);
    assert!(plain.output.lines().any(|l| l == "red"), "{:?}", plain.output);
    assert!(!plain.output.contains('\u{1b}') && !plain.output.contains('\r'), "{plain:?}");

    // Cursor reads in small chunks neither lose nor repeat anything.
    write(&rt, &ws, &s1, "seq 1 400");
    read_until(&rt, &ws, &s1, at, "\n400\r\n");
    let mut whole = ShellReadParams::new(&ws, &s1, 0);
    whole.max_chars = 1 << 20;
    let full = rt.shell_read(whole).expect("full read");
    assert!(!full.truncated);
    assert!(full.output.chars().count() > 1500, "{}", full.output.len());
    let mut joined = String::new();
    let mut cursor = 0;
    loop {
        let mut p = ShellReadParams::new(&ws, &s1, cursor);
        p.max_chars = 97;
        let part = rt.shell_read(p).expect("chunk");
        assert_eq!(part.cursor, cursor);
        assert!(part.output.chars().count() <= 97);
        joined.push_str(&part.output);
        cursor = part.next_cursor;
        if cursor >= full.next_cursor {
            break;
        }
        assert!(part.truncated, "more output follows at {cursor}");
    }
    assert_eq!(joined, full.output);

    // A second shell is independent of the first.
    let s2 = rt.shell_open(ShellOpenParams::new(&ws)).expect("open s2").shell_id;
    assert_ne!(s1, s2);
    let a1 = end_cursor(&rt, &ws, &s1);
    write(&rt, &ws, &s1, "X=one-$((0+1)); echo \"s1:$X\"");
    write(&rt, &ws, &s2, "X=two-$((1+1)); echo \"s2:$X\"");
    let (o1, _) = read_until(&rt, &ws, &s1, a1, "s1:one-1");
    let (o2, _) = read_until(&rt, &ws, &s2, 0, "s2:two-2");
    assert!(!o1.contains("two-2") && !o2.contains("one-1"), "{o1:?} / {o2:?}");

    // secret_env maps a secret into the shell's environment; its value never comes back.
    let mut open = ShellOpenParams::new(&ws);
    open.secret_env = Some([("API_TOKEN".to_string(), "MY_TOKEN".to_string())].into());
    let s4 = rt.shell_open(open).expect("open with secret_env").shell_id;
    write(
        &rt,
        &ws,
        &s4,
        "echo \"len=${#MY_TOKEN} v=$MY_TOKEN\"; cat /run/pyro-secrets/API_TOKEN; echo \"/done-$((2+3))\"",
    );
    let (seen, _) = read_until(&rt, &ws, &s4, 0, "/done-5");
    assert!(seen.contains("len=16 v=[REDACTED]"), "{seen:?}");
    assert!(!seen.contains("5ecret"), "{seen:?}");
    assert_eq!(seen.matches("[REDACTED]").count(), 2, "{seen:?}");
    let mut bad = ShellOpenParams::new(&ws);
    bad.secret_env = Some([("NOPE".to_string(), "X".to_string())].into());
    let err = rt.shell_open(bad).expect_err("unknown secret");
    assert!(err.to_string().contains("unknown workspace secret 'NOPE'"), "{err}");

    // A shell that exits reports its code and refuses input.
    let s3 = rt.shell_open(ShellOpenParams::new(&ws)).expect("open s3").shell_id;
    write(&rt, &ws, &s3, "exit 3");
    let deadline = Instant::now() + Duration::from_secs(60);
    let ended = loop {
        let r = read(&rt, &ws, &s3, 0);
        if r.shell.state == ShellState::Stopped {
            break r.shell;
        }
        assert!(Instant::now() < deadline, "shell did not exit");
    };
    assert_eq!(ended.exit_code, Some(3));
    assert!(ended.ended_at.is_some_and(|t| t >= ended.started_at));
    let err = rt.shell_write(ShellWriteParams::new(&ws, &s3, "x")).expect_err("not running");
    assert!(err.to_string().contains(&format!("shell {s3} is not running")), "{err}");
    let closed = rt
        .shell_close(ShellIdParams { workspace_id: ws.clone(), shell_id: s3.clone() })
        .expect("close exited shell");
    assert_eq!(closed.shell.exit_code, Some(3));
    assert!(closed.closed);

    // MCP: signal names are case-insensitive; bad arguments are clear errors.
    let sig =
        mcp("shell_signal", json!({"workspace_id": ws, "shell_id": s2, "signal_name": "int"}))
            .expect("signal");
    assert_eq!(sig["signal"], "INT");
    let err =
        mcp("shell_signal", json!({"workspace_id": ws, "shell_id": s2, "signal_name": "STOP"}))
            .expect_err("bad signal");
    assert_eq!(err.0.message, "signal_name must be one of: HUP, INT, TERM, KILL");
    assert_eq!(err.0.kind, pyro_contract::ErrorKind::InvalidArgument);
    let err = mcp("shell_read", json!({"workspace_id": ws, "shell_id": s2, "wait_for_idle_ms": 0}))
        .expect_err("bad wait");
    assert_eq!(err.0.message, "wait_for_idle_ms must be between 1 and 10000");
    let err = mcp("shell_read", json!({"workspace_id": ws, "shell_id": "0123456789ab"}))
        .expect_err("unknown shell");
    assert_eq!(err.0.message, format!("shell '0123456789ab' does not exist in workspace '{ws}'"));
    assert_eq!(err.0.kind, pyro_contract::ErrorKind::NotFound);

    // Stopping the workspace closes its shells and drops their records.
    let shells_dir = state.path().join("workspaces").join(&ws).join("shells");
    assert!(shells_dir.join(format!("{s2}.json")).exists());
    rt.workspace_stop(&ws).expect("stop");
    assert!(!shells_dir.exists(), "shell records survived the stop");
    let err = rt.shell_read(ShellReadParams::new(&ws, &s2, 0)).expect_err("stopped workspace");
    assert!(err.to_string().contains("before shell operations"), "{err}");
    rt.workspace_start(&ws).expect("start");
    let err = rt.shell_read(ShellReadParams::new(&ws, &s2, 0)).expect_err("gone");
    assert!(matches!(err, PyroError::UnknownShell { .. }), "{err}");
    rt.workspace_delete(&ws).expect("delete");
}

#[test]
fn host_compat_workspaces_refuse_shells_clearly() {
    let state = common::guest_tempdir();
    let s = state.path();
    let create = Command::new(env!("CARGO_BIN_EXE_pyro"))
        .env("PYRO_STATE_DIR", s)
        .env("PYRO_BACKEND", "host_compat")
        .args(["workspace", "create", "debian:12", "--allow-host-compat", "--id-only"])
        .output()
        .expect("create");
    assert!(create.status.success(), "{}", text(&create.stderr));
    let ws = text(&create.stdout).trim().to_string();
    let open = cli(s, &["workspace", "shell", "open", &ws, "--json"]);
    assert_eq!(open.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&open.stdout).expect("json error");
    assert_eq!(
        report["error"]["message"],
        "interactive shells require guest execution and are unavailable for this workspace: \
         host_compat backend"
    );
    assert!(!s.join("workspaces").join(&ws).join("shells").exists());
    cli_ok(s, &["workspace", "delete", &ws]);
}
