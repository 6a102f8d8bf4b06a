//! Hostile archives through `ImportTar` and the public archive API: every one is
//! rejected before anything is written, inside or outside the workspace.

use base64::Engine as _;
use pyro_agent::{archive, Sandbox};
use pyro_protocol::{ArtifactType, ErrorKind, Request, Response};
use std::fs;
use std::path::{Path, PathBuf};

/// A member written with raw GNU headers, so hostile names are kept as they are.
struct Member<'a> {
    name: &'a str,
    kind: tar::EntryType,
    data: &'a [u8],
    link: Option<&'a str>,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Member<'a> {
    Member { name, kind: tar::EntryType::Regular, data, link: None }
}

fn symlink<'a>(name: &'a str, target: &'a str) -> Member<'a> {
    Member { name, kind: tar::EntryType::Symlink, data: b"", link: Some(target) }
}

fn raw_archive(members: &[Member<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for m in members {
        let mut header = tar::Header::new_gnu();
        {
            let gnu = header.as_gnu_mut().expect("gnu");
            gnu.name[..m.name.len()].copy_from_slice(m.name.as_bytes());
            if let Some(link) = m.link {
                gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
        }
        header.set_entry_type(m.kind);
        header.set_mode(0o644);
        header.set_size(m.data.len() as u64);
        header.set_cksum();
        builder.append(&header, m.data).expect("append");
    }
    builder.into_inner().expect("finish")
}

/// Every path below `root` with its kind and content, sorted.
fn snapshot(root: &Path) -> Vec<(PathBuf, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in fs::read_dir(dir).expect("ls") {
            let path = entry.expect("entry").path();
            let rel = path.strip_prefix(root).expect("prefix").to_path_buf();
            let meta = fs::symlink_metadata(&path).expect("lstat");
            if meta.file_type().is_symlink() {
                out.push((
                    rel,
                    format!("-> {}", fs::read_link(&path).expect("readlink").display()),
                ));
            } else if meta.is_dir() {
                out.push((rel, "dir".to_owned()));
                walk(root, &path, out);
            } else {
                out.push((
                    rel,
                    String::from_utf8_lossy(&fs::read(&path).expect("read")).into_owned(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

struct Fixture {
    _root: tempfile::TempDir,
    workspace: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().expect("tempdir");
    let workspace = root.path().join("ws");
    let outside = root.path().join("outside");
    fs::create_dir_all(workspace.join("dest")).expect("mkdir");
    fs::create_dir_all(&outside).expect("mkdir");
    fs::write(workspace.join("dest/keep.txt"), b"keep").expect("write");
    fs::write(outside.join("victim"), b"original").expect("write");
    Fixture { _root: root, workspace, outside }
}

fn import(sandbox: &Sandbox, dest: &str, replace: bool, bytes: &[u8]) -> Response {
    sandbox.handle(Request::ImportTar {
        dest: dest.to_owned(),
        replace,
        data_b64: base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

#[test]
fn hostile_archives_are_rejected_and_write_nothing() {
    let cases: Vec<(&str, Vec<Member<'_>>, ErrorKind)> = vec![
        (
            "absolute name",
            vec![file("ok.txt", b"1"), file("/tmp/pyro-slip-abs", b"x")],
            ErrorKind::PathEscape,
        ),
        (
            "dot-dot name",
            vec![file("ok.txt", b"1"), file("../../outside/victim", b"pwned")],
            ErrorKind::PathEscape,
        ),
        (
            "symlink out, then write through it",
            vec![symlink("esc", "../../outside"), file("esc/victim", b"pwned")],
            ErrorKind::PathEscape,
        ),
        ("absolute symlink", vec![symlink("esc", "/etc")], ErrorKind::PathEscape),
        (
            "symlink inside, then write through it",
            vec![
                Member { name: "d", kind: tar::EntryType::Directory, data: b"", link: None },
                symlink("l", "d"),
                file("l/x", b"x"),
            ],
            ErrorKind::PathEscape,
        ),
        (
            "hard link",
            vec![
                file("ok.txt", b"1"),
                Member {
                    name: "h",
                    kind: tar::EntryType::Link,
                    data: b"",
                    link: Some("../../outside/victim"),
                },
            ],
            ErrorKind::Invalid,
        ),
        (
            "fifo",
            vec![
                file("ok.txt", b"1"),
                Member { name: "p", kind: tar::EntryType::Fifo, data: b"", link: None },
            ],
            ErrorKind::Invalid,
        ),
        (
            "block device",
            vec![Member { name: "sda", kind: tar::EntryType::Block, data: b"", link: None }],
            ErrorKind::Invalid,
        ),
        (
            "file then directory of the same name",
            vec![
                file("x", b"1"),
                Member { name: "x/", kind: tar::EntryType::Directory, data: b"", link: None },
            ],
            ErrorKind::Invalid,
        ),
    ];
    for (what, members, kind) in cases {
        let fx = fixture();
        let sandbox = Sandbox::host_compat(&fx.workspace);
        let bytes = raw_archive(&members);
        let before = (snapshot(&fx.workspace), snapshot(&fx.outside));
        for (dest, replace) in
            [("/workspace/dest", false), ("/workspace/dest", true), ("/workspace/new/dir", false)]
        {
            match import(&sandbox, dest, replace, &bytes) {
                Response::Error { kind: k, message } => assert_eq!(k, kind, "{what}: {message}"),
                other => panic!("{what}: accepted: {other:?}"),
            }
            assert_eq!(
                (snapshot(&fx.workspace), snapshot(&fx.outside)),
                before,
                "{what}: tree changed"
            );
        }
        assert!(archive::validate_archive(&bytes).is_err(), "{what}");
        let host_dest = fx.outside.join("host-dest");
        assert!(archive::unpack_into(&bytes, &host_dest, false).is_err(), "{what}");
        assert!(!host_dest.exists(), "{what}: host destination created");
    }
    assert!(!Path::new("/tmp/pyro-slip-abs").exists());
}

#[test]
fn import_destination_must_not_go_through_symlinks() {
    let fx = fixture();
    std::os::unix::fs::symlink(&fx.outside, fx.workspace.join("out")).expect("symlink");
    let sandbox = Sandbox::host_compat(&fx.workspace);
    let bytes = raw_archive(&[file("new.txt", b"x")]);
    let before = snapshot(&fx.outside);
    for dest in ["/workspace/out", "/workspace/out/sub", "/workspace/../outside", "/outside"] {
        match import(&sandbox, dest, true, &bytes) {
            Response::Error { kind: ErrorKind::PathEscape, .. } => {}
            other => panic!("{dest}: {other:?}"),
        }
    }
    assert_eq!(snapshot(&fx.outside), before);
}

#[test]
fn import_replace_and_merge() {
    let fx = fixture();
    let sandbox = Sandbox::host_compat(&fx.workspace);
    let bytes = raw_archive(&[
        Member { name: "./", kind: tar::EntryType::Directory, data: b"", link: None },
        file("sub/a.txt", b"a"),
        symlink("sub/link", "a.txt"),
    ]);
    match import(&sandbox, "/workspace/dest", false, &bytes) {
        Response::Imported { stats } => {
            assert_eq!(stats.entry_count, 3);
            assert_eq!(stats.bytes_written, 1);
        }
        other => panic!("{other:?}"),
    }
    assert!(fx.workspace.join("dest/keep.txt").exists(), "merge keeps existing files");
    assert_eq!(
        fs::read_link(fx.workspace.join("dest/sub/link")).expect("link"),
        Path::new("a.txt")
    );
    match import(&sandbox, "/workspace/dest", true, &bytes) {
        Response::Imported { .. } => {}
        other => panic!("{other:?}"),
    }
    assert!(!fx.workspace.join("dest/keep.txt").exists(), "replace empties the destination first");
    assert_eq!(fs::read(fx.workspace.join("dest/sub/a.txt")).expect("read"), b"a");
}

#[test]
fn export_names_and_types() {
    let fx = fixture();
    std::os::unix::fs::symlink("keep.txt", fx.workspace.join("dest/l")).expect("symlink");
    let sandbox = Sandbox::host_compat(&fx.workspace);
    let export = |path: &str| match sandbox.handle(Request::ExportTar { path: path.to_owned() }) {
        Response::Tar { artifact_type, stats, data_b64 } => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(data_b64).expect("b64");
            let names: Vec<String> = tar::Archive::new(bytes.as_slice())
                .entries()
                .expect("entries")
                .map(|e| e.expect("entry").path().expect("path").to_string_lossy().into_owned())
                .collect();
            (artifact_type, stats.entry_count, stats.bytes_written, names)
        }
        other => panic!("{path}: {other:?}"),
    };
    assert_eq!(
        export("/workspace/dest/keep.txt"),
        (ArtifactType::File, 1, 4, vec!["keep.txt".to_owned()])
    );
    assert_eq!(export("/workspace/dest/l"), (ArtifactType::Symlink, 1, 0, vec!["l".to_owned()]));
    assert_eq!(
        export("/workspace"),
        (
            ArtifactType::Directory,
            3,
            4,
            vec!["dest".to_owned(), "dest/keep.txt".to_owned(), "dest/l".to_owned()]
        )
    );
    for (path, kind) in [
        ("/workspace/missing", ErrorKind::NotFound),
        ("/workspace/../outside", ErrorKind::PathEscape),
        ("/workspace/dest/l/x", ErrorKind::PathEscape),
    ] {
        match sandbox.handle(Request::ExportTar { path: path.to_owned() }) {
            Response::Error { kind: k, .. } => assert_eq!(k, kind, "{path}"),
            other => panic!("{path}: {other:?}"),
        }
    }
}

#[test]
fn guest_imports_keep_links_of_any_target_but_never_write_through_them() {
    let fx = fixture();
    let sandbox = Sandbox::guest(&fx.workspace);
    let kept = raw_archive(&[
        symlink("abs", "/etc/passwd"),
        symlink("up", "../../outside"),
        file("a.txt", b"data"),
    ]);
    let answer = import(&sandbox, "/workspace/dest", false, &kept);
    assert!(matches!(answer, Response::Imported { .. }), "{answer:?}");
    let dest = fx.workspace.join("dest");
    assert_eq!(fs::read_link(dest.join("abs")).expect("link"), Path::new("/etc/passwd"));
    assert_eq!(fs::read_link(dest.join("up")).expect("link"), Path::new("../../outside"));
    for through in [
        vec![symlink("esc", "/"), file("esc/tmp/pyro-slip-guest", b"pwned")],
        vec![symlink("esc", "../../outside"), file("esc/victim", b"pwned")],
    ] {
        let answer = import(&sandbox, "/workspace/dest", false, &raw_archive(&through));
        assert!(
            matches!(answer, Response::Error { kind: ErrorKind::PathEscape, .. }),
            "{answer:?}"
        );
    }
    // An existing link in the destination is never written through either.
    let answer =
        import(&sandbox, "/workspace/dest", false, &raw_archive(&[file("up/victim", b"x")]));
    assert!(matches!(answer, Response::Error { .. }), "{answer:?}");
    assert_eq!(fs::read(fx.outside.join("victim")).expect("victim"), b"original");
    assert!(!Path::new("/tmp/pyro-slip-guest").exists());
}
