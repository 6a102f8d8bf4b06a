//! Booting with a watchdog: launch QEMU, wait for the agent's hello on port 0, and kill
//! and relaunch once when it does not come within the deadline.

use super::super::limits::{GuestLimits, HELLO_ANSWER_CAP};
use super::super::BackendError;
use super::channel::{AgentHello, Session};
use super::console::{self, ConsoleMarkers};
use super::launch::{self, LaunchConfig};
use super::layout::{remove_if_exists, SandboxPaths};
use super::process;
use super::qmp::QmpClient;
use pyro_protocol::{Request, AGENT_PORT_COUNT, PROTOCOL_VERSION};
use std::time::{Duration, Instant};

/// Environment variable with the boot deadline in seconds.
pub const BOOT_TIMEOUT_ENV: &str = "PYRO_BOOT_TIMEOUT_SECS";

/// Default boot deadline per attempt.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long QEMU may take to set itself up (until QMP answers), whatever the boot
/// deadline: the watchdog is about the guest, not about QEMU's start.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Launches before giving up.
const MAX_ATTEMPTS: u32 = 2;

/// How often an unanswered hello is sent again while the guest boots.
const HELLO_RESEND: Duration = Duration::from_secs(2);

/// How often QEMU's liveness is checked while waiting.
const LIVENESS_POLL: Duration = Duration::from_millis(250);

/// Console lines quoted in boot errors.
const CONSOLE_TAIL_LINES: usize = 25;

/// The boot deadline: `$PYRO_BOOT_TIMEOUT_SECS` (seconds, fractions allowed), else 30 s.
pub fn boot_timeout() -> Duration {
    parse_boot_timeout(std::env::var(BOOT_TIMEOUT_ENV).ok().as_deref())
}

fn parse_boot_timeout(value: Option<&str>) -> Duration {
    value
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|secs| secs.is_finite() && *secs > 0.0 && *secs < 86_400.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT_BOOT_TIMEOUT)
}

/// A booted guest.
#[derive(Debug, Clone)]
pub struct BootOutcome {
    /// QEMU's pid.
    pub pid: i32,
    /// The agent's hello.
    pub hello: AgentHello,
    /// Launches it took.
    pub attempts: u32,
    /// Time until QEMU answered QMP, successful attempt.
    pub qemu_launch: Duration,
    /// Time from starting QEMU to the hello answer, successful attempt.
    pub launch_to_hello: Duration,
    /// Markers from the console of the successful attempt.
    pub markers: ConsoleMarkers,
}

/// Why one attempt failed.
enum AttemptError {
    /// Worth another launch (hang, crash).
    Retry(String),
    /// Will fail the same way again (protocol mismatch, init fatal error).
    Fatal(BackendError),
}

/// Remove the files of a previous QEMU run (pidfile, sockets).
pub fn remove_runtime_files(paths: &SandboxPaths, agent_ports: usize) -> Result<(), BackendError> {
    for file in paths.runtime_files(agent_ports) {
        remove_if_exists(&file)?;
    }
    Ok(())
}

/// Boot the sandbox described by `config`, with the watchdog.
pub fn boot(config: &LaunchConfig<'_>, timeout: Duration) -> Result<BootOutcome, BackendError> {
    let paths = config.paths;
    let mut failures: Vec<String> = Vec::new();
    let mut last_console = String::new();
    for attempt in 1..=MAX_ATTEMPTS {
        remove_runtime_files(paths, config.agent_ports)?;
        let started = Instant::now();
        let qemu_launch = launch::launch(config, started + timeout.max(LAUNCH_TIMEOUT))?.elapsed;
        let result = wait_for_agent(paths, started + timeout, timeout);
        let console_text = console::read_console(&paths.console_log(), 256 * 1024);
        match result {
            Ok((pid, hello, _session)) => {
                let launch_to_hello = started.elapsed();
                if let Err(e) = cap_console(paths) {
                    process::kill_and_wait(pid);
                    remove_runtime_files(paths, config.agent_ports)?;
                    return Err(e);
                }
                return Ok(BootOutcome {
                    pid,
                    hello,
                    attempts: attempt,
                    qemu_launch,
                    launch_to_hello,
                    markers: console::parse_markers(&console_text),
                });
            }
            Err(failure) => {
                if let Some(pid) = process::read_pidfile(&paths.pidfile()) {
                    if process::qemu_pid(paths) == Some(pid) {
                        process::kill_and_wait(pid);
                    }
                }
                remove_runtime_files(paths, config.agent_ports)?;
                last_console = console::tail_lines(&console_text, CONSOLE_TAIL_LINES);
                let markers = console::parse_markers(&console_text);
                match failure {
                    AttemptError::Fatal(e) => return Err(e),
                    AttemptError::Retry(reason) => {
                        if let Some(fatal) = markers.fatal {
                            return Err(BackendError::Boot(format!(
                                "the guest init failed: {fatal}\nlast console lines:\n{last_console}"
                            )));
                        }
                        tracing::warn!(attempt, %reason, "guest boot attempt failed");
                        failures.push(format!("attempt {attempt}: {reason}"));
                    }
                }
            }
        }
    }
    if last_console.is_empty() {
        last_console = "(the console log is empty)".into();
    }
    Err(BackendError::Boot(format!(
        "the guest agent did not come up ({}); last console lines:\n{last_console}",
        failures.join("; ")
    )))
}

