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

// ---------------------------------------------------------------------------------
// Readiness probes
// ---------------------------------------------------------------------------------

/// Split `HOST:PORT` (`[v6]:PORT` for IPv6 literals) into host and a port > 0.
pub fn parse_address(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let host = match host.strip_prefix('[') {
        Some(rest) => {
            let inner = rest.strip_suffix(']')?;
            inner.parse::<std::net::Ipv6Addr>().ok()?;
            inner
        }
        None if host.contains(':') => return None,
        None => host,
    };
    let bad = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '[' | ']');
    if host.is_empty() || host.chars().any(bad) {
        return None;
    }
    Some((host.to_owned(), port))
}

/// The parts of an `http://` URL a probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port (80 when omitted).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Parse an `http://HOST[:PORT][/PATH][?QUERY]` URL (scheme case-insensitive, fragment
/// dropped). `https`, user info and anything else are refused.
pub fn parse_http_url(url: &str) -> Option<HttpUrl> {
    let url = url.trim();
    let scheme_len = "http://".len();
    if url.len() < scheme_len || !url[..scheme_len].eq_ignore_ascii_case("http://") {
        return None;
    }
    let rest = &url[scheme_len..];
    let rest = rest.split('#').next().unwrap_or_default();
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() || authority.contains('@') || path.contains(char::is_whitespace) {
        return None;
    }
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let (host, port) = if has_port {
        parse_address(authority)?
    } else {
        parse_address(&format!("{authority}:80"))?
    };
    let path = if path.is_empty() {
        "/".to_owned()
    } else if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Some(HttpUrl { host, port, path })
}

/// Socket addresses of `host:port`: IP literals and `localhost` directly, anything else
/// through the system resolver.
fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    Ok((host, port).to_socket_addrs()?.collect())
}

fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"));
    for addr in resolve(host, port)? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether `HOST:PORT` accepts a TCP connection within `timeout`.
pub fn tcp_probe(address: &str, timeout: Duration) -> bool {
    match parse_address(address) {
        Some((host, port)) => connect(&host, port, timeout).is_ok(),
        None => false,
    }
}

