//! A bare MCP client over `pyro mcp serve`'s stdio, for guest tests that need a
//! long-lived server process (its pid for RSS, pipelined requests for load).
#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A bare MCP client over `pyro mcp serve`'s stdio (newline-delimited JSON-RPC).
pub struct Mcp {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Mcp {
    /// Start `pyro mcp serve` (plus `extra` arguments) on `state` and initialize it.
    pub fn start(state: &Path, extra: &[&str]) -> Mcp {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pyro"))
            .env("PYRO_STATE_DIR", state)
            .args(["mcp", "serve", "--no-project-source"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mcp serve");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut mcp = Mcp { child, stdin, stdout, next_id: 1 };
        mcp.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "guest_hostile", "version": "0" }
            }),
        );
        mcp.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }));
        mcp
    }

    /// Write one message.
    pub fn send(&mut self, message: Value) {
        writeln!(self.stdin, "{message}").expect("write to mcp serve");
        self.stdin.flush().expect("flush");
    }

    /// Send a request and wait for its answer (other messages are skipped).
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).expect("read mcp serve");
            assert!(n > 0, "mcp serve closed its stdout");
            let message: Value = serde_json::from_str(&line).expect("json from mcp serve");
            if message.get("id") == Some(&json!(id)) {
                return message;
            }
        }
    }

    /// Call a tool: (is_error, text).
    pub fn tool(&mut self, name: &str, arguments: Value) -> (bool, String) {
        let answer = self.request("tools/call", json!({ "name": name, "arguments": arguments }));
        let result = &answer["result"];
        let text = result["content"][0]["text"].as_str().unwrap_or_default().to_owned();
        (result["isError"].as_bool().unwrap_or(false), text)
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mcp {
    /// Send a `tools/call` with id `id` without waiting.
    pub fn send_tool(&mut self, id: u64, name: &str, arguments: Value) {
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": name, "arguments": arguments } }));
    }

    /// Read the next message that carries an id.
    pub fn next_answer(&mut self) -> Value {
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).expect("read mcp serve");
            assert!(n > 0, "mcp serve closed its stdout");
            let message: Value = serde_json::from_str(&line).expect("json from mcp serve");
            if message.get("id").is_some() {
                return message;
            }
        }
    }
}
