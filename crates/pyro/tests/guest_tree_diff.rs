//! The live tree diff with a real guest (QEMU; TCG here): the agent's stat-first walk
//! over trees made in the guest gives exactly the archive diff of exports of the same
//! trees, finds a same-size rewrite whose mtime was put back with `touch -d`, and reads
//! nothing of a tree that shares its inodes with the baseline. Like every guest test
//! this never skips: without the guest assets it fails and says to run scripts/setup.

mod common;

use base64::Engine as _;
use common::exec_ok as exec;
use common::guest_runtime as runtime;
use pyro::backend::qemu::channel::QemuChannel;
use pyro::backend::AgentChannel;
use pyro::params::*;
use pyro::runtime::state::WorkspaceDir;
use pyro::runtime::transfer::{self, TransferLimits};
use pyro::runtime::{diff, tree_diff};
use pyro_protocol::{Request, Response, TreeDiffAnswer, TreeDiffLimits};
use std::io::{Read, Seek};
use std::path::Path;
use std::time::Duration;

const ENV: &str = "debian:12-base";

fn limits() -> TreeDiffLimits {
    tree_diff::limits_for(&TransferLimits::from_env())
}

/// The archive diff of exports of two guest directories.
fn archive_diff(channel: &mut dyn AgentChannel, base: &str, cur: &str) -> diff::TreeDiff {
    let mut pack = |path: &str| {
        let mut file = tempfile::tempfile().expect("spool");
        transfer::export_into(channel, path, &mut file, &TransferLimits::from_env())
            .expect("export");
        let mut bytes = Vec::new();
        file.rewind().and_then(|()| file.read_to_end(&mut bytes)).expect("read spool");
        bytes
    };
    let (before, after) = (pack(base), pack(cur));
    diff::diff_trees(&before, &after).expect("archive diff")
}

/// The agent's raw answer (for its counts), read in one chunk.
fn raw_answer(channel: &mut dyn AgentChannel, base: &str, cur: &str) -> TreeDiffAnswer {
    let request = Request::TreeDiffOpen {
        root: cur.into(),
        baseline_root: base.into(),
        limits: limits(),
        full_walk: false,
    };
    let Response::TransferOpened { transfer_id, size_bytes, .. } =
        channel.call(request, Duration::from_secs(60)).expect("tree diff")
    else {
        panic!("no transfer")
    };
    let read = Request::TransferRead { transfer_id, offset: 0, max_bytes: size_bytes };
    let Response::Chunk { data_b64, .. } =
        channel.call(read, Duration::from_secs(60)).expect("read")
    else {
        panic!("no chunk")
    };
    let bytes = base64::engine::general_purpose::STANDARD.decode(data_b64).expect("base64");
    serde_json::from_slice(&bytes).expect("answer")
}

