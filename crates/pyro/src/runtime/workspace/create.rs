//! Creating a workspace: record first (marked creating), then the volume or directory, the boot, secrets and the seed.

use super::*;

impl Runtime {
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
        crate::runtime::environments::EnvironmentCatalog::require_known(&p.environment)?;
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
        if !caps.published_ports && p.network_policy == NetworkPolicy::EgressPublishedPorts {
            return Err(PyroError::InvalidArgument(format!(
                "network_policy 'egress+published-ports' needs a backend that forwards host ports, and backend {} does not; use network_policy 'egress'",
                backend_kind.name()
            )));
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
        // A caller that gave up gets no workspace: the failure path below removes the
        // half-made one, guest included. Checked between steps (none is interrupted).
        let give_up_if_cancelled = || -> Result<()> {
            if watch::cancelled() {
                return Err(PyroError::Cancelled(format!(
                    "workspace create was cancelled; the half-made workspace {id} was removed"
                )));
            }
            Ok(())
        };
        let result = (|| -> Result<()> {
            rec.secrets = secrets::store(&dir, &prepared_secrets)?;
            let backend = self.backend(backend_kind);
            // QEMU: `/workspace` is a volume whose bottom layer is the seed, made on the
            // host; it is the baseline. host_compat: a directory, seeded over the channel.
            let on_volume = caps.volumes;
            let mut formatting = None;
            if on_volume {
                watch::phase("seeding");
                let (vol, stats, pending) =
                    volume::create(&self.config.cache_dir, &dir, seed.as_mut())?;
                formatting = pending.map(std::sync::Arc::new);
                if let (Some(seed), Some(stats)) = (&seed, stats) {
                    rec.workspace_seed = Self::seed_info(seed, &stats);
                }
                rec.volume = Some(vol);
                Self::save(&dir, &rec)?;
                fault::point("create.volume");
            }
            give_up_if_cancelled()?;
            watch::phase("booting");
            // A fresh overlay above the baseline: nothing differs from it yet. The seed's
            // baseline is formatted while the guest boots; the backend waits for it
            // before the guest mounts the volume.
            let mut spec = self.spec_knowing(&dir, &rec, Some(Vec::new()));
            spec.volume_ready = formatting
                .clone()
                .map(|pending| crate::backend::VolumeReady::new(move || pending.wait()));
            let booted = backend.create(&spec);
            drop(spec);
            // Whatever the boot did, mke2fs is finished before going on (or cleaning up).
            let formatted = formatting.take().map_or(Ok(()), |pending| pending.wait());
            let info = booted?;
            formatted?;
            watch::booted(&info);
            let _ = fs::remove_file(dir.agent_health());
            fault::point("create.booted");
            Self::apply_info(&mut rec, info);
            give_up_if_cancelled()?;
            let mut ch = backend.connect(&dir.sandbox())?;
            self.install_secrets(&dir, &rec, ch.as_mut())?;
            if on_volume {
                fault::point("create.seeded");
                give_up_if_cancelled()?;
                rec.creating = None;
                return Self::save(&dir, &rec);
            }
            if let Some(seed) = &mut seed {
                watch::phase("seeding");
                let stats = Self::import_tar(ch.as_mut(), WORKSPACE_PATH, seed.tar()?, false)?;
                rec.workspace_seed = Self::seed_info(seed, &stats);
            }
            fault::point("create.seeded");
            watch::phase("baseline");
            Self::export_to_path(ch.as_mut(), WORKSPACE_PATH, &dir.baseline())?;
            give_up_if_cancelled()?;
            rec.creating = None;
            Self::save(&dir, &rec)
        })();
        if let Err(err) = result {
            let _ = self.remove_workspace(&dir, &rec);
            return Err(err);
        }
        Ok(self.to_public(&dir, &rec))
    }

    pub(super) fn seed_info(
        seed: &seed::Seed,
        stats: &pyro_protocol::ArchiveStats,
    ) -> WorkspaceSeed {
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
}
