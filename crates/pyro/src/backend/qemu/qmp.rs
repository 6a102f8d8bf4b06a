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
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let mut line = message.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).map_err(|source| QmpError::Io {
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
