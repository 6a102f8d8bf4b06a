//! The canonical provider tool-calling loop: an OpenAI Responses API model works in a
//! persistent pyro workspace through the `workspace-core` profile.
//!
//! ```text
//! export OPENAI_API_KEY=sk-...
//! cargo run --example openai_responses_workspace_core
//! cargo run --example openai_responses_workspace_core -- "Create a debian:12 workspace, ..."
//! ```
//!
//! Environment:
//!
//! | variable          | meaning                                                    |
//! |-------------------|------------------------------------------------------------|
//! | `OPENAI_API_KEY`  | required; sent as `Authorization: Bearer ...`              |
//! | `OPENAI_BASE_URL` | default `https://api.openai.com/v1`; `/responses` is added |
//! | `OPENAI_MODEL`    | default `gpt-5-mini`                                       |
//! | `PYRO_STATE_DIR`  | where pyro keeps workspaces (default `~/.local/share/pyro`)|
//!
//! The loop, step by step:
//!
//! 1. The tools come from pyro's contract: `openai::responses_tools(WorkspaceCore)` is the
//!    16 `workspace-core` tools as strict function tools (every parameter required,
//!    optional ones nullable, no free-form maps). Nothing is hand-written here.
//! 2. `POST $OPENAI_BASE_URL/responses` with the model, the conversation so far and the
//!    tools.
//! 3. Every `function_call` item in the answer is run through the same dispatcher as
//!    `pyro mcp serve --profile workspace-core` (`pyro::mcp::call_tool`): the strict
//!    arguments are turned back into pyro's (`null` = use the default), the tool runs in a
//!    real guest VM, and its JSON result goes back as a `function_call_output` with the
//!    same `call_id`. A failing tool, including a tool outside the profile, is not fatal:
//!    its error text goes back to the model, which can react to it.
//! 4. Repeat until the model answers without a function call; print that answer.
//!
//! Conversation state: this example resends the whole conversation each round (the
//! user's message, every item the model produced, every `function_call_output`). That
//! keeps the loop stateless on the server side and works with OpenAI-compatible servers
//! that do not store responses. The alternative is to send only the new
//! `function_call_output` items together with `previous_response_id`.
//!
//! The process exits non-zero when the loop itself fails: an HTTP error, an answer that
//! is not JSON, a failed response, or more than `MAX_ROUNDS` rounds.

use anyhow::{bail, Context, Result};
use pyro::{openai, Profile, Pyro};
use serde_json::{json, Value};
use std::time::Duration;

/// The profile the model gets. `workspace-core` is the recommended first profile for
/// chat hosts: persistent workspaces without shells, services, secrets or network policy.
const PROFILE: Profile = Profile::WorkspaceCore;
/// Model requests before the example gives up.
const MAX_ROUNDS: usize = 16;
const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
const DEFAULT_MODEL: &str = "gpt-5-mini";
const DEFAULT_TASK: &str = "Create a debian:12 workspace. Write src/hello.py that prints \
    'hello from the guest' and the Python version, run it with python3, show me the diff \
    of the workspace against its starting point, then delete the workspace. Tell me what \
    the program printed.";

#[tokio::main]
async fn main() -> Result<()> {
    // Configuration from the environment; the task is the first argument.
    let api_key = std::env::var("OPENAI_API_KEY").context("OPENAI_API_KEY is not set")?;
    let base_url = std::env::var("OPENAI_BASE_URL").unwrap_or_else(|_| DEFAULT_BASE_URL.into());
    let url = format!("{}/responses", base_url.trim_end_matches('/'));
    let model = std::env::var("OPENAI_MODEL").unwrap_or_else(|_| DEFAULT_MODEL.into());
    let task = std::env::args().nth(1).unwrap_or_else(|| DEFAULT_TASK.into());

    // Step 1: the SDK (reads PYRO_STATE_DIR / PYRO_CACHE_DIR) and the profile's tools.
    let pyro = Pyro::from_env();
    let tools = openai::responses_tools(PROFILE);
    eprintln!("[setup] model {model}, profile {PROFILE}, {} tools, POST {url}", tools.len());

    // The conversation: the user's task first; model output and tool results follow.
    let mut input = vec![json!({"role": "user", "content": task})];

    for round in 1..=MAX_ROUNDS {
        // Step 2: ask the model.
        let request = json!({"model": model, "input": input, "tools": tools});
        let response = post_json(&url, &api_key, request).await?;
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

        // Everything the model produced goes back into the conversation as it is
        // (messages, reasoning items and the function calls themselves).
        input.extend(output.iter().cloned());

        // Step 3: run each function call and answer it.
        let calls: Vec<&Value> =
            output.iter().filter(|item| item["type"] == "function_call").collect();
        if calls.is_empty() {
            // Step 4: no more tool calls, so this is the final answer.
            println!("{}", output_text(&output));
            eprintln!("[done] after {round} round(s)");
            return Ok(());
        }
        for call in calls {
            let name = call["name"].as_str().context("function_call without a name")?;
            let call_id = call["call_id"].as_str().context("function_call without a call_id")?;
            let arguments = call["arguments"].as_str().unwrap_or("{}");
            eprintln!("[round {round}] {name} {arguments}");
            let text = run_tool(&pyro, name, arguments).await;
            eprintln!("[round {round}] {name} -> {}", preview(&text));
            input.push(json!({"type": "function_call_output", "call_id": call_id, "output": text}));
        }
    }
    bail!("the model still wanted tools after {MAX_ROUNDS} rounds")
}

/// Run one tool call under `PROFILE`; the result (or the error) as text for the model.
async fn run_tool(pyro: &Pyro, name: &str, arguments: &str) -> String {
    // Strict arguments -> pyro arguments: nulls dropped, {key, value} lists -> maps.
    let args = match openai::tool_arguments(PROFILE, name, arguments) {
        Ok(args) => args,
        Err(message) => return format!("error: {message}"),
    };
    // The MCP server's dispatcher: checks the profile, validates, calls the SDK.
    match pyro::mcp::call_tool(pyro, PROFILE, name, args).await {
        Ok(result) => result.to_string(),
        Err(error) => format!("error: {error}"),
    }
}

/// POST a JSON body and parse the JSON answer; any HTTP error status is an error.
async fn post_json(url: &str, api_key: &str, body: Value) -> Result<Value> {
    let url = url.to_string();
    let auth = format!("Bearer {api_key}");
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
