//! The live tree diff (the agent's stat-first walk plus the host's checks) against a
//! from-scratch comparison: random sequences of edits on host directories, then the
//! diff of `cur` against `base` through a `host_compat` agent must equal the archive
//! diff of packs of both trees (`runtime::diff::diff_trees`), entry for entry and byte
//! for byte.
//!
//! Two lineages: `base` a copy of the starting tree with modes and mtimes preserved
//! (different inodes: every pair is a candidate, content decides), and `base` made of
//! hard links to the starting tree's files (same inodes and ctimes: untouched files are
//! skipped by their stat tuple, as in a guest whose baseline is a snapshot of the same
//! ext4; an in-place write then changes both trees, which the oracle sees too).
//!
//! Failing cases are saved by proptest under `tests/tree_diff_random.proptest-regressions`
//! and replayed first on the next run; check them in with the fix.

use proptest::prelude::*;
use pyro::backend::{AgentChannel, BackendError};
use pyro::runtime::diff;
use pyro::runtime::tree_diff;
use pyro_agent::Sandbox;
use pyro_protocol::{Request, Response, TreeDiffLimits, TREE_DIFF_CAPABILITY};
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A `host_compat` agent called in-process.
struct InProcess(Sandbox);

impl AgentChannel for InProcess {
    fn call(&mut self, request: Request, _: Duration) -> Result<Response, BackendError> {
        Ok(self.0.handle(request))
    }

    fn supports(&mut self, capability: &str) -> bool {
        capability == TREE_DIFF_CAPABILITY
    }
}

const NAMES: [&str; 5] = ["a", "b", "c d", "e.txt", "f"];

/// A path of depth 1 to 3 over [`NAMES`].
fn rel_path() -> impl Strategy<Value = String> {
    prop::collection::vec(0..NAMES.len(), 1..=3)
        .prop_map(|parts| parts.iter().map(|i| NAMES[*i]).collect::<Vec<_>>().join("/"))
}

fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(b"one\ntwo\nthree\n".to_vec()),
        Just(b"one\nTWO\nthree".to_vec()),
        Just(b"bin\0ary".to_vec()),
        Just(b"caf\xe9\n".to_vec()),
        prop::collection::vec(prop_oneof![Just(b'x'), Just(b'\n'), Just(b'y')], 0..64),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    /// Write a file in place (truncate and write: same inode).
    Write(String, Vec<u8>),
    /// Replace a file by a new one renamed over it (new inode).
    Replace(String, Vec<u8>),
    /// Rewrite a file in place with other bytes of the same length, then put its mtime
    /// back.
    SameSizeSameMtime(String, u8),
    Delete(String),
    Rename(String, String),
    Chmod(String, u32),
    Symlink(String, String),
    Mkdir(String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (rel_path(), content()).prop_map(|(p, c)| Edit::Write(p, c)),
        2 => (rel_path(), content()).prop_map(|(p, c)| Edit::Replace(p, c)),
        2 => (rel_path(), 1u8..=255).prop_map(|(p, x)| Edit::SameSizeSameMtime(p, x)),
        2 => rel_path().prop_map(Edit::Delete),
        1 => (rel_path(), rel_path()).prop_map(|(a, b)| Edit::Rename(a, b)),
        2 => (rel_path(), prop_oneof![Just(0o644u32), Just(0o755), Just(0o600), Just(0o700)])
            .prop_map(|(p, m)| Edit::Chmod(p, m)),
        1 => (rel_path(), prop_oneof![Just("a".to_owned()), Just("../x".to_owned()), Just("/etc".to_owned())])
            .prop_map(|(p, t)| Edit::Symlink(p, t)),
        1 => rel_path().prop_map(Edit::Mkdir),
    ]
}

/// Make the parents of `rel` in `root` directories; false when one is not (the edit
/// is then skipped).
fn parents(root: &Path, rel: &str) -> bool {
    let path = root.join(rel);
    let mut dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut missing = Vec::new();
    while dir != root {
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return false,
            Err(_) => missing.push(dir.clone()),
        }
        if !dir.pop() {
            return false;
        }
    }
    missing.iter().rev().all(|d| fs::create_dir(d).is_ok())
}

