//! The frame loop over in-memory pipes, and the `--stdio` mode of the binary.

use base64::Engine as _;
use pyro_agent::Sandbox;
use pyro_protocol::{ErrorKind, Response, ResponseFrame};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn read_frames(reader: impl BufRead) -> Vec<ResponseFrame> {
    reader
        .lines()
        .map(|line| {
            serde_json::from_str(&line.expect("line")).expect("each answer is one JSON line")
        })
        .collect()
}

#[test]
fn concurrent_requests_are_answered_in_completion_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("f.txt"), b"fast").expect("write");
    let sandbox = Arc::new(Sandbox::host_compat(dir.path()));
    let (req_reader, mut req_writer) = std::io::pipe().expect("pipe");
    let (resp_reader, resp_writer) = std::io::pipe().expect("pipe");
    let server = std::thread::spawn(move || {
        pyro_agent::serve(sandbox, BufReader::new(req_reader), resp_writer)
    });

    let started = Instant::now();
    let lines = [
        r#"{"id":1,"op":"exec","command":"sleep 1; echo slow","cwd":"/workspace","timeout_ms":20000,"max_output_bytes":100}"#.to_owned(),
        "garbage that is not json".to_owned(),
        r#"{"id":2,"op":"read_file","path":"/workspace/f.txt","max_bytes":100}"#.to_owned(),
        r#"{"id":3,"op":"teleport","where":"mars"}"#.to_owned(),
        r#"{"id":4,"op":"hello","protocol":[1,0]}"#.to_owned(),
        format!(r#"{{"id":5,"op":"write_file","path":"/workspace/new.txt","data_b64":"{}"}}"#, b64(b"new")),
        r#"{"id":6,"op":"read_file","path":"/workspace/../etc/passwd","max_bytes":1}"#.to_owned(),
    ];
    for line in &lines {
        req_writer.write_all(line.as_bytes()).expect("send");
        req_writer.write_all(b"\n").expect("send");
    }
    drop(req_writer); // EOF: serve returns once every in-flight request is answered.

    let frames = read_frames(BufReader::new(resp_reader));
    server.join().expect("server thread").expect("serve");
    assert!(started.elapsed() >= Duration::from_secs(1));

    let ids: Vec<u64> = frames.iter().map(|f| f.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [1, 2, 3, 4, 5, 6], "every request answered exactly once, garbage skipped");
    assert_eq!(ids.last(), Some(&1), "the slow exec is answered last: {ids:?}");

    for frame in &frames {
        match (frame.id, &frame.response) {
            (1, Response::Exec(out)) => {
                assert_eq!(out.exit_code, 0);
                assert_eq!(out.stdout_b64, b64(b"slow\n"));
            }
            (2, Response::FileData { size_bytes: 4, data_b64, truncated: false }) => {
                assert_eq!(data_b64, &b64(b"fast"));
            }
            (3, Response::Error { kind: ErrorKind::Unsupported, message }) => {
                assert!(message.contains("teleport"), "{message}");
            }
            (4, Response::Hello { capabilities, .. }) => {
                assert_eq!(capabilities, pyro_agent::CAPABILITIES);
                assert!(capabilities.iter().any(|c| c == "services"), "{capabilities:?}");
            }
            (5, Response::Written { bytes_written: 3 }) => {}
            (6, Response::Error { kind: ErrorKind::PathEscape, .. }) => {}
            (id, other) => panic!("unexpected answer to {id}: {other:?}"),
        }
    }
    assert_eq!(std::fs::read(dir.path().join("new.txt")).expect("read"), b"new");
}

#[test]
fn stdio_mode_serves_a_session_in_the_current_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pyro-guest-agent"))
        .arg("--stdio")
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn agent");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        let requests = [
            r#"{"id":10,"op":"hello","protocol":[1,0]}"#.to_owned(),
            format!(
                r#"{{"id":11,"op":"write_file","path":"/workspace/a/b.txt","data_b64":"{}"}}"#,
                b64(b"hi\n")
            ),
        ];
        for line in &requests {
            writeln!(stdin, "{line}").expect("send");
        }
        // Let the write land before the exec reads it.
        std::thread::sleep(Duration::from_millis(300));
        writeln!(
            stdin,
            r#"{{"id":12,"op":"exec","command":"cat a/b.txt; pwd","cwd":"/workspace","timeout_ms":10000,"max_output_bytes":1000}}"#
        )
        .expect("send");
        writeln!(stdin, r#"{{"id":13,"op":"shutdown"}}"#).expect("send");
    }
    let frames = read_frames(BufReader::new(child.stdout.take().expect("stdout")));
    let status = child.wait().expect("wait");
    assert!(status.success());
    assert_eq!(frames.len(), 4, "{frames:?}");
    let find = |id| &frames.iter().find(|f| f.id == id).expect("answer").response;
    assert!(matches!(find(10), Response::Hello { .. }));
    assert!(matches!(find(11), Response::Written { bytes_written: 3 }));
    match find(12) {
        Response::Exec(out) => {
            let stdout =
                base64::engine::general_purpose::STANDARD.decode(&out.stdout_b64).expect("b64");
            let text = String::from_utf8(stdout).expect("utf8");
            let mut lines = text.lines();
            assert_eq!(lines.next(), Some("hi"));
            let pwd = std::path::PathBuf::from(lines.next().expect("pwd"));
            assert_eq!(
                pwd.canonicalize().expect("canon"),
                dir.path().canonicalize().expect("canon")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(find(13), Response::Error { kind: ErrorKind::Unsupported, .. }));
    assert_eq!(std::fs::read(dir.path().join("a/b.txt")).expect("read"), b"hi\n");
}
