//! The workspace volume: `/workspace` as its own ext4 disk whose layers live in the
//! workspace directory (see docs/architecture.md, "Workspace volume").
//!
//! ```text
//! <ws>/volume/                 pyro's (0700); QEMU gets the files as inherited fds
//!     baseline.ext4            raw ext4 made on the host from the seed (`mke2fs -d`);
//!                              absent when unseeded: the shared empty image is the base
//!     layer-<n>.qcow2          frozen layers (named snapshots), bottom first
//!     active-<n>.qcow2         the writable overlay the guest mounts at /workspace
//! ```
//!
//! The chain is recorded in the workspace record ([`VolumeRecord`], replaced atomically
//! like every record), and files are made before the record names them and removed after
//! it stopped naming them: a crash between the two leaves an unnamed file (removed with
//! the workspace), never a record naming a missing one.

use super::error::{PyroError, Result};
use super::seed::{Seed, SeedContent, Staged};
use super::state::WorkspaceDir;
use super::transfer::TransferLimits;
use crate::backend::qemu::volume as images;
use crate::backend::{BackendError, VolumeSpec};
use pyro_agent::archive;
use pyro_protocol::{ArchiveStats, TreeTotals};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A frozen layer: a qcow2 image nothing writes any more. A layer keeps the file name it
/// had while it was the writable overlay (`active-<n>.qcow2`): QEMU knows a running
/// chain's images by node names made from their file names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeLayer {
    /// File name in the volume directory.
    pub file: String,
    /// The named snapshot this layer is (the state of `/workspace` when it was frozen);
    /// empty while a snapshot is being taken (such a layer is data, not a snapshot).
    pub snapshot: String,
    /// The layer below (file name); `None`: the baseline.
    pub parent: Option<String>,
}

/// The layers of a workspace volume, as recorded. Layers form a tree (a reset onto an
/// older snapshot starts a new branch); the running chain is the path from the active
/// overlay down to the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// The bottom: `baseline.ext4` in the volume directory, or the shared empty image
    /// (an absolute path in the cache).
    pub baseline: PathBuf,
    /// Every frozen layer.
    #[serde(default)]
    pub layers: Vec<VolumeLayer>,
    /// File name of the writable overlay in the volume directory.
    pub active: String,
    /// The layer the active overlay is backed by (file name); `None`: the baseline.
    #[serde(default)]
    pub active_parent: Option<String>,
    /// Virtual size of the images (bytes).
    pub size_bytes: u64,
    /// Number used for the next file name.
    pub next_file: u64,
    /// What an archive of the baseline would count, counted on the host from the tree
    /// `mke2fs -d` read: with the guest's change set, a snapshot's totals cost what
    /// changed ([`pyro_protocol::Request::TreeTotals`]). `None` (older workspaces):
    /// the guest counts `/workspace` whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_totals: Option<TreeTotals>,
}

impl VolumeRecord {
    /// The layer stored in `file`.
    pub fn layer(&self, file: &str) -> Option<&VolumeLayer> {
        self.layers.iter().find(|l| l.file == file)
    }

    /// The layer of the named snapshot `name`.
    pub fn snapshot(&self, name: &str) -> Option<&VolumeLayer> {
        self.layers.iter().find(|l| !name.is_empty() && l.snapshot == name)
    }

    /// Layer files from the one below `parent` down to the baseline's child, bottom
    /// first, for an image whose backing is `parent`.
    pub fn chain_below(&self, parent: Option<&str>) -> Vec<String> {
        let mut chain = Vec::new();
        let mut next = parent.map(str::to_owned);
        while let Some(file) = next {
            if chain.contains(&file) || chain.len() > self.layers.len() {
                break; // a cycle in a corrupt record: stop rather than loop
            }
            next = self.layer(&file).and_then(|l| l.parent.clone());
            chain.push(file);
        }
        chain.reverse();
        chain
    }

    /// The backend's view of the running chain.
    pub fn spec(&self, dir: &WorkspaceDir) -> VolumeSpec {
        let vol = dir.volume();
        VolumeSpec {
            baseline: self.baseline.clone(),
            layers: self
                .chain_below(self.active_parent.as_deref())
                .iter()
                .map(|f| vol.join(f))
                .collect(),
            active: vol.join(&self.active),
            known_changes: None,
        }
    }

    /// A fresh file name with `prefix`.
    pub fn new_file(&mut self, prefix: &str) -> String {
        let n = self.next_file;
        self.next_file += 1;
        format!("{prefix}-{n}.qcow2")
    }

    /// The image `parent` names (a layer file; `None`: the baseline) and its format.
    pub fn image(&self, dir: &WorkspaceDir, parent: Option<&str>) -> (PathBuf, &'static str) {
        match parent {
            Some(file) => (dir.volume().join(file), "qcow2"),
            None => (self.baseline.clone(), images::image_format(&self.baseline)),
        }
    }

