//! Templates: a guest booted once per exact machine and saved, that new sandboxes are
//! cloned from (see [`super::clone`] for how one is made and cloned).
//!
//! # Key
//!
//! A template is valid only for the exact machine it was saved from, so its key is a
//! sha256 over everything the saved state depends on ([`TemplateInputs`]): the QEMU
//! command line with placeholder paths (machine, accelerator, CPU model, memory, vCPUs,
//! NIC or not, kernel command line, device set), the identity (path, size, mtime, inode)
//! of the QEMU binary, kernel, initramfs and environment image, the environment's
//! `built_at`, `boot.json` (agent and init hashes) and [`TEMPLATE_FORMAT`]. Anything
//! rebuilt gives a new key; the old template becomes stale.
//!
//! # Layout
//!
//! ```text
//! <cache>/templates/<key>.lock        flock: exclusive while building, shared while cloning
//! <cache>/templates/<key>.current     name of the build directory clones use now
//! <cache>/templates/<key>-<build>/
//!     disk.qcow2     frozen overlay on the environment image (clones' backing file)
//!     ram            guest RAM (memory-backend-file; clones map it privately)
//!     state          device state (migration stream, x-ignore-shared: no RAM inside)
//!     meta.json      what it was made from, written last: its presence means ready
//!     users/<h>      one file per sandbox whose disk is backed by disk.qcow2
//!     ...            QEMU's runtime files while it is being built
//! ```
//!
//! A build directory is never changed once ready and never moved: clone overlays record
//! the absolute path of its `disk.qcow2`. A template found corrupt is retired (its
//! `.current` pointer removed) and the next create builds a new directory; retired and
//! stale ones lose their `ram`, `state` and `meta.json` at `pyro env prune`, and the
//! directory goes once no sandbox uses its disk.

use super::super::BackendError;
use super::assets::{BootAssets, EnvironmentAssets};
use super::layout::{remove_if_exists, SandboxPaths};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Version of the template layout and recipe; part of every key.
pub const TEMPLATE_FORMAT: u32 = 2;

/// Environment variable: `off` (or `0`) makes every start a cold boot.
pub const TEMPLATES_ENV: &str = "PYRO_TEMPLATES";

/// Whether clones are enabled (`$PYRO_TEMPLATES` is not `off`/`0`).
pub fn templates_enabled() -> bool {
    !matches!(std::env::var(TEMPLATES_ENV).as_deref().map(str::trim), Ok("off" | "0" | "no"))
}

/// `<cache>/templates`.
pub fn templates_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("templates")
}

/// `path:size:mtime:inode` of a file (`path:missing` when it cannot be read).
pub fn file_identity(path: &Path) -> String {
    match fs::metadata(path) {
        Ok(m) => {
            format!("{}:{}:{}.{}:{}", path.display(), m.size(), m.mtime(), m.mtime_nsec(), m.ino())
        }
        Err(_) => format!("{}:missing", path.display()),
    }
}

