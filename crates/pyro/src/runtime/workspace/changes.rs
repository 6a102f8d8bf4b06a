//! `workspace_diff`: the changes since the baseline.

use super::*;

impl Runtime {
    /// Compare `/workspace` with the baseline: in the agent against the mounted baseline
    /// when it has one (stat first, see [`crate::runtime::tree_diff`]), else by comparing the
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
    pub(super) fn live_diff(
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
    pub(super) fn archive_diff(
        channel: &mut dyn AgentChannel,
        dir: &WorkspaceDir,
    ) -> Result<diff::TreeDiff> {
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
}
