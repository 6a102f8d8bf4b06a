//! A hostile agent behind a real workspace, end to end through the runtime and the MCP
//! server, without QEMU: the test plays QEMU's part (a process whose command line carries
//! the sandbox's `-name pyro:<dir>` identity, a pidfile, and the four agent sockets) and
//! answers with forged export archives, forged file sizes and escaping listings. Each
//! call must fail with a clear error, write nothing outside the export target, mark the
//! workspace's agent unhealthy, and leave a second (honest) workspace and the MCP server
//! working.

#[path = "common/mcp_stdio.rs"]
mod mcp_stdio;

use base64::Engine as _;
use pyro::params::*;
use pyro::runtime::state::{self, WorkspaceDir, WorkspaceRecord, LAYOUT_VERSION};
use pyro::{Runtime, RuntimeConfig};
use pyro_protocol::{
    encode_line, ArchiveStats, ArtifactType, ExecOutput, FileEntry, Request, RequestFrame,
    Response, ResponseFrame, AGENT_PORT_COUNT, PROTOCOL_VERSION,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

/// What the fake agent forges next.
#[derive(Clone, Debug, PartialEq)]
enum Forge {
    Honest,
    Archive(Vec<u8>),
    FileSize {
        claimed: u64,
        data: Vec<u8>,
        truncated: bool,
    },
    Listing(String),
    /// A tree diff answer document (spooled JSON) and the length announced for it.
    TreeDiff(Vec<u8>, u64),
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Raw GNU tar members `(name, type, data, link)`, hostile names kept as they are.
fn tar(members: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in members {
        let mut header = tar::Header::new_gnu();
        let gnu = header.as_gnu_mut().expect("gnu");
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, *data).expect("append");
    }
    builder.into_inner().expect("finish")
}

fn answer(request: &Request, forge: &Forge) -> Response {
    match (request, forge) {
        (Request::Hello { .. }, _) => Response::Hello {
            agent_version: "0.1.0".into(),
            protocol: PROTOCOL_VERSION,
            capabilities: vec!["exec".into(), "files".into(), "tar".into(), "tree_diff".into()],
            kernel_release: "6.1.0-fake".into(),
        },
        (Request::ExportTar { .. }, Forge::Archive(bytes)) => Response::Tar {
            artifact_type: ArtifactType::Directory,
            stats: ArchiveStats::default(),
            data_b64: b64(bytes),
        },
        (Request::ExportTar { .. }, _) => Response::Tar {
            artifact_type: ArtifactType::Directory,
            stats: ArchiveStats::default(),
            data_b64: b64(&tar(&[("ok.txt", tar::EntryType::Regular, b"fine", "")])),
        },
        (Request::ReadFile { .. }, Forge::FileSize { claimed, data, truncated }) => {
            Response::FileData { size_bytes: *claimed, data_b64: b64(data), truncated: *truncated }
        }
        (Request::ReadFile { .. }, _) => {
            Response::FileData { size_bytes: 4, data_b64: b64(b"fine"), truncated: false }
        }
        (Request::ListFiles { .. }, Forge::Listing(path)) => Response::Files {
            entries: vec![FileEntry {
                path: path.clone(),
                artifact_type: ArtifactType::File,
                size_bytes: 1,
                link_target: None,
            }],
        },
        (Request::ListFiles { path, .. }, _) => Response::Files {
            entries: vec![FileEntry {
                path: format!("{path}/ok.txt"),
                artifact_type: ArtifactType::File,
                size_bytes: 4,
                link_target: None,
            }],
        },
        (Request::TreeDiffOpen { .. }, Forge::TreeDiff(_, announced)) => Response::TransferOpened {
            transfer_id: "t1".into(),
            size_bytes: *announced,
            artifact_type: None,
            stats: ArchiveStats::default(),
        },
        // An honest agent without a mounted baseline declines.
        (Request::TreeDiffOpen { .. }, _) => Response::Error {
            kind: pyro_protocol::ErrorKind::Unsupported,
            message: "no baseline is mounted".into(),
        },
        (Request::TransferRead { offset, max_bytes, .. }, Forge::TreeDiff(doc, _)) => {
            let start = (*offset as usize).min(doc.len());
            let end = start.saturating_add(*max_bytes as usize).min(doc.len());
            Response::Chunk { offset: *offset, data_b64: b64(&doc[start..end]) }
        }
        (Request::Exec(exec), _) => Response::Exec(ExecOutput {
            stdout_b64: b64(format!("ran: {}\n", exec.command).as_bytes()),
            stderr_b64: String::new(),
            truncated: false,
            exit_code: 0,
            signal: None,
            timed_out: false,
            duration_ms: 1,
        }),
        _ => Response::Done,
    }
}

/// A fake sandbox: the identity process plus a fake agent on every port.
struct FakeSandbox {
    identity: Child,
    forge: Arc<Mutex<Forge>>,
}

impl FakeSandbox {
    fn start(sandbox: &Path) -> FakeSandbox {
        std::fs::create_dir_all(sandbox).expect("sandbox dir");
        let dir = sandbox.canonicalize().expect("canonical");
        // A shell builtin waiting on stdin: no child process, gone when killed.
        let identity = Command::new("sh")
            .args(["-c", "read line", "-name"])
            .arg(format!("pyro:{}", dir.display()))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("identity process");
        std::fs::write(dir.join("qemu.pid"), identity.id().to_string()).expect("pidfile");
        let forge = Arc::new(Mutex::new(Forge::Honest));
        for port in 0..AGENT_PORT_COUNT {
            let listener =
                UnixListener::bind(dir.join(format!("agent-{port}.sock"))).expect("bind");
            let forge = Arc::clone(&forge);
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let forge = Arc::clone(&forge);
                    std::thread::spawn(move || serve(stream, forge));
                }
            });
        }
        FakeSandbox { identity, forge }
    }

    fn forge(&self, forge: Forge) {
        *self.forge.lock().expect("forge") = forge;
    }
}

