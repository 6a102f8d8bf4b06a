//! docs/profiles.md lists each profile's tools in a block generated from the contract.
//! This test fails when the block and the contract differ; run it with `UPDATE_DOCS=1`
//! to rewrite the block:
//!
//! ```sh
//! UPDATE_DOCS=1 cargo test -p pyro-contract --test docs_profiles
//! ```
//!
//! The same text (`Profile::instructions`) is what `pyro --help`, `pyro mcp serve --help`
//! and the MCP server's `instructions` show, so the docs and the help cannot drift apart.

use pyro_contract::{tools_for, Mode, Profile, Surface, ToolSpec};
use std::path::PathBuf;

const BEGIN: &str = "<!-- BEGIN GENERATED profile-tools: edit crates/pyro-contract, then run \
                     `UPDATE_DOCS=1 cargo test -p pyro-contract --test docs_profiles` -->";
const END: &str = "<!-- END GENERATED profile-tools -->";

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/profiles.md")
}

fn property_names(spec: &ToolSpec, profile: Profile) -> Vec<String> {
    spec.schema_for(profile)["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

fn tool_table(tools: &[&ToolSpec]) -> String {
    let mut out = String::from("| tool | what it does |\n|---|---|\n");
    for t in tools {
        out.push_str(&format!("| `{}` | {} |\n", t.name, t.description.replace('|', "\\|")));
    }
    out
}

/// The generated block, markers included.
fn generated() -> String {
    let mut out = format!("{BEGIN}\n");
    let mut previous: Option<Profile> = None;
    for profile in Profile::ALL {
        let tools: Vec<&ToolSpec> = tools_for(profile).collect();
        let noun = if tools.len() == 1 { "tool" } else { "tools" };
        out.push_str(&format!("\n### `{}`: {} {noun}\n\n", profile.name(), tools.len()));
        out.push_str(&format!("> {}\n\n", profile.instructions()));
        let added: Vec<&ToolSpec> = match previous {
            Some(prev) => {
                out.push_str(&format!("Everything in `{}`, plus:\n\n", prev.name()));
                tools.iter().copied().filter(|t| !t.in_profile(prev)).collect()
            }
            None => tools.clone(),
        };
        out.push_str(&tool_table(&added));
        if profile == Profile::WorkspaceCore {
            let narrowed: Vec<String> = tools
                .iter()
                .filter(|t| t.core_input_schema.is_some())
                .map(|t| {
                    let core = property_names(t, Profile::WorkspaceCore);
                    let dropped: Vec<String> = property_names(t, Profile::WorkspaceFull)
                        .into_iter()
                        .filter(|p| !core.contains(p))
                        .map(|p| format!("`{p}`"))
                        .collect();
                    format!("`{}` has no {}", t.name, dropped.join(", "))
                })
                .collect();
            out.push_str(&format!(
                "\nNarrowed schemas in `workspace-core`: {} (those arguments are refused with \
                 an error naming `workspace-full`).\n",
                narrowed.join("; ")
            ));
        }
        let names: Vec<String> = tools.iter().map(|t| format!("`{}`", t.name)).collect();
        out.push_str(&format!("\n`tools/list` order: {}.\n", names.join(", ")));
        previous = Some(profile);
    }
    for mode in Mode::ALL {
        let tools = Surface::Mode(mode).tools();
        out.push_str(&format!("\n### mode `{}`: {} tools\n\n", mode.name(), tools.len()));
        out.push_str(&format!("> {}\n\n", mode.instructions()));
        out.push_str("| tool | in this mode | parameters |\n|---|---|---|\n");
        for t in &tools {
            let params: Vec<String> = t.input_schema()["properties"]
                .as_object()
                .map(|p| p.keys().map(|k| format!("`{k}`")).collect())
                .unwrap_or_default();
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                t.name(),
                t.description().replace('|', "\\|"),
                params.join(", ")
            ));
        }
    }
    out.push('\n');
    out.push_str(END);
    out
}

#[test]
fn profiles_doc_lists_exactly_the_contract_tools() {
    let path = doc_path();
    let doc = std::fs::read_to_string(&path).expect("docs/profiles.md");
    let start = doc.find(BEGIN).expect("docs/profiles.md has the BEGIN GENERATED marker");
    let end = doc[start..].find(END).map(|i| start + i + END.len()).expect("END marker");
    let current = &doc[start..end];
    let wanted = generated();
    if current == wanted {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1") {
        let updated = format!("{}{wanted}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).expect("write docs/profiles.md");
        eprintln!("rewrote the generated block of {}", path.display());
        return;
    }
    let first_difference = current
        .lines()
        .zip(wanted.lines())
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("\n  doc:      {a}\n  contract: {b}"))
        .unwrap_or_else(|| "\n  (one is a prefix of the other)".into());
    panic!(
        "docs/profiles.md's generated tool lists differ from the contract; run \
         `UPDATE_DOCS=1 cargo test -p pyro-contract --test docs_profiles`{first_difference}"
    );
}

#[test]
fn generated_block_names_every_tool_of_every_profile() {
    let block = generated();
    for profile in Profile::ALL {
        assert!(block.contains(profile.instructions()));
        for t in tools_for(profile) {
            assert!(block.contains(&format!("`{}`", t.name)), "{}", t.name);
        }
    }
    for mode in Mode::ALL {
        assert!(block.contains(mode.instructions()));
        for t in Surface::Mode(mode).tools() {
            assert!(block.contains(t.description()), "{mode}: {}", t.name());
        }
    }
    assert!(block.contains("`workspace_create` has no `network_policy`, `secrets`"), "{block}");
    assert!(block.contains("`workspace_exec` has no `secret_env`"), "{block}");
}
