//! Chat-loop smoke: the two canonical examples run as they are (built with cargo, started
//! as processes) against a scripted fake OpenAI Responses API on 127.0.0.1, while the tools
//! run in real guests.
//!
//! The fake model checks every request: the exact tool list of the profile with strict
//! schemas, a `function_call_output` for every call it made, and the content of each
//! output. Anything off is recorded and fails the test (and the request gets an HTTP 500,
//! so the example stops early).

mod common;
#[path = "common/output_schema.rs"]
mod output_schema;

use pyro_contract::{tools_for, Profile};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const ENV: &str = "debian:12-base";
const API_KEY: &str = "test-key-not-secret";
const MODEL: &str = "fake-model";
/// How long one example run may take (a few TCG guest boots plus the build).
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------
// Building and running the examples
// ---------------------------------------------------------------------------

/// The examples' executables, built once per test process with `cargo build --examples`
/// (a no-op when `cargo test` already built them).
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<HashMap<String, PathBuf>, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let mut command = Command::new(cargo);
        // The variables `cargo test` sets for this process would look like a changed
        // environment to build scripts (ring reruns on CARGO_MANIFEST_DIR, CARGO_PKG_*),
        // and the examples' dependencies would be rebuilt on every run.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let set_by_cargo_test =
                ["CARGO_PKG_", "CARGO_BIN_EXE_"].iter().any(|p| key.starts_with(p))
                    || [
                        "CARGO_MANIFEST_DIR",
                        "CARGO_MANIFEST_PATH",
                        "CARGO_CRATE_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "OUT_DIR",
                    ]
                    .contains(&key.as_ref());
            if set_by_cargo_test {
                command.env_remove(key.as_ref());
            }
        }
        let out = command
            .args(["build", "-p", "pyro", "--examples", "--message-format=json-render-diagnostics"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo build --examples failed: {}", out.status));
        }
        let mut paths = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<Value>(line) else { continue };
            let is_example =
                msg["target"]["kind"].as_array().is_some_and(|k| k.contains(&json!("example")));
            if msg["reason"] == "compiler-artifact" && is_example {
                if let (Some(name), Some(exe)) =
                    (msg["target"]["name"].as_str(), msg["executable"].as_str())
                {
                    paths.insert(name.to_string(), PathBuf::from(exe));
                }
            }
        }
        Ok(paths)
    });
    match built {
        Ok(paths) => {
            paths.get(name).cloned().unwrap_or_else(|| panic!("no example {name}: {paths:?}"))
        }
        Err(e) => panic!("{e}"),
    }
}

/// Run `exe` with the fake API's environment; kill it after `RUN_TIMEOUT`.
fn run_example(exe: &Path, api: &FakeApi, state: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(exe)
        .args(args)
        .env("OPENAI_API_KEY", API_KEY)
        .env("OPENAI_BASE_URL", format!("{}/v1", api.base))
        .env("OPENAI_MODEL", MODEL)
        .env("PYRO_STATE_DIR", state)
        .env("PYRO_BIN", env!("CARGO_BIN_EXE_pyro"))
        .env_remove("PYRO_BACKEND")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the example");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).ok();
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        stderr.read_to_end(&mut buf).ok();
        buf
    });
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            break child.wait().expect("wait after kill");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

