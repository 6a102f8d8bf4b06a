//! The live diff: `workspace_diff` computed by the guest agent against the mounted
//! baseline, stat first, instead of packing and comparing two whole archives.
//!
//! The agent ([`Request::TreeDiffOpen`], capability [`TREE_DIFF_CAPABILITY`]) walks
//! `/workspace` and the read-only baseline at [`pyro_protocol::BASELINE_MOUNT`], skips
//! every entry whose stat tuple is unchanged (see `pyro_agent`'s `tree_diff` module
//! and [`super::diff`] for why that is sound), compares the rest by content, and spools
//! the list of changed paths, with the text of the files a patch needs, as one JSON
//! document read back in chunks like an export ([`super::transfer`]). This module checks
//! that answer (the guest is hostile) and turns it into the same [`TreeDiff`] the
//! archive path builds, through the same [`diff::classify`] / [`diff::assemble`], so
//! the output is byte-identical for the same trees.
//!
//! An agent with [`pyro_protocol::CHANGE_WATCH_CAPABILITY`] compares only the paths it
//! tracked as possibly changed (fanotify; see `pyro_agent`'s `change_watch` and
//! [`super::change_sets`]) and says so (`tracked`); its answer is checked the same way.
//! [`live_answer`] with `full_walk` forces the walk of both trees (tests, benchmarks).
//!
//! # Checks on the answer
//!
//! The announced and delivered length against [`TreeDiffLimits::max_answer_bytes`];
//! well-formed JSON; counts within [`TreeDiffLimits::max_entries`]; every path relative,
//! normalised and unique ([`validate::tree_relative_path`]); every side consistent (a
//! symlink has a target, only files carry text, text has no NUL, permission bits only);
//! all text within [`TreeDiffLimits::max_text_bytes`]; no entry on a side where an
//! ancestor in the answer is absent or not a directory. Any failure is an "invalid
//! answer" error.
//!
//! # When the archive path is used instead
//!
//! [`live_diff`] answers `None` (use the archive diff) when the agent does not name the
//! capability, or answers that a limit was reached or the trees cross a mount point:
//! the archive path then applies today's caps and errors.

use super::agent::invalid;
use super::diff::{self, Side, TreeDiff};
use super::error::{PyroError, Result};
use super::transfer::{self, TransferLimits};
use super::validate;
use crate::backend::AgentChannel;
use pyro_protocol::{
    ArtifactType, ErrorKind, Request, Response, TreeChange, TreeDiffAnswer, TreeDiffLimits,
    TreeSide, TREE_DIFF_CAPABILITY,
};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

/// Longest the agent may take to walk and compare (the chunks then have their own).
const WALK_TIMEOUT: Duration = Duration::from_secs(120);

/// The tree diff's bounds for a workspace with these transfer limits: as many entries
/// as two archives may hold, text up to a quarter of the transfer cap, the answer up
/// to the transfer cap.
pub fn limits_for(transfer: &TransferLimits) -> TreeDiffLimits {
    TreeDiffLimits {
        max_entries: transfer.max_entries.saturating_mul(2),
        max_text_bytes: transfer.max_total_bytes / 4,
        max_answer_bytes: transfer.max_total_bytes,
    }
}

/// Why the agent did not diff: it is too old, or declined with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declined(pub String);

/// Diff guest directory `root` against `baseline_root` in the agent. `Ok(Err(_))` means
/// the agent declined: use the archive path where there is one (see the module
/// documentation).
pub fn live_diff(
    channel: &mut dyn AgentChannel,
    root: &str,
    baseline_root: &str,
    limits: TreeDiffLimits,
    chunk_bytes: u64,
) -> Result<std::result::Result<TreeDiff, Declined>> {
    let request = Request::TreeDiffOpen {
        root: root.into(),
        baseline_root: baseline_root.into(),
        limits,
        full_walk: false,
    };
    Ok(match live_answer(channel, request, chunk_bytes)? {
        Ok(answer) => Ok(build(answer, &limits)?),
        Err(declined) => Err(declined),
    })
}

