//! The whole runtime over a fake backend given to it as a value
//! ([`Runtime::with_backends`]): create, exec, files, diff, snapshots, reset, export
//! and delete, and the runtime asking the backend's [`Capabilities`] instead of its
//! kind (what the fake says it cannot do is refused before it is asked).
//!
//! The fake runs each sandbox as a host directory served in-process by the agent's own
//! request handler ([`pyro_agent::Sandbox`]), one handler per running sandbox shared by
//! every connection to it, and records every request it is sent.

use pyro::backend::{
    AgentChannel, Backend, BackendError, BackendKind, Capabilities, SandboxInfo, SandboxSpec,
};
use pyro::params::*;
use pyro::results::{Accel, ExecutionMode, VmState};
use pyro::{PyroError, Runtime, RuntimeConfig};
use pyro_agent::Sandbox;
use pyro_protocol::{Request, Response};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Sandboxes as host directories; every request is counted by its `op`.
#[derive(Debug, Default)]
struct FakeBackend {
    /// Networked (without forwarded ports) instead of network-less.
    networked: bool,
    running: Mutex<HashMap<PathBuf, Arc<Sandbox>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl FakeBackend {
    fn note(&self, what: impl Into<String>) {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).push(what.into());
    }

    fn count(&self, what: &str) -> usize {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|w| *w == what)
            .count()
    }

    fn boot(&self, dir: &Path) -> Result<SandboxInfo, BackendError> {
        let ws = dir.join("workspace");
        let sandbox = Sandbox::host_compat(&ws).with_spool_dir(dir.join("spool"));
        std::fs::create_dir_all(dir.join("spool")).map_err(|e| BackendError::io("spool", e))?;
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(dir.to_path_buf(), Arc::new(sandbox));
        Ok(SandboxInfo {
            accel: Accel::None,
            accel_reason: "fake backend".into(),
            execution_mode: ExecutionMode::Guest,
            guest_kernel: Some("fake-1.0".into()),
            environment_version: Some("fake-env".into()),
            guest_ip: None,
            metadata: BTreeMap::from([("fake".to_string(), "yes".to_string())]),
        })
    }
}

struct FakeChannel {
    sandbox: Arc<Sandbox>,
    log: Arc<Mutex<Vec<String>>>,
}

impl AgentChannel for FakeChannel {
    fn call(&mut self, request: Request, _timeout: Duration) -> Result<Response, BackendError> {
        let op = serde_json::to_value(&request)
            .ok()
            .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(str::to_owned))
            .unwrap_or_default();
        self.log.lock().unwrap_or_else(PoisonError::into_inner).push(format!("op:{op}"));
        Ok(self.sandbox.handle(request))
    }

    fn supports(&mut self, capability: &str) -> bool {
        pyro_agent::CAPABILITIES.contains(&capability)
    }
}

impl Backend for FakeBackend {
    /// It stands in for the guest backend (the kind only names it in records).
    fn kind(&self) -> BackendKind {
        BackendKind::Qemu
    }

    /// Isolated exec, files and archives; no secrets, shells, services or network.
    fn capabilities(&self) -> Capabilities {
        Capabilities::minimal(ExecutionMode::Guest).isolated(true).network(self.networked)
    }

    fn available(&self) -> Result<(), String> {
        Ok(())
    }

    fn create(&self, spec: &SandboxSpec) -> Result<SandboxInfo, BackendError> {
        self.note("create");
        let ws = spec.dir.join("workspace");
        let _ = std::fs::remove_dir_all(&ws);
        std::fs::create_dir_all(&ws).map_err(|e| BackendError::io("create", e))?;
        self.boot(&spec.dir)
    }

    fn start(&self, spec: &SandboxSpec) -> Result<SandboxInfo, BackendError> {
        self.note("start");
        if !spec.dir.join("workspace").is_dir() {
            return Err(BackendError::NotRunning);
        }
        self.boot(&spec.dir)
    }

    fn stop(&self, dir: &Path) -> Result<(), BackendError> {
        self.note("stop");
        self.running.lock().unwrap_or_else(PoisonError::into_inner).remove(dir);
        Ok(())
    }

    fn is_running(&self, dir: &Path) -> bool {
        self.running.lock().unwrap_or_else(PoisonError::into_inner).contains_key(dir)
    }

