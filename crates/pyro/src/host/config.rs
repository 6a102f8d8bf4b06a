//! Reading and writing the `pyro` entry of each host's config file.
//!
//! - Claude Code: JSON, `mcpServers.pyro = {"type": "stdio", "command", "args", "env"}`
//!   at the top level of `~/.claude.json` (the user scope `claude mcp add --scope user`
//!   writes).
//! - Codex: TOML, `[mcp_servers.pyro]` with `command` and `args`, edited with
//!   `toml_edit` so comments and the order of everything else survive.
//! - OpenCode: JSON, `mcp.pyro = {"type": "local", "command": [...], "enabled": true}`.

use super::{HostError, HostKind, ServeCommand};
use serde_json::{json, Map, Value};
use std::path::Path;

/// The `pyro` entry as a host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredServer {
    /// Program.
    pub command: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Other ways the entry is off (disabled, wrong type), one sentence each.
    pub problems: Vec<String>,
}

impl ConfiguredServer {
    /// Program and arguments.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.command.clone()).chain(self.args.iter().cloned()).collect()
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_json(path: &Path, text: &str) -> Result<Value, HostError> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| HostError::Parse {
        path: path.to_path_buf(),
        format: "JSON",
        message: e.to_string(),
    })?;
    if !value.is_object() {
        return Err(HostError::Parse {
            path: path.to_path_buf(),
            format: "JSON",
            message: "the top level is not an object".into(),
        });
    }
    Ok(value)
}

fn parse_toml(path: &Path, text: &str) -> Result<toml_edit::DocumentMut, HostError> {
    text.parse::<toml_edit::DocumentMut>().map_err(|e| HostError::Parse {
        path: path.to_path_buf(),
        format: "TOML",
        message: e.to_string().lines().next().unwrap_or("parse error").to_string(),
    })
}

/// The `pyro` entry in `path`, if the file and the entry exist.
pub fn read(host: HostKind, path: &Path) -> Result<Option<ConfiguredServer>, HostError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(HostError::Io { context: "could not read", path: path.into(), source: e })
        }
    };
    match host {
        HostKind::ClaudeCode => {
            let doc = parse_json(path, &text)?;
            let Some(entry) = doc.get("mcpServers").and_then(|m| m.get("pyro")) else {
                return Ok(None);
            };
            let mut problems = Vec::new();
            if let Some(kind) = entry.get("type").and_then(Value::as_str) {
                if kind != "stdio" {
                    problems.push(format!("type is `{kind}`, expected `stdio`"));
                }
            }
            Ok(Some(ConfiguredServer {
                command: entry.get("command").and_then(Value::as_str).unwrap_or_default().into(),
                args: strings(entry.get("args")),
                problems,
            }))
        }
        HostKind::Codex => {
            let doc = parse_toml(path, &text)?;
            let Some(entry) = doc.get("mcp_servers").and_then(|m| m.get("pyro")) else {
                return Ok(None);
            };
            let command = entry.get("command").and_then(|c| c.as_str()).unwrap_or_default();
            let args = entry
                .get("args")
                .and_then(|a| a.as_array())
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            let mut problems = Vec::new();
            if entry.get("enabled").and_then(|e| e.as_bool()) == Some(false) {
                problems.push("the entry is disabled (enabled = false)".into());
            }
            Ok(Some(ConfiguredServer { command: command.into(), args, problems }))
        }
        HostKind::OpenCode => {
            let doc = parse_json(path, &text)?;
            let Some(entry) = doc.get("mcp").and_then(|m| m.get("pyro")) else {
                return Ok(None);
            };
            let mut argv = strings(entry.get("command"));
            let command = if argv.is_empty() { String::new() } else { argv.remove(0) };
            let mut problems = Vec::new();
            if entry.get("type").and_then(Value::as_str) != Some("local") {
                problems.push("type is not `local`".into());
            }
            if entry.get("enabled").and_then(Value::as_bool) == Some(false) {
                problems.push("the entry is disabled (enabled: false)".into());
            }
            Ok(Some(ConfiguredServer { command, args: argv, problems }))
        }
    }
}

