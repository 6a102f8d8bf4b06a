//! Rebuilding the sandbox and restoring a snapshot into `/workspace`.

use super::*;

impl Runtime {
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
                change_sets::remove(&dir, &old);
                fault::point("reset.overlay");
            }
            watch::phase("booting");
            // What differs from the baseline right after the reset: nothing (baseline),
            // or what did when the snapshot was taken (its stored set, if any).
            let known = match onto.as_ref() {
                Some((None, _, _)) => Some(Vec::new()),
                Some((Some(layer), _, _)) => change_sets::load(&dir, layer),
                None => None,
            };
            let info = backend.create(&self.spec_knowing(&dir, &rec, known))?;
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
}