#[test]
fn live_diff_in_a_guest_matches_the_archive_diff_and_finds_same_mtime_rewrites() {
    let tmp = common::guest_tempdir();
    let state = tmp.path().join("state");
    let rt = runtime(&state);
    let id = rt.workspace_create(WorkspaceCreateParams::new(ENV)).expect("create").workspace_id;
    exec(
        &rt,
        &id,
        "set -e; mkdir -p base/src/deep base/empty base/dir2file; cd base; \
         printf 'one\\ntwo\\nthree\\n' > src/a.txt; printf 'same size\\n' > src/same.txt; \
         printf 'keep\\n' > src/deep/keep.txt; head -c 3000 /dev/urandom > blob.bin; \
         ln -s src/a.txt link; printf 'x\\n' > file2dir; printf 'y\\n' > dir2file/inner; \
         printf 'run\\n' > run.sh; cd ..; touch -d '2020-01-01 00:00:00' base/src/same.txt; \
         cp -a base cur; cp -al base linked",
    );
    // Edits of every kind in the copy (other inodes: every pair is a candidate).
    exec(
        &rt,
        &id,
        "set -e; cd cur; printf 'one\\nTWO\\nthree\\n' > src/a.txt; \
         printf 'SAME SIZE\\n' > src/same.txt; touch -d '2020-01-01 00:00:00' src/same.txt; \
         rm src/deep/keep.txt; printf 'new\\n' > src/new.txt; rmdir empty; \
         rm file2dir; mkdir file2dir; rm -r dir2file; ln -s nowhere dir2file; \
         ln -sfn src/new.txt link; chmod +x run.sh; head -c 3000 /dev/urandom > blob.bin",
    );
    let stat = exec(&rt, &id, "stat -c '%s %Y' base/src/same.txt cur/src/same.txt");
    let mut lines = stat.lines();
    assert_eq!(lines.next(), lines.next(), "the rewrite kept size and mtime: {stat}");
    // In the hard-linked tree (same inodes: one lineage) one file is replaced.
    exec(&rt, &id, "printf 'linked\\n' > linked/tmp && mv linked/tmp linked/src/a.txt");

    let sandbox = WorkspaceDir::new(&state, &id).sandbox();
    let mut channel = QemuChannel::connect(&sandbox).expect("connect");
    let chunk = 4096;
    let live =
        tree_diff::live_diff(&mut channel, "/workspace/cur", "/workspace/base", limits(), chunk)
            .expect("live diff")
            .expect("the agent serves tree_diff");
    let expected = archive_diff(&mut channel, "/workspace/base", "/workspace/cur");
    assert_eq!(live, expected);
    let entries: Vec<(&str, &str)> =
        live.entries.iter().map(|e| (e.path.as_str(), e.status.as_str())).collect();
    assert_eq!(
        entries,
        [
            ("blob.bin", "modified"),
            ("dir2file", "type_changed"),
            ("dir2file/inner", "deleted"),
            ("empty", "deleted"),
            ("file2dir", "type_changed"),
            ("link", "modified"),
            ("run.sh", "modified"),
            ("src/a.txt", "modified"),
            ("src/deep/keep.txt", "deleted"),
            ("src/new.txt", "added"),
            ("src/same.txt", "modified"),
        ]
    );
    assert!(live.patch.contains("-same size\n+SAME SIZE\n"), "{}", live.patch);

    let linked =
        tree_diff::live_diff(&mut channel, "/workspace/linked", "/workspace/base", limits(), chunk)
            .expect("live diff")
            .expect("served");
    assert_eq!(linked, archive_diff(&mut channel, "/workspace/base", "/workspace/linked"));
    let paths: Vec<&str> = linked.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["src/a.txt"]);
    // Shared inodes: only the replaced file's pair differs in its stat tuple, so only it
    // is read (cp -al links the symlink too).
    let raw = raw_answer(&mut channel, "/workspace/base", "/workspace/linked");
    assert_eq!(raw.candidates, 1, "{raw:?}");
    drop(channel);
    rt.workspace_delete(&id).expect("delete");
}

/// Host directory `dir` packed as the guest would export it.
fn pack_host(dir: &Path) -> Vec<u8> {
    pyro_agent::archive::pack_path(&dir.join(".")).expect("pack").0
}

