//! Running a command while someone watches ([`super::watch`]): output streamed from the
//! agent as it comes, redacted before it is passed on, and a kill when the watcher
//! gives up.
//!
//! Without a watch, or with an agent that does not name [`EXEC_STREAM_CAPABILITY`] in its
//! hello, a command is one [`Request::Exec`] as before. With one, it is an
//! [`Request::ExecStart`] and [`Request::ExecRead`]s: each waits in the agent until the
//! command ends, or (when the watcher [wants it](Watch::wants_output)) new output
//! arrives, or a second passes, so a quick command is still one round trip and a quiet
//! one costs a read per second. The answer is assembled into the same
//! [`ExecOutput`] an `Exec` gives, so timeouts (exit 124), caps, redaction and history
//! stay as they were.
//!
//! The guest is untrusted: every chunk must start where the host's copy ends, and the
//! output may not grow past what was asked.

use super::agent::{self, b64, unexpected};
use super::error::{PyroError, Result};
use super::secrets::Redactor;
use super::watch::{OutputStream, Watch};
use crate::backend::AgentChannel;
use pyro_protocol::{
    ExecReadRequest, ExecRequest, ExecStartRequest, ExecWait, Request, Response,
    EXEC_STREAM_CAPABILITY,
};
use std::time::{Duration, Instant};

/// How long one read waits in the agent when nothing else ends it.
const POLL_MS: u64 = 1000;

/// Margin for a read's round trip on top of its wait.
const READ_MARGIN: Duration = Duration::from_secs(30);

/// How long the reads after a kill may take in all.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// Run `request` in the sandbox behind `channel`; answer as an `Exec` would
/// ([`Response::Exec`], or the agent's [`Response::Error`]).
pub(super) fn run(
    channel: &mut dyn AgentChannel,
    request: ExecRequest,
    timeout_seconds: u64,
    redactor: &Redactor,
    watch: Option<&dyn Watch>,
) -> Result<Response> {
    let deadline = agent::exec_deadline(timeout_seconds);
    let Some(watch) = watch.filter(|_| channel.supports(EXEC_STREAM_CAPABILITY)) else {
        return Ok(channel.call(Request::Exec(request), deadline)?);
    };
    watch.phase("running");
    let started = Instant::now();
    let max = request.max_output_bytes;
    let wait =
        ExecWait { wait_ms: POLL_MS, return_on_output: watch.wants_output(), max_bytes: max };
    let per_read = Duration::from_millis(POLL_MS) + READ_MARGIN;
    let exec_id = uuid::Uuid::new_v4().simple().to_string();
    let mut streams = [Streamed::new(OutputStream::Stdout), Streamed::new(OutputStream::Stderr)];
    let mut answer = channel.call(
        Request::ExecStart(ExecStartRequest { exec_id: exec_id.clone(), exec: request, wait }),
        per_read,
    )?;
    let mut killed_at: Option<Instant> = None;
    loop {
        let chunk = match answer {
            Response::ExecChunk(chunk) => chunk,
            error @ Response::Error { .. } => return Ok(error),
            other => return Err(unexpected("exec_start", &other)),
        };
        for (stream, (offset, data)) in streams.iter_mut().zip([
            (chunk.stdout_offset, &chunk.stdout_b64),
            (chunk.stderr_offset, &chunk.stderr_b64),
        ]) {
            stream.take(offset, data, max)?;
            if killed_at.is_none() {
                stream.pass_on(watch, redactor, chunk.exit.is_some());
            }
        }
        if let Some(exit) = chunk.exit {
            if killed_at.is_some() {
                return Err(PyroError::Cancelled(format!(
                    "the command was cancelled and killed in the guest after {:.1} s",
                    started.elapsed().as_secs_f64()
                )));
            }
            let [out, err] = streams;
            return Ok(Response::Exec(pyro_protocol::ExecOutput {
                stdout_b64: b64(&out.bytes),
                stderr_b64: b64(&err.bytes),
                truncated: exit.truncated,
                exit_code: exit.exit_code,
                signal: exit.signal,
                timed_out: exit.timed_out,
                duration_ms: exit.duration_ms,
            }));
        }
        if killed_at.is_none() {
            watch.running(started.elapsed());
            if watch.cancelled() {
                agent::call(channel, Request::ExecKill { exec_id: exec_id.clone() }, per_read)?;
                killed_at = Some(Instant::now());
            } else if started.elapsed() > deadline {
                agent::call(channel, Request::ExecKill { exec_id: exec_id.clone() }, per_read)?;
                return Err(crate::backend::BackendError::Timeout(deadline).into());
            }
        } else if killed_at.is_some_and(|at| at.elapsed() > KILL_GRACE) {
            return Err(PyroError::Cancelled(
                "the command was cancelled; the guest did not confirm the kill".into(),
            ));
        }
        let [out, err] = &streams;
        answer = channel.call(
            Request::ExecRead(ExecReadRequest {
                exec_id: exec_id.clone(),
                stdout_offset: out.bytes.len() as u64,
                stderr_offset: err.bytes.len() as u64,
                wait,
            }),
            per_read,
        )?;
    }
}

