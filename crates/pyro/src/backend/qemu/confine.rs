//! Who QEMU runs as, and what it can open.
//!
//! When pyro runs as root, every QEMU runs as the unprivileged system user
//! [`QEMU_USER`] (made by `scripts/setup`; `$PYRO_QEMU_USER` names another one). The
//! switch happens in the forked child before `exec` (`spawn.rs`: setgroups, setresgid,
//! setresuid), not with QEMU's `-runas`: QEMU 7.2 changes uid after it installed its
//! seccomp filter, and `elevateprivileges=deny` kills it with SIGSYS when it does.
//! When pyro runs as an ordinary user nothing changes: QEMU keeps pyro's uid.
//!
//! What the QEMU user can reach: its sandbox dir (made its own, mode 0700; QEMU names
//! every file in it relative to its working directory, so no directory above it needs
//! to be searchable: `/root` stays 0700) and the files pyro opens for it and passes as
//! `/proc/self/fd/<n>`: kernel, initramfs and every image of the disk's backing chain
//! (read-only), and a template's RAM file. The workspace's `secrets/` (root, 0700) and
//! every other workspace's directory are out of its reach by path.
//!
//! One uid serves all workspaces (see docs/security.md, "Confinement", for why and what
//! that leaves open).

use super::super::BackendError;
use super::launch::run_qemu_img;
use super::layout::SandboxPaths;
use super::spawn::Credentials;
use std::path::{Path, PathBuf};

/// The user QEMU runs as when pyro is root.
pub const QEMU_USER: &str = "pyro-qemu";
/// Environment variable naming another user for QEMU (when pyro is root).
pub const QEMU_USER_ENV: &str = "PYRO_QEMU_USER";

/// The identity QEMU gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QemuIdentity {
    /// pyro is not root: QEMU runs as pyro's user.
    Inherited {
        /// pyro's uid.
        uid: u32,
    },
    /// pyro is root and QEMU drops to this user.
    Dropped {
        /// User name.
        user: String,
        /// uid and gid.
        credentials: Credentials,
    },
    /// pyro is root but the QEMU user does not exist: QEMU runs as root.
    Root {
        /// Why, and what to do.
        reason: String,
    },
}

impl QemuIdentity {
    /// The credentials to switch to, if any.
    pub fn credentials(&self) -> Option<Credentials> {
        match self {
            QemuIdentity::Dropped { credentials, .. } => Some(*credentials),
            _ => None,
        }
    }

    /// The uid QEMU runs as.
    pub fn uid(&self) -> u32 {
        match self {
            QemuIdentity::Inherited { uid } => *uid,
            QemuIdentity::Dropped { credentials, .. } => credentials.uid,
            QemuIdentity::Root { .. } => 0,
        }
    }

    /// One line for `doctor`.
    pub fn describe(&self) -> String {
        match self {
            QemuIdentity::Inherited { uid } => {
                format!("QEMU runs as pyro's own user (uid {uid}; pyro is not root)")
            }
            QemuIdentity::Dropped { user, credentials } => format!(
                "QEMU runs as {user} (uid {}, gid {}), not root",
                credentials.uid, credentials.gid
            ),
            QemuIdentity::Root { reason } => format!("QEMU runs as root: {reason}"),
        }
    }
}

/// pyro's effective uid.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// pyro's effective gid.
pub fn effective_gid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// Find `user` in a passwd file's text: `(uid, gid)`.
fn lookup_user(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// The identity the next QEMU gets (see the module doc).
pub fn qemu_identity() -> QemuIdentity {
    let euid = effective_uid();
    if euid != 0 {
        return QemuIdentity::Inherited { uid: euid };
    }
    let user = std::env::var(QEMU_USER_ENV)
        .ok()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| QEMU_USER.to_owned());
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    match lookup_user(&passwd, &user) {
        Some((0, _)) => QemuIdentity::Root { reason: format!("user {user} has uid 0") },
        Some((uid, gid)) => QemuIdentity::Dropped { user, credentials: Credentials { uid, gid } },
        None => QemuIdentity::Root {
            reason: format!("user {user} does not exist; run scripts/setup to create it"),
        },
    }
}

