//! Running a command in `/workspace` and its history.

use super::*;

impl Runtime {
    /// Run a command in `/workspace`.
    pub fn workspace_exec(&self, p: WorkspaceExecParams) -> Result<WorkspaceExecResult> {
        validate::command(&p.command)?;
        validate::timeout(p.timeout_seconds)?;
        let (dir, rec) = self.load(&p.workspace_id)?;
        let secret_map = p.secret_env.clone().unwrap_or_default();
        let env = self.secret_env(&dir, &rec, &secret_map)?;
        self.require_started(&dir, &rec, "workspace_exec")?;
        let redactor = self.redactor(&dir);
        let sequence = {
            let Locked { mut rec, guard: _lock, .. } = self.lock_workspace(&p.workspace_id)?;
            let seq = rec.next_sequence;
            rec.next_sequence += 1;
            Self::save(&dir, &rec)?;
            seq
        };
        let mut ch = self.channel(&dir, &rec)?;
        if !secret_map.is_empty() {
            self.install_secrets(&dir, &rec, ch.as_mut())?;
        }
        let request = ExecRequest {
            command: p.command.clone(),
            cwd: WORKSPACE_PATH.into(),
            env,
            timeout_ms: p.timeout_seconds.saturating_mul(1000),
            max_output_bytes: validate::MAX_OUTPUT_BYTES,
        };
        let watch = crate::runtime::watch::current();
        let out = match crate::runtime::exec_stream::run(
            ch.as_mut(),
            request,
            p.timeout_seconds,
            &redactor,
            watch.as_deref(),
        ) {
            Ok(Response::Exec(out)) => out,
            Ok(Response::Error { kind, message }) => {
                return Err(PyroError::guest(kind, redactor.redact(&message)))
            }
            Ok(other) => return Err(redactor.redact_error(unexpected("exec", &other))),
            Err(err) => {
                drop(ch);
                let err = redactor.redact_error(err);
                self.note_error(&dir, &p.workspace_id, &err.to_string());
                return Err(err);
            }
        };
        drop(ch);
        let clean = |b64: &str| -> Result<String> {
            let text = lossy(&agent::note_health(
                &dir.agent_health(),
                agent::exec_output(b64, validate::MAX_OUTPUT_BYTES),
            )?);
            Ok(if out.truncated {
                redactor.redact_truncated(&text)
            } else {
                redactor.redact(&text)
            })
        };
        let stdout = clean(&out.stdout_b64)?;
        let mut stderr = clean(&out.stderr_b64)?;
        agent::note_timeout(&mut stderr, out.timed_out, p.timeout_seconds);
        let mode = self.execution_mode(rec.backend);
        let Locked { mut rec, guard: _lock, .. } = self.lock_workspace(&p.workspace_id)?;
        let logged_command = redactor.redact(&p.command);
        let last = LastCommand {
            sequence,
            command: logged_command.clone(),
            cwd: WORKSPACE_PATH.into(),
            exit_code: out.exit_code,
            duration_ms: out.duration_ms,
            execution_mode: mode,
        };
        let entry = CommandLogEntry {
            sequence,
            command: logged_command,
            cwd: WORKSPACE_PATH.into(),
            exit_code: out.exit_code,
            duration_ms: out.duration_ms,
            execution_mode: mode,
            recorded_at: now(),
            stdout: stdout.clone(),
            stderr: stderr.clone(),
        };
        fs::create_dir_all(dir.commands())
            .map_err(|e| PyroError::io("could not create history directory", dir.commands(), e))?;
        state::write_json(&dir.commands().join(format!("{sequence:06}.json")), &entry)?;
        rec.command_count += 1;
        if rec.last_command.as_ref().is_none_or(|l| l.sequence < sequence) {
            rec.last_command = Some(last);
        }
        rec.last_activity_at = now();
        Self::save(&dir, &rec)?;
        Ok(WorkspaceExecResult {
            workspace_id: rec.workspace_id.clone(),
            environment: rec.environment.clone(),
            environment_version: rec.environment_version.clone(),
            command: p.command,
            stdout,
            stderr,
            exit_code: out.exit_code,
            duration_ms: out.duration_ms,
            truncated: out.truncated,
            execution_mode: mode,
            accel: rec.accel,
            sequence,
            cwd: WORKSPACE_PATH.into(),
        })
    }

    pub(super) fn note_error(&self, dir: &WorkspaceDir, id: &str, message: &str) {
        let _ = dir;
        if let Ok(mut locked) = self.lock_workspace(id) {
            locked.rec.last_error = Some(message.to_string());
            let _ = locked.save();
        }
    }

    /// The exec history.
    pub fn workspace_logs(&self, workspace_id: &str) -> Result<WorkspaceLogs> {
        let (dir, _) = self.load(workspace_id)?;
        let mut files: Vec<PathBuf> = fs::read_dir(dir.commands())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut entries = Vec::new();
        for f in files {
            entries.push(state::read_json::<CommandLogEntry>(&f)?);
        }
        Ok(WorkspaceLogs {
            workspace_id: workspace_id.into(),
            count: entries.len() as u64,
            entries,
        })
    }
}
