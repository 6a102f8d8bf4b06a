//! Real guests seeded from host directories, on both ways the baseline volume is made:
//! `mke2fs -d` reading the directory itself (a tree with nothing to normalise) and the
//! staged path through the archive (a tree with a fifo, hard links, set-id bits and a
//! foreign owner). The guest sees exactly the seed on both: kinds, modes (executable
//! bits, sticky, set-id dropped), owners (root when pyro is root), link counts, file,
//! directory and symlink mtimes, symlink targets (absolute and outside ones too), file
//! contents, empty directories, a root-owned 0755 `/workspace` without `lost+found`;
//! and the part both trees share looks the same in both guests. Seeds over the entry
//! or size cap are refused before anything is made, with the errors they always had.

mod common;

use common::exec_ok as exec;
use common::guest_runtime as runtime;
use pyro::params::*;
use pyro::runtime::seed::{self, SeedContent, Staged};
use pyro::Runtime;
use sha2::Digest;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

const ENV: &str = "debian:12-base";
/// The mtime every entry of the seeds gets (seconds).
const WHEN: i64 = 1_600_000_000;

fn euid_is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().expect(program);
    assert!(status.success(), "{program} {args:?}");
}

/// What a repository holds: modes (executable, private, read-only, sticky), nested and
/// empty directories, empty, binary and long-named files, relative, absolute, outside
/// and dangling symlinks.
fn make_plain(root: &Path) {
    let write = |rel: &str, data: &[u8], mode: u32| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, data).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    write("README.md", b"# seed\n", 0o644);
    write("bin/run.sh", b"#!/bin/sh\necho run\n", 0o755);
    write("src/deep/er/mod.rs", b"pub fn f() {}\n", 0o600);
    write("private/secret", b"s3cret\n", 0o640);
    write("readonly", b"ro\n", 0o444);
    write("empty", b"", 0o644);
    write("blob.bin", &(0..=255u8).cycle().take(70_000).collect::<Vec<_>>(), 0o640);
    write(&format!("long/{}", "n".repeat(200)), b"long name\n", 0o644);
    std::fs::create_dir_all(root.join("emptydir")).expect("mkdir");
    std::fs::create_dir_all(root.join("sticky")).expect("mkdir");
    let chmod = |rel: &str, mode: u32| {
        std::fs::set_permissions(root.join(rel), std::fs::Permissions::from_mode(mode))
            .expect("chmod")
    };
    chmod("sticky", 0o1777);
    chmod("private", 0o700);
    chmod("src/deep", 0o750);
    let link = |target: &str, rel: &str| {
        std::os::unix::fs::symlink(target, root.join(rel)).expect("symlink");
    };
    link("README.md", "readme-link");
    link("/etc/passwd", "abs-link");
    link("../../outside", "src/up-link");
    link("nowhere/at/all", "dangling");
}

/// [`make_plain`] plus what only the staged path handles: a fifo, a hard-linked pair,
/// a set-uid file, a set-gid directory and (as root) a file owned by another user.
fn make_staged(root: &Path) {
    make_plain(root);
    run("mkfifo", &[&root.join("fifo").display().to_string()]);
    std::fs::write(root.join("hard-a"), b"shared\n").expect("write");
    std::fs::hard_link(root.join("hard-a"), root.join("hard-b")).expect("hard link");
    std::fs::write(root.join("bin/suid"), b"x").expect("write");
    std::fs::set_permissions(root.join("bin/suid"), std::fs::Permissions::from_mode(0o4755))
        .expect("chmod");
    std::fs::create_dir_all(root.join("group")).expect("mkdir");
    std::fs::write(root.join("group/file"), b"g\n").expect("write");
    std::fs::set_permissions(root.join("group"), std::fs::Permissions::from_mode(0o2775))
        .expect("chmod");
    if euid_is_root() {
        std::fs::write(root.join("foreign"), b"theirs\n").expect("write");
        std::os::unix::fs::chown(root.join("foreign"), Some(1000), Some(1000)).expect("chown");
    }
}

