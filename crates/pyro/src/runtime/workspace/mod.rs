//! Persistent workspaces: create, exec, files, diff, export, snapshots, reset, delete.
//!
//! This module holds what every operation shares (finding, locking and loading a
//! workspace, its public view, channels, archive helpers); each operation family has a
//! file of its own.

mod changes;
mod create;
mod exec;
mod files;
mod lifecycle;
mod reset;
mod snapshots;
mod sync;

use super::agent::{self, b64, lossy, unexpected, QUICK};
use super::error::{PyroError, Result};
use super::state::{self, now, WorkspaceDir, WorkspaceLock, WorkspaceRecord, LAYOUT_VERSION};
use super::transfer::{self, TransferLimits};
use super::{
    change_sets, diff, fault, patch, review, secrets, seed, tree_diff, validate, volume, watch,
    Runtime,
};
use crate::backend::{
    AgentChannel, BackendKind, NetworkSpec, SandboxInfo, SandboxSpec, VolumeSpec,
};
use pyro_contract::params::*;
use pyro_contract::results::*;
use pyro_protocol::{ExecRequest, Request, Response};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

/// A workspace whose lock this thread holds, with its record read under the lock.
pub(super) struct Locked {
    /// Its paths.
    pub dir: WorkspaceDir,
    /// Its record, as read under the lock.
    pub rec: WorkspaceRecord,
    /// The lock, held while this value lives.
    pub guard: WorkspaceLock,
}

impl Locked {
    /// Write the record.
    pub fn save(&self) -> Result<()> {
        state::write_json(&self.dir.record(), &self.rec)
    }
}

impl Runtime {
    /// Where commands of a sandbox of backend `kind` run.
    pub(super) fn execution_mode(&self, kind: BackendKind) -> ExecutionMode {
        self.capabilities(kind).execution_mode
    }

    /// The sandbox spec of a workspace; its volume comes with the paths known to differ
    /// from the baseline, if known (see [`crate::runtime::change_sets`]).
    fn spec_knowing(
        &self,
        dir: &WorkspaceDir,
        rec: &WorkspaceRecord,
        known_changes: Option<Vec<String>>,
    ) -> SandboxSpec {
        SandboxSpec {
            dir: dir.sandbox(),
            environment: rec.environment.clone(),
            vcpu_count: rec.vcpu_count,
            mem_mib: rec.mem_mib,
            network: NetworkSpec {
                enabled: rec.network_policy != NetworkPolicy::Off,
                published_ports: Vec::new(),
            },
            volume: rec.volume.as_ref().map(|v| VolumeSpec { known_changes, ..v.spec(dir) }),
            volume_ready: None,
        }
    }

    /// Read a workspace's record without its lock (readers see whole records: they are
    /// replaced by rename). A workspace past its TTL, or left half-made by a create that
    /// died, is removed under its lock ([`Runtime::lock_workspace`]) and reported as
    /// expired or unknown; one whose create is still running is `WrongState`.
    pub(super) fn load(&self, id: &str) -> Result<(WorkspaceDir, WorkspaceRecord)> {
        let dir = self.workspace_dir(id)?;
        let rec: WorkspaceRecord = state::read_json(&dir.record())?;
        if rec.creating.is_some() || rec.expires_at <= now() {
            let locked = self.lock_workspace(id)?;
            return Ok((locked.dir, locked.rec));
        }
        Ok((dir, rec))
    }

    fn workspace_dir(&self, id: &str) -> Result<WorkspaceDir> {
        if !state::is_valid_id(id) {
            return Err(PyroError::UnknownWorkspace(id.to_string()));
        }
        let dir = WorkspaceDir::new(&self.config.state_dir, id);
        if !dir.record().exists() {
            return Err(PyroError::UnknownWorkspace(id.to_string()));
        }
        Ok(dir)
    }

