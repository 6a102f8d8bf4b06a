//! Wire types of services: named long-running processes the agent starts, watches and
//! stops (requests `service_*`, since protocol 1.3).
//!
//! The agent keeps each service's record in [`SERVICES_DIR`]`/<name>.json` and its output
//! in `<name>.stdout` / `<name>.stderr` there (on the guest's `/run` tmpfs: never in
//! `/workspace`, so diff and export do not see them, and gone after a reboot).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Guest directory of service records and logs.
pub const SERVICES_DIR: &str = "/run/pyro-services";

/// When a service counts as ready. Addresses and URLs are reached from inside the guest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Readiness {
    /// A path under `/workspace` exists.
    File {
        /// Absolute guest path under `/workspace`.
        path: String,
    },
    /// `HOST:PORT` accepts a TCP connection (1 s connect timeout).
    Tcp {
        /// `HOST:PORT` (`[v6]:PORT` for IPv6 literals).
        address: String,
    },
    /// `GET url` answers 2xx or 3xx (2 s timeout; `http://` only).
    Http {
        /// The URL.
        url: String,
    },
    /// `/bin/sh -lc command` in the service's cwd exits 0 (10 s timeout).
    Command {
        /// Shell command.
        command: String,
    },
}

/// A TCP port the host forwards from its `127.0.0.1` to the guest. The agent only
/// stores these (the host adds the forwards once the service is ready).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortForward {
    /// Port on the host's 127.0.0.1.
    pub host_port: u16,
    /// Port in the guest.
    pub guest_port: u16,
}

/// How to start a service ([`crate::Request::ServiceStart`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceStartRequest {
    /// Service name, `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
    pub name: String,
    /// Shell command run with `/bin/sh -lc` in its own session.
    pub command: String,
    /// Working directory: a directory under `/workspace`.
    pub cwd: String,
    /// Extra environment variables (on top of the agent's).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Readiness probe; `None` means ready as soon as it started.
    #[serde(default)]
    pub readiness: Option<Readiness>,
    /// Give up after this many milliseconds: the process group is stopped and the
    /// service is `failed` with stop reason `readiness_timeout`.
    pub ready_timeout_ms: u64,
    /// Probe interval in milliseconds.
    pub ready_interval_ms: u64,
    /// Forwards the host will add once the service is ready (kept in the record).
    #[serde(default)]
    pub published_ports: Vec<PortForward>,
}

/// Lifecycle state of a service.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// The process runs (and was ready, or is being probed during its start).
    Running,
    /// The process ended on its own after it was ready.
    Exited,
    /// Stopped on request (`service_stop`, workspace stop).
    Stopped,
    /// Never became ready, or was stopped because publishing its ports failed.
    Failed,
}

/// Stop reasons (the `stop_reason` of a [`ServiceRecord`]).
pub mod stop_reason {
    /// The process exited before the readiness probe succeeded.
    pub const PROCESS_EXITED_BEFORE_READY: &str = "process_exited_before_ready";
    /// The readiness probe did not succeed in time.
    pub const READINESS_TIMEOUT: &str = "readiness_timeout";
    /// The process group ended after SIGTERM.
    pub const SIGTERM: &str = "sigterm";
    /// The process group had to be killed with SIGKILL.
    pub const SIGKILL: &str = "sigkill";
    /// The host could not publish a port of the service.
    pub const PUBLISHED_PORT_FAILED: &str = "published_port_failed";
}

/// What the agent knows about one service (also its on-disk record).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceRecord {
    /// Service name.
    pub name: String,
    /// The command as given.
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// State.
    pub state: ServiceState,
    /// Pid of the session leader (`/bin/sh`), which is also the process group id.
    pub pid: Option<u32>,
    /// Exit code once it ended (128 + N when killed by signal N); `None` while running
    /// or when the agent lost track of the process.
    pub exit_code: Option<i32>,
    /// Start time, seconds since the epoch (guest clock).
    pub started_at: f64,
    /// End time.
    pub ended_at: Option<f64>,
    /// When the readiness probe succeeded.
    pub ready_at: Option<f64>,
    /// Why it is not running any more (see [`stop_reason`]).
    pub stop_reason: Option<String>,
    /// The readiness probe.
    pub readiness: Option<Readiness>,
    /// Forwards the host added (or will add) for it.
    #[serde(default)]
    pub published_ports: Vec<PortForward>,
}

impl ServiceRecord {
    /// Whether the service runs.
    pub fn is_running(&self) -> bool {
        self.state == ServiceState::Running
    }
}

/// Answer to [`crate::Request::ServiceLogs`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceLogs {
    /// The service.
    pub service: ServiceRecord,
    /// Standard output (UTF-8, invalid bytes replaced).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// True when lines (or bytes beyond the size cap) were left out.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_is_tagged_by_type() {
        let r = Readiness::Tcp { address: "127.0.0.1:80".into() };
        let v = serde_json::to_value(&r).expect("json");
        assert_eq!(v, serde_json::json!({"type": "tcp", "address": "127.0.0.1:80"}));
        let back: Readiness =
            serde_json::from_value(serde_json::json!({"type": "file", "path": "/workspace/x"}))
                .expect("parse");
        assert_eq!(back, Readiness::File { path: "/workspace/x".into() });
    }

    #[test]
    fn records_tolerate_missing_ports_and_extra_fields() {
        let rec: ServiceRecord = serde_json::from_value(serde_json::json!({
            "name": "web", "command": "true", "cwd": "/workspace", "state": "exited",
            "pid": 7, "exit_code": 0, "started_at": 1.0, "ended_at": 2.0, "ready_at": 1.5,
            "stop_reason": null, "readiness": null, "future": 1
        }))
        .expect("parse");
        assert_eq!(rec.state, ServiceState::Exited);
        assert!(rec.published_ports.is_empty());
        assert!(!rec.is_running());
    }
}
