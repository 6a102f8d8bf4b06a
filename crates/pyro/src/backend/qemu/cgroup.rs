//! A cgroup per sandbox: CPU quota = its vCPUs, memory = guest RAM plus a bounded
//! overhead, and a pids limit.
//!
//! - **v2** (a `cgroup2` mount whose root offers `cpu memory pids`):
//!   `<mount>/pyro/<sandbox>/` with `cpu.max`, `memory.max`, `memory.swap.max` and
//!   `pids.max`; QEMU joins through `cgroup.procs`.
//! - **v1** (one hierarchy per controller, e.g. `/sys/fs/cgroup/{cpu,memory,pids}`):
//!   `<controller mount>/pyro/<sandbox>/` with `cpu.cfs_quota_us`/`cpu.cfs_period_us`,
//!   `memory.limit_in_bytes` and `pids.max`; QEMU joins each `cgroup.procs`.
//!
//! The child that becomes QEMU joins before `exec` (`spawn.rs`), so every QEMU thread
//! and every page it allocates is counted. Where no cgroup can be made (no controller,
//! no permission: pyro as an ordinary user without delegation), QEMU runs without one
//! and `pyro doctor` and the sandbox's metadata say so. A sandbox's cgroup is removed
//! when it is stopped; empty ones left by QEMUs that died otherwise are swept when the
//! next cgroup is made.

use super::layout::SandboxPaths;
use sha2::Digest as _;
use std::path::{Path, PathBuf};

/// Period of the CPU quota (µs).
pub const CPU_PERIOD_US: u64 = 100_000;
/// Memory QEMU may use beyond guest RAM: a fixed part for QEMU itself (TCG code
/// buffers, device emulation, libraries)...
pub const MEMORY_OVERHEAD_FIXED_MIB: u64 = 384;
/// ...and a part proportional to guest RAM (page tables, dirty bitmaps): 1/8.
pub const MEMORY_OVERHEAD_DIVISOR: u64 = 8;
/// Tasks (QEMU threads: vCPUs, I/O workers, RCU, ...) a sandbox may have.
pub const PIDS_MAX: u64 = 256;
/// Parent cgroup of every sandbox's.
const PARENT: &str = "pyro";
const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

/// The limits of one sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU time per [`CPU_PERIOD_US`] (µs): vCPUs × period.
    pub cpu_quota_us: u64,
    /// Memory limit in bytes.
    pub memory_bytes: u64,
    /// Tasks.
    pub pids: u64,
}

impl Limits {
    /// The limits of a guest with `vcpus` vCPUs and `mem_mib` MiB of RAM.
    pub fn for_guest(vcpus: u32, mem_mib: u32) -> Self {
        let mem = u64::from(mem_mib);
        let overhead = MEMORY_OVERHEAD_FIXED_MIB + mem / MEMORY_OVERHEAD_DIVISOR;
        Limits {
            cpu_quota_us: u64::from(vcpus.max(1)) * CPU_PERIOD_US,
            memory_bytes: (mem + overhead) << 20,
            pids: PIDS_MAX,
        }
    }
}

/// Which cgroup hierarchy this host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Unified: the mount point.
    V2(PathBuf),
    /// One mount per controller: `(controller, mount point)`.
    V1(Vec<(String, PathBuf)>),
}

impl Hierarchy {
    /// `v2` or `v1`.
    pub fn version(&self) -> &'static str {
        match self {
            Hierarchy::V2(_) => "v2",
            Hierarchy::V1(_) => "v1",
        }
    }
}

/// Mount points from `/proc/self/mountinfo` text: `(fs type, mount point, super options)`.
fn mounts(mountinfo: &str) -> Vec<(String, PathBuf, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fs_type = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or_default();
            Some((fs_type.to_owned(), PathBuf::from(unescape(mount_point)), options.to_owned()))
        })
        .collect()
}