/// The agent's answer to `request` (a [`Request::TreeDiffOpen`]), read back and parsed
/// but not yet checked (that is [`build`]); `Ok(Err(_))`: declined, as for [`live_diff`].
/// Tests and benchmarks use it to see how the agent diffed (`tracked`) or to force a
/// full walk.
pub fn live_answer(
    channel: &mut dyn AgentChannel,
    request: Request,
    chunk_bytes: u64,
) -> Result<std::result::Result<TreeDiffAnswer, Declined>> {
    if !channel.supports(TREE_DIFF_CAPABILITY) {
        return Ok(Err(Declined(format!("the guest agent does not serve {TREE_DIFF_CAPABILITY}"))));
    }
    let Request::TreeDiffOpen { limits, .. } = &request else {
        return Err(PyroError::invalid("live_answer takes a tree_diff_open request"));
    };
    let limits = *limits;
    let (transfer_id, size) = match channel.call(request, WALK_TIMEOUT)? {
        Response::TransferOpened { transfer_id, size_bytes, .. } => (transfer_id, size_bytes),
        Response::Error { kind: ErrorKind::TooLarge | ErrorKind::Unsupported, message } => {
            tracing::debug!(%message, "the guest agent declined the tree diff");
            return Ok(Err(Declined(message)));
        }
        Response::Error { message, .. } => return Err(PyroError::Sandbox(message)),
        other => return Err(super::agent::unexpected("tree_diff_open", &other)),
    };
    transfer::check_id(&transfer_id)?;
    let read = (|| {
        if size > limits.max_answer_bytes {
            return Err(invalid(format!(
                "a tree diff answer of {size} bytes, more than the {} asked for",
                limits.max_answer_bytes
            )));
        }
        let mut document = Vec::new();
        let chunks = TransferLimits {
            max_total_bytes: limits.max_answer_bytes,
            chunk_bytes,
            max_entries: limits.max_entries,
        };
        transfer::read_chunks(channel, &transfer_id, size, &mut document, &chunks)?;
        Ok(document)
    })();
    transfer::close(channel, &transfer_id);
    let answer: TreeDiffAnswer = serde_json::from_slice(&read?)
        .map_err(|e| invalid(format!("a tree diff answer that is not valid JSON: {e}")))?;
    Ok(Ok(answer))
}

/// Which side of a change.
#[derive(Clone, Copy)]
enum Which {
    Old,
    New,
}

fn pick(change: &TreeChange, which: Which) -> Option<&TreeSide> {
    match which {
        Which::Old => change.old.as_ref(),
        Which::New => change.new.as_ref(),
    }
}

/// Check a forged or honest answer and build the diff from it.
pub fn build(answer: TreeDiffAnswer, limits: &TreeDiffLimits) -> Result<TreeDiff> {
    let count = answer.changes.len() as u64;
    if answer.scanned > limits.max_entries
        || count > answer.scanned
        || answer.candidates > answer.scanned
    {
        return Err(invalid(format!(
            "a tree diff answer with bad counts ({count} changes, {} scanned, {} candidates, \
             at most {} entries)",
            answer.scanned, answer.candidates, limits.max_entries
        )));
    }
    let mut changes: BTreeMap<String, TreeChange> = BTreeMap::new();
    let mut text_bytes = 0u64;
    for change in answer.changes {
        validate::tree_relative_path(&change.path)
            .map_err(|e| invalid(format!("a tree diff answer with a bad path: {e}")))?;
        if change.old.is_none() && change.new.is_none() {
            return Err(invalid(format!("a tree diff change of nothing: {:?}", change.path)));
        }
        let both_files = matches!(
            (&change.old, &change.new),
            (Some(a), Some(b)) if a.artifact_type == ArtifactType::File
                && b.artifact_type == ArtifactType::File
        );
        if change.content_changed && !both_files {
            return Err(invalid(format!(
                "a tree diff content change of non-files: {:?}",
                change.path
            )));
        }
        for side in [&change.old, &change.new].into_iter().flatten() {
            text_bytes = text_bytes.saturating_add(check_side(&change.path, side)?);
        }
        let path = change.path.clone();
        if changes.insert(path.clone(), change).is_some() {
            return Err(invalid(format!("a tree diff answer naming {path:?} twice")));
        }
    }
    if text_bytes > limits.max_text_bytes {
        return Err(invalid(format!(
            "a tree diff answer with {text_bytes} bytes of text, more than the {} asked for",
            limits.max_text_bytes
        )));
    }
    check_ancestors(&changes)?;
    Ok(diff::assemble(changes.iter().filter_map(|(path, change)| {
        let old = change.old.as_ref().map(|s| side_view(&changes, path, s, Which::Old));
        let new = change.new.as_ref().map(|s| side_view(&changes, path, s, Which::New));
        let changed = match (&change.old, &change.new) {
            (Some(a), Some(b)) if a.artifact_type == ArtifactType::Symlink => {
                a.link_target != b.link_target
            }
            _ => change.content_changed,
        };
        diff::classify(path, old, new, changed).map(|c| (path.clone(), c))
    })))
}