fn describe(out: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn leftover_workspaces(state: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(state.join("workspaces")) {
        Ok(dir) => dir.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// The fake Responses API
// ---------------------------------------------------------------------------

/// One answer of the fake API.
struct Reply {
    status: u16,
    body: String,
}

/// A successful response with these output items.
fn respond(items: Vec<Value>) -> Result<Reply, String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let body = json!({
        "id": format!("resp_{n}"),
        "object": "response",
        "status": "completed",
        "model": MODEL,
        "error": null,
        "output": items,
    });
    Ok(Reply { status: 200, body: body.to_string() })
}

fn final_message(text: &str) -> Value {
    json!({
        "type": "message",
        "id": "msg_final",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

/// One request as the scripted model sees it.
struct Turn {
    round: usize,
    body: Value,
}

impl Turn {
    fn input(&self) -> &[Value] {
        self.body["input"].as_array().map(Vec::as_slice).unwrap_or_default()
    }

    fn tool_names(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(String::from))
            .collect()
    }

    fn user_messages(&self) -> Vec<String> {
        self.input()
            .iter()
            .filter(|i| i["role"] == "user")
            .filter_map(|i| i["content"].as_str().map(String::from))
            .collect()
    }

    /// The `function_call_output` text for `call_id`.
    fn output(&self, call_id: &str) -> Result<String, String> {
        self.input()
            .iter()
            .find(|i| i["type"] == "function_call_output" && i["call_id"] == call_id)
            .and_then(|i| i["output"].as_str().map(String::from))
            .ok_or_else(|| format!("round {}: no function_call_output for {call_id}", self.round))
    }

    /// The output for `call_id` as a successful tool result (a JSON object).
    fn result(&self, call_id: &str) -> Result<Value, String> {
        let text = self.output(call_id)?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|_| format!("round {}: {call_id} did not succeed: {text}", self.round))?;
        if !value.is_object() {
            return Err(format!("round {}: {call_id} output is not an object: {text}", self.round));
        }
        // The output is the tool's structuredContent as text: it must validate against
        // the tool's outputSchema (`call_id` is `<name>_<round>`).
        let name = call_id.rsplit_once('_').map_or(call_id, |(name, _)| name);
        let problems = output_schema::contract_problems(name, &value);
        if !problems.is_empty() {
            return Err(format!(
                "round {}: {call_id} breaks its outputSchema: {problems:?}",
                self.round
            ));
        }
        Ok(value)
    }

    /// A `function_call` the way a strict model writes it: every parameter of the tool's
    /// schema present, `null` where the model has nothing to say. `call_id` is
    /// `<name>_<round>`.
    fn call(&self, name: &str, given: Value) -> Value {
        let mut args: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
        let tool = self.body["tools"].as_array().into_iter().flatten().find(|t| t["name"] == name);
        if let Some(props) = tool.and_then(|t| t["parameters"]["properties"].as_object()) {
            for key in props.keys() {
                args.entry(key.clone()).or_insert(Value::Null);
            }
        }
        json!({
            "type": "function_call",
            "id": format!("fc_{name}_{}", self.round),
            "call_id": format!("{name}_{}", self.round),
            "name": name,
            "arguments": Value::Object(args).to_string(),
            "status": "completed",
        })
    }
}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(format!($($arg)*));
        }
    };
}

/// Strict-mode rules, checked independently of pyro's converter.
fn strict_violations(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = schema.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    for banned in
        ["default", "format", "minimum", "maximum", "title", "$ref", "$defs", "oneOf", "allOf"]
    {
        if obj.contains_key(banned) {
            out.push(format!("{path}: has `{banned}`"));
        }
    }
    let types: Vec<&str> = match &obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"object") {
        if obj.get("additionalProperties") != Some(&json!(false)) {
            out.push(format!("{path}: additionalProperties is not false"));
        }
        let props = obj.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        let mut required: Vec<String> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        required.sort();
        let mut keys: Vec<String> = props.keys().cloned().collect();
        keys.sort();
        if required != keys {
            out.push(format!("{path}: required {required:?} != properties {keys:?}"));
        }
        for (k, v) in &props {
            strict_violations(v, &format!("{path}.{k}"), out);
        }
    } else if types.is_empty() && obj.get("anyOf").is_none() {
        out.push(format!("{path}: neither a type nor anyOf"));
    }
    if let Some(items) = obj.get("items") {
        strict_violations(items, &format!("{path}[]"), out);
    }
    for (i, alt) in obj.get("anyOf").and_then(Value::as_array).into_iter().flatten().enumerate() {
        strict_violations(alt, &format!("{path}|{i}"), out);
    }
}