/// Undo mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(value) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Pick the hierarchy from mountinfo text and a reader of files (for `cgroup.controllers`).
fn detect_from(mountinfo: &str, read: impl Fn(&Path) -> Option<String>) -> Option<Hierarchy> {
    let mounts = mounts(mountinfo);
    for (fs_type, mount_point, _) in &mounts {
        if fs_type == "cgroup2" {
            let offered = read(&mount_point.join("cgroup.controllers")).unwrap_or_default();
            let offered: Vec<&str> = offered.split_whitespace().collect();
            if CONTROLLERS.iter().all(|c| offered.contains(c)) {
                return Some(Hierarchy::V2(mount_point.clone()));
            }
        }
    }
    let mut v1 = Vec::new();
    for controller in CONTROLLERS {
        let found = mounts.iter().find(|(fs_type, _, options)| {
            fs_type == "cgroup" && options.split(',').any(|o| o == controller)
        });
        v1.push((controller.to_owned(), found?.1.clone()));
    }
    Some(Hierarchy::V1(v1))
}

/// The hierarchy of this host, if it has the controllers pyro needs.
pub fn detect() -> Option<Hierarchy> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    detect_from(&mountinfo, |p| std::fs::read_to_string(p).ok())
}

/// The name of a sandbox's cgroup: a hash of its directory (stable, no guest input).
pub fn cgroup_name(paths: &SandboxPaths) -> String {
    let digest = sha2::Sha256::digest(paths.dir().as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sandbox-{hex}")
}

/// A sandbox's cgroup, made and limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxCgroup {
    /// `v1` or `v2`.
    pub version: &'static str,
    /// The cgroup's directories (one per controller for v1).
    pub dirs: Vec<PathBuf>,
    /// The `cgroup.procs` files QEMU joins.
    pub procs: Vec<PathBuf>,
    /// Its limits.
    pub limits: Limits,
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value)
        .map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create the cgroup {}: {e}", dir.display())),
    }
}

/// How old an empty sandbox cgroup must be before [`sweep_stale`] removes it: far longer
/// than the moment between making a cgroup and QEMU joining it.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

/// Remove empty sandbox cgroups under `parent` left by QEMUs that died without a stop
/// (killed, crashed, a failed boot). A cgroup with a task in it refuses rmdir.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with("sandbox-") {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if old {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// Make `dir` anew (an old empty one is removed first), so its age says it is in use
/// and [`sweep_stale`] leaves it alone until QEMU has joined.
fn fresh_dir(dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir(dir);
    make_dir(dir)
}

/// Make (or reuse) the cgroup of `paths` with `limits`; `Err` says why there is none.
pub fn prepare(paths: &SandboxPaths, limits: Limits) -> Result<SandboxCgroup, String> {
    let hierarchy = detect().ok_or_else(|| {
        "this host has no cgroup hierarchy with the cpu, memory and pids controllers".to_owned()
    })?;
    let name = cgroup_name(paths);
    match &hierarchy {
        Hierarchy::V2(mount) => {
            let parent = mount.join(PARENT);
            make_dir(&parent)?;
            sweep_stale(&parent);
            // Controllers must be enabled on the way down (the root allows it; the
            // parent holds no process, so it may delegate them further).
            for dir in [mount.as_path(), parent.as_path()] {
                write(&dir.join("cgroup.subtree_control"), "+cpu +memory +pids")?;
            }
            let dir = parent.join(&name);
            fresh_dir(&dir)?;
            write(&dir.join("cpu.max"), &format!("{} {CPU_PERIOD_US}", limits.cpu_quota_us))?;
            write(&dir.join("memory.max"), &limits.memory_bytes.to_string())?;
            if dir.join("memory.swap.max").exists() {
                write(&dir.join("memory.swap.max"), "0")?;
            }
            write(&dir.join("pids.max"), &limits.pids.to_string())?;
            Ok(SandboxCgroup {
                version: "v2",
                procs: vec![dir.join("cgroup.procs")],
                dirs: vec![dir],
                limits,
            })
        }
        Hierarchy::V1(controllers) => {
            let mut dirs = Vec::new();
            for (controller, mount) in controllers {
                let parent = mount.join(PARENT);
                make_dir(&parent)?;
                sweep_stale(&parent);
                let dir = parent.join(&name);
                fresh_dir(&dir)?;
                match controller.as_str() {
                    "cpu" => {
                        write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                        write(&dir.join("cpu.cfs_quota_us"), &limits.cpu_quota_us.to_string())?;
                    }
                    "memory" => {
                        write(
                            &dir.join("memory.limit_in_bytes"),
                            &limits.memory_bytes.to_string(),
                        )?;
                    }
                    _ => write(&dir.join("pids.max"), &limits.pids.to_string())?,
                }
                dirs.push(dir);
            }
            let mut unique = dirs.clone();
            unique.dedup();
            Ok(SandboxCgroup {
                version: "v1",
                procs: unique.iter().map(|d| d.join("cgroup.procs")).collect(),
                dirs: unique,
                limits,
            })
        }
    }
}