    fn destroy(&self, dir: &Path) -> Result<(), BackendError> {
        self.note("destroy");
        self.running.lock().unwrap_or_else(PoisonError::into_inner).remove(dir);
        for sub in ["workspace", "spool"] {
            let _ = std::fs::remove_dir_all(dir.join(sub));
        }
        Ok(())
    }

    fn connect(&self, dir: &Path) -> Result<Box<dyn AgentChannel>, BackendError> {
        let sandbox = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(dir)
            .cloned()
            .ok_or(BackendError::NotRunning)?;
        self.note("connect");
        Ok(Box::new(FakeChannel { sandbox, log: Arc::clone(&self.log) }))
    }
}

fn runtime(state: &Path) -> (Runtime, Arc<FakeBackend>) {
    let fake = Arc::new(FakeBackend::default());
    let config = RuntimeConfig { state_dir: state.join("state"), cache_dir: state.join("cache") };
    let backend: Arc<dyn Backend> = fake.clone();
    (Runtime::with_backends(config, [backend]), fake)
}

#[test]
fn the_whole_workspace_flow_runs_over_a_fake_backend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let seed = tmp.path().join("seed");
    std::fs::create_dir_all(seed.join("src")).expect("mkdir");
    std::fs::write(seed.join("src/main.txt"), "broken\n").expect("seed");
    let (rt, fake) = runtime(tmp.path());

    let mut p = WorkspaceCreateParams::new("debian:12");
    p.seed_path = Some(seed.display().to_string());
    let ws = rt.workspace_create(p).expect("create over the fake");
    assert_eq!(fake.count("create"), 1);
    assert_eq!(ws.execution_mode, ExecutionMode::Guest, "the fake's capabilities say guest");
    assert_eq!(ws.state, VmState::Started);
    assert_eq!(ws.environment_version.as_deref(), Some("fake-env"));
    assert_eq!(ws.metadata.get("fake").map(String::as_str), Some("yes"));
    assert_eq!(ws.workspace_seed.bytes_written, 7);
    let id = ws.workspace_id.clone();

    let out = rt
        .workspace_exec(WorkspaceExecParams::new(&id, "cat src/main.txt; echo oops >&2; exit 3"))
        .expect("exec");
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str(), out.exit_code),
        ("broken\n", "oops\n", 3)
    );
    assert_eq!(out.sequence, 1);
    assert!(fake.count("op:exec") >= 1, "exec went through the fake's channel");

    rt.workspace_file_write(WorkspaceFileWriteParams {
        workspace_id: id.clone(),
        path: "src/main.txt".into(),
        text: "fixed\n".into(),
    })
    .expect("write");
    let read = rt
        .workspace_file_read(WorkspaceFileReadParams {
            workspace_id: id.clone(),
            path: "src/main.txt".into(),
            max_bytes: 100,
        })
        .expect("read");
    assert_eq!(read.content, "fixed\n");
    let listed = rt
        .workspace_file_list(WorkspaceFileListParams {
            workspace_id: id.clone(),
            path: "/workspace".into(),
            recursive: true,
        })
        .expect("list");
    assert!(listed.entries.iter().any(|e| e.path == "/workspace/src/main.txt"), "{listed:?}");

    let diff = rt.workspace_diff(&id).expect("diff");
    assert_eq!(diff.summary.modified, 1, "{diff:?}");
    assert!(diff.patch.contains("-broken\n+fixed"), "{}", diff.patch);

    let snap = rt
        .snapshot_create(SnapshotParams { workspace_id: id.clone(), snapshot_name: "fixed".into() })
        .expect("snapshot");
    assert_eq!(snap.snapshot.kind, "named");
    assert_eq!(rt.snapshot_list(&id).expect("list").count, 2);

    let creates = fake.count("create");
    let reset = rt
        .workspace_reset(WorkspaceResetParams {
            workspace_id: id.clone(),
            snapshot: "baseline".into(),
        })
        .expect("reset");
    assert_eq!(reset.workspace.reset_count, 1);
    assert!(fake.count("create") > creates, "reset rebuilt the sandbox through the fake");
    let back = rt
        .workspace_file_read(WorkspaceFileReadParams {
            workspace_id: id.clone(),
            path: "src/main.txt".into(),
            max_bytes: 100,
        })
        .expect("read after reset");
    assert_eq!(back.content, "broken\n");
    rt.workspace_reset(WorkspaceResetParams { workspace_id: id.clone(), snapshot: "fixed".into() })
        .expect("reset to the snapshot");
    let exported = tmp.path().join("exported.txt");
    rt.workspace_export(WorkspaceExportParams {
        workspace_id: id.clone(),
        path: "src/main.txt".into(),
        output_path: exported.display().to_string(),
    })
    .expect("export");
    assert_eq!(std::fs::read_to_string(&exported).expect("exported"), "fixed\n");

    let stopped = rt.workspace_stop(&id).expect("stop");
    assert_eq!(stopped.state, VmState::Stopped);
    let err = rt.workspace_exec(WorkspaceExecParams::new(&id, "true")).expect_err("stopped");
    assert!(matches!(err, PyroError::WrongState(_)), "{err}");
    assert_eq!(rt.workspace_start(&id).expect("start").state, VmState::Started);
    assert_eq!(fake.count("start"), 1);

    rt.workspace_delete(&id).expect("delete");
    assert!(fake.count("destroy") >= 1);
    assert!(matches!(rt.workspace_status(&id), Err(PyroError::UnknownWorkspace(_))));
    assert!(!tmp.path().join("state/workspaces").join(&id).exists());
}

