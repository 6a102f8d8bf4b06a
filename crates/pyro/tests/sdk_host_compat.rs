//! The SDK end to end on the explicit host-compat backend: the workspace flow, state
//! shared between two `Pyro` instances (two processes in real life), and bad input that
//! must fail clearly and leave the workspace unchanged.

use pyro::params::*;
use pyro::results::{ExecutionMode, VmState};
use pyro::{Pyro, PyroError, RuntimeConfig};
use std::path::Path;

fn pyro(state: &Path) -> Pyro {
    // Turn the guest backend off for this test binary; host execution still needs the
    // explicit allow_host_compat opt-in below.
    std::env::set_var("PYRO_BACKEND", "host_compat");
    Pyro::with_config(RuntimeConfig {
        state_dir: state.to_path_buf(),
        cache_dir: state.join("cache"),
    })
}

fn create_params() -> WorkspaceCreateParams {
    let mut p = WorkspaceCreateParams::new("debian:12");
    p.allow_host_compat = true;
    p
}

#[tokio::test]
async fn fails_closed_without_the_opt_in() {
    let state = tempfile::tempdir().expect("tempdir");
    let pyro = pyro(state.path());
    let err = pyro
        .workspace_create(WorkspaceCreateParams::new("debian:12"))
        .await
        .expect_err("must refuse");
    assert!(matches!(err, PyroError::GuestUnavailable { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("pyro doctor") && text.contains("allow_host_compat"), "{text}");
    let err = pyro.vm_run(VmRunParams::new("debian:12", "true")).await.expect_err("must refuse");
    assert!(matches!(err, PyroError::GuestUnavailable { .. }), "{err}");
    assert_eq!(pyro.workspace_list().await.expect("list").count, 0);
}

#[tokio::test]
async fn workspace_flow_and_persistence_across_instances() {
    let state = tempfile::tempdir().expect("tempdir");
    let seed = tempfile::tempdir().expect("seed");
    std::fs::create_dir(seed.path().join("src")).expect("mkdir");
    std::fs::write(seed.path().join("src/main.txt"), "broken\n").expect("seed file");
    let pyro = pyro(state.path());
    let mut p = create_params();
    p.seed_path = Some(seed.path().display().to_string());
    p.name = Some("flow".into());
    let ws = pyro.workspace_create(p).await.expect("create");
    assert_eq!(ws.execution_mode, ExecutionMode::HostCompat);
    assert_eq!(ws.state, VmState::Started);
    assert_eq!(ws.workspace_seed.mode, "directory");
    assert_eq!(ws.workspace_seed.bytes_written, 7);
    let id = ws.workspace_id.clone();

    // A second instance (like a second CLI process) sees and uses the same workspace.
    let other = Pyro::with_config(pyro.runtime().config().clone());
    let status = other.workspace_status(&id).await.expect("status from another instance");
    assert_eq!(status.name.as_deref(), Some("flow"));

    let patch = "--- a/src/main.txt\n+++ b/src/main.txt\n@@ -1 +1 @@\n-broken\n+fixed\n";
    let applied = other
        .workspace_patch_apply(WorkspacePatchApplyParams {
            workspace_id: id.clone(),
            patch: patch.into(),
        })
        .await
        .expect("patch");
    assert!(applied.changed);
    assert_eq!(applied.entries[0].path, "/workspace/src/main.txt");
    let out =
        pyro.workspace_exec(WorkspaceExecParams::new(&id, "cat src/main.txt")).await.expect("exec");
    assert_eq!(out.stdout, "fixed\n");
    assert_eq!(out.sequence, 1);
    let timed = pyro
        .workspace_exec(WorkspaceExecParams {
            timeout_seconds: 1,
            ..WorkspaceExecParams::new(&id, "sleep 5")
        })
        .await
        .expect("exec with timeout");
    assert_eq!(timed.exit_code, 124);
    assert!(timed.stderr.contains("timed out after 1s"), "{}", timed.stderr);

    let logs = pyro.workspace_logs(&id).await.expect("logs");
    assert_eq!(logs.count, 2);
    assert_eq!(logs.entries[0].stdout, "fixed\n");

    let diff = pyro.workspace_diff(&id).await.expect("diff");
    assert_eq!(diff.summary.modified, 1);
    assert!(diff.patch.contains("-broken\n+fixed"), "{}", diff.patch);

    let snap = pyro
        .snapshot_create(SnapshotParams { workspace_id: id.clone(), snapshot_name: "fixed".into() })
        .await
        .expect("snapshot");
    assert_eq!(snap.snapshot.kind, "named");
    pyro.workspace_reset(WorkspaceResetParams {
        workspace_id: id.clone(),
        snapshot: "baseline".into(),
    })
    .await
    .expect("reset");
    let back = pyro
        .workspace_file_read(WorkspaceFileReadParams {
            workspace_id: id.clone(),
            path: "src/main.txt".into(),
            max_bytes: 100,
        })
        .await
        .expect("read");
    assert_eq!(back.content, "broken\n");
    let reset = pyro
        .workspace_reset(WorkspaceResetParams {
            workspace_id: id.clone(),
            snapshot: "fixed".into(),
        })
        .await
        .expect("reset to snapshot");
    assert_eq!(reset.workspace.reset_count, 2);
    assert_eq!(reset.workspace.command_count, 0);
    let back = pyro
        .workspace_file_read(WorkspaceFileReadParams {
            workspace_id: id.clone(),
            path: "src/main.txt".into(),
            max_bytes: 100,
        })
        .await
        .expect("read");
    assert_eq!(back.content, "fixed\n");

    pyro.workspace_delete(&id).await.expect("delete");
    let err = other.workspace_status(&id).await.expect_err("gone");
    assert!(matches!(err, PyroError::UnknownWorkspace(_)), "{err}");
    assert!(!state.path().join("workspaces").join(&id).exists());
}

#[tokio::test]
async fn path_escapes_and_oversized_payloads_are_refused_and_change_nothing() {
    let state = tempfile::tempdir().expect("tempdir");
    let pyro = pyro(state.path());
    let id = pyro.workspace_create(create_params()).await.expect("create").workspace_id;
    pyro.workspace_exec(WorkspaceExecParams::new(
        &id,
        "ln -s / rootlink && ln -s /etc/passwd pw && mkdir d",
    ))
    .await
    .expect("make symlinks");
    let before = pyro.workspace_diff(&id).await.expect("diff");

    for path in ["../outside.txt", "/etc/pyro-test", "rootlink/tmp/pyro-escape", "pw", "d/../../x"]
    {
        let err = pyro
            .workspace_file_write(WorkspaceFileWriteParams {
                workspace_id: id.clone(),
                path: path.into(),
                text: "x".into(),
            })
            .await
            .expect_err(path);
        let text = err.to_string();
        assert!(text.contains("/workspace"), "{path}: {text}");
    }
    assert!(!Path::new("/tmp/pyro-escape").exists());
    for path in ["pw", "rootlink/etc/hostname", "../../etc/passwd"] {
        let err = pyro
            .workspace_file_read(WorkspaceFileReadParams {
                workspace_id: id.clone(),
                path: path.into(),
                max_bytes: 10,
            })
            .await
            .expect_err(path);
        assert!(!err.to_string().contains("root:"), "leaked content: {err}");
    }
    let big = "x".repeat(1024 * 1024 + 1);
    let err = pyro
        .workspace_file_write(WorkspaceFileWriteParams {
            workspace_id: id.clone(),
            path: "big.txt".into(),
            text: big,
        })
        .await
        .expect_err("oversized");
    assert!(err.to_string().contains("1 MiB"), "{err}");
    let out = tempfile::tempdir().expect("out");
    let err = pyro
        .workspace_export(WorkspaceExportParams {
            workspace_id: id.clone(),
            path: "rootlink/etc".into(),
            output_path: out.path().join("x").display().to_string(),
        })
        .await
        .expect_err("export through symlink");
    assert!(err.to_string().contains("symlink"), "{err}");

    let after = pyro.workspace_diff(&id).await.expect("diff");
    assert_eq!(before, after, "a refused operation changed the workspace");
    let err = pyro.workspace_status("ffffffffffff").await.expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "workspace 'ffffffffffff' does not exist; run `pyro workspace list` to see the workspaces"
    );
}

#[tokio::test]
async fn tar_slip_seed_is_rejected_and_leaves_no_workspace() {
    let state = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tmp");
    let archive = dir.path().join("evil.tar");
    {
        let mut builder = tar::Builder::new(std::fs::File::create(&archive).expect("create"));
        let mut header = tar::Header::new_gnu();
        let data = b"pwned";
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        // `append_data` refuses `..`, so write the raw name the way a hostile archive would.
        let name = b"../../evil.txt";
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_cksum();
        builder.append(&header, &data[..]).expect("append");
        builder.finish().expect("finish");
    }
    let pyro = pyro(state.path());
    let mut p = create_params();
    p.seed_path = Some(archive.display().to_string());
    let err = pyro.workspace_create(p).await.expect_err("tar slip");
    assert!(err.to_string().contains("unsafe or invalid archive"), "{err}");
    assert_eq!(pyro.workspace_list().await.expect("list").count, 0);
    assert!(!state.path().join("evil.txt").exists());
}

#[tokio::test]
async fn expired_workspaces_are_deleted_on_touch_and_by_the_reaper() {
    let state = tempfile::tempdir().expect("tempdir");
    let pyro = pyro(state.path());
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(pyro.workspace_create(create_params()).await.expect("create").workspace_id);
    }
    // Age both records past their TTL, as if ten minutes had gone by.
    for id in &ids {
        let path = state.path().join("workspaces").join(id).join("workspace.json");
        let mut record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        record["expires_at"] = serde_json::json!(1.0);
        std::fs::write(&path, serde_json::to_vec(&record).expect("encode")).expect("write");
    }
    let err = pyro.workspace_status(&ids[0]).await.expect_err("expired");
    assert_eq!(
        err.to_string(),
        format!("workspace '{}' expired and was automatically deleted", ids[0])
    );
    assert!(!state.path().join("workspaces").join(&ids[0]).exists());
    assert_eq!(pyro.runtime().reap_expired(), 1);
    assert!(!state.path().join("workspaces").join(&ids[1]).exists());
    assert_eq!(pyro.workspace_list().await.expect("list").count, 0);
}