/// Every entry (symlinks included, their own times) gets [`WHEN`] as its mtime.
fn set_all_mtimes(root: &Path) {
    let stamp = format!("@{WHEN}");
    let status = Command::new("find")
        .arg(root)
        .args(["-mindepth", "1", "-exec", "touch", "-h", "-m", "-d", &stamp, "{}", "+"])
        .status()
        .expect("find");
    assert!(status.success());
}

/// One line per entry, as `find -printf` prints it in the guest: path, kind, mode, uid,
/// gid, links (files and links), mtime, link target, then the content's sha256.
type View = BTreeMap<String, String>;

/// What the guest should show for the host tree `root` (pyro's user owns everything;
/// set-id bits dropped; special files left out; hard links separate files).
fn expected_view(root: &Path) -> View {
    let (uid, gid) = {
        let me = std::fs::metadata("/proc/self").expect("self");
        (me.uid(), me.gid())
    };
    let mut out = View::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).expect("below").display().to_string();
            let meta = std::fs::symlink_metadata(&path).expect("lstat");
            let kind = meta.file_type();
            let (y, mode, links, target, digest) = if kind.is_symlink() {
                let target = std::fs::read_link(&path).expect("readlink");
                ('l', 0o777, "1".to_owned(), target.display().to_string(), String::new())
            } else if kind.is_dir() {
                stack.push(path.clone());
                ('d', meta.mode() & 0o1777, "-".to_owned(), String::new(), String::new())
            } else if kind.is_file() {
                let digest = hex(&sha2::Sha256::digest(std::fs::read(&path).expect("read")));
                ('f', meta.mode() & 0o1777, "1".to_owned(), String::new(), digest)
            } else {
                continue;
            };
            out.insert(
                rel,
                format!("{y}|{mode:o}|{uid}|{gid}|{links}|{WHEN}.0000000000|{target}|{digest}"),
            );
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `/workspace` as the guest sees it, in [`View`] form.
fn guest_view(rt: &Runtime, id: &str) -> View {
    let listing = exec(
        rt,
        id,
        "cd /workspace && find . -mindepth 1 \\( -type d -printf '%P\\t%y|%m|%U|%G|-|%T@|%l|\\n' \\) \
         -o -printf '%P\\t%y|%m|%U|%G|%n|%T@|%l|\\n'",
    );
    let sums = exec(rt, id, "cd /workspace && find . -type f -exec sha256sum {} +");
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    for line in sums.lines() {
        let (digest, name) = line.split_once("  ").expect("sha256sum line");
        digests.insert(name.trim_start_matches("./").to_owned(), digest.to_owned());
    }
    listing
        .lines()
        .map(|line| {
            let (rel, rest) = line.split_once('\t').expect("find line");
            let digest = digests.get(rel).cloned().unwrap_or_default();
            (rel.to_owned(), format!("{rest}{digest}"))
        })
        .collect()
}

fn create(rt: &Runtime, seed: &Path) -> String {
    let mut params = WorkspaceCreateParams::new(ENV);
    params.seed_path = Some(seed.display().to_string());
    let ws = rt.workspace_create(params).expect("create");
    let expected = expected_view(seed);
    assert_eq!(ws.workspace_seed.entry_count, expected.len() as u64, "entry count");
    ws.workspace_id
}

