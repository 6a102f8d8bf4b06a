//! [`QemuChannel`]: one host-side session with the guest agent over a virtio-serial port.
//!
//! # Ports and locks
//!
//! The guest has [`AGENT_PORT_COUNT`] agent ports; QEMU exposes port `i` as the unix
//! socket `agent-<i>.sock` and serves one client at a time on it (a second client would
//! connect but hang in the backlog). A host process therefore claims a port by taking an
//! exclusive, non-blocking `flock` on `agent-<i>.lock` and keeps it for the channel's
//! lifetime; the kernel drops the lock when the process dies. When every port is taken,
//! the channel polls every 20 ms until the deadline of the call that needs it.
//!
//! # Stale answers
//!
//! An earlier client of the same port may have left requests running in the guest; their
//! answers arrive on the new connection. Every request gets a fresh random id, and lines
//! that do not parse or answer another id are skipped.
//!
//! # Failures
//!
//! End of stream or a reset while waiting means QEMU or the guest went away:
//! [`BackendError::GuestDied`]. A missed deadline is [`BackendError::Timeout`]; the
//! session stays usable (the late answer will be skipped). After a failed or partial
//! write the session is dropped and the next call reconnects.

use super::super::limits::{answer_cap, GuestLimits, MAX_SKIPPED_ANSWERS};
use super::super::{AgentChannel, BackendError};
use super::layout::{connect_unix, SandboxPaths};
use super::process;
use pyro_protocol::{
    encode_line, Request, RequestFrame, Response, ResponseFrame, AGENT_PORT_COUNT, PROTOCOL_VERSION,
};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long [`QemuChannel::connect`] waits for the agent's hello on a free port.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a process waiting for a free port retries.
const PORT_POLL: Duration = Duration::from_millis(20);

/// What the agent said in its hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHello {
    /// Agent crate version.
    pub agent_version: String,
    /// Protocol version of the agent.
    pub protocol: (u16, u16),
    /// Features the agent supports.
    pub capabilities: Vec<String>,
    /// Guest `uname -r`.
    pub kernel_release: String,
}

impl AgentHello {
    /// Check a hello answer and keep its facts.
    pub fn from_response(response: Response) -> Result<Self, BackendError> {
        match response {
            Response::Hello { agent_version, protocol, capabilities, kernel_release } => {
                if protocol.0 != PROTOCOL_VERSION.0 {
                    return Err(BackendError::Protocol(format!(
                        "the guest agent speaks protocol {}.{} but this host speaks {}.{}; rebuild the boot \
                         assets with `scripts/setup`",
                        protocol.0, protocol.1, PROTOCOL_VERSION.0, PROTOCOL_VERSION.1
                    )));
                }
                check_hello_text("agent_version", &agent_version)?;
                check_hello_text("kernel_release", &kernel_release)?;
                if capabilities.len() > MAX_HELLO_CAPABILITIES {
                    return Err(invalid(format!(
                        "a hello with {} capabilities (at most {MAX_HELLO_CAPABILITIES})",
                        capabilities.len()
                    )));
                }
                for capability in &capabilities {
                    check_hello_text("capability", capability)?;
                }
                Ok(AgentHello { agent_version, protocol, capabilities, kernel_release })
            }
            Response::Error { kind, message } => Err(BackendError::Protocol(format!(
                "the agent refused hello ({kind:?}): {message}"
            ))),
            other => Err(invalid(format!(
                "expected a hello, got {}",
                serde_json::to_string(&other)
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect::<String>()
            ))),
        }
    }
}

/// Most capabilities a hello may list.
const MAX_HELLO_CAPABILITIES: usize = 64;
/// Longest text field of a hello.
const MAX_HELLO_TEXT: usize = 128;

/// A hello field is short printable ASCII (it ends up in records and messages).
fn check_hello_text(what: &str, text: &str) -> Result<(), BackendError> {
    if text.is_empty()
        || text.len() > MAX_HELLO_TEXT
        || !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        let shown: String = text.chars().take(40).collect();
        return Err(invalid(format!(
            "a hello whose {what} is not 1-{MAX_HELLO_TEXT} printable characters: {shown:?}"
        )));
    }
    Ok(())
}