#[test]
fn what_the_backend_cannot_do_is_refused_from_its_capabilities() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (rt, fake) = runtime(tmp.path());
    // No secrets: refused before anything is created.
    let mut p = WorkspaceCreateParams::new("debian:12");
    p.secrets = Some(vec![SecretInput {
        name: "TOKEN".into(),
        value: Some("hunter2-value".into()),
        file_path: None,
    }]);
    let err = rt.workspace_create(p).expect_err("no secrets");
    assert!(err.to_string().contains("secret"), "{err}");
    // No network.
    let mut p = WorkspaceCreateParams::new("debian:12");
    p.network_policy = NetworkPolicy::Egress;
    let err = rt.workspace_create(p).expect_err("no network");
    assert!(err.to_string().contains("network"), "{err}");
    assert_eq!(fake.count("create"), 0, "nothing was created for refused requests");

    let ws = rt.workspace_create(WorkspaceCreateParams::new("debian:12")).expect("create");
    let id = ws.workspace_id;
    // No shells, services or raw disk: refused without asking the agent.
    let requests = fake.count("op:shell_open");
    let err = rt.shell_open(ShellOpenParams::new(&id)).expect_err("no shells");
    assert!(err.to_string().contains("shells"), "{err}");
    assert_eq!(fake.count("op:shell_open"), requests);
    let err = rt.service_list(&id).expect_err("no services");
    assert!(err.to_string().contains("services"), "{err}");
    rt.workspace_stop(&id).expect("stop");
    let err = rt
        .workspace_disk_export(WorkspaceDiskExportParams {
            workspace_id: id.clone(),
            output_path: tmp.path().join("disk.img").display().to_string(),
        })
        .expect_err("no raw disk");
    assert!(err.to_string().contains("disk"), "{err}");

    // One-shot VMs run in the backend's declared working directory.
    let out = rt.vm_run(VmRunParams::new("debian:12", "pwd")).expect("vm_run over the fake");
    assert_eq!(out.exit_code, 0);
    assert!(out.stdout.trim_end().ends_with("/workspace"), "{}", out.stdout);
    rt.workspace_delete(&id).expect("delete");
}

#[test]
fn a_runtime_without_a_guest_backend_fails_closed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config =
        RuntimeConfig { state_dir: tmp.path().join("state"), cache_dir: tmp.path().join("cache") };
    let rt = Runtime::with_backends(config, Vec::<Arc<dyn Backend>>::new());
    let err = rt.workspace_create(WorkspaceCreateParams::new("debian:12")).expect_err("none");
    assert!(matches!(err, PyroError::GuestUnavailable { .. }), "{err}");
    // Environments belong to a backend: without one that keeps them, the catalog is
    // listed as not installed and nothing can be pulled.
    let listed = rt.env_list();
    assert!(!listed.is_empty() && listed.iter().all(|e| !e.installed), "{listed:?}");
    let err = rt.env_pull("debian:12", &mut |_| {}).expect_err("no store");
    assert!(matches!(err, PyroError::Unsupported { .. }), "{err}");
    assert!(rt.boot_assets().is_none());
    assert_eq!(rt.env_prune().expect("prune").count, 0);
}

