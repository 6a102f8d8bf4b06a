//! Human mode of `pyro run` and `pyro workspace exec`: the command's output streamed to
//! ours as it arrives (stdout to stdout, stderr to stderr), already redacted by the
//! runtime. `--json` does not use this: it prints one result at the end.

use crate::cli::error::CliError;
use crate::cli::output;
use pyro::runtime::watch::{OutputStream, Watch};
use std::io::Write;
use std::sync::{Mutex, PoisonError};

/// Writes a command's output to the terminal while it runs.
#[derive(Debug, Default)]
pub struct TerminalWatch {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// The runtime streamed (an agent with streamed exec): the output was written.
    streamed: bool,
    /// The stderr written so far (to print only what the result adds after it).
    stderr: String,
}

impl TerminalWatch {
    /// Whether the output was streamed (else the caller prints the result's output).
    pub fn streamed(&self) -> bool {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).streamed
    }

    /// What `stderr` (the result's) has beyond what was streamed, e.g. the timeout
    /// notice; empty when it holds nothing more.
    pub fn stderr_rest<'a>(&self, stderr: &'a str) -> &'a str {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        stderr.strip_prefix(seen.stderr.as_str()).unwrap_or("")
    }

    /// Print a finished command's `stdout` and `stderr`: only what streaming has not
    /// written yet (the rest of stderr), or all of it when nothing was streamed.
    pub fn print_result_output(&self, stdout: &str, stderr: &str) -> Result<(), CliError> {
        if self.streamed() {
            output::stderr_text(self.stderr_rest(stderr));
        } else {
            output::stdout_text(stdout)?;
            output::stderr_text(stderr);
        }
        Ok(())
    }
}

impl Watch for TerminalWatch {
    fn phase(&self, phase: &str) {
        if phase == "running" {
            self.seen.lock().unwrap_or_else(PoisonError::into_inner).streamed = true;
        }
    }

    fn output(&self, stream: OutputStream, text: &str) {
        // Errors (a closed pipe) are ignored here; the final result still reports.
        match stream {
            OutputStream::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            }
            OutputStream::Stderr => {
                self.seen.lock().unwrap_or_else(PoisonError::into_inner).stderr.push_str(text);
                super::output::stderr_text(text);
            }
        }
    }

    fn wants_output(&self) -> bool {
        true
    }
}