/// The QEMU binary as a path: as given when it has a slash, else found in `PATH`.
fn resolve_binary(binary: &Path) -> PathBuf {
    if binary.components().count() > 1 {
        return binary.to_path_buf();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
        .and_then(|found| found.canonicalize().ok())
        .unwrap_or_else(|| binary.to_path_buf())
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The parts of a key that can go stale, by name: `boot`, `environment`, `qemu`.
pub fn components(
    boot: &BootAssets,
    env: &EnvironmentAssets,
    qemu_binary: &Path,
) -> BTreeMap<String, String> {
    let boot_json = boot
        .info
        .as_ref()
        .map(|info| sha256_hex(info.to_string().as_bytes()))
        .unwrap_or_else(|| "none".into());
    BTreeMap::from([
        (
            "boot".to_owned(),
            format!(
                "kernel={} initrd={} boot.json={boot_json}",
                file_identity(&boot.kernel),
                file_identity(&boot.initrd)
            ),
        ),
        (
            "environment".to_owned(),
            format!(
                "{} built_at={} rootfs={}",
                env.name,
                env.version().unwrap_or_else(|| "?".into()),
                file_identity(&env.rootfs)
            ),
        ),
        ("qemu".to_owned(), file_identity(&resolve_binary(qemu_binary))),
        // The guest caches the volume disks' capacity when it probes them.
        ("volume".to_owned(), format!("size={}", super::volume::volume_size_bytes())),
    ])
}

/// Everything a template depends on (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateInputs {
    /// [`TEMPLATE_FORMAT`].
    pub format: u32,
    /// The QEMU arguments with placeholder paths.
    pub machine: String,
    /// See [`components`].
    pub components: BTreeMap<String, String>,
}

impl TemplateInputs {
    /// The key: 24 hex digits of the sha256 of the inputs.
    pub fn key(&self) -> String {
        let encoded = serde_json::to_vec(self).unwrap_or_default();
        sha256_hex(&encoded)[..24].to_owned()
    }
}

/// `meta.json` of a ready template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateMeta {
    /// [`TEMPLATE_FORMAT`].
    pub format: u32,
    /// The key.
    pub key: String,
    /// Inputs the key was computed from.
    pub inputs: TemplateInputs,
    /// Environment name.
    pub environment: String,
    /// vCPUs.
    pub vcpu_count: u32,
    /// Memory in MiB.
    pub mem_mib: u32,
    /// NIC or not.
    pub network: bool,
    /// Accelerator name.
    pub accel: String,
    /// `qemu-system-x86_64 --version` first line.
    pub qemu_version: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Size of the state file.
    pub state_bytes: u64,
    /// Milliseconds to boot the template guest.
    pub boot_ms: u64,
    /// Milliseconds to save it.
    pub save_ms: u64,
}

/// One build directory of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateBuild {
    paths: SandboxPaths,
}

impl TemplateBuild {
    fn new(dir: &Path) -> Result<Self, BackendError> {
        Ok(TemplateBuild { paths: SandboxPaths::new(dir)? })
    }

    /// The directory as a sandbox directory (QEMU runs in it while building).
    pub fn paths(&self) -> &SandboxPaths {
        &self.paths
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.paths.dir()
    }

    /// The frozen overlay.
    pub fn disk(&self) -> PathBuf {
        self.paths.disk()
    }

    /// The RAM file.
    pub fn ram(&self) -> PathBuf {
        self.dir().join("ram")
    }

    /// The device state.
    pub fn state(&self) -> PathBuf {
        self.dir().join("state")
    }

    fn meta_path(&self) -> PathBuf {
        self.dir().join("meta.json")
    }

    fn users_dir(&self) -> PathBuf {
        self.dir().join("users")
    }

