//! Moving trees between the host and `/workspace`: export and sync push.

use super::*;

impl Runtime {
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
        let mut source = seed::prepare_tar(&p.source_path)?;
        let Locked { dir, rec, guard: _lock } = self.lock_workspace(&p.workspace_id)?;
        self.require_started(&dir, &rec, "workspace_sync_push")?;
        let mut ch = self.channel(&dir, &rec)?;
        let stats = Self::import_tar(ch.as_mut(), &dest, source.tar()?, false)?;
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
}