/// Remove the cgroup of `paths` (once its QEMU is gone); a missing one is fine.
pub fn remove(paths: &SandboxPaths) {
    let Some(hierarchy) = detect() else { return };
    let name = cgroup_name(paths);
    let mounts = match hierarchy {
        Hierarchy::V2(mount) => vec![mount],
        Hierarchy::V1(controllers) => controllers.into_iter().map(|(_, m)| m).collect(),
    };
    for mount in mounts {
        let dir = mount.join(PARENT).join(&name);
        // rmdir of a cgroup fails while a task is in it (EBUSY): then it stays.
        if let Err(e) = std::fs::remove_dir(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!(dir = %dir.display(), error = %e, "cgroup not removed");
            }
        }
    }
}

/// What `pyro doctor` says about cgroups on this host: `Ok` (version and where) or why
/// sandboxes run without one.
pub fn doctor_check() -> Result<String, String> {
    let hierarchy = detect().ok_or_else(|| {
        "no cgroup hierarchy with the cpu, memory and pids controllers: guests run without CPU, memory and pids limits".to_owned()
    })?;
    let mounts = match &hierarchy {
        Hierarchy::V2(mount) => vec![mount.clone()],
        Hierarchy::V1(controllers) => controllers.iter().map(|(_, m)| m.clone()).collect(),
    };
    for mount in &mounts {
        let parent = mount.join(PARENT);
        let writable = if parent.is_dir() { may_create_in(&parent) } else { may_create_in(mount) };
        if !writable {
            return Err(format!(
                "cgroup {} found but {} is not writable by pyro: guests run without CPU, memory and pids limits (run pyro as root, or delegate the subtree)",
                hierarchy.version(),
                mount.display()
            ));
        }
    }
    Ok(format!(
        "cgroup {} ({}): each guest gets cpu quota = its vCPUs, memory = RAM + {MEMORY_OVERHEAD_FIXED_MIB} MiB + RAM/{MEMORY_OVERHEAD_DIVISOR}, pids <= {PIDS_MAX}",
        hierarchy.version(),
        mounts.iter().map(|m| m.display().to_string()).collect::<Vec<_>>().join(", ")
    ))
}

/// Whether this process may create entries in `dir`.
fn may_create_in(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return false };
    // SAFETY: `c` is a valid NUL-terminated path; access only checks permissions.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 23 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
33 30 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
34 30 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn a_hybrid_host_without_v2_controllers_uses_v1() {
        let found = detect_from(HYBRID, |_| Some("hugetlb\n".into()));
        assert_eq!(
            found,
            Some(Hierarchy::V1(vec![
                ("cpu".into(), "/sys/fs/cgroup/cpu".into()),
                ("memory".into(), "/sys/fs/cgroup/memory".into()),
                ("pids".into(), "/sys/fs/cgroup/pids".into()),
            ]))
        );
    }

    #[test]
    fn a_v2_mount_with_the_controllers_wins() {
        let found = detect_from(HYBRID, |p| {
            (p == Path::new("/sys/fs/cgroup/unified/cgroup.controllers"))
                .then(|| "cpuset cpu io memory pids\n".to_owned())
        });
        assert_eq!(found, Some(Hierarchy::V2("/sys/fs/cgroup/unified".into())));
        let pure = "25 1 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(detect_from(pure, |_| None), None, "no controllers offered");
        assert_eq!(detect_from("", |_| None), None);
    }

    #[test]
    fn limits_follow_the_guest() {
        let limits = Limits::for_guest(2, 1024);
        assert_eq!(limits.cpu_quota_us, 200_000);
        assert_eq!(limits.memory_bytes, (1024 + 384 + 128) << 20);
        assert_eq!(limits.pids, PIDS_MAX);
        assert_eq!(Limits::for_guest(0, 256).cpu_quota_us, CPU_PERIOD_US);
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }
}