fn remove(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Apply an edit; edits that do not fit the tree (a parent that is a file, a rename
/// onto a full directory) are skipped, which is fine: both sides of the comparison see
/// whatever tree results.
fn apply(root: &Path, edit: &Edit) {
    match edit {
        Edit::Write(rel, data) => {
            let path = root.join(rel);
            if parents(root, rel) {
                if fs::symlink_metadata(&path).is_ok_and(|m| !m.is_file()) {
                    remove(&path);
                }
                let _ = fs::write(&path, data);
            }
        }
        Edit::Replace(rel, data) => {
            let path = root.join(rel);
            if parents(root, rel) {
                let tmp = root.join(".replace.tmp");
                if fs::write(&tmp, data).is_ok() {
                    if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                        remove(&path);
                    }
                    if fs::rename(&tmp, &path).is_err() {
                        let _ = fs::remove_file(&tmp);
                    }
                }
            }
        }
        Edit::SameSizeSameMtime(rel, xor) => {
            let path = root.join(rel);
            let Ok(meta) = fs::symlink_metadata(&path) else { return };
            if !meta.is_file() || meta.len() == 0 {
                return;
            }
            let Ok(mut data) = fs::read(&path) else { return };
            data[0] ^= xor;
            let mtime = meta.modified().expect("mtime");
            let mut file = fs::OpenOptions::new().write(true).open(&path).expect("open");
            file.write_all(&data).expect("rewrite");
            file.set_modified(mtime).expect("put the mtime back");
            drop(file);
            let after = fs::symlink_metadata(&path).expect("stat");
            assert_eq!((after.len(), after.modified().ok()), (meta.len(), Some(mtime)));
        }
        Edit::Delete(rel) => remove(&root.join(rel)),
        Edit::Rename(a, b) => {
            if parents(root, b) {
                let _ = fs::rename(root.join(a), root.join(b));
            }
        }
        Edit::Chmod(rel, mode) => {
            let path = root.join(rel);
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                let _ = fs::set_permissions(&path, fs::Permissions::from_mode(*mode));
            }
        }
        Edit::Symlink(rel, target) => {
            let path = root.join(rel);
            if parents(root, rel) {
                remove(&path);
                let _ = std::os::unix::fs::symlink(target, &path);
            }
        }
        Edit::Mkdir(rel) => {
            let path = root.join(rel);
            if parents(root, rel) {
                remove(&path);
                let _ = fs::create_dir(&path);
            }
        }
    }
}

/// How `base` is made from the starting tree.
#[derive(Debug, Clone, Copy)]
enum Lineage {
    /// New inodes, modes and mtimes preserved.
    Copy,
    /// Files hard-linked (same inodes and ctimes); directories and symlinks recreated.
    HardLinks,
}

fn clone_tree(from: &Path, to: &Path, lineage: Lineage) {
    fs::create_dir(to).expect("mkdir");
    let mut names: Vec<PathBuf> =
        fs::read_dir(from).expect("ls").map(|e| e.expect("entry").path()).collect();
    names.sort();
    for src in names {
        let dst = to.join(src.file_name().expect("name"));
        let meta = fs::symlink_metadata(&src).expect("stat");
        if meta.is_dir() {
            clone_tree(&src, &dst, lineage);
        } else if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).expect("readlink"), &dst)
                .expect("symlink");
        } else {
            match lineage {
                Lineage::HardLinks => fs::hard_link(&src, &dst).expect("link"),
                Lineage::Copy => {
                    fs::copy(&src, &dst).expect("copy");
                    fs::set_permissions(&dst, meta.permissions()).expect("chmod");
                    let file = fs::File::options().write(true).open(&dst).expect("open");
                    file.set_modified(meta.modified().expect("mtime")).expect("mtime");
                }
            }
        }
    }
}

fn limits() -> TreeDiffLimits {
    TreeDiffLimits { max_entries: 100_000, max_text_bytes: 1 << 20, max_answer_bytes: 8 << 20 }
}