/// How long capping the console may wait for QMP, per try.
const CAP_QMP_TIMEOUT: Duration = Duration::from_secs(2);

/// Switch the console to QEMU's ring buffer now that the agent is up (user code may
/// run from here on). A guest whose console cannot be capped is not handed out.
pub(super) fn cap_console(paths: &SandboxPaths) -> Result<(), BackendError> {
    let max = GuestLimits::from_env().max_console_bytes;
    let mut last = None;
    for _ in 0..3 {
        let capped = QmpClient::connect(&paths.qmp_socket(), CAP_QMP_TIMEOUT)
            .and_then(|mut qmp| console::cap_console(&mut qmp, max));
        match capped {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let reason = last.map(|e| e.to_string()).unwrap_or_default();
    Err(BackendError::Boot(format!("could not cap the guest console over QMP: {reason}")))
}

/// Wait for the agent's hello on port 0 until `deadline`; returns the open session too.
pub(super) fn wait_for_hello(
    paths: &SandboxPaths,
    deadline: Instant,
    timeout: Duration,
) -> Result<(i32, AgentHello, Session), BackendError> {
    wait_for_agent(paths, deadline, timeout).map_err(|e| match e {
        AttemptError::Retry(reason) => BackendError::Boot(reason),
        AttemptError::Fatal(e) => e,
    })
}

/// Wait for the agent's hello on port 0 until `deadline`.
fn wait_for_agent(
    paths: &SandboxPaths,
    deadline: Instant,
    timeout: Duration,
) -> Result<(i32, AgentHello, Session), AttemptError> {
    let Some(pid) = process::qemu_pid(paths) else {
        return Err(AttemptError::Retry("QEMU exited right after starting".into()));
    };
    // Any free port: a long-lived host process may still hold a port lock from a
    // session to the guest's previous run (the lock files outlive QEMU).
    let mut session = 'claim: loop {
        for index in 0..AGENT_PORT_COUNT {
            match Session::claim_port(paths, index) {
                Ok(Some(session)) => break 'claim session,
                Ok(None) => {}
                Err(e) => {
                    return Err(AttemptError::Retry(format!(
                        "cannot connect to agent port {index}: {e}"
                    )))
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(AttemptError::Retry(
                "every agent port stayed locked by other processes".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut ids = Vec::new();
    let mut next_hello = Instant::now();
    loop {
        let now = Instant::now();
        if now >= next_hello {
            match session.send(Request::Hello { protocol: PROTOCOL_VERSION }, deadline, timeout) {
                Ok(id) => ids.push(id),
                Err(e) => return Err(AttemptError::Retry(format!("cannot send hello: {e}"))),
            }
            next_hello = now + HELLO_RESEND;
        }
        let until = deadline.min(next_hello).min(now + LIVENESS_POLL);
        match session.receive_until(&ids, until, HELLO_ANSWER_CAP) {
            Ok(Some((_, response))) => {
                return AgentHello::from_response(response)
                    .map(|hello| (pid, hello, session))
                    .map_err(AttemptError::Fatal)
            }
            Ok(None) => {}
            Err(e @ (BackendError::Protocol(_) | BackendError::InvalidAnswer(_))) => {
                return Err(AttemptError::Fatal(e))
            }
            // The socket closes a moment before the process is gone.
            Err(_) if process::wait_gone(pid, Duration::from_millis(500)) => {
                return Err(AttemptError::Retry(format!(
                    "during boot {}",
                    launch::start_failure(paths, pid)
                )))
            }
            Err(e) => return Err(AttemptError::Retry(format!("the agent connection failed: {e}"))),
        }
        if !process::pid_alive(pid) {
            return Err(AttemptError::Retry(format!(
                "during boot {}",
                launch::start_failure(paths, pid)
            )));
        }
        if Instant::now() >= deadline {
            return Err(AttemptError::Retry(format!(
                "no answer from the agent within {timeout:?}"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_timeout_parsing() {
        assert_eq!(parse_boot_timeout(None), DEFAULT_BOOT_TIMEOUT);
        assert_eq!(parse_boot_timeout(Some("90")), Duration::from_secs(90));
        assert_eq!(parse_boot_timeout(Some(" 2.5 ")), Duration::from_millis(2500));
        for bad in ["", "abc", "0", "-3", "inf", "NaN"] {
            assert_eq!(parse_boot_timeout(Some(bad)), DEFAULT_BOOT_TIMEOUT, "{bad}");
        }
    }
}
