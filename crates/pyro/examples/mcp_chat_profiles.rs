//! The canonical MCP chat flow, with the profile progression: a chat loop against the
//! OpenAI Responses API whose tools come from `pyro mcp serve` over MCP (stdio).
//!
//! 1. Start `pyro mcp serve --profile vm-run`: the model gets one tool, `vm_run`, and does
//!    a one-shot task.
//! 2. Stop it and start `pyro mcp serve --profile workspace-core`: the same conversation
//!    goes on with the persistent-workspace tools for a second task. This is how a chat
//!    host promotes an agent without dumping the whole advanced surface on it.
//!
//! ```text
//! cargo build --bin pyro
//! export OPENAI_API_KEY=sk-...
//! cargo run --example mcp_chat_profiles
//! cargo run --example mcp_chat_profiles -- "one-shot task" "workspace task"
//! ```
//!
//! Environment:
//!
//! | variable          | meaning                                                          |
//! |-------------------|------------------------------------------------------------------|
//! | `OPENAI_API_KEY`  | required; sent as `Authorization: Bearer ...`                    |
//! | `OPENAI_BASE_URL` | default `https://api.openai.com/v1`; `/responses` is added       |
//! | `OPENAI_MODEL`    | default `gpt-5-mini`                                             |
//! | `PYRO_BIN`        | the `pyro` binary; default: `pyro` in the directory above this   |
//! |                   | example's (`target/debug/pyro` under cargo), else `pyro` on PATH |
//! | `PYRO_STATE_DIR`  | passed on to the server: where workspaces live                   |
//!
//! Each round: MCP `tools/list` -> Responses function tools with strict schemas
//! (`pyro::openai::responses_tool`, the same conversion the provider example uses);
//! `POST /responses`; each `function_call` -> MCP `tools/call` (strict arguments turned
//! back with `pyro::openai::from_strict_arguments`); the result (`structuredContent` as
//! JSON, else the text; for `isError` the error text) -> a `function_call_output` with the
//! call's `call_id`. The conversation is resent whole each round (no
//! `previous_response_id`), so it carries over the server restart unchanged.
//!
//! The process exits non-zero when the loop fails: the server cannot start, an HTTP
//! error, an answer that is not JSON, or more than `MAX_ROUNDS` rounds in one phase.

use anyhow::{bail, Context, Result};
use pyro::openai;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Model requests per phase before the example gives up.
const MAX_ROUNDS: usize = 12;
const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
const DEFAULT_MODEL: &str = "gpt-5-mini";
const DEFAULT_ONE_SHOT_TASK: &str = "Use a fresh debian:12 VM to find out which Linux \
    kernel release and which Python version it runs. Answer in one sentence.";
const DEFAULT_WORKSPACE_TASK: &str = "Now create a debian:12 workspace, write \
    notes/versions.txt with the kernel release and Python version you found, run \
    `cat notes/versions.txt` in it, show the diff against the starting point, then \
    delete the workspace. Tell me what the diff contained.";

type Client = RunningService<RoleClient, ()>;

/// The OpenAI side: endpoint, key and model.
struct Model {
    url: String,
    api_key: String,
    name: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let base_url = std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| DEFAULT_BASE_URL.into());
    let model = Model {
        url: format!("{}/responses", base_url.trim_end_matches('/')),
        api_key: std::env::var("OPENAI_API_KEY").context("OPENAI_API_KEY is not set")?,
        name: std::env::var("OPENAI_MODEL").unwrap_or_else(|_| DEFAULT_MODEL.into()),
    };
    let mut args = std::env::args().skip(1);
    let one_shot_task = args.next().unwrap_or_else(|| DEFAULT_ONE_SHOT_TASK.into());
    let workspace_task = args.next().unwrap_or_else(|| DEFAULT_WORKSPACE_TASK.into());
    let pyro = pyro_binary();
    eprintln!("[setup] model {}, POST {}, server {}", model.name, model.url, pyro.display());

    // One conversation for both phases: the agent keeps what it learned.
    let mut input: Vec<Value> = Vec::new();
    let phases = [("vm-run", one_shot_task), ("workspace-core", workspace_task)];
    for (profile, task) in phases {
        // Start (or restart) the MCP server with this phase's profile.
        let client = start_server(&pyro, profile).await?;
        input.push(json!({"role": "user", "content": task}));
        let answer = chat(&client, &model, profile, &mut input).await;
        // Stop the server before reporting, also when the phase failed.
        client.cancel().await.context("stopping the MCP server")?;
        println!("=== {profile} ===\n{}", answer?);
    }
    Ok(())
}

/// The `pyro` binary: `$PYRO_BIN`, else next to cargo's `examples/` directory, else PATH.
fn pyro_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PYRO_BIN") {
        return PathBuf::from(path);
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(|dir| dir.join("pyro")));
    match beside {
        Some(path) if path.is_file() => path,
        _ => PathBuf::from("pyro"),
    }
}