fn claude_entry(cmd: &ServeCommand, old: Option<&Value>) -> Value {
    let env = old.and_then(|o| o.get("env")).cloned().unwrap_or_else(|| json!({}));
    json!({"type": "stdio", "command": cmd.command, "args": cmd.args, "env": env})
}

fn opencode_entry(cmd: &ServeCommand, old: Option<&Value>) -> Value {
    let mut entry = old.and_then(Value::as_object).cloned().unwrap_or_default();
    entry.insert("type".into(), json!("local"));
    entry.insert("command".into(), json!(cmd.argv()));
    entry.insert("enabled".into(), json!(true));
    Value::Object(entry)
}

fn set_json(doc: &mut Value, section: &str, entry: impl FnOnce(Option<&Value>) -> Value) {
    let Some(root) = doc.as_object_mut() else { return };
    let servers = root.entry(section).or_insert_with(|| Value::Object(Map::new()));
    if !servers.is_object() {
        *servers = Value::Object(Map::new());
    }
    if let Some(map) = servers.as_object_mut() {
        let new = entry(map.get("pyro"));
        map.insert("pyro".into(), new);
    }
}

/// `old` (the file's text, if any) with the `pyro` entry set to `cmd`.
pub fn render(
    host: HostKind,
    path: &Path,
    old: Option<&str>,
    cmd: &ServeCommand,
) -> Result<String, HostError> {
    let old = old.unwrap_or_default();
    match host {
        HostKind::ClaudeCode | HostKind::OpenCode => {
            let mut doc = parse_json(path, old)?;
            if !old.trim().is_empty() {
                let spliced = if host == HostKind::ClaudeCode {
                    splice_json(old, "mcpServers", None, |o| claude_entry(cmd, o))
                } else {
                    let schema = ("$schema", json!("https://opencode.ai/config.json"));
                    splice_json(old, "mcp", Some(schema), |o| opencode_entry(cmd, o))
                };
                if let Some(text) = spliced {
                    return Ok(text);
                }
            }
            if host == HostKind::ClaudeCode {
                set_json(&mut doc, "mcpServers", |o| claude_entry(cmd, o));
            } else {
                if doc.get("$schema").is_none() {
                    if let Some(root) = doc.as_object_mut() {
                        root.insert("$schema".into(), json!("https://opencode.ai/config.json"));
                    }
                }
                set_json(&mut doc, "mcp", |o| opencode_entry(cmd, o));
            }
            let mut text = serde_json::to_string_pretty(&doc).map_err(|e| HostError::Parse {
                path: path.to_path_buf(),
                format: "JSON",
                message: e.to_string(),
            })?;
            text.push('\n');
            Ok(text)
        }
        HostKind::Codex => {
            let mut doc = parse_toml(path, old)?;
            let servers = doc.entry("mcp_servers").or_insert_with(|| {
                let mut t = toml_edit::Table::new();
                t.set_implicit(true);
                toml_edit::Item::Table(t)
            });
            let Some(servers) = servers.as_table_mut() else {
                return Err(HostError::Parse {
                    path: path.to_path_buf(),
                    format: "TOML",
                    message: "`mcp_servers` is not a table".into(),
                });
            };
            let entry = servers
                .entry("pyro")
                .or_insert_with(|| toml_edit::Item::Table(toml_edit::Table::new()));
            let Some(entry) = entry.as_table_mut() else {
                return Err(HostError::Parse {
                    path: path.to_path_buf(),
                    format: "TOML",
                    message: "`mcp_servers.pyro` is not a table".into(),
                });
            };
            entry.insert("command", toml_edit::value(cmd.command.as_str()));
            let mut args = toml_edit::Array::new();
            for a in &cmd.args {
                args.push(a.as_str());
            }
            entry.insert("args", toml_edit::value(args));
            if entry.get("enabled").and_then(|e| e.as_bool()) == Some(false) {
                entry.insert("enabled", toml_edit::value(true));
            }
            Ok(doc.to_string())
        }
    }
}