    /// `meta.json`, when the build is complete.
    pub fn meta(&self) -> Option<TemplateMeta> {
        let bytes = fs::read(self.meta_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether this build can be cloned for `key`: complete, same key and format, files
    /// in place.
    pub fn ready_for(&self, key: &str) -> bool {
        self.meta().is_some_and(|m| m.key == key && m.format == TEMPLATE_FORMAT)
            && self.ram().is_file()
            && self.state().is_file()
            && self.disk().is_file()
    }

    /// Record `meta` (last step of a build), atomically.
    pub fn write_meta(&self, meta: &TemplateMeta) -> Result<(), BackendError> {
        let bytes = serde_json::to_vec_pretty(meta)
            .map_err(|e| BackendError::Protocol(format!("cannot encode meta.json: {e}")))?;
        write_atomic(&self.meta_path(), &bytes)
    }

    /// Note that the sandbox in `sandbox_dir` has a disk backed by this build.
    pub fn add_user(&self, sandbox_dir: &Path) -> Result<(), BackendError> {
        let users = self.users_dir();
        fs::create_dir_all(&users)
            .map_err(|e| BackendError::io(format!("cannot create {}", users.display()), e))?;
        let name = &sha256_hex(sandbox_dir.as_os_str().as_encoded_bytes())[..16];
        write_atomic(&users.join(name), sandbox_dir.as_os_str().as_encoded_bytes())
    }

    /// Sandboxes whose disk is still backed by this build (their `vm.json` names it and
    /// their disk exists); stale user files are removed.
    pub fn live_users(&self) -> Vec<PathBuf> {
        let mut live = Vec::new();
        for entry in fs::read_dir(self.users_dir()).into_iter().flatten().flatten() {
            let Ok(text) = fs::read_to_string(entry.path()) else { continue };
            let sandbox = PathBuf::from(text);
            let uses_us = super::record::VmRecord::read(&sandbox.join(super::layout::VM_RECORD))
                .and_then(|r| r.template_dir)
                .is_some_and(|d| Path::new(&d) == self.dir());
            if uses_us && sandbox.join(super::layout::DISK_FILE).is_file() {
                live.push(sandbox);
            } else {
                let _ = fs::remove_file(entry.path());
            }
        }
        live
    }

    /// Remove everything but the disk and the users (the part clones depend on).
    fn strip(&self) {
        for file in [self.meta_path(), self.state(), self.ram()] {
            let _ = remove_if_exists(&file);
        }
    }

    /// Bytes used on disk.
    pub fn disk_usage(&self) -> u64 {
        fs::read_dir(self.dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.blocks() * 512)
            .sum()
    }
}

/// Forget `sandbox_dir` as a user of the template build in `build_dir`.
pub fn remove_user(build_dir: &Path, sandbox_dir: &Path) {
    let name = &sha256_hex(sandbox_dir.as_os_str().as_encoded_bytes())[..16];
    let _ = fs::remove_file(build_dir.join("users").join(name));
}

/// The template slot of one key: its lock, its current build.
#[derive(Debug, Clone)]
pub struct TemplateSlot {
    root: PathBuf,
    key: String,
}

/// How long a failed template is not tried again.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(600);

/// `<key>.failed`.
#[derive(Debug, Serialize, Deserialize)]
struct Failure {
    reason: String,
    permanent: bool,
    #[serde(default)]
    boot_timeout_ms: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A held template lock (released on drop).
#[derive(Debug)]
pub struct SlotLock {
    _file: File,
}

impl TemplateSlot {
    /// The slot of `key` under `cache_dir`.
    pub fn new(cache_dir: &Path, key: &str) -> Self {
        TemplateSlot { root: templates_dir(cache_dir), key: key.to_owned() }
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn current_path(&self) -> PathBuf {
        self.root.join(format!("{}.current", self.key))
    }

    fn failed_path(&self) -> PathBuf {
        self.root.join(format!("{}.failed", self.key))
    }

    /// Why making or cloning this template failed recently, if it did: within
    /// [`FAILURE_BACKOFF`], or for good when the failure cannot change without a new key
    /// (`permanent`, e.g. an agent without `clone_fixup`: a new agent is a new key).
    /// A failure recorded with a shorter boot deadline than `boot_timeout` does not
    /// count: a caller willing to wait longer may succeed.
    pub fn recent_failure(&self, boot_timeout: Duration) -> Option<String> {
        let path = self.failed_path();
        let text = fs::read_to_string(&path).ok()?;
        let failure: Failure = serde_json::from_str(&text).ok()?;
        let age = fs::metadata(&path).ok()?.modified().ok()?.elapsed().unwrap_or_default();
        let shorter_deadline = failure.boot_timeout_ms < ms(boot_timeout);
        let counts = failure.permanent || (age < FAILURE_BACKOFF && !shorter_deadline);
        counts.then_some(failure.reason)
    }

    /// Remember a failure (see [`TemplateSlot::recent_failure`]) of an attempt with
    /// `boot_timeout`.
    pub fn note_failure(&self, reason: &str, permanent: bool, boot_timeout: Duration) {
        let failure =
            Failure { reason: reason.to_owned(), permanent, boot_timeout_ms: ms(boot_timeout) };
        if let Ok(bytes) = serde_json::to_vec(&failure) {
            let _ = fs::create_dir_all(&self.root);
            let _ = write_atomic(&self.failed_path(), &bytes);
        }
    }

    /// Forget a failure (after a successful build).
    fn clear_failure(&self) {
        let _ = fs::remove_file(self.failed_path());
    }

    fn lock_path(&self) -> PathBuf {
        self.root.join(format!("{}.lock", self.key))
    }

    /// The current build, when it is ready.
    pub fn current(&self) -> Option<TemplateBuild> {
        let name = fs::read_to_string(self.current_path()).ok()?;
        let name = name.trim();
        if name.is_empty() || name.contains('/') || !name.starts_with(&self.key) {
            return None;
        }
        let build = TemplateBuild::new(&self.root.join(name)).ok()?;
        build.ready_for(&self.key).then_some(build)
    }

    /// Make `build` the current one.
    pub fn set_current(&self, build: &TemplateBuild) -> Result<(), BackendError> {
        self.clear_failure();
        let name = build.dir().file_name().map(|n| n.to_string_lossy().into_owned());
        write_atomic(&self.current_path(), name.unwrap_or_default().as_bytes())
    }

    /// Stop cloning the current build (it was found corrupt); the next create builds a
    /// new one. Its files stay for the sandboxes that use its disk.
    pub fn retire_current(&self) {
        let _ = fs::remove_file(self.current_path());
    }

    /// Remove build directories of this key that never completed (no `meta.json`),
    /// killing a template QEMU left running in one by a process that died mid-build.
    /// Call with the exclusive lock held: then no build of this key is in progress.
    pub fn clear_incomplete(&self) {
        let prefix = format!("{}-", self.key);
        for entry in fs::read_dir(&self.root).into_iter().flatten().flatten() {
            if !entry.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            let Ok(build) = TemplateBuild::new(&entry.path()) else { continue };
            if build.meta_path().exists() {
                continue;
            }
            if let Some(pid) = super::process::qemu_pid(build.paths()) {
                super::process::kill_and_wait(pid);
            }
            let _ = fs::remove_dir_all(build.dir());
        }
    }

    /// A new, empty build directory.
    pub fn new_build(&self) -> Result<TemplateBuild, BackendError> {
        let stamp =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.root.join(format!("{}-{stamp}-{}-{n}", self.key, std::process::id()));
        fs::create_dir_all(&dir)
            .map_err(|e| BackendError::io(format!("cannot create {}", dir.display()), e))?;
        TemplateBuild::new(&dir)
    }

    fn open_lock(&self) -> Result<File, BackendError> {
        fs::create_dir_all(&self.root)
            .map_err(|e| BackendError::io(format!("cannot create {}", self.root.display()), e))?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.lock_path())
            .map_err(|e| BackendError::io(format!("cannot open {}", self.lock_path().display()), e))
    }

    /// Take the lock, exclusive (to build) or shared (to clone), waiting up to `timeout`;
    /// `Ok(None)` when it stayed taken.
    pub fn lock(
        &self,
        exclusive: bool,
        timeout: Duration,
    ) -> Result<Option<SlotLock>, BackendError> {
        let file = self.open_lock()?;
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = if exclusive { file.try_lock() } else { file.try_lock_shared() };
            match attempt {
                Ok(()) => return Ok(Some(SlotLock { _file: file })),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(fs::TryLockError::WouldBlock) => return Ok(None),
                Err(fs::TryLockError::Error(e)) => {
                    return Err(BackendError::io(
                        format!("cannot lock {}", self.lock_path().display()),
                        e,
                    ))
                }
            }
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BackendError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        // A build dir belongs to the QEMU user while it boots: never follow a name it left.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| BackendError::io(format!("cannot write {}", path.display()), e))
}

/// A template build as `pyro doctor` and `env prune` see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TemplateStatus {
    /// The key.
    pub key: String,
    /// Build directory.
    pub dir: String,
    /// Environment, when the build is complete.
    pub environment: Option<String>,
    /// vCPUs.
    pub vcpu_count: Option<u32>,
    /// Memory in MiB.
    pub mem_mib: Option<u32>,
    /// NIC or not.
    pub network: Option<bool>,
    /// Unix seconds.
    pub created_at: Option<u64>,
    /// Whether new sandboxes are cloned from it.
    pub current: bool,
    /// Why it can no longer be cloned (an input changed, retired, incomplete), if so.
    pub stale: Option<String>,
    /// Sandboxes whose disk is backed by it.
    pub users: usize,
    /// Bytes on disk.
    pub bytes: u64,
}

/// Why `build` is stale, if it is: compares its inputs with the current assets.
fn staleness(
    cache_dir: &Path,
    build: &TemplateBuild,
    meta: Option<&TemplateMeta>,
    current: bool,
    qemu_binary: &Path,
) -> Option<String> {
    let Some(meta) = meta else {
        return Some("incomplete (no meta.json)".into());
    };
    if meta.format != TEMPLATE_FORMAT {
        return Some(format!("made by template format {}", meta.format));
    }
    if !(build.ram().is_file() && build.state().is_file() && build.disk().is_file()) {
        return Some("files missing".into());
    }
    let boot = match super::assets::boot_assets(cache_dir) {
        Ok(b) => b,
        Err(_) => return Some("boot assets missing".into()),
    };
    let env = match super::assets::environment_assets(cache_dir, &meta.environment) {
        Ok(e) => e,
        Err(_) => return Some(format!("environment {} is not installed", meta.environment)),
    };
    let now = components(&boot, &env, qemu_binary);
    for (name, value) in &meta.inputs.components {
        if now.get(name) != Some(value) {
            return Some(format!("{name} changed since it was made"));
        }
    }
    if !current {
        return Some("retired (replaced by a newer build)".into());
    }
    None
}

/// Every template build under `cache_dir`.
pub fn list(cache_dir: &Path, qemu_binary: &Path) -> Vec<TemplateStatus> {
    let root = templates_dir(cache_dir);
    let mut out = Vec::new();
    for entry in fs::read_dir(&root).into_iter().flatten().flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(key) = name.split('-').next().map(str::to_owned) else { continue };
        let Ok(build) = TemplateBuild::new(&entry.path()) else { continue };
        let slot = TemplateSlot { root: root.clone(), key: key.clone() };
        let current = slot.current().is_some_and(|c| c.dir() == build.dir());
        let meta = build.meta();
        let stale = staleness(cache_dir, &build, meta.as_ref(), current, qemu_binary);
        out.push(TemplateStatus {
            key,
            dir: build.dir().display().to_string(),
            environment: meta.as_ref().map(|m| m.environment.clone()),
            vcpu_count: meta.as_ref().map(|m| m.vcpu_count),
            mem_mib: meta.as_ref().map(|m| m.mem_mib),
            network: meta.as_ref().map(|m| m.network),
            created_at: meta.as_ref().map(|m| m.created_at),
            current,
            stale,
            users: build.live_users().len(),
            bytes: build.disk_usage(),
        });
    }
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    out
}

/// Whether clones work on this host, as far as the templates under `cache_dir` tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClonesReport {
    /// `working` (a current template exists), `failing` (the last attempt failed; see
    /// `reason`), `untested` (no template made yet) or `off` (`PYRO_TEMPLATES=off`).
    pub clones: String,
    /// Why, for `failing` and `off`.
    pub reason: Option<String>,
    /// Every template build.
    pub templates: Vec<TemplateStatus>,
}

/// The [`ClonesReport`] of `cache_dir`.
pub fn clones_report(cache_dir: &Path, qemu_binary: &Path) -> ClonesReport {
    let templates = list(cache_dir, qemu_binary);
    if !templates_enabled() {
        let reason = Some(format!("{TEMPLATES_ENV}=off: every guest boots cold"));
        return ClonesReport { clones: "off".into(), reason, templates };
    }
    if templates.iter().any(|t| t.current && t.stale.is_none()) {
        return ClonesReport { clones: "working".into(), reason: None, templates };
    }
    let root = templates_dir(cache_dir);
    let failure = fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name.strip_suffix(".failed")?.to_owned();
            TemplateSlot { root: root.clone(), key }.recent_failure(Duration::ZERO)
        })
        .next();
    match failure {
        Some(reason) => ClonesReport { clones: "failing".into(), reason: Some(reason), templates },
        None => ClonesReport { clones: "untested".into(), reason: None, templates },
    }
}

