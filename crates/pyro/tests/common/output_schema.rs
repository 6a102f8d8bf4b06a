//! One check for every test that sees a tool's answer: its `structuredContent` (a result,
//! or the error envelope `{"error": {...}}`) against the tool's `outputSchema`, with the
//! `jsonschema` crate. `rmcp_call.rs` applies it to every call over a real MCP client;
//! `chat_flows.rs` to what the examples hand the model.
#![allow(dead_code)]

use serde_json::Value;

/// What is wrong with `value` against `schema` (empty when it validates).
pub fn problems(schema: &Value, value: &Value) -> Vec<String> {
    match jsonschema::validator_for(schema) {
        Ok(validator) => {
            validator.iter_errors(value).map(|e| format!("{e} at {}", e.instance_path())).collect()
        }
        Err(e) => vec![format!("the schema does not compile: {e}")],
    }
}

/// What is wrong with `value` against the contract's `outputSchema` of tool `name`.
pub fn contract_problems(name: &str, value: &Value) -> Vec<String> {
    match pyro_contract::tool(name) {
        Some(spec) => problems(&(spec.output_schema)(), value),
        None => problems(&pyro_contract::ErrorReport::envelope_schema(), value),
    }
}
