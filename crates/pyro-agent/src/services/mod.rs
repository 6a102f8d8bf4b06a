//! Services: named long-running processes that the agent starts, probes, watches and
//! stops. Guest mode only.
//!
//! # Behaviour
//!
//! - [`Services`] keeps one record per name in `<dir>/<name>.json` (in the guest
//!   [`SERVICES_DIR`], on the `/run` tmpfs: outside `/workspace`, so diff and export
//!   never see it, and gone after a reboot) and appends the process's stdout and stderr
//!   to `<dir>/<name>.stdout` / `.stderr` (truncated when the name is started again).
//! - A service is `/bin/sh -lc COMMAND` in its own session (so its own process group,
//!   whose id is the shell's pid), with the agent's environment plus the request's.
//!   A waiter thread reaps the shell and records its exit code (`128 + N` when killed
//!   by signal N).
//! - Start waits for readiness ([`Readiness`]), probing every `ready_interval_ms`: the
//!   process exiting first makes it `failed` / `process_exited_before_ready`; the
//!   deadline passing stops the group and makes it `failed` / `readiness_timeout`;
//!   without a probe it is ready at once.
//! - Stop sends SIGTERM to the process group, waits up to [`STOP_GRACE`] for every
//!   member to be gone, then sends SIGKILL (`stop_reason` `sigterm` or `sigkill`).
//! - Services live in the agent, not in the host connection that started them: any
//!   later connection (another `pyro` process) lists, inspects and stops them.
//!
//! # Limitations
//!
//! - If the agent's serving process restarts, services it started keep running but
//!   their exit codes are lost: such a record becomes `exited` with no exit code once
//!   its process is gone.
//! - Only `http://` URLs can be probed (no TLS); names are resolved with the system
//!   resolver except `localhost` and IP literals.

use crate::exec::{self, BaseEnv, ExecPlan};
use crate::paths::WorkspacePath;
use crate::sys;
use pyro_protocol::{
    stop_reason, ErrorKind, Readiness, Request, Response, ServiceLogs, ServiceRecord,
    ServiceStartRequest, ServiceState,
};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use pyro_protocol::SERVICES_DIR;

/// How long stop waits after SIGTERM before it sends SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Connect timeout of a TCP readiness probe.
pub const TCP_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Whole-request timeout of an HTTP readiness probe.
pub const HTTP_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Timeout of a command readiness probe.
pub const COMMAND_PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of each log stream returned by a logs request (the end is kept).
pub const MAX_LOG_BYTES: u64 = 1024 * 1024;

/// How often membership of a process group is checked while stopping it.
const GROUP_POLL: Duration = Duration::from_millis(50);
/// How long to wait for the waiter thread after the group is gone.
const REAP_WAIT: Duration = Duration::from_secs(2);

type ServiceResult<T> = Result<T, (ErrorKind, String)>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Holders only read and write plain data; a panic cannot leave it inconsistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn io_err(what: &str, err: io::Error) -> (ErrorKind, String) {
    (ErrorKind::Io, format!("{what}: {err}"))
}

/// Whether `name` is a valid service name: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

mod group;
mod logs;
mod probe;
mod start;
mod stop;

use group::process_alive;
pub use logs::tail;
pub use probe::{http_probe, is_ready_status, parse_address, parse_http_url, tcp_probe, HttpUrl};

// ---------------------------------------------------------------------------------
// The service table
// ---------------------------------------------------------------------------------

/// A service process started by this agent process.
#[derive(Debug)]
struct Live {
    pid: u32,
    /// Exit code once the waiter reaped the shell.
    exit: Mutex<Option<i32>>,
    exited: Condvar,
    /// Set before the agent itself ends the process (stop, readiness timeout), so the
    /// waiter does not call it `exited`.
    stopping: AtomicBool,
}

impl Live {
    fn has_exited(&self) -> bool {
        lock(&self.exit).is_some()
    }

    /// Wait up to `timeout` for the exit; true when it happened.
    fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut exit = lock(&self.exit);
        while exit.is_none() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            exit = self.exited.wait_timeout(exit, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Live processes by name. The lock also serialises every record read-modify-write.
    table: Mutex<HashMap<String, Arc<Live>>>,
}

impl Inner {
    fn record_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn log_path(&self, name: &str, stream: &str) -> PathBuf {
        self.dir.join(format!("{name}.{stream}"))
    }

    fn read_record(&self, name: &str) -> ServiceResult<Option<ServiceRecord>> {
        match fs::read(self.record_path(name)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| (ErrorKind::Io, format!("corrupt record of service '{name}': {e}"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&format!("read record of service '{name}'"), e)),
        }
    }

