//! Host onramps: register pyro's MCP server in a chat host (Claude Code, Codex,
//! OpenCode), check the registration for drift and repair it.
//!
//! Every registration is generated from one canonical command, [`ServeCommand`]:
//! `pyro mcp serve` plus the chosen profile or mode and the project and environment
//! flags. The server is always named `pyro`.
//!
//! | host | with its CLI on PATH | without | config file read by `doctor` |
//! |---|---|---|---|
//! | `claude-code` | `claude mcp add --scope user pyro -- CMD` | edit JSON `mcpServers.pyro` | `~/.claude.json` |
//! | `codex` | `codex mcp add pyro -- CMD` | edit TOML `[mcp_servers.pyro]` | `$CODEX_HOME/config.toml` (`~/.codex`) |
//! | `opencode` | — (no non-interactive add) | edit JSON `mcp.pyro` | `$XDG_CONFIG_HOME/opencode/opencode.json` (`~/.config`) |
//!
//! A drifted entry registered through a CLI is removed with `<cli> mcp remove pyro` and
//! added again. File edits are idempotent (an entry that is already current is left
//! alone), show a unified diff before writing, keep a timestamped backup of the old file
//! next to it and write atomically. Only the `pyro` entry is touched: other entries and
//! settings keep their order and text (TOML through `toml_edit`, JSON through an
//! order-keeping splice of the raw values).

mod config;

pub use config::ConfiguredServer;

use pyro_contract::Surface;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a host operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// Reading or writing a config file failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// File.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A config file does not parse; pyro does not overwrite what it cannot read.
    #[error("{path} is not valid {format}: {message}; fix or move it, then run the command again")]
    Parse {
        /// File.
        path: PathBuf,
        /// `JSON` or `TOML`.
        format: &'static str,
        /// Parser message.
        message: String,
    },
    /// The host's CLI failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Cli {
        /// The command line.
        command: String,
        /// Exit status.
        status: String,
        /// First lines of its stderr.
        stderr: String,
    },
    /// Nothing to repair.
    #[error("{host} has no pyro entry to repair; run `pyro host connect {host}` first")]
    NotConfigured {
        /// Host name.
        host: &'static str,
    },
}

/// A chat host pyro knows how to configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKind {
    /// Claude Code (`claude`).
    ClaudeCode,
    /// Codex (`codex`).
    Codex,
    /// OpenCode.
    #[serde(rename = "opencode")]
    OpenCode,
}

impl HostKind {
    /// Every host, in documentation order.
    pub const ALL: [HostKind; 3] = [HostKind::ClaudeCode, HostKind::Codex, HostKind::OpenCode];

    /// The stable name (`claude-code`, `codex`, `opencode`).
    pub fn name(self) -> &'static str {
        match self {
            HostKind::ClaudeCode => "claude-code",
            HostKind::Codex => "codex",
            HostKind::OpenCode => "opencode",
        }
    }

    /// The host's own CLI, when it can register servers non-interactively.
    pub fn cli(self) -> Option<&'static str> {
        match self {
            HostKind::ClaudeCode => Some("claude"),
            HostKind::Codex => Some("codex"),
            HostKind::OpenCode => None,
        }
    }
}

/// Where configs live: `$HOME` and the overrides the hosts honour.
#[derive(Debug, Clone)]
pub struct HostEnv {
    /// Home directory.
    pub home: PathBuf,
    /// `$CODEX_HOME`.
    pub codex_home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// `$PATH`, to find host CLIs and `pyro`.
    pub path: Option<std::ffi::OsString>,
}

impl HostEnv {
    /// From the process environment.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        HostEnv {
            home: var("HOME").unwrap_or_else(|| PathBuf::from("/root")),
            codex_home: var("CODEX_HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            path: std::env::var_os("PATH"),
        }
    }

    /// The config file of `host`.
    pub fn config_path(&self, host: HostKind) -> PathBuf {
        match host {
            HostKind::ClaudeCode => self.home.join(".claude.json"),
            HostKind::Codex => self
                .codex_home
                .clone()
                .unwrap_or_else(|| self.home.join(".codex"))
                .join("config.toml"),
            HostKind::OpenCode => self
                .xdg_config_home
                .clone()
                .unwrap_or_else(|| self.home.join(".config"))
                .join("opencode/opencode.json"),
        }
    }

    /// `program` resolved on `$PATH` (or as given when it contains a `/`).
    pub fn which(&self, program: &str) -> Option<PathBuf> {
        if program.contains('/') {
            return Path::new(program).is_file().then(|| PathBuf::from(program));
        }
        let path = self.path.as_ref()?;
        std::env::split_paths(path).map(|dir| dir.join(program)).find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    }
}

