//! The frame loop: JSON lines in, JSON lines out.
//!
//! Each line read is one request frame ([`pyro_protocol::RequestFrame`]). Lines that are
//! not JSON objects with a numeric `id` are skipped (after a reconnect the first line
//! may be the tail of an earlier peer's frame); a line that only parses from a later
//! `{` on is taken to be such a tail glued to a new frame, and the new frame is used. A frame with an id but an unknown `op`
//! is answered with [`ErrorKind::Unsupported`]; a known op with bad fields with
//! [`ErrorKind::Invalid`]. Every request runs on its own thread and is answered when it
//! completes, so answers come in completion order. Each answer is written whole, as one
//! line, under a mutex.

use crate::Sandbox;
use pyro_protocol::{encode_line, ErrorKind, Request, RequestFrame, Response, ResponseFrame};
use std::io::{self, BufRead, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

/// What to do with one input line.
#[derive(Debug)]
enum Parsed {
    /// Not a frame we can answer.
    Skip,
    /// Answer at once without running anything.
    Answer(u64, Response),
    /// Run this request.
    Run(u64, Request),
}

/// Most `{` positions tried when resynchronising on a line that does not parse.
const MAX_RESYNC_CANDIDATES: usize = 64;

/// Parse a line as a JSON value. If the whole line does not parse, try the suffixes
/// that start at a `{`: when a host disconnects mid-frame and the guest never sees the
/// EOF in between (the close and the next open can reach the guest together), the tail
/// of the old frame and the new host's first frame arrive as one line, and the new
/// frame is the valid suffix.
fn parse_value(line: &[u8]) -> Option<serde_json::Value> {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) {
        return Some(value);
    }
    line.iter()
        .enumerate()
        .skip(1)
        .filter(|(_, b)| **b == b'{')
        .take(MAX_RESYNC_CANDIDATES)
        .find_map(|(i, _)| {
            serde_json::from_slice::<serde_json::Value>(&line[i..])
                .ok()
                .filter(|v| v.get("id").is_some_and(serde_json::Value::is_u64))
        })
}

fn parse_line(line: &[u8]) -> Parsed {
    let Some(value) = parse_value(line) else {
        return Parsed::Skip;
    };
    let Some(id) = value.get("id").and_then(serde_json::Value::as_u64) else {
        return Parsed::Skip;
    };
    let op = value.get("op").and_then(serde_json::Value::as_str).map(str::to_owned);
    match serde_json::from_value::<RequestFrame>(value) {
        Ok(frame) => Parsed::Run(frame.id, frame.request),
        Err(err) => {
            let response = match op {
                None => error(ErrorKind::Invalid, "request frame has no op".to_owned()),
                Some(op) if err.to_string().contains("unknown variant") => {
                    error(ErrorKind::Unsupported, format!("unsupported operation: {op}"))
                }
                Some(op) => error(ErrorKind::Invalid, format!("malformed {op} request: {err}")),
            };
            Parsed::Answer(id, response)
        }
    }
}

fn error(kind: ErrorKind, message: String) -> Response {
    Response::Error { kind, message }
}

/// Requests still being handled when [`FrameServer::run`] returned.
#[derive(Debug, Default)]
#[must_use = "dropping InFlight detaches the handlers; call wait() to let them finish"]
pub struct InFlight {
    handles: Vec<JoinHandle<()>>,
}

impl InFlight {
    /// Block until every handler has written its answer.
    pub fn wait(self) {
        for handle in self.handles {
            // Handlers catch panics themselves; a join error cannot carry anything useful.
            let _ = handle.join();
        }
    }

    /// Number of handlers that were not finished when `run` returned.
    pub fn len(&self) -> usize {
        self.handles.iter().filter(|h| !h.is_finished()).count()
    }

    /// True when no handler is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Answers request frames for one [`Sandbox`] on one output stream. The writer is kept
/// across calls to [`FrameServer::run`], so a guest port can be read again after its
/// peer reconnected while answers for older requests are still being written.
#[derive(Debug)]
pub struct FrameServer<W> {
    sandbox: Arc<Sandbox>,
    writer: Arc<Mutex<W>>,
}

impl<W: Write + Send + 'static> FrameServer<W> {
    /// A server answering on `writer`.
    pub fn new(sandbox: Arc<Sandbox>, writer: W) -> Self {
        FrameServer { sandbox, writer: Arc::new(Mutex::new(writer)) }
    }