/// `workspace_diff` on a workspace whose `/workspace` is a volume with its baseline
/// mounted: right after exec, a file write, a patch, a sync push and a same-size rewrite
/// with the old mtime put back (same inode, same size, same mtime: only ctime and the
/// bytes differ), and the same after stop/start and after a reset to a snapshot; always
/// equal to the archive diff of the seed against an export of `/workspace`. No manifest
/// is kept: each diff compares live against the frozen baseline.
#[test]
fn workspace_diff_on_a_volume_follows_every_kind_of_change_and_survives_stop_start() {
    let tmp = common::guest_tempdir();
    let state = tmp.path().join("state");
    let seed = tmp.path().join("seed");
    std::fs::create_dir_all(seed.join("src")).expect("mkdir");
    std::fs::create_dir_all(seed.join("docs/empty")).expect("mkdir");
    std::fs::write(seed.join("src/a.txt"), "one\ntwo\nthree\n").expect("write");
    std::fs::write(seed.join("src/keep.txt"), "alpha\nbeta\n").expect("write");
    std::fs::write(seed.join("src/same.txt"), "same size\n").expect("write");
    std::fs::write(seed.join("bin.dat"), [0u8, 1, 2, 3]).expect("write");
    std::os::unix::fs::symlink("src/a.txt", seed.join("link")).expect("symlink");
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
    std::fs::File::options()
        .write(true)
        .open(seed.join("src/same.txt"))
        .and_then(|f| f.set_modified(old))
        .expect("old mtime");
    let rt = runtime(&state);
    let params = WorkspaceCreateParams {
        seed_path: Some(seed.display().to_string()),
        ..WorkspaceCreateParams::new(ENV)
    };
    let id = rt.workspace_create(params).expect("create").workspace_id;
    let mounted = exec(&rt, &id, "grep -c ' /run/pyro-baseline ' /proc/self/mountinfo || true");
    assert_eq!(mounted.trim(), "1", "the baseline is mounted in the guest");
    let fresh = rt.workspace_diff(&id).expect("diff");
    assert!(!fresh.changed, "{fresh:?}");

    exec(&rt, &id, "printf 'one\\nTWO\\nthree\\n' > src/a.txt");
    rt.workspace_file_write(WorkspaceFileWriteParams {
        workspace_id: id.clone(),
        path: "notes/new.txt".into(),
        text: "written\n".into(),
    })
    .expect("file write");
    rt.workspace_patch_apply(WorkspacePatchApplyParams {
        workspace_id: id.clone(),
        patch: "--- a/src/keep.txt\n+++ b/src/keep.txt\n@@ -1,2 +1,2 @@\n alpha\n-beta\n+BETA\n"
            .into(),
    })
    .expect("patch");
    let push = tmp.path().join("push");
    std::fs::create_dir_all(&push).expect("mkdir");
    std::fs::write(push.join("pushed.txt"), "pushed\n").expect("write");
    rt.workspace_sync_push(WorkspaceSyncPushParams {
        workspace_id: id.clone(),
        source_path: push.display().to_string(),
        dest: "/workspace/pushed".into(),
    })
    .expect("sync push");
    exec(&rt, &id, "printf 'SAME SIZE\\n' > src/same.txt && touch -d @1577836800 src/same.txt");
    // Same inode, size and mtime as the baseline's copy: only ctime (and the bytes) moved.
    let stat = exec(
        &rt,
        &id,
        "stat -c '%i %s %Y' /run/pyro-baseline/src/same.txt src/same.txt; \
         stat -c '%z' /run/pyro-baseline/src/same.txt src/same.txt",
    );
    let lines: Vec<&str> = stat.lines().collect();
    assert_eq!(lines.len(), 4, "{stat}");
    assert_eq!(lines[0], lines[1], "inode, size and mtime match: {stat}");
    // To the nanosecond: the baseline was made seconds ago, so the seconds may match.
    assert_ne!(lines[2], lines[3], "ctime moved: {stat}");
    eprintln!("same.txt before and after: {stat}");

    let diff = rt.workspace_diff(&id).expect("diff");
    let entries: Vec<(&str, &str)> =
        diff.entries.iter().map(|e| (e.path.as_str(), e.status.as_str())).collect();
    assert_eq!(
        entries,
        [
            ("notes/new.txt", "added"),
            ("pushed/pushed.txt", "added"),
            ("src/a.txt", "modified"),
            ("src/keep.txt", "modified"),
            ("src/same.txt", "modified"),
        ]
    );
    assert!(diff.patch.contains("-same size\n+SAME SIZE\n"), "{}", diff.patch);

    rt.workspace_stop(&id).expect("stop");
    rt.workspace_start(&id).expect("start");
    let after_restart = rt.workspace_diff(&id).expect("diff after start");
    assert_eq!(after_restart, diff);
    let summary = rt.workspace_summary(&id).expect("summary");
    assert_eq!(summary.changes.map(|c| c.summary), Some(diff.summary.clone()));

    // The archive diff of the seed against an export of /workspace gives the same.
    let out = tmp.path().join("export");
    rt.workspace_export(WorkspaceExportParams {
        workspace_id: id.clone(),
        path: "/workspace".into(),
        output_path: out.display().to_string(),
    })
    .expect("export");
    // mke2fs puts lost+found in the volume's root: in the baseline as in /workspace.
    let _ = std::fs::remove_dir(out.join("lost+found"));
    let expected = diff::diff_trees(&pack_host(&seed), &pack_host(&out)).expect("archive diff");
    assert_eq!(
        (diff.changed, &diff.summary, &diff.entries, &diff.patch),
        (expected.changed, &expected.summary, &expected.entries, &expected.patch)
    );

    // A snapshot, a reset to the baseline (nothing changed) and a reset to the snapshot
    // (the same changes): the diff is always against the create-time baseline.
    rt.snapshot_create(SnapshotParams { workspace_id: id.clone(), snapshot_name: "edited".into() })
        .expect("snapshot");
    let reset = |snapshot: &str| {
        rt.workspace_reset(WorkspaceResetParams {
            workspace_id: id.clone(),
            snapshot: snapshot.into(),
        })
        .expect("reset")
    };
    reset("baseline");
    assert!(!rt.workspace_diff(&id).expect("diff after reset").changed);
    reset("edited");
    assert_eq!(rt.workspace_diff(&id).expect("diff after reset to the snapshot"), diff);
    rt.workspace_delete(&id).expect("delete");
}