#[test]
fn a_directory_seed_reaches_the_guest_exactly_on_the_direct_and_the_staged_path() {
    let tmp = common::guest_tempdir();
    let state = tmp.path().join("state");
    let plain = tmp.path().join("plain");
    let staged = tmp.path().join("staged");
    make_plain(&plain);
    make_staged(&staged);
    set_all_mtimes(&plain);
    set_all_mtimes(&staged);

    // Each tree takes the path it is meant to test.
    let surveyed = |root: &Path| match seed::prepare(&root.display().to_string()).expect("prepare")
    {
        seed::Seed { content: SeedContent::Directory(survey), .. } => survey.direct,
        other => panic!("a directory seed is surveyed, not packed: {other:?}"),
    };
    assert_eq!(surveyed(&plain), Ok(()), "the plain tree goes straight to mke2fs");
    // The first thing found to normalise (names sorted): the set-uid file in bin/.
    assert_eq!(surveyed(&staged), Err(Staged::SetId(staged.join("bin/suid"))));

    let rt = runtime(&state);
    let direct_id = create(&rt, &plain);
    let staged_id = create(&rt, &staged);
    for id in [&direct_id, &staged_id] {
        let root = exec(&rt, id, "stat -c '%a|%u|%g' /workspace && ls -a /workspace");
        assert!(root.starts_with("755|0|0\n"), "/workspace itself: {root}");
        assert!(!root.contains("lost+found"), "{root}");
    }

    let direct = guest_view(&rt, &direct_id);
    assert_eq!(direct, expected_view(&plain), "the direct seed in the guest");
    let staged_view = guest_view(&rt, &staged_id);
    assert_eq!(staged_view, expected_view(&staged), "the staged seed in the guest");
    // What the staged path normalised, spelt out.
    assert!(!staged_view.contains_key("fifo"), "fifos are left out");
    for name in ["hard-a", "hard-b"] {
        assert!(staged_view[name].starts_with("f|644|"), "{name}: {}", staged_view[name]);
        assert!(staged_view[name].contains("|1|"), "separate files: {}", staged_view[name]);
    }
    assert!(staged_view["bin/suid"].starts_with("f|755|"), "{}", staged_view["bin/suid"]);
    assert!(staged_view["group"].starts_with("d|775|"), "{}", staged_view["group"]);
    if euid_is_root() {
        assert!(staged_view["foreign"].starts_with("f|644|0|0|"), "{}", staged_view["foreign"]);
    }
    // The part the two trees share looks the same whichever way it was made.
    let shared: View =
        staged_view.into_iter().filter(|(path, _)| direct.contains_key(path)).collect();
    assert_eq!(shared, direct, "the same tree gives the same guest view on both paths");

    // The guest's diff starts clean on both.
    for id in [&direct_id, &staged_id] {
        assert!(!rt.workspace_diff(id).expect("diff").changed, "a fresh seed has no changes");
        rt.workspace_delete(id).expect("delete");
    }
}

/// `pyro` with a private state directory and `envs`: (exit ok, stderr).
fn cli(state: &Path, envs: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pyro"))
        .args(args)
        .env("PYRO_STATE_DIR", state)
        .envs(envs.iter().copied())
        .output()
        .expect("run pyro");
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn directory_seeds_over_the_caps_are_refused_before_anything_is_made() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let state = tmp.path().join("state");
    let tree = tmp.path().join("tree");
    make_plain(&tree);
    std::fs::write(tree.join("big.bin"), vec![7u8; 2 << 20]).expect("write");
    let tree_arg = tree.display().to_string();
    let create = ["workspace", "create", ENV, "--seed-path", &tree_arg];

    let (ok, err) = cli(&state, &[("PYRO_MAX_ARCHIVE_ENTRIES", "5")], &create);
    assert!(!ok, "over the entry cap must fail");
    let expected = format!(
        "{tree_arg} holds more than 5 entries (the archive entry cap; raise it with PYRO_MAX_ARCHIVE_ENTRIES)"
    );
    assert!(err.contains(&expected), "{err}");

    let (ok, err) = cli(&state, &[("PYRO_MAX_TRANSFER_MIB", "1")], &create);
    assert!(!ok, "over the size cap must fail");
    let expected = format!(
        "{tree_arg} is larger than 1 MiB as an archive (the transfer cap; raise it with PYRO_MAX_TRANSFER_MIB)"
    );
    assert!(err.contains(&expected), "{err}");

    // Both caps at once: the size is named, as it always was.
    let both = [("PYRO_MAX_TRANSFER_MIB", "1"), ("PYRO_MAX_ARCHIVE_ENTRIES", "5")];
    let (ok, err) = cli(&state, &both, &create);
    assert!(!ok && err.contains("is larger than 1 MiB as an archive"), "{err}");

    let workspaces = state.join("workspaces");
    let left = std::fs::read_dir(&workspaces).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "a refused seed leaves no workspace behind");
}
