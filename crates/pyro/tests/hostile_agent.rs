//! A fake, hostile agent on the host side of the channel: each case answers a real
//! request the way a guest that took the agent's ports over could, and the host must
//! end the call with a clear error while its memory stays under a fixed bound.
//!
//! Every case runs in its own child process (this binary re-run with
//! `PYRO_HOSTILE_CASE=<name>`), so the peak RSS it reports (`VmHWM` minus the RSS before
//! the call) is that case's alone. `harness = false`: `main` is the parent.

use pyro::backend::qemu::channel::Session;
use pyro::backend::BackendError;
use pyro_protocol::{encode_line, ExecRequest, Request, RequestFrame, Response, ResponseFrame};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

const CASE_ENV: &str = "PYRO_HOSTILE_CASE";

/// What a case sends and what the host must say.
struct Case {
    name: &'static str,
    /// The request the host makes.
    request: fn() -> Request,
    /// The hostile peer: gets the request's id and the agent end of the stream.
    peer: fn(u64, UnixStream),
    /// Deadline of the call.
    timeout: Duration,
    /// Text the error must contain (`None`: the call must succeed).
    expect: Option<&'static str>,
    /// Most the host's peak RSS may grow during the call, MiB.
    bound_mib: u64,
    /// Extra environment for the child.
    env: &'static [(&'static str, &'static str)],
}

fn exec_request() -> Request {
    Request::Exec(ExecRequest {
        command: "true".into(),
        cwd: "/workspace".into(),
        env: Default::default(),
        timeout_ms: 10_000,
        max_output_bytes: 1024 * 1024,
    })
}

fn hello_request() -> Request {
    Request::Hello { protocol: pyro_protocol::PROTOCOL_VERSION }
}

fn export_request() -> Request {
    Request::ExportTar { path: "/workspace".into() }
}

fn line(id: u64, response: Response) -> Vec<u8> {
    encode_line(&ResponseFrame { id, response }).expect("encode")
}

/// Write until the host hangs up (or 4 GiB, far past every cap).
fn write_forever(stream: &mut UnixStream, prefix: &[u8], filler: u8) {
    let _ = stream.write_all(prefix);
    let block = vec![filler; 64 * 1024];
    for _ in 0..(64 * 1024) {
        if stream.write_all(&block).is_err() {
            return;
        }
    }
}

fn endless_line(_: u64, mut s: UnixStream) {
    write_forever(&mut s, b"", b'A');
}

fn huge_frame_to_us(id: u64, mut s: UnixStream) {
    write_forever(
        &mut s,
        format!("{{\"id\":{id},\"result\":\"exec\",\"stdout_b64\":\"").as_bytes(),
        b'A',
    );
}

fn huge_frame_to_another_id_then_ours(id: u64, mut s: UnixStream) {
    let other = id.wrapping_add(1);
    let _ = s.write_all(format!("{{\"id\":{other},\"result\":\"tar\",\"data_b64\":\"").as_bytes());
    let block = vec![b'A'; 64 * 1024];
    for _ in 0..(256 * 16) {
        // 256 MiB, streamed by without being held.
        let _ = s.write_all(&block);
    }
    let _ = s.write_all(b"\"}\n");
    let _ = s.write_all(&line(id, Response::Done));
    std::thread::sleep(Duration::from_secs(2));
}

fn invalid_json(id: u64, mut s: UnixStream) {
    let _ =
        s.write_all(format!("{{\"id\":{id},\"result\":\"exec\",\"stdout_b64\":12}}\n").as_bytes());
    std::thread::sleep(Duration::from_secs(2));
}

fn flood_of_other_ids(id: u64, mut s: UnixStream) {
    let mut lines = Vec::new();
    for i in 1..=10_000u64 {
        lines.extend_from_slice(&line(id.wrapping_add(i), Response::Done));
    }
    let _ = s.write_all(&lines);
    std::thread::sleep(Duration::from_secs(2));
}

