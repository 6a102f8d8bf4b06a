//! Parse tests of the definitions, and their parity with the contract's tool table.
use super::*;
use clap::CommandFactory;
use pyro::params::NetworkPolicy;
use pyro::Profile;

#[test]
fn definitions_are_consistent() {
    Cli::command().debug_assert();
}

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("pyro").chain(args.iter().copied()))
}

#[test]
fn flags_are_accepted_after_positionals_before_dashdash() {
    let cli = parse(&["workspace", "exec", "abc", "--json", "--", "echo", "hi"]).expect("parse");
    let Command::Workspace(WorkspaceCommand::Exec(a)) = cli.command else {
        panic!("wrong command");
    };
    assert!(a.out.json);
    assert_eq!(a.workspace_id, "abc");
    assert_eq!(a.command, ["echo", "hi"]);

    let cli =
        parse(&["run", "debian:12", "--network", "--allow-host-compat", "--", "ls", "--json"])
            .expect("parse");
    let Command::Run(a) = cli.command else { panic!("wrong command") };
    assert!(a.network && a.host.allow_host_compat && !a.out.json);
    assert_eq!(a.command, ["ls", "--json"], "words after -- are the command's");
}

#[test]
fn defaults_match_the_contract() {
    let Command::Run(a) = parse(&["run", "debian:12", "--", "true"]).expect("parse").command else {
        panic!("wrong command")
    };
    assert_eq!(
        (a.sizing.vcpu_count, a.sizing.mem_mib, a.sizing.ttl_seconds, a.timeout_seconds),
        (1, 1024, 600, 30)
    );
    let Command::Mcp(McpCommand::Serve(s)) = parse(&["mcp", "serve"]).expect("parse").command
    else {
        panic!("wrong command")
    };
    assert_eq!(s.surface.profile.map(|p| p.0).unwrap_or_default(), Profile::WorkspaceCore);
    assert!(s.surface.mode.is_none());
    let err = parse(&["mcp", "serve", "--mode", "inspect", "--profile", "workspace-full"])
        .expect_err("--mode with --profile");
    assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    let err = parse(&["mcp", "serve", "--project-path", ".", "--no-project-source"])
        .expect_err("conflict");
    assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    let err = parse(&["mcp", "serve", "--repo-ref", "main"]).expect_err("needs --repo-url");
    assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    let cli = parse(&["workspace", "shell", "signal", "w", "s"]).expect("parse");
    let Command::Workspace(WorkspaceCommand::Shell(ShellCommand::Signal(a))) = cli.command else {
        panic!("wrong command")
    };
    assert_eq!(a.signal, SignalArg::Int);
}

#[test]
fn usage_errors_are_rejected_by_clap() {
    use clap::error::ErrorKind;
    let kind = |args: &[&str]| parse(args).expect_err("must fail").kind();
    assert_eq!(kind(&["mcp", "serve", "--profile", "nope"]), ErrorKind::InvalidValue);
    assert_eq!(
        kind(&["workspace", "create", "debian:12", "--json", "--id-only"]),
        ErrorKind::ArgumentConflict
    );
    assert_eq!(
        kind(&["workspace", "file", "write", "w", "p", "--text", "a", "--text-file", "f"]),
        ErrorKind::ArgumentConflict
    );
    assert_eq!(kind(&["workspace", "file", "write", "w", "p"]), ErrorKind::MissingRequiredArgument);
    assert_eq!(
        kind(&["workspace", "shell", "signal", "w", "s", "--signal", "int"]),
        ErrorKind::InvalidValue
    );
    assert_eq!(
        kind(&["workspace", "create", "debian:12", "--network-policy", "all"]),
        ErrorKind::InvalidValue
    );
}

/// The subcommand at `path` (`workspace exec`), if the CLI has it.
fn subcommand(path: &str) -> Option<clap::Command> {
    let mut cmd = Cli::command();
    for word in path.split(' ') {
        cmd = cmd.find_subcommand(word)?.clone();
    }
    Some(cmd)
}

