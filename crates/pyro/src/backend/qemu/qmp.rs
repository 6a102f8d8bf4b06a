//! A minimal synchronous QMP client (QEMU Machine Protocol, JSON lines over the
//! sandbox's `qmp.sock`).
//!
//! QEMU greets with `{"QMP": ...}`; the client answers `qmp_capabilities`, then each
//! command `{"execute": ..., "arguments": ..., "id": n}` is answered by `{"return": ...,
//! "id": n}` or `{"error": {"class", "desc"}, "id": n}`. Asynchronous `{"event": ...}`
//! lines may come in between and are skipped. QEMU serves one QMP client at a time.

use super::super::BackendError;
use super::layout::connect_unix;
use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Errors of the QMP client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QmpError {
    /// Socket I/O failed.
    #[error("QMP {context} ({path}): {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The QMP socket.
        path: PathBuf,
        /// Cause.
        #[source]
        source: io::Error,
    },
    /// QEMU closed the connection.
    #[error("QMP connection closed by QEMU ({0})")]
    Closed(PathBuf),
    /// QEMU sent something that is not QMP.
    #[error("unexpected QMP message: {0}")]
    Protocol(String),
    /// QEMU rejected a command.
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// QMP error class.
        class: String,
        /// QEMU's description.
        desc: String,
    },
}

impl From<QmpError> for BackendError {
    fn from(e: QmpError) -> Self {
        match e {
            QmpError::Io { context, path, source } => {
                BackendError::io(format!("QMP {context} ({})", path.display()), source)
            }
            QmpError::Closed(_) => BackendError::GuestDied(e.to_string()),
            other => BackendError::Protocol(other.to_string()),
        }
    }
}