    fn write_record(&self, rec: &ServiceRecord) -> ServiceResult<()> {
        let path = self.record_path(&rec.name);
        let tmp = self.dir.join(format!(".{}.json.tmp", rec.name));
        let bytes = serde_json::to_vec_pretty(rec)
            .map_err(|e| (ErrorKind::Io, format!("encode record: {e}")))?;
        fs::write(&tmp, bytes)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|e| io_err(&format!("write record of service '{}'", rec.name), e))
    }

    /// The record of `name`, brought up to date: a `running` record whose process this
    /// agent does not watch (it was restarted) and which is gone becomes `exited`.
    /// Call with the table locked.
    fn refreshed(
        &self,
        table: &HashMap<String, Arc<Live>>,
        name: &str,
    ) -> ServiceResult<Option<ServiceRecord>> {
        let Some(mut rec) = self.read_record(name)? else { return Ok(None) };
        let watched = table.get(name).is_some_and(|live| Some(live.pid) == rec.pid);
        if rec.is_running() && !watched && !rec.pid.is_some_and(process_alive) {
            rec.state =
                if rec.ready_at.is_some() { ServiceState::Exited } else { ServiceState::Failed };
            if rec.ready_at.is_none() {
                rec.stop_reason = Some(stop_reason::PROCESS_EXITED_BEFORE_READY.to_owned());
                rec.published_ports.clear();
            }
            rec.ended_at.get_or_insert_with(now);
            self.write_record(&rec)?;
        }
        Ok(Some(rec))
    }

    /// Change the record of `name` if it still belongs to process `pid`; returns it.
    fn update(
        &self,
        name: &str,
        pid: u32,
        change: impl FnOnce(&mut ServiceRecord),
    ) -> ServiceResult<Option<ServiceRecord>> {
        let _table = lock(&self.table);
        let Some(mut rec) = self.read_record(name)? else { return Ok(None) };
        if rec.pid == Some(pid) {
            change(&mut rec);
            self.write_record(&rec)?;
        }
        Ok(Some(rec))
    }
}

/// The services of one agent. See the module docs.
#[derive(Debug)]
pub struct Services {
    inner: Arc<Inner>,
    stop_grace: Duration,
}

impl Default for Services {
    fn default() -> Self {
        Services::new(SERVICES_DIR)
    }
}

fn not_found(name: &str) -> (ErrorKind, String) {
    (ErrorKind::NotFound, format!("service '{name}' does not exist"))
}

fn check_name(name: &str) -> ServiceResult<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err((
            ErrorKind::Invalid,
            format!("service name '{name}' must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}"),
        ))
    }
}

impl Services {
    /// Services whose records and logs live in `dir` (created on first start).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Services {
            inner: Arc::new(Inner { dir: dir.into(), table: Mutex::new(HashMap::new()) }),
            stop_grace: STOP_GRACE,
        }
    }

    /// Use `grace` instead of [`STOP_GRACE`] between SIGTERM and SIGKILL (tests).
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    fn current(&self, name: &str) -> ServiceResult<ServiceRecord> {
        let table = lock(&self.inner.table);
        self.inner.refreshed(&table, name)?.ok_or_else(|| not_found(name))
    }

    /// One service's record.
    pub fn status(&self, name: &str) -> ServiceResult<ServiceRecord> {
        check_name(name)?;
        self.current(name)
    }

    /// Every service's record, sorted by name.
    pub fn list(&self) -> ServiceResult<Vec<ServiceRecord>> {
        let table = lock(&self.inner.table);
        let entries = match fs::read_dir(&self.inner.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list services", e)),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_str()?.strip_suffix(".json")?.to_owned();
                is_valid_name(&name).then_some(name)
            })
            .collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(rec) = self.inner.refreshed(&table, &name)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Perform one service request. `cwd` resolves a start request's working directory
    /// (a directory inside the workspace); `workspace_dir` backs `/workspace`.
    pub(crate) fn handle(
        &self,
        request: Request,
        workspace_dir: &Path,
        cwd: impl FnOnce(&str) -> Result<PathBuf, crate::SandboxError>,
    ) -> Response {
        let service = |r: ServiceResult<ServiceRecord>| match r {
            Ok(service) => Response::Service { service },
            Err((kind, message)) => Response::Error { kind, message },
        };
        match request {
            Request::ServiceStart(req) => match cwd(&req.cwd) {
                Ok(dir) => service(self.start(&req, &dir, workspace_dir)),
                Err(err) => Response::Error { kind: err.kind(), message: err.to_string() },
            },
            Request::ServiceStatus { name } => service(self.status(&name)),
            Request::ServiceStop { name, fail_reason } => {
                service(self.stop(&name, fail_reason.as_deref()))
            }
            Request::ServiceList => match self.list() {
                Ok(services) => Response::Services { services },
                Err((kind, message)) => Response::Error { kind, message },
            },
            Request::ServiceStopAll => match self.stop_all() {
                Ok(services) => Response::Services { services },
                Err((kind, message)) => Response::Error { kind, message },
            },
            Request::ServiceLogs { name, tail_lines } => match self.logs(&name, tail_lines) {
                Ok(logs) => Response::ServiceLogs(logs),
                Err((kind, message)) => Response::Error { kind, message },
            },
            _ => Response::Error {
                kind: ErrorKind::Invalid,
                message: "not a service request".to_owned(),
            },
        }
    }
}

