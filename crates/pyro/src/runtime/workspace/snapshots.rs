//! Named snapshots of `/workspace`.

use super::*;

impl Runtime {
    pub(super) fn snapshot_path(dir: &WorkspaceDir, name: &str) -> (PathBuf, PathBuf) {
        (dir.snapshots().join(format!("{name}.tar")), dir.snapshots().join(format!("{name}.json")))
    }

    pub(super) fn baseline_info(dir: &WorkspaceDir, rec: &WorkspaceRecord) -> Result<SnapshotInfo> {
        if rec.volume.is_some() {
            // The baseline is the volume's bottom layer, made from the seed.
            return Ok(SnapshotInfo {
                workspace_id: rec.workspace_id.clone(),
                snapshot_name: "baseline".into(),
                kind: "baseline".into(),
                created_at: rec.created_at,
                entry_count: rec.workspace_seed.entry_count,
                bytes_written: rec.workspace_seed.bytes_written,
                deletable: false,
            });
        }
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
}