/// Remove stale template builds: their RAM and state at once, the whole directory once
/// no sandbox uses its disk. Builds being made (lock held) are left alone. Returns the
/// directories touched and the bytes freed.
pub fn prune_stale(cache_dir: &Path, qemu_binary: &Path) -> (Vec<String>, u64) {
    let mut touched = Vec::new();
    let mut freed = 0;
    for status in list(cache_dir, qemu_binary) {
        if status.stale.is_none() {
            continue;
        }
        let slot = TemplateSlot::new(cache_dir, &status.key);
        let Ok(Some(_lock)) = slot.lock(true, Duration::ZERO) else { continue };
        let Ok(build) = TemplateBuild::new(Path::new(&status.dir)) else { continue };
        if status.current {
            slot.retire_current();
        }
        // With the exclusive lock no build runs: a QEMU here is an orphan of a dead builder.
        if let Some(pid) = super::process::qemu_pid(build.paths()) {
            super::process::kill_and_wait(pid);
        }
        let before = build.disk_usage();
        build.strip();
        if build.live_users().is_empty() {
            let _ = fs::remove_dir_all(build.dir());
        }
        freed += before.saturating_sub(if build.dir().exists() { build.disk_usage() } else { 0 });
        touched.push(status.dir);
    }
    (touched, freed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cache with boot assets and one environment, no QEMU needed.
    fn fake_cache() -> tempfile::TempDir {
        let cache = tempfile::tempdir().expect("tempdir");
        let boot = cache.path().join("boot");
        fs::create_dir_all(&boot).expect("mkdir");
        fs::write(boot.join("vmlinux"), b"elf").expect("write");
        fs::write(boot.join("initrd.img"), b"cpio").expect("write");
        fs::write(boot.join("boot.json"), br#"{"agent_sha256":"aa"}"#).expect("write");
        set_env_built_at(cache.path(), 1);
        cache
    }

    fn set_env_built_at(cache: &Path, built_at: u64) {
        let env = cache.join("environments/debian_12-base");
        fs::create_dir_all(&env).expect("mkdir");
        fs::write(env.join("rootfs.ext4"), b"ext4").expect("write");
        fs::write(
            env.join("environment.json"),
            format!(r#"{{"name":"debian:12-base","built_at":{built_at}}}"#),
        )
        .expect("write");
    }

    /// A ready build of `key` made from the cache's current assets.
    fn ready_build(cache: &Path, key: &str) -> (TemplateSlot, TemplateBuild) {
        let boot = super::super::assets::boot_assets(cache).expect("boot");
        let env = super::super::assets::environment_assets(cache, "debian:12-base").expect("env");
        let inputs = TemplateInputs {
            format: TEMPLATE_FORMAT,
            machine: "-M q35".into(),
            components: components(&boot, &env, Path::new("/bin/sh")),
        };
        let slot = TemplateSlot::new(cache, key);
        let build = slot.new_build().expect("build");
        for file in [build.ram(), build.state(), build.disk()] {
            fs::write(file, b"x").expect("write");
        }
        let meta = TemplateMeta {
            format: TEMPLATE_FORMAT,
            key: key.into(),
            inputs,
            environment: "debian:12-base".into(),
            vcpu_count: 1,
            mem_mib: 1024,
            network: false,
            accel: "tcg".into(),
            qemu_version: "QEMU 7.2".into(),
            created_at: 1,
            state_bytes: 1,
            boot_ms: 1,
            save_ms: 1,
        };
        build.write_meta(&meta).expect("meta");
        slot.set_current(&build).expect("current");
        (slot, build)
    }

    #[test]
    fn keys_change_with_every_input() {
        let a = TemplateInputs {
            format: 1,
            machine: "-m 1024".into(),
            components: BTreeMap::from([("qemu".into(), "q:1".into())]),
        };
        let mut b = a.clone();
        b.machine = "-m 2048".into();
        let mut c = a.clone();
        c.components.insert("qemu".into(), "q:2".into());
        assert_eq!(a.key().len(), 24);
        assert_eq!(a.key(), a.clone().key());
        assert_ne!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
    }

    #[test]
    fn a_rebuilt_image_makes_its_template_stale_and_prune_respects_users() {
        let cache = fake_cache();
        let (slot, build) = ready_build(cache.path(), "aaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(slot.current(), Some(build.clone()));
        let listed = list(cache.path(), Path::new("/bin/sh"));
        assert_eq!(listed.len(), 1);
        assert!(listed[0].current && listed[0].stale.is_none(), "{listed:?}");
        assert_eq!(clones_report(cache.path(), Path::new("/bin/sh")).clones, "working");

        // A sandbox whose disk is backed by the build.
        let sandbox = cache.path().join("sandbox");
        fs::create_dir_all(&sandbox).expect("mkdir");
        fs::write(sandbox.join(super::super::layout::DISK_FILE), b"qcow2").expect("write");
        let mut full: serde_json::Value =
            serde_json::from_str(include_str!("testdata/vm.json")).expect("json");
        full["template_dir"] = serde_json::json!(build.dir());
        fs::write(sandbox.join(super::super::layout::VM_RECORD), full.to_string()).expect("write");
        build.add_user(&sandbox).expect("user");
        assert_eq!(build.live_users(), vec![sandbox.clone()]);

        set_env_built_at(cache.path(), 2);
        let listed = list(cache.path(), Path::new("/bin/sh"));
        let why = listed[0].stale.clone().expect("stale");
        assert!(why.contains("environment changed"), "{why}");

        let (pruned, _) = prune_stale(cache.path(), Path::new("/bin/sh"));
        assert_eq!(pruned.len(), 1);
        assert!(slot.current().is_none(), "no longer cloned");
        assert!(build.disk().is_file(), "the disk a sandbox still uses stays");
        assert!(!build.ram().exists() && !build.state().exists());

        // Once the sandbox is gone, the next prune removes the directory.
        fs::remove_file(sandbox.join(super::super::layout::DISK_FILE)).expect("rm");
        prune_stale(cache.path(), Path::new("/bin/sh"));
        assert!(!build.dir().exists());
    }

    #[test]
    fn incomplete_builds_are_cleared_and_complete_ones_kept() {
        let cache = fake_cache();
        let key = "cccccccccccccccccccccccc";
        let (slot, ready) = ready_build(cache.path(), key);
        let half = slot.new_build().expect("build");
        fs::write(half.ram(), b"x").expect("write");
        slot.clear_incomplete();
        assert!(!half.dir().exists());
        assert!(ready.dir().exists());
        assert_eq!(slot.current(), Some(ready));
    }

    #[test]
    fn failures_back_off_unless_the_caller_waits_longer_and_permanent_ones_stay() {
        let cache = fake_cache();
        let slot = TemplateSlot::new(cache.path(), "bbbbbbbbbbbbbbbbbbbbbbbb");
        assert_eq!(slot.recent_failure(Duration::from_secs(30)), None);
        slot.note_failure("boot timed out", false, Duration::from_millis(300));
        assert_eq!(slot.recent_failure(Duration::from_secs(30)), None, "longer deadline retries");
        assert!(slot.recent_failure(Duration::from_millis(300)).is_some());
        slot.note_failure("old agent", true, Duration::from_secs(30));
        assert_eq!(slot.recent_failure(Duration::from_secs(300)).as_deref(), Some("old agent"));
        assert_eq!(clones_report(cache.path(), Path::new("/bin/sh")).clones, "failing");
    }
}