fn serve(stream: UnixStream, forge: Arc<Mutex<Forge>>) {
    let mut writer = stream.try_clone().expect("clone");
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let Ok(frame) = serde_json::from_str::<RequestFrame>(&line) else { continue };
        let forge = forge.lock().expect("forge").clone();
        let response = answer(&frame.request, &forge);
        let bytes = encode_line(&ResponseFrame { id: frame.id, response }).expect("encode");
        if writer.write_all(&bytes).is_err() {
            return;
        }
    }
}

impl Drop for FakeSandbox {
    fn drop(&mut self) {
        let _ = self.identity.kill();
        let _ = self.identity.wait();
    }
}

/// Write a started qemu-backed workspace record for `id`.
fn fake_workspace(state_dir: &Path, id: &str) -> FakeSandbox {
    let dir = WorkspaceDir::new(state_dir, id);
    let fake = FakeSandbox::start(&dir.sandbox());
    let now = state::now();
    let rec = WorkspaceRecord {
        layout_version: LAYOUT_VERSION,
        workspace_id: id.into(),
        name: None,
        labels: BTreeMap::new(),
        environment: "debian:12-base".into(),
        environment_version: None,
        vcpu_count: 1,
        mem_mib: 512,
        ttl_seconds: 3600,
        created_at: now,
        last_activity_at: now,
        expires_at: now + 3600.0,
        desired_running: true,
        network_policy: NetworkPolicy::Off,
        allow_host_compat: false,
        backend: pyro::backend::BackendKind::Qemu,
        accel: pyro::results::Accel::Tcg,
        guest_ip: None,
        workspace_seed: pyro::results::WorkspaceSeed {
            mode: "empty".into(),
            seed_path: None,
            destination: "/workspace".into(),
            entry_count: 0,
            bytes_written: 0,
            origin_kind: "none".into(),
            origin_ref: None,
        },
        secrets: Vec::new(),
        command_count: 0,
        next_sequence: 1,
        last_command: None,
        reset_count: 0,
        last_reset_at: None,
        last_error: None,
        metadata: BTreeMap::new(),
        volume: None,
        creating: None,
    };
    state::write_json(&dir.record(), &rec).expect("record");
    fake
}

