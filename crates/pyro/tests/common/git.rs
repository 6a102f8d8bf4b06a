//! `git` for tests that build project checkouts: a fixed identity and no commit
//! signing, so a developer's own git configuration cannot change the outcome.

use std::path::Path;
use std::process::Command;

/// Run `git -C dir args...`; panic with git's stderr when it fails; trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