/// Check one side; returns its text length.
fn check_side(path: &str, side: &TreeSide) -> Result<u64> {
    let bad = |what: &str| invalid(format!("a tree diff answer with {what}: {path:?}"));
    if side.mode > 0o7777 {
        return Err(bad("a mode beyond the permission bits"));
    }
    match side.artifact_type {
        ArtifactType::Symlink if side.link_target.is_none() => {
            return Err(bad("a symlink without a target"))
        }
        ArtifactType::Symlink => {}
        _ if side.link_target.is_some() => return Err(bad("a link target on a non-symlink")),
        _ => {}
    }
    match &side.text {
        None => Ok(0),
        Some(_) if side.artifact_type != ArtifactType::File => Err(bad("text on a non-file")),
        Some(text) if diff::as_text(text.as_bytes()).is_none() => Err(bad("text with NUL bytes")),
        Some(text) => Ok(text.len() as u64),
    }
}

/// An entry may exist on a side only where each of its ancestors named in the answer
/// is a directory on that side.
fn check_ancestors(changes: &BTreeMap<String, TreeChange>) -> Result<()> {
    for (path, change) in changes {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            let parent = &path[..end + slash];
            if let Some(ancestor) = changes.get(parent) {
                for which in [Which::Old, Which::New] {
                    let is_dir = pick(ancestor, which)
                        .is_some_and(|s| s.artifact_type == ArtifactType::Directory);
                    if pick(change, which).is_some() && !is_dir {
                        return Err(invalid(format!(
                            "a tree diff answer with {path:?} below {parent:?}, which is not a \
                             directory on that side"
                        )));
                    }
                }
            }
            end += slash + 1;
        }
    }
    Ok(())
}