/// Sees a command's output and gives up once it has seen `stop_at`.
#[derive(Default)]
struct GiveUp {
    seen: Mutex<String>,
    stderr: Mutex<String>,
    phases: Mutex<Vec<String>>,
    stop_at: &'static str,
}

impl pyro::runtime::watch::Watch for GiveUp {
    fn phase(&self, phase: &str) {
        self.phases.lock().unwrap_or_else(PoisonError::into_inner).push(phase.to_string());
    }

    fn output(&self, stream: pyro::runtime::watch::OutputStream, text: &str) {
        // The two pipes are read apart: only the order within each is kept.
        let buffer = match stream {
            pyro::runtime::watch::OutputStream::Stdout => &self.seen,
            pyro::runtime::watch::OutputStream::Stderr => &self.stderr,
        };
        buffer.lock().unwrap_or_else(PoisonError::into_inner).push_str(text);
    }

    fn cancelled(&self) -> bool {
        !self.stop_at.is_empty()
            && self.seen.lock().unwrap_or_else(PoisonError::into_inner).contains(self.stop_at)
    }

    fn wants_output(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_exec_streams_its_output_and_a_cancel_kills_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (rt, fake) = runtime(tmp.path());
    let pyro = pyro::Pyro::with_runtime(rt);
    let ws = pyro.workspace_create(WorkspaceCreateParams::new("debian:12")).await.expect("create");
    let id = ws.workspace_id;

    // Watched to its end: the same result as an unwatched exec, output seen on the way.
    let watch = Arc::new(GiveUp::default());
    let params = WorkspaceExecParams::new(&id, "echo one; echo two >&2; exit 4");
    let out = pyro::runtime::watch::scope(watch.clone(), pyro.workspace_exec(params))
        .await
        .expect("watched exec");
    assert_eq!((out.stdout.as_str(), out.stderr.as_str(), out.exit_code), ("one\n", "two\n", 4));
    assert_eq!(*watch.seen.lock().unwrap_or_else(PoisonError::into_inner), "one\n");
    assert_eq!(*watch.stderr.lock().unwrap_or_else(PoisonError::into_inner), "two\n");
    assert!(watch
        .phases
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&"running".into()));
    assert!(fake.count("op:exec_start") >= 1, "a watched exec is streamed");

    // Given up half way: killed, and the call says so.
    let marker = tmp.path().join("state/pid");
    let watch = Arc::new(GiveUp { stop_at: "ready", ..GiveUp::default() });
    let command = format!("echo $$ > {}; echo ready; exec sleep 600", marker.display());
    let err = pyro::runtime::watch::scope(
        watch.clone(),
        pyro.workspace_exec(WorkspaceExecParams::new(&id, command)),
    )
    .await
    .expect_err("cancelled");
    assert!(matches!(err, PyroError::Cancelled(_)), "{err}");
    assert!(err.to_string().contains("cancelled and killed"), "{err}");
    assert!(fake.count("op:exec_kill") >= 1);
    let pid = std::fs::read_to_string(&marker).expect("pid").trim().to_string();
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "sleep 600 (pid {pid}) was killed");
    // Not in the history; the workspace is fine.
    let logs = pyro.workspace_logs(&id).await.expect("logs");
    assert_eq!(logs.count, 1);
    pyro.workspace_delete(&id).await.expect("delete");
}

#[test]
fn published_ports_need_a_backend_that_forwards_them() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fake = Arc::new(FakeBackend { networked: true, ..FakeBackend::default() });
    let config =
        RuntimeConfig { state_dir: tmp.path().join("state"), cache_dir: tmp.path().join("cache") };
    let backend: Arc<dyn Backend> = fake.clone();
    let rt = Runtime::with_backends(config, [backend]);
    let mut p = WorkspaceCreateParams::new("debian:12");
    p.network_policy = NetworkPolicy::EgressPublishedPorts;
    let err = rt.workspace_create(p).expect_err("no forwarded ports");
    assert!(err.to_string().contains("forwards host ports"), "{err}");
    assert_eq!(fake.count("create"), 0);
    let mut p = WorkspaceCreateParams::new("debian:12");
    p.network_policy = NetworkPolicy::Egress;
    let ws = rt.workspace_create(p).expect("egress is fine on a networked backend");
    rt.workspace_delete(&ws.workspace_id).expect("delete");
}
