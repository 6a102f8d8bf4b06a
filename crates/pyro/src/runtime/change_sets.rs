//! Change sets of a workspace volume: the paths of `/workspace` that may differ from the
//! baseline in one layer, as the guest agent tracks them (capability
//! [`CHANGE_WATCH_CAPABILITY`], see `pyro_agent`'s `change_watch`).
//!
//! A set is taken while `/workspace` is frozen for a snapshot (nothing can change then,
//! so it describes the frozen layer exactly), stored next to the layer as
//! `<layer file>.changes.json`, and handed back to the agent when a reset puts a fresh
//! overlay above that layer: the first diff after the reset then compares those paths
//! (plus what changed since) instead of walking both trees. A clean stop does the same
//! for the active overlay ([`freeze_and_take`], stored as `<active>.changes.json`), and
//! the next start consumes it ([`consume_stopped`]). A set is always relative to
//! the baseline, never to the layer below, so merging layers on a snapshot delete leaves
//! every other set valid. A missing or invalid set means unknown: the agent's first diff
//! walks both trees whole and rebuilds its own set. The guest is hostile: a set is
//! bounded ([`MAX_CHANGE_SET_PATHS`], [`MAX_CHANGE_SET_BYTES`]) and every path checked
//! relative and normalised; a bad one only costs that workspace a full walk.

use super::agent::{self, QUICK};
use super::state::{self, WorkspaceDir};
use super::validate;
use crate::backend::AgentChannel;
use pyro_protocol::{
    Request, Response, CHANGE_WATCH_CAPABILITY, MAX_CHANGE_SET_BYTES, MAX_CHANGE_SET_PATHS,
};
use std::path::PathBuf;

/// `paths` when within the bounds and every one relative and normalised.
pub fn checked(paths: Vec<String>) -> Option<Vec<String>> {
    let bytes: usize = paths.iter().map(String::len).sum();
    let ok = paths.len() <= MAX_CHANGE_SET_PATHS
        && bytes <= MAX_CHANGE_SET_BYTES
        && paths.iter().all(|p| validate::tree_relative_path(p).is_ok());
    ok.then_some(paths)
}

/// How long the agent keeps `/workspace` frozen for a clean stop at most.
pub const STOP_FREEZE_MS: u64 = 20_000;

/// A clean stop's set counts only when the guest was gone within this long of the
/// freeze: the agent thaws by itself at [`STOP_FREEZE_MS`] (timed in the guest from
/// when it got the request, so later than the host's clock says), and a write after
/// a thaw would make the set stale. Half the deadline leaves room for clock skew.
pub const STOP_WITHIN: std::time::Duration = std::time::Duration::from_millis(STOP_FREEZE_MS / 2);

/// Freeze `/workspace` and take the candidate set, for a clean stop: the guest is then
/// stopped while still frozen, so nothing changes after the set was taken. `None` when
/// the agent does not track changes or has no set (then `/workspace` is thawed again).
pub fn freeze_and_take(channel: &mut dyn AgentChannel) -> Option<Vec<String>> {
    if !channel.supports(CHANGE_WATCH_CAPABILITY) {
        return None;
    }
    let freeze = Request::FreezeWorkspace { thaw_after_ms: STOP_FREEZE_MS };
    if let Err(e) = agent::call(channel, freeze, QUICK) {
        tracing::debug!(error = %e, "could not freeze /workspace for a clean stop");
        return None;
    }
    let paths = take(channel);
    if paths.is_none() {
        let _ = agent::call(channel, Request::ThawWorkspace, QUICK);
    }
    paths
}

/// The set a clean stop stored for the overlay `active`, removed as it is read: a
/// start uses it once, and one that dies after reading it leaves nothing stale behind
/// (the next start walks both trees).
pub fn consume_stopped(dir: &WorkspaceDir, active: &str) -> Option<Vec<String>> {
    let paths = load(dir, active);
    let path = path_of(dir, active);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            // Durable before the guest boots: a crash must not find it again.
            if let Ok(parent) = std::fs::File::open(dir.volume()) {
                let _ = parent.sync_all();
            }
            paths
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "could not remove a used change set");
            None
        }
    }
}

/// The agent's candidate set now (`None`: unknown, not served, or invalid).
pub fn take(channel: &mut dyn AgentChannel) -> Option<Vec<String>> {
    if !channel.supports(CHANGE_WATCH_CAPABILITY) {
        return None;
    }
    match agent::call(channel, Request::ChangeCandidates, QUICK) {
        Ok(Response::ChangeCandidates { paths }) => {
            let paths = paths.and_then(checked);
            if paths.is_none() {
                tracing::debug!("the guest agent has no usable change set");
            }
            paths
        }
        Ok(other) => {
            tracing::warn!(answer = ?other, "unexpected answer to change_candidates");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not take the change set");
            None
        }
    }
}

fn path_of(dir: &WorkspaceDir, layer: &str) -> PathBuf {
    dir.volume().join(format!("{layer}.changes.json"))
}

/// Store the set of the layer in file `layer` (best effort: without it the first diff
/// after a reset onto the layer walks both trees).
pub fn save(dir: &WorkspaceDir, layer: &str, paths: &[String]) {
    if let Err(e) = state::write_json(&path_of(dir, layer), &paths) {
        tracing::warn!(error = %e, layer, "could not store the change set of a layer");
    }
}

