//! The tracked workspace diff with a real guest (QEMU; TCG here): after every step of a
//! randomized sequence of edits made through `workspace exec` (seeded; the seed is
//! printed, `PYRO_TEST_SEED` replays one), the agent's tracked diff (only the paths its
//! fanotify log and known set name) equals a forced full walk of both trees, and the
//! tracked mode really ran. Also through a write into a shared mapping whose descriptor
//! was closed (no event: found by the `/proc` scan), hard links (among new files:
//! tracked; to a baseline file: falls back to a full
//! walk), snapshot create and a reset onto the snapshot (the set taken with it), a
//! reset to the baseline, a clean stop/start (the set taken while frozen), and a start
//! after the guest was killed (unknown: one full walk, then tracked again).
//! Like every guest test this never skips: without the guest assets it fails and says
//! to run scripts/setup.

mod common;

use common::exec_ok as exec;
use common::guest_runtime as runtime;
use pyro::backend::qemu::channel::QemuChannel;
use pyro::backend::AgentChannel;
use pyro::params::*;
use pyro::runtime::state::WorkspaceDir;
use pyro::runtime::transfer::TransferLimits;
use pyro::runtime::{diff, tree_diff};
use pyro::Runtime;
use pyro_protocol::{Request, Response, TreeDiffAnswer, TreeDiffLimits, TreeTotals};
use std::path::Path;
use std::time::Duration;

/// `debian:12` has python3, for the shared mapping.
const ENV: &str = "debian:12";

fn limits() -> TreeDiffLimits {
    tree_diff::limits_for(&TransferLimits::from_env())
}

/// A small xorshift generator: the test needs reproducible choices, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Names the edits play with (nested, so directories move with content); `bulk/` and
/// `mapped*.bin` of the seed are never touched.
const PATHS: &[&str] = &[
    "f1",
    "f2",
    "d1",
    "d1/f3",
    "d1/sub",
    "d1/sub/f4",
    "d2",
    "d2/f5",
    "src/a.txt",
    "src/b.txt",
    "src",
    "src/lib",
    "src/lib/x.rs",
    "ln1",
];

/// One random edit as a shell command (failures are fine: `|| true`).
fn edit(rng: &mut Rng, step: u64) -> String {
    let p = rng.pick(PATHS);
    let q = rng.pick(PATHS);
    let op = match rng.next() % 14 {
        0 => format!("mkdir -p \"$(dirname {p})\" && printf 'text {step}\\nline\\n' > {p}"),
        1 => format!("printf 'more {step}\\n' >> {p}"),
        2 => format!("rm -f {p}"),
        3 => format!("mkdir -p \"$(dirname {q})\" && mv -T {p} {q}"),
        4 => format!("mkdir -p {p}"),
        5 => format!("rm -rf {p}"),
        // A directory over another (mv -T replaces an empty one; rm first otherwise).
        6 => format!("[ -d {p} ] && rm -rf {q} && mkdir -p \"$(dirname {q})\" && mv -T {p} {q}"),
        7 => format!("chmod +x {p}"),
        8 => format!("chmod -x {p}"),
        9 => format!("ln -sfn {q} {p}"),
        10 => format!("rm -rf {p} && mkdir -p {p} && printf 'in\\n' > {p}/inner"),
        11 => format!("rm -rf {p} && mkdir -p \"$(dirname {p})\" && printf 'was a dir\\n' > {p}"),
        // Same size, same mtime: only ctime and the bytes move.
        12 => format!(
            "[ -f {p} ] && [ ! -L {p} ] && m=$(stat -c %y {p}) && tr a-z A-Z < {p} > /tmp/up \
             && cat /tmp/up > {p} && touch -d \"$m\" {p}"
        ),
        _ => format!("[ -d {p} ] && mkdir -p {p}/new{step} && printf 'n\\n' > {p}/new{step}/f"),
    };
    format!("({op}) 2>/dev/null || true")
}

struct Checker<'a> {
    state: &'a Path,
    id: &'a str,
}

