//! Review events and the workspace summary.
//!
//! Operations that change a workspace from the outside (sync, file write, patch,
//! export, service start/stop, snapshot create/delete) append one JSON line to
//! `<workspace>/review.jsonl` after they succeed; `workspace_reset` replaces the file
//! with a single `reset` event. [`Runtime::workspace_summary`] combines those events
//! with the command history and the current diff.
//!
//! Limits: every string in an event is cut at 300 characters and the file is capped
//! at [`MAX_EVENTS_BYTES`] (older events are dropped first), so a long session cannot
//! grow it without bound. Recording is best effort: a failure to write an event never
//! fails the operation that caused it (it is logged instead).

use super::error::Result;
use super::state::{now, WorkspaceDir};
use super::Runtime;
use pyro_contract::results::*;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

/// Largest review file kept.
pub const MAX_EVENTS_BYTES: u64 = 256 * 1024;
const MAX_FIELD: usize = 300;
const MAX_COMMANDS: usize = 20;
const MAX_FILES: usize = 50;

fn events_path(dir: &WorkspaceDir) -> PathBuf {
    dir.root.join("review.jsonl")
}

/// Cut a caller-provided string for storage.
pub(super) fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_FIELD {
        return text.to_string();
    }
    let mut out: String = text.chars().take(MAX_FIELD).collect();
    out.push('…');
    out
}

/// Append `event` to the workspace's review file.
pub(super) fn record(dir: &WorkspaceDir, event: ReviewEventKind) {
    let path = events_path(dir);
    let line = match serde_json::to_string(&ReviewEvent { at: now(), event }) {
        Ok(line) => line,
        Err(e) => {
            tracing::warn!(error = %e, "could not encode a review event");
            return;
        }
    };
    if fs::metadata(&path).is_ok_and(|m| m.len() + line.len() as u64 > MAX_EVENTS_BYTES) {
        let kept = read(dir);
        let keep_from = kept.len() / 2;
        let text: String = kept[keep_from..]
            .iter()
            .filter_map(|e| serde_json::to_string(e).ok())
            .map(|l| l + "\n")
            .collect();
        if let Err(e) = super::state::write_atomic(&path, text.as_bytes()) {
            tracing::warn!(error = %e, "could not trim the review file");
        }
    }
    let appended = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = appended {
        tracing::warn!(path = %path.display(), error = %e, "could not record a review event");
    }
}

/// Start the review file over with one `reset` event.
pub(super) fn restart(dir: &WorkspaceDir, snapshot_name: &str) {
    let _ = fs::remove_file(events_path(dir));
    record(dir, ReviewEventKind::Reset { snapshot_name: cut(snapshot_name) });
}

