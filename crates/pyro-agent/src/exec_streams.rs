//! Streamed execs ([`pyro_protocol::Request::ExecStart`], `ExecRead`, `ExecKill`): the
//! commands started by id, so a host can read their output while they run (from any
//! connection) and kill them.
//!
//! An entry lives until a read answered with the command's exit (the host then has
//! everything) or, once [`MAX_STREAMED_EXECS`] are kept, until it ended and room is
//! needed. Killing an unknown or forgotten id is not an error: the command is gone.

use crate::error::SandboxError;
use crate::exec::{self, ExecPlan, Running};
use pyro_protocol::{ExecChunk, ExecReadRequest, ExecWait};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Most streamed execs kept at once (running or ended and not yet read to the end).
pub const MAX_STREAMED_EXECS: usize = 64;

/// Longest exec id.
const MAX_ID_LEN: usize = 64;

/// The streamed execs of one sandbox.
#[derive(Debug, Default)]
pub(crate) struct ExecStreams {
    by_id: Mutex<HashMap<String, Arc<Running>>>,
}

fn check_id(id: &str) -> Result<(), SandboxError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SandboxError::Invalid(format!(
            "exec_id must be 1-{MAX_ID_LEN} characters of [A-Za-z0-9_-]"
        )))
    }
}

impl ExecStreams {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Running>>> {
        // Only map operations happen under the lock; the map stays consistent.
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start `plan` under `id`, then answer its first read.
    pub(crate) fn start(
        &self,
        id: &str,
        plan: &ExecPlan<'_>,
        wait: &ExecWait,
    ) -> Result<ExecChunk, SandboxError> {
        check_id(id)?;
        let (running, pending) = {
            let mut by_id = self.lock();
            if by_id.contains_key(id) {
                return Err(SandboxError::Invalid(format!("exec_id {id} is already in use")));
            }
            if by_id.len() >= MAX_STREAMED_EXECS {
                by_id.retain(|_, running| !running.ended());
            }
            if by_id.len() >= MAX_STREAMED_EXECS {
                return Err(SandboxError::TooManyExecs(MAX_STREAMED_EXECS));
            }
            let (running, pending) = exec::start(plan)?;
            let running = Arc::new(running);
            by_id.insert(id.to_owned(), Arc::clone(&running));
            (running, pending)
        };
        // Outside the table's lock: a kill from another connection can reach it.
        let first = Duration::from_millis(wait.wait_ms.min(pyro_protocol::EXEC_MAX_WAIT_MS));
        if let Err(e) = pending.watch(first, wait.return_on_output) {
            self.lock().remove(id);
            return Err(e);
        }
        self.answer(id, &running, 0, 0, wait)
    }

    /// Answer a read.
    pub(crate) fn read(&self, req: &ExecReadRequest) -> Result<ExecChunk, SandboxError> {
        let running = self
            .lock()
            .get(&req.exec_id)
            .cloned()
            .ok_or_else(|| SandboxError::UnknownExec(req.exec_id.clone()))?;
        self.answer(&req.exec_id, &running, req.stdout_offset, req.stderr_offset, &req.wait)
    }

    fn answer(
        &self,
        id: &str,
        running: &Running,
        stdout_offset: u64,
        stderr_offset: u64,
        wait: &ExecWait,
    ) -> Result<ExecChunk, SandboxError> {
        let chunk = running.read(stdout_offset, stderr_offset, wait)?;
        if chunk.exit.is_some() {
            self.lock().remove(id);
        }
        Ok(chunk)
    }