    /// Whether `file` (a layer or the active overlay) is in the running chain.
    pub fn in_running_chain(&self, file: &str) -> bool {
        file == self.active
            || self.chain_below(self.active_parent.as_deref()).iter().any(|f| f == file)
    }
}

fn backend_err(e: crate::backend::BackendError) -> PyroError {
    PyroError::from(e)
}

fn io<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PyroError + 'a {
    move |e| PyroError::io(what, path, e)
}

/// Make the volume of a new workspace in `dir`: the baseline from `seed`, or the
/// shared empty image; an active overlay above it. No baseline archive: the guest
/// diffs against the baseline disk it mounts. Returns the chain, the seed's import
/// statistics and, for a seed, the baseline still being formatted.
///
/// A directory seed with nothing the archive rules would change is the `mke2fs -d`
/// source itself ([`direct_source`]); any other seed is unpacked on the host with the
/// same code and rules as a guest-side import first ([`stage`]). Either way `mke2fs`
/// runs in the background ([`PendingBaseline`]): the baseline file exists at its full
/// size, the chain is complete and the guest may boot while it is filled; the guest
/// only reads the volume when it mounts it, after [`PendingBaseline::wait`].
pub fn create(
    cache_dir: &Path,
    dir: &WorkspaceDir,
    seed: Option<&mut Seed>,
) -> Result<(VolumeRecord, Option<ArchiveStats>, Option<PendingBaseline>)> {
    let vol = dir.volume();
    fs::create_dir_all(&vol).map_err(io("could not create", &vol))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&vol, fs::Permissions::from_mode(0o700))
        .map_err(io("could not chmod", &vol))?;
    let size = images::volume_size_bytes();
    let (baseline, stats, source) = match seed {
        Some(seed) => {
            let image = vol.join("baseline.ext4");
            let (stats, source) = match direct_source(seed, &vol) {
                Some(stats) => (stats, Source::Direct(seed.source.clone())),
                None => {
                    let (stats, staging) = stage(dir, seed)?;
                    (stats, Source::Staged(staging))
                }
            };
            (image, Some(stats), Some(source))
        }
        None => (images::empty_image(cache_dir).map_err(backend_err)?, None, None),
    };
    // Counted before `mke2fs` reads the tree (a staging tree is removed after it).
    let baseline_totals = match &source {
        None => Some(TreeTotals::default()),
        Some(Source::Direct(tree) | Source::Staged(tree)) => count_source(tree),
    };
    let made = (|| -> Result<VolumeRecord> {
        if source.is_some() {
            images::create_sparse(&baseline, size).map_err(backend_err)?;
        }
        let mut record = VolumeRecord {
            baseline: baseline.clone(),
            layers: Vec::new(),
            active: String::new(),
            active_parent: None,
            size_bytes: size,
            next_file: 1,
            baseline_totals,
        };
        // `qemu-img create -u` does not open the baseline: it may still be empty.
        record.active = new_active_over(dir, &mut record, None)?;
        Ok(record)
    })();
    let record = match made {
        Ok(record) => record,
        Err(e) => {
            if let Some(Source::Staged(staging)) = &source {
                let _ = fs::remove_dir_all(staging);
            }
            return Err(e);
        }
    };
    let pending = source.map(|source| PendingBaseline::start(baseline, source));
    Ok((record, stats, pending))
}

/// What `mke2fs -d` reads for a seeded baseline.
#[derive(Clone)]
enum Source {
    /// The seed directory itself.
    Direct(PathBuf),
    /// A staging tree pyro unpacked, removed once the baseline is made.
    Staged(PathBuf),
}

/// A baseline image being formatted from its seed by `mke2fs -d` on a background
/// thread. Dropping it waits for the thread, so no `mke2fs` outlives the create that
/// started it, whichever way the create ends.
pub struct PendingBaseline(Mutex<Formatting>);

enum Formatting {
    Running(std::thread::JoinHandle<std::result::Result<(), BackendError>>),
    Done(std::result::Result<(), String>),
}

impl std::fmt::Debug for PendingBaseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PendingBaseline")
    }
}

/// Format `image` from `source` with `mke2fs -d`, then remove a staging tree.
fn format_baseline(image: &Path, source: &Source) -> std::result::Result<(), BackendError> {
    let (from, staging) = match source {
        Source::Direct(dir) => (dir, None),
        Source::Staged(dir) => (dir, Some(dir)),
    };
    let made = images::format_ext4(image, Some(from));
    if let Some(staging) = staging {
        let _ = fs::remove_dir_all(staging);
    }
    tracing::debug!(image = %image.display(), ok = made.is_ok(), "volume: baseline formatted");
    made
}

