//! Provider tool calling: pyro's tools as OpenAI Responses API function tools with
//! strict JSON schemas, and the way back from a model's strict arguments to pyro's.
//!
//! Strict mode (`"strict": true`) makes the model's arguments always match the schema,
//! but it accepts only a subset of JSON Schema:
//!
//! - every object lists *all* its properties in `required` and says
//!   `"additionalProperties": false`;
//! - an optional value is expressed as nullable (`"type": ["integer", "null"]`);
//! - keywords such as `default`, `format`, `minimum` and `title` are not allowed, and
//!   neither are free-form maps.
//!
//! [`strict_schema`] rewrites one of pyro's input schemas (the contract's, or a
//! `tools/list` schema from `pyro mcp serve`, which is the same) into that form:
//!
//! - `$ref`s are inlined and `$defs` dropped;
//! - a `oneOf` of constants (an enum such as `network_policy`) becomes `enum`, any
//!   other `oneOf` becomes `anyOf`;
//! - each optional property becomes required and nullable; its default moves into the
//!   description (`Default: 1024.`), because `null` means "use the default";
//! - a map (such as `labels`) becomes a list of `{"key", "value"}` objects;
//! - ranges (`minimum`/`maximum`), `pattern` and `examples` move into the description
//!   (`Range: 1-8.`), so the limits the MCP schema declares still reach the model;
//! - every other keyword is dropped.
//!
//! [`from_strict_arguments`] undoes this for one call: it drops `null`s (so pyro applies
//! its defaults) and turns `{"key", "value"}` lists back into maps.
//!
//! ```
//! use pyro_contract::{openai, Profile};
//! let tools = openai::responses_tools(Profile::WorkspaceCore);
//! assert_eq!(tools.len(), 17);
//! assert_eq!(tools[0]["name"], "vm_run");
//! assert_eq!(tools[0]["strict"], true);
//!
//! // A strict model must send every argument; null means "not given".
//! let args = openai::tool_arguments(
//!     Profile::WorkspaceCore,
//!     "workspace_create",
//!     r#"{"environment": "debian:12", "vcpu_count": null, "mem_mib": null,
//!         "ttl_seconds": null, "allow_host_compat": null, "seed_path": null,
//!         "name": "demo", "labels": [{"key": "team", "value": "infra"}]}"#,
//! )
//! .unwrap();
//! assert_eq!(
//!     serde_json::Value::Object(args),
//!     serde_json::json!({"environment": "debian:12", "name": "demo", "labels": {"team": "infra"}})
//! );
//! ```

use crate::profile::Profile;
use crate::tools::{tool, tools_for};
use serde_json::{json, Map, Value};

/// How deep `$ref`s and nesting are followed before giving up (pyro's schemas are
/// not recursive; this only guards against a hostile schema).
const MAX_DEPTH: usize = 32;

/// The tools `profile` exposes, as Responses API function tools (`"type": "function"`,
/// `"strict": true`), in `tools/list` order.
pub fn responses_tools(profile: Profile) -> Vec<Value> {
    tools_for(profile)
        .map(|t| responses_tool(t.name, t.description, &t.schema_for(profile)))
        .collect()
}

/// One Responses API function tool with a strict schema made from `input_schema`.
pub fn responses_tool(name: &str, description: &str, input_schema: &Value) -> Value {
    json!({
        "type": "function",
        "name": name,
        "description": description,
        "parameters": strict_schema(input_schema),
        "strict": true,
    })
}

/// `input_schema` rewritten for strict mode (see the module documentation).
pub fn strict_schema(input_schema: &Value) -> Value {
    let defs = definitions(input_schema);
    let mut root = convert(input_schema, &defs, 0);
    // The tool's own description says what it does; the parameter type's doc comment
    // (`VmRunParams`, ...) is written for Rust readers.
    root.remove("description");
    // The parameters of a function are always an object, even an empty one.
    if !root.contains_key("type") {
        root.insert("type".into(), json!("object"));
    }
    if root.get("type") == Some(&json!("object")) {
        root.entry("properties").or_insert_with(|| json!({}));
        root.entry("required").or_insert_with(|| json!([]));
        root.insert("additionalProperties".into(), json!(false));
    }
    Value::Object(root)
}