impl Checker<'_> {
    fn answer(&self, full_walk: bool) -> TreeDiffAnswer {
        let sandbox = WorkspaceDir::new(self.state, self.id).sandbox();
        let mut channel = QemuChannel::connect(&sandbox).expect("connect");
        let request = Request::TreeDiffOpen {
            root: "/workspace".into(),
            baseline_root: pyro_protocol::BASELINE_MOUNT.into(),
            limits: limits(),
            full_walk,
        };
        tree_diff::live_answer(&mut channel, request, 1 << 20)
            .expect("tree diff")
            .expect("the agent serves tree_diff")
    }

    /// `/workspace`'s totals from the agent: from the baseline's (as the host recorded
    /// them) and the candidates, or walked whole; and whether the candidates were used.
    fn totals(&self, full_walk: bool) -> (TreeTotals, bool) {
        let dir = WorkspaceDir::new(self.state, self.id);
        let text = std::fs::read_to_string(dir.record()).expect("workspace.json");
        let rec: serde_json::Value = serde_json::from_str(&text).expect("record");
        let baseline: Option<TreeTotals> =
            serde_json::from_value(rec["volume"]["baseline_totals"].clone()).expect("totals");
        assert!(baseline.is_some(), "the host records the baseline's totals");
        let mut channel = QemuChannel::connect(&dir.sandbox()).expect("connect");
        let request = Request::TreeTotals { baseline, full_walk };
        match channel.call(request, Duration::from_secs(60)).expect("tree_totals") {
            Response::TreeTotals { totals, tracked } => (totals, tracked),
            other => panic!("{other:?}"),
        }
    }

    /// The tracked diff equals the full walk's, and so do the totals; returns whether
    /// the diff was tracked.
    fn check(&self, what: &str) -> (bool, diff::TreeDiff) {
        let (counted, counted_tracked) = self.totals(false);
        let (walked, walked_tracked) = self.totals(true);
        assert!(!walked_tracked, "{what}: a forced count is never tracked");
        assert_eq!(counted, walked, "{what}: the totals from the candidates differ from a walk");
        let tracked = self.answer(false);
        let full = self.answer(true);
        assert!(!full.tracked, "{what}: a forced walk is never tracked");
        let was_tracked = tracked.tracked;
        let (scanned, tracked_scanned) = (full.scanned, tracked.scanned);
        eprintln!(
            "{what}: tracked {was_tracked} ({} candidates, {tracked_scanned} scanned; full \
             walk {scanned}), {} changes",
            tracked.tracked_paths,
            full.changes.len()
        );
        let a = tree_diff::build(tracked, &limits()).expect("tracked answer");
        let b = tree_diff::build(full, &limits()).expect("full answer");
        assert_eq!(a, b, "{what}: the tracked diff differs from the full walk");
        if was_tracked {
            assert!(tracked_scanned < scanned, "{what}: {tracked_scanned} of {scanned} scanned");
        }
        assert_eq!(counted_tracked, was_tracked, "{what}: totals and diff use the same set");
        (was_tracked, a)
    }

    fn tracked(&self, what: &str) -> diff::TreeDiff {
        let (tracked, d) = self.check(what);
        assert!(tracked, "{what}: the tracked mode did not run");
        d
    }
}

fn random_steps(rt: &Runtime, checker: &Checker, rng: &mut Rng, from: u64, count: u64) {
    for step in from..from + count {
        let ops: Vec<String> = (0..1 + rng.next() % 3).map(|_| edit(rng, step)).collect();
        let command = ops.join("; ");
        exec(rt, checker.id, &command);
        checker.tracked(&format!("step {step}: {command}"));
    }
}

