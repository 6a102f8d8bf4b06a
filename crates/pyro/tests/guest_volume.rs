//! Real guests with `/workspace` on its own volume: the seed made into the baseline
//! image on the host arrives exactly (modes, symlinks, mtimes, contents), snapshots and
//! resets restore trees byte for byte, snapshots survive stop/start, deleting a
//! snapshot frees its layer file (also when it lies under the active overlay), and both
//! a clone and a cold boot mount the volume.

mod common;

use common::exec_ok as exec;
use common::guest_runtime as runtime;
use pyro::params::*;
use pyro::Runtime;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

const ENV: &str = "debian:12-base";

/// One entry of a tree: kind, permission bits, then content (files), target (links).
type Tree = BTreeMap<String, (char, u32, Vec<u8>, i64)>;

/// Every entry below `root` (not `root` itself); file mtimes in seconds.
fn tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).expect("below").display().to_string();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            let mode = meta.mode() & 0o7777;
            let value = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).expect("link");
                ('l', 0, target.as_os_str().as_encoded_bytes().to_vec(), 0)
            } else if meta.is_dir() {
                stack.push(path.clone());
                ('d', mode, Vec::new(), 0)
            } else {
                ('f', mode, std::fs::read(&path).expect("read"), meta.mtime())
            };
            out.insert(rel, value);
        }
    }
    out
}

/// `/workspace` of the running workspace, exported to a new host directory.
fn guest_tree(rt: &Runtime, id: &str, scratch: &Path, tag: &str) -> Tree {
    let output = scratch.join(format!("export-{tag}"));
    rt.workspace_export(WorkspaceExportParams {
        workspace_id: id.into(),
        path: "/workspace".into(),
        output_path: output.display().to_string(),
    })
    .expect("export");
    tree(&output)
}

/// A seed with what a repository holds: modes, a set-uid bit (dropped in the guest, as
/// before), nested and empty directories, empty and binary files, relative, absolute
/// and dangling symlinks, fixed mtimes.
fn make_seed(root: &Path) {
    let write = |rel: &str, data: &[u8], mode: u32| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, data).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    write("README.md", b"# seed\n", 0o644);
    write("bin/run.sh", b"#!/bin/sh\necho run\n", 0o755);
    write("bin/suid", b"x", 0o4755);
    write("src/deep/er/mod.rs", b"pub fn f() {}\n", 0o600);
    write("empty", b"", 0o644);
    write("blob.bin", &(0..=255u8).cycle().take(70_000).collect::<Vec<_>>(), 0o640);
    std::fs::create_dir_all(root.join("emptydir")).expect("mkdir");
    std::fs::set_permissions(root.join("src/deep"), std::fs::Permissions::from_mode(0o750))
        .expect("chmod");
    std::os::unix::fs::symlink("README.md", root.join("readme-link")).expect("link");
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).expect("link");
    std::os::unix::fs::symlink("nowhere/at/all", root.join("dangling")).expect("link");
    for entry in ["README.md", "bin/run.sh", "bin/suid", "src/deep/er/mod.rs", "empty", "blob.bin"]
    {
        let file = std::fs::File::options().write(true).open(root.join(entry)).expect("open");
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        file.set_modified(when).expect("mtime");
    }
}