/// `GET url` with a hand-written HTTP/1.0 request; returns the status code of the
/// answer. The whole exchange (connect, send, status line) must finish within
/// `timeout`.
pub fn http_probe(url: &str, timeout: Duration) -> io::Result<u16> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "HTTP probe timed out"))
    };
    let parsed = parse_http_url(url).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("not an http:// URL: {url}"))
    })?;
    let mut stream = connect(&parsed.host, parsed.port, remaining()?)?;
    let host_header = match (parsed.host.contains(':'), parsed.port) {
        (true, 80) => format!("[{}]", parsed.host),
        (true, port) => format!("[{}]:{port}", parsed.host),
        (false, 80) => parsed.host.clone(),
        (false, port) => format!("{}:{port}", parsed.host),
    };
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {host_header}\r\nUser-Agent: pyro-readiness\r\nAccept: */*\r\n\
         Connection: close\r\n\r\n",
        parsed.path
    );
    stream.set_write_timeout(Some(remaining()?))?;
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 8192 {
        stream.set_read_timeout(Some(remaining()?))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "HTTP probe timed out"))
            }
            Err(e) => return Err(e),
        }
    }
    parse_status_line(&head).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "the answer is not an HTTP status line")
    })
}

/// The status code of `HTTP/1.x NNN ...` at the start of `head`.
fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut words = line.split_ascii_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// Whether an HTTP status means ready (2xx or 3xx).
pub fn is_ready_status(code: u16) -> bool {
    (200..400).contains(&code)
}

// ---------------------------------------------------------------------------------
// Process groups
// ---------------------------------------------------------------------------------

/// Whether process group `pgid` still has a member that is not a zombie. Reads
/// `/proc/<pid>/stat`; without `/proc` falls back to `kill(-pgid, 0)`.
fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return sys::kill_process_group(pgid, 0).is_ok();
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command name: state ppid pgrp ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else { continue };
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).and_then(|p| p.parse::<u32>().ok());
        if pgrp == Some(pgid) && state != "Z" && state != "X" {
            return true;
        }
    }
    false
}

/// Whether process `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_ascii_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn wait_group_gone(pgid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(GROUP_POLL);
    }
}

/// SIGTERM to the group, SIGKILL after `grace`; returns the stop reason.
fn terminate_group(pgid: u32, grace: Duration) -> &'static str {
    let _ = sys::kill_process_group(pgid, libc::SIGTERM);
    if wait_group_gone(pgid, grace) {
        return stop_reason::SIGTERM;
    }
    let _ = sys::kill_process_group(pgid, libc::SIGKILL);
    wait_group_gone(pgid, REAP_WAIT);
    stop_reason::SIGKILL
}

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

    fn spawn(
        &self,
        req: &ServiceStartRequest,
        cwd: &Path,
    ) -> ServiceResult<(Child, ServiceRecord)> {
        let inner = &self.inner;
        let stdout_path = inner.log_path(&req.name, "stdout");
        let stderr_path = inner.log_path(&req.name, "stderr");
        let open_log = |path: &Path| -> io::Result<File> {
            File::create(path)?; // a new start replaces the old logs
            OpenOptions::new().append(true).open(path)
        };
        let stdout = open_log(&stdout_path).map_err(|e| io_err("create service log", e))?;
        let stderr = open_log(&stderr_path).map_err(|e| io_err("create service log", e))?;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-lc")
            .arg(&req.command)
            .current_dir(cwd)
            .envs(&req.env)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        // SAFETY: the closure runs in the forked child before exec and only calls
        // `sys::new_session`, i.e. setsid(2), which is async-signal-safe and allocates
        // nothing.
        // JUSTIFICATION: a service and everything it starts must share one process
        // group of their own, so stop and the readiness timeout reach the whole tree.
        unsafe {
            cmd.pre_exec(sys::new_session);
        }
        let child =
            cmd.spawn().map_err(|e| (ErrorKind::Io, format!("failed to start /bin/sh: {e}")))?;
        let started_at = now();
        let rec = ServiceRecord {
            name: req.name.clone(),
            command: req.command.clone(),
            cwd: req.cwd.clone(),
            state: ServiceState::Running,
            pid: Some(child.id()),
            exit_code: None,
            started_at,
            ended_at: None,
            ready_at: if req.readiness.is_none() { Some(started_at) } else { None },
            stop_reason: None,
            readiness: req.readiness.clone(),
            published_ports: req.published_ports.clone(),
        };
        Ok((child, rec))
    }

    fn start_waiter(&self, name: String, live: Arc<Live>, mut child: Child) {
        let inner = Arc::clone(&self.inner);
        let waiter = move || {
            let code = match child.wait() {
                Ok(status) => status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                Err(_) => -1,
            };
            let stopping = live.stopping.load(Ordering::SeqCst);
            let _ = inner.update(&name, live.pid, |rec| {
                rec.exit_code.get_or_insert(code);
                rec.ended_at.get_or_insert_with(now);
                if rec.is_running() && !stopping {
                    if rec.ready_at.is_some() {
                        rec.state = ServiceState::Exited;
                    } else {
                        rec.state = ServiceState::Failed;
                        rec.stop_reason = Some(stop_reason::PROCESS_EXITED_BEFORE_READY.to_owned());
                        rec.published_ports.clear();
                    }
                }
            });
            *lock(&live.exit) = Some(code);
            live.exited.notify_all();
        };
        if let Err(e) = thread::Builder::new().name("pyro-service-wait".into()).spawn(waiter) {
            // The child is lost with the closure; init reaps it. Report it as gone.
            eprintln!("pyro-guest-agent: cannot start a service waiter thread: {e}");
        }
    }

    /// Start a service and wait for readiness (see the module docs). `cwd` is the
    /// resolved working directory, `workspace_dir` the directory backing `/workspace`.
    pub fn start(
        &self,
        req: &ServiceStartRequest,
        cwd: &Path,
        workspace_dir: &Path,
    ) -> ServiceResult<ServiceRecord> {
        check_name(&req.name)?;
        if req.ready_timeout_ms == 0 || req.ready_interval_ms == 0 {
            return Err((
                ErrorKind::Invalid,
                "ready_timeout and ready_interval must be positive".to_owned(),
            ));
        }
        if let Some(Readiness::File { path }) = &req.readiness {
            WorkspacePath::parse(path).map_err(|e| (e.kind(), e.to_string()))?;
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.inner.dir)
            .map_err(|e| io_err("create the services directory", e))?;
        let live = {
            let mut table = lock(&self.inner.table);
            if let Some(old) = self.inner.refreshed(&table, &req.name)? {
                if old.is_running() {
                    return Err((
                        ErrorKind::Invalid,
                        format!("service '{}' is already running", req.name),
                    ));
                }
            }
            let (child, rec) = self.spawn(req, cwd)?;
            let live = Arc::new(Live {
                pid: child.id(),
                exit: Mutex::new(None),
                exited: Condvar::new(),
                stopping: AtomicBool::new(false),
            });
            if let Err(e) = self.inner.write_record(&rec) {
                let _ = sys::kill_process_group(child.id(), libc::SIGKILL);
                let mut child = child;
                let _ = child.wait();
                return Err(e);
            }
            table.insert(req.name.clone(), Arc::clone(&live));
            self.start_waiter(req.name.clone(), Arc::clone(&live), child);
            live
        };
        match &req.readiness {
            None => self.current(&req.name),
            Some(readiness) => self.await_ready(req, readiness, &live, cwd, workspace_dir),
        }
    }

    fn current(&self, name: &str) -> ServiceResult<ServiceRecord> {
        let table = lock(&self.inner.table);
        self.inner.refreshed(&table, name)?.ok_or_else(|| not_found(name))
    }

    fn probe(
        req: &ServiceStartRequest,
        readiness: &Readiness,
        cwd: &Path,
        workspace_dir: &Path,
    ) -> bool {
        match readiness {
            Readiness::File { path } => WorkspacePath::parse(path)
                .map(|p| p.host_path(workspace_dir).symlink_metadata().is_ok())
                .unwrap_or(false),
            Readiness::Tcp { address } => tcp_probe(address, TCP_PROBE_TIMEOUT),
            Readiness::Http { url } => {
                http_probe(url, HTTP_PROBE_TIMEOUT).is_ok_and(is_ready_status)
            }
            Readiness::Command { command } => {
                let plan = ExecPlan {
                    command,
                    cwd,
                    base_env: BaseEnv::Inherit,
                    env: &req.env,
                    timeout: COMMAND_PROBE_TIMEOUT,
                    max_output_bytes: 4096,
                };
                exec::run(&plan).is_ok_and(|out| out.exit_code == 0 && !out.timed_out)
            }
        }
    }

    fn await_ready(
        &self,
        req: &ServiceStartRequest,
        readiness: &Readiness,
        live: &Live,
        cwd: &Path,
        workspace_dir: &Path,
    ) -> ServiceResult<ServiceRecord> {
        let deadline = Instant::now() + Duration::from_millis(req.ready_timeout_ms);
        let interval = Duration::from_millis(req.ready_interval_ms);
        loop {
            if live.has_exited() {
                // The waiter already marked it failed (or exited after a race).
                return self.current(&req.name);
            }
            if Self::probe(req, readiness, cwd, workspace_dir) {
                let ready = self.inner.update(&req.name, live.pid, |rec| {
                    if rec.is_running() && rec.ready_at.is_none() {
                        rec.ready_at = Some(now());
                    }
                })?;
                return ready.ok_or_else(|| not_found(&req.name));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return self.fail_start(&req.name, live, stop_reason::READINESS_TIMEOUT);
            }
            live.wait_exit(interval.min(left));
        }
    }

    /// End a service that is still starting and mark it failed with `reason`.
    fn fail_start(&self, name: &str, live: &Live, reason: &str) -> ServiceResult<ServiceRecord> {
        live.stopping.store(true, Ordering::SeqCst);
        let current = self.current(name)?;
        if !current.is_running() {
            return Ok(current);
        }
        terminate_group(live.pid, self.stop_grace);
        live.wait_exit(REAP_WAIT);
        let exit = *lock(&live.exit);
        let rec = self.inner.update(name, live.pid, |rec| {
            rec.state = ServiceState::Failed;
            rec.stop_reason = Some(reason.to_owned());
            rec.ended_at.get_or_insert_with(now);
            if rec.exit_code.is_none() {
                rec.exit_code = exit;
            }
            rec.published_ports.clear();
        })?;
        rec.ok_or_else(|| not_found(name))
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

    /// A service's record and logs: the last `tail_lines` lines of each stream, or
    /// everything when `None` (at most [`MAX_LOG_BYTES`] each, the end kept).
    pub fn logs(&self, name: &str, tail_lines: Option<u64>) -> ServiceResult<ServiceLogs> {
        let service = self.status(name)?;
        let (stdout, cut_out) = read_log(&self.inner.log_path(name, "stdout"), tail_lines)
            .map_err(|e| io_err("read service log", e))?;
        let (stderr, cut_err) = read_log(&self.inner.log_path(name, "stderr"), tail_lines)
            .map_err(|e| io_err("read service log", e))?;
        Ok(ServiceLogs { service, stdout, stderr, truncated: cut_out || cut_err })
    }

    /// Stop a running service (see the module docs); a service that is not running is
    /// returned unchanged. With `fail_reason` it ends `failed` with that reason and
    /// without published ports.
    pub fn stop(&self, name: &str, fail_reason: Option<&str>) -> ServiceResult<ServiceRecord> {
        check_name(name)?;
        let (rec, live) = {
            let table = lock(&self.inner.table);
            let rec = self.inner.refreshed(&table, name)?.ok_or_else(|| not_found(name))?;
            let live = table.get(name).filter(|l| Some(l.pid) == rec.pid).cloned();
            (rec, live)
        };
        let Some(pid) = rec.pid.filter(|_| rec.is_running()) else { return Ok(rec) };
        if let Some(live) = &live {
            live.stopping.store(true, Ordering::SeqCst);
        }
        let reason = terminate_group(pid, self.stop_grace);
        let exit = match &live {
            Some(live) => {
                live.wait_exit(REAP_WAIT);
                *lock(&live.exit)
            }
            None => None,
        };
        let rec = self.inner.update(name, pid, |rec| {
            rec.state =
                if fail_reason.is_some() { ServiceState::Failed } else { ServiceState::Stopped };
            rec.stop_reason = Some(fail_reason.unwrap_or(reason).to_owned());
            rec.ended_at = Some(now());
            if rec.exit_code.is_none() {
                rec.exit_code = exit;
            }
            if fail_reason.is_some() {
                // A failed service has no published ports (the host removes its forwards
                // before it asks for this).
                rec.published_ports.clear();
            }
        })?;
        rec.ok_or_else(|| not_found(name))
    }

    /// Stop every running service at once (SIGTERM to all, one shared grace period,
    /// SIGKILL for the rest); returns every record.
    pub fn stop_all(&self) -> ServiceResult<Vec<ServiceRecord>> {
        let all = self.list()?;
        let running: Vec<(String, u32, Option<Arc<Live>>)> = {
            let table = lock(&self.inner.table);
            all.into_iter()
                .filter(|r| r.is_running())
                .filter_map(|r| {
                    let pid = r.pid?;
                    let live = table.get(&r.name).filter(|l| l.pid == pid).cloned();
                    Some((r.name, pid, live))
                })
                .collect()
        };
        for (_, pid, live) in &running {
            if let Some(live) = live {
                live.stopping.store(true, Ordering::SeqCst);
            }
            let _ = sys::kill_process_group(*pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + self.stop_grace;
        while running.iter().any(|(_, pid, _)| group_alive(*pid)) && Instant::now() < deadline {
            thread::sleep(GROUP_POLL);
        }
        for (name, pid, live) in &running {
            let reason = if group_alive(*pid) {
                let _ = sys::kill_process_group(*pid, libc::SIGKILL);
                wait_group_gone(*pid, REAP_WAIT);
                stop_reason::SIGKILL
            } else {
                stop_reason::SIGTERM
            };
            let exit = live.as_ref().and_then(|l| {
                l.wait_exit(REAP_WAIT);
                *lock(&l.exit)
            });
            self.inner.update(name, *pid, |rec| {
                rec.state = ServiceState::Stopped;
                rec.stop_reason = Some(reason.to_owned());
                rec.ended_at = Some(now());
                if rec.exit_code.is_none() {
                    rec.exit_code = exit;
                }
            })?;
        }
        self.list()
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

/// Read a log: the last [`MAX_LOG_BYTES`] bytes, then the last `tail_lines` lines.
/// Returns the text and whether anything was left out.
fn read_log(path: &Path, tail_lines: Option<u64>) -> io::Result<(String, bool)> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((String::new(), false)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut cut = false;
    if len > MAX_LOG_BYTES {
        file.seek(SeekFrom::Start(len - MAX_LOG_BYTES))?;
        cut = true;
    }
    let mut bytes = Vec::new();
    file.take(MAX_LOG_BYTES).read_to_end(&mut bytes)?;
    if cut {
        // Drop the partial first line.
        match bytes.iter().position(|b| *b == b'\n') {
            Some(i) => drop(bytes.drain(..=i)),
            None => bytes.clear(),
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(match tail_lines {
        None => (text, cut),
        Some(n) => {
            let (tail, dropped) = tail(&text, n);
            (tail.to_owned(), cut || dropped)
        }
    })
}

/// The last `n` lines of `text` (a final line without newline counts), and whether
/// lines were dropped.
pub fn tail(text: &str, n: u64) -> (&str, bool) {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let lines: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
    let total = lines.len() + usize::from(!text.is_empty() && !text.ends_with('\n'));
    if total <= n {
        return (text, false);
    }
    if n == 0 {
        return ("", true);
    }
    // Start after the newline that ends line (total - n).
    let start = lines[total - n - 1] + 1;
    (&text[start..], true)
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

    #[test]
    fn addresses_need_host_and_port() {
        assert_eq!(parse_address("127.0.0.1:8080"), Some(("127.0.0.1".into(), 8080)));
        assert_eq!(parse_address("localhost:1"), Some(("localhost".into(), 1)));
        assert_eq!(parse_address("[::1]:443"), Some(("::1".into(), 443)));
        for bad in [
            "8080",
            ":8080",
            "host:",
            "host:0",
            "host:65536",
            "host:http",
            "::1:80",
            "[nothex]:80",
            "a b:80",
            "http://x:80",
        ] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_urls_are_parsed_by_hand() {
        let u = parse_http_url("http://127.0.0.1:8080/health?x=1#frag").expect("url");
        assert_eq!(u, HttpUrl { host: "127.0.0.1".into(), port: 8080, path: "/health?x=1".into() });
        let u = parse_http_url("HTTP://localhost").expect("url");
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = parse_http_url("http://[::1]/x").expect("url");
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        let u = parse_http_url("http://h?q").expect("url");
        assert_eq!(u.path, "/?q");
        for bad in ["https://x/", "ftp://x", "http://", "http://u@h/", "http://h:0/", "x"] {
            assert_eq!(parse_http_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.0 200 OK\r\n"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.1 302\r\nLocation: /\r\n"), Some(302));
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20\r\n"), None);
        assert!(is_ready_status(204) && is_ready_status(301) && !is_ready_status(404));
    }

    /// A one-shot HTTP server on 127.0.0.1 answering `answer` after reading the request
    /// head; returns its URL and the request it saw.
    fn serve_once(answer: &'static [u8]) -> (String, thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://127.0.0.1:{}/ready?probe=1",
            listener.local_addr().expect("addr").port()
        );
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut seen = Vec::new();
            let mut buf = [0u8; 256];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            stream.write_all(answer).expect("answer");
            String::from_utf8(seen).expect("utf8")
        });
        (url, handle)
    }

    #[test]
    fn http_probe_reads_the_status_of_a_real_server() {
        let (url, server) = serve_once(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(http_probe(&url, HTTP_PROBE_TIMEOUT).expect("probe"), 200);
        let request = server.join().expect("server");
        assert!(request.starts_with("GET /ready?probe=1 HTTP/1.0\r\n"), "{request}");
        assert!(request.contains("\r\nHost: 127.0.0.1:"), "{request}");

        let (url, server) = serve_once(b"HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n");
        assert!(http_probe(&url, HTTP_PROBE_TIMEOUT).is_ok_and(is_ready_status));
        server.join().expect("server");

        let (url, server) = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(http_probe(&url, HTTP_PROBE_TIMEOUT).expect("probe"), 503);
        server.join().expect("server");

        let (url, server) = serve_once(b"hello\n");
        assert_eq!(
            http_probe(&url, HTTP_PROBE_TIMEOUT).expect_err("garbage").kind(),
            io::ErrorKind::InvalidData
        );
        server.join().expect("server");
    }

    #[test]
    fn http_probe_times_out_on_a_silent_server_and_fails_on_a_closed_port() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Accepts (the kernel does) but never answers.
        let started = Instant::now();
        let err = http_probe(&format!("http://127.0.0.1:{port}/"), Duration::from_millis(300))
            .expect_err("silent");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        drop(listener);
        assert!(http_probe(&format!("http://127.0.0.1:{port}/"), HTTP_PROBE_TIMEOUT).is_err());
        assert!(!tcp_probe(&format!("127.0.0.1:{port}"), TCP_PROBE_TIMEOUT));
        let open = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = format!("127.0.0.1:{}", open.local_addr().expect("addr").port());
        assert!(tcp_probe(&addr, TCP_PROBE_TIMEOUT));
        assert!(!tcp_probe("not-an-address", TCP_PROBE_TIMEOUT));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), ("b\nc\n", true));
        assert_eq!(tail("a\nb\nc", 2), ("b\nc", true));
        assert_eq!(tail("a\nb\n", 5), ("a\nb\n", false));
        assert_eq!(tail("", 1), ("", false));
        assert_eq!(tail("a\n", 0), ("", true));
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
