//! Stage one of parsing: the clap definitions of every command and flag.
//!
//! These types only describe the command line. They do no I/O and no validation beyond
//! what clap does (types, choices, required and conflicting flags, all of which are usage
//! errors with exit code 2). Stage two, in [`super::parse`] and the command modules, turns
//! them into the contract's parameter structs, reading files and checking values.
//!
//! Flags are accepted anywhere before `--`, so `pyro workspace exec ID --json -- echo hi`
//! and `pyro workspace exec --json ID -- echo hi` mean the same thing. Everything after
//! `--` is the guest command.
//!
//! Help texts, the man-style long help and the shell completions are all generated from
//! these definitions. One file per family of operations: [`common`] flags, [`run`],
//! [`workspace`], [`files`], [`shell`], [`service`], [`env`], [`mcp`], [`host`] and
//! [`machine`]. Defaults come from the contract's constants, and the tests check the
//! defaults and the ranges the help text names against the tool table's schemas.

use clap::{Parser, Subcommand};

use super::help;

mod common;
mod env;
mod files;
mod host;
mod machine;
mod mcp;
mod run;
mod service;
mod shell;
mod workspace;

pub use common::*;
pub use env::*;
pub use files::*;
pub use host::*;
pub use machine::*;
pub use mcp::*;
pub use run::*;
pub use service::*;
pub use shell::*;
pub use workspace::*;

/// `pyro`: disposable and persistent Linux microVM sandboxes for AI agents.
#[derive(Debug, Parser)]
#[command(
    name = "pyro",
    version,
    about = "Disposable and persistent Linux microVM sandboxes for AI agents",
    long_about = "Disposable and persistent Linux microVM sandboxes for AI agents.\n\n\
        `pyro run` boots a fresh VM, runs one command and deletes the VM. `pyro workspace` \
        keeps a VM with a /workspace directory across commands: exec, read, write and patch \
        files, diff against the starting point, export results, reset and delete. \
        `pyro mcp serve` offers the same operations to a chat host as MCP tools.\n\n\
        Commands run inside a guest VM. When no guest backend is available (see `pyro doctor`), \
        `run` and `workspace create` fail unless you pass --allow-host-compat, which runs the \
        commands on this host instead; every result reports its execution_mode.",
    after_help = help::top_level_after_help(),
    max_term_width = 100
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands, in help order.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List, build, inspect and prune guest environments.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Serve pyro's tools to a chat host over the Model Context Protocol.
    #[command(subcommand)]
    Mcp(McpCommand),
    /// Boot a fresh VM, run one command in it and delete the VM.
    #[command(
        long_about = "Boot a fresh VM from ENVIRONMENT, run the command given after `--` with \
            /bin/sh -lc, print its output and delete the VM.\n\n\
            Human mode prints progress and a summary on stderr, the guest's stdout on stdout \
            and its stderr on stderr. The exit code of pyro is the exit code of the command \
            (124 on timeout).",
        after_help = "Example:\n  pyro run debian:12 -- git --version\n  pyro run debian:12 --json -- sh -c 'uname -a'"
    )]
    Run(RunArgs),
    /// Persistent workspaces: a VM with a /workspace directory kept across commands.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Check what this host can run, and how to fix what it cannot.
    Doctor(DoctorArgs),
    /// Make this machine warm for an environment and prove the workspace loop once.
    #[command(
        long_about = "Make the machine warm for ENVIRONMENT (default debian:12) so chat sessions \
            skip setup: pull the environment if it is missing, then prove the loop with one \
            throwaway workspace (create, exec, reset, exec, delete) on the guest backend, and \
            record a manifest in the cache (<cache>/daily-loop/). Afterwards `pyro doctor \
            --environment ENVIRONMENT` reports warm, and stale (with the reason) once the \
            image, guest kernel, guest agent or pyro version changes. An already warm \
            environment is left alone unless --force is given.",
        after_help = "Examples:\n  pyro prepare\n  pyro prepare debian:12-build --json\n  pyro prepare debian:12 --network --force"
    )]
    Prepare(PrepareArgs),
    /// Connect chat hosts (Claude Code, Codex, OpenCode) to pyro, check and repair them.
    #[command(subcommand)]
    Host(HostCommand),
    /// Remove what crashed pyro processes left behind: half-made workspaces, QEMUs nobody
    /// owns, stray files (`pyro doctor` lists them; `pyro mcp serve` does this at start).
    #[command(after_help = "Example:\n  pyro gc\n  pyro gc --json")]
    Gc(GcArgs),
    /// Run `git --version` in a fresh debian:12 VM and print the result as JSON.
    #[command(args_conflicts_with_subcommands = true)]
    Demo(DemoArgs),
    /// Print a shell completion script for bash, zsh or fish.
    #[command(
        after_help = "Example:\n  pyro completions bash > ~/.local/share/bash-completion/completions/pyro"
    )]
    Completions(CompletionsArgs),
}

#[cfg(test)]
mod tests;
