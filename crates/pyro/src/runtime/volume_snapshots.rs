//! Snapshots, reset and snapshot delete of workspaces whose `/workspace` is a volume
//! (see `volume.rs`): layers of the volume's qcow2 chain, never archives.
//!
//! - **create** (running): a fresh overlay whose header names the current top; the
//!   guest's `/workspace` is frozen (`FIFREEZE`, thawed on every path and by the agent's
//!   own deadline); the record names the overlay as active and the former top as an
//!   unnamed layer; QEMU's `blockdev-snapshot` puts the overlay on top; thaw; the layer
//!   gets its name and the snapshot its JSON. A crash before the JSON leaves an unnamed
//!   layer (data in the chain, not a snapshot) and never loses writes: until QEMU
//!   switches, it writes into the layer the record already has below the new overlay.
//! - **reset** onto a snapshot: a fresh overlay above its layer (`workspace.rs`).
//! - **delete**: a layer nothing is layered on is removed. Otherwise its data is merged
//!   into each image that depends on it first (the running chain's images online with
//!   `block-stream`, others offline with `qemu-img rebase`), then it is removed;
//!   removal truncates before unlinking, so the space is free at once even while QEMU
//!   still holds the descriptor it inherited at boot.

use super::agent::{self, QUICK};
use super::change_sets;
use super::error::{PyroError, Result};
use super::state::{self, now, WorkspaceDir, WorkspaceRecord};
use super::volume::{self, VolumeLayer, VolumeRecord};
use super::{fault, Runtime};
use crate::backend::qemu::volume as images;
use pyro_contract::results::SnapshotInfo;
use pyro_protocol::{
    ArtifactType, Request, Response, TreeTotals, TREE_TOTALS_CAPABILITY, WORKSPACE_ROOT,
};
use std::path::{Path, PathBuf};

/// How long the guest keeps `/workspace` frozen at most if pyro never thaws it.
const FREEZE_DEADLINE_MS: u64 = 10_000;

/// Entries and regular-file bytes of `/workspace`, counted the way its archive counts
/// (entries below the root; the seed's and the baseline snapshot's counts are the same
/// for the same tree). An agent with [`TREE_TOTALS_CAPABILITY`] counts them itself,
/// from `baseline` plus what its change set names when it knows one (the cost of what
/// changed), else by walking; an older one lists the tree.
fn tree_stats(
    channel: &mut dyn crate::backend::AgentChannel,
    baseline: Option<TreeTotals>,
) -> Result<(u64, u64)> {
    if channel.supports(TREE_TOTALS_CAPABILITY) {
        let request = Request::TreeTotals { baseline, full_walk: false };
        return match agent::call(channel, request, QUICK)? {
            // Two numbers: nothing to bound but their own range.
            Response::TreeTotals { totals, .. } => Ok((totals.entries, totals.file_bytes)),
            other => Err(agent::unexpected("tree_totals", &other)),
        };
    }
    let request = Request::ListFiles { path: WORKSPACE_ROOT.into(), recursive: true };
    match agent::call(channel, request, QUICK)? {
        Response::Files { entries } => {
            let bytes = entries
                .iter()
                .filter(|e| e.artifact_type == ArtifactType::File)
                .map(|e| e.size_bytes)
                .sum();
            Ok((entries.len() as u64, bytes))
        }
        other => Err(agent::unexpected("list_files", &other)),
    }
}

impl Runtime {
    /// Take the named snapshot `name` of the running volume workspace (see the module
    /// doc). `rec` is saved on every step.
    pub(super) fn volume_snapshot_create(
        &self,
        dir: &WorkspaceDir,
        rec: &mut WorkspaceRecord,
        name: &str,
    ) -> Result<SnapshotInfo> {
        let Some(before) = rec.volume.clone() else {
            return Err(PyroError::invalid("this workspace has no volume"));
        };
        let mut after = before.clone();
        // A layer left named by a delete that died half way is data now, not a snapshot.
        for layer in after.layers.iter_mut().filter(|l| l.snapshot == name) {
            layer.snapshot.clear();
        }
        let overlay = after.new_file("active");
        let overlay_path = dir.volume().join(&overlay);
        images::create_overlay(&dir.volume().join(&before.active), "qcow2", &overlay_path)
            .map_err(backend_err)?;
        let mut ch = self.channel(dir, rec)?;
        if let Err(e) = agent::call(
            ch.as_mut(),
            Request::FreezeWorkspace { thaw_after_ms: FREEZE_DEADLINE_MS },
            QUICK,
        ) {
            volume::remove_file(dir, &overlay);
            return Err(e);
        }
        fault::point("snapshot.frozen");
        // (entries, bytes) of the frozen tree and its change set.
        type Frozen = ((u64, u64), Option<Vec<String>>);
        let switched = (|| -> Result<Frozen> {
            let stats = tree_stats(ch.as_mut(), before.baseline_totals)?;
            // Frozen: the set describes the layer exactly (see `change_sets`).
            let known = change_sets::take(ch.as_mut());
            after.layers.push(VolumeLayer {
                file: before.active.clone(),
                snapshot: String::new(),
                parent: before.active_parent.clone(),
            });
            after.active_parent = Some(before.active.clone());
            after.active = overlay.clone();
            rec.volume = Some(after.clone());
            Self::save(dir, rec)?;
            let backend = self.backend(rec.backend);
            if let Err(e) = backend.snapshot_volume(&dir.sandbox(), &overlay_path) {
                // QEMU still writes the old top: the record must say so again.
                rec.volume = Some(before.clone());
                Self::save(dir, rec)?;
                volume::remove_file(dir, &overlay);
                return Err(e.into());
            }
            Ok((stats, known))
        })();
        let thawed = agent::call(ch.as_mut(), Request::ThawWorkspace, QUICK);
        let ((entry_count, bytes_written), known) = switched?;
        if let Err(e) = thawed {
            tracing::warn!(error = %e, "could not thaw /workspace (the agent thaws it by its deadline)");
        }
        fault::point("snapshot.layered");
        if let Some(paths) = known {
            change_sets::save(dir, &before.active, &paths);
        }
        if let Some(layer) = after.layers.iter_mut().find(|l| l.file == before.active) {
            layer.snapshot = name.to_owned();
        }
        rec.volume = Some(after);
        Self::save(dir, rec)?;
        let info = SnapshotInfo {
            workspace_id: rec.workspace_id.clone(),
            snapshot_name: name.to_owned(),
            kind: "named".into(),
            created_at: now(),
            entry_count,
            bytes_written,
            deletable: true,
        };
        state::write_json(&dir.snapshots().join(format!("{name}.json")), &info)?;
        Ok(info)
    }