/// A model's arguments under [`strict_schema`]`(input_schema)` turned back into pyro's
/// arguments for `input_schema`: `null`s are dropped (pyro applies its defaults) and
/// `{"key", "value"}` lists become maps again. Values that do not fit the schema are
/// passed through unchanged, so pyro reports them.
pub fn from_strict_arguments(input_schema: &Value, arguments: Value) -> Value {
    let defs = definitions(input_schema);
    restore(arguments, Some(input_schema), &defs, 0)
}

/// Parse a `function_call`'s `arguments` (a JSON text) for tool `name` and turn them into
/// pyro's arguments with [`from_strict_arguments`], using the schema `profile` exposes.
/// A tool outside the profile uses its `workspace-full` schema (pyro's dispatcher then
/// refuses the call with a message naming the profile that has it); an unknown tool
/// only has its `null`s dropped.
pub fn tool_arguments(
    profile: Profile,
    name: &str,
    arguments: &str,
) -> Result<Map<String, Value>, String> {
    let text = if arguments.trim().is_empty() { "{}" } else { arguments };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| format!("the arguments of {name} are not valid JSON: {e}"))?;
    if !value.is_object() {
        return Err(format!("the arguments of {name} must be a JSON object"));
    }
    let schema = match tool(name) {
        Some(spec) if spec.in_profile(profile) => spec.schema_for(profile),
        Some(spec) => spec.schema_for(Profile::WorkspaceFull),
        None => json!({}),
    };
    match from_strict_arguments(&schema, value) {
        Value::Object(map) => Ok(map),
        _ => Err(format!("the arguments of {name} must be a JSON object")),
    }
}

fn definitions(schema: &Value) -> Map<String, Value> {
    let mut defs = Map::new();
    for key in ["$defs", "definitions"] {
        if let Some(Value::Object(map)) = schema.get(key) {
            defs.extend(map.iter().map(|(k, v)| (format!("#/{key}/{k}"), v.clone())));
        }
    }
    defs
}

/// `node` with its `$ref` (if any) replaced by the definition, the node's own keywords
/// (such as `description`) taking precedence.
fn resolve(node: &Value, defs: &Map<String, Value>) -> Value {
    let mut node = node.clone();
    for _ in 0..MAX_DEPTH {
        let Some(Value::String(target)) = node.get("$ref").cloned() else { break };
        let mut merged = match defs.get(&target) {
            Some(Value::Object(def)) => def.clone(),
            _ => Map::new(),
        };
        if let Value::Object(own) = &node {
            for (k, v) in own {
                if k != "$ref" {
                    merged.insert(k.clone(), v.clone());
                }
            }
        }
        node = Value::Object(merged);
    }
    node
}

fn types_of(node: &Value) -> Vec<String> {
    match node.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().filter_map(|t| t.as_str().map(String::from)).collect(),
        _ => Vec::new(),
    }
}

/// A free-form map: an object whose values follow `additionalProperties` and that
/// declares no properties of its own (for example `labels`).
fn map_value_schema(node: &Value) -> Option<&Value> {
    let is_object = types_of(node).iter().any(|t| t == "object");
    let has_properties =
        node.get("properties").and_then(Value::as_object).is_some_and(|p| !p.is_empty());
    match node.get("additionalProperties") {
        Some(value @ Value::Object(_)) if is_object && !has_properties => Some(value),
        _ => None,
    }
}

