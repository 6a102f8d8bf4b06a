//! Interactive shells: `shell_open`, `shell_read`, `shell_write`, `shell_signal`,
//! `shell_close` (and the SDK-only `shell_resize`).
//!
//! The shell itself (a PTY running `bash -i`, its output buffer) lives in the guest
//! agent, so it outlives the host process that opened it: every later CLI call or MCP
//! request reconnects and addresses it by id. The host keeps a small record per shell
//! in `<workspace dir>/shells/<shell_id>.json` (id, cwd, size, open and end times, exit
//! code) so it can answer "does not exist" without the guest and report `started_at`
//! in host time.
//!
//! Output is redacted twice: the agent replaces secret values in its buffer (so cursors
//! count redacted characters), and the host redacts every slice it returns. With
//! `plain=true` the slice is rendered by [`super::terminal::plain_text`]; `next_cursor`
//! still refers to the raw buffer, and an escape sequence cut off at the end of the
//! slice is left for the next read.
//!
//! Shells need a guest: `host_compat` workspaces refuse them. Workspace stop and reset
//! close them and drop their records; start after a stop drops stale records; delete
//! removes the whole workspace directory.

use super::agent::{self, QUICK};
use super::error::{PyroError, Result};
use super::state::{self, now, WorkspaceDir, WorkspaceRecord};
use super::workspace::Locked;
use super::{terminal, validate, Runtime};
use crate::backend::AgentChannel;
use pyro_contract::params::{
    ShellIdParams, ShellOpenParams, ShellReadParams, ShellResizeParams, ShellSignalParams,
    ShellWriteParams,
};
use pyro_contract::results::{
    Shell, ShellCloseResult, ShellReadResult, ShellSignalResult, ShellState, ShellWriteResult,
};
use pyro_protocol::{
    ErrorKind, Request, Response, ShellOpenRequest, ShellReadRequest, ShellStatus,
    SHELL_MAX_WAIT_MS,
};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// Longest `wait_for_idle_ms`.
pub const MAX_WAIT_FOR_IDLE_MS: u64 = 10_000;

/// What `append_newline` sends: the Enter key of a terminal (the line discipline turns
/// it into `\n` for programs reading lines; raw-mode programs see Enter).
const ENTER: &str = "\r";

/// The host's record of one shell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ShellRecord {
    workspace_id: String,
    shell_id: String,
    cwd: String,
    cols: u32,
    rows: u32,
    started_at: f64,
    ended_at: Option<f64>,
    exit_code: Option<i32>,
}

fn shells_dir(dir: &WorkspaceDir) -> PathBuf {
    dir.root.join("shells")
}

fn record_path(dir: &WorkspaceDir, shell_id: &str) -> PathBuf {
    shells_dir(dir).join(format!("{shell_id}.json"))
}

fn check_size(cols: u32, rows: u32) -> Result<(u16, u16)> {
    if cols == 0 || rows == 0 {
        return Err(PyroError::invalid("cols and rows must be positive"));
    }
    match (u16::try_from(cols), u16::try_from(rows)) {
        (Ok(c), Ok(r)) => Ok((c, r)),
        _ => Err(PyroError::invalid("cols and rows must be at most 65535")),
    }
}

/// Canonical name of a shell signal (case-insensitive).
pub fn signal_name(name: &str) -> Result<&'static str> {
    match name.trim().to_ascii_uppercase().as_str() {
        "HUP" => Ok("HUP"),
        "INT" => Ok("INT"),
        "TERM" => Ok("TERM"),
        "KILL" => Ok("KILL"),
        _ => Err(PyroError::invalid("signal_name must be one of: HUP, INT, TERM, KILL")),
    }
}

/// Check `shell_read` limits.
fn check_read(p: &ShellReadParams) -> Result<()> {
    if p.max_chars == 0 {
        return Err(PyroError::invalid("max_chars must be positive"));
    }
    if let Some(ms) = p.wait_for_idle_ms {
        if !(1..=MAX_WAIT_FOR_IDLE_MS).contains(&ms) {
            return Err(PyroError::invalid("wait_for_idle_ms must be between 1 and 10000"));
        }
    }
    Ok(())
}

