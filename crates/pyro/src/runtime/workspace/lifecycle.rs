//! Listing, showing, renaming, stopping, starting and deleting workspaces.

use super::*;

impl Runtime {
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

    /// Stop the VM, keeping its disk.
    pub fn workspace_stop(&self, workspace_id: &str) -> Result<Workspace> {
        let Locked { dir, mut rec, guard: _lock } = self.lock_workspace(workspace_id)?;
        self.stop_all_services(&dir, &rec);
        self.close_all_shells(&dir, &rec);
        fault::point("stop.services");
        // A clean stop of a volume: freeze /workspace, take its change set and stop the
        // guest while frozen, so the next start knows what differs from the baseline
        // (see `change_sets`). Kept only once the guest is gone, well before the
        // agent's own thaw.
        let frozen_at = std::time::Instant::now();
        let known = match &rec.volume {
            Some(_) if self.is_running(&dir, &rec) => self
                .channel(&dir, &rec)
                .ok()
                .and_then(|mut ch| change_sets::freeze_and_take(ch.as_mut())),
            _ => None,
        };
        self.channels.forget(&dir.sandbox());
        self.backend(rec.backend).stop(&dir.sandbox())?;
        if let (Some(paths), Some(vol)) = (known, &rec.volume) {
            if frozen_at.elapsed() < change_sets::STOP_WITHIN {
                change_sets::save(&dir, &vol.active, &paths);
            }
        }
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
        // A clean stop's change set serves this boot only; any start removes it.
        let known = rec.volume.as_ref().and_then(|v| change_sets::consume_stopped(&dir, &v.active));
        if !backend.is_running(&dir.sandbox()) {
            Self::forget_shells(&dir);
            self.channels.forget(&dir.sandbox());
            watch::phase("booting");
            let info = backend.start(&self.spec_knowing(&dir, &rec, known))?;
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
}