/// The checks every request gets, whatever the script: model, exactly `profile`'s tools
/// with strict schemas, and an output for every call made so far.
fn check_request(turn: &Turn, profile: Profile) -> Result<(), String> {
    let round = turn.round;
    ensure!(turn.body["model"] == MODEL, "round {round}: model is {}", turn.body["model"]);
    let expected: Vec<&str> = tools_for(profile).map(|t| t.name).collect();
    ensure!(
        turn.tool_names() == expected,
        "round {round}: tools {:?} are not exactly profile {profile}'s {expected:?}",
        turn.tool_names()
    );
    for (tool, spec) in turn.body["tools"].as_array().into_iter().flatten().zip(tools_for(profile))
    {
        ensure!(tool["type"] == "function", "round {round}: {} is not a function tool", spec.name);
        ensure!(tool["strict"] == true, "round {round}: {} is not strict", spec.name);
        ensure!(
            tool["description"] == spec.description,
            "round {round}: {} description",
            spec.name
        );
        let params = &tool["parameters"];
        ensure!(
            params["type"] == "object",
            "round {round}: {} parameters are not an object",
            spec.name
        );
        let mut found = Vec::new();
        strict_violations(params, spec.name, &mut found);
        ensure!(found.is_empty(), "round {round}: not strict: {found:?}");
        let mut names: Vec<String> = params["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let mut wanted: Vec<String> = spec.schema_for(profile)["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        wanted.sort();
        ensure!(names == wanted, "round {round}: {} parameters {names:?} != {wanted:?}", spec.name);
    }
    // Every call the model made so far has exactly one output with its call_id.
    let input = turn.input();
    let calls: Vec<&str> = input
        .iter()
        .filter(|i| i["type"] == "function_call")
        .filter_map(|i| i["call_id"].as_str())
        .collect();
    let outputs: Vec<&str> = input
        .iter()
        .filter(|i| i["type"] == "function_call_output")
        .filter_map(|i| i["call_id"].as_str())
        .collect();
    ensure!(calls == outputs, "round {round}: calls {calls:?} vs outputs {outputs:?}");
    for item in input.iter().filter(|i| i["type"] == "function_call_output") {
        ensure!(item["output"].is_string(), "round {round}: output is not a string: {item}");
    }
    Ok(())
}

type Script = Box<dyn FnMut(&Turn) -> Result<Reply, String> + Send>;

/// The fake API: a thread serving `POST /v1/responses` on 127.0.0.1 with a script.
struct FakeApi {
    base: String,
    requests: Arc<Mutex<Vec<Value>>>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeApi {
    fn start(mut script: Script) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("nonblocking");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (req, err, halt) = (requests.clone(), errors.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: the server stops by itself after RUN_TIMEOUT plus a margin.
            let deadline = Instant::now() + RUN_TIMEOUT + Duration::from_secs(60);
            while !halt.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(e) = serve_one(stream, &mut script, &req) {
                            err.lock().expect("errors").push(e);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => {
                        err.lock().expect("errors").push(format!("accept: {e}"));
                        break;
                    }
                }
            }
        });
        FakeApi { base, requests, errors, stop, thread: Some(thread) }
    }

    /// Stop the server; the errors it recorded and the request bodies it saw.
    fn finish(mut self) -> (Vec<String>, Vec<Value>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("fake API thread");
        }
        let errors = self.errors.lock().expect("errors").clone();
        let requests = self.requests.lock().expect("requests").clone();
        (errors, requests)
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Read one HTTP/1.1 request (Content-Length body), answer it with the script, close.
fn serve_one(
    stream: TcpStream,
    script: &mut Script,
    requests: &Mutex<Vec<Value>>,
) -> Result<(), String> {
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).map_err(|e| format!("request line: {e}"))?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| format!("header: {e}"))?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).map_err(|e| format!("body: {e}"))?;

    let mut problems = Vec::new();
    if request_line.split_whitespace().take(2).collect::<Vec<_>>() != ["POST", "/v1/responses"] {
        problems.push(format!("unexpected request line {request_line:?}"));
    }
    if headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {API_KEY}")) {
        problems.push(format!("authorization header is {:?}", headers.get("authorization")));
    }
    if !headers.get("content-type").is_some_and(|v| v.starts_with("application/json")) {
        problems.push(format!("content-type is {:?}", headers.get("content-type")));
    }
    let reply = match serde_json::from_slice::<Value>(&body) {
        Err(e) => Err(format!("request body is not JSON: {e}")),
        Ok(_) if !problems.is_empty() => Err(problems.join("; ")),
        Ok(body) => {
            let round = {
                let mut seen = requests.lock().map_err(|e| e.to_string())?;
                seen.push(body.clone());
                seen.len()
            };
            script(&Turn { round, body })
        }
    };
    let (reply, error) = match reply {
        Ok(reply) => (reply, None),
        Err(e) => {
            (Reply { status: 500, body: json!({"error": {"message": e}}).to_string() }, Some(e))
        }
    };
    let mut stream = stream;
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(reply.body.as_bytes()))
        .map_err(|e| e.to_string())?;
    stream.flush().ok();
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// The smoke tests
// ---------------------------------------------------------------------------

