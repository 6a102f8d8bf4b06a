//! Totals of `/workspace` as an archive of it would count them (protocol 1.12,
//! [`pyro_protocol::Request::TreeTotals`]): entries below the root (directories,
//! regular files, symlinks; special files do not count) and the bytes of the regular
//! files. A snapshot reports them.
//!
//! Walking the whole tree costs what exists, and under TCG with a cold cache (every
//! reset starts a fresh guest) that is seconds for a repository. With the change set
//! known (`change_watch`), the totals are the baseline's (computed by the host when it
//! made the baseline) plus, for each candidate, what is below it now minus what was
//! below it in the baseline: no other path differs, so no other path changes a total.
//! Candidates are visited as a tracked diff visits them ([`super::visit_candidates`]),
//! so an entry is counted once; a second name of a baseline inode (whose size may have
//! changed under a name that is no candidate) makes the caller count the tree whole.

use super::{kind, Tree, Walker};
use crate::error::SandboxError;
use pyro_protocol::{ArtifactType, TreeDiffLimits, TreeTotals};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// No bounds: counting keeps nothing per entry.
const UNBOUNDED: TreeDiffLimits =
    TreeDiffLimits { max_entries: u64::MAX, max_text_bytes: 0, max_answer_bytes: 0 };

/// Entries and regular-file bytes at and below `rel` of `tree` (nothing for an absent
/// entry or a special file); never follows a symlink or leaves the file system.
fn subtree(walker: &mut Walker, tree: Tree, rel: &Path) -> Result<(u64, u64), SandboxError> {
    let Some(meta) = walker.stat(tree, rel)? else { return Ok((0, 0)) };
    match kind(&meta) {
        None => Ok((0, 0)),
        Some(ArtifactType::File) => Ok((1, meta.size())),
        Some(ArtifactType::Symlink) => Ok((1, 0)),
        Some(ArtifactType::Directory) => {
            walker.same_fs(tree, rel, &meta)?;
            let mut total = (1u64, 0u64);
            for name in walker.names(tree, rel)? {
                let (entries, bytes) = subtree(walker, tree, &rel.join(name))?;
                total = (total.0.saturating_add(entries), total.1.saturating_add(bytes));
            }
            Ok(total)
        }
    }
}

/// The totals of the tree at `root`, walked whole.
pub(crate) fn count_tree(root: &Path) -> Result<TreeTotals, SandboxError> {
    let mut walker = Walker::new(root, root, UNBOUNDED)?;
    let (entries, file_bytes) = subtree(&mut walker, Tree::Current, Path::new(""))?;
    // The root itself is not an entry of its archive.
    Ok(TreeTotals { entries: entries.saturating_sub(1), file_bytes })
}

/// The totals of `current`, knowing those of `baseline` and that only `candidates` (as
/// for `diff_candidates`) may differ. `None`: count the tree whole (a second name of a
/// baseline inode was met, or `baseline_totals` cannot be the baseline's: a result
/// below zero).
pub(crate) fn count_candidates(
    current: &Path,
    baseline: &Path,
    baseline_totals: TreeTotals,
    candidates: &BTreeMap<PathBuf, bool>,
) -> Result<Option<TreeTotals>, SandboxError> {
    let mut walker = Walker::new(current, baseline, UNBOUNDED)?;
    walker.tracked = true;
    let mut entries = i128::from(baseline_totals.entries);
    let mut bytes = i128::from(baseline_totals.file_bytes);
    let whole = super::visit_candidates(&mut walker, candidates, |walker, path| {
        let now = subtree(walker, Tree::Current, path)?;
        let before = subtree(walker, Tree::Baseline, path)?;
        entries += i128::from(now.0) - i128::from(before.0);
        bytes += i128::from(now.1) - i128::from(before.1);
        Ok(())
    })?;
    if !whole {
        return Ok(None);
    }
    match (u64::try_from(entries), u64::try_from(bytes)) {
        (Ok(entries), Ok(file_bytes)) => Ok(Some(TreeTotals { entries, file_bytes })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn set(items: &[(&str, bool)]) -> BTreeMap<PathBuf, bool> {
        items.iter().map(|(p, d)| (PathBuf::from(p), *d)).collect()
    }

    #[test]
    fn candidates_added_to_the_baseline_give_the_whole_count() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (base, cur) = (tmp.path().join("base"), tmp.path().join("cur"));
        for tree in [&base, &cur] {
            fs::create_dir_all(tree.join("keep/deep")).expect("mkdir");
            fs::create_dir_all(tree.join("gone/sub")).expect("mkdir");
            fs::write(tree.join("keep/deep/k"), "kkk").expect("write");
            fs::write(tree.join("gone/sub/g"), "gggg").expect("write");
            fs::write(tree.join("grows"), "1").expect("write");
            std::os::unix::fs::symlink("keep", tree.join("link")).expect("symlink");
        }
        fs::remove_dir_all(cur.join("gone")).expect("rm");
        fs::write(cur.join("grows"), "12345").expect("write");
        fs::create_dir_all(cur.join("new/inner")).expect("mkdir");
        fs::write(cur.join("new/inner/n"), "nn").expect("write");
        fs::remove_file(cur.join("link")).expect("rm");
        fs::write(cur.join("link"), "now a file").expect("write");
        let base_totals = count_tree(&base).expect("base");
        assert_eq!(base_totals, TreeTotals { entries: 8, file_bytes: 3 + 4 + 1 });
        let candidates = set(&[
            ("gone/sub/g", false),
            ("grows", false),
            ("new", true),
            ("new/inner/n", false),
            ("link", true),
            ("keep", false),
            ("never/was", false),
        ]);
        let tracked =
            count_candidates(&cur, &base, base_totals, &candidates).expect("count").expect("known");
        assert_eq!(tracked, count_tree(&cur).expect("cur"));
        // The candidates are what is counted: leave one out and the total is wrong.
        let short = set(&[("gone/sub/g", false), ("grows", false), ("link", true)]);
        let wrong = count_candidates(&cur, &base, base_totals, &short).expect("count");
        assert_ne!(wrong, Some(tracked));
        // Totals that cannot be the baseline's make the caller count whole.
        let none = TreeTotals::default();
        assert_eq!(count_candidates(&cur, &base, none, &set(&[("gone", true)])).expect("c"), None);
    }
}
