//! Every tool declares an `outputSchema` made from its result type: a valid JSON Schema
//! whose root is an object, that accepts the error envelope `{"error": {...}}` too (MCP
//! clients validate `structuredContent` of error results against it), and that types
//! the fixed vocabularies as enums. The real results of every tool are validated
//! against these schemas in pyro's MCP tests (`tests/common/rmcp_call.rs`).

use pyro_contract::{ErrorKind, ErrorReport, ToolError, ToolName, TOOLS};
use serde_json::{json, Value};

fn validator(name: &str) -> jsonschema::Validator {
    let spec = pyro_contract::tool(name).expect("tool");
    jsonschema::validator_for(&(spec.output_schema)())
        .unwrap_or_else(|e| panic!("{name}: outputSchema is not a valid schema: {e}"))
}

#[test]
fn every_tool_declares_a_valid_object_output_schema_that_admits_errors() {
    let error = serde_json::to_value(ToolError {
        error: ErrorReport::new(ErrorKind::NotFound, "workspace 'x' does not exist")
            .with_hint("list them"),
    })
    .expect("json");
    for t in TOOLS {
        let schema = (t.output_schema)();
        assert_eq!(schema["type"], "object", "{}: root must be an object", t.name);
        assert!(!schema.to_string().contains("\"title\""), "{}: titles left", t.name);
        let v = validator(t.name);
        assert!(v.is_valid(&error), "{}: the error envelope does not validate", t.name);
        assert!(!v.is_valid(&json!({"error": {"kind": "no_such_kind", "message": "x"}})));
        assert!(!v.is_valid(&json!({})), "{}: an empty object validates", t.name);
    }
}

#[test]
fn the_tool_name_enum_follows_the_table() {
    assert_eq!(ToolName::ALL.len(), TOOLS.len());
    for (tool, spec) in ToolName::ALL.iter().zip(TOOLS) {
        assert_eq!(tool.name(), spec.name);
        assert_eq!(ToolName::from_name(spec.name), Some(*tool));
        assert_eq!(tool.spec().name, spec.name);
    }
    assert_eq!(ToolName::from_name("no_such_tool"), None);
}

/// The schema node at `path` (object keys), following `$ref`s into `$defs`.
fn at<'a>(root: &'a Value, schema: &'a Value, path: &[&str]) -> &'a Value {
    let mut node = schema;
    for key in path {
        while let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().expect("ref");
            node = &root["$defs"][name];
        }
        node = &node[*key];
    }
    while let Some(r) = node.get("$ref").and_then(Value::as_str) {
        node = &root["$defs"][r.rsplit('/').next().expect("ref")];
    }
    node
}

#[test]
fn fixed_vocabularies_are_enums() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("vm_run", &["properties", "cleanup", "properties", "reason"], &["post_exec_cleanup"]),
        ("vm_run", &["properties", "execution_mode"], &["guest", "host_compat"]),
        ("vm_run", &["properties", "accel"], &["kvm", "tcg"]),
        ("vm_run", &["properties", "metadata", "properties", "boot"], &["clone", "cold"]),
        ("workspace_status", &["properties", "state"], &["started", "stopped"]),
        ("workspace_status", &["properties", "network_policy"], &["off", "egress"]),
        ("workspace_status", &["properties", "workspace_seed", "properties", "mode"], &["empty"]),
        (
            "workspace_diff",
            &["properties", "entries", "items", "properties", "status"],
            &["type_changed"],
        ),
        (
            "snapshot_list",
            &["properties", "snapshots", "items", "properties", "kind"],
            &["baseline", "named"],
        ),
        ("workspace_summary", &["properties", "outcome"], &["no_commands", "passed", "failed"]),
        ("service_status", &["properties", "state"], &["running", "failed"]),
        ("service_status", &["properties", "stop_reason"], &["readiness_timeout", "sigkill"]),
        ("shell_signal", &["properties", "signal"], &["HUP", "KILL"]),
        ("vm_network_info", &["properties", "network_mode"], &["user"]),
    ];
    for (name, path, values) in cases {
        let root = (pyro_contract::tool(name).expect("tool").output_schema)();
        let result = &root["anyOf"][0];
        let node = at(&root, result, path);
        let text = node.to_string();
        for value in *values {
            assert!(
                text.contains(&format!("\"{value}\"")),
                "{name} {path:?}: {value} not in {text}"
            );
        }
        let closed = node.get("enum").is_some()
            || node.get("oneOf").and_then(Value::as_array).is_some_and(|alts| {
                alts.iter().all(|a| a.get("const").is_some() || a.get("enum").is_some())
            });
        assert!(closed, "{name} {path:?} is not an enum: {text}");
    }
}

#[test]
fn a_value_outside_a_vocabulary_fails_validation() {
    let v = validator("workspace_delete");
    let good =
        json!({"workspace_id": "0123456789ab", "deleted": true, "reason": "explicit_delete"});
    assert!(v.is_valid(&good));
    let bad = json!({"workspace_id": "0123456789ab", "deleted": true, "reason": "because"});
    assert!(!v.is_valid(&bad));
}