/// Make the sandbox dir and the files QEMU opens in it by name (disk, console log)
/// belong to `credentials`. `lchown` never follows a symlink the guest's QEMU may have
/// left there.
pub fn hand_over_sandbox(
    paths: &SandboxPaths,
    credentials: Credentials,
) -> Result<(), BackendError> {
    use std::os::unix::fs::PermissionsExt;
    let chown =
        |path: &Path| std::os::unix::fs::lchown(path, Some(credentials.uid), Some(credentials.gid));
    chown(paths.dir()).map_err(|e| {
        BackendError::io(format!("cannot give {} to the QEMU user", paths.dir().display()), e)
    })?;
    std::fs::set_permissions(paths.dir(), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| BackendError::io(format!("cannot chmod {}", paths.dir().display()), e))?;
    for file in [paths.disk(), paths.console_log()] {
        match chown(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(BackendError::io(
                    format!("cannot give {} to the QEMU user", file.display()),
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// One image of a disk's backing chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingImage {
    /// Its format (`raw`, `qcow2`).
    pub format: String,
    /// Its path.
    pub path: PathBuf,
}

/// Formats a backing image may have (anything else is refused, not passed to QEMU).
const BACKING_FORMATS: &[&str] = &["raw", "qcow2"];

/// Parse `qemu-img info --backing-chain --output=json`: the images below the disk.
fn parse_backing_chain(json: &str) -> Result<Vec<BackingImage>, String> {
    let chain: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("unreadable qemu-img info: {e}"))?;
    let mut images = Vec::new();
    for image in chain.iter().skip(1) {
        let path = image.get("filename").and_then(|v| v.as_str()).ok_or("no filename")?;
        let format = image.get("format").and_then(|v| v.as_str()).ok_or("no format")?;
        if !BACKING_FORMATS.contains(&format) {
            return Err(format!("backing image {path} has format {format}"));
        }
        images.push(BackingImage { format: format.to_owned(), path: PathBuf::from(path) });
    }
    Ok(images)
}

/// The backing chain of `disk` (nearest first), read by `qemu-img` as pyro.
pub fn backing_chain(disk: &Path) -> Result<Vec<BackingImage>, BackendError> {
    let output = run_qemu_img(|c| {
        c.args(["info", "-U", "--backing-chain", "--output=json", "-f", "qcow2"]).arg(disk);
    })?;
    if !output.status.success() {
        return Err(BackendError::Boot(format!(
            "qemu-img cannot read the backing chain of {}: {}",
            disk.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_backing_chain(&String::from_utf8_lossy(&output.stdout)).map_err(|e| {
        BackendError::Boot(format!("the backing chain of {} is unusable: {e}", disk.display()))
    })
}

/// How a running QEMU is confined, read from `/proc/<pid>` (the truth, not what pyro
/// meant to do): `confinement_*` metadata entries.
pub fn live_confinement(pid: i32) -> std::collections::BTreeMap<String, String> {
    let mut facts = std::collections::BTreeMap::new();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().next().unwrap_or_default().to_owned())
    };
    let seccomp = match field("Seccomp:").as_deref() {
        Some("2") => "filter",
        Some("1") => "strict",
        Some(_) => "none",
        None => "unknown",
    };
    let uid = field("Uid:");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let cgroup = parse_pyro_cgroup(&cgroups);
    let mut layers = Vec::new();
    if seccomp == "filter" {
        layers.push("seccomp".to_owned());
    }
    facts.insert("confinement_seccomp".into(), seccomp.into());
    if let Some(uid) = uid {
        if uid != "0" {
            layers.push(format!("uid {uid}"));
        }
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        if let Some(user) = passwd.lines().find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)? == uid).then(|| name.to_owned())
        }) {
            facts.insert("confinement_user".into(), user);
        }
        facts.insert("confinement_uid".into(), uid);
    }
    match cgroup {
        Some(path) => {
            layers.push("cgroup".into());
            facts.insert("confinement_cgroup".into(), path);
        }
        None => {
            facts.insert("confinement_cgroup".into(), "none".into());
        }
    }
    facts.insert(
        "confinement".into(),
        if layers.is_empty() { "none".into() } else { layers.join(", ") },
    );
    facts
}

/// The pyro cgroup in `/proc/<pid>/cgroup` text (`/pyro/sandbox-...`), if any.
fn parse_pyro_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .find(|path| path.starts_with("/pyro/sandbox-"))
        .map(str::to_owned)
}