#[test]
fn tracked_diffs_equal_full_walks_through_edits_snapshots_resets_and_restarts() {
    let seed_value =
        std::env::var("PYRO_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("PYRO_TEST_SEED={seed_value}");
    let mut rng = Rng(seed_value);
    let tmp = common::guest_tempdir();
    let state = tmp.path().join("state");
    let seed = tmp.path().join("seed");
    for dir in ["src/lib", "d1/sub", "d2", "bulk/deep"] {
        std::fs::create_dir_all(seed.join(dir)).expect("mkdir");
    }
    for (path, text) in [
        ("f1", "one\n"),
        ("src/a.txt", "alpha\nbeta\n"),
        ("src/lib/x.rs", "fn x() {}\n"),
        ("d1/f3", "three\n"),
        ("d1/sub/f4", "four\n"),
        ("d2/f5", "five\n"),
        ("mapped.bin", "0123456789abcdef\n"),
        ("mapped2.bin", "0123456789abcdef\n"),
    ] {
        std::fs::write(seed.join(path), text).expect("write");
    }
    for i in 0..40 {
        std::fs::write(seed.join(format!("bulk/deep/b{i}.txt")), format!("{i}\n")).expect("write");
    }
    std::os::unix::fs::symlink("f1", seed.join("ln1")).expect("symlink");
    let rt = runtime(&state);
    let params = WorkspaceCreateParams {
        seed_path: Some(seed.display().to_string()),
        ..WorkspaceCreateParams::new(ENV)
    };
    let id = rt.workspace_create(params).expect("create").workspace_id;
    let checker = Checker { state: &state, id: &id };

    // Created: known empty, so tracked from the first diff.
    assert!(!checker.tracked("fresh").changed);
    random_steps(&rt, &checker, &mut rng, 0, 30);

    // Writes into shared mappings whose descriptors were closed, while the mappings
    // are still held (no event at all): Python's mmap keeps a dup of the descriptor
    // (found in /proc/<pid>/fd), a raw mmap(2) through ctypes keeps none (found in
    // /proc/<pid>/maps only). Then again after the holder ended (FAN_CLOSE_WRITE).
    let script = r#"
import ctypes, mmap, os, time
fd = os.open("mapped.bin", os.O_RDWR)
m = mmap.mmap(fd, 0)
os.close(fd)
m[0:4] = b"MMAP"
m.flush()
libc = ctypes.CDLL(None)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
fd = os.open("mapped2.bin", os.O_RDWR)
p = libc.mmap(None, 16, 3, 1, fd, 0)
os.close(fd)
ctypes.memmove(p, b"MMAP", 4)
open("/tmp/mapped", "w").write(str(os.getpid()))
time.sleep(120)
"#;
    exec(
        &rt,
        &id,
        &format!(
            "cat > /tmp/map.py <<'EOF'{script}EOF\n\
             setsid python3 /tmp/map.py </dev/null >/dev/null 2>&1 & \
             for i in $(seq 200); do [ -s /tmp/mapped ] && break; sleep 0.1; done; \
             head -c 4 mapped.bin mapped2.bin"
        ),
    );
    let d = checker.tracked("writes through held shared mappings");
    for mapped in ["mapped.bin", "mapped2.bin"] {
        assert!(d.entries.iter().any(|e| e.path == mapped), "{mapped}: {:?}", d.entries);
    }
    exec(&rt, &id, "kill $(cat /tmp/mapped); sleep 0.5");
    checker.tracked("after the mapping's holder ended");

    // A second name for a new inode: every name of it was made since the baseline,
    // with an event, so the diff stays tracked; a write through one name shows in both.
    exec(&rt, &id, "printf 'linked\\n' > hl1 && ln hl1 hl2 && printf 'more\\n' >> hl2");
    let d = checker.tracked("a hard link between new files");
    for name in ["hl1", "hl2"] {
        assert!(d.entries.iter().any(|e| e.path == name), "{name}: {:?}", d.entries);
    }
    exec(&rt, &id, "rm hl2");
    checker.tracked("the new link removed");
    // A second name for an inode of the baseline: a write through the new name changes
    // the old one without an event naming it, so only a full walk is sure; its changes
    // then become the base, and the diff is tracked again once the link is gone.
    exec(&rt, &id, "ln bulk/deep/b7.txt hl3 && printf 'through the link\\n' >> hl3");
    let (tracked, d) = checker.check("a hard link to a baseline file");
    assert!(!tracked, "a second name for a baseline inode must fall back to the full walk");
    assert!(d.entries.iter().any(|e| e.path == "bulk/deep/b7.txt"), "{:?}", d.entries);
    exec(&rt, &id, "rm hl3");
    let d = checker.tracked("the old link removed");
    assert!(d.entries.iter().any(|e| e.path == "bulk/deep/b7.txt"), "{:?}", d.entries);

    // Snapshot, edits, reset onto it: the set taken with the snapshot is known at once.
    let at_snapshot = checker.tracked("before the snapshot");
    let (walked, _) = checker.totals(true);
    let snap = rt
        .snapshot_create(SnapshotParams { workspace_id: id.clone(), snapshot_name: "s1".into() })
        .expect("snapshot");
    // The snapshot counts as an archive of the tree would: what a walk counts.
    let counted = (snap.snapshot.entry_count, snap.snapshot.bytes_written);
    assert_eq!(counted, (walked.entries, walked.file_bytes));
    random_steps(&rt, &checker, &mut rng, 100, 6);
    let reset = |snapshot: &str| {
        rt.workspace_reset(WorkspaceResetParams {
            workspace_id: id.clone(),
            snapshot: snapshot.into(),
        })
        .expect("reset")
    };
    reset("s1");
    assert_eq!(checker.tracked("reset onto the snapshot"), at_snapshot);
    random_steps(&rt, &checker, &mut rng, 200, 6);

    // Reset to the baseline: nothing differs, tracked at once.
    reset("baseline");
    assert!(!checker.tracked("reset to the baseline").changed);
    random_steps(&rt, &checker, &mut rng, 300, 4);

    // A clean stop takes the set while /workspace is frozen: the next start knows it.
    let before_stop = checker.tracked("before stop");
    rt.workspace_stop(&id).expect("stop");
    rt.workspace_start(&id).expect("start");
    assert_eq!(checker.tracked("after a clean stop and start"), before_stop);
    random_steps(&rt, &checker, &mut rng, 400, 4);

    // A guest that died knows nothing: one full walk (that rebuilds the set), then
    // tracked again.
    let before_kill = checker.tracked("before the kill");
    // On disk first: a kill loses what the guest had not written yet.
    exec(&rt, &id, "sync");
    let pidfile = WorkspaceDir::new(&state, &id).sandbox().join("qemu.pid");
    let pid = std::fs::read_to_string(&pidfile).expect("qemu pidfile");
    let killed = std::process::Command::new("kill").args(["-9", pid.trim()]).status();
    assert!(killed.is_ok_and(|s| s.success()), "kill QEMU {pid}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    rt.workspace_start(&id).expect("start after the kill");
    let (tracked, after_start) = checker.check("after a start from a dead guest");
    assert!(!tracked, "after an unclean stop the set is unknown: a full walk");
    assert_eq!(after_start, before_kill);
    checker.tracked("second diff after that start");
    random_steps(&rt, &checker, &mut rng, 500, 4);
    rt.workspace_delete(&id).expect("delete");
}
