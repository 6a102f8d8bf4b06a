//! The login environment, computed once and reused by every exec.
//!
//! An exec used to run `/bin/sh -lc <command>`: every call ran Debian's `/etc/profile`
//! (and `/etc/profile.d/*.sh`) and root's `~/.profile`, which start `id` and `mesg`, and
//! under TCG every fork+exec costs tens of milliseconds. The profile's lasting effect is
//! almost only the environment it exports, so the agent captures that environment once
//! (`/bin/sh -lc 'exec <agent> --print-env0'`) and each exec starts a single
//! `/bin/sh -c <command>` with it (the request's own variables on top).
//!
//! # What differs from `sh -lc`
//!
//! - Profile side effects other than exported variables do not happen per exec: shell
//!   options, functions and aliases the profile defines, `umask`, `mesg`, anything the
//!   profile prints. (The environment is the same.)
//! - The request's variables are applied after the profile instead of before it, so a
//!   `PATH` passed by the caller is used as given instead of being reset by
//!   `/etc/profile`.
//!
//! # Staying current
//!
//! The capture is keyed by a fingerprint of the profile files (`/etc/profile`,
//! `/etc/profile.d` and its entries, `$HOME/.profile`: existence, size, mtime, inode).
//! Any change is seen at the next exec (a few `stat` calls, no process) and the
//! environment is captured again. If the capture fails, execs fall back to `sh -lc`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Argument that makes the agent binary print its environment, NUL-separated.
pub const PRINT_ENV_ARG: &str = "--print-env0";

/// Longest the capture may take before it counts as failed.
const CAPTURE_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of captured environment accepted.
const MAX_ENV_BYTES: usize = 1024 * 1024;

/// Variables the shell sets for itself: taken from each exec's own shell, not the capture.
const SHELL_OWN: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_"];

/// An environment: `(name, value)` pairs.
pub type EnvVars = Arc<Vec<(OsString, OsString)>>;

/// Identity of one profile file (or its absence).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    stamp: Option<(u64, i64, i64, u64)>,
}

fn stamp(path: &Path) -> FileStamp {
    let stamp =
        std::fs::metadata(path).ok().map(|m| (m.size(), m.mtime(), m.mtime_nsec(), m.ino()));
    FileStamp { path: path.to_path_buf(), stamp }
}

/// The fingerprint of everything a login `sh` reads.
fn fingerprint(home: &Path) -> Vec<FileStamp> {
    let mut stamps = vec![stamp(Path::new("/etc/profile")), stamp(Path::new("/etc/profile.d"))];
    if let Ok(entries) = std::fs::read_dir("/etc/profile.d") {
        let mut names: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        names.sort();
        stamps.extend(names.iter().map(|p| stamp(p)));
    }
    stamps.push(stamp(&home.join(".profile")));
    stamps
}

/// Parse `env -0` style output.
fn parse_env0(bytes: &[u8]) -> Vec<(OsString, OsString)> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let eq = entry.iter().position(|b| *b == b'=')?;
            let (name, value) = (&entry[..eq], &entry[eq + 1..]);
            if name.is_empty() || SHELL_OWN.iter().any(|own| own.as_bytes() == name) {
                return None;
            }
            Some((OsString::from_vec(name.to_vec()), OsString::from_vec(value.to_vec())))
        })
        .collect()
}

/// Print this process's environment NUL-separated on stdout (the `--print-env0` mode).
pub fn print_env0(out: &mut impl std::io::Write) -> std::io::Result<()> {
    for (name, value) in std::env::vars_os() {
        out.write_all(name.as_bytes())?;
        out.write_all(b"=")?;
        out.write_all(value.as_bytes())?;
        out.write_all(b"\0")?;
    }
    out.flush()
}

/// Run the login shell once and return the environment it ends with.
fn capture(agent: &Path) -> Option<Vec<(OsString, OsString)>> {
    let mut child = Command::new("/bin/sh")
        .arg("-lc")
        .arg(format!("exec \"$0\" {PRINT_ENV_ARG}"))
        .arg(agent)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut bytes = Vec::new();
        let _ = stdout.take(MAX_ENV_BYTES as u64 + 1).read_to_end(&mut bytes);
        bytes
    });
    let deadline = Instant::now() + CAPTURE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let bytes = reader.join().ok()?;
    if !status?.success() || bytes.len() > MAX_ENV_BYTES {
        return None;
    }
    let vars = parse_env0(&bytes);
    vars.iter().any(|(name, _)| name == OsStr::new("PATH")).then_some(vars)
}

#[derive(Debug)]
struct Cached {
    fingerprint: Vec<FileStamp>,
    vars: Option<EnvVars>,
}

/// The cached login environment of one agent (see the module doc).
#[derive(Debug, Default)]
pub struct LoginEnv {
    cached: Mutex<Option<Cached>>,
}

impl LoginEnv {
    /// The login environment, captured again when a profile file changed; `None` when
    /// the capture fails (the caller then runs `sh -lc`).
    pub fn get(&self) -> Option<EnvVars> {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| "/root".into());
        let now = fingerprint(&home);
        // Held during the capture, so concurrent first execs capture once.
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = cached.as_ref().filter(|c| c.fingerprint == now) {
            return c.vars.clone();
        }
        let vars = std::env::current_exe().ok().and_then(|agent| capture(&agent)).map(Arc::new);
        *cached = Some(Cached { fingerprint: now, vars: vars.clone() });
        vars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env0_parsing_drops_shell_owned_and_malformed_entries() {
        let vars = parse_env0(b"PATH=/bin\0PWD=/x\0A=b=c\0noequals\0=v\0SHLVL=1\0EMPTY=\0");
        let names: Vec<&OsStr> = vars.iter().map(|(n, _)| n.as_os_str()).collect();
        assert_eq!(names, ["PATH", "A", "EMPTY"]);
        assert_eq!(vars[1].1, "b=c");
        assert_eq!(vars[2].1, "");
    }

    #[test]
    fn fingerprint_sees_a_changed_profile() {
        let home = tempfile::tempdir().expect("tempdir");
        let before = fingerprint(home.path());
        std::fs::write(home.path().join(".profile"), b"export X=1\n").expect("write");
        assert_ne!(before, fingerprint(home.path()));
    }
}