impl PendingBaseline {
    fn start(image: PathBuf, source: Source) -> Self {
        let (thread_image, thread_source) = (image.clone(), source.clone());
        let spawned = std::thread::Builder::new()
            .name("pyro-mke2fs".into())
            .spawn(move || format_baseline(&thread_image, &thread_source));
        let state = match spawned {
            Ok(handle) => Formatting::Running(handle),
            // No thread to be had: format here and now.
            Err(_) => Formatting::Done(format_baseline(&image, &source).map_err(|e| e.to_string())),
        };
        PendingBaseline(Mutex::new(state))
    }

    /// Wait until the baseline is made. The first call returns the error itself, later
    /// calls one that quotes it.
    pub fn wait(&self) -> std::result::Result<(), BackendError> {
        let mut state = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = match std::mem::replace(&mut *state, Formatting::Done(Ok(()))) {
            Formatting::Running(handle) => handle.join().unwrap_or_else(|_| {
                Err(BackendError::Boot("formatting the baseline image panicked".into()))
            }),
            Formatting::Done(done) => {
                *state = Formatting::Done(done.clone());
                return done.map_err(|message| BackendError::Io {
                    context: "the baseline image could not be made".into(),
                    source: std::io::Error::other(message),
                });
            }
        };
        *state = Formatting::Done(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        result
    }
}

impl Drop for PendingBaseline {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// The archive stats of a directory seed whose survey found nothing staging would
/// change (and whose directory does not hold the volume): `mke2fs -d` may read it
/// directly. `None`: the seed must be staged.
fn direct_source(seed: &Seed, vol: &Path) -> Option<ArchiveStats> {
    let SeedContent::Directory(survey) = &seed.content else { return None };
    let inside = match (fs::canonicalize(vol), fs::canonicalize(&seed.source)) {
        (Ok(vol), Ok(source)) => vol.starts_with(source),
        _ => true,
    };
    let direct = survey.direct.clone().and(if inside { Err(Staged::VolumeInside) } else { Ok(()) });
    if let Err(reason) = direct {
        tracing::debug!(source = %seed.source.display(), %reason, "seed: staging the directory");
        return None;
    }
    Some(survey.archive.stats.clone())
}

/// The totals of the tree `mke2fs -d` copies into the baseline: exactly what the
/// guest's baseline mount then holds (the direct path takes only trees with nothing it
/// would copy differently; a staging tree is what it copies). `None` when the tree
/// cannot be counted (it crosses a mount point, or changed meanwhile): snapshots then
/// have the guest count `/workspace` whole.
fn count_source(tree: &Path) -> Option<TreeTotals> {
    match pyro_agent::tree_totals(tree) {
        Ok(totals) => Some(totals),
        Err(e) => {
            tracing::debug!(tree = %tree.display(), error = %e, "could not count the seed tree");
            None
        }
    }
}

/// Unpack the seed's tar (a directory is packed now) into a staging tree for
/// `mke2fs -d`. Returns the stats and the tree (removed once the baseline is made, or
/// here on failure).
fn stage(dir: &WorkspaceDir, seed: &mut Seed) -> Result<(ArchiveStats, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let vol = dir.volume();
    let staging = staging_dir(dir, &vol, seed.archive_bytes());
    let _ = fs::remove_dir_all(&staging);
    let result = (|| -> Result<ArchiveStats> {
        let max_entries = TransferLimits::from_env().max_entries;
        let stats = archive::unpack_from(
            seed.tar()?,
            &staging,
            false,
            archive::LinkTargets::Kept,
            max_entries,
        )
        .map_err(|e| PyroError::invalid(format!("could not unpack the seed: {e}")))?;
        fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))
            .map_err(io("could not chmod", &staging))?;
        Ok(stats)
    })();
    match result {
        Ok(stats) => Ok((stats, staging)),
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// Where a seed is unpacked before `mke2fs -d` reads it: in `/dev/shm` when it has room
/// for twice the seed (creating thousands of files is metadata work that a loaded disk
/// makes slow, and the tree is read once and removed), else in the volume directory.
fn staging_dir(dir: &WorkspaceDir, vol: &Path, seed_bytes: u64) -> PathBuf {
    let name = format!(
        "pyro-seed-{}",
        dir.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    );
    let shm = Path::new("/dev/shm");
    let free_bytes = crate::backend::qemu::confine::free_mib(shm).ok().map(|mib| mib << 20);
    let roomy = free_bytes.is_some_and(|free| free / 2 > seed_bytes);
    if roomy {
        shm.join(name)
    } else {
        vol.join(".staging")
    }
}

/// Make a fresh, empty overlay file above `parent` (a layer file; `None`: the
/// baseline) and return its name; the record is not saved and does not name it yet.
pub fn new_active_over(
    dir: &WorkspaceDir,
    rec: &mut VolumeRecord,
    parent: Option<&str>,
) -> Result<String> {
    let file = rec.new_file("active");
    let (below, format) = rec.image(dir, parent);
    images::create_overlay(&below, format, &dir.volume().join(&file)).map_err(backend_err)?;
    Ok(file)
}

/// A `json:` image name for the image `parent` names (a layer file; `None`: the
/// baseline) with its whole chain spelt out, so `qemu-img` never follows a header a
/// running QEMU may have rewritten.
pub fn chain_spec(dir: &WorkspaceDir, rec: &VolumeRecord, parent: Option<&str>) -> String {
    let file = |path: &Path| serde_json::json!({ "driver": "file", "filename": path });
    let mut spec = serde_json::json!({
        "driver": images::image_format(&rec.baseline),
        "file": file(&rec.baseline),
    });
    let Some(parent) = parent else { return format!("json:{spec}") };
    let mut chain = rec.chain_below(rec.layer(parent).and_then(|l| l.parent.as_deref()));
    chain.push(parent.to_owned());
    for layer in chain {
        spec = serde_json::json!({
            "driver": "qcow2",
            "file": file(&dir.volume().join(layer)),
            "backing": spec,
        });
    }
    format!("json:{spec}")
}

/// Put the real paths of the images below back into the headers of every qcow2 in the
/// volume (QEMU leaves `/proc/self/fd/<n>` there after merging running layers). Only on
/// a stopped workspace, before offline tools follow the headers.
pub fn repair_headers(dir: &WorkspaceDir, rec: &VolumeRecord) -> Result<()> {
    let vol = dir.volume();
    let mut images_and_parents: Vec<(&str, Option<&str>)> =
        rec.layers.iter().map(|l| (l.file.as_str(), l.parent.as_deref())).collect();
    images_and_parents.push((rec.active.as_str(), rec.active_parent.as_deref()));
    for (file, parent) in images_and_parents {
        let (below, format) = rec.image(dir, parent);
        images::set_backing_header(&vol.join(file), &below, format).map_err(backend_err)?;
    }
    Ok(())
}

/// Remove a volume file and free its space even while a running QEMU still holds a
/// descriptor of it (the ones it inherited at boot): truncate first, then unlink.
/// Only for files no chain uses any more. Missing: not an error.
pub fn discard_file(dir: &WorkspaceDir, name: &str) {
    let path = dir.volume().join(name);
    if let Ok(file) = fs::OpenOptions::new().write(true).open(&path) {
        let _ = file.set_len(0);
    }
    remove_file(dir, name);
}

/// Remove a file of the volume directory (missing: not an error).
pub fn remove_file(dir: &WorkspaceDir, name: &str) {
    let path = dir.volume().join(name);
    if let Err(e) = fs::remove_file(&path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove a volume file");
        }
    }
}

#[cfg(test)]
mod tests {
    //! The background `mke2fs` of a seeded baseline: its error reaches every waiter,
    //! and dropping the handle waits for it (no `mke2fs` outlives a create).
    use super::*;