/// A fresh random request id.
fn fresh_id() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// Just the id of a response line (so an answer to us that fails to parse fully is an
/// error, not a silent skip).
#[derive(Deserialize)]
struct IdOnly {
    id: u64,
}

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// The error for anything the guest sent that breaks the protocol.
fn invalid(detail: String) -> BackendError {
    BackendError::InvalidAnswer(detail)
}

/// The id of a frame from its first bytes (`{"id":<digits>,` as the agent writes
/// it), without parsing the rest.
fn leading_id(bytes: &[u8]) -> Option<u64> {
    let rest = bytes.strip_prefix(b"{\"id\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 || rest.get(digits) != Some(&b',') {
        return None;
    }
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// Most resynchronisation points tried on a line that does not parse.
const MAX_RESYNC_CANDIDATES: usize = 64;

/// Where the frame in `line` starts and its id. A line that does not parse whole may be
/// the tail of a frame cut off by an earlier client's disconnect glued to a whole frame:
/// then the frame is the suffix starting at a later `{"id":`.
fn frame_id(line: &[u8]) -> Option<(usize, u64)> {
    if let Ok(IdOnly { id }) = serde_json::from_slice::<IdOnly>(line) {
        return Some((0, id));
    }
    const START: &[u8] = b"{\"id\":";
    line.windows(START.len())
        .enumerate()
        .skip(1)
        .filter(|(_, w)| *w == START)
        .take(MAX_RESYNC_CANDIDATES)
        .find_map(|(i, _)| serde_json::from_slice::<IdOnly>(&line[i..]).ok().map(|f| (i, f.id)))
}

/// Take an exclusive, non-blocking flock on `file`; `Ok(false)` when someone holds it.
fn try_flock(file: &File) -> io::Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// One connection to one agent port (with the port's lock, when it has one).
#[derive(Debug)]
pub struct Session {
    stream: UnixStream,
    /// Bytes read but not yet consumed (at most one partial line after a call).
    pending: Vec<u8>,
    /// The flock on `agent-<port>.lock`, held while the session lives.
    _lock: Option<File>,
    port: Option<usize>,
    /// A write failed or was cut short, or the guest broke the framing: the stream may
    /// hold half a frame.
    broken: bool,
    /// The rest of an over-long answer to another request is being dropped.
    skipping: bool,
    limits: GuestLimits,
}

impl Session {
    /// A session over an already connected stream.
    pub fn new(stream: UnixStream, lock: Option<File>, port: Option<usize>) -> Self {
        Session {
            stream,
            pending: Vec::new(),
            _lock: lock,
            port,
            broken: false,
            skipping: false,
            limits: GuestLimits::from_env(),
        }
    }

    /// Try to claim port `index` of a sandbox: `Ok(None)` when another process holds it.
    pub fn claim_port(paths: &SandboxPaths, index: usize) -> Result<Option<Session>, BackendError> {
        let lock_path = paths.agent_lock(index);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(|e| BackendError::io(format!("cannot open {}", lock_path.display()), e))?;
        if !try_flock(&lock)
            .map_err(|e| BackendError::io(format!("cannot lock {}", lock_path.display()), e))?
        {
            return Ok(None);
        }
        let socket = paths.agent_socket(index);
        let stream = connect_unix(&socket).map_err(|e| {
            if process::qemu_pid(paths).is_none() {
                BackendError::NotRunning
            } else {
                BackendError::io(
                    format!("cannot connect to the agent socket {}", socket.display()),
                    e,
                )
            }
        })?;
        Ok(Some(Session::new(stream, Some(lock), Some(index))))
    }

    /// Claim the first free port, polling until `deadline` when all are taken.
    pub fn claim_any_port(
        paths: &SandboxPaths,
        ports: usize,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Session, BackendError> {
        loop {
            for index in 0..ports {
                if let Some(session) = Self::claim_port(paths, index)? {
                    return Ok(session);
                }
            }
            if Instant::now() >= deadline {
                return Err(BackendError::Timeout(timeout));
            }
            if process::qemu_pid(paths).is_none() {
                return Err(BackendError::NotRunning);
            }
            std::thread::sleep(PORT_POLL);
        }
    }

    /// The port this session uses.
    pub fn port(&self) -> Option<usize> {
        self.port
    }

    /// Whether a failed write may have left half a frame in the stream.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Write one request frame; returns its id.
    pub fn send(
        &mut self,
        request: Request,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<u64, BackendError> {
        let id = fresh_id();
        let line = encode_line(&RequestFrame { id, request })
            .map_err(|e| BackendError::Protocol(format!("cannot encode the request: {e}")))?;
        let mut written = 0;
        while written < line.len() {
            let Some(left) = remaining(deadline) else {
                self.broken = written > 0;
                return Err(BackendError::Timeout(timeout));
            };
            self.stream
                .set_write_timeout(Some(left))
                .map_err(|e| BackendError::io("cannot set the agent socket write timeout", e))?;
            match self.stream.write(&line[written..]) {
                Ok(0) => {
                    self.broken = true;
                    return Err(BackendError::GuestDied(
                        "the agent connection closed while sending".into(),
                    ));
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(stream_error("sending", e));
                }
            }
        }
        Ok(id)
    }

    /// Wait until `until` for the answer to one of `ids`; `Ok(None)` when `until` passed.
    /// Lines that do not parse and answers to other ids are skipped (at most
    /// [`MAX_SKIPPED_ANSWERS`]); an answer line longer than `cap` bytes is refused as
    /// soon as it passes the cap, and one that answers another id is dropped while it
    /// streams by, so the session never holds more than `cap` plus one read buffer.
    pub fn receive_until(
        &mut self,
        ids: &[u64],
        until: Instant,
        cap: usize,
    ) -> Result<Option<(u64, Response)>, BackendError> {
        let mut scanned = 0;
        let mut skipped = 0usize;
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            if self.skipping {
                match self.pending.iter().position(|b| *b == b'\n') {
                    Some(pos) => {
                        self.pending.drain(..=pos);
                        self.skipping = false;
                        scanned = 0;
                        skipped += 1;
                    }
                    None => self.pending.clear(),
                }
            }
            while !self.skipping {
                let Some(pos) = self.pending[scanned..].iter().position(|b| *b == b'\n') else {
                    break;
                };
                let pos = pos + scanned;
                let mut line: Vec<u8> = self.pending.drain(..=pos).collect();
                line.pop();
                scanned = 0;
                match frame_id(&line) {
                    Some((start, id)) if ids.contains(&id) => {
                        line.drain(..start);
                        if line.len() > cap {
                            self.broken = true;
                            return Err(invalid(format!(
                                "an answer of {} bytes, more than the {cap} allowed for this request",
                                line.len()
                            )));
                        }
                        let frame: ResponseFrame = serde_json::from_slice(&line).map_err(|e| {
                            invalid(format!(
                                "{e}: {}",
                                String::from_utf8_lossy(&line[..line.len().min(200)])
                            ))
                        })?;
                        return Ok(Some((frame.id, frame.response)));
                    }
                    _ => skipped += 1,
                }
                if skipped > MAX_SKIPPED_ANSWERS {
                    self.broken = true;
                    return Err(invalid(format!(
                        "more than {MAX_SKIPPED_ANSWERS} lines that answer no request of this call"
                    )));
                }
            }
            if !self.skipping {
                scanned = self.pending.len();
                if self.pending.len() > cap {
                    match leading_id(&self.pending) {
                        // An answer to someone else: let it stream by unheld.
                        Some(id) if !ids.contains(&id) => {
                            self.pending.clear();
                            self.skipping = true;
                            scanned = 0;
                        }
                        _ => {
                            self.broken = true;
                            self.pending = Vec::new();
                            return Err(invalid(format!(
                                "a line of more than {cap} bytes without an end (the most this request allows)"
                            )));
                        }
                    }
                }
            }
            let Some(left) = remaining(until) else {
                return Ok(None);
            };
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| BackendError::io("cannot set the agent socket read timeout", e))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(BackendError::GuestDied(
                        "the agent connection closed (QEMU exited or the guest shut down)".into(),
                    ))
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(stream_error("waiting for the answer", e)),
            }
        }
    }

    /// Send `request` and wait for its answer until `deadline` (`timeout` is only for
    /// the error message).
    pub fn call(
        &mut self,
        request: Request,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Response, BackendError> {
        let cap = answer_cap(&request, &self.limits);
        let id = self.send(request, deadline, timeout)?;
        match self.receive_until(&[id], deadline, cap)? {
            Some((_, response)) => Ok(response),
            None => Err(BackendError::Timeout(timeout)),
        }
    }

    /// Open the session with a hello.
    pub fn hello(
        &mut self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<AgentHello, BackendError> {
        let response =
            self.call(Request::Hello { protocol: PROTOCOL_VERSION }, deadline, timeout)?;
        AgentHello::from_response(response)
    }
}

/// Time left until `deadline`, `None` when it passed.
fn remaining(deadline: Instant) -> Option<Duration> {
    deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
}

fn stream_error(doing: &str, e: io::Error) -> BackendError {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::NotConnected
        | io::ErrorKind::UnexpectedEof => {
            BackendError::GuestDied(format!("the agent connection failed while {doing}: {e}"))
        }
        _ => BackendError::io(format!("agent connection error while {doing}"), e),
    }
}

/// A channel to the agent of a running QEMU sandbox. See the module doc.
#[derive(Debug)]
pub struct QemuChannel {
    paths: SandboxPaths,
    ports: usize,
    session: Option<Session>,
    hello: Option<AgentHello>,
}

impl QemuChannel {
    /// Connect to the sandbox in `dir`. When a port is free the session opens now (hello
    /// within [`HELLO_TIMEOUT`]); when all are taken the first [`AgentChannel::call`]
    /// waits for one, up to its own timeout.
    pub fn connect(dir: &Path) -> Result<Self, BackendError> {
        let mut channel = Self::unopened(dir)?;
        let deadline = Instant::now() + HELLO_TIMEOUT;
        for index in 0..channel.ports {
            if let Some(session) = Session::claim_port(&channel.paths, index)? {
                channel.open_with(session, deadline, HELLO_TIMEOUT)?;
                break;
            }
        }
        Ok(channel)
    }

    /// Connect, waiting up to `timeout` for a free port and the agent's hello.
    pub fn connect_with_timeout(dir: &Path, timeout: Duration) -> Result<Self, BackendError> {
        let mut channel = Self::unopened(dir)?;
        channel.ensure_open(Instant::now() + timeout, timeout)?;
        Ok(channel)
    }

    fn unopened(dir: &Path) -> Result<Self, BackendError> {
        let paths = SandboxPaths::new(dir).map_err(|_| BackendError::NotRunning)?;
        if process::qemu_pid(&paths).is_none() {
            return Err(BackendError::NotRunning);
        }
        Ok(QemuChannel { paths, ports: AGENT_PORT_COUNT, session: None, hello: None })
    }

    fn open_with(
        &mut self,
        mut session: Session,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), BackendError> {
        let hello = session.hello(deadline, timeout)?;
        self.hello = Some(hello);
        self.session = Some(session);
        Ok(())
    }

    fn ensure_open(&mut self, deadline: Instant, timeout: Duration) -> Result<(), BackendError> {
        if self.session.is_some() {
            return Ok(());
        }
        let opened = Session::claim_any_port(&self.paths, self.ports, deadline, timeout)
            .and_then(|session| self.open_with(session, deadline, timeout));
        opened.map_err(|e| match e {
            // A QEMU that is exiting still has its sockets open for a moment after
            // /proc stops showing its command line: opening a session then fails with
            // a reset, which means "not running" here (no request was in flight).
            BackendError::GuestDied(_) | BackendError::Io { .. }
                if process::qemu_pid(&self.paths).is_none() =>
            {
                BackendError::NotRunning
            }
            other => other,
        })
    }

    /// The agent's hello, once the session is open.
    pub fn hello(&self) -> Option<&AgentHello> {
        self.hello.as_ref()
    }

    /// The agent port in use, once the session is open.
    pub fn port(&self) -> Option<usize> {
        self.session.as_ref().and_then(Session::port)
    }
}

impl AgentChannel for QemuChannel {
    fn call(&mut self, request: Request, timeout: Duration) -> Result<Response, BackendError> {
        let deadline = Instant::now() + timeout;
        self.ensure_open(deadline, timeout)?;
        let Some(session) = self.session.as_mut() else {
            return Err(BackendError::NotRunning);
        };
        let result = session.call(request, deadline, timeout);
        if session.is_broken()
            || matches!(result, Err(BackendError::GuestDied(_) | BackendError::Io { .. }))
        {
            // Reconnect on the next call (which fails with NotRunning if QEMU is gone).
            self.session = None;
        }
        result
    }

    fn supports(&mut self, capability: &str) -> bool {
        let timeout = HELLO_TIMEOUT;
        if self.ensure_open(Instant::now() + timeout, timeout).is_err() {
            return false;
        }
        self.hello.as_ref().is_some_and(|h| h.capabilities.iter().any(|c| c == capability))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro_protocol::ExecOutput;
    use std::io::{BufRead, BufReader};

    fn read_request(reader: &mut BufReader<UnixStream>) -> RequestFrame {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read request");
        serde_json::from_str(&line).expect("parse request")
    }

    fn write_line(stream: &mut UnixStream, text: &str) {
        stream.write_all(text.as_bytes()).expect("write");
        stream.write_all(b"\n").expect("write");
    }

    fn done_line(id: u64) -> String {
        String::from_utf8(
            encode_line(&ResponseFrame { id, response: Response::Done }).expect("encode"),
        )
        .expect("utf8")
        .trim_end()
        .to_owned()
    }

    #[test]
    fn stale_and_garbage_lines_are_skipped() {
        let (host, agent) = UnixStream::pair().expect("pair");
        let peer = std::thread::spawn(move || {
            let mut reader = BufReader::new(agent.try_clone().expect("clone"));
            let mut agent = agent;
            let frame = read_request(&mut reader);
            assert!(matches!(frame.request, Request::Sync));
            // Half a line left over by an earlier client, noise, an old answer, then ours
            // split across two writes.
            write_line(&mut agent, "{\"id\":12,\"res");
            write_line(&mut agent, "not json at all");
            // The tail of a cut frame glued to a stale answer: skipped after resync.
            write_line(&mut agent, &format!("a\\\"}}{}", done_line(frame.id.wrapping_add(2))));
            write_line(&mut agent, &done_line(frame.id.wrapping_add(1)));
            let ours = done_line(frame.id);
            let (a, b) = ours.split_at(ours.len() / 2);
            agent.write_all(a.as_bytes()).expect("write");
            std::thread::sleep(Duration::from_millis(30));
            write_line(&mut agent, b);
            // A second request gets an Exec answer.
            let frame = read_request(&mut reader);
            let out = ExecOutput {
                stdout_b64: String::new(),
                stderr_b64: String::new(),
                truncated: false,
                exit_code: 3,
                signal: None,
                timed_out: false,
                duration_ms: 1,
            };
            let line = encode_line(&ResponseFrame { id: frame.id, response: Response::Exec(out) })
                .expect("encode");
            agent.write_all(&line).expect("write");
            agent
        });
        let mut session = Session::new(host, None, None);
        let timeout = Duration::from_secs(5);
        let response =
            session.call(Request::Sync, Instant::now() + timeout, timeout).expect("call");
        assert!(matches!(response, Response::Done), "{response:?}");
        let response =
            session.call(Request::Sync, Instant::now() + timeout, timeout).expect("call");
        assert!(
            matches!(response, Response::Exec(ExecOutput { exit_code: 3, .. })),
            "{response:?}"
        );
        drop(peer.join().expect("peer"));
    }

    #[test]
    fn frames_glued_to_a_cut_tail_are_found() {
        let ours = done_line(7);
        assert_eq!(frame_id(ours.as_bytes()), Some((0, 7)));
        let glued = format!("ta\\\"}}}}{ours}");
        assert_eq!(frame_id(glued.as_bytes()), Some((glued.len() - ours.len(), 7)));
        assert_eq!(frame_id(b"{\"id\":7,\"resu"), None);
        assert_eq!(frame_id(b"no frame"), None);
    }

    #[test]
    fn eof_is_guest_died_and_silence_is_timeout() {
        let (host, agent) = UnixStream::pair().expect("pair");
        let mut session = Session::new(host, None, None);
        let timeout = Duration::from_millis(150);
        let started = Instant::now();
        let err =
            session.call(Request::Sync, Instant::now() + timeout, timeout).expect_err("timeout");
        assert!(matches!(err, BackendError::Timeout(_)), "{err}");
        assert!(started.elapsed() >= timeout);
        assert!(!session.is_broken());
        drop(agent);
        let err = session.call(Request::Sync, Instant::now() + timeout, timeout).expect_err("died");
        assert!(matches!(err, BackendError::GuestDied(_)), "{err}");
    }

    #[test]
    fn answer_to_us_that_does_not_parse_is_an_invalid_answer() {
        let (host, agent) = UnixStream::pair().expect("pair");
        let peer = std::thread::spawn(move || {
            let mut reader = BufReader::new(agent.try_clone().expect("clone"));
            let mut agent = agent;
            let frame = read_request(&mut reader);
            write_line(&mut agent, &format!("{{\"id\":{},\"result\":\"teleported\"}}", frame.id));
            agent
        });
        let mut session = Session::new(host, None, None);
        let timeout = Duration::from_secs(5);
        let err =
            session.call(Request::Sync, Instant::now() + timeout, timeout).expect_err("protocol");
        assert!(matches!(err, BackendError::InvalidAnswer(_)), "{err}");
        assert!(err.to_string().starts_with("the guest agent sent an invalid answer: "), "{err}");
        drop(peer.join().expect("peer"));
    }

    #[test]
    fn hello_checks_the_major_version() {
        let hello = |major| Response::Hello {
            agent_version: "0.1.0".into(),
            protocol: (major, 0),
            capabilities: vec!["exec".into()],
            kernel_release: "6.1.0".into(),
        };
        let ok = AgentHello::from_response(hello(PROTOCOL_VERSION.0)).expect("hello");
        assert_eq!(ok.kernel_release, "6.1.0");
        let err = AgentHello::from_response(hello(PROTOCOL_VERSION.0 + 1)).expect_err("major");
        assert!(err.to_string().contains("scripts/setup"), "{err}");
        assert!(AgentHello::from_response(Response::Done).is_err());
    }

    #[test]
    fn ports_are_claimed_exclusively() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let paths = SandboxPaths::from_canonical(tmp.path().canonicalize().expect("canon"));
        // QEMU's listening socket, faked.
        let _listener =
            std::os::unix::net::UnixListener::bind(paths.agent_socket(0)).expect("bind");
        let first = Session::claim_port(&paths, 0).expect("claim").expect("free");
        assert_eq!(first.port(), Some(0));
        // flock is per open file description: a second open in this process conflicts too.
        assert!(Session::claim_port(&paths, 0).expect("claim").is_none());
        drop(first);
        assert!(Session::claim_port(&paths, 0).expect("claim").is_some());
    }
}