/// A start request for `name` running `command` in `/workspace` with the defaults
/// (no readiness, 30 s timeout, 500 ms interval, no environment, no ports).
pub fn start_request(name: &str, command: &str) -> ServiceStartRequest {
    ServiceStartRequest {
        name: name.to_owned(),
        command: command.to_owned(),
        cwd: pyro_protocol::WORKSPACE_ROOT.to_owned(),
        env: BTreeMap::new(),
        readiness: None,
        ready_timeout_ms: 30_000,
        ready_interval_ms: 500,
        published_ports: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::group::group_alive;
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn names_follow_the_contract() {
        assert!(is_valid_name("web"));
        assert!(is_valid_name("a.b_c-1"));
        assert!(is_valid_name(&"a".repeat(64)));
        for bad in ["", ".hidden", "-x", "a/b", "../x", "a b", &"a".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }
    struct Fixture {
        _tmp: tempfile::TempDir,
        ws: PathBuf,
        services: Services,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ws = tmp.path().join("ws");
        fs::create_dir(&ws).expect("mkdir");
        let services =
            Services::new(tmp.path().join("state")).with_stop_grace(Duration::from_secs(2));
        Fixture { _tmp: tmp, ws, services }
    }

    impl Fixture {
        fn start(&self, req: ServiceStartRequest) -> ServiceResult<ServiceRecord> {
            self.services.start(&req, &self.ws, &self.ws)
        }
    }

    #[test]
    fn a_service_runs_logs_and_stops_with_its_whole_group() {
        let f = fixture();
        let mut req = start_request(
            "web",
            "echo started; echo oops >&2; sleep 300 & echo $! > child.pid; echo \"$SVC_VAR\"; wait",
        );
        req.env.insert("SVC_VAR".into(), "from env".into());
        req.readiness = Some(Readiness::File { path: "/workspace/child.pid".into() });
        req.ready_interval_ms = 20;
        let rec = f.start(req.clone()).expect("start");
        assert_eq!(rec.state, ServiceState::Running);
        assert!(rec.ready_at.is_some_and(|r| r >= rec.started_at));
        let pid = rec.pid.expect("pid");
        let child: u32 = fs::read_to_string(f.ws.join("child.pid"))
            .expect("child pid")
            .trim()
            .parse()
            .expect("number");
        assert!(process_alive(child));

        let again = f.start(req).expect_err("already running");
        assert_eq!(again.1, "service 'web' is already running");

        // Output arrives asynchronously.
        let deadline = Instant::now() + Duration::from_secs(5);
        let logs = loop {
            let logs = f.services.logs("web", None).expect("logs");
            if logs.stdout.contains("from env") || Instant::now() > deadline {
                break logs;
            }
            thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(logs.stdout, "started\nfrom env\n");
        assert_eq!(logs.stderr, "oops\n");
        assert!(!logs.truncated);
        let tail = f.services.logs("web", Some(1)).expect("tail");
        assert_eq!((tail.stdout.as_str(), tail.truncated), ("from env\n", true));

        let stopped = f.services.stop("web", None).expect("stop");
        assert_eq!(stopped.state, ServiceState::Stopped);
        assert_eq!(stopped.stop_reason.as_deref(), Some("sigterm"));
        assert_eq!(stopped.exit_code, Some(128 + libc::SIGTERM));
        assert!(!group_alive(pid));
        assert!(!process_alive(child), "the background child survived the stop");
        // Stopping again changes nothing.
        assert_eq!(f.services.stop("web", None).expect("again"), stopped);
        let list = f.services.list().expect("list");
        assert_eq!(list, vec![stopped]);
        assert_eq!(f.services.status("nope").expect_err("unknown").0, ErrorKind::NotFound);
    }

    #[test]
    fn exiting_before_ready_fails_and_a_restart_replaces_the_logs() {
        let f = fixture();
        let mut req = start_request("job", "echo first; exit 3");
        req.readiness = Some(Readiness::File { path: "/workspace/never".into() });
        let started = Instant::now();
        let rec = f.start(req.clone()).expect("start");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(rec.state, ServiceState::Failed);
        assert_eq!(rec.stop_reason.as_deref(), Some("process_exited_before_ready"));
        assert_eq!(rec.exit_code, Some(3));
        assert!(rec.ended_at.is_some() && rec.ready_at.is_none());

        req.command = "echo second".into();
        req.readiness = None;
        let rec = f.start(req).expect("restart");
        assert_eq!(rec.ready_at, Some(rec.started_at));
        let deadline = Instant::now() + Duration::from_secs(5);
        while f.services.status("job").expect("status").is_running() {
            assert!(Instant::now() < deadline, "never exited");
            thread::sleep(Duration::from_millis(20));
        }
        let done = f.services.status("job").expect("status");
        assert_eq!((done.state, done.exit_code), (ServiceState::Exited, Some(0)));
        assert_eq!(f.services.logs("job", None).expect("logs").stdout, "second\n");
    }

    #[test]
    fn readiness_timeout_kills_the_group_and_sigkill_follows_an_ignored_sigterm() {
        let f = fixture();
        let mut req =
            start_request("slow", "trap '' TERM; sleep 300 & echo $! > slow.pid; wait; wait");
        req.readiness = Some(Readiness::Tcp { address: "127.0.0.1:1".into() });
        req.ready_timeout_ms = 400;
        req.ready_interval_ms = 50;
        let started = Instant::now();
        let rec = f.start(req).expect("start");
        assert_eq!(rec.state, ServiceState::Failed);
        assert_eq!(rec.stop_reason.as_deref(), Some("readiness_timeout"));
        assert_eq!(rec.exit_code, Some(128 + libc::SIGKILL), "TERM was ignored");
        assert!(started.elapsed() >= Duration::from_millis(400));
        assert!(!group_alive(rec.pid.expect("pid")));
        let child: u32 =
            fs::read_to_string(f.ws.join("slow.pid")).expect("pid").trim().parse().expect("n");
        assert!(!process_alive(child));

        let mut req = start_request("stubborn", "trap '' TERM; sleep 300");
        req.readiness = Some(Readiness::Command { command: "true".into() });
        let rec = f.start(req).expect("start");
        assert_eq!(rec.state, ServiceState::Running);
        let stopped = f.services.stop("stubborn", Some("published_port_failed")).expect("stop");
        assert_eq!(stopped.state, ServiceState::Failed);
        assert_eq!(stopped.stop_reason.as_deref(), Some("published_port_failed"));
        assert!(!group_alive(rec.pid.expect("pid")));
    }

    #[test]
    fn http_and_command_readiness_and_stop_all() {
        let f = fixture();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 512];
            let _ = stream.read(&mut buf);
            stream.write_all(b"HTTP/1.0 204 No Content\r\n\r\n").expect("write");
        });
        let mut req = start_request("a", "sleep 300");
        req.readiness = Some(Readiness::Http { url: format!("http://localhost:{port}/") });
        assert_eq!(f.start(req).expect("a").state, ServiceState::Running);
        server.join().expect("server");
        let mut req = start_request("b", "sleep 300");
        req.readiness = Some(Readiness::Command { command: "test -d .".into() });
        assert_eq!(f.start(req).expect("b").state, ServiceState::Running);
        let all = f.services.stop_all().expect("stop all");
        assert_eq!(all.len(), 2);
        for rec in all {
            assert_eq!(rec.state, ServiceState::Stopped, "{rec:?}");
            assert_eq!(rec.stop_reason.as_deref(), Some("sigterm"));
            assert!(!group_alive(rec.pid.expect("pid")));
        }
    }

    #[test]
    fn invalid_requests_are_refused() {
        let f = fixture();
        let err = f.start(start_request("../x", "true")).expect_err("name");
        assert_eq!(err.0, ErrorKind::Invalid);
        let mut req = start_request("x", "true");
        req.ready_interval_ms = 0;
        assert_eq!(f.start(req).expect_err("interval").0, ErrorKind::Invalid);
        let mut req = start_request("x", "true");
        req.readiness = Some(Readiness::File { path: "/etc/passwd".into() });
        assert_eq!(f.start(req).expect_err("outside").0, ErrorKind::PathEscape);
        assert!(f.services.list().expect("list").is_empty());
    }
}