/// The flags of the canonical `pyro mcp serve` command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeFlags {
    /// `--profile` / `--mode`; `None` is the default (workspace-core).
    pub surface: Option<Surface>,
    /// `--project-path`.
    pub project_path: Option<PathBuf>,
    /// `--repo-url`.
    pub repo_url: Option<String>,
    /// `--repo-ref`.
    pub repo_ref: Option<String>,
    /// `--no-project-source`.
    pub no_project_source: bool,
    /// `--environment`.
    pub environment: Option<String>,
}

/// The command a host runs: program and arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeCommand {
    /// `pyro` (or the path given with `--command`).
    pub command: String,
    /// `mcp serve ...`.
    pub args: Vec<String>,
}

impl ServeCommand {
    /// The canonical command for `flags`.
    pub fn new(program: impl Into<String>, flags: &ServeFlags) -> Self {
        let mut args = vec!["mcp".to_string(), "serve".to_string()];
        match flags.surface {
            Some(Surface::Profile(p)) => args.extend(["--profile".into(), p.name().into()]),
            Some(Surface::Mode(m)) => args.extend(["--mode".into(), m.name().into()]),
            None => {}
        }
        if let Some(dir) = &flags.project_path {
            args.extend(["--project-path".into(), dir.display().to_string()]);
        }
        if let Some(url) = &flags.repo_url {
            args.extend(["--repo-url".into(), url.clone()]);
        }
        if let Some(r) = &flags.repo_ref {
            args.extend(["--repo-ref".into(), r.clone()]);
        }
        if flags.no_project_source {
            args.push("--no-project-source".into());
        }
        if let Some(env) = &flags.environment {
            args.extend(["--environment".into(), env.clone()]);
        }
        ServeCommand { command: program.into(), args }
    }

    /// Program and arguments as one list.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.command.clone()).chain(self.args.iter().cloned()).collect()
    }
}

/// What `doctor` found for one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// Neither the host's CLI nor its config directory exists.
    NotInstalled,
    /// The host exists but has no `pyro` entry.
    NotConfigured,
    /// The `pyro` entry runs the canonical command.
    Current,
    /// The `pyro` entry differs; `drift` says how.
    Drifted,
}

/// One host in `pyro host doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDoctorEntry {
    /// Host name.
    pub host: HostKind,
    /// Status.
    pub status: HostStatus,
    /// The host's config file.
    pub config_path: String,
    /// The host's CLI, when it is on PATH.
    pub cli_path: Option<String>,
    /// What pyro expects the entry to run.
    pub expected: Vec<String>,
    /// What the entry runs now.
    pub configured: Option<Vec<String>>,
    /// What differs, one sentence each.
    pub drift: Vec<String>,
    /// Problems outside the entry (the command is not on PATH).
    pub warnings: Vec<String>,
    /// What to run to fix it.
    pub fix: Option<String>,
}

fn flag_words(args: &[String]) -> Vec<String> {
    // Pair each `--flag` with its value so drift reports read `--mode repro-fix`.
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a.starts_with("--") && !a.contains('=') && a != "--no-project-source" {
            if let Some(v) = args.get(i + 1).filter(|v| !v.starts_with("--")) {
                out.push(format!("{a} {v}"));
                i += 2;
                continue;
            }
        }
        out.push(a.clone());
        i += 1;
    }
    out
}

