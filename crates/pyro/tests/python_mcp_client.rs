//! The official Python MCP client (`mcp` from PyPI, installed by scripts/setup) drives
//! `pyro mcp serve`: tools/list per profile, and a host-compat workspace flow.

use pyro_contract::{tools_for, Profile};
use std::io::Write;
use std::process::{Command, Stdio};

fn script() -> String {
    format!("{}/tests/python/mcp_client_flow.py", env!("CARGO_MANIFEST_DIR"))
}

fn run(profile: Profile, mode: &str, stdin: &str, envs: &[(&str, &str)]) -> String {
    let state = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new("python3")
        .arg(script())
        .args([env!("CARGO_BIN_EXE_pyro"), profile.name(), mode])
        .env("PYRO_STATE_DIR", state.path())
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/setup installs the mcp package)");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python MCP client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn python_client_sees_exactly_each_profiles_tools_in_order() {
    for profile in Profile::ALL {
        let expected: Vec<&str> = tools_for(profile).map(|t| t.name).collect();
        let out = run(profile, "list", &expected.join("\n"), &[("PYRO_BACKEND", "host_compat")]);
        assert!(out.contains(&format!("ok list {} tools", expected.len())), "{out}");
    }
}

#[test]
fn python_client_runs_a_host_compat_workspace_flow() {
    let out = run(
        Profile::WorkspaceCore,
        "flow",
        "",
        &[("PYRO_BACKEND", "host_compat"), ("FLOW_ALLOW_HOST_COMPAT", "1")],
    );
    assert!(out.contains("ok flow"), "{out}");
}
