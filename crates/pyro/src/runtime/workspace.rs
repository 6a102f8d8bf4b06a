//! Persistent workspaces: create, exec, files, diff, export, snapshots, reset, delete.

use super::agent::{self, b64, lossy, unexpected, QUICK};
use super::error::{PyroError, Result};
use super::state::{self, now, WorkspaceDir, WorkspaceLock, WorkspaceRecord, LAYOUT_VERSION};
use super::transfer::{self, TransferLimits};
use super::{
    diff, fault, patch, review, secrets, seed, tree_diff, validate, volume, watch, Runtime,
};
use crate::backend::{AgentChannel, BackendKind, NetworkSpec, SandboxInfo, SandboxSpec};
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

    fn spec(&self, dir: &WorkspaceDir, rec: &WorkspaceRecord) -> SandboxSpec {
        SandboxSpec {
            dir: dir.sandbox(),
            environment: rec.environment.clone(),
            vcpu_count: rec.vcpu_count,
            mem_mib: rec.mem_mib,
            network: NetworkSpec {
                enabled: rec.network_policy != NetworkPolicy::Off,
                published_ports: Vec::new(),
            },
            volume: rec.volume.as_ref().map(|v| v.spec(dir)),
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

    /// Create and start a workspace.
    pub fn workspace_create(&self, p: WorkspaceCreateParams) -> Result<Workspace> {
        let seed = p.seed_path.as_deref().map(seed::prepare).transpose()?;
        self.workspace_create_seeded(p, seed)
    }

    /// Create and start a workspace seeded from an already packed `seed` (a project
    /// source); `p.seed_path` is ignored.
    pub fn workspace_create_seeded(
        &self,
        p: WorkspaceCreateParams,
        mut seed: Option<seed::Seed>,
    ) -> Result<Workspace> {
        validate::sizing(p.vcpu_count, p.mem_mib, p.ttl_seconds)?;
        let name = p.name.as_deref().map(validate::workspace_name).transpose()?;
        let labels = p.labels.clone().unwrap_or_default();
        validate::labels(&labels)?;
        super::environments::EnvironmentCatalog::require_known(&p.environment)?;
        let prepared_secrets = secrets::prepare(p.secrets.as_deref().unwrap_or_default())?;
        self.reap_expired_workspaces();
        let backend_kind = self.choose_backend(p.allow_host_compat)?;
        let caps = self.capabilities(backend_kind);
        secrets::refuse_without_guest(&prepared_secrets, caps)?;
        if !caps.network && p.network_policy != NetworkPolicy::Off {
            return Err(PyroError::InvalidArgument(
                "workspace network_policy requires guest networking and is unavailable for this workspace: \
                 it would run in host_compat mode on the host, without a guest network"
                    .into(),
            ));
        }
        let id = state::new_id();
        let dir = WorkspaceDir::new(&self.config.state_dir, &id);
        fs::create_dir_all(dir.sandbox())
            .map_err(|e| PyroError::io("could not create workspace directory", &dir.root, e))?;
        let created = now();
        let mut rec = WorkspaceRecord {
            layout_version: LAYOUT_VERSION,
            workspace_id: id.clone(),
            name,
            labels,
            environment: p.environment.clone(),
            environment_version: None,
            vcpu_count: p.vcpu_count,
            mem_mib: p.mem_mib,
            ttl_seconds: p.ttl_seconds,
            created_at: created,
            last_activity_at: created,
            expires_at: created + p.ttl_seconds as f64,
            desired_running: true,
            network_policy: p.network_policy,
            allow_host_compat: p.allow_host_compat,
            backend: backend_kind,
            accel: Accel::None,
            guest_ip: None,
            workspace_seed: WorkspaceSeed {
                mode: "empty".into(),
                seed_path: None,
                destination: WORKSPACE_PATH.into(),
                entry_count: 0,
                bytes_written: 0,
                origin_kind: "none".into(),
                origin_ref: None,
            },
            secrets: Vec::new(),
            command_count: 0,
            next_sequence: 1,
            last_command: None,
            reset_count: 0,
            last_reset_at: None,
            last_error: None,
            metadata: BTreeMap::new(),
            volume: None,
            creating: Some(state::CreatingMark::here()),
        };
        // The record comes first, marked creating, and the lock is held until the
        // workspace is whole: a create killed at any later step leaves a record that
        // every reader recognises as half-made (state.rs, "Crash safety").
        let _creating = WorkspaceLock::acquire(&dir.lock())?;
        Self::save(&dir, &rec)?;
        fault::point("create.recorded");
        let result = (|| -> Result<()> {
            rec.secrets = secrets::store(&dir, &prepared_secrets)?;
            let backend = self.backend(backend_kind);
            // QEMU: `/workspace` is a volume whose bottom layer is the seed, made on the
            // host; it is the baseline. host_compat: a directory, seeded over the channel.
            let on_volume = caps.volumes;
            if on_volume {
                watch::phase("seeding");
                let (vol, stats) = volume::create(&self.config.cache_dir, &dir, seed.as_mut())?;
                if let (Some(seed), Some(stats)) = (&seed, stats) {
                    rec.workspace_seed = Self::seed_info(seed, &stats);
                }
                rec.volume = Some(vol);
                Self::save(&dir, &rec)?;
                fault::point("create.volume");
            }
            watch::phase("booting");
            let info = backend.create(&self.spec(&dir, &rec))?;
            watch::booted(&info);
            let _ = fs::remove_file(dir.agent_health());
            fault::point("create.booted");
            Self::apply_info(&mut rec, info);
            let mut ch = backend.connect(&dir.sandbox())?;
            self.install_secrets(&dir, &rec, ch.as_mut())?;
            if on_volume {
                fault::point("create.seeded");
                rec.creating = None;
                return Self::save(&dir, &rec);
            }
            if let Some(seed) = &mut seed {
                watch::phase("seeding");
                let stats = Self::import_tar(ch.as_mut(), WORKSPACE_PATH, &mut seed.tar, false)?;
                rec.workspace_seed = Self::seed_info(seed, &stats);
            }
            fault::point("create.seeded");
            watch::phase("baseline");
            Self::export_to_path(ch.as_mut(), WORKSPACE_PATH, &dir.baseline())?;
            rec.creating = None;
            Self::save(&dir, &rec)
        })();
        if let Err(err) = result {
            let _ = self.remove_workspace(&dir, &rec);
            return Err(err);
        }
        Ok(self.to_public(&dir, &rec))
    }

    fn seed_info(seed: &seed::Seed, stats: &pyro_protocol::ArchiveStats) -> WorkspaceSeed {
        WorkspaceSeed {
            mode: seed.mode.into(),
            seed_path: Some(seed.source.display().to_string()),
            destination: WORKSPACE_PATH.into(),
            entry_count: stats.entry_count,
            bytes_written: stats.bytes_written,
            origin_kind: seed.origin_kind.into(),
            origin_ref: seed.origin_ref.clone(),
        }
    }

    /// List workspaces, most recently active first (expired ones are reaped first).
    pub fn workspace_list(&self) -> Result<WorkspaceList> {
        self.reap_expired_workspaces();
        let root = self.config.state_dir.join("workspaces");
        let mut rows = Vec::new();
        for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let Ok((dir, rec)) = self.load(&id) else { continue };
            let ws = self.to_public(&dir, &rec);
            rows.push(WorkspaceRow {
                workspace_id: ws.workspace_id,
                name: ws.name,
                labels: ws.labels,
                environment: ws.environment,
                state: ws.state,
                created_at: ws.created_at,
                last_activity_at: ws.last_activity_at,
                expires_at: ws.expires_at,
                command_count: ws.command_count,
                service_count: ws.service_count,
                running_service_count: ws.running_service_count,
            });
        }
        rows.sort_by(|a, b| {
            b.last_activity_at
                .total_cmp(&a.last_activity_at)
                .then(b.created_at.total_cmp(&a.created_at))
                .then(a.workspace_id.cmp(&b.workspace_id))
        });
        Ok(WorkspaceList { count: rows.len() as u64, workspaces: rows })
    }

    /// Show one workspace.
    pub fn workspace_status(&self, workspace_id: &str) -> Result<Workspace> {
        let (dir, rec) = self.load(workspace_id)?;
        Ok(self.to_public(&dir, &rec))
    }

    /// Change name and labels.
    pub fn workspace_update(&self, p: WorkspaceUpdateParams) -> Result<Workspace> {
        if p.name.is_some() && p.clear_name {
            return Err(PyroError::invalid("use either name or clear_name, not both"));
        }
        let new_name = p.name.as_deref().map(validate::workspace_name).transpose()?;
        if let Some(labels) = &p.labels {
            validate::labels(labels)?;
        }
        let Locked { dir, mut rec, guard: _lock } = self.lock_workspace(&p.workspace_id)?;
        let before = (rec.name.clone(), rec.labels.clone());
        if let Some(n) = new_name {
            rec.name = Some(n);
        }
        if p.clear_name {
            rec.name = None;
        }
        for (k, v) in p.labels.unwrap_or_default() {
            rec.labels.insert(k, v);
        }
        for k in p.clear_labels.unwrap_or_default() {
            rec.labels.remove(&k);
        }
        if (rec.name.clone(), rec.labels.clone()) == before {
            return Err(PyroError::invalid(
                "workspace update requested no effective metadata change",
            ));
        }
        rec.last_activity_at = now();
        Self::save(&dir, &rec)?;
        Ok(self.to_public(&dir, &rec))
    }

    /// Run a command in `/workspace`.
    pub fn workspace_exec(&self, p: WorkspaceExecParams) -> Result<WorkspaceExecResult> {
        validate::command(&p.command)?;
        validate::timeout(p.timeout_seconds)?;
        let (dir, rec) = self.load(&p.workspace_id)?;
        let secret_map = p.secret_env.clone().unwrap_or_default();
        let env = self.secret_env(&dir, &rec, &secret_map)?;
        self.require_started(&dir, &rec, "workspace_exec")?;
        let redactor = self.redactor(&dir);
        let sequence = {
            let Locked { mut rec, guard: _lock, .. } = self.lock_workspace(&p.workspace_id)?;
            let seq = rec.next_sequence;
            rec.next_sequence += 1;
            Self::save(&dir, &rec)?;
            seq
        };
        let mut ch = self.channel(&dir, &rec)?;
        if !secret_map.is_empty() {
            self.install_secrets(&dir, &rec, ch.as_mut())?;
        }
        let request = ExecRequest {
            command: p.command.clone(),
            cwd: WORKSPACE_PATH.into(),
            env,
            timeout_ms: p.timeout_seconds.saturating_mul(1000),
            max_output_bytes: validate::MAX_OUTPUT_BYTES,
        };
        let watch = super::watch::current();
        let out = match super::exec_stream::run(
            ch.as_mut(),
            request,
            p.timeout_seconds,
            &redactor,
            watch.as_deref(),
        ) {
            Ok(Response::Exec(out)) => out,
            Ok(Response::Error { kind, message }) => {
                return Err(PyroError::guest(kind, redactor.redact(&message)))
            }
            Ok(other) => return Err(redactor.redact_error(unexpected("exec", &other))),
            Err(err) => {
                drop(ch);
                let err = redactor.redact_error(err);
                self.note_error(&dir, &p.workspace_id, &err.to_string());
                return Err(err);
            }
        };
        drop(ch);
        let clean = |b64: &str| -> Result<String> {
            let text = lossy(&agent::note_health(
                &dir.agent_health(),
                agent::exec_output(b64, validate::MAX_OUTPUT_BYTES),
            )?);
            Ok(if out.truncated {
                redactor.redact_truncated(&text)
            } else {
                redactor.redact(&text)
            })
        };
        let stdout = clean(&out.stdout_b64)?;
        let mut stderr = clean(&out.stderr_b64)?;
        agent::note_timeout(&mut stderr, out.timed_out, p.timeout_seconds);
        let mode = self.execution_mode(rec.backend);
        let Locked { mut rec, guard: _lock, .. } = self.lock_workspace(&p.workspace_id)?;
        let logged_command = redactor.redact(&p.command);
        let last = LastCommand {
            sequence,
            command: logged_command.clone(),
            cwd: WORKSPACE_PATH.into(),
            exit_code: out.exit_code,
            duration_ms: out.duration_ms,
            execution_mode: mode,
        };
        let entry = CommandLogEntry {
            sequence,
            command: logged_command,
            cwd: WORKSPACE_PATH.into(),
            exit_code: out.exit_code,
            duration_ms: out.duration_ms,
            execution_mode: mode,
            recorded_at: now(),
            stdout: stdout.clone(),
            stderr: stderr.clone(),
        };
        fs::create_dir_all(dir.commands())
            .map_err(|e| PyroError::io("could not create history directory", dir.commands(), e))?;
        state::write_json(&dir.commands().join(format!("{sequence:06}.json")), &entry)?;
        rec.command_count += 1;
        if rec.last_command.as_ref().is_none_or(|l| l.sequence < sequence) {
            rec.last_command = Some(last);
        }
        rec.last_activity_at = now();
        Self::save(&dir, &rec)?;
        Ok(WorkspaceExecResult {
            workspace_id: rec.workspace_id.clone(),
            environment: rec.environment.clone(),
            environment_version: rec.environment_version.clone(),
            command: p.command,
            stdout,
            stderr,
            exit_code: out.exit_code,
            duration_ms: out.duration_ms,
            truncated: out.truncated,
            execution_mode: mode,
            accel: rec.accel,
            sequence,
            cwd: WORKSPACE_PATH.into(),
        })
    }

    fn note_error(&self, dir: &WorkspaceDir, id: &str, message: &str) {
        let _ = dir;
        if let Ok(mut locked) = self.lock_workspace(id) {
            locked.rec.last_error = Some(message.to_string());
            let _ = locked.save();
        }
    }

    /// The exec history.
    pub fn workspace_logs(&self, workspace_id: &str) -> Result<WorkspaceLogs> {
        let (dir, _) = self.load(workspace_id)?;
        let mut files: Vec<PathBuf> = fs::read_dir(dir.commands())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        let mut entries = Vec::new();
        for f in files {
            entries.push(state::read_json::<CommandLogEntry>(&f)?);
        }
        Ok(WorkspaceLogs {
            workspace_id: workspace_id.into(),
            count: entries.len() as u64,
            entries,
        })
    }

    /// Stop the VM, keeping its disk.
    pub fn workspace_stop(&self, workspace_id: &str) -> Result<Workspace> {
        let Locked { dir, mut rec, guard: _lock } = self.lock_workspace(workspace_id)?;
        self.stop_all_services(&dir, &rec);
        self.close_all_shells(&dir, &rec);
        fault::point("stop.services");
        self.channels.forget(&dir.sandbox());
        self.backend(rec.backend).stop(&dir.sandbox())?;
        fault::point("stop.stopped");
        rec.desired_running = false;
        rec.last_error = None;
        rec.last_activity_at = now();
        Self::save(&dir, &rec)?;
        Ok(self.to_public(&dir, &rec))
    }

    /// Start a stopped workspace (also one whose VM died).
    pub fn workspace_start(&self, workspace_id: &str) -> Result<Workspace> {
        let Locked { dir, mut rec, guard: _lock } = self.lock_workspace(workspace_id)?;
        let backend = self.backend(rec.backend);
        if !backend.is_running(&dir.sandbox()) {
            Self::forget_shells(&dir);
            self.channels.forget(&dir.sandbox());
            watch::phase("booting");
            let info = backend.start(&self.spec(&dir, &rec))?;
            watch::booted(&info);
            let _ = fs::remove_file(dir.agent_health());
            fault::point("start.booted");
            Self::apply_info(&mut rec, info);
        }
        if !rec.secrets.is_empty() {
            let mut ch = backend.connect(&dir.sandbox())?;
            self.install_secrets(&dir, &rec, ch.as_mut())?;
        }
        rec.desired_running = true;
        rec.last_error = None;
        rec.last_activity_at = now();
        Self::save(&dir, &rec)?;
        Ok(self.to_public(&dir, &rec))
    }

    /// Delete a workspace and everything it stored.
    pub fn workspace_delete(&self, workspace_id: &str) -> Result<WorkspaceDeleteResult> {
        let Locked { dir, rec, guard: lock } = self.lock_workspace(workspace_id)?;
        self.remove_workspace(&dir, &rec)?;
        drop(lock);
        Ok(WorkspaceDeleteResult {
            workspace_id: workspace_id.into(),
            deleted: true,
            reason: "explicit_delete".into(),
        })
    }

    /// List files.
    pub fn workspace_file_list(&self, p: WorkspaceFileListParams) -> Result<FileListResult> {
        let path = validate::workspace_path(&p.path, true)?;
        let (dir, rec) = self.load(&p.workspace_id)?;
        self.require_started(&dir, &rec, "workspace_file_list")?;
        let mut ch = self.channel(&dir, &rec)?;
        let request = Request::ListFiles { path: path.clone(), recursive: p.recursive };
        let entries = match agent::call(ch.as_mut(), request, QUICK)? {
            Response::Files { entries } => {
                agent::note_health(&dir.agent_health(), agent::check_listing(&path, &entries))?;
                entries.into_iter().map(convert_entry).collect()
            }
            other => return Err(unexpected("list_files", &other)),
        };
        Ok(FileListResult {
            workspace_id: p.workspace_id,
            path,
            recursive: p.recursive,
            entries,
            execution_mode: self.execution_mode(rec.backend),
        })
    }

    /// Read a regular file.
    pub fn workspace_file_read(&self, p: WorkspaceFileReadParams) -> Result<FileReadResult> {
        validate::max_bytes(p.max_bytes)?;
        let path = validate::workspace_path(&p.path, false)?;
        let (dir, rec) = self.load(&p.workspace_id)?;
        self.require_started(&dir, &rec, "workspace_file_read")?;
        let mut ch = self.channel(&dir, &rec)?;
        let request = Request::ReadFile { path: path.clone(), max_bytes: p.max_bytes };
        match agent::call(ch.as_mut(), request, QUICK)? {
            Response::FileData { size_bytes, data_b64, truncated } => Ok(FileReadResult {
                workspace_id: p.workspace_id,
                path,
                size_bytes,
                max_bytes: p.max_bytes,
                content: self.redactor(&dir).redact(&lossy(&agent::note_health(
                    &dir.agent_health(),
                    agent::file_data(size_bytes, &data_b64, truncated, p.max_bytes),
                )?)),
                truncated,
                execution_mode: self.execution_mode(rec.backend),
            }),
            other => Err(unexpected("read_file", &other)),
        }
    }

    /// Create or replace a text file.
    pub fn workspace_file_write(&self, p: WorkspaceFileWriteParams) -> Result<FileWriteResult> {
        validate::payload("text", &p.text)?;
        let path = validate::workspace_path(&p.path, false)?;
        // Writers serialise on the lock, like patch and sync (a write racing a reset
        // must land before or after it, never in the middle).
        let Locked { dir, rec, guard: _lock } = self.lock_workspace(&p.workspace_id)?;
        self.require_started(&dir, &rec, "workspace_file_write")?;
        let mut ch = self.channel(&dir, &rec)?;
        let request = Request::WriteFile { path: path.clone(), data_b64: b64(p.text.as_bytes()) };
        let written = agent::call(ch.as_mut(), request, QUICK)?;
        if let Response::Written { .. } = written {
            self.note(&p.workspace_id, ReviewEventKind::FileWrite { path: review::cut(&path) });
        }
        match written {
            Response::Written { bytes_written } => Ok(FileWriteResult {
                workspace_id: p.workspace_id,
                path,
                size_bytes: bytes_written,
                bytes_written,
                execution_mode: self.execution_mode(rec.backend),
            }),
            other => Err(unexpected("write_file", &other)),
        }
    }

    /// Apply a unified diff. Every file is planned (read and patched in memory) before
    /// anything is written, so a patch that does not apply changes nothing.
    pub fn workspace_patch_apply(&self, p: WorkspacePatchApplyParams) -> Result<PatchApplyResult> {
        validate::payload("patch", &p.patch)?;
        let files = patch::parse_patch(&p.patch).map_err(|e| PyroError::invalid(e.to_string()))?;
        let Locked { dir, rec, guard: _lock } = self.lock_workspace(&p.workspace_id)?;
        self.require_started(&dir, &rec, "workspace_patch_apply")?;
        let mut ch = self.channel(&dir, &rec)?;
        let mut plan = Vec::new();
        for file in &files {
            let guest = format!("/workspace/{}", file.path);
            let request =
                Request::ReadFile { path: guest.clone(), max_bytes: validate::MAX_FILE_BYTES };
            let old = match ch.call(request, QUICK)? {
                Response::FileData { size_bytes, data_b64, truncated } => {
                    let bytes = agent::note_health(
                        &dir.agent_health(),
                        agent::file_data(
                            size_bytes,
                            &data_b64,
                            truncated,
                            validate::MAX_FILE_BYTES,
                        ),
                    )?;
                    if truncated {
                        return Err(PyroError::invalid(format!(
                            "workspace patch target is larger than 1 MiB: {guest}"
                        )));
                    }
                    Some(String::from_utf8(bytes).map_err(|_| {
                        PyroError::invalid(format!(
                            "workspace patch only supports UTF-8 text files: {guest}"
                        ))
                    })?)
                }
                Response::Error { kind: pyro_protocol::ErrorKind::NotFound, .. } => None,
                Response::Error { kind: pyro_protocol::ErrorKind::WrongType, .. } => {
                    return Err(PyroError::invalid(format!(
                        "workspace patch only supports regular files: {guest}"
                    )))
                }
                Response::Error { kind, message } => return Err(PyroError::guest(kind, message)),
                other => return Err(unexpected("read_file", &other)),
            };
            let new = patch::apply(file, old.as_deref())
                .map_err(|e| PyroError::invalid(e.to_string()))?;
            let status = match (&old, &new) {
                (None, _) => "added",
                (Some(_), None) => "deleted",
                (Some(_), Some(_)) => "modified",
            };
            plan.push((guest, new, status));
        }
        plan.sort_by(|a, b| a.0.cmp(&b.0));
        let mut summary = PatchSummary::default();
        let mut entries = Vec::new();
        for (guest, new, status) in &plan {
            if let Some(text) = new {
                let req =
                    Request::WriteFile { path: guest.clone(), data_b64: b64(text.as_bytes()) };
                agent::call(ch.as_mut(), req, QUICK)?;
            }
            summary.total += 1;
            match *status {
                "added" => summary.added += 1,
                "deleted" => summary.deleted += 1,
                _ => summary.modified += 1,
            }
            entries.push(PatchEntry { path: guest.clone(), status: status.to_string() });
        }
        for (guest, new, _) in &plan {
            if new.is_none() {
                agent::call(ch.as_mut(), Request::DeletePath { path: guest.clone() }, QUICK)?;
            }
        }
        drop(ch);
        let mut rec = rec;
        rec.last_activity_at = now();
        Self::save(&dir, &rec)?;
        let paths = entries.iter().take(50).map(|e| review::cut(&e.path)).collect();
        self.note(&p.workspace_id, ReviewEventKind::PatchApply { paths });
        Ok(PatchApplyResult {
            workspace_id: p.workspace_id,
            changed: summary.total > 0,
            summary,
            entries,
            patch: p.patch,
            execution_mode: self.execution_mode(rec.backend),
        })
    }

    /// Compare `/workspace` with the baseline: in the agent against the mounted baseline
    /// when it has one (stat first, see [`super::tree_diff`]), else by comparing the
    /// create-time baseline archive with a fresh export (older agents, `host_compat`).
    pub fn workspace_diff(&self, workspace_id: &str) -> Result<DiffResult> {
        let (dir, rec) = self.load(workspace_id)?;
        self.require_started(&dir, &rec, "workspace_diff")?;
        let mut ch = self.channel(&dir, &rec)?;
        let d = match Self::live_diff(ch.as_mut())? {
            Ok(d) => d,
            // A workspace on a volume has no baseline archive: its baseline is a disk
            // layer that only the guest can read.
            Err(tree_diff::Declined(reason)) if !dir.baseline().exists() => {
                return Err(PyroError::Sandbox(format!(
                    "workspace_diff could not compare /workspace with its baseline in the \
                     guest: {reason} (stop and start the workspace for a fresh agent and \
                     mounts; for very large changes raise {})",
                    crate::backend::limits::MAX_TRANSFER_ENV
                )))
            }
            Err(_) => Self::archive_diff(ch.as_mut(), &dir)?,
        };
        let redactor = self.redactor(&dir);
        let mut entries = d.entries;
        for e in &mut entries {
            e.text_patch = e.text_patch.as_deref().map(|t| redactor.redact(t));
        }
        Ok(DiffResult {
            workspace_id: workspace_id.into(),
            changed: d.changed,
            summary: d.summary,
            entries,
            patch: redactor.redact(&d.patch),
        })
    }

    /// The tree diff in the agent, when this workspace's guest has its baseline mounted
    /// at [`pyro_protocol::BASELINE_MOUNT`]; declined: use the archive diff if any.
    fn live_diff(
        channel: &mut dyn AgentChannel,
    ) -> Result<std::result::Result<diff::TreeDiff, tree_diff::Declined>> {
        // A host_compat sandbox has no baseline directory (its baseline is an archive
        // only: nothing shares its tree's lineage, so a live compare would read every
        // file anyway) and declines, as does a guest without a mounted baseline.
        let limits = TransferLimits::from_env();
        tree_diff::live_diff(
            channel,
            WORKSPACE_PATH,
            pyro_protocol::BASELINE_MOUNT,
            tree_diff::limits_for(&limits),
            limits.chunk_bytes,
        )
    }

    /// The archive diff: the create-time baseline archive against a fresh export.
    fn archive_diff(channel: &mut dyn AgentChannel, dir: &WorkspaceDir) -> Result<diff::TreeDiff> {
        let baseline = fs::read(dir.baseline())
            .map_err(|e| PyroError::io("could not read baseline", dir.baseline(), e))?;
        // The diff compares whole trees in memory (bounded by the transfer cap); the
        // transfer itself is streamed.
        let (mut spool, _) = Self::export_to_spool(channel, WORKSPACE_PATH, &dir.root)?;
        let mut current = Vec::new();
        spool
            .rewind()
            .and_then(|()| spool.read_to_end(&mut current))
            .map_err(|e| PyroError::io("could not read the exported tree", &dir.root, e))?;
        diff::diff_trees(&baseline, &current)
            .map_err(|e| PyroError::CorruptState { path: dir.baseline(), message: e.to_string() })
    }

    /// Copy a workspace path to a new host path.
    pub fn workspace_export(&self, p: WorkspaceExportParams) -> Result<ExportResult> {
        let path = validate::workspace_path(&p.path, true)?;
        let output = seed::absolute(&p.output_path)?;
        if output.symlink_metadata().is_ok() {
            return Err(PyroError::invalid(format!(
                "output_path already exists: {}",
                output.display()
            )));
        }
        let (dir, rec) = self.load(&p.workspace_id)?;
        self.require_started(&dir, &rec, "workspace_export")?;
        let mut ch = self.channel(&dir, &rec)?;
        let spool_dir = output.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(spool_dir)
            .map_err(|e| PyroError::io("could not create", spool_dir, e))?;
        let (mut tar, exported) = Self::export_to_spool(ch.as_mut(), &path, spool_dir)?;
        drop(ch);
        let artifact_type = exported.artifact_type;
        tar.rewind().map_err(|e| PyroError::io("could not read the export spool", spool_dir, e))?;
        let stats = seed::write_export(&mut tar, artifact_type, &output)?;
        self.note(
            &p.workspace_id,
            ReviewEventKind::Export {
                workspace_path: review::cut(&path),
                output_path: review::cut(&output.display().to_string()),
            },
        );
        Ok(ExportResult {
            workspace_id: p.workspace_id,
            workspace_path: path,
            output_path: output.display().to_string(),
            artifact_type: convert_type(artifact_type),
            entry_count: stats.entry_count,
            bytes_written: stats.bytes_written,
            symlink_count: stats.symlink_count,
            execution_mode: self.execution_mode(rec.backend),
        })
    }

    /// Copy host content into the workspace.
    pub fn workspace_sync_push(&self, p: WorkspaceSyncPushParams) -> Result<SyncPushResult> {
        let dest = validate::workspace_path(&p.dest, true).map_err(|_| {
            PyroError::invalid(format!(
                "workspace destination must stay inside /workspace: {}",
                p.dest
            ))
        })?;
        let mut source = seed::prepare(&p.source_path)?;
        let Locked { dir, rec, guard: _lock } = self.lock_workspace(&p.workspace_id)?;
        self.require_started(&dir, &rec, "workspace_sync_push")?;
        let mut ch = self.channel(&dir, &rec)?;
        let stats = Self::import_tar(ch.as_mut(), &dest, &mut source.tar, false)?;
        drop(ch);
        let mut rec = rec;
        rec.last_activity_at = now();
        Self::save(&dir, &rec)?;
        self.note(
            &p.workspace_id,
            ReviewEventKind::SyncPush {
                source_path: review::cut(&source.source.display().to_string()),
                destination: review::cut(&dest),
            },
        );
        Ok(SyncPushResult {
            workspace_id: p.workspace_id,
            execution_mode: self.execution_mode(rec.backend),
            workspace_sync: SyncInfo {
                mode: source.mode.into(),
                source_path: source.source.display().to_string(),
                destination: dest,
                entry_count: stats.entry_count,
                bytes_written: stats.bytes_written,
            },
        })
    }

    fn snapshot_path(dir: &WorkspaceDir, name: &str) -> (PathBuf, PathBuf) {
        (dir.snapshots().join(format!("{name}.tar")), dir.snapshots().join(format!("{name}.json")))
    }

    fn baseline_info(dir: &WorkspaceDir, rec: &WorkspaceRecord) -> Result<SnapshotInfo> {
        let file = File::open(dir.baseline())
            .map_err(|e| PyroError::io("could not read baseline", dir.baseline(), e))?;
        let stats = pyro_agent::archive::validate_reader(
            std::io::BufReader::new(file),
            pyro_agent::archive::LinkTargets::Kept,
            u64::MAX,
        )
        .map_err(|e| PyroError::CorruptState { path: dir.baseline(), message: e.to_string() })?;
        Ok(SnapshotInfo {
            workspace_id: rec.workspace_id.clone(),
            snapshot_name: "baseline".into(),
            kind: "baseline".into(),
            created_at: rec.created_at,
            entry_count: stats.entry_count,
            bytes_written: stats.bytes_written,
            deletable: false,
        })
    }

    /// Save `/workspace` as a named snapshot.
    pub fn snapshot_create(&self, p: SnapshotParams) -> Result<SnapshotResult> {
        validate::object_name("snapshot_name", &p.snapshot_name)?;
        if p.snapshot_name == "baseline" {
            return Err(PyroError::invalid("snapshot_name 'baseline' is reserved"));
        }
        let Locked { dir, rec, guard: _lock } = self.lock_workspace(&p.workspace_id)?;
        self.require_started(&dir, &rec, "workspace_snapshot_create")?;
        let (tar_path, json_path) = Self::snapshot_path(&dir, &p.snapshot_name);
        if json_path.exists() {
            return Err(PyroError::invalid(format!(
                "snapshot '{}' already exists in workspace '{}'",
                p.snapshot_name, p.workspace_id
            )));
        }
        fs::create_dir_all(dir.snapshots()).map_err(|e| {
            PyroError::io("could not create snapshot directory", dir.snapshots(), e)
        })?;
        let mut rec = rec;
        let info = if rec.volume.is_some() {
            // A layer of the volume: costs the same whatever /workspace holds.
            self.volume_snapshot_create(&dir, &mut rec, &p.snapshot_name)?
        } else {
            let mut ch = self.channel(&dir, &rec)?;
            let stats = Self::export_to_path(ch.as_mut(), WORKSPACE_PATH, &tar_path)?.stats;
            drop(ch);
            let info = SnapshotInfo {
                workspace_id: p.workspace_id.clone(),
                snapshot_name: p.snapshot_name.clone(),
                kind: "named".into(),
                created_at: now(),
                entry_count: stats.entry_count,
                bytes_written: stats.bytes_written,
                deletable: true,
            };
            state::write_json(&json_path, &info)?;
            info
        };
        rec.last_activity_at = now();
        Self::save(&dir, &rec)?;
        let snapshot_name = review::cut(&info.snapshot_name);
        self.note(&p.workspace_id, ReviewEventKind::SnapshotCreate { snapshot_name });
        Ok(SnapshotResult {
            workspace_id: p.workspace_id,
            snapshot: info,
            execution_mode: self.execution_mode(rec.backend),
        })
    }

    /// List snapshots: the baseline, then named ones newest first.
    pub fn snapshot_list(&self, workspace_id: &str) -> Result<SnapshotList> {
        let (dir, rec) = self.load(workspace_id)?;
        let mut named = Vec::new();
        for entry in fs::read_dir(dir.snapshots()).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "json") {
                named.push(state::read_json::<SnapshotInfo>(&path)?);
            }
        }
        named.sort_by(|a, b| {
            b.created_at.total_cmp(&a.created_at).then(a.snapshot_name.cmp(&b.snapshot_name))
        });
        let mut snapshots = vec![Self::baseline_info(&dir, &rec)?];
        snapshots.extend(named);
        Ok(SnapshotList {
            workspace_id: workspace_id.into(),
            count: snapshots.len() as u64,
            snapshots,
        })
    }

    /// Delete a named snapshot.
    pub fn snapshot_delete(&self, p: SnapshotParams) -> Result<SnapshotDeleteResult> {
        if p.snapshot_name == "baseline" {
            return Err(PyroError::invalid("cannot delete the baseline snapshot"));
        }
        validate::object_name("snapshot_name", &p.snapshot_name)?;
        let Locked { dir, rec, guard: _lock } = self.lock_workspace(&p.workspace_id)?;
        let mut rec = rec;
        let (tar_path, json_path) = Self::snapshot_path(&dir, &p.snapshot_name);
        // A layer still named after a snapshot whose JSON is gone belongs to a delete
        // that died half way: deleting it again finishes the job.
        let half_deleted =
            rec.volume.as_ref().is_some_and(|v| v.snapshot(&p.snapshot_name).is_some());
        if !json_path.exists() && !half_deleted {
            return Err(PyroError::UnknownSnapshot {
                workspace_id: p.workspace_id,
                name: p.snapshot_name,
            });
        }
        match fs::remove_file(&json_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(PyroError::io("could not delete", &json_path, e))
            }
            _ => {}
        }
        let _ = fs::remove_file(&tar_path);
        if rec.volume.is_some() {
            self.volume_snapshot_delete(&dir, &mut rec, &p.snapshot_name)?;
        }
        rec.last_activity_at = now();
        Self::save(&dir, &rec)?;
        let snapshot_name = review::cut(&p.snapshot_name);
        self.note(&p.workspace_id, ReviewEventKind::SnapshotDelete { snapshot_name });
        Ok(SnapshotDeleteResult {
            workspace_id: p.workspace_id,
            snapshot_name: p.snapshot_name,
            deleted: true,
        })
    }

    /// Rebuild the sandbox from its environment and restore a snapshot into `/workspace`.
    pub fn workspace_reset(&self, p: WorkspaceResetParams) -> Result<WorkspaceResetResult> {
        let Locked { dir, mut rec, guard: _lock } = self.lock_workspace(&p.workspace_id)?;
        let (archive_path, kind) = if p.snapshot == "baseline" {
            (dir.baseline(), "baseline")
        } else {
            validate::object_name("snapshot", &p.snapshot)?;
            let (tar, json) = Self::snapshot_path(&dir, &p.snapshot);
            if !json.exists() {
                return Err(PyroError::UnknownSnapshot {
                    workspace_id: p.workspace_id,
                    name: p.snapshot,
                });
            }
            (tar, "named")
        };
        // On a volume the baseline and every snapshot are disk layers: a new overlay
        // above the chosen one, nothing to import. `(layer, entries, bytes)`.
        let onto = match &rec.volume {
            None => None,
            Some(_) if kind == "baseline" => {
                Some((None, rec.workspace_seed.entry_count, rec.workspace_seed.bytes_written))
            }
            Some(vol) => {
                let info: SnapshotInfo = state::read_json(&archive_path.with_extension("json"))?;
                let layer = Self::volume_snapshot_layer(vol, &p.snapshot).ok_or_else(|| {
                    PyroError::CorruptState {
                        path: dir.volume(),
                        message: format!("snapshot '{}' has no layer in the volume", p.snapshot),
                    }
                })?;
                Some((Some(layer), info.entry_count, info.bytes_written))
            }
        };
        let mut archive = if onto.is_none() {
            Some(
                File::open(&archive_path)
                    .map_err(|e| PyroError::io("could not read snapshot", &archive_path, e))?,
            )
        } else {
            None
        };
        let backend = self.backend(rec.backend);
        self.close_all_shells(&dir, &rec);
        self.channels.forget(&dir.sandbox());
        watch::phase("stopping");
        backend.stop(&dir.sandbox())?;
        // Recorded stopped while the disk is replaced: a reset killed from here on
        // leaves a workspace that says it is stopped (any QEMU it booted is an orphan
        // that `pyro gc` and `mcp serve` remove), and start or reset again works.
        rec.desired_running = false;
        rec.last_error = Some("a reset was interrupted; reset or start the workspace again".into());
        Self::save(&dir, &rec)?;
        fault::point("reset.stopped");
        let result = (|| -> Result<pyro_protocol::ArchiveStats> {
            if let Some(vol) = &mut rec.volume {
                // A fresh, empty overlay above the baseline replaces the active one: the
                // record names the new file before the old one is removed.
                // QEMU is gone: put true backing names back into the layers' headers.
                volume::repair_headers(&dir, vol)?;
                let parent = onto.as_ref().and_then(|(layer, _, _)| layer.clone());
                let old = std::mem::take(&mut vol.active);
                vol.active = volume::new_active_over(&dir, vol, parent.as_deref())?;
                vol.active_parent = parent;
                Self::save(&dir, &rec)?;
                volume::remove_file(&dir, &old);
                fault::point("reset.overlay");
            }
            watch::phase("booting");
            let info = backend.create(&self.spec(&dir, &rec))?;
            watch::booted(&info);
            let _ = fs::remove_file(dir.agent_health());
            fault::point("reset.booted");
            Self::apply_info(&mut rec, info);
            rec.desired_running = true;
            let mut ch = backend.connect(&dir.sandbox())?;
            self.install_secrets(&dir, &rec, ch.as_mut())?;
            let stats = match &mut archive {
                Some(archive) => {
                    watch::phase("restoring");
                    Self::import_tar(ch.as_mut(), WORKSPACE_PATH, archive, true)?
                }
                None => pyro_protocol::ArchiveStats {
                    entry_count: onto.as_ref().map_or(0, |o| o.1),
                    bytes_written: onto.as_ref().map_or(0, |o| o.2),
                    ..Default::default()
                },
            };
            fault::point("reset.restored");
            Ok(stats)
        })();
        let stats = match result {
            Ok(stats) => stats,
            Err(err) => {
                rec.last_error = Some(format!("reset failed: {err}"));
                let _ = backend.stop(&dir.sandbox());
                rec.desired_running = false;
                Self::save(&dir, &rec)?;
                return Err(err);
            }
        };
        let _ = fs::remove_dir_all(dir.commands());
        rec.command_count = 0;
        rec.next_sequence = 1;
        rec.last_command = None;
        rec.reset_count += 1;
        rec.last_reset_at = Some(now());
        rec.last_activity_at = now();
        Self::save(&dir, &rec)?;
        review::restart(&dir, &p.snapshot);
        Ok(WorkspaceResetResult {
            workspace: self.to_public(&dir, &rec),
            workspace_reset: ResetInfo {
                snapshot_name: p.snapshot,
                kind: kind.into(),
                destination: WORKSPACE_PATH.into(),
                entry_count: stats.entry_count,
                bytes_written: stats.bytes_written,
            },
        })
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