fn volume_files(state: &Path, id: &str) -> Vec<String> {
    let dir = state.join("workspaces").join(id).join("volume");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("volume dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".qcow2"))
        .collect();
    names.sort();
    names
}

fn snapshot_layer(state: &Path, id: &str, name: &str) -> String {
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(state.join("workspaces").join(id).join("workspace.json")).expect("record"),
    )
    .expect("json");
    record["volume"]["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .find(|l| l["snapshot"] == name)
        .and_then(|l| l["file"].as_str())
        .unwrap_or_else(|| panic!("no layer for {name}: {record}"))
        .to_owned()
}

fn reset(rt: &Runtime, id: &str, snapshot: &str) {
    rt.workspace_reset(WorkspaceResetParams { workspace_id: id.into(), snapshot: snapshot.into() })
        .expect("reset");
}

fn snapshot(rt: &Runtime, id: &str, name: &str) {
    rt.snapshot_create(SnapshotParams { workspace_id: id.into(), snapshot_name: name.into() })
        .expect("snapshot create");
}

#[test]
fn the_volume_keeps_seeds_snapshots_and_resets_exact() {
    let tmp = common::guest_tempdir();
    let state = tmp.path().join("state");
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir_all(&scratch).expect("mkdir");
    let seed = tmp.path().join("seed");
    make_seed(&seed);
    let rt = runtime(&state);

    let mut params = WorkspaceCreateParams::new(ENV);
    params.seed_path = Some(seed.display().to_string());
    let ws = rt.workspace_create(params).expect("create");
    let id = ws.workspace_id.clone();
    assert_eq!(ws.metadata.get("boot").map(String::as_str), Some("clone"), "{:?}", ws.metadata);
    let mounts = exec(&rt, &id, "grep -E ' /workspace | /run/pyro-baseline ' /proc/mounts");
    assert!(mounts.contains(" /workspace ext4 rw"), "{mounts}");
    assert!(mounts.contains(" /run/pyro-baseline ext4 ro"), "{mounts}");

    // The seed, as the guest-side import made it: set-id bits dropped, the rest kept.
    let mut expected = tree(&seed);
    if let Some(entry) = expected.get_mut("bin/suid") {
        entry.1 &= 0o1777;
    }
    assert_eq!(guest_tree(&rt, &id, &scratch, "seed"), expected, "the seed in the guest");
    let seed_tree = expected;

    // State A: files added, modified, deleted, chmodded, a link retargeted.
    exec(
        &rt,
        &id,
        "cd /workspace && echo added > new.txt && echo more >> README.md && rm blob.bin \
         && chmod 0700 bin/run.sh && ln -sfn bin/run.sh readme-link && mkdir -p made/dir",
    );
    let tree_a = guest_tree(&rt, &id, &scratch, "a");
    assert_ne!(tree_a, seed_tree);
    // The diff compares with the baseline the guest mounts from the volume's bottom layer.
    let d = rt.workspace_diff(&id).expect("diff");
    assert!(
        d.changed && d.patch.contains("new.txt") && d.patch.contains("README.md"),
        "{}",
        d.patch
    );
    snapshot(&rt, &id, "s1");
    // State B.
    exec(&rt, &id, "cd /workspace && rm -r src && echo b > new.txt && touch -d @1 new.txt");
    let tree_b = guest_tree(&rt, &id, &scratch, "b");
    snapshot(&rt, &id, "s2");
    // State C, never snapshotted.
    exec(&rt, &id, "cd /workspace && rm -rf * && echo c > c.txt");

    reset(&rt, &id, "s1");
    assert_eq!(guest_tree(&rt, &id, &scratch, "reset-s1"), tree_a, "reset to s1");
    reset(&rt, &id, "baseline");
    assert_eq!(guest_tree(&rt, &id, &scratch, "reset-base"), seed_tree, "reset to baseline");
    assert!(!rt.workspace_diff(&id).expect("diff").changed, "nothing differs after a reset");

    // Snapshots survive stop/start; a start is a cold boot, and it mounts too.
    rt.workspace_stop(&id).expect("stop");
    let started = rt.workspace_start(&id).expect("start");
    assert_eq!(started.metadata.get("boot").map(String::as_str), Some("cold"));
    let names: Vec<String> = rt
        .snapshot_list(&id)
        .expect("list")
        .snapshots
        .into_iter()
        .map(|s| s.snapshot_name)
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(guest_tree(&rt, &id, &scratch, "after-start"), seed_tree);
    reset(&rt, &id, "s2");
    assert_eq!(guest_tree(&rt, &id, &scratch, "reset-s2"), tree_b, "reset to s2");

    // Delete s1, which s2 is layered on (and, on this branch, the active overlay too):
    // its data moves into what depends on it and its file goes.
    let s1 = snapshot_layer(&state, &id, "s1");
    rt.snapshot_delete(SnapshotParams { workspace_id: id.clone(), snapshot_name: "s1".into() })
        .expect("delete s1");
    assert!(!volume_files(&state, &id).contains(&s1), "{s1} left: {:?}", volume_files(&state, &id));
    assert_eq!(guest_tree(&rt, &id, &scratch, "after-delete-s1"), tree_b);
    exec(&rt, &id, "echo after > /workspace/after.txt");
    reset(&rt, &id, "s2");
    assert_eq!(guest_tree(&rt, &id, &scratch, "reset-s2-again"), tree_b, "s2 after s1 went");

    // Delete s2 while it lies right under the running overlay.
    let s2 = snapshot_layer(&state, &id, "s2");
    exec(&rt, &id, "echo top > /workspace/top.txt");
    let mut tree_top = tree_b.clone();
    tree_top.insert("top.txt".into(), ('f', 0o644, b"top\n".to_vec(), 0));
    rt.snapshot_delete(SnapshotParams { workspace_id: id.clone(), snapshot_name: "s2".into() })
        .expect("delete s2");
    assert!(!volume_files(&state, &id).contains(&s2), "{s2} left");
    assert_eq!(volume_files(&state, &id).len(), 1, "only the active overlay is left");
    let mut now = guest_tree(&rt, &id, &scratch, "after-delete-s2");
    if let Some(top) = now.get_mut("top.txt") {
        top.3 = 0;
    }
    assert_eq!(now, tree_top);
    assert_eq!(rt.snapshot_list(&id).expect("list").count, 1, "only the baseline is left");

    // On a stopped workspace the merge is offline (qemu-img, the chain spelt out).
    snapshot(&rt, &id, "s3");
    exec(&rt, &id, "cd /workspace && echo d > d.txt && chmod 0751 d.txt && ln -s d.txt d-link");
    let tree_d = guest_tree(&rt, &id, &scratch, "d");
    snapshot(&rt, &id, "s4");
    exec(&rt, &id, "rm /workspace/d.txt");
    rt.workspace_stop(&id).expect("stop");
    let s3 = snapshot_layer(&state, &id, "s3");
    rt.snapshot_delete(SnapshotParams { workspace_id: id.clone(), snapshot_name: "s3".into() })
        .expect("delete s3 offline");
    assert!(!volume_files(&state, &id).contains(&s3), "{s3} left");
    rt.workspace_start(&id).expect("start");
    reset(&rt, &id, "s4");
    assert_eq!(guest_tree(&rt, &id, &scratch, "reset-s4"), tree_d, "s4 after s3 went offline");

    rt.workspace_delete(&id).expect("delete");
    assert!(!state.join("workspaces").join(&id).exists(), "the volume goes with the workspace");
}