    /// Kill the command `id` (nothing when it is unknown or ended).
    pub(crate) fn kill(&self, id: &str) -> Result<(), SandboxError> {
        check_id(id)?;
        if let Some(running) = self.lock().get(id).cloned() {
            running.kill();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn text(b64: &str) -> String {
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
        String::from_utf8(bytes).expect("utf8")
    }

    fn start(streams: &ExecStreams, id: &str, command: &str, timeout_ms: u64) -> ExecChunk {
        let env = BTreeMap::new();
        let dir = std::env::temp_dir();
        let plan = ExecPlan {
            command,
            cwd: &dir,
            base_env: exec::BaseEnv::Inherit,
            env: &env,
            timeout: Duration::from_millis(timeout_ms),
            max_output_bytes: 1024,
        };
        let wait = ExecWait { wait_ms: 10_000, return_on_output: true, max_bytes: 1024 };
        streams.start(id, &plan, &wait).expect("start")
    }

    fn read(streams: &ExecStreams, id: &str, out: u64, err: u64) -> ExecChunk {
        streams
            .read(&ExecReadRequest {
                exec_id: id.into(),
                stdout_offset: out,
                stderr_offset: err,
                wait: ExecWait { wait_ms: 10_000, return_on_output: true, max_bytes: 1024 },
            })
            .expect("read")
    }

    #[test]
    fn output_arrives_before_the_command_ends_then_the_exit() {
        let streams = ExecStreams::default();
        // The second line only comes once the first was read: the first read must
        // answer with it while the command still waits.
        let marker = tempfile::tempdir().expect("tempdir");
        let go = marker.path().join("go");
        let command = format!(
            "echo first; while [ ! -e {} ]; do sleep 0.05; done; echo second; echo oops >&2; exit 3",
            go.display()
        );
        let first = start(&streams, "e1", &command, 20_000);
        assert_eq!(text(&first.stdout_b64), "first\n");
        assert_eq!(first.exit, None, "the command is still waiting");
        std::fs::write(&go, b"").expect("go");
        let (mut out, mut err) = (String::from("first\n"), String::new());
        let exit = loop {
            let chunk = read(&streams, "e1", out.len() as u64, err.len() as u64);
            assert_eq!(chunk.stdout_offset, out.len() as u64);
            out.push_str(&text(&chunk.stdout_b64));
            err.push_str(&text(&chunk.stderr_b64));
            if let Some(exit) = chunk.exit {
                break exit;
            }
        };
        assert_eq!((out.as_str(), err.as_str()), ("first\nsecond\n", "oops\n"));
        assert_eq!((exit.exit_code, exit.killed, exit.timed_out), (3, false, false));
        // Read to its end, the command is forgotten.
        let gone = streams.read(&ExecReadRequest {
            exec_id: "e1".into(),
            stdout_offset: 0,
            stderr_offset: 0,
            wait: ExecWait { wait_ms: 0, return_on_output: false, max_bytes: 1 },
        });
        assert!(matches!(gone, Err(SandboxError::UnknownExec(_))), "{gone:?}");
    }

    #[test]
    fn kill_ends_the_whole_group_and_timeouts_still_say_124() {
        let streams = ExecStreams::default();
        let chunk = start(&streams, "k1", "echo started; sleep 600 & wait", 60_000);
        assert_eq!(text(&chunk.stdout_b64), "started\n");
        streams.kill("k1").expect("kill");
        let chunk = read(&streams, "k1", 8, 0);
        let exit = chunk.exit.expect("ended after the kill");
        assert!(exit.killed && !exit.timed_out, "{exit:?}");
        assert_eq!(exit.exit_code, 128 + libc::SIGKILL);
        streams.kill("k1").expect("killing a forgotten command is fine");

        let chunk = start(&streams, "t1", "sleep 5", 200);
        let exit = match chunk.exit {
            Some(exit) => exit,
            None => read(&streams, "t1", 0, 0).exit.expect("timed out"),
        };
        assert_eq!((exit.exit_code, exit.timed_out, exit.killed), (124, true, false));
    }

    #[test]
    fn ids_are_checked_and_unique() {
        let streams = ExecStreams::default();
        assert!(matches!(streams.kill("../x"), Err(SandboxError::Invalid(_))));
        let env = BTreeMap::new();
        let dir = std::env::temp_dir();
        let plan = ExecPlan {
            command: "sleep 5",
            cwd: &dir,
            base_env: exec::BaseEnv::Inherit,
            env: &env,
            timeout: Duration::from_secs(5),
            max_output_bytes: 10,
        };
        let wait = ExecWait { wait_ms: 0, return_on_output: false, max_bytes: 10 };
        let first = streams.start("same", &plan, &wait).expect("start");
        assert_eq!(first.exit, None);
        assert!(matches!(streams.start("same", &plan, &wait), Err(SandboxError::Invalid(_))));
        streams.kill("same").expect("kill");
    }
}