/// A raw slice rendered for `plain=true`: the text, the characters of the raw slice it
/// consumed and whether it was cut at `max_chars`.
fn render_plain(raw: &str, max_chars: u64, more_after: bool) -> (String, u64, bool) {
    let raw_chars = raw.chars().count() as u64;
    let consumed = match terminal::incomplete_escape_start(raw) {
        // Leave a cut-off sequence for the next read, unless it is all there is and
        // nothing follows (then it is dropped rather than stalling the reader).
        Some(start) if start > 0 || more_after => start as u64,
        _ => raw_chars,
    };
    let raw_used: String =
        raw.chars().take(usize::try_from(consumed).unwrap_or(usize::MAX)).collect();
    let plain = terminal::plain_text(&raw_used);
    let plain_chars = plain.chars().count() as u64;
    if plain_chars > max_chars {
        let cut: String = plain.chars().take(usize::try_from(max_chars).unwrap_or(0)).collect();
        (cut, consumed, true)
    } else {
        (plain, consumed, false)
    }
}

/// Deadline of a read that may wait for idle output.
fn read_deadline(wait: Option<u64>) -> Duration {
    if wait.is_some() {
        Duration::from_millis(SHELL_MAX_WAIT_MS) + QUICK
    } else {
        QUICK
    }
}

/// How long the agent may take to close a shell (5 s grace, 2 s after SIGKILL).
const CLOSE_DEADLINE: Duration = Duration::from_secs(30);

impl Runtime {
    /// Load a started guest workspace for a shell operation.
    fn shell_workspace(&self, workspace_id: &str) -> Result<(WorkspaceDir, WorkspaceRecord)> {
        let (dir, rec) = self.load(workspace_id)?;
        if !self.capabilities(rec.backend).shells {
            return Err(PyroError::Unavailable(
                "interactive shells require guest execution and are unavailable for this \
                 workspace: host_compat backend"
                    .into(),
            ));
        }
        self.require_started(&dir, &rec, "shell operations")?;
        Ok((dir, rec))
    }

    fn shell_record(&self, dir: &WorkspaceDir, ws: &str, shell_id: &str) -> Result<ShellRecord> {
        let unknown =
            || PyroError::UnknownShell { workspace_id: ws.into(), shell_id: shell_id.into() };
        if !state::is_valid_id(shell_id) {
            return Err(unknown());
        }
        let path = record_path(dir, shell_id);
        if !path.exists() {
            return Err(unknown());
        }
        state::read_json(&path)
    }

    /// Bring the record up to date with what the agent said; write it when it changed.
    fn note_status(dir: &WorkspaceDir, record: &mut ShellRecord, status: &ShellStatus) {
        let before = record.clone();
        record.cols = u32::from(status.cols);
        record.rows = u32::from(status.rows);
        if !status.running {
            record.exit_code = status.exit_code;
            if record.ended_at.is_none() {
                let ago = status.ended_ago_ms.unwrap_or(0) as f64 / 1000.0;
                record.ended_at = Some((now() - ago).max(record.started_at));
            }
        }
        if *record != before {
            // The record is a cache of the guest's state; failing to update it only
            // makes a later answer less precise.
            let _ = state::write_json(&record_path(dir, &record.shell_id), record);
        }
    }

    fn public_shell(&self, rec: &WorkspaceRecord, record: &ShellRecord, running: bool) -> Shell {
        Shell {
            workspace_id: record.workspace_id.clone(),
            shell_id: record.shell_id.clone(),
            cwd: record.cwd.clone(),
            cols: record.cols,
            rows: record.rows,
            state: if running { ShellState::Running } else { ShellState::Stopped },
            started_at: record.started_at,
            ended_at: if running { None } else { record.ended_at },
            exit_code: if running { None } else { record.exit_code },
            execution_mode: self.execution_mode(rec.backend),
        }
    }

    /// Send a shell request; a shell the agent does not know (the guest restarted) is
    /// forgotten and reported as unknown.
    fn shell_call(
        &self,
        dir: &WorkspaceDir,
        channel: &mut dyn AgentChannel,
        record: &ShellRecord,
        request: Request,
        timeout: Duration,
    ) -> Result<Response> {
        match channel.call(request, timeout)? {
            Response::Error { kind: ErrorKind::NotFound, .. } => {
                let _ = fs::remove_file(record_path(dir, &record.shell_id));
                Err(PyroError::UnknownShell {
                    workspace_id: record.workspace_id.clone(),
                    shell_id: record.shell_id.clone(),
                })
            }
            Response::Error { kind, message } => {
                Err(PyroError::guest(kind, self.redactor(dir).redact(&message)))
            }
            other => Ok(other),
        }
    }

