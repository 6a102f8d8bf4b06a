//! `pyro workspace shell {open, read, write, signal, close}`: interactive shells.
//!
//! Each invocation is its own process; the shell lives in the guest, so a shell opened
//! by one call is read and written by the next ones (by id).
//!
//! Human output: `open`, `write`, `signal` and `close` print one
//! `[workspace-shell-<op>] ...` summary line on stderr (`open --id-only` prints just the
//! id on stdout); `read` prints the output itself on stdout, exactly as returned, and a
//! `[workspace-shell-read] ...` summary on stderr.

use crate::cli::args::{ShellCommand, ShellOpenArgs, ShellReadArgs};
use crate::cli::error::{CliError, ExitCode};
use crate::cli::output::{self, name_of};
use crate::cli::parse;
use pyro::params::{
    ShellIdParams, ShellOpenParams, ShellReadParams, ShellSignalParams, ShellWriteParams,
};
use pyro::results::{Shell, ShellReadResult};
use pyro::Pyro;

/// Stage two of `shell open`.
pub fn open_params(a: &ShellOpenArgs) -> Result<ShellOpenParams, CliError> {
    Ok(ShellOpenParams {
        workspace_id: a.workspace_id.clone(),
        cwd: a.cwd.clone(),
        cols: a.cols,
        rows: a.rows,
        secret_env: parse::secret_env(&a.secret_env)?,
    })
}

/// Stage two of `shell read`.
pub fn read_params(a: &ShellReadArgs) -> ShellReadParams {
    ShellReadParams {
        workspace_id: a.workspace_id.clone(),
        shell_id: a.shell_id.clone(),
        cursor: a.cursor,
        max_chars: a.max_chars,
        plain: a.plain,
        wait_for_idle_ms: a.wait_for_idle_ms,
    }
}

/// The `[workspace-shell-<op>]` summary of a shell.
pub fn summary(op: &str, s: &Shell) -> String {
    format!(
        "[workspace-shell-{op}] workspace_id={} shell_id={} state={} cwd={} cols={} rows={} \
         execution_mode={}",
        s.workspace_id,
        s.shell_id,
        name_of(&s.state),
        s.cwd,
        s.cols,
        s.rows,
        name_of(&s.execution_mode)
    )
}

/// Python-style boolean, as the reference CLI prints it in the read summary.
fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// The `[workspace-shell-read]` summary.
pub fn read_summary(r: &ShellReadResult) -> String {
    format!(
        "[workspace-shell-read] workspace_id={} shell_id={} state={} cursor={} next_cursor={} \
         truncated={} plain={} wait_for_idle_ms={} execution_mode={}",
        r.shell.workspace_id,
        r.shell.shell_id,
        name_of(&r.shell.state),
        r.cursor,
        r.next_cursor,
        py_bool(r.truncated),
        py_bool(r.plain),
        r.wait_for_idle_ms.map_or_else(|| "None".to_string(), |ms| ms.to_string()),
        name_of(&r.shell.execution_mode)
    )
}

/// Run a `workspace shell` subcommand.
pub async fn run(pyro: &Pyro, cmd: ShellCommand) -> Result<ExitCode, CliError> {
    match cmd {
        ShellCommand::Open(a) => {
            let shell = pyro.shell_open(open_params(&a)?).await?;
            if a.id_only {
                output::stdout_text(&format!("{}\n", shell.shell_id))?;
            } else if a.out.json {
                output::json(&shell)?;
            } else {
                output::note(&summary("open", &shell));
            }
        }
        ShellCommand::Read(a) => {
            let r = pyro.shell_read(read_params(&a)).await?;
            if a.out.json {
                output::json(&r)?;
            } else {
                output::stdout_text(&r.output)?;
                output::note(&read_summary(&r));
            }
        }
        ShellCommand::Write(a) => {
            let json = a.out.json;
            let params = ShellWriteParams {
                workspace_id: a.workspace_id,
                shell_id: a.shell_id,
                input: a.input,
                append_newline: !a.no_newline,
            };
            let r = pyro.shell_write(params).await?;
            if json {
                output::json(&r)?;
            } else {
                output::note(&summary("write", &r.shell));
            }
        }
        ShellCommand::Signal(a) => {
            let params = ShellSignalParams {
                workspace_id: a.workspace_id,
                shell_id: a.shell_id,
                signal_name: a.signal.name().to_string(),
            };
            let r = pyro.shell_signal(params).await?;
            if a.out.json {
                output::json(&r)?;
            } else {
                output::note(&summary("signal", &r.shell));
            }
        }
        ShellCommand::Close(a) => {
            let params = ShellIdParams { workspace_id: a.workspace_id, shell_id: a.shell_id };
            let r = pyro.shell_close(params).await?;
            if a.out.json {
                output::json(&r)?;
            } else {
                output::note(&summary("close", &r.shell));
            }
        }
    }
    Ok(ExitCode::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro::results::{ExecutionMode, ShellState};

    fn shell() -> Shell {
        Shell {
            workspace_id: "w1".into(),
            shell_id: "s1".into(),
            cwd: "/workspace".into(),
            cols: 120,
            rows: 30,
            state: ShellState::Running,
            started_at: 1.0,
            ended_at: None,
            exit_code: None,
            execution_mode: ExecutionMode::Guest,
        }
    }

    #[test]
    fn summaries_follow_the_contract() {
        assert_eq!(
            summary("open", &shell()),
            "[workspace-shell-open] workspace_id=w1 shell_id=s1 state=running cwd=/workspace \
             cols=120 rows=30 execution_mode=guest"
        );
        let r = ShellReadResult {
            shell: shell(),
            cursor: 0,
            next_cursor: 12,
            output: "x".into(),
            truncated: false,
            plain: true,
            wait_for_idle_ms: None,
        };
        assert_eq!(
            read_summary(&r),
            "[workspace-shell-read] workspace_id=w1 shell_id=s1 state=running cursor=0 \
             next_cursor=12 truncated=False plain=True wait_for_idle_ms=None execution_mode=guest"
        );
    }
}