    /// The one way to change a workspace: take its lock, read its record under the lock,
    /// and enforce under the lock what `load` only reads: the TTL (an expired workspace
    /// is deleted here and reported expired) and half-made creates (removed, reported
    /// unknown). Save with [`Locked::save`]; the lock ends when the value drops.
    pub(super) fn lock_workspace(&self, id: &str) -> Result<Locked> {
        let dir = self.workspace_dir(id)?;
        let lock = match WorkspaceLock::try_acquire(&dir.lock())? {
            Some(lock) => lock,
            None => {
                // Someone holds it: a create still running is an answer of its own.
                if let Ok(rec) = state::read_json::<WorkspaceRecord>(&dir.record()) {
                    if rec.creating.is_some() {
                        return Err(PyroError::WrongState(format!(
                            "workspace {id} is still being created; try again when its create returns"
                        )));
                    }
                }
                WorkspaceLock::acquire(&dir.lock())?
            }
        };
        if !dir.record().exists() {
            return Err(PyroError::UnknownWorkspace(id.to_string()));
        }
        let rec: WorkspaceRecord = state::read_json(&dir.record())?;
        if let Some(mark) = &rec.creating {
            if mark.pid != std::process::id() {
                // We hold the lock the creator held all along: it died half way.
                tracing::warn!(
                    workspace = id,
                    creator = mark.pid,
                    "removing a half-made workspace"
                );
                self.remove_workspace(&dir, &rec)?;
                return Err(PyroError::UnknownWorkspace(id.to_string()));
            }
        }
        if rec.expires_at <= now() {
            self.remove_workspace(&dir, &rec)?;
            return Err(PyroError::WorkspaceExpired(id.to_string()));
        }
        Ok(Locked { dir, rec, guard: lock })
    }

    pub(super) fn is_running(&self, dir: &WorkspaceDir, rec: &WorkspaceRecord) -> bool {
        rec.desired_running && self.backend(rec.backend).is_running(&dir.sandbox())
    }

    /// Fail unless the workspace runs; explain how to fix it.
    pub(super) fn require_started(
        &self,
        dir: &WorkspaceDir,
        rec: &WorkspaceRecord,
        op: &str,
    ) -> Result<()> {
        if self.is_running(dir, rec) {
            return Ok(());
        }
        let id = &rec.workspace_id;
        let why = if rec.desired_running { " (its VM is no longer running)" } else { "" };
        Err(PyroError::WrongState(format!(
            "workspace {id} must be in 'started' state before {op}{why}; run `pyro workspace start {id}`"
        )))
    }

    pub(super) fn channel(
        &self,
        dir: &WorkspaceDir,
        rec: &WorkspaceRecord,
    ) -> Result<Box<dyn AgentChannel>> {
        let backend = self.backend(rec.backend);
        let inner = self.channels.connect(backend.as_ref(), &dir.sandbox())?;
        Ok(Box::new(agent::HealthWatch::new(inner, dir.agent_health())))
    }

    fn to_public(&self, dir: &WorkspaceDir, rec: &WorkspaceRecord) -> Workspace {
        let running = self.is_running(dir, rec);
        let services = self.service_counts(dir, rec);
        let backend = self.backend(rec.backend);
        let mut metadata = rec.metadata.clone();
        let last_error = if rec.desired_running && !running {
            let reason = backend.exit_reason(&dir.sandbox());
            if let Some(reason) = &reason {
                metadata.insert("stopped_reason".into(), reason.clone());
            }
            Some(rec.last_error.clone().unwrap_or_else(|| match reason {
                Some(reason) => {
                    format!("the workspace VM is no longer running: {reason}; start it again")
                }
                None => "the workspace VM is no longer running (it crashed or was killed); start it again"
                    .to_string(),
            }))
        } else {
            rec.last_error.clone()
        };
        if running {
            metadata.extend(backend.confinement(&dir.sandbox()));
        }
        metadata.insert("backend".into(), rec.backend.name().into());
        let unhealthy = running.then(|| agent::unhealthy_reason(&dir.agent_health())).flatten();
        let last_error = match unhealthy {
            Some(reason) => {
                metadata.insert("agent_health".into(), "unhealthy".into());
                Some(format!("the guest agent is unhealthy: {reason}"))
            }
            None => {
                if running {
                    metadata.insert("agent_health".into(), "ok".into());
                }
                last_error
            }
        };
        Workspace {
            workspace_id: rec.workspace_id.clone(),
            name: rec.name.clone(),
            labels: rec.labels.clone(),
            environment: rec.environment.clone(),
            environment_version: rec.environment_version.clone(),
            vcpu_count: rec.vcpu_count,
            mem_mib: rec.mem_mib,
            ttl_seconds: rec.ttl_seconds,
            created_at: rec.created_at,
            last_activity_at: rec.last_activity_at,
            expires_at: rec.expires_at,
            state: if running { VmState::Started } else { VmState::Stopped },
            network_policy: rec.network_policy,
            network_enabled: rec.network_policy != NetworkPolicy::Off,
            allow_host_compat: rec.allow_host_compat,
            guest_ip: rec.guest_ip.clone(),
            execution_mode: self.execution_mode(rec.backend),
            accel: rec.accel,
            workspace_path: WORKSPACE_PATH.into(),
            workspace_seed: rec.workspace_seed.clone(),
            secrets: rec.secrets.clone(),
            command_count: rec.command_count,
            last_command: rec.last_command.clone(),
            reset_count: rec.reset_count,
            last_reset_at: rec.last_reset_at,
            service_count: services.0,
            running_service_count: services.1,
            last_error,
            metadata,
        }
    }