    fn touch_workspace(&self, dir: &WorkspaceDir, workspace_id: &str) -> Result<()> {
        let Locked { mut rec, guard: _lock, .. } = self.lock_workspace(workspace_id)?;
        rec.last_activity_at = now();
        Self::save(dir, &rec)
    }

    /// Open an interactive shell in a started guest workspace.
    pub fn shell_open(&self, p: ShellOpenParams) -> Result<Shell> {
        let (cols, rows) = check_size(p.cols, p.rows)?;
        let cwd = validate::workspace_path(&p.cwd, true)?;
        let (dir, rec) = self.shell_workspace(&p.workspace_id)?;
        let secret_map = p.secret_env.clone().unwrap_or_default();
        let env = self.secret_env(&dir, &rec, &secret_map)?;
        let redactor = self.redactor(&dir);
        let mut ch = self.channel(&dir, &rec)?;
        if !secret_map.is_empty() {
            self.install_secrets(&dir, &rec, ch.as_mut())?;
        }
        let shell_id = state::new_id();
        let request = Request::ShellOpen(ShellOpenRequest {
            shell_id: shell_id.clone(),
            cwd: cwd.clone(),
            cols,
            rows,
            env,
            redact: redactor.values().to_vec(),
        });
        let status =
            match agent::call(ch.as_mut(), request, QUICK).map_err(|e| redactor.redact_error(e))? {
                Response::Shell(status) => status,
                other => return Err(agent::unexpected("shell_open", &other)),
            };
        drop(ch);
        let mut record = ShellRecord {
            workspace_id: p.workspace_id.clone(),
            shell_id,
            cwd,
            cols: p.cols,
            rows: p.rows,
            started_at: now(),
            ended_at: None,
            exit_code: None,
        };
        fs::create_dir_all(shells_dir(&dir)).map_err(|e| {
            PyroError::io("could not create the shells directory", shells_dir(&dir), e)
        })?;
        state::write_json(&record_path(&dir, &record.shell_id), &record)?;
        Self::note_status(&dir, &mut record, &status);
        self.touch_workspace(&dir, &p.workspace_id)?;
        Ok(self.public_shell(&rec, &record, status.running))
    }

    /// Read a shell's output from a cursor.
    pub fn shell_read(&self, p: ShellReadParams) -> Result<ShellReadResult> {
        check_read(&p)?;
        let (dir, rec) = self.shell_workspace(&p.workspace_id)?;
        let mut record = self.shell_record(&dir, &p.workspace_id, &p.shell_id)?;
        let mut ch = self.channel(&dir, &rec)?;
        let request = Request::ShellRead(ShellReadRequest {
            shell_id: p.shell_id.clone(),
            cursor: p.cursor,
            max_chars: p.max_chars,
            wait_for_idle_ms: p.wait_for_idle_ms,
        });
        let timeout = read_deadline(p.wait_for_idle_ms);
        let out = match self.shell_call(&dir, ch.as_mut(), &record, request, timeout)? {
            Response::ShellOutput(out) => out,
            other => return Err(agent::unexpected("shell_read", &other)),
        };
        drop(ch);
        Self::note_status(&dir, &mut record, &out.shell);
        let redactor = self.redactor(&dir);
        let (output, next_cursor, truncated) = if p.plain {
            let (text, consumed, cut) = render_plain(&out.output, p.max_chars, out.truncated);
            let next = out.cursor + consumed;
            (redactor.redact(&text), next, cut || out.truncated || next < out.next_cursor)
        } else {
            (redactor.redact(&out.output), out.next_cursor, out.truncated)
        };
        Ok(ShellReadResult {
            shell: self.public_shell(&rec, &record, out.shell.running),
            cursor: out.cursor,
            next_cursor,
            output,
            truncated,
            plain: p.plain,
            wait_for_idle_ms: p.wait_for_idle_ms,
        })
    }