/// The parity check of the tool table: every tool with a CLI command in the contract
/// has that command, exactly the one-shot VM tools have none (CONTRACT.md lists no
/// CLI for them), and every tool has its row in docs/profiles.md.
#[test]
fn every_tool_has_its_cli_command_and_docs_row() {
    let docs = include_str!("../../../../../docs/profiles.md");
    let mut without_cli = Vec::new();
    for t in pyro_contract::TOOLS {
        match t.cli_command {
            Some(path) => assert!(
                subcommand(path).is_some(),
                "{}: the contract has `pyro {path}`, the CLI does not",
                t.name
            ),
            None => without_cli.push(t.name),
        }
        assert!(
            docs.contains(&format!("| `{}` |", t.name)),
            "{}: no row in docs/profiles.md",
            t.name
        );
    }
    assert_eq!(
        without_cli,
        [
            "vm_create",
            "vm_start",
            "vm_exec",
            "vm_stop",
            "vm_delete",
            "vm_status",
            "vm_network_info",
            "vm_reap_expired"
        ],
        "only the one-shot VM tools may lack a CLI command (CONTRACT.md §5)"
    );
}

/// Every CLI option named like a parameter of its tool has the contract's default
/// (the schema's `default`), so help text and behaviour cannot drift from MCP's.
#[test]
fn option_defaults_are_the_contracts() {
    let mut compared = 0;
    for t in pyro_contract::TOOLS {
        let Some(cmd) = t.cli_command.and_then(subcommand) else { continue };
        let schema = t.schema_for(Profile::WorkspaceFull);
        for arg in cmd.get_arguments() {
            let Some(contract) = schema["properties"].get(arg.get_id().as_str()) else {
                continue;
            };
            let Some(default) = contract.get("default") else { continue };
            let default = match default {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let cli: Vec<String> =
                arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            assert_eq!(
                cli,
                std::slice::from_ref(&default),
                "{} --{}: the contract's default is {default}",
                t.name,
                arg.get_id()
            );
            compared += 1;
        }
    }
    assert!(compared >= 10, "only {compared} defaults compared");
}

#[test]
fn network_policy_values_use_contract_names() {
    let cli =
        parse(&["workspace", "create", "debian:12", "--network-policy", "egress+published-ports"])
            .expect("parse");
    let Command::Workspace(WorkspaceCommand::Create(a)) = cli.command else {
        panic!("wrong command")
    };
    assert_eq!(a.network_policy.0, NetworkPolicy::EgressPublishedPorts);
}

/// The first `(MIN-MAX` range written in a help text, e.g. `(1-8)` or `(1-10000 ms)`.
fn range_in(help: &str) -> Option<(i64, i64)> {
    help.match_indices('(').find_map(|(i, _)| {
        let rest = &help[i + 1..];
        let (min, rest) = rest.split_once('-')?;
        let max: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some((min.parse().ok()?, max.parse().ok()?))
    })
}

/// Ranges are the contract's: every CLI option named like a parameter whose schema has a
/// `minimum` and a `maximum` says that range in its help, and says the schema's.
#[test]
fn option_ranges_in_help_are_the_contracts() {
    let mut checked = 0;
    let mut wrong = Vec::new();
    for t in pyro_contract::TOOLS {
        let Some(cmd) = t.cli_command.and_then(subcommand) else { continue };
        let schema = t.schema_for(Profile::WorkspaceFull);
        for arg in cmd.get_arguments() {
            let Some(prop) = schema["properties"].get(arg.get_id().as_str()) else { continue };
            let (Some(min), Some(max)) = (prop["minimum"].as_i64(), prop["maximum"].as_i64())
            else {
                continue;
            };
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            if range_in(&help) != Some((min, max)) {
                wrong.push(format!(
                    "pyro {} --{}: help {help:?} must say the contract's range ({min}-{max})",
                    t.cli_command.unwrap_or_default(),
                    arg.get_id()
                ));
            }
            checked += 1;
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(checked >= 8, "only {checked} ranges checked");
}