fn convert(node: &Value, defs: &Map<String, Value>, depth: usize) -> Map<String, Value> {
    let mut out = Map::new();
    if depth > MAX_DEPTH {
        return out;
    }
    let node = resolve(node, defs);
    let description = described_limits(&node);
    if !description.is_empty() {
        out.insert("description".into(), json!(description));
    }

    // Alternatives: an enum written as `oneOf` of constants, or real alternatives.
    let alternatives = node.get("oneOf").or_else(|| node.get("anyOf")).and_then(Value::as_array);
    if let Some(alternatives) = alternatives {
        let resolved: Vec<Value> = alternatives.iter().map(|a| resolve(a, defs)).collect();
        let constants: Option<Vec<Value>> = resolved
            .iter()
            .map(|a| match (a.get("const"), a.get("enum").and_then(Value::as_array)) {
                (Some(c), _) => Some(vec![c.clone()]),
                (None, Some(e)) => Some(e.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(|lists| lists.into_iter().flatten().collect());
        let all_strings =
            constants.as_ref().is_some_and(|c| !c.is_empty() && c.iter().all(Value::is_string));
        if let (Some(constants), true) = (constants, all_strings) {
            out.insert("type".into(), json!("string"));
            out.insert("enum".into(), Value::Array(constants));
        } else {
            let converted =
                resolved.iter().map(|a| Value::Object(convert(a, defs, depth + 1))).collect();
            out.insert("anyOf".into(), Value::Array(converted));
        }
        return out;
    }

    if let Some(value_schema) = map_value_schema(&node) {
        let nullable = types_of(&node).iter().any(|t| t == "null");
        let entry = json!({
            "type": "object",
            "properties": {
                "key": {"type": "string"},
                "value": Value::Object(convert(value_schema, defs, depth + 1)),
            },
            "required": ["key", "value"],
            "additionalProperties": false,
        });
        let described = match out.get("description").and_then(Value::as_str) {
            Some(d) => format!("{d} A list of {{key, value}} pairs."),
            None => "A list of {key, value} pairs.".to_string(),
        };
        out.insert("description".into(), json!(described));
        out.insert("type".into(), if nullable { json!(["array", "null"]) } else { json!("array") });
        out.insert("items".into(), entry);
        return out;
    }

    if let Some(constant) = node.get("const") {
        out.insert("enum".into(), json!([constant]));
    }
    if let Some(values) = node.get("enum") {
        out.insert("enum".into(), values.clone());
    }
    if let Some(t) = node.get("type") {
        out.insert("type".into(), t.clone());
    }
    let types = types_of(&node);
    if types.iter().any(|t| t == "object") || node.get("properties").is_some() {
        if !out.contains_key("type") {
            out.insert("type".into(), json!("object"));
        }
        let required: Vec<&str> = node
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut properties = Map::new();
        if let Some(Value::Object(props)) = node.get("properties") {
            for (name, prop) in props {
                let mut converted = convert(prop, defs, depth + 1);
                if !required.contains(&name.as_str()) {
                    let default = resolve(prop, defs).get("default").cloned();
                    converted = optional(converted, default);
                }
                properties.insert(name.clone(), Value::Object(converted));
            }
        }
        let names: Vec<Value> = properties.keys().map(|k| json!(k)).collect();
        out.insert("properties".into(), Value::Object(properties));
        out.insert("required".into(), Value::Array(names));
        out.insert("additionalProperties".into(), json!(false));
    }
    if types.iter().any(|t| t == "array") {
        if let Some(items) = node.get("items") {
            out.insert("items".into(), Value::Object(convert(items, defs, depth + 1)));
        }
    }
    out
}

/// The node's description followed by what strict mode cannot declare: its range
/// (`Range: 1-8.`), pattern and examples, so a model still learns the limits.
fn described_limits(node: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(d) = node.get("description").and_then(Value::as_str).filter(|d| !d.is_empty()) {
        parts.push(d.to_string());
    }
    match (node.get("minimum"), node.get("maximum")) {
        (Some(min), Some(max)) => parts.push(format!("Range: {min}-{max}.")),
        (Some(min), None) => parts.push(format!("At least {min}.")),
        (None, Some(max)) => parts.push(format!("At most {max}.")),
        (None, None) => {}
    }
    if let Some(pattern) = node.get("pattern").and_then(Value::as_str) {
        parts.push(format!("Pattern: {pattern}"));
    }
    if let Some(Value::Array(examples)) = node.get("examples") {
        let shown: Vec<String> = examples
            .iter()
            .map(|e| e.as_str().map(String::from).unwrap_or(e.to_string()))
            .collect();
        if !shown.is_empty() {
            parts.push(format!("e.g. {}.", shown.join(", ")));
        }
    }
    parts.join(" ")
}

/// Make a converted property nullable and move its default into the description.
fn optional(mut schema: Map<String, Value>, default: Option<Value>) -> Map<String, Value> {
    if let Some(default) = default.filter(|d| !d.is_null()) {
        let note = format!("Default: {default}.");
        let described = match schema.get("description").and_then(Value::as_str) {
            Some(d) if !d.is_empty() => format!("{d} {note}"),
            _ => note,
        };
        schema.insert("description".into(), json!(described));
    }
    if let Some(Value::Array(alternatives)) = schema.get_mut("anyOf") {
        if !alternatives.iter().any(|a| a.get("type") == Some(&json!("null"))) {
            alternatives.push(json!({"type": "null"}));
        }
        return schema;
    }
    match schema.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = t.clone();
            schema.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(ts)) if !ts.contains(&json!("null")) => ts.push(json!("null")),
        Some(_) => {}
        None => {
            let description = schema.remove("description");
            let mut wrapped = Map::new();
            if let Some(d) = description {
                wrapped.insert("description".into(), d);
            }
            wrapped.insert("anyOf".into(), json!([Value::Object(schema), {"type": "null"}]));
            return wrapped;
        }
    }
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        if !values.contains(&Value::Null) {
            values.push(Value::Null);
        }
    }
    schema
}