/// Environment variable: the free space (MiB) a create needs on the sandbox's file system.
pub const MIN_FREE_ENV: &str = "PYRO_MIN_FREE_MIB";
/// Default of [`MIN_FREE_ENV`]: room for one overlay to fill a default image, plus slack.
pub const DEFAULT_MIN_FREE_MIB: u64 = 2048;

/// The free-space margin: `$PYRO_MIN_FREE_MIB`, else [`DEFAULT_MIN_FREE_MIB`].
pub fn min_free_mib() -> u64 {
    std::env::var(MIN_FREE_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_MIN_FREE_MIB)
}

/// MiB available to unprivileged users on the file system holding `path`.
pub fn free_mib(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: all-zero is a valid statvfs to be filled in.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid path and `stats` a valid out pointer.
    // JUSTIFICATION: std has no free-space query.
    if unsafe { libc::statvfs(c.as_ptr(), &mut stats) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize) >> 20)
}

/// Refuse a new guest disk in `dir` when its file system has less than the margin free.
/// A qcow2 overlay never grows past its virtual size (plus metadata): nothing pyro asks
/// of QEMU resizes it, and the guest cannot.
pub fn check_free_space(dir: &Path) -> Result<(), BackendError> {
    let needed_mib = min_free_mib();
    let free = free_mib(dir).map_err(|e| {
        BackendError::io(format!("cannot read the free space of {}", dir.display()), e)
    })?;
    if free < needed_mib {
        return Err(BackendError::NoSpace { path: dir.to_path_buf(), free_mib: free, needed_mib });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_and_the_margin_refuses() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(free_mib(tmp.path()).expect("statvfs") > 0);
        assert!(free_mib(&tmp.path().join("missing")).is_err());
    }

    #[test]
    fn users_are_found_in_passwd_text() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      pyro-qemu:x:998:997::/nonexistent:/usr/sbin/nologin\n\
                      broken:x:abc:1::/:/bin/sh\n";
        assert_eq!(lookup_user(passwd, "pyro-qemu"), Some((998, 997)));
        assert_eq!(lookup_user(passwd, "root"), Some((0, 0)));
        assert_eq!(lookup_user(passwd, "broken"), None);
        assert_eq!(lookup_user(passwd, "pyro"), None, "no prefix matches");
    }

    #[test]
    fn backing_chains_parse_and_odd_formats_are_refused() {
        let json = r#"[{"filename":"disk.qcow2","format":"qcow2"},
                       {"filename":"/c/t/disk.qcow2","format":"qcow2"},
                       {"filename":"/c/e/rootfs.ext4","format":"raw"}]"#;
        assert_eq!(
            parse_backing_chain(json).expect("chain"),
            [
                BackingImage { format: "qcow2".into(), path: "/c/t/disk.qcow2".into() },
                BackingImage { format: "raw".into(), path: "/c/e/rootfs.ext4".into() },
            ]
        );
        assert!(parse_backing_chain(
            r#"[{"filename":"d","format":"qcow2"},{"filename":"x","format":"vvfat"}]"#
        )
        .is_err());
        assert!(parse_backing_chain("not json").is_err());
    }

    #[test]
    fn the_pyro_cgroup_is_found_in_proc_cgroup_text() {
        let v1 = "4:memory:/pyro/sandbox-00ff\n1:cpu:/pyro/sandbox-00ff\n0::/\n";
        assert_eq!(parse_pyro_cgroup(v1).as_deref(), Some("/pyro/sandbox-00ff"));
        assert_eq!(parse_pyro_cgroup("0::/user.slice\n"), None);
    }

    #[test]
    fn our_own_process_reports_its_facts() {
        let facts = live_confinement(std::process::id() as i32);
        assert!(facts.contains_key("confinement_seccomp"), "{facts:?}");
        assert_eq!(facts.get("confinement_uid"), Some(&effective_uid().to_string()));
    }

    #[test]
    fn identity_descriptions_say_who_qemu_runs_as() {
        let dropped = QemuIdentity::Dropped {
            user: "pyro-qemu".into(),
            credentials: Credentials { uid: 998, gid: 997 },
        };
        assert_eq!(dropped.uid(), 998);
        assert!(dropped.describe().contains("pyro-qemu"));
        assert_eq!(QemuIdentity::Root { reason: "x".into() }.uid(), 0);
        assert!(QemuIdentity::Inherited { uid: 1001 }.credentials().is_none());
    }
}