/// The live diff of `ws/cur` against `ws/base`, read in 512-byte chunks.
fn live(ws: &Path) -> (diff::TreeDiff, pyro_protocol::TreeDiffAnswer) {
    let mut agent = InProcess(Sandbox::host_compat(ws));
    let result =
        tree_diff::live_diff(&mut agent, "/workspace/cur", "/workspace/base", limits(), 512)
            .expect("live diff")
            .expect("not declined");
    // The raw answer too, for the candidate counts.
    let raw = match agent.0.handle(Request::TreeDiffOpen {
        root: "/workspace/cur".into(),
        baseline_root: "/workspace/base".into(),
        limits: limits(),
        full_walk: false,
    }) {
        Response::TransferOpened { transfer_id, size_bytes, .. } => {
            let Response::Chunk { data_b64, .. } = agent.0.handle(Request::TransferRead {
                transfer_id,
                offset: 0,
                max_bytes: size_bytes,
            }) else {
                panic!("no chunk")
            };
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD.decode(data_b64).expect("base64");
            serde_json::from_slice(&bytes).expect("answer")
        }
        other => panic!("{other:?}"),
    };
    (result, raw)
}

/// The archive diff of packs of both trees.
fn from_scratch(ws: &Path) -> diff::TreeDiff {
    let pack =
        |name: &str| pyro_agent::archive::pack_path(&ws.join(name).join(".")).expect("pack").0;
    diff::diff_trees(&pack("base"), &pack("cur")).expect("archive diff")
}

fn run(start: &[Edit], edits: &[Edit], lineage: Lineage) -> Result<(), TestCaseError> {
    let ws = tempfile::tempdir().expect("tempdir");
    let origin = ws.path().join("cur");
    fs::create_dir(&origin).expect("mkdir");
    for e in start {
        apply(&origin, e);
    }
    clone_tree(&origin, &ws.path().join("base"), lineage);
    for e in edits {
        apply(&origin, e);
    }
    let expected = from_scratch(ws.path());
    let (got, raw) = live(ws.path());
    prop_assert_eq!(&got, &expected);
    prop_assert!(raw.candidates <= raw.scanned);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn live_diff_matches_the_archive_diff_of_a_copied_baseline(
        start in prop::collection::vec(edit(), 0..24),
        edits in prop::collection::vec(edit(), 0..16),
    ) {
        run(&start, &edits, Lineage::Copy)?;
    }

    #[test]
    fn live_diff_matches_the_archive_diff_of_a_hard_linked_baseline(
        start in prop::collection::vec(edit(), 0..24),
        edits in prop::collection::vec(edit(), 0..16),
    ) {
        run(&start, &edits, Lineage::HardLinks)?;
    }
}

/// Shared lineage: nothing edited means nothing read. Every file pair has the same stat
/// tuple, so the agent compares no content at all.
#[test]
fn an_untouched_hard_linked_tree_has_no_candidates() {
    let ws = tempfile::tempdir().expect("tempdir");
    let origin = ws.path().join("cur");
    fs::create_dir_all(origin.join("src/deep")).expect("mkdir");
    for i in 0..50 {
        fs::write(origin.join(format!("src/deep/f{i}.txt")), format!("line {i}\n")).expect("write");
    }
    std::os::unix::fs::symlink("src", origin.join("link")).expect("symlink");
    clone_tree(&origin, &ws.path().join("base"), Lineage::HardLinks);
    let (result, raw) = live(ws.path());
    assert!(!result.changed, "{result:?}");
    // 50 files, 2 directories and one symlink on each side; the symlinks differ in
    // inode (recreated), so they alone are candidates.
    assert_eq!(raw.scanned, 2 * 53);
    assert_eq!(raw.candidates, 1);
    // One replaced file: exactly one more candidate, reported with its patch.
    let file = origin.join("src/deep/f7.txt");
    fs::write(origin.join("tmp"), "line seven\n").expect("write");
    fs::rename(origin.join("tmp"), &file).expect("replace");
    let (result, raw) = live(ws.path());
    assert_eq!(raw.candidates, 2);
    assert_eq!(result.summary.modified, 1);
    assert_eq!(result.entries[0].path, "src/deep/f7.txt");
    assert_eq!(result, from_scratch(ws.path()));
}