    /// Read frames from `reader` until EOF, starting one handler thread per request.
    /// Returns without waiting for the handlers; an error is a read error.
    pub fn run<R: BufRead>(&self, mut reader: R) -> io::Result<InFlight> {
        let mut in_flight = InFlight::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return Ok(in_flight),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            in_flight.handles.retain(|h| !h.is_finished());
            match parse_line(&line) {
                Parsed::Skip => {}
                Parsed::Answer(id, response) => write_frame(&self.writer, id, response),
                Parsed::Run(id, request) => {
                    if let Some(handle) = self.spawn_handler(id, request) {
                        in_flight.handles.push(handle);
                    }
                }
            }
        }
    }

    fn spawn_handler(&self, id: u64, request: Request) -> Option<JoinHandle<()>> {
        let sandbox = Arc::clone(&self.sandbox);
        let writer = Arc::clone(&self.writer);
        let spawned = thread::Builder::new().name(format!("pyro-request-{id}")).spawn(move || {
            let is_shutdown = matches!(request, Request::Shutdown);
            let response = panic::catch_unwind(AssertUnwindSafe(|| sandbox.handle(request)))
                .unwrap_or_else(|_| {
                    error(ErrorKind::Io, "internal error while handling the request".to_owned())
                });
            let shutting_down = is_shutdown && matches!(response, Response::Done);
            write_frame(&writer, id, response);
            if shutting_down {
                sandbox.finish_shutdown();
            }
        });
        match spawned {
            Ok(handle) => Some(handle),
            Err(e) => {
                write_frame(
                    &self.writer,
                    id,
                    error(ErrorKind::Io, format!("cannot start a handler thread: {e}")),
                );
                None
            }
        }
    }
}

fn write_frame<W: Write>(writer: &Mutex<W>, id: u64, response: Response) {
    let Ok(line) = encode_line(&ResponseFrame { id, response }) else { return };
    let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
    // A failed write means the peer is gone; it will retry with a new request id.
    if writer.write_all(&line).is_ok() {
        let _ = writer.flush();
    }
}

/// Serve one session: answer frames from `reader` on `writer` until EOF, then wait for
/// the requests still in flight to be answered.
pub fn serve<R: BufRead, W: Write + Send + 'static>(
    sandbox: Arc<Sandbox>,
    reader: R,
    writer: W,
) -> io::Result<()> {
    FrameServer::new(sandbox, writer).run(reader)?.wait();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified() {
        assert!(matches!(parse_line(b"not json\n"), Parsed::Skip));
        assert!(matches!(parse_line(b"{\"op\":\"sync\"}\n"), Parsed::Skip));
        assert!(matches!(parse_line(b"[1,2]\n"), Parsed::Skip));
        assert!(matches!(parse_line(b"{\"id\":3,\"op\":\"sy"), Parsed::Skip));
        assert!(matches!(
            parse_line(b"{\"id\":4,\"op\":\"sync\",\"extra\":1}\n"),
            Parsed::Run(4, Request::Sync)
        ));
        match parse_line(b"{\"id\":5,\"op\":\"teleport\"}") {
            Parsed::Answer(5, Response::Error { kind: ErrorKind::Unsupported, message }) => {
                assert_eq!(message, "unsupported operation: teleport");
            }
            other => panic!("{other:?}"),
        }
        match parse_line(b"{\"id\":6,\"op\":\"read_file\",\"path\":3}") {
            Parsed::Answer(6, Response::Error { kind: ErrorKind::Invalid, message }) => {
                assert!(message.starts_with("malformed read_file request"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // The tail of a frame cut off by a disconnect, glued to the next host's frame.
        assert!(matches!(
            parse_line(b"{\"id\":2,\"op\":\"re{\"id\":9,\"op\":\"sync\"}\n"),
            Parsed::Run(9, Request::Sync)
        ));
        assert!(matches!(
            parse_line(b"{\"id\":2,\"op\":\"exec\",\"env\":{\"A\":\"{\"}\n"),
            Parsed::Skip
        ));
        assert!(matches!(
            parse_line(b"{\"id\":7}"),
            Parsed::Answer(7, Response::Error { kind: ErrorKind::Invalid, .. })
        ));
    }
}