    /// Delete the named snapshot `name` of a volume workspace, merging its layer into
    /// what depends on it (see the module doc). `rec` is saved.
    pub(super) fn volume_snapshot_delete(
        &self,
        dir: &WorkspaceDir,
        rec: &mut WorkspaceRecord,
        name: &str,
    ) -> Result<()> {
        let Some(mut vol) = rec.volume.clone() else {
            return Err(PyroError::invalid("this workspace has no volume"));
        };
        let Some(layer) = vol.snapshot(name).cloned() else {
            return Ok(());
        };
        let running = self.is_running(dir, rec);
        let backend = self.backend(rec.backend);
        let (base, base_format) = vol.image(dir, layer.parent.as_deref());
        let children = dependents(&vol, &layer.file);
        for child in &children {
            let child_path = dir.volume().join(child);
            if running && vol.in_running_chain(child) {
                backend.merge_volume(&dir.sandbox(), &child_path, &base).map_err(backend_err)?;
            } else {
                // No QEMU has it open. Its header may hold a name a running QEMU wrote
                // (`/proc/self/fd/<n>`), and so may the layers' below: spell both chains
                // out for qemu-img, then rebase (copying what the layer held).
                let old = volume::chain_spec(dir, &vol, Some(&layer.file));
                images::set_backing_header(&child_path, Path::new(&old), "qcow2")
                    .map_err(backend_err)?;
                let new = volume::chain_spec(dir, &vol, layer.parent.as_deref());
                images::rebase_onto(&child_path, Path::new(&new), base_format)
                    .map_err(backend_err)?;
            }
            // The merged child no longer needs the layer: say so before it goes.
            if vol.active == *child {
                vol.active_parent = layer.parent.clone();
            }
            if let Some(l) = vol.layers.iter_mut().find(|l| l.file == *child) {
                l.parent = layer.parent.clone();
            }
            rec.volume = Some(vol.clone());
            Self::save(dir, rec)?;
        }
        vol.layers.retain(|l| l.file != layer.file);
        rec.volume = Some(vol);
        Self::save(dir, rec)?;
        volume::discard_file(dir, &layer.file);
        change_sets::remove(dir, &layer.file);
        Ok(())
    }

    /// The layer of the named snapshot `name`, to reset onto.
    pub(super) fn volume_snapshot_layer(vol: &VolumeRecord, name: &str) -> Option<String> {
        vol.snapshot(name).map(|l| l.file.clone())
    }

    /// Volume files no record names (left by a create, snapshot or reset that died):
    /// for `pyro doctor`/`gc`.
    pub(super) fn stray_volume_files(dir: &WorkspaceDir) -> Vec<PathBuf> {
        let Ok(rec) = state::read_json::<WorkspaceRecord>(&dir.record()) else {
            return Vec::new();
        };
        let Some(vol) = rec.volume else { return Vec::new() };
        let mut named: Vec<PathBuf> =
            vol.layers.iter().map(|l| dir.volume().join(&l.file)).collect();
        named.push(dir.volume().join(&vol.active));
        named.push(vol.baseline.clone());
        std::fs::read_dir(dir.volume())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "qcow2") && !named.contains(p))
            .collect()
    }
}

fn backend_err(e: crate::backend::BackendError) -> PyroError {
    PyroError::from(e)
}

/// Images backed directly by the layer in `file`: layers and the active overlay.
fn dependents(vol: &VolumeRecord, file: &str) -> Vec<String> {
    let mut out: Vec<String> = vol
        .layers
        .iter()
        .filter(|l| l.parent.as_deref() == Some(file))
        .map(|l| l.file.clone())
        .collect();
    if vol.active_parent.as_deref() == Some(file) {
        out.push(vol.active.clone());
    }
    out
}