/// One output stream of a streamed command: everything received, and what of it was
/// passed on to the watcher.
struct Streamed {
    which: OutputStream,
    bytes: Vec<u8>,
    passed: usize,
}

impl Streamed {
    fn new(which: OutputStream) -> Self {
        Streamed { which, bytes: Vec::new(), passed: 0 }
    }

    /// Append a chunk that must start at `offset` (where ours ends) and keep the
    /// stream within `max` bytes.
    fn take(&mut self, offset: u64, data: &str, max: u64) -> Result<()> {
        let have = self.bytes.len() as u64;
        if offset != have {
            return Err(agent::invalid(format!(
                "an exec chunk at offset {offset} when {have} bytes were received"
            )));
        }
        let room = max.saturating_sub(have);
        self.bytes.extend_from_slice(&agent::exec_output(data, room)?);
        if self.bytes.len() as u64 > max {
            return Err(agent::invalid(format!("exec output past its cap of {max} bytes")));
        }
        Ok(())
    }

    /// Pass on what can be shown safely: whole UTF-8 characters, and no tail that
    /// could be the start of a secret (everything at the end).
    fn pass_on(&mut self, watch: &dyn Watch, redactor: &Redactor, end: bool) {
        let pending = &self.bytes[self.passed..];
        let n = if end { pending.len() } else { safe_len(pending, redactor.values()) };
        if n == 0 {
            return;
        }
        let text = redactor.redact(&String::from_utf8_lossy(&pending[..n]));
        self.passed += n;
        watch.output(self.which, &text);
    }
}

/// The longest prefix of `pending` that can be redacted and shown now: it ends on a
/// UTF-8 character boundary, no secret occurrence crosses its end, and what follows it
/// is not the start of a secret that more output could complete.
fn safe_len(pending: &[u8], secrets: &[String]) -> usize {
    let mut n = complete_utf8_len(pending);
    for secret in secrets {
        let s = secret.as_bytes();
        for k in (1..s.len()).rev() {
            if n >= k && pending[..n].ends_with(&s[..k]) {
                n -= k;
                break;
            }
        }
    }
    // Move the end before any occurrence that crosses it (repeat: moving can create
    // a new crossing with another secret; each move goes left, so this ends).
    loop {
        let crossing = secrets
            .iter()
            .filter_map(|secret| {
                let s = secret.as_bytes();
                let first = n.saturating_sub(s.len() - 1);
                (first..n).find(|&start| {
                    start + s.len() > n && pending.get(start..start + s.len()) == Some(s)
                })
            })
            .min();
        match crossing {
            Some(start) => n = start,
            None => return n,
        }
    }
}

/// Length of `bytes` without a trailing, incomplete multi-byte UTF-8 sequence.
fn complete_utf8_len(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let i = bytes.len() - back;
        let b = bytes[i];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead
        }
        let need = match b {
            b if b & 0xE0 == 0xC0 => 2,
            b if b & 0xF0 == 0xE0 => 3,
            b if b & 0xF8 == 0xF0 => 4,
            _ => 1,
        };
        return if back < need { i } else { bytes.len() };
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Seen(Mutex<String>);

    impl Watch for Seen {
        fn output(&self, _stream: OutputStream, text: &str) {
            self.0.lock().expect("lock").push_str(text);
        }
    }

    #[test]
    fn a_secret_split_across_chunks_is_never_shown() {
        let redactor = Redactor::new(["hunter2-secret".to_string(), "xyz".to_string()]);
        for cut in 1..30 {
            let text = "before hunter2-secret middle xyz after hunter2-se";
            let seen = Seen::default();
            let mut stream = Streamed::new(OutputStream::Stdout);
            let (a, b) = text.as_bytes().split_at(cut.min(text.len()));
            for (part, end) in [(a, false), (b, true)] {
                stream.bytes.extend_from_slice(part);
                stream.pass_on(&seen, &redactor, end);
            }
            let shown = seen.0.lock().expect("lock").clone();
            assert!(!shown.contains("hunter2-secret") && !shown.contains("xyz"), "{cut}: {shown}");
            assert!(shown.starts_with("before [REDACTED] middle [REDACTED] after"), "{shown}");
        }
    }

    #[test]
    fn characters_are_never_split() {
        let text = "héllo wörld ✓".as_bytes();
        for cut in 0..text.len() {
            let n = complete_utf8_len(&text[..cut]);
            assert!(std::str::from_utf8(&text[..n]).is_ok(), "{cut}");
            assert!(cut - n < 4);
        }
    }
}
