//! Real guests started as clones of template VMs: every clone is its own machine, a
//! broken template ends in a cold boot that works, results say how the guest started,
//! and a cloned workspace behaves like a cold one.
//!
//! Each test uses a private cache (hard links to the configured cache's boot assets and
//! images, no templates), so templates made or corrupted here never touch the cache
//! other tests use.

mod common;

use common::GuestTempDir;
use pyro::params::*;
use pyro::{Runtime, RuntimeConfig};
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const ENV: &str = "debian:12-base";

/// A state dir and a private cache dir under one guest temp dir.
struct Setup {
    tmp: GuestTempDir,
    rt: Runtime,
}

impl Setup {
    fn new() -> Setup {
        let tmp = common::guest_tempdir();
        let shared = RuntimeConfig::from_env().cache_dir;
        let cache = tmp.path().join("cache");
        std::fs::create_dir_all(&cache).expect("mkdir cache");
        for part in ["boot", "bin", "environments", "scripts"] {
            if shared.join(part).exists() {
                let status = Command::new("cp")
                    .arg("-al")
                    .arg(shared.join(part))
                    .arg(&cache)
                    .status()
                    .expect("cp");
                assert!(status.success(), "cannot link {part} of {}", shared.display());
            }
        }
        let rt = Runtime::new(RuntimeConfig {
            state_dir: tmp.path().join("state"),
            cache_dir: cache.clone(),
        });
        let report = rt.doctor();
        assert!(
            report.runtime_ok,
            "guest backend not ready ({:?}); run scripts/setup",
            report.issues
        );
        Setup { tmp, rt }
    }

    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    fn create(&self) -> pyro::results::Workspace {
        self.rt.workspace_create(WorkspaceCreateParams::new(ENV)).expect("workspace create")
    }

    fn exec(&self, id: &str, command: &str) -> String {
        let out = self.rt.workspace_exec(WorkspaceExecParams::new(id, command)).expect(command);
        assert_eq!(out.exit_code, 0, "{command}: {}", out.stderr);
        out.stdout
    }

    /// The current template build directories.
    fn current_builds(&self) -> Vec<PathBuf> {
        let dir = self.cache().join("templates");
        std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".current"))
            .map(|e| dir.join(std::fs::read_to_string(e.path()).expect("current").trim()))
            .collect()
    }
}

fn boot_of(ws: &pyro::results::Workspace) -> &str {
    ws.metadata.get("boot").map(String::as_str).unwrap_or("missing")
}

fn host_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs_f64()
}

#[test]
fn two_clones_are_different_machines_on_the_host_clock() {
    let s = Setup::new();
    let a = s.create();
    // The template was saved during the first create: a clone that kept the template's
    // clock would now be at least this far behind.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let b = s.create();
    assert_eq!(boot_of(&a), "clone", "{:?}", a.metadata);
    assert_eq!(boot_of(&b), "clone", "{:?}", b.metadata);
    assert_eq!(a.metadata.get("boot_template"), b.metadata.get("boot_template"));
    assert!(a.metadata.contains_key("boot_template_build_ms"), "the first create made it");
    assert!(a.metadata["boot_ms"].parse::<u64>().is_ok());

    let probe = "cat /proc/sys/kernel/random/uuid; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; date +%s.%N";
    let mut facts = Vec::new();
    for ws in [&a, &b] {
        let before = host_now();
        let out = s.exec(&ws.workspace_id, probe);
        let after = host_now();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out:?}");
        let guest: f64 = lines[2].parse().expect("date");
        assert!(
            guest > before - 1.0 && guest < after + 1.0,
            "guest clock {guest} not within 1 s of the host ({before}..{after})"
        );
        facts.push((lines[0].to_owned(), lines[1].to_owned()));
    }
    assert_ne!(facts[0].0, facts[1].0, "both clones gave the same random uuid");
    assert_ne!(facts[0].1, facts[1].1, "both clones gave the same /dev/urandom bytes");
    assert_eq!(facts[0].1.len(), 64);

    for ws in [&a, &b] {
        s.rt.workspace_delete(&ws.workspace_id).expect("delete");
    }
}

#[test]
fn a_corrupt_template_ends_in_a_cold_boot_that_works() {
    let s = Setup::new();
    let first = s.create();
    assert_eq!(boot_of(&first), "clone", "{:?}", first.metadata);
    let builds = s.current_builds();
    assert_eq!(builds.len(), 1, "{builds:?}");
    std::fs::write(builds[0].join("state"), b"QEVM but not really a migration stream")
        .expect("corrupt the state file");

    let second = s.create();
    assert_eq!(boot_of(&second), "cold", "{:?}", second.metadata);
    let reason = &second.metadata["boot_cold_reason"];
    assert!(reason.contains("clone failed"), "{reason}");
    assert_eq!(s.exec(&second.workspace_id, "echo works"), "works\n");
    assert!(s.current_builds().is_empty(), "the corrupt template was retired");

    // The workspace cloned from the old build keeps working: its disk chain is intact.
    assert_eq!(s.exec(&first.workspace_id, "echo still"), "still\n");

    for ws in [&first, &second] {
        s.rt.workspace_delete(&ws.workspace_id).expect("delete");
    }
}