    /// Type input into a shell (and press Enter unless `append_newline` is false).
    pub fn shell_write(&self, p: ShellWriteParams) -> Result<ShellWriteResult> {
        validate::payload("input", &p.input)?;
        let (dir, rec) = self.shell_workspace(&p.workspace_id)?;
        let mut record = self.shell_record(&dir, &p.workspace_id, &p.shell_id)?;
        let mut input = p.input.clone();
        if p.append_newline {
            input.push_str(ENTER);
        }
        let mut ch = self.channel(&dir, &rec)?;
        let request = Request::ShellWrite { shell_id: p.shell_id.clone(), input };
        let status = match self.shell_call(&dir, ch.as_mut(), &record, request, QUICK)? {
            Response::Shell(status) => status,
            other => return Err(agent::unexpected("shell_write", &other)),
        };
        drop(ch);
        Self::note_status(&dir, &mut record, &status);
        self.touch_workspace(&dir, &p.workspace_id)?;
        Ok(ShellWriteResult {
            shell: self.public_shell(&rec, &record, status.running),
            input_length: p.input.chars().count() as u64,
            append_newline: p.append_newline,
        })
    }

    /// Send HUP, INT, TERM or KILL to a shell's foreground job (and, except for INT, to
    /// the shell itself).
    pub fn shell_signal(&self, p: ShellSignalParams) -> Result<ShellSignalResult> {
        let signal = signal_name(&p.signal_name)?;
        let (dir, rec) = self.shell_workspace(&p.workspace_id)?;
        let mut record = self.shell_record(&dir, &p.workspace_id, &p.shell_id)?;
        let mut ch = self.channel(&dir, &rec)?;
        let request =
            Request::ShellSignal { shell_id: p.shell_id.clone(), signal: signal.to_string() };
        let status = match self.shell_call(&dir, ch.as_mut(), &record, request, QUICK)? {
            Response::Shell(status) => status,
            other => return Err(agent::unexpected("shell_signal", &other)),
        };
        drop(ch);
        Self::note_status(&dir, &mut record, &status);
        self.touch_workspace(&dir, &p.workspace_id)?;
        Ok(ShellSignalResult {
            shell: self.public_shell(&rec, &record, status.running),
            signal: signal.to_string(),
        })
    }

    /// Change a shell's terminal size (an SDK extension; the foreground job gets
    /// SIGWINCH).
    pub fn shell_resize(&self, p: ShellResizeParams) -> Result<Shell> {
        let (cols, rows) = check_size(p.cols, p.rows)?;
        let (dir, rec) = self.shell_workspace(&p.workspace_id)?;
        let mut record = self.shell_record(&dir, &p.workspace_id, &p.shell_id)?;
        let mut ch = self.channel(&dir, &rec)?;
        let request = Request::ShellResize { shell_id: p.shell_id.clone(), cols, rows };
        let status = match self.shell_call(&dir, ch.as_mut(), &record, request, QUICK)? {
            Response::Shell(status) => status,
            other => return Err(agent::unexpected("shell_resize", &other)),
        };
        drop(ch);
        Self::note_status(&dir, &mut record, &status);
        Ok(self.public_shell(&rec, &record, status.running))
    }

    /// End a shell (SIGHUP, up to 5 s, SIGKILL) and delete its record.
    pub fn shell_close(&self, p: ShellIdParams) -> Result<ShellCloseResult> {
        let (dir, rec) = self.shell_workspace(&p.workspace_id)?;
        let mut record = self.shell_record(&dir, &p.workspace_id, &p.shell_id)?;
        let mut ch = self.channel(&dir, &rec)?;
        let request = Request::ShellClose { shell_id: p.shell_id.clone() };
        let status = match ch.call(request, CLOSE_DEADLINE)? {
            Response::Shell(status) => Some(status),
            // The guest no longer has it (it was restarted): closing is done.
            Response::Error { kind: ErrorKind::NotFound, .. } => None,
            Response::Error { kind, message } => {
                return Err(PyroError::guest(kind, self.redactor(&dir).redact(&message)))
            }
            other => return Err(agent::unexpected("shell_close", &other)),
        };
        drop(ch);
        match &status {
            Some(status) => Self::note_status(&dir, &mut record, status),
            None => {
                record.ended_at.get_or_insert_with(now);
            }
        }
        let path = record_path(&dir, &p.shell_id);
        fs::remove_file(&path).map_err(|e| PyroError::io("could not delete", &path, e))?;
        self.touch_workspace(&dir, &p.workspace_id)?;
        Ok(ShellCloseResult { shell: self.public_shell(&rec, &record, false), closed: true })
    }

