//! Watching a long call: its phases, a running command's output, and cancellation.
//!
//! A caller that wants to see a call while it runs (the MCP server for a client that
//! sent a `progressToken`, the CLI in human mode) gives a [`Watch`] to
//! [`scope`] around the SDK call. The SDK hands it to the blocking runtime thread
//! ([`enter`]), where the long operations report to it ([`phase`], [`current`]):
//! workspace create, start and reset, `vm_run`, env pull and exec. Without a watch
//! nothing changes: exec keeps its one-request path.
//!
//! Cancellation is honoured where giving up leaves nothing half done: a running
//! command is killed in the guest, and a workspace create stops at its next step
//! (after seeding, after booting) and removes the half-made workspace. A reset is not
//! cancellable: once the old guest is stopped, finishing is quicker and leaves the
//! workspace usable, where stopping half way would leave it stopped.
//!
//! The watch travels beside the call (a task-local, then a thread-local) rather than
//! as a parameter so every surface's call (one tool table, SDK methods, CLI commands)
//! keeps its signature.
//!
//! Output given to [`Watch::output`] is already redacted ([`super::secrets::Redactor`]):
//! a secret split across two chunks is held back until it is whole.

use std::cell::RefCell;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Which output of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// What a caller sees of a call while it runs. Every method has a default that does
/// nothing; the methods are called from the runtime's blocking thread.
pub trait Watch: Send + Sync {
    /// A phase of the call began, e.g. `booting`, `booted (clone)`, `seeding`, `running`.
    fn phase(&self, phase: &str) {
        let _ = phase;
    }

    /// Output of the running command, redacted, in the order it was written per stream.
    fn output(&self, stream: OutputStream, text: &str) {
        let _ = (stream, text);
    }

    /// The command is still running after `elapsed` (called after each read of its
    /// output, about once a second when it is quiet).
    fn running(&self, elapsed: Duration) {
        let _ = elapsed;
    }

    /// Whether the caller gave up: the command in the guest is then killed and the call
    /// fails with [`super::PyroError::Cancelled`].
    fn cancelled(&self) -> bool {
        false
    }

    /// Whether output should be passed on as soon as it arrives (a terminal), instead
    /// of about once a second.
    fn wants_output(&self) -> bool {
        false
    }
}

tokio::task_local! {
    static TASK_WATCH: Arc<dyn Watch>;
}

thread_local! {
    static THREAD_WATCH: RefCell<Option<Arc<dyn Watch>>> = const { RefCell::new(None) };
}

/// Run `call` (an SDK call) with `watch` watching it.
pub async fn scope<F: Future>(watch: Arc<dyn Watch>, call: F) -> F::Output {
    TASK_WATCH.scope(watch, call).await
}

/// The watch of the current task, to carry into a blocking thread.
pub(crate) fn of_task() -> Option<Arc<dyn Watch>> {
    TASK_WATCH.try_with(Arc::clone).ok()
}

/// Run `f` on this thread with `watch` as the current watch.
pub(crate) fn enter<T>(watch: Option<Arc<dyn Watch>>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Arc<dyn Watch>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            THREAD_WATCH.with(|w| *w.borrow_mut() = previous);
        }
    }
    let previous = THREAD_WATCH.with(|w| std::mem::replace(&mut *w.borrow_mut(), watch));
    let _restore = Restore(previous);
    f()
}

/// The watch of the call running on this thread, if any.
pub(crate) fn current() -> Option<Arc<dyn Watch>> {
    THREAD_WATCH.with(|w| w.borrow().clone()).or_else(of_task)
}

/// Whether the caller of the call running on this thread gave up (see
/// [`Watch::cancelled`]); `false` without a watch.
pub(crate) fn cancelled() -> bool {
    current().is_some_and(|watch| watch.cancelled())
}

/// Report a phase to the current watch.
pub(crate) fn phase(phase: &str) {
    if let Some(watch) = current() {
        watch.phase(phase);
    }
}

/// Report that a sandbox booted, and how (`booted (clone)`, `booted (cold)`).
pub(crate) fn booted(info: &crate::backend::SandboxInfo) {
    if let Some(watch) = current() {
        match info.metadata.get("boot") {
            Some(kind) => watch.phase(&format!("booted ({kind})")),
            None => watch.phase("booted"),
        }
    }
}