#[test]
fn openai_responses_example_runs_the_workspace_core_flow_in_a_guest() {
    let state = common::guest_tempdir();
    let host = tempfile::tempdir().expect("host");
    let export_dir = host.path().join("exported-src");
    let task = "Make a workspace, write a script, run it, diff, export, reset, delete.";
    let script_text = "echo \"hello from $(uname -s)\"\n";
    let export_path = export_dir.clone();
    let mut workspace_id = String::new();
    let api = FakeApi::start(Box::new(move |turn: &Turn| {
        check_request(turn, Profile::WorkspaceCore)?;
        let r = turn.round;
        ensure!(
            turn.user_messages() == [task],
            "round {r}: user messages {:?}",
            turn.user_messages()
        );
        match r {
            1 => {
                ensure!(turn.input().len() == 1, "round 1: input {:?}", turn.input());
                respond(vec![turn.call(
                    "workspace_create",
                    json!({"environment": ENV, "name": "chat-smoke",
                           "labels": [{"key": "suite", "value": "chat-flows"}]}),
                )])
            }
            2 => {
                let ws = turn.result("workspace_create_1")?;
                ensure!(ws["execution_mode"] == "guest", "create ran in {}", ws["execution_mode"]);
                ensure!(ws["state"] == "started", "state {}", ws["state"]);
                ensure!(ws["name"] == "chat-smoke", "name {}", ws["name"]);
                ensure!(ws["labels"] == json!({"suite": "chat-flows"}), "labels {}", ws["labels"]);
                ensure!(ws["network_policy"] == "off", "policy {}", ws["network_policy"]);
                workspace_id = ws["workspace_id"].as_str().unwrap_or_default().to_string();
                respond(vec![
                    turn.call(
                        "workspace_file_write",
                        json!({"workspace_id": workspace_id, "path": "src/hello.sh", "text": script_text}),
                    ),
                    // Outside workspace-core: must come back as an error text, not end the loop.
                    turn.call("shell_open", json!({"workspace_id": workspace_id})),
                ])
            }
            3 => {
                let written = turn.result("workspace_file_write_2")?;
                ensure!(written["bytes_written"] == script_text.len(), "write {written}");
                let refused = turn.output("shell_open_2")?;
                ensure!(refused.starts_with("error:"), "shell_open was not refused: {refused}");
                ensure!(
                    refused.contains("workspace-full"),
                    "refusal does not name workspace-full: {refused}"
                );
                ensure!(
                    refused.contains("workspace-core"),
                    "refusal does not name the profile: {refused}"
                );
                respond(vec![turn.call(
                    "workspace_exec",
                    json!({"workspace_id": workspace_id, "command": "sh src/hello.sh"}),
                )])
            }
            4 => {
                let exec = turn.result("workspace_exec_3")?;
                ensure!(exec["stdout"] == "hello from Linux\n", "exec {exec}");
                ensure!(exec["exit_code"] == 0, "exec {exec}");
                ensure!(exec["execution_mode"] == "guest", "exec {exec}");
                respond(vec![turn.call("workspace_diff", json!({"workspace_id": workspace_id}))])
            }
            5 => {
                let diff = turn.result("workspace_diff_4")?;
                ensure!(diff["changed"] == true, "diff {diff}");
                let entries = diff["entries"].as_array().cloned().unwrap_or_default();
                ensure!(
                    entries.iter().any(|e| e["path"] == "src/hello.sh" && e["status"] == "added"),
                    "diff entries {entries:?}"
                );
                ensure!(
                    diff["patch"].as_str().unwrap_or_default().contains("+echo"),
                    "patch {diff}"
                );
                respond(vec![turn.call(
                    "workspace_export",
                    json!({"workspace_id": workspace_id, "path": "src",
                           "output_path": export_path.to_string_lossy()}),
                )])
            }
            6 => {
                let export = turn.result("workspace_export_5")?;
                ensure!(export["execution_mode"] == "guest", "export {export}");
                let copied = std::fs::read_to_string(export_path.join("hello.sh"))
                    .map_err(|e| format!("exported file: {e} ({export})"))?;
                ensure!(copied == script_text, "exported {copied:?}");
                respond(vec![turn.call("workspace_reset", json!({"workspace_id": workspace_id}))])
            }
            7 => {
                let reset = turn.result("workspace_reset_6")?;
                ensure!(reset["reset_count"] == 1, "reset {reset}");
                ensure!(reset["execution_mode"] == "guest", "reset {reset}");
                respond(vec![turn.call("workspace_delete", json!({"workspace_id": workspace_id}))])
            }
            8 => {
                let deleted = turn.result("workspace_delete_7")?;
                ensure!(deleted["deleted"] == true, "delete {deleted}");
                respond(vec![final_message(
                    "The script printed: hello from Linux. Workspace deleted.",
                )])
            }
            _ => Err(format!("round {r}: the script was already finished")),
        }
    }));
    let out = run_example(&example("openai_responses_workspace_core"), &api, state.path(), &[task]);
    let (errors, requests) = api.finish();
    eprintln!("{}", describe(&out)); // shown with --nocapture or when the test fails
    assert!(errors.is_empty(), "fake API errors: {errors:#?}\n{}", describe(&out));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(requests.len(), 8, "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "The script printed: hello from Linux. Workspace deleted.");
    assert!(export_dir.join("hello.sh").is_file());
    assert!(
        leftover_workspaces(state.path()).is_empty(),
        "{:?}",
        leftover_workspaces(state.path())
    );
}

#[test]
fn mcp_chat_example_promotes_vm_run_to_workspace_core() {
    let state = common::guest_tempdir();
    let tasks = ["Run uname in a fresh VM.", "Now keep a file in a workspace."];
    let mut workspace_id = String::new();
    let api = FakeApi::start(Box::new(move |turn: &Turn| {
        let r = turn.round;
        // Rounds 1-3: `pyro mcp serve --profile vm-run`; then the restarted server.
        let profile = if r <= 3 { Profile::VmRun } else { Profile::WorkspaceCore };
        check_request(turn, profile)?;
        let users = if r <= 3 { &tasks[..1] } else { &tasks[..] };
        ensure!(
            turn.user_messages() == users,
            "round {r}: user messages {:?}",
            turn.user_messages()
        );
        match r {
            1 => respond(vec![turn.call(
                "vm_run",
                json!({"environment": ENV, "command": "uname -s; echo one-shot"}),
            )]),
            2 => {
                let run = turn.result("vm_run_1")?;
                ensure!(run["stdout"] == "Linux\none-shot\n", "vm_run {run}");
                ensure!(run["exit_code"] == 0, "vm_run {run}");
                ensure!(run["execution_mode"] == "guest", "vm_run {run}");
                ensure!(run["cleanup"]["deleted"] == true, "vm_run {run}");
                // Not in vm-run: the server's error names the profile that has it.
                respond(vec![turn.call("workspace_create", json!({"environment": ENV}))])
            }
            3 => {
                let refused = turn.output("workspace_create_2")?;
                ensure!(
                    refused.starts_with("error:"),
                    "workspace_create was not refused: {refused}"
                );
                ensure!(
                    refused.contains("workspace-core"),
                    "refusal does not name workspace-core: {refused}"
                );
                respond(vec![final_message("phase one: Linux")])
            }
            4 => {
                // The conversation carried over the restart.
                let earlier = turn.result("vm_run_1")?;
                ensure!(earlier["stdout"] == "Linux\none-shot\n", "history lost: {earlier}");
                respond(vec![turn.call("workspace_create", json!({"environment": ENV}))])
            }
            5 => {
                let ws = turn.result("workspace_create_4")?;
                ensure!(ws["execution_mode"] == "guest", "create {ws}");
                workspace_id = ws["workspace_id"].as_str().unwrap_or_default().to_string();
                respond(vec![
                    turn.call(
                        "workspace_file_write",
                        json!({"workspace_id": workspace_id, "path": "notes/a.txt", "text": "one-shot\n"}),
                    ),
                    turn.call("workspace_exec", json!({"workspace_id": workspace_id, "command": "cat notes/a.txt"})),
                ])
            }
            6 => {
                turn.result("workspace_file_write_5")?;
                let exec = turn.result("workspace_exec_5")?;
                ensure!(exec["stdout"] == "one-shot\n", "exec {exec}");
                ensure!(exec["execution_mode"] == "guest", "exec {exec}");
                respond(vec![
                    turn.call("shell_open", json!({"workspace_id": workspace_id})),
                    turn.call("workspace_diff", json!({"workspace_id": workspace_id})),
                ])
            }
            7 => {
                let refused = turn.output("shell_open_6")?;
                ensure!(refused.starts_with("error:"), "shell_open was not refused: {refused}");
                ensure!(
                    refused.contains("workspace-full"),
                    "refusal does not name workspace-full: {refused}"
                );
                let diff = turn.result("workspace_diff_6")?;
                ensure!(
                    diff["patch"].as_str().unwrap_or_default().contains("notes/a.txt"),
                    "diff {diff}"
                );
                respond(vec![turn.call("workspace_delete", json!({"workspace_id": workspace_id}))])
            }
            8 => {
                let deleted = turn.result("workspace_delete_7")?;
                ensure!(deleted["deleted"] == true, "delete {deleted}");
                respond(vec![final_message("phase two: notes/a.txt added")])
            }
            _ => Err(format!("round {r}: the script was already finished")),
        }
    }));
    let out = run_example(&example("mcp_chat_profiles"), &api, state.path(), &tasks);
    let (errors, requests) = api.finish();
    eprintln!("{}", describe(&out)); // shown with --nocapture or when the test fails
    assert!(errors.is_empty(), "fake API errors: {errors:#?}\n{}", describe(&out));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(requests.len(), 8, "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("=== vm-run ===\nphase one: Linux\n"), "{}", describe(&out));
    assert!(
        stdout.contains("=== workspace-core ===\nphase two: notes/a.txt added\n"),
        "{}",
        describe(&out)
    );
    assert!(
        leftover_workspaces(state.path()).is_empty(),
        "{:?}",
        leftover_workspaces(state.path())
    );
}

#[test]
fn the_loop_fails_loudly_on_http_errors_bad_json_and_too_many_rounds() {
    let exe = example("openai_responses_workspace_core");
    let state = common::guest_tempdir();

    let api = FakeApi::start(Box::new(|_turn: &Turn| {
        Ok(Reply { status: 401, body: json!({"error": {"message": "bad key"}}).to_string() })
    }));
    let out = run_example(&exe, &api, state.path(), &["task"]);
    let (errors, _) = api.finish();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", describe(&out));

    let api =
        FakeApi::start(Box::new(|_turn: &Turn| Ok(Reply { status: 200, body: "not json".into() })));
    let out = run_example(&exe, &api, state.path(), &["task"]);
    let (errors, _) = api.finish();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not JSON"), "{}", describe(&out));

    // A model that never stops calling (cheap, host-side) tools hits the round limit.
    let api = FakeApi::start(Box::new(|turn: &Turn| {
        check_request(turn, Profile::WorkspaceCore)?;
        respond(vec![turn.call("workspace_list", json!({}))])
    }));
    let out = run_example(&exe, &api, state.path(), &["task"]);
    let (errors, requests) = api.finish();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rounds"), "{}", describe(&out));
    assert_eq!(requests.len(), 16);
    let listed = requests.last().and_then(|r| r["input"].as_array().cloned()).unwrap_or_default();
    let last_output = listed.iter().rev().find(|i| i["type"] == "function_call_output").cloned();
    let count = last_output
        .and_then(|o| o["output"].as_str().and_then(|s| serde_json::from_str::<Value>(s).ok()))
        .map(|v| v["count"].clone());
    assert_eq!(count, Some(json!(0)));
}