    /// Close every shell of a workspace that is about to stop or be rebuilt (best
    /// effort: the guest goes away anyway) and drop their records.
    pub(crate) fn close_all_shells(&self, dir: &WorkspaceDir, rec: &WorkspaceRecord) {
        let ids = shell_ids(dir);
        if !ids.is_empty() && self.capabilities(rec.backend).shells && self.is_running(dir, rec) {
            if let Ok(mut ch) = self.channel(dir, rec) {
                for id in &ids {
                    let request = Request::ShellClose { shell_id: id.clone() };
                    if let Err(e) = ch.call(request, CLOSE_DEADLINE) {
                        tracing::debug!(shell_id = %id, error = %e, "closing a shell failed");
                        break;
                    }
                }
            }
        }
        Self::forget_shells(dir);
    }

    /// Drop every shell record (after the guest that ran them is gone).
    pub(crate) fn forget_shells(dir: &WorkspaceDir) {
        let _ = fs::remove_dir_all(shells_dir(dir));
    }
}

/// Ids of the recorded shells, sorted.
fn shell_ids(dir: &WorkspaceDir) -> Vec<String> {
    let mut ids: Vec<String> = fs::read_dir(shells_dir(dir))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").filter(|id| state::is_valid_id(id)).map(str::to_owned)
        })
        .collect();
    ids.sort();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked() {
        assert!(check_size(120, 30).is_ok());
        assert_eq!(
            check_size(0, 30).expect_err("zero").to_string(),
            "cols and rows must be positive"
        );
        assert!(check_size(70_000, 30).is_err());
        let mut p = ShellReadParams::new("w", "s", 0);
        assert!(check_read(&p).is_ok());
        p.max_chars = 0;
        assert_eq!(check_read(&p).expect_err("0").to_string(), "max_chars must be positive");
        p.max_chars = 10;
        for bad in [0, 10_001] {
            p.wait_for_idle_ms = Some(bad);
            assert_eq!(
                check_read(&p).expect_err("range").to_string(),
                "wait_for_idle_ms must be between 1 and 10000"
            );
        }
        p.wait_for_idle_ms = Some(10_000);
        assert!(check_read(&p).is_ok());
    }

    #[test]
    fn signal_names_are_case_insensitive() {
        assert_eq!(signal_name("int").expect("int"), "INT");
        assert_eq!(signal_name(" Kill ").expect("kill"), "KILL");
        assert_eq!(
            signal_name("STOP").expect_err("stop").to_string(),
            "signal_name must be one of: HUP, INT, TERM, KILL"
        );
    }

    #[test]
    fn plain_reads_leave_a_cut_sequence_for_the_next_read() {
        let (text, consumed, cut) =
            render_plain("\u{1b}[31mred\u{1b}[0m\r\nok\u{1b}[3", 100, false);
        assert_eq!(text, "red\nok");
        assert_eq!(consumed, "\u{1b}[31mred\u{1b}[0m\r\nok".chars().count() as u64);
        assert!(!cut);
        // Only a cut sequence and nothing after it: consumed (dropped), no stall.
        let (text, consumed, _) = render_plain("\u{1b}[", 100, false);
        assert_eq!((text.as_str(), consumed), ("", 2));
        // ... but kept when more output is known to follow.
        let (_, consumed, _) = render_plain("\u{1b}[", 100, true);
        assert_eq!(consumed, 0);
        // Plain text longer than max_chars is cut.
        let (text, _, cut) = render_plain("abcdef", 3, false);
        assert_eq!((text.as_str(), cut), ("abc", true));
    }

    #[test]
    fn shell_ids_come_from_valid_record_names() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = WorkspaceDir { root: tmp.path().to_path_buf() };
        fs::create_dir_all(shells_dir(&dir)).expect("mkdir");
        for name in ["0123456789ab.json", "bad.json", "ffffffffffff.json", "x.tmp"] {
            fs::write(shells_dir(&dir).join(name), "{}").expect("write");
        }
        assert_eq!(shell_ids(&dir), ["0123456789ab", "ffffffffffff"]);
        Runtime::forget_shells(&dir);
        assert!(!shells_dir(&dir).exists());
    }
}