/// Every path below `root`, relative, sorted.
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(root).expect("below").to_path_buf());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn forged_exports_sizes_and_listings_are_refused_end_to_end() {
    use tar::EntryType::{Block, Char, Link, Regular, Symlink};
    let tmp = tempfile::tempdir().expect("tempdir");
    let state_dir = tmp.path().join("state");
    let host = tmp.path().join("host");
    std::fs::create_dir_all(host.join("victim")).expect("victim");
    std::fs::write(host.join("victim/secret"), "keep").expect("secret");
    let hostile_id = "aaaaaaaaaaaa";
    let honest_id = "bbbbbbbbbbbb";
    let hostile = fake_workspace(&state_dir, hostile_id);
    let _honest = fake_workspace(&state_dir, honest_id);
    let rt =
        Runtime::new(RuntimeConfig { state_dir: state_dir.clone(), ..RuntimeConfig::from_env() });
    let mut mcp = mcp_stdio::Mcp::start(&state_dir, &[]);

    let mut sparse = tar::Header::new_gnu();
    sparse.set_path("big").expect("name");
    sparse.set_entry_type(Regular);
    sparse.set_size(64 << 30);
    sparse.set_cksum();
    let mut sparse = sparse.as_bytes().to_vec();
    sparse.extend_from_slice(&[0u8; 1024]);
    let archives: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", tar(&[("../victim/secret", Regular, b"pwn", "")])),
        ("absolute", tar(&[("/tmp/pyro-hostile-pwned", Regular, b"pwn", "")])),
        (
            "symlink then write through it",
            tar(&[("l", Symlink, b"", "../victim"), ("l/secret", Regular, b"pwn", "")]),
        ),
        ("hard link", tar(&[("h", Link, b"", "../victim/secret")])),
        ("char device", tar(&[("null", Char, b"", "")])),
        ("block device", tar(&[("sda", Block, b"", "")])),
        ("huge sparse file", sparse),
    ];
    let mut cases = 0;
    for (case, archive) in archives {
        hostile.forge(Forge::Archive(archive));
        let output = host.join("export");
        let err = rt
            .workspace_export(WorkspaceExportParams {
                workspace_id: hostile_id.into(),
                path: "/workspace".into(),
                output_path: output.display().to_string(),
            })
            .expect_err(case);
        assert!(err.to_string().contains("exported archive"), "{case}: {err}");
        assert_eq!(
            tree(&host),
            [PathBuf::from("victim"), PathBuf::from("victim/secret")],
            "{case}"
        );
        assert_eq!(std::fs::read_to_string(host.join("victim/secret")).expect("read"), "keep");
        cases += 1;
    }
    assert!(!Path::new("/tmp/pyro-hostile-pwned").exists());

    for (claimed, data, truncated) in
        [(3u64, b"abcdef".to_vec(), false), (10, vec![b'x'; 64], true), (2, b"ab".to_vec(), true)]
    {
        hostile.forge(Forge::FileSize { claimed, data, truncated });
        let err = rt
            .workspace_file_read(WorkspaceFileReadParams {
                workspace_id: hostile_id.into(),
                path: "a.txt".into(),
                max_bytes: 16,
            })
            .expect_err("forged size");
        assert!(err.to_string().contains("invalid answer"), "{err}");
        cases += 1;
    }
    for escaping in ["/etc/passwd", "/workspace/../etc/shadow", "/workspace/src/../../x"] {
        hostile.forge(Forge::Listing(escaping.into()));
        let err = rt
            .workspace_file_list(WorkspaceFileListParams {
                workspace_id: hostile_id.into(),
                path: "/workspace/src".into(),
                recursive: true,
            })
            .expect_err("escaping listing");
        assert!(err.to_string().contains("invalid answer"), "{err}");
        cases += 1;
    }

    // Forged tree diff answers: escaping paths, bad counts, a lying length, no JSON.
    let change = |path: &str| {
        json!({ "path": path, "old": null,
        "new": { "artifact_type": "file", "mode": 420, "text": "pwn\n" } })
    };
    let documents = [
        json!({ "scanned": 1, "candidates": 0, "changes": [change("../../etc/passwd")] }),
        json!({ "scanned": 1, "candidates": 0, "changes": [change("/etc/shadow")] }),
        json!({ "scanned": 0, "candidates": 5, "changes": [change("a")] }),
        json!({ "scanned": 1u64 << 40, "candidates": 0, "changes": [] }),
    ];
    let mut forged: Vec<(Vec<u8>, Option<u64>)> =
        documents.iter().map(|d| (serde_json::to_vec(d).expect("json"), None)).collect();
    forged.push((b"[1,2".to_vec(), None));
    forged.push((b"{}".to_vec(), Some(1 << 40)));
    for (doc, announced) in forged {
        let len = announced.unwrap_or(doc.len() as u64);
        hostile.forge(Forge::TreeDiff(doc, len));
        let err = rt.workspace_diff(hostile_id).expect_err("forged tree diff");
        assert!(err.to_string().contains("invalid answer"), "{err}");
        cases += 1;
    }

    let status = rt.workspace_status(hostile_id).expect("status");
    assert_eq!(status.metadata.get("agent_health").map(String::as_str), Some("unhealthy"));

    // Through the MCP server too, and the honest workspace is unaffected.
    hostile.forge(Forge::FileSize { claimed: 1, data: b"lies".to_vec(), truncated: false });
    let (is_error, text) = mcp.tool(
        "workspace_file_read",
        json!({ "workspace_id": hostile_id, "path": "a.txt", "max_bytes": 16 }),
    );
    assert!(is_error && text.contains("invalid answer"), "{text}");
    let (is_error, text) =
        mcp.tool("workspace_exec", json!({ "workspace_id": honest_id, "command": "echo ok" }));
    assert!(!is_error && text.contains("ran: echo ok"), "{text}");
    let honest = rt.workspace_status(honest_id).expect("status");
    assert_eq!(honest.metadata.get("agent_health").map(String::as_str), Some("ok"));

    // An honest export works, symlinks and all.
    hostile.forge(Forge::Archive(tar(&[
        ("abs", Symlink, b"", "/etc/passwd"),
        ("a.txt", Regular, b"data", ""),
    ])));
    let output = host.join("good");
    let result = rt
        .workspace_export(WorkspaceExportParams {
            workspace_id: hostile_id.into(),
            path: "/workspace".into(),
            output_path: output.display().to_string(),
        })
        .expect("honest export");
    assert_eq!(result.symlink_count, 1);
    assert_eq!(std::fs::read_link(output.join("abs")).expect("link"), Path::new("/etc/passwd"));
    println!("{cases} forged answers refused end to end");
}