/// The stored set of the layer in file `layer`, if any and valid.
pub fn load(dir: &WorkspaceDir, layer: &str) -> Option<Vec<String>> {
    let path = path_of(dir, layer);
    // Bounded before it is read: the paths and JSON quoting fit in twice the byte cap.
    let len = std::fs::metadata(&path).ok()?.len();
    if len > 2 * MAX_CHANGE_SET_BYTES as u64 + 4 * MAX_CHANGE_SET_PATHS as u64 {
        return None;
    }
    state::read_json::<Vec<String>>(&path).ok().and_then(checked)
}

/// Remove the stored set of the layer in file `layer` (missing: not an error).
pub fn remove(dir: &WorkspaceDir, layer: &str) {
    let _ = std::fs::remove_file(path_of(dir, layer));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_checked_and_bounded() {
        assert_eq!(checked(vec!["a/b".into(), "c".into()]), Some(vec!["a/b".into(), "c".into()]));
        assert_eq!(checked(Vec::new()), Some(Vec::new()));
        for bad in ["../etc", "/etc/passwd", "a//b", "a/./b", "", "a\0b"] {
            assert_eq!(checked(vec![bad.into()]), None, "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_CHANGE_SET_PATHS).map(|i| format!("f{i}")).collect();
        assert_eq!(checked(many), None);
        assert_eq!(checked(vec!["x".repeat(MAX_CHANGE_SET_BYTES + 1)]), None);
    }

    /// A guest agent that answers `change_candidates` with `paths` (and `done` to
    /// everything else), naming the capability when `capable`.
    struct Forged {
        paths: Option<Vec<String>>,
        capable: bool,
        asked: Vec<&'static str>,
    }

    impl AgentChannel for Forged {
        fn call(
            &mut self,
            request: Request,
            _: std::time::Duration,
        ) -> std::result::Result<Response, crate::backend::BackendError> {
            Ok(match request {
                Request::ChangeCandidates => {
                    self.asked.push("candidates");
                    Response::ChangeCandidates { paths: self.paths.clone() }
                }
                Request::FreezeWorkspace { .. } => {
                    self.asked.push("freeze");
                    Response::Done
                }
                Request::ThawWorkspace => {
                    self.asked.push("thaw");
                    Response::Done
                }
                _ => Response::Done,
            })
        }

        fn supports(&mut self, capability: &str) -> bool {
            self.capable && capability == CHANGE_WATCH_CAPABILITY
        }
    }

    #[test]
    fn forged_or_missing_sets_are_unknown() {
        let agent = |paths: Option<Vec<&str>>, capable| Forged {
            paths: paths.map(|p| p.into_iter().map(String::from).collect()),
            capable,
            asked: Vec::new(),
        };
        assert_eq!(
            take(&mut agent(Some(vec!["a", "b/c"]), true)),
            Some(vec!["a".into(), "b/c".into()])
        );
        for forged in [vec!["../../etc/shadow"], vec!["/root"], vec!["a//b"], vec![""]] {
            assert_eq!(take(&mut agent(Some(forged.clone()), true)), None, "{forged:?}");
        }
        assert_eq!(take(&mut agent(None, true)), None);
        let mut old = agent(Some(vec!["a"]), false);
        assert_eq!(take(&mut old), None);
        assert!(old.asked.is_empty(), "an agent without the capability is not asked");
        // A clean stop with no usable set thaws again; with one it stays frozen.
        let mut bad = agent(Some(vec!["../x"]), true);
        assert_eq!(freeze_and_take(&mut bad), None);
        assert_eq!(bad.asked, ["freeze", "candidates", "thaw"]);
        let mut good = agent(Some(vec!["x"]), true);
        assert_eq!(freeze_and_take(&mut good), Some(vec!["x".into()]));
        assert_eq!(good.asked, ["freeze", "candidates"]);
    }

    #[test]
    fn stored_sets_round_trip_and_bad_files_are_unknown() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = WorkspaceDir::new(tmp.path(), "ws1");
        std::fs::create_dir_all(dir.volume()).expect("mkdir");
        assert_eq!(load(&dir, "active-1.qcow2"), None);
        save(&dir, "active-1.qcow2", &["src/a.rs".into()]);
        assert_eq!(load(&dir, "active-1.qcow2"), Some(vec!["src/a.rs".into()]));
        std::fs::write(path_of(&dir, "active-2.qcow2"), r#"["../escape"]"#).expect("write");
        assert_eq!(load(&dir, "active-2.qcow2"), None);
        std::fs::write(path_of(&dir, "active-3.qcow2"), "not json").expect("write");
        assert_eq!(load(&dir, "active-3.qcow2"), None);
        remove(&dir, "active-1.qcow2");
        assert_eq!(load(&dir, "active-1.qcow2"), None);
        // A stop's set serves one start only.
        save(&dir, "active-4.qcow2", &["x".into()]);
        assert_eq!(consume_stopped(&dir, "active-4.qcow2"), Some(vec!["x".into()]));
        assert_eq!(consume_stopped(&dir, "active-4.qcow2"), None);
        assert!(!path_of(&dir, "active-4.qcow2").exists());
    }
}
