//! MCP progress and cancellation for one `tools/call`.
//!
//! When the client's request carries `_meta.progressToken`, [`McpWatch`] turns the
//! call's phases (`booting`, `booted (clone)`, `seeding`, `running`, ...) into
//! `notifications/progress`, and a running command into one about once a second with
//! its elapsed time and the tail of its (redacted) output. The notifications go out in
//! order through one forwarding task. Whatever the token, a `notifications/cancelled`
//! for the request (rmcp cancels the request's token) makes [`Watch::cancelled`] true:
//! a running command is killed in the guest and the call ends with a `cancelled` error.

use crate::runtime::watch::{OutputStream, Watch};
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RequestContext};
use rmcp::RoleServer;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Characters of output kept for a progress message.
const TAIL_CHARS: usize = 400;

/// Least time between two progress messages of a running command.
const RUNNING_EVERY: Duration = Duration::from_millis(900);

/// The watch of one tool call.
pub(crate) struct McpWatch {
    progress: Option<mpsc::UnboundedSender<String>>,
    cancelled: Box<dyn Fn() -> bool + Send + Sync>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    tail: String,
    last_running: Option<Instant>,
}

impl std::fmt::Debug for McpWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpWatch").field("progress", &self.progress.is_some()).finish()
    }
}

impl McpWatch {
    /// The watch of the request behind `context`; progress goes out only when it
    /// carries a progress token. Await the returned sender task (once every clone of
    /// the watch is dropped) before answering, so all progress precedes the result.
    pub(crate) fn new(
        context: &RequestContext<RoleServer>,
    ) -> (Self, Option<tokio::task::JoinHandle<()>>) {
        let (progress, sender) = match context.meta.get_progress_token() {
            Some(token) => {
                let (tx, task) = forward(context.peer.clone(), token);
                (Some(tx), Some(task))
            }
            None => (None, None),
        };
        let ct = context.ct.clone();
        let watch = McpWatch {
            progress,
            cancelled: Box::new(move || ct.is_cancelled()),
            state: Mutex::default(),
        };
        (watch, sender)
    }

    fn send(&self, message: String) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(message);
        }
    }
}

/// Start the task that sends `notifications/progress` for `token`, in order, with a
/// rising progress count; it ends when the call's watch is dropped.
fn forward(
    peer: Peer<RoleServer>,
    token: ProgressToken,
) -> (mpsc::UnboundedSender<String>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let task = tokio::spawn(async move {
        let mut count = 0.0;
        while let Some(message) = rx.recv().await {
            count += 1.0;
            let mut param = ProgressNotificationParam::new(token.clone(), count);
            param.message = Some(message);
            if peer.notify_progress(param).await.is_err() {
                break;
            }
        }
    });
    (tx, task)
}

impl Watch for McpWatch {
    fn phase(&self, phase: &str) {
        self.send(phase.to_string());
    }

    fn output(&self, _stream: OutputStream, text: &str) {
        if self.progress.is_none() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.tail.push_str(text);
        let len = state.tail.chars().count();
        if len > TAIL_CHARS {
            state.tail = state.tail.chars().skip(len - TAIL_CHARS).collect();
        }
    }

    fn running(&self, elapsed: Duration) {
        if self.progress.is_none() {
            return;
        }
        let message = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.last_running.is_some_and(|at| at.elapsed() < RUNNING_EVERY) {
                return;
            }
            state.last_running = Some(Instant::now());
            format!("running ({:.1} s); output tail: {}", elapsed.as_secs_f64(), state.tail)
        };
        self.send(message);
    }

    fn cancelled(&self) -> bool {
        (self.cancelled)()
    }
}