fn binary_garbage(_: u64, mut s: UnixStream) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    // 4 MiB: about 16 000 random "lines", none of them an answer.
    let mut bytes = Vec::with_capacity(4 << 20);
    for _ in 0..(4 << 20) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.push((state >> 24) as u8);
    }
    let _ = s.write_all(&bytes);
    std::thread::sleep(Duration::from_secs(2));
}

fn slow_drip(id: u64, mut s: UnixStream) {
    for b in line(id, Response::Done) {
        if s.write_all(&[b]).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn never_answers(_: u64, s: UnixStream) {
    std::thread::sleep(Duration::from_secs(3));
    drop(s);
}

fn forged_hello_capabilities(id: u64, mut s: UnixStream) {
    let hello = Response::Hello {
        agent_version: "0.1.0".into(),
        protocol: pyro_protocol::PROTOCOL_VERSION,
        capabilities: (0..1000).map(|i| format!("cap{i}")).collect(),
        kernel_release: "6.1.0".into(),
    };
    let _ = s.write_all(&line(id, hello));
    std::thread::sleep(Duration::from_secs(2));
}

fn forged_hello_text(id: u64, mut s: UnixStream) {
    let hello = Response::Hello {
        agent_version: "0.1.0\u{1b}[2J\nEvil: yes".into(),
        protocol: pyro_protocol::PROTOCOL_VERSION,
        capabilities: vec!["exec".into()],
        kernel_release: "6.1.0".into(),
    };
    let _ = s.write_all(&line(id, hello));
    std::thread::sleep(Duration::from_secs(2));
}

fn hello_answered_with_done(id: u64, mut s: UnixStream) {
    let _ = s.write_all(&line(id, Response::Done));
    std::thread::sleep(Duration::from_secs(2));
}

fn huge_hello(id: u64, mut s: UnixStream) {
    // A 10 MiB agent_version, streamed (the peer holds none of it).
    let _ =
        s.write_all(format!("{{\"id\":{id},\"result\":\"hello\",\"agent_version\":\"").as_bytes());
    let block = vec![b'0'; 64 * 1024];
    for _ in 0..160 {
        if s.write_all(&block).is_err() {
            return;
        }
    }
    let _ = s.write_all(b"\",\"protocol\":[1,5],\"capabilities\":[],\"kernel_release\":\"6.1\"}\n");
    std::thread::sleep(Duration::from_secs(2));
}

fn cases() -> Vec<Case> {
    let case = |name, request, peer, expect, bound_mib| Case {
        name,
        request,
        peer,
        timeout: Duration::from_secs(20),
        expect,
        bound_mib,
        env: &[],
    };
    let invalid = Some("the guest agent sent an invalid answer");
    vec![
        case("endless_line", exec_request, endless_line, Some("without an end"), 16),
        case("huge_frame", exec_request, huge_frame_to_us, invalid, 16),
        Case {
            env: &[("PYRO_MAX_TRANSFER_MIB", "16")],
            ..case(
                "endless_line_on_export",
                export_request,
                endless_line,
                Some("without an end"),
                40,
            )
        },
        // At the default transfer cap (128 MiB of archive, a 171 MiB base64 line).
        case(
            "endless_line_on_export_default_cap",
            export_request,
            endless_line,
            Some("without an end"),
            200,
        ),
        case(
            "huge_answer_to_another_id",
            exec_request,
            huge_frame_to_another_id_then_ours,
            None,
            16,
        ),
        case("invalid_json", exec_request, invalid_json, invalid, 16),
        case(
            "flood_of_other_ids",
            exec_request,
            flood_of_other_ids,
            Some("lines that answer no request"),
            16,
        ),
        case("binary_garbage", exec_request, binary_garbage, invalid, 16),
        Case {
            timeout: Duration::from_secs(3),
            ..case("slow_drip", exec_request, slow_drip, Some("did not answer within"), 16)
        },
        Case {
            timeout: Duration::from_secs(1),
            ..case("never_answers", exec_request, never_answers, Some("did not answer within"), 16)
        },
        case("forged_hello_capabilities", hello_request, forged_hello_capabilities, invalid, 16),
        case("forged_hello_text", hello_request, forged_hello_text, Some("printable"), 16),
        case(
            "hello_answered_with_done",
            hello_request,
            hello_answered_with_done,
            Some("expected a hello"),
            16,
        ),
        case("huge_hello", hello_request, huge_hello, invalid, 16),
    ]
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("field")
}

/// Child: run one case and print `RESULT <growth KiB> <elapsed ms> <outcome>`.
fn run_child(name: &str) {
    let case = cases().into_iter().find(|c| c.name == name).expect("known case");
    let (host, agent) = UnixStream::pair().expect("pair");
    let peer = case.peer;
    let thread = std::thread::spawn(move || {
        let mut reader = BufReader::new(agent.try_clone().expect("clone"));
        let mut request = String::new();
        reader.read_line(&mut request).expect("request");
        let frame: RequestFrame = serde_json::from_str(&request).expect("parse request");
        peer(frame.id, agent);
    });
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let mut session = Session::new(host, None, None);
    let request = (case.request)();
    let outcome = match &request {
        Request::Hello { .. } => {
            session.hello(Instant::now() + case.timeout, case.timeout).map(|_| ())
        }
        _ => session.call(request, Instant::now() + case.timeout, case.timeout).map(|_| ()),
    };
    let elapsed = started.elapsed();
    let peak = status_kib("VmHWM:");
    drop(session);
    let _ = thread.join();
    let outcome = match outcome {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            let kind = match e {
                BackendError::InvalidAnswer(_) => "invalid",
                BackendError::Timeout(_) => "timeout",
                _ => "other",
            };
            format!("{kind}: {e}").replace('\n', " ")
        }
    };
    println!("RESULT {} {} {outcome}", peak.saturating_sub(before), elapsed.as_millis());
}

fn main() {
    if let Ok(name) = std::env::var(CASE_ENV) {
        run_child(&name);
        return;
    }
    let exe = std::env::current_exe().expect("exe");
    let mut failures = Vec::new();
    let all = cases();
    for case in &all {
        let output = Command::new(&exe)
            .env(CASE_ENV, case.name)
            .envs(case.env.iter().copied())
            .output()
            .expect("run child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let Some(result) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
            failures.push(format!(
                "{}: the child failed ({}): {}",
                case.name,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
            continue;
        };
        let mut parts = result.splitn(3, ' ');
        let growth_kib: u64 = parts.next().and_then(|g| g.parse().ok()).expect("growth");
        let elapsed_ms: u64 = parts.next().and_then(|g| g.parse().ok()).expect("elapsed");
        let outcome = parts.next().unwrap_or_default();
        println!(
            "hostile case {:<28} rss growth {:>6} KiB (bound {} MiB) in {:>5} ms: {}",
            case.name,
            growth_kib,
            case.bound_mib,
            elapsed_ms,
            outcome.chars().take(140).collect::<String>()
        );
        match case.expect {
            None if outcome != "ok" => {
                failures.push(format!("{}: expected success, got {outcome}", case.name))
            }
            Some(text) if !outcome.contains(text) => failures
                .push(format!("{}: expected an error with {text:?}, got {outcome}", case.name)),
            _ => {}
        }
        if growth_kib > case.bound_mib * 1024 {
            failures.push(format!(
                "{}: host RSS grew by {growth_kib} KiB, over the bound of {} MiB",
                case.name, case.bound_mib
            ));
        }
        if elapsed_ms > case.timeout.as_millis() as u64 + 2000 {
            failures.push(format!("{}: took {elapsed_ms} ms, past its deadline", case.name));
        }
    }
    println!("{} hostile agent cases, {} failed", all.len(), failures.len());
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED {f}");
        }
        std::process::exit(1);
    }
}