    fn sparse(dir: &Path) -> PathBuf {
        let image = dir.join("baseline.ext4");
        images::create_sparse(&image, 64 << 20).expect("sparse file");
        image
    }

    #[test]
    fn a_failed_format_is_reported_to_every_waiter() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let image = sparse(tmp.path());
        let pending = PendingBaseline::start(image, Source::Direct(tmp.path().join("missing")));
        let first = pending.wait().expect_err("mke2fs -d of a missing directory fails");
        assert!(first.to_string().contains("mke2fs"), "{first}");
        let again = pending.wait().expect_err("still failed");
        assert!(again.to_string().contains(&first.to_string()), "{again}");
    }

    #[test]
    fn dropping_a_pending_baseline_waits_for_it_and_removes_the_staging_tree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let image = sparse(tmp.path());
        let staging = tmp.path().join("staging");
        fs::create_dir_all(staging.join("src")).expect("mkdir");
        fs::write(staging.join("src/lib.rs"), "pub fn f() {}\n").expect("write");
        drop(PendingBaseline::start(image.clone(), Source::Staged(staging.clone())));
        assert!(!staging.exists(), "the staging tree is gone once the handle is dropped");
        let listing = std::process::Command::new("debugfs")
            .args(["-R", "ls /src"])
            .arg(&image)
            .output()
            .expect("debugfs");
        assert!(String::from_utf8_lossy(&listing.stdout).contains("lib.rs"), "{listing:?}");
    }
}