fn side_view<'a>(
    changes: &BTreeMap<String, TreeChange>,
    path: &str,
    side: &'a TreeSide,
    which: Which,
) -> Side<'a> {
    match side.artifact_type {
        ArtifactType::File => Side::File { text: side.text.as_deref(), mode: side.mode },
        ArtifactType::Symlink => Side::Symlink,
        ArtifactType::Directory => {
            // A directory on one side only has all its entries in the answer.
            let prefix = format!("{path}/");
            let empty = !changes
                .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                .take_while(|(key, _)| key.starts_with(&prefix))
                .any(|(_, c)| pick(c, which).is_some());
            Side::Dir { empty }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Forged answers of a hostile agent: each is an "invalid answer" error; a declined
    //! walk falls back to the archive diff.
    use super::*;
    use crate::backend::BackendError;
    use crate::runtime::agent::b64;

    /// A fake agent that answers a tree diff with `document`, announced as `announced`
    /// bytes (its real length when `None`), or with `refusal`.
    struct Forged {
        document: Vec<u8>,
        announced: Option<u64>,
        refusal: Option<Response>,
        capable: bool,
    }

    impl AgentChannel for Forged {
        fn call(
            &mut self,
            request: Request,
            _: Duration,
        ) -> std::result::Result<Response, BackendError> {
            Ok(match request {
                Request::TreeDiffOpen { .. } => match &self.refusal {
                    Some(r) => r.clone(),
                    None => Response::TransferOpened {
                        transfer_id: "t9".into(),
                        size_bytes: self.announced.unwrap_or(self.document.len() as u64),
                        artifact_type: None,
                        stats: Default::default(),
                    },
                },
                Request::TransferRead { offset, max_bytes, .. } => {
                    let start =
                        usize::try_from(offset).unwrap_or(usize::MAX).min(self.document.len());
                    let end = start.saturating_add(max_bytes as usize).min(self.document.len());
                    Response::Chunk { offset, data_b64: b64(&self.document[start..end]) }
                }
                _ => Response::Done,
            })
        }

        fn supports(&mut self, capability: &str) -> bool {
            self.capable && capability == TREE_DIFF_CAPABILITY
        }
    }

    fn limits() -> TreeDiffLimits {
        TreeDiffLimits { max_entries: 100, max_text_bytes: 64, max_answer_bytes: 4096 }
    }

    fn run_with(agent: &mut Forged) -> Result<std::result::Result<TreeDiff, Declined>> {
        live_diff(agent, "/workspace", pyro_protocol::BASELINE_MOUNT, limits(), 100)
    }

    fn run(document: serde_json::Value) -> Result<std::result::Result<TreeDiff, Declined>> {
        let document = serde_json::to_vec(&document).expect("json");
        run_with(&mut Forged { document, announced: None, refusal: None, capable: true })
    }

    fn file(text: Option<&str>) -> serde_json::Value {
        serde_json::json!({ "artifact_type": "file", "mode": 0o644, "text": text })
    }

    fn dir() -> serde_json::Value {
        serde_json::json!({ "artifact_type": "directory", "mode": 0o755 })
    }

    fn answer(changes: serde_json::Value) -> serde_json::Value {
        serde_json::json!({ "scanned": 10, "candidates": 1, "changes": changes })
    }

    #[test]
    fn an_honest_answer_builds_the_archive_diffs_result() {
        let d = run(answer(serde_json::json!([
            { "path": "new", "old": null, "new": dir() },
            { "path": "new/a.txt", "old": null, "new": file(Some("hi\n")) },
            { "path": "gone", "old": dir(), "new": null },
            { "path": "m.txt", "old": file(Some("a\n")), "new": file(Some("b\n")), "content_changed": true },
        ])))
        .expect("diff")
        .expect("not declined");
        let paths: Vec<(&str, &str)> =
            d.entries.iter().map(|e| (e.path.as_str(), e.status.as_str())).collect();
        // `new` is not empty, so only its file is an entry; `gone` was empty.
        assert_eq!(paths, [("gone", "deleted"), ("m.txt", "modified"), ("new/a.txt", "added")]);
        assert_eq!(d.patch, "--- a/m.txt\n+++ b/m.txt\n@@ -1 +1 @@\n-a\n+b\n--- /dev/null\n+++ b/new/a.txt\n@@ -0,0 +1 @@\n+hi\n");
    }

    #[test]
    fn forged_answers_are_invalid() {
        let ok = || file(None);
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            (
                "dotdot",
                answer(serde_json::json!([{ "path": "../etc/passwd", "old": null, "new": ok() }])),
                "bad path",
            ),
            (
                "absolute",
                answer(serde_json::json!([{ "path": "/etc/passwd", "old": null, "new": ok() }])),
                "bad path",
            ),
            (
                "not normal",
                answer(serde_json::json!([{ "path": "a//b", "old": null, "new": ok() }])),
                "bad path",
            ),
            (
                "empty",
                answer(serde_json::json!([{ "path": "", "old": null, "new": ok() }])),
                "bad path",
            ),
            (
                "twice",
                answer(serde_json::json!([
                { "path": "a", "old": null, "new": ok() }, { "path": "a", "old": null, "new": ok() }])),
                "twice",
            ),
            (
                "nothing",
                answer(serde_json::json!([{ "path": "a", "old": null, "new": null }])),
                "change of nothing",
            ),
            (
                "bad counts",
                serde_json::json!({ "scanned": 1000, "candidates": 0, "changes": [] }),
                "bad counts",
            ),
            (
                "more changes than scanned",
                serde_json::json!({ "scanned": 0, "candidates": 0,
                "changes": [{ "path": "a", "old": null, "new": ok() }] }),
                "bad counts",
            ),
            (
                "link without target",
                answer(serde_json::json!([
                { "path": "l", "old": null, "new": { "artifact_type": "symlink", "mode": 0o777 } }])),
                "without a target",
            ),
            (
                "text on a dir",
                answer(serde_json::json!([
                { "path": "d", "old": null, "new": { "artifact_type": "directory", "mode": 0o755, "text": "x" } }])),
                "text on a non-file",
            ),
            (
                "NUL text",
                answer(
                    serde_json::json!([{ "path": "a", "old": null, "new": file(Some("a\u{0}b")) }]),
                ),
                "NUL",
            ),
            (
                "mode",
                answer(serde_json::json!([
                { "path": "a", "old": null, "new": { "artifact_type": "file", "mode": 0o170000 } }])),
                "permission bits",
            ),
            (
                "too much text",
                answer(
                    serde_json::json!([{ "path": "a", "old": null, "new": file(Some(&"x".repeat(65))) }]),
                ),
                "bytes of text",
            ),
            (
                "below a file",
                answer(serde_json::json!([
                { "path": "f", "old": null, "new": ok() }, { "path": "f/x", "old": null, "new": ok() }])),
                "not a directory",
            ),
            (
                "content change of a dir",
                answer(serde_json::json!([
                { "path": "d", "old": dir(), "new": dir(), "content_changed": true }])),
                "non-files",
            ),
        ];
        for (case, document, expected) in cases {
            let err = run(document).expect_err(case).to_string();
            assert!(err.contains("invalid answer") && err.contains(expected), "{case}: {err}");
        }
        let mut garbage = Forged {
            document: b"{not json".to_vec(),
            announced: None,
            refusal: None,
            capable: true,
        };
        let err = run_with(&mut garbage).expect_err("garbage").to_string();
        assert!(err.contains("invalid answer") && err.contains("not valid JSON"), "{err}");
        let mut oversized = Forged {
            document: b"{}".to_vec(),
            announced: Some(1 << 30),
            refusal: None,
            capable: true,
        };
        let err = run_with(&mut oversized).expect_err("oversized").to_string();
        assert!(err.contains("invalid answer") && err.contains("more than the 4096"), "{err}");
        let mut short =
            Forged { document: b"{}".to_vec(), announced: Some(100), refusal: None, capable: true };
        let err = run_with(&mut short).expect_err("short").to_string();
        assert!(err.contains("invalid answer") && err.contains("ended at 2"), "{err}");
    }

    #[test]
    fn declined_walks_and_older_agents_use_the_archive_diff() {
        for kind in [ErrorKind::TooLarge, ErrorKind::Unsupported] {
            let refusal = Some(Response::Error { kind, message: "no".into() });
            let mut agent =
                Forged { document: Vec::new(), announced: None, refusal, capable: true };
            assert_eq!(run_with(&mut agent).expect("declined"), Err(Declined("no".into())));
        }
        let mut old =
            Forged { document: Vec::new(), announced: None, refusal: None, capable: false };
        assert!(run_with(&mut old).expect("old agent").is_err());
        let refusal = Some(Response::Error { kind: ErrorKind::Io, message: "disk on fire".into() });
        let mut broken = Forged { document: Vec::new(), announced: None, refusal, capable: true };
        assert!(run_with(&mut broken).expect_err("io").to_string().contains("disk on fire"));
    }
}