/// `pyro mcp serve --profile PROFILE` as a child process, initialized as an MCP client.
async fn start_server(pyro: &Path, profile: &str) -> Result<Client> {
    let mut command = tokio::process::Command::new(pyro);
    command.args(["mcp", "serve", "--no-project-source", "--profile", profile]);
    let transport = TokioChildProcess::new(command)
        .with_context(|| format!("starting {} mcp serve --profile {profile}", pyro.display()))?;
    let client = ().serve(transport).await.context("MCP initialize")?;
    eprintln!("[{profile}] server started");
    Ok(client)
}

/// Run the chat loop until the model answers without calling a tool.
async fn chat(
    client: &Client,
    model: &Model,
    profile: &str,
    input: &mut Vec<Value>,
) -> Result<String> {
    // MCP tools/list -> Responses function tools (strict), keeping each input schema to
    // turn the model's strict arguments back into the server's.
    let listed = client.list_all_tools().await.context("MCP tools/list")?;
    let mut schemas: Map<String, Value> = Map::new();
    let mut tools = Vec::new();
    for tool in &listed {
        let schema = Value::Object((*tool.input_schema).clone());
        let description = tool.description.as_deref().unwrap_or_default();
        tools.push(openai::responses_tool(&tool.name, description, &schema));
        schemas.insert(tool.name.to_string(), schema);
    }
    eprintln!(
        "[{profile}] {} tool(s): {}",
        tools.len(),
        listed.iter().map(|t| t.name.to_string()).collect::<Vec<_>>().join(", ")
    );

    for round in 1..=MAX_ROUNDS {
        let request = json!({"model": model.name, "input": input, "tools": tools});
        let response = post_json(model, request).await?;
        if let Some(error) = response.get("error").filter(|e| !e.is_null()) {
            bail!("the model returned an error: {error}");
        }
        match response.get("status").and_then(Value::as_str) {
            None | Some("completed") => {}
            Some(status) => bail!("response status is {status}: {response}"),
        }
        let output = response
            .get("output")
            .and_then(Value::as_array)
            .cloned()
            .context("the response has no `output` array")?;
        input.extend(output.iter().cloned());

        let calls: Vec<&Value> =
            output.iter().filter(|item| item["type"] == "function_call").collect();
        if calls.is_empty() {
            eprintln!("[{profile}] done after {round} round(s)");
            return Ok(output_text(&output));
        }
        for call in calls {
            let name = call["name"].as_str().context("function_call without a name")?;
            let call_id = call["call_id"].as_str().context("function_call without a call_id")?;
            let arguments = call["arguments"].as_str().unwrap_or("{}");
            eprintln!("[{profile} round {round}] {name} {arguments}");
            let text = match parse_arguments(&schemas, name, arguments) {
                Ok(args) => call_tool(client, name, args).await?,
                Err(message) => format!("error: {message}"),
            };
            eprintln!("[{profile} round {round}] {name} -> {}", preview(&text));
            input.push(json!({"type": "function_call_output", "call_id": call_id, "output": text}));
        }
    }
    bail!("profile {profile}: the model still wanted tools after {MAX_ROUNDS} rounds")
}

/// A `function_call`'s JSON arguments, made fit for the server's input schema. A tool the
/// server did not list only gets its nulls dropped; the server then refuses it with an
/// error naming the profile that has it.
fn parse_arguments(
    schemas: &Map<String, Value>,
    name: &str,
    arguments: &str,
) -> Result<Map<String, Value>, String> {
    let text = if arguments.trim().is_empty() { "{}" } else { arguments };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("the arguments of {name} are not valid JSON: {e}"))?;
    let schema = schemas.get(name).cloned().unwrap_or_else(|| json!({}));
    match openai::from_strict_arguments(&schema, value) {
        Value::Object(args) => Ok(args),
        _ => Err(format!("the arguments of {name} must be a JSON object")),
    }
}

/// MCP tools/call; the result as text for the model. Tool errors are text too; only a
/// broken connection to the server is an error here.
async fn call_tool(client: &Client, name: &str, args: Map<String, Value>) -> Result<String> {
    let params = CallToolRequestParams::new(name.to_string()).with_arguments(args);
    let result: CallToolResult = client.call_tool(params).await.context("MCP tools/call")?;
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    if result.is_error == Some(true) {
        return Ok(format!("error: {text}"));
    }
    Ok(match result.structured_content {
        Some(value) => value.to_string(),
        None => text,
    })
}

/// POST a JSON body to the Responses endpoint; any HTTP error status is an error.
async fn post_json(model: &Model, body: Value) -> Result<Value> {
    let url = model.url.clone();
    let auth = format!("Bearer {}", model.api_key);
    // ureq is a blocking client; keep it off the async worker threads.
    tokio::task::spawn_blocking(move || -> Result<Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(600)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .post(&url)
            .header("Authorization", &auth)
            .send_json(&body)
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .with_context(|| format!("reading the answer of POST {url}"))?;
        if !status.is_success() {
            bail!("POST {url}: HTTP {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {url}: the answer is not JSON"))
    })
    .await
    .context("the HTTP task failed")?
}

/// The text of the `message` items of a response.
fn output_text(output: &[Value]) -> String {
    output
        .iter()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().into_iter().flatten())
        .filter_map(|part| part["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn preview(text: &str) -> String {
    let one_line = text.replace('\n', " ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None => one_line,
    }
}