fn shell_quote(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A snippet to paste by hand.
pub fn snippet(host: HostKind, cmd: &ServeCommand) -> String {
    let argv: Vec<String> = cmd.argv().iter().map(|w| shell_quote(w)).collect();
    let pretty = |v: Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    match host {
        HostKind::ClaudeCode => format!(
            "# with the CLI:\nclaude mcp add --scope user pyro -- {}\n# or in ~/.claude.json:\n{}\n",
            argv.join(" "),
            pretty(json!({"mcpServers": {"pyro": claude_entry(cmd, None)}}))
        ),
        HostKind::Codex => {
            let rendered =
                render(HostKind::Codex, Path::new("config.toml"), None, cmd).unwrap_or_default();
            format!(
                "# with the CLI:\ncodex mcp add pyro -- {}\n# or in ~/.codex/config.toml:\n{rendered}",
                argv.join(" ")
            )
        }
        HostKind::OpenCode => format!(
            "{}\n",
            pretty(json!({
                "$schema": "https://opencode.ai/config.json",
                "mcp": {"pyro": opencode_entry(cmd, None)}
            }))
        ),
    }
}

/// A JSON object read with its keys in file order and each value's text untouched, so a
/// rewrite changes only the entry it means to change.
///
/// Hand-written rather than turning on serde_json's `preserve_order` for the whole
/// workspace, which would change the key order of every JSON document pyro emits.
struct OrderedObject(Vec<(String, Box<serde_json::value::RawValue>)>);

impl<'de> serde::Deserialize<'de> for OrderedObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedObject, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) =
                    map.next_entry::<String, Box<serde_json::value::RawValue>>()?
                {
                    entries.push((k, v));
                }
                Ok(OrderedObject(entries))
            }
        }
        d.deserialize_map(Visit)
    }
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { l.to_string() } else { format!("{pad}{l}") })
        .collect::<Vec<_>>()
        .join("\n")
}

fn write_object(entries: &[(String, String)], depth: usize) -> String {
    if entries.is_empty() {
        return "{}".into();
    }
    let pad = " ".repeat(2 * (depth + 1));
    let body: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{pad}{}: {v}", serde_json::Value::String(k.clone())))
        .collect();
    format!("{{\n{}\n{}}}", body.join(",\n"), " ".repeat(2 * depth))
}

/// `old` with `section.pyro` set to `entry(old pyro entry)`, keeping the order and text
/// of everything else. `None` when `old` is not an object the ordered reader accepts.
fn splice_json(
    old: &str,
    section: &str,
    front: Option<(&str, Value)>,
    entry: impl FnOnce(Option<&Value>) -> Value,
) -> Option<String> {
    let top: OrderedObject = serde_json::from_str(old).ok()?;
    let mut out: Vec<(String, String)> =
        top.0.iter().map(|(k, v)| (k.clone(), v.get().to_string())).collect();
    if let Some((key, value)) = front {
        if !out.iter().any(|(k, _)| k == key) {
            out.insert(0, (key.to_string(), value.to_string()));
        }
    }
    let servers_raw = top.0.iter().find(|(k, _)| k == section).map(|(_, v)| v.get());
    let mut servers: Vec<(String, String)> = servers_raw
        .and_then(|raw| serde_json::from_str::<OrderedObject>(raw).ok())
        .map(|o| o.0.into_iter().map(|(k, v)| (k, v.get().to_string())).collect())
        .unwrap_or_default();
    let old_entry: Option<Value> = servers
        .iter()
        .find(|(k, _)| k == "pyro")
        .and_then(|(_, raw)| serde_json::from_str(raw).ok());
    let new_entry = indent(&serde_json::to_string_pretty(&entry(old_entry.as_ref())).ok()?, 4);
    match servers.iter_mut().find(|(k, _)| k == "pyro") {
        Some(slot) => slot.1 = new_entry,
        None => servers.push(("pyro".into(), new_entry)),
    }
    let section_text = write_object(&servers, 1);
    match out.iter_mut().find(|(k, _)| k == section) {
        Some(slot) => slot.1 = section_text,
        None => out.push((section.to_string(), section_text)),
    }
    let text = write_object(&out, 0) + "\n";
    // Never write what does not parse back.
    serde_json::from_str::<Value>(&text).ok()?;
    Some(text)
}