    fn apply_info(rec: &mut WorkspaceRecord, info: SandboxInfo) {
        rec.accel = info.accel;
        rec.environment_version = info.environment_version.or(rec.environment_version.take());
        rec.guest_ip = info.guest_ip;
        rec.metadata = info.metadata;
        rec.metadata.insert("accel_reason".into(), info.accel_reason);
        if let Some(k) = info.guest_kernel {
            rec.metadata.insert("guest_kernel".into(), k);
        }
        rec.last_error = None;
    }

    pub(super) fn save(dir: &WorkspaceDir, rec: &WorkspaceRecord) -> Result<()> {
        state::write_json(&dir.record(), rec)
    }

    fn remove_workspace(&self, dir: &WorkspaceDir, rec: &WorkspaceRecord) -> Result<()> {
        let backend = self.backend(rec.backend);
        self.channels.forget(&dir.sandbox());
        if dir.sandbox().exists() {
            backend.destroy(&dir.sandbox())?;
        }
        fault::point("delete.destroyed");
        fs::remove_dir_all(&dir.root)
            .map_err(|e| PyroError::io("could not remove workspace directory", &dir.root, e))
    }

    /// Delete every expired workspace; returns their ids.
    pub(crate) fn reap_expired_workspaces(&self) -> Vec<String> {
        let root = self.config.state_dir.join("workspaces");
        let mut reaped = Vec::new();
        for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Err(PyroError::WorkspaceExpired(_)) = self.load(&id) {
                reaped.push(id);
            }
        }
        reaped
    }

    /// Export guest `path` into a new file at `target` (atomically: a temporary file
    /// beside it, renamed into place once the whole stream has arrived).
    fn export_to_path(
        channel: &mut dyn AgentChannel,
        path: &str,
        target: &Path,
    ) -> Result<transfer::Exported> {
        let parent = target.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(parent)
            .map_err(|e| PyroError::io("could not create a spool file in", parent, e))?;
        let exported =
            transfer::export_into(channel, path, tmp.as_file_mut(), &TransferLimits::from_env())?;
        tmp.as_file().sync_all().map_err(|e| PyroError::io("could not write", target, e))?;
        tmp.persist(target).map_err(|e| PyroError::io("could not write", target, e.error))?;
        Ok(exported)
    }

    /// Export guest `path` into an unlinked temporary file in `spool_dir`.
    fn export_to_spool(
        channel: &mut dyn AgentChannel,
        path: &str,
        spool_dir: &Path,
    ) -> Result<(File, transfer::Exported)> {
        let mut file = tempfile::tempfile_in(spool_dir)
            .map_err(|e| PyroError::io("could not create a spool file in", spool_dir, e))?;
        let exported =
            transfer::export_into(channel, path, &mut file, &TransferLimits::from_env())?;
        Ok((file, exported))
    }

    fn import_tar(
        channel: &mut dyn AgentChannel,
        dest: &str,
        archive: &mut File,
        replace: bool,
    ) -> Result<pyro_protocol::ArchiveStats> {
        transfer::import_from(channel, dest, archive, replace, &TransferLimits::from_env())
    }

    /// Operations of `workspace-full` that this build does not implement yet.
    pub fn not_yet(&self, workspace_id: &str, operation: &str) -> Result<serde_json::Value> {
        let (_, rec) = self.load(workspace_id)?;
        Err(PyroError::Unsupported {
            backend: rec.backend.name().into(),
            operation: operation.into(),
            hint: "; this feature is planned but not implemented in this pyro build".into(),
        })
    }
}

pub(crate) fn convert_type(t: pyro_protocol::ArtifactType) -> ArtifactType {
    match t {
        pyro_protocol::ArtifactType::File => ArtifactType::File,
        pyro_protocol::ArtifactType::Directory => ArtifactType::Directory,
        pyro_protocol::ArtifactType::Symlink => ArtifactType::Symlink,
    }
}

fn convert_entry(e: pyro_protocol::FileEntry) -> FileEntry {
    FileEntry {
        path: e.path,
        artifact_type: convert_type(e.artifact_type),
        size_bytes: e.size_bytes,
        link_target: e.link_target,
    }
}