/// The recorded events, oldest first; lines that do not parse are skipped.
fn read(dir: &WorkspaceDir) -> Vec<ReviewEvent> {
    let Ok(text) = fs::read_to_string(events_path(dir)) else { return Vec::new() };
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn short_command(command: &str) -> String {
    let one_line = command.replace('\n', " ");
    if one_line.chars().count() <= 200 {
        return one_line;
    }
    let mut out: String = one_line.chars().take(200).collect();
    out.push('…');
    out
}

impl Runtime {
    /// Record `event` for a workspace whose operation just succeeded.
    pub(super) fn note(&self, workspace_id: &str, event: ReviewEventKind) {
        if super::state::is_valid_id(workspace_id) {
            record(&WorkspaceDir::new(&self.config.state_dir, workspace_id), event);
        }
    }

    /// What happened in a workspace since its last reset (or creation).
    pub fn workspace_summary(&self, workspace_id: &str) -> Result<WorkspaceSummary> {
        let (dir, rec) = self.load(workspace_id)?;
        let public = self.workspace_status(workspace_id)?;
        let logs = self.workspace_logs(workspace_id)?;
        let commands: Vec<SummaryCommand> = logs
            .entries
            .iter()
            .map(|e| SummaryCommand {
                sequence: e.sequence,
                command: short_command(&e.command),
                exit_code: e.exit_code,
                duration_ms: e.duration_ms,
            })
            .collect();
        let failed = commands.iter().filter(|c| c.exit_code != 0).count() as u64;
        let last_command = commands.last().cloned();
        let outcome = match &last_command {
            None => "no_commands",
            Some(c) if c.exit_code == 0 => "passed",
            Some(_) => "failed",
        };
        let changes = if self.is_running(&dir, &rec) {
            let diff = self.workspace_diff(workspace_id)?;
            let files: Vec<String> = diff
                .entries
                .iter()
                .take(MAX_FILES)
                .map(|e| format!("{} {}", e.status, e.path))
                .collect();
            Some(SummaryChanges {
                summary: diff.summary,
                truncated: diff.entries.len() > MAX_FILES,
                files,
            })
        } else {
            None
        };
        let events = read(&dir);
        let pick = |f: fn(&ReviewEventKind) -> bool| -> Vec<ReviewEvent> {
            events.iter().filter(|e| f(&e.event)).cloned().collect()
        };
        let (since, since_at) = match rec.last_reset_at {
            Some(at) => ("reset", at),
            None => ("created", rec.created_at),
        };
        let skip = commands.len().saturating_sub(MAX_COMMANDS);
        let mut summary = WorkspaceSummary {
            workspace_id: workspace_id.to_string(),
            name: rec.name.clone(),
            environment: rec.environment.clone(),
            state: public.state,
            origin_kind: rec.workspace_seed.origin_kind.clone(),
            origin_ref: rec.workspace_seed.origin_ref.clone(),
            since: since.into(),
            since_at,
            reset_count: rec.reset_count,
            command_count: commands.len() as u64,
            failed_command_count: failed,
            commands: commands[skip..].to_vec(),
            last_command,
            outcome: outcome.into(),
            changes,
            patches_applied: pick(|k| matches!(k, ReviewEventKind::PatchApply { .. })),
            files_written: pick(|k| matches!(k, ReviewEventKind::FileWrite { .. })),
            syncs: pick(|k| matches!(k, ReviewEventKind::SyncPush { .. })),
            exports: pick(|k| matches!(k, ReviewEventKind::Export { .. })),
            services: pick(|k| {
                matches!(
                    k,
                    ReviewEventKind::ServiceStart { .. } | ReviewEventKind::ServiceStop { .. }
                )
            }),
            snapshots: pick(|k| {
                matches!(
                    k,
                    ReviewEventKind::SnapshotCreate { .. } | ReviewEventKind::SnapshotDelete { .. }
                )
            }),
            pointers: SummaryPointers {
                logs: format!(
                    "workspace_logs {workspace_id} (CLI: pyro workspace logs {workspace_id})"
                ),
                diff: format!(
                    "workspace_diff {workspace_id} (CLI: pyro workspace diff {workspace_id})"
                ),
            },
            text: String::new(),
        };
        summary.text = render(&summary);
        Ok(summary)
    }
}

fn event_line(e: &ReviewEvent) -> String {
    match &e.event {
        ReviewEventKind::SyncPush { source_path, destination } => {
            format!("synced {source_path} → {destination}")
        }
        ReviewEventKind::FileWrite { path } => format!("wrote {path}"),
        ReviewEventKind::PatchApply { paths } => format!("patched {}", paths.join(", ")),
        ReviewEventKind::Export { workspace_path, output_path } => {
            format!("exported {workspace_path} → {output_path}")
        }
        ReviewEventKind::ServiceStart { service_name, state } => {
            format!("started service {service_name} ({state})")
        }
        ReviewEventKind::ServiceStop { service_name } => format!("stopped service {service_name}"),
        ReviewEventKind::SnapshotCreate { snapshot_name } => format!("snapshot {snapshot_name}"),
        ReviewEventKind::SnapshotDelete { snapshot_name } => {
            format!("deleted snapshot {snapshot_name}")
        }
        ReviewEventKind::Reset { snapshot_name } => format!("reset to {snapshot_name}"),
        #[allow(unreachable_patterns)]
        _ => "other event".into(),
    }
}

/// The Markdown summary.
fn render(s: &WorkspaceSummary) -> String {
    let mut out = String::new();
    let name = s.name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
    out.push_str(&format!("### pyro workspace {}{name}\n\n", s.workspace_id));
    let origin = match &s.origin_ref {
        Some(r) => format!("{} {r}", s.origin_kind),
        None => s.origin_kind.clone(),
    };
    out.push_str(&format!(
        "- environment {}, {}, seeded from {origin}; since {} ({} resets)\n",
        s.environment,
        match s.state {
            VmState::Started => "started",
            _ => "stopped",
        },
        s.since,
        s.reset_count
    ));
    let outcome = match &s.last_command {
        None => "no commands run".to_string(),
        Some(c) => format!("last command `{}` exited {}", c.command, c.exit_code),
    };
    out.push_str(&format!(
        "- outcome: **{}** ({outcome}); {} commands, {} failed\n",
        s.outcome, s.command_count, s.failed_command_count
    ));
    if !s.commands.is_empty() {
        out.push_str("- commands:\n");
        for c in &s.commands {
            out.push_str(&format!(
                "  - `{}` → exit {} ({} ms)\n",
                c.command, c.exit_code, c.duration_ms
            ));
        }
    }
    match &s.changes {
        Some(ch) if ch.summary.total == 0 => out.push_str("- files changed: none\n"),
        Some(ch) => {
            out.push_str(&format!(
                "- files changed: {} ({} added, {} modified, {} deleted)\n",
                ch.summary.total, ch.summary.added, ch.summary.modified, ch.summary.deleted
            ));
            for f in &ch.files {
                out.push_str(&format!("  - {f}\n"));
            }
            if ch.truncated {
                out.push_str("  - …\n");
            }
        }
        None => out.push_str("- files changed: unknown (start the workspace to diff it)\n"),
    }
    for (label, events) in [
        ("patches", &s.patches_applied),
        ("files written", &s.files_written),
        ("syncs", &s.syncs),
        ("exports", &s.exports),
        ("services", &s.services),
        ("snapshots", &s.snapshots),
    ] {
        if !events.is_empty() {
            let lines: Vec<String> = events.iter().map(event_line).collect();
            out.push_str(&format!("- {label}: {}\n", lines.join("; ")));
        }
    }
    out.push_str(&format!("- details: {}; {}\n", s.pointers.logs, s.pointers.diff));
    out
}