#[test]
fn a_cloned_workspace_passes_the_basic_guest_flow() {
    let s = Setup::new();
    let ws = s.create();
    let id = ws.workspace_id.clone();
    assert_eq!(boot_of(&ws), "clone", "{:?}", ws.metadata);
    let status = s.rt.workspace_status(&id).expect("status");
    assert_eq!(boot_of(&status), "clone");

    s.rt.workspace_file_write(WorkspaceFileWriteParams {
        workspace_id: id.clone(),
        path: "/workspace/notes.txt".into(),
        text: "hi\n".into(),
    })
    .expect("write");
    let read =
        s.rt.workspace_file_read(WorkspaceFileReadParams {
            workspace_id: id.clone(),
            path: "/workspace/notes.txt".into(),
            max_bytes: 1024,
        })
        .expect("read");
    assert_eq!(read.content, "hi\n");
    assert_eq!(s.exec(&id, "cat notes.txt; echo x > /root/outside"), "hi\n");
    let diff = s.rt.workspace_diff(&id).expect("diff");
    assert!(diff.patch.contains("+hi"), "{}", diff.patch);

    // Stop/start boots the clone's own disk (clone overlay -> template overlay -> image).
    s.rt.workspace_stop(&id).expect("stop");
    let started = s.rt.workspace_start(&id).expect("start");
    assert_eq!(boot_of(&started), "cold", "a restart boots the disk it has");
    assert_eq!(s.exec(&id, "cat /workspace/notes.txt /root/outside"), "hi\nx\n");

    // Reset starts a fresh clone: the file outside /workspace is gone.
    let reset =
        s.rt.workspace_reset(WorkspaceResetParams {
            workspace_id: id.clone(),
            snapshot: "baseline".into(),
        })
        .expect("reset");
    assert_eq!(reset.workspace.metadata.get("boot").map(String::as_str), Some("clone"));
    assert_eq!(s.exec(&id, "test -e /root/outside || echo gone"), "gone\n");

    let build = s.current_builds().pop().expect("a current template");
    let users = || std::fs::read_dir(build.join("users")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(users(), 1, "the workspace is recorded as the template's user");
    s.rt.workspace_delete(&id).expect("delete");
    assert_eq!(users(), 0, "delete forgets the user");
    assert!(!s.tmp.path().join("state/workspaces").join(&id).exists());
}

#[test]
fn vm_run_says_how_the_guest_started() {
    let s = Setup::new();
    let run =
        || s.rt.vm_run(VmRunParams::new(ENV, "cat /proc/sys/kernel/random/uuid")).expect("vm_run");
    let first = run();
    let second = run();
    assert_eq!(
        first.metadata.get("boot").map(String::as_str),
        Some("clone"),
        "{:?}",
        first.metadata
    );
    assert_eq!(second.metadata.get("boot").map(String::as_str), Some("clone"));
    assert!(second.metadata.contains_key("boot_ms"));
    assert_ne!(first.stdout, second.stdout);
    assert_eq!(first.exit_code, 0);
}

/// Agent ports of a sandbox whose lock some open file holds (this process included:
/// flock conflicts between separate opens).
fn locked_ports(sandbox: &std::path::Path) -> usize {
    (0..4)
        .filter(|i| {
            let path = sandbox.join(format!("agent-{i}.lock"));
            match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
                Ok(file) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
                Err(_) => false,
            }
        })
        .count()
}

#[test]
fn a_long_lived_runtime_keeps_one_session_and_follows_restarts_by_other_processes() {
    let s = Setup::new();
    let ws = s.create();
    let id = ws.workspace_id.clone();
    let sandbox = s.tmp.path().join("state/workspaces").join(&id).join("sandbox");
    assert_eq!(s.exec(&id, "echo one"), "one\n");
    assert_eq!(locked_ports(&sandbox), 1, "the runtime keeps its session (one port)");
    assert_eq!(s.exec(&id, "echo two"), "two\n");
    assert_eq!(locked_ports(&sandbox), 1, "and reuses it instead of claiming another");

    // Another process restarts the guest: the kept session belongs to the old QEMU.
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pyro"))
            .args(args)
            .env("PYRO_STATE_DIR", s.tmp.path().join("state"))
            .env("PYRO_CACHE_DIR", s.cache())
            .output()
            .expect("pyro");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(cli(&["workspace", "exec", &id, "--", "echo", "other"]), "other\n");
    cli(&["workspace", "stop", &id]);
    cli(&["workspace", "start", &id]);
    assert_eq!(s.exec(&id, "echo three"), "three\n", "a fresh session to the new guest");
    assert_eq!(locked_ports(&sandbox), 1);

    // And this runtime's own reset replaces the guest without a stale session in the way.
    s.rt.workspace_reset(WorkspaceResetParams {
        workspace_id: id.clone(),
        snapshot: "baseline".into(),
    })
    .expect("reset");
    assert_eq!(s.exec(&id, "echo four"), "four\n");
    s.rt.workspace_delete(&id).expect("delete");
}

#[test]
fn concurrent_first_creates_of_one_key_all_get_working_guests() {
    let s = Setup::new();
    let made: Vec<pyro::results::Workspace> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3).map(|_| scope.spawn(|| s.create())).collect();
        handles.into_iter().map(|h| h.join().expect("create thread")).collect()
    });
    for ws in &made {
        // One of them made the template under the lock; the others waited and cloned
        // it (or, had the wait been too long, booted cold): every one works.
        assert!(matches!(boot_of(ws), "clone" | "cold"), "{:?}", ws.metadata);
        assert_eq!(s.exec(&ws.workspace_id, "echo up"), "up\n");
    }
    assert!(made.iter().any(|ws| boot_of(ws) == "clone"), "nobody cloned");
    assert_eq!(s.current_builds().len(), 1, "one template for the key, not one per create");
    let builds = std::fs::read_dir(s.cache().join("templates"))
        .expect("templates")
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .count();
    assert_eq!(builds, 1, "no half-made or duplicate template builds left");
    for ws in &made {
        s.rt.workspace_delete(&ws.workspace_id).expect("delete");
    }
}
