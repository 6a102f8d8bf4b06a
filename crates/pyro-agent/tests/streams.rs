//! Streamed transfers (protocol 1.7) through the public request API: an export read in
//! chunks equals the one-frame export, an import written in chunks unpacks like
//! `import_tar`, and forged streams (wrong offsets, chunks past the announced length,
//! short commits, unknown ids) are clear errors that leave the workspace unchanged.

use base64::Engine as _;
use pyro_agent::Sandbox;
use pyro_protocol::{ErrorKind, Request, Response, MAX_CHUNK_BYTES};
use std::fs;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text).expect("base64")
}

fn sandbox() -> (tempfile::TempDir, tempfile::TempDir, Sandbox) {
    let ws = tempfile::tempdir().expect("ws");
    let spool = tempfile::tempdir().expect("spool");
    let sandbox = Sandbox::host_compat(ws.path()).with_spool_dir(spool.path());
    (ws, spool, sandbox)
}

fn opened(response: Response) -> (String, u64) {
    match response {
        Response::TransferOpened { transfer_id, size_bytes, .. } => (transfer_id, size_bytes),
        other => panic!("expected transfer_opened, got {other:?}"),
    }
}

fn error(response: Response) -> (ErrorKind, String) {
    match response {
        Response::Error { kind, message } => (kind, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn chunked_export_matches_the_one_frame_export_and_imports_back() {
    let (ws, spool, sandbox) = sandbox();
    fs::create_dir_all(ws.path().join("src")).expect("mkdir");
    let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    fs::write(ws.path().join("src/big.bin"), &big).expect("write");
    fs::write(ws.path().join("a.txt"), "alpha").expect("write");
    let whole = match sandbox.handle(Request::ExportTar { path: "/workspace".into() }) {
        Response::Tar { data_b64, .. } => unb64(&data_b64),
        other => panic!("{other:?}"),
    };
    let (id, size) = opened(sandbox.handle(Request::ExportOpen { path: "/workspace".into() }));
    assert_eq!(size, whole.len() as u64);
    let mut streamed = Vec::new();
    while (streamed.len() as u64) < size {
        let offset = streamed.len() as u64;
        let request = Request::TransferRead { transfer_id: id.clone(), offset, max_bytes: 100_000 };
        match sandbox.handle(request) {
            Response::Chunk { offset: at, data_b64 } => {
                assert_eq!(at, offset);
                let data = unb64(&data_b64);
                assert!(!data.is_empty() && data.len() <= 100_000, "{}", data.len());
                streamed.extend_from_slice(&data);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(streamed, whole, "the chunks put together are the archive");
    // Reading past the end is refused; at the end is an empty chunk.
    let at_end = Request::TransferRead { transfer_id: id.clone(), offset: size, max_bytes: 10 };
    assert!(
        matches!(sandbox.handle(at_end), Response::Chunk { ref data_b64, .. } if data_b64.is_empty())
    );
    let past = Request::TransferRead { transfer_id: id.clone(), offset: size + 1, max_bytes: 10 };
    assert!(error(sandbox.handle(past)).1.contains("past the end"));
    assert!(matches!(
        sandbox.handle(Request::TransferClose { transfer_id: id.clone() }),
        Response::Done
    ));
    let closed = Request::TransferRead { transfer_id: id, offset: 0, max_bytes: 10 };
    assert!(error(sandbox.handle(closed)).1.contains("unknown transfer id"));

    // Import it back in chunks into a new directory.
    let (id, _) = opened(sandbox.handle(Request::ImportOpen { size_bytes: size }));
    for (i, chunk) in streamed.chunks(MAX_CHUNK_BYTES as usize / 8).enumerate() {
        let offset = (i * (MAX_CHUNK_BYTES as usize / 8)) as u64;
        let write =
            Request::TransferWrite { transfer_id: id.clone(), offset, data_b64: b64(chunk) };
        assert!(matches!(sandbox.handle(write), Response::Written { .. }));
    }
    let commit =
        Request::ImportCommit { transfer_id: id, dest: "/workspace/copy".into(), replace: false };
    match sandbox.handle(commit) {
        Response::Imported { stats } => assert_eq!(stats.entry_count, 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(fs::read(ws.path().join("copy/src/big.bin")).expect("read"), big);
    assert_eq!(fs::read_dir(spool.path()).expect("spool").count(), 0, "spools are unlinked");
}

#[test]
fn forged_import_streams_are_clear_errors_and_write_nothing() {
    let (ws, _spool, sandbox) = sandbox();
    let tar = {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, "f.txt", &b"hello"[..]).expect("append");
        builder.into_inner().expect("tar")
    };
    let len = tar.len() as u64;
    let write = |id: &str, offset: u64, data: &[u8]| {
        sandbox.handle(Request::TransferWrite {
            transfer_id: id.into(),
            offset,
            data_b64: b64(data),
        })
    };

    // A chunk beyond the announced length.
    let (id, _) = opened(sandbox.handle(Request::ImportOpen { size_bytes: len - 1 }));
    let (kind, message) = error(write(&id, 0, &tar));
    assert_eq!(kind, ErrorKind::Invalid);
    assert!(message.contains("beyond the announced length"), "{message}");

    // A chunk at the wrong offset (a gap or a rewrite).
    let (id, _) = opened(sandbox.handle(Request::ImportOpen { size_bytes: len }));
    assert!(matches!(write(&id, 0, &tar[..512]), Response::Written { bytes_written: 512 }));
    let message = error(write(&id, 1024, &tar[1024..])).1;
    assert!(message.contains("expected 512"), "{message}");
    let message = error(write(&id, 0, &tar[..512])).1;
    assert!(message.contains("expected 512"), "{message}");

    // A commit short of the announced length.
    let commit = |id: &str| {
        sandbox.handle(Request::ImportCommit {
            transfer_id: id.into(),
            dest: "/workspace".into(),
            replace: false,
        })
    };
    let message = error(commit(&id)).1;
    assert!(message.contains(&format!("received 512 of its announced {len} bytes")), "{message}");

    // A chunk larger than the protocol's chunk, ids never handed out, the wrong direction.
    let (id, _) = opened(sandbox.handle(Request::ImportOpen { size_bytes: u64::MAX }));
    let huge = vec![0u8; MAX_CHUNK_BYTES as usize + 1];
    assert!(error(write(&id, 0, &huge)).1.contains("larger than"));
    assert!(error(write("t999999", 0, b"x")).1.contains("unknown transfer id"));
    assert!(error(write("../../etc", 0, b"x")).1.contains("unknown transfer id"));
    assert!(error(commit("nope")).1.contains("unknown transfer id"));
    fs::write(ws.path().join("x"), "x").expect("write");
    let (export, _) = opened(sandbox.handle(Request::ExportOpen { path: "/workspace/x".into() }));
    assert!(error(write(&export, 0, b"x")).1.contains("is an export"));
    let read = Request::TransferRead { transfer_id: id, offset: 0, max_bytes: 1 };
    assert!(error(sandbox.handle(read)).1.contains("is an import"));

    let names: Vec<_> =
        fs::read_dir(ws.path()).expect("ls").flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, ["x"], "nothing was unpacked");
}

#[test]
fn old_transfers_are_evicted_so_a_vanished_host_leaks_no_spool() {
    let (_ws, _spool, sandbox) = sandbox();
    let first = opened(sandbox.handle(Request::ImportOpen { size_bytes: 1 })).0;
    for _ in 0..8 {
        opened(sandbox.handle(Request::ImportOpen { size_bytes: 1 }));
    }
    let write = Request::TransferWrite { transfer_id: first, offset: 0, data_b64: b64(b"x") };
    assert!(error(sandbox.handle(write)).1.contains("evicted"));
}

#[test]
fn archives_over_the_entry_cap_are_refused_before_anything_is_written() {
    use pyro_agent::archive::{self, ArchiveError, LinkTargets};
    let mut builder = tar::Builder::new(Vec::new());
    for i in 0..3 {
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, format!("f{i}"), &b"x"[..]).expect("append");
    }
    let tar = builder.into_inner().expect("tar");
    let stats = archive::validate_reader(std::io::Cursor::new(&tar), LinkTargets::Kept, 3)
        .expect("three fit a cap of three");
    assert_eq!(stats.entry_count, 3);
    let err = archive::validate_reader(std::io::Cursor::new(&tar), LinkTargets::Kept, 2)
        .expect_err("over the cap");
    assert!(matches!(err, ArchiveError::TooManyEntries { max: 2 }), "{err}");
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    let dest = tempfile::tempdir().expect("dest");
    archive::unpack_from(std::io::Cursor::new(&tar), dest.path(), false, LinkTargets::Kept, 2)
        .expect_err("over the cap");
    assert_eq!(fs::read_dir(dest.path()).expect("ls").count(), 0);
}