/// A connected, negotiated QMP session.
#[derive(Debug)]
pub struct QmpClient {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl QmpClient {
    /// Connect to `socket`, read the greeting and leave capabilities negotiation mode.
    /// Every read and write waits at most `timeout`.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let path = socket.to_path_buf();
        let io_err = |context, source| QmpError::Io { context, path: path.clone(), source };
        let stream = connect_unix(socket).map_err(|e| io_err("connect", e))?;
        stream.set_read_timeout(Some(timeout)).map_err(|e| io_err("set timeout", e))?;
        stream.set_write_timeout(Some(timeout)).map_err(|e| io_err("set timeout", e))?;
        let writer = stream.try_clone().map_err(|e| io_err("clone socket", e))?;
        let mut client = QmpClient { path, reader: BufReader::new(stream), writer, next_id: 1 };
        let greeting = client.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!("expected the QMP greeting, got {greeting}")));
        }
        client.execute("qmp_capabilities", None)?;
        Ok(client)
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line).map_err(|source| QmpError::Io {
                context: "read",
                path: self.path.clone(),
                source,
            })?;
            if n == 0 {
                return Err(QmpError::Closed(self.path.clone()));
            }
            if line.trim().is_empty() {
                continue;
            }
            return serde_json::from_str(&line)
                .map_err(|e| QmpError::Protocol(format!("{e}: {}", line.trim_end())));
        }
    }

    /// Run `command` with optional `arguments`; returns the `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        self.execute_passing(command, arguments, None)
    }

    /// Hand QEMU an open file as `fdname` (QMP `getfd`, the descriptor travelling as
    /// `SCM_RIGHTS` with the command), e.g. for `migrate uri=fd:<fdname>`. QEMU keeps its
    /// own copy; the caller may close `fd` afterwards.
    pub fn pass_fd(&mut self, fdname: &str, fd: BorrowedFd<'_>) -> Result<(), QmpError> {
        self.execute_passing("getfd", Some(json!({ "fdname": fdname })), Some(fd)).map(|_| ())
    }

    /// Pass `fd` to QEMU with `add-fd` (a new fd set); returns `(fdset_id, fd)`, the
    /// set's id and the descriptor number the file has inside QEMU.
    pub fn add_fd(&mut self, fd: BorrowedFd<'_>) -> Result<(u64, u64), QmpError> {
        let reply = self.execute_passing("add-fd", None, Some(fd))?;
        let field = |name: &str| {
            reply.get(name).and_then(Value::as_u64).ok_or_else(|| QmpError::Command {
                command: "add-fd".into(),
                class: "BadReply".into(),
                desc: format!("no {name} in {reply}"),
            })
        };
        Ok((field("fdset-id")?, field("fd")?))
    }

    fn execute_passing(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Value, QmpError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let mut line = message.to_string();
        line.push('\n');
        let written = match fd {
            None => self.writer.write_all(line.as_bytes()),
            Some(fd) => fd_passing::send_with_fd(&self.writer, line.as_bytes(), fd),
        };
        written.map_err(|source| QmpError::Io {
            context: "write",
            path: self.path.clone(),
            source,
        })?;
        loop {
            let reply = self.read_message()?;
            if reply.get("event").is_some() || reply.get("id") != Some(&json!(id)) {
                continue;
            }
            return parse_reply(command, reply);
        }
    }

    /// Ask QEMU to exit (it closes block devices cleanly). The connection closing right
    /// after the command counts as success.
    pub fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None) {
            Ok(_) | Err(QmpError::Closed(_)) => Ok(()),
            Err(QmpError::Io { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Run a human monitor (HMP) command, e.g. [`hostfwd_add_command`]; returns its output.
    pub fn human_monitor_command(&mut self, command_line: &str) -> Result<String, QmpError> {
        let value =
            self.execute("human-monitor-command", Some(json!({ "command-line": command_line })))?;
        let output = value.as_str().unwrap_or_default().to_owned();
        Ok(output)
    }
}

impl QmpClient {
    /// Forward `127.0.0.1:<host_port>` to guest port `guest_port` on the running
    /// guest's user network. HMP reports failures as output text, turned into an error.
    pub fn hostfwd_add(&mut self, host_port: u16, guest_port: u16) -> Result<(), QmpError> {
        self.hmp_expect_silent(&hostfwd_add_command(host_port, guest_port))
    }

    /// Remove a forward added with [`QmpClient::hostfwd_add`] (or at boot).
    pub fn hostfwd_remove(&mut self, host_port: u16) -> Result<(), QmpError> {
        self.hmp_expect_silent(&hostfwd_remove_command(host_port))
    }

    fn hmp_expect_silent(&mut self, command_line: &str) -> Result<(), QmpError> {
        let output = self.human_monitor_command(command_line)?;
        let output = output.trim();
        // hostfwd_remove prints "host forwarding rule for ... removed" on success.
        if output.is_empty() || output.ends_with("removed") {
            Ok(())
        } else {
            Err(QmpError::Command {
                command: command_line.to_owned(),
                class: "HmpError".into(),
                desc: output.to_owned(),
            })
        }
    }
}

/// State of a migration from `query-migrate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationStatus {
    /// Done.
    Completed,
    /// Failed or cancelled, with QEMU's reason when it gave one.
    Failed(String),
    /// Any other status (setup, active, ...), or none yet.
    InProgress(String),
}

impl QmpClient {
    /// Poll `query-migrate` every 5 ms until the migration completed or failed, at most
    /// `timeout`.
    pub fn wait_for_migration(&mut self, timeout: Duration) -> Result<(), QmpError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.migration_status()? {
                MigrationStatus::Completed => return Ok(()),
                MigrationStatus::Failed(reason) => {
                    return Err(QmpError::Command {
                        command: "migrate".into(),
                        class: "MigrationFailed".into(),
                        desc: reason,
                    })
                }
                MigrationStatus::InProgress(status) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(QmpError::Command {
                            command: "migrate".into(),
                            class: "Timeout".into(),
                            desc: format!("still '{status}' after {timeout:?}"),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }

    /// One `query-migrate`.
    pub fn migration_status(&mut self) -> Result<MigrationStatus, QmpError> {
        let value = self.execute("query-migrate", None)?;
        let status = value.get("status").and_then(Value::as_str).unwrap_or("none").to_owned();
        Ok(match status.as_str() {
            "completed" => MigrationStatus::Completed,
            "failed" | "cancelled" => MigrationStatus::Failed(
                value.get("error-desc").and_then(Value::as_str).unwrap_or(&status).to_owned(),
            ),
            _ => MigrationStatus::InProgress(status),
        })
    }
}

/// Sending a descriptor with `SCM_RIGHTS`, hand-written on libc: std's ancillary-data
/// API is unstable and this is the only place pyro needs it.
mod fd_passing {
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::os::unix::net::UnixStream;

    /// Write all of `bytes` on `stream`, the first chunk carrying `fd`.
    pub(super) fn send_with_fd(
        stream: &UnixStream,
        bytes: &[u8],
        fd: BorrowedFd<'_>,
    ) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        // SAFETY: CMSG_SPACE only computes a size from its argument.
        // JUSTIFICATION: the control buffer must be sized like the C macro says.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) };
        // u64 words keep the buffer aligned for cmsghdr.
        let mut control = vec![0u64; (space as usize).div_ceil(8)];
        let mut iov =
            libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
        // SAFETY: msghdr is plain data; all-zero is valid and the fields used are set below.
        // JUSTIFICATION: out-parameter style C struct.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as usize;
        // SAFETY: `msg` points at a control buffer of CMSG_SPACE(sizeof(int)) bytes, so
        // CMSG_FIRSTHDR is non-null and CMSG_DATA has room for one int; both stay alive
        // for the writes.
        // JUSTIFICATION: filling an SCM_RIGHTS control message needs the CMSG macros.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), raw);
        }
        // SAFETY: `msg` and everything it points to (iov over `bytes`, control) are valid
        // for the call; the socket is open.
        // JUSTIFICATION: only sendmsg(2) carries ancillary data.
        let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let sent = sent as usize;
        if sent < bytes.len() {
            io::Write::write_all(&mut &*stream, &bytes[sent..])?;
        }
        Ok(())
    }
}

/// Turn a QMP reply into the `return` value or a [`QmpError::Command`].
fn parse_reply(command: &str, reply: Value) -> Result<Value, QmpError> {
    if let Some(error) = reply.get("error") {
        let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        return Err(QmpError::Command {
            command: command.to_owned(),
            class: text("class"),
            desc: text("desc"),
        });
    }
    match reply.get("return") {
        Some(value) => Ok(value.clone()),
        None => Err(QmpError::Protocol(format!("reply without return or error: {reply}"))),
    }
}

/// HMP command forwarding `127.0.0.1:<host_port>` to guest port `guest_port` on the
/// sandbox's user network (`n0`).
pub fn hostfwd_add_command(host_port: u16, guest_port: u16) -> String {
    format!("hostfwd_add n0 tcp:127.0.0.1:{host_port}-:{guest_port}")
}

/// HMP command removing a forward made by [`hostfwd_add_command`].
pub fn hostfwd_remove_command(host_port: u16) -> String {
    format!("hostfwd_remove n0 tcp:127.0.0.1:{host_port}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A fake QEMU: greets, then answers each command from `answers` (by position),
    /// sending an event before each answer.
    fn fake_qemu(
        listener: UnixListener,
        answers: Vec<Value>,
    ) -> std::thread::JoinHandle<Vec<Value>> {
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut writer = stream;
            writer
                .write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .expect("greet");
            let mut seen = Vec::new();
            for answer in answers {
                let mut line = String::new();
                if reader.read_line(&mut line).expect("read") == 0 {
                    break;
                }
                let request: Value = serde_json::from_str(&line).expect("json");
                let mut reply = answer;
                reply["id"] = request["id"].clone();
                writer.write_all(b"{\"event\": \"RESUME\", \"timestamp\": {}}\r\n").expect("event");
                writer.write_all(format!("{reply}\r\n").as_bytes()).expect("reply");
                seen.push(request);
            }
            seen
        })
    }

    #[test]
    fn negotiates_and_runs_commands() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let socket = tmp.path().join("qmp.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let server = fake_qemu(
            listener,
            vec![
                json!({"return": {}}),
                json!({"return": ""}),
                json!({"error": {"class": "GenericError", "desc": "no such netdev"}}),
                json!({"return": {}}),
            ],
        );
        let mut client = QmpClient::connect(&socket, Duration::from_secs(5)).expect("connect");
        assert_eq!(client.human_monitor_command(&hostfwd_add_command(8080, 80)).expect("hmp"), "");
        let err = client.human_monitor_command(&hostfwd_remove_command(8080)).expect_err("error");
        assert!(err.to_string().contains("no such netdev"), "{err}");
        client.quit().expect("quit");
        let seen = server.join().expect("server");
        assert_eq!(seen[0]["execute"], "qmp_capabilities");
        assert_eq!(seen[1]["arguments"]["command-line"], "hostfwd_add n0 tcp:127.0.0.1:8080-:80");
        assert_eq!(seen[3]["execute"], "quit");
    }

    #[test]
    fn hostfwd_failures_reported_as_text_become_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let socket = tmp.path().join("qmp.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        let server = fake_qemu(
            listener,
            vec![
                json!({"return": {}}),
                json!({"return": ""}),
                json!({"return": "Could not set up host forwarding rule 'tcp:127.0.0.1:8080-:80'\r\n"}),
                json!({"return": "host forwarding rule for tcp:127.0.0.1:8080 removed\r\n"}),
                json!({"return": "host forwarding rule for tcp:127.0.0.1:9 not found\r\n"}),
            ],
        );
        let mut client = QmpClient::connect(&socket, Duration::from_secs(5)).expect("connect");
        client.hostfwd_add(8080, 80).expect("added");
        let err = client.hostfwd_add(8080, 80).expect_err("port taken");
        assert!(err.to_string().contains("Could not set up host forwarding rule"), "{err}");
        client.hostfwd_remove(8080).expect("removed");
        assert!(client.hostfwd_remove(9).is_err());
        drop(server.join().expect("server"));
    }

    #[test]
    fn quit_tolerates_qemu_closing_first() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let socket = tmp.path().join("qmp.sock");
        let listener = UnixListener::bind(&socket).expect("bind");
        // Answers capabilities, then closes without answering quit.
        let server = fake_qemu(listener, vec![json!({"return": {}})]);
        let mut client = QmpClient::connect(&socket, Duration::from_secs(5)).expect("connect");
        let seen = server.join().expect("server");
        assert_eq!(seen.len(), 1);
        client.quit().expect("quit after close");
    }
}