/// How `configured` differs from `expected`.
pub fn drift(expected: &ServeCommand, configured: &ConfiguredServer) -> Vec<String> {
    let mut out = Vec::new();
    if configured.command != expected.command {
        out.push(format!("command is `{}`, expected `{}`", configured.command, expected.command));
    }
    if configured.args != expected.args {
        let have = flag_words(&configured.args);
        let want = flag_words(&expected.args);
        let missing: Vec<&String> = want.iter().filter(|w| !have.contains(w)).collect();
        let extra: Vec<&String> = have.iter().filter(|h| !want.contains(h)).collect();
        if !missing.is_empty() {
            out.push(format!(
                "missing {}",
                missing.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        if !extra.is_empty() {
            out.push(format!(
                "unexpected {}",
                extra.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
            ));
        }
        if missing.is_empty() && extra.is_empty() {
            out.push(format!("arguments are `{}`", configured.args.join(" ")));
        }
    }
    out.extend(configured.problems.iter().cloned());
    out
}

/// Problems of the registered flags that would make the server fail at startup: a
/// `--project-path` that is gone, an unknown `--environment`.
fn flag_problems(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    if let Some(dir) = value("--project-path") {
        if !Path::new(dir).is_dir() {
            out.push(format!(
                "--project-path {dir} does not exist, so the server will not start; connect \
                 again with another --project-path, --repo-url or --no-project-source"
            ));
        }
    }
    if let Some(env) = value("--environment") {
        if crate::runtime::EnvironmentCatalog::require_known(env).is_err() {
            out.push(format!(
                "--environment {env} is not a known environment (see `pyro env list`)"
            ));
        }
    }
    out
}

/// Check one host.
pub fn doctor(
    env: &HostEnv,
    host: HostKind,
    expected: &ServeCommand,
) -> Result<HostDoctorEntry, HostError> {
    let config_path = env.config_path(host);
    let cli_path = host.cli().and_then(|c| env.which(c));
    let installed = cli_path.is_some()
        || config_path.exists()
        || config_path.parent().is_some_and(|p| p != env.home && p.is_dir());
    let configured = config::read(host, &config_path)?;
    let (status, drift) = match (&configured, installed) {
        (Some(c), _) => {
            let d = drift(expected, c);
            (if d.is_empty() { HostStatus::Current } else { HostStatus::Drifted }, d)
        }
        (None, true) => (HostStatus::NotConfigured, Vec::new()),
        (None, false) => (HostStatus::NotInstalled, Vec::new()),
    };
    let fix = match status {
        HostStatus::Current | HostStatus::NotInstalled => None,
        HostStatus::NotConfigured => Some(format!("pyro host connect {}", host.name())),
        HostStatus::Drifted => Some(format!("pyro host repair {}", host.name())),
    };
    let mut warnings = Vec::new();
    if let Some(c) = &configured {
        if env.which(&c.command).is_none() {
            warnings.push(format!(
                "`{}` is not on PATH; run scripts/setup or pass --command /path/to/pyro",
                c.command
            ));
        }
        warnings.extend(flag_problems(&c.args));
    }
    Ok(HostDoctorEntry {
        host,
        warnings,
        status,
        config_path: config_path.display().to_string(),
        cli_path: cli_path.map(|p| p.display().to_string()),
        expected: expected.argv(),
        configured: configured.map(|c| c.argv()),
        drift,
        fix,
    })
}

/// What `connect` or `repair` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectResult {
    /// Host name.
    pub host: HostKind,
    /// `unchanged`, `registered_with_cli` or `wrote_config`.
    pub action: String,
    /// Nothing was changed because of `--dry-run`.
    pub dry_run: bool,
    /// The config file.
    pub config_path: String,
    /// The old file, kept before writing.
    pub backup_path: Option<String>,
    /// Unified diff of the config file (file edits).
    pub diff: Option<String>,
    /// Host CLI commands run (CLI registration).
    pub cli_commands: Vec<Vec<String>>,
    /// The registered command.
    pub command: Vec<String>,
    /// Drift that was repaired.
    pub repaired: Vec<String>,
}

fn run_cli(cli: &Path, args: &[String]) -> Result<(), HostError> {
    let out = Command::new(cli).args(args).output().map_err(|e| HostError::Io {
        context: "could not run",
        path: cli.to_path_buf(),
        source: e,
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(HostError::Cli {
        command: format!("{} {}", cli.display(), args.join(" ")),
        status: out.status.to_string(),
        stderr: stderr.lines().take(3).collect::<Vec<_>>().join(" / "),
    })
}

/// Register pyro in `host` with `expected` (idempotent). `require_entry` makes it a
/// repair: a host without a pyro entry is an error.
pub fn connect(
    env: &HostEnv,
    host: HostKind,
    expected: &ServeCommand,
    dry_run: bool,
    require_entry: bool,
) -> Result<ConnectResult, HostError> {
    let entry = doctor(env, host, expected)?;
    if require_entry && entry.configured.is_none() {
        return Err(HostError::NotConfigured { host: host.name() });
    }
    let config_path = env.config_path(host);
    let mut result = ConnectResult {
        host,
        action: "unchanged".into(),
        dry_run,
        config_path: config_path.display().to_string(),
        backup_path: None,
        diff: None,
        cli_commands: Vec::new(),
        command: expected.argv(),
        repaired: entry.drift.clone(),
    };
    if entry.status == HostStatus::Current {
        return Ok(result);
    }
    if let (Some(cli), Some(cli_path)) = (host.cli(), entry.cli_path.as_ref()) {
        let scope: &[&str] = if host == HostKind::ClaudeCode { &["--scope", "user"] } else { &[] };
        let mut commands = Vec::new();
        if entry.configured.is_some() {
            let mut remove: Vec<String> = vec!["mcp".into(), "remove".into()];
            remove.extend(scope.iter().map(|s| s.to_string()));
            remove.push("pyro".into());
            commands.push(remove);
        }
        let mut add: Vec<String> = vec!["mcp".into(), "add".into()];
        add.extend(scope.iter().map(|s| s.to_string()));
        add.extend(["pyro".into(), "--".into()]);
        add.extend(expected.argv());
        commands.push(add);
        if !dry_run {
            for args in &commands {
                run_cli(Path::new(cli_path), args)?;
            }
        }
        result.action = "registered_with_cli".into();
        result.cli_commands = commands
            .into_iter()
            .map(|args| std::iter::once(cli.to_string()).chain(args).collect())
            .collect();
        return Ok(result);
    }
    let old = match std::fs::read_to_string(&config_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(HostError::Io { context: "could not read", path: config_path, source: e })
        }
    };
    let new = config::render(host, &config_path, old.as_deref(), expected)?;
    let old_text = old.clone().unwrap_or_default();
    let diff = similar::TextDiff::from_lines(&old_text, &new)
        .unified_diff()
        .header(
            &format!("{} (before)", config_path.display()),
            &format!("{} (after)", config_path.display()),
        )
        .to_string();
    result.action = "wrote_config".into();
    result.diff = Some(diff);
    if dry_run {
        return Ok(result);
    }
    if let Some(parent) = config_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| HostError::Io {
            context: "could not create",
            path: parent.to_path_buf(),
            source: e,
        })?;
    }
    if let Some(old) = &old {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name =
            config_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // Never overwrite an earlier backup, even from the same second.
        let backup = (0u32..)
            .map(|n| {
                let suffix = if n == 0 { String::new() } else { format!(".{n}") };
                config_path.with_file_name(format!("{name}.pyro-backup-{stamp}{suffix}"))
            })
            .find(|p| p.symlink_metadata().is_err())
            .unwrap_or_else(|| config_path.with_file_name(format!("{name}.pyro-backup")));
        crate::runtime::state::write_atomic(&backup, old.as_bytes()).map_err(|e| {
            HostError::Io {
                context: "could not write the backup",
                path: backup.clone(),
                source: std::io::Error::other(e.to_string()),
            }
        })?;
        result.backup_path = Some(backup.display().to_string());
    }
    crate::runtime::state::write_atomic(&config_path, new.as_bytes()).map_err(|e| {
        HostError::Io {
            context: "could not write",
            path: config_path.clone(),
            source: std::io::Error::other(e.to_string()),
        }
    })?;
    Ok(result)
}

/// The config snippet for `host`: what `connect` would add, for pasting by hand.
pub fn print_config(host: HostKind, expected: &ServeCommand) -> String {
    config::snippet(host, expected)
}