/// The schema (among `anyOf`/`oneOf` alternatives) that describes `value`'s kind.
fn schema_for_value(
    schema: Option<&Value>,
    value: &Value,
    defs: &Map<String, Value>,
) -> Option<Value> {
    let schema = resolve(schema?, defs);
    let alternatives =
        schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Value::as_array);
    let Some(alternatives) = alternatives else { return Some(schema) };
    let kind = match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        _ => return None,
    };
    alternatives.iter().map(|a| resolve(a, defs)).find(|a| {
        types_of(a).iter().any(|t| t == kind) || (kind == "array" && map_value_schema(a).is_some())
    })
}

fn restore(value: Value, schema: Option<&Value>, defs: &Map<String, Value>, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return value;
    }
    let schema = schema_for_value(schema, &value, defs);
    match value {
        Value::Object(map) => {
            let props = schema.as_ref().and_then(|s| s.get("properties"));
            let restored = map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let prop = props.and_then(|p| p.get(&k));
                    let v = restore(v, prop, defs, depth + 1);
                    (k, v)
                })
                .collect();
            Value::Object(restored)
        }
        Value::Array(items) => {
            let map_values = schema.as_ref().and_then(map_value_schema).cloned();
            let pairs = items.iter().all(|item| {
                item.as_object().is_some_and(|o| {
                    o.len() == 2
                        && o.get("key").is_some_and(Value::is_string)
                        && o.contains_key("value")
                })
            });
            match map_values {
                Some(value_schema) if pairs => {
                    let mut map = Map::new();
                    for item in items {
                        if let Value::Object(mut o) = item {
                            let key = o.remove("key").and_then(|k| k.as_str().map(String::from));
                            let v = o.remove("value").unwrap_or(Value::Null);
                            if let Some(key) = key {
                                map.insert(key, restore(v, Some(&value_schema), defs, depth + 1));
                            }
                        }
                    }
                    Value::Object(map)
                }
                _ => {
                    let item_schema = schema.as_ref().and_then(|s| s.get("items")).cloned();
                    Value::Array(
                        items
                            .into_iter()
                            .map(|item| restore(item, item_schema.as_ref(), defs, depth + 1))
                            .collect(),
                    )
                }
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::*;
    use crate::TOOLS;

    /// What strict mode demands of a schema, checked independently of the conversion.
    fn violations(schema: &Value, path: &str, out: &mut Vec<String>) {
        let Some(obj) = schema.as_object() else {
            out.push(format!("{path}: not an object"));
            return;
        };
        for key in obj.keys() {
            let allowed = [
                "type",
                "description",
                "properties",
                "required",
                "additionalProperties",
                "items",
                "enum",
                "anyOf",
            ];
            if !allowed.contains(&key.as_str()) {
                out.push(format!("{path}: keyword {key} is not allowed"));
            }
        }
        let is_object = match obj.get("type") {
            Some(Value::String(t)) => t == "object",
            Some(Value::Array(ts)) => ts.contains(&json!("object")),
            _ => false,
        };
        if is_object {
            if obj.get("additionalProperties") != Some(&json!(false)) {
                out.push(format!("{path}: additionalProperties is not false"));
            }
            let props = obj.get("properties").and_then(Value::as_object);
            let required: Vec<&str> = obj
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for (name, prop) in props.into_iter().flatten() {
                if !required.contains(&name.as_str()) {
                    out.push(format!("{path}.{name}: not required"));
                }
                violations(prop, &format!("{path}.{name}"), out);
            }
        }
        if let Some(items) = obj.get("items") {
            violations(items, &format!("{path}[]"), out);
        }
        for (i, alt) in obj.get("anyOf").and_then(Value::as_array).into_iter().flatten().enumerate()
        {
            violations(alt, &format!("{path}|{i}"), out);
        }
    }

    fn accepts_null(schema: &Value) -> bool {
        match schema.get("type") {
            Some(Value::Array(ts)) => ts.contains(&json!("null")),
            Some(Value::String(t)) => t == "null",
            _ => schema["anyOf"].as_array().is_some_and(|a| a.iter().any(accepts_null)),
        }
    }

    #[test]
    fn every_tool_in_every_profile_converts_to_a_strict_schema() {
        for profile in Profile::ALL {
            for t in TOOLS.iter().filter(|t| t.in_profile(profile)) {
                let original = t.schema_for(profile);
                let strict = strict_schema(&original);
                let mut found = Vec::new();
                violations(&strict, t.name, &mut found);
                assert!(found.is_empty(), "{profile} {}: {found:?}\n{strict:#}", t.name);
                assert_eq!(strict["type"], "object");
                // Required parameters stay non-null; optional ones accept null.
                let required = original["required"].as_array().cloned().unwrap_or_default();
                for (name, prop) in strict["properties"].as_object().expect("properties") {
                    let is_required = required.contains(&json!(name));
                    assert_eq!(accepts_null(prop), !is_required, "{} {name}: {prop}", t.name);
                }
                assert_eq!(
                    strict["properties"].as_object().expect("props").len(),
                    original["properties"].as_object().expect("props").len(),
                    "{}",
                    t.name
                );
            }
        }
    }

    #[test]
    fn responses_tools_follow_the_profile() {
        for profile in Profile::ALL {
            let tools = responses_tools(profile);
            let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
            let expected: Vec<&str> = tools_for(profile).map(|t| t.name).collect();
            assert_eq!(names, expected);
            for t in &tools {
                assert_eq!(t["type"], "function");
                assert_eq!(t["strict"], true);
                assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()));
            }
        }
    }

    #[test]
    fn defaults_move_into_descriptions_and_enums_and_maps_are_rewritten() {
        let full = strict_schema(
            &tool("workspace_create").expect("tool").schema_for(Profile::WorkspaceFull),
        );
        let p = &full["properties"];
        assert_eq!(p["mem_mib"]["type"], json!(["integer", "null"]));
        assert_eq!(p["mem_mib"]["description"], "Range: 256-32768. Default: 1024.");
        assert_eq!(p["environment"]["description"], "e.g. debian:12.");
        assert_eq!(p["network_policy"]["type"], json!(["string", "null"]));
        assert_eq!(
            p["network_policy"]["enum"],
            json!(["off", "egress", "egress+published-ports", null])
        );
        assert!(p["network_policy"]["description"]
            .as_str()
            .expect("d")
            .contains("Default: \"off\"."));
        assert_eq!(p["labels"]["type"], json!(["array", "null"]));
        assert_eq!(p["labels"]["items"]["required"], json!(["key", "value"]));
        assert_eq!(p["secrets"]["items"]["additionalProperties"], false);
        assert_eq!(p["secrets"]["items"]["properties"]["value"]["type"], json!(["string", "null"]));
        assert_eq!(p["environment"]["type"], "string");
        let text = full.to_string();
        for word in ["$ref", "$defs", "oneOf", "\"default\"", "\"format\"", "minimum", "title"] {
            assert!(!text.contains(word), "{word} left in {text}");
        }
    }

    #[test]
    fn strict_arguments_come_back_as_pyro_arguments() {
        let args = tool_arguments(
            Profile::WorkspaceFull,
            "workspace_create",
            r#"{"environment": "debian:12", "vcpu_count": 2, "mem_mib": null, "ttl_seconds": null,
                "network_policy": "egress", "allow_host_compat": null, "seed_path": null,
                "secrets": [{"name": "TOKEN", "value": "x", "file_path": null}],
                "name": null, "labels": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]}"#,
        )
        .expect("args");
        let params: WorkspaceCreateParams =
            serde_json::from_value(Value::Object(args)).expect("pyro accepts them");
        assert_eq!(params.vcpu_count, 2);
        assert_eq!(params.mem_mib, DEFAULT_MEM_MIB);
        assert_eq!(params.network_policy, NetworkPolicy::Egress);
        assert_eq!(params.secrets.expect("secrets")[0].value.as_deref(), Some("x"));
        let labels = params.labels.expect("labels");
        assert_eq!(labels.get("b").map(String::as_str), Some("2"));

        let args = tool_arguments(
            Profile::WorkspaceFull,
            "service_start",
            r#"{"workspace_id": "w", "service_name": "s", "command": "c", "cwd": null,
                "ready_file": null, "ready_tcp": null, "ready_http": null, "ready_command": null,
                "ready_timeout_seconds": null, "ready_interval_ms": null, "secret_env": [],
                "published_ports": [{"guest_port": 80, "host_port": null}]}"#,
        )
        .expect("args");
        let params: ServiceStartParams =
            serde_json::from_value(Value::Object(args)).expect("pyro accepts them");
        assert_eq!(params.published_ports.expect("ports")[0].host_port, None);
        assert_eq!(params.secret_env, Some(Default::default()));
        assert_eq!(params.cwd, WORKSPACE_PATH);
    }

    #[test]
    fn bad_arguments_and_unknown_tools() {
        let err =
            tool_arguments(Profile::WorkspaceCore, "workspace_list", "{not json").expect_err("bad");
        assert!(err.contains("not valid JSON"), "{err}");
        let err =
            tool_arguments(Profile::WorkspaceCore, "workspace_list", "[1]").expect_err("array");
        assert!(err.contains("JSON object"), "{err}");
        assert_eq!(
            tool_arguments(Profile::WorkspaceCore, "workspace_list", "").expect("empty"),
            Map::new()
        );
        let args = tool_arguments(
            Profile::VmRun,
            "nope",
            r#"{"a": null, "b": [{"key": "k", "value": 1}]}"#,
        )
        .expect("unknown tool passes through");
        assert_eq!(Value::Object(args), json!({"b": [{"key": "k", "value": 1}]}));
        // A tool outside the profile keeps its full schema, so pyro can name the profile.
        let args = tool_arguments(
            Profile::WorkspaceCore,
            "shell_open",
            r#"{"workspace_id": "w", "cols": null}"#,
        )
        .expect("args");
        assert_eq!(Value::Object(args), json!({"workspace_id": "w"}));
    }
}
