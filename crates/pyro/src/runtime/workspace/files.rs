//! Listing, reading and writing files, and applying patches.

use super::*;

impl Runtime {
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
}
