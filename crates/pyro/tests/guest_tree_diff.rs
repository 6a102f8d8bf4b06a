//! The live tree diff with a real guest (QEMU; TCG here): the agent's stat-first walk
//! over trees made in the guest gives exactly the archive diff of exports of the same
//! trees, finds a same-size rewrite whose mtime was put back with `touch -d`, and reads
//! nothing of a tree that shares its inodes with the baseline. Like every guest test
//! this never skips: without the guest assets it fails and says to run scripts/setup.

mod common;

use base64::Engine as _;
use pyro::backend::qemu::channel::QemuChannel;
use pyro::backend::AgentChannel;
use pyro::params::*;
use pyro::runtime::state::WorkspaceDir;
use pyro::runtime::transfer::{self, TransferLimits};
use pyro::runtime::{diff, tree_diff};
use pyro::{Runtime, RuntimeConfig};
use pyro_protocol::{Request, Response, TreeDiffAnswer, TreeDiffLimits};
use std::io::{Read, Seek};
use std::path::Path;
use std::time::Duration;

const ENV: &str = "debian:12-base";

fn runtime(state: &Path) -> Runtime {
    let rt =
        Runtime::new(RuntimeConfig { state_dir: state.to_path_buf(), ..RuntimeConfig::from_env() });
    let report = rt.doctor();
    assert!(report.runtime_ok, "guest backend not ready ({:?}); run scripts/setup", report.issues);
    rt
}

fn exec(rt: &Runtime, id: &str, command: &str) -> String {
    let out = rt.workspace_exec(WorkspaceExecParams::new(id, command)).expect(command);
    assert_eq!(out.exit_code, 0, "{command}: {}{}", out.stdout, out.stderr);
    out.stdout
}

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
    let request =
        Request::TreeDiffOpen { root: cur.into(), baseline_root: base.into(), limits: limits() };
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
