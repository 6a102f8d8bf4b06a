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
use super::seed::Seed;
use super::state::WorkspaceDir;
use super::transfer::TransferLimits;
use crate::backend::qemu::volume as images;
use crate::backend::VolumeSpec;
use pyro_agent::archive;
use pyro_protocol::ArchiveStats;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{BufWriter, Seek};
use std::path::{Path, PathBuf};

/// A frozen layer of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeLayer {
    /// File name in the volume directory.
    pub file: String,
    /// The named snapshot this layer is (the state of `/workspace` when it was frozen).
    pub snapshot: String,
}

/// The chain of a workspace volume, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// The bottom: `baseline.ext4` in the volume directory, or the shared empty image
    /// (an absolute path in the cache).
    pub baseline: PathBuf,
    /// Frozen layers above the baseline, bottom first.
    pub layers: Vec<VolumeLayer>,
    /// File name of the writable overlay in the volume directory.
    pub active: String,
    /// Virtual size of the images (bytes).
    pub size_bytes: u64,
    /// Number used for the next file name.
    pub next_file: u64,
}

impl VolumeRecord {
    /// The backend's view of the chain.
    pub fn spec(&self, dir: &WorkspaceDir) -> VolumeSpec {
        let vol = dir.volume();
        VolumeSpec {
            baseline: self.baseline.clone(),
            layers: self.layers.iter().map(|l| vol.join(&l.file)).collect(),
            active: vol.join(&self.active),
        }
    }

    /// A fresh file name with `prefix` (`active` or `layer`).
    pub fn new_file(&mut self, prefix: &str) -> String {
        let n = self.next_file;
        self.next_file += 1;
        format!("{prefix}-{n}.qcow2")
    }

    /// The image directly below the layer at `index` (`None`: below the active overlay)
    /// and its format.
    pub fn below(&self, dir: &WorkspaceDir, index: Option<usize>) -> (PathBuf, &'static str) {
        let top = index.unwrap_or(self.layers.len());
        match top.checked_sub(1).and_then(|i| self.layers.get(i)) {
            Some(layer) => (dir.volume().join(&layer.file), "qcow2"),
            None => (self.baseline.clone(), images::image_format(&self.baseline)),
        }
    }
}

fn backend_err(e: crate::backend::BackendError) -> PyroError {
    PyroError::from(e)
}

fn io<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PyroError + 'a {
    move |e| PyroError::io(what, path, e)
}

/// Make the volume of a new workspace in `dir`: the baseline from `seed` (unpacked on
/// the host with the same code and rules as a guest-side import, then `mke2fs -d`), or
/// the shared empty image; an active overlay above it. Also writes `baseline.tar` (the
/// baseline as the archive diff compares against). Returns the chain and the seed's
/// import statistics.
pub fn create(
    cache_dir: &Path,
    dir: &WorkspaceDir,
    seed: Option<&mut Seed>,
) -> Result<(VolumeRecord, Option<ArchiveStats>)> {
    let vol = dir.volume();
    fs::create_dir_all(&vol).map_err(io("could not create", &vol))?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&vol, fs::Permissions::from_mode(0o700))
        .map_err(io("could not chmod", &vol))?;
    let size = images::volume_size_bytes();
    let staging = vol.join(".staging");
    let _ = fs::remove_dir_all(&staging);
    let result = (|| -> Result<(PathBuf, Option<ArchiveStats>)> {
        let (baseline, stats) = match seed {
            Some(seed) => {
                seed.tar.rewind().map_err(io("could not read the seed archive", &staging))?;
                let max_entries = TransferLimits::from_env().max_entries;
                let stats = archive::unpack_from(
                    &mut seed.tar,
                    &staging,
                    false,
                    archive::LinkTargets::Kept,
                    max_entries,
                )
                .map_err(|e| PyroError::invalid(format!("could not unpack the seed: {e}")))?;
                fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))
                    .map_err(io("could not chmod", &staging))?;
                let image = vol.join("baseline.ext4");
                images::make_ext4(&image, size, Some(&staging)).map_err(backend_err)?;
                (image, Some(stats))
            }
            None => {
                fs::create_dir_all(&staging).map_err(io("could not create", &staging))?;
                (images::empty_image(cache_dir).map_err(backend_err)?, None)
            }
        };
        write_baseline_archive(&staging, &dir.baseline())?;
        Ok((baseline, stats))
    })();
    let _ = fs::remove_dir_all(&staging);
    let (baseline, stats) = result?;
    let mut record = VolumeRecord {
        baseline,
        layers: Vec::new(),
        active: String::new(),
        size_bytes: size,
        next_file: 1,
    };
    record.active = record.new_file("active");
    let (below, format) = record.below(dir, None);
    images::create_overlay(&below, format, &vol.join(&record.active)).map_err(backend_err)?;
    Ok((record, stats))
}

/// `baseline.tar`: the tree in `staging` packed exactly as the agent packs an export of
/// `/workspace`, so the archive diff compares like with like.
fn write_baseline_archive(staging: &Path, target: &Path) -> Result<()> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(parent)
        .map_err(io("could not create a spool file in", parent))?;
    let (writer, _, _) = archive::pack_path_to(staging, BufWriter::new(tmp))
        .map_err(|e| PyroError::invalid(format!("could not pack the baseline: {e}")))?;
    let tmp = writer
        .into_inner()
        .map_err(|e| PyroError::io("could not write", target, e.into_error()))?;
    tmp.as_file().sync_all().map_err(io("could not write", target))?;
    tmp.persist(target).map_err(|e| PyroError::io("could not write", target, e.error))?;
    Ok(())
}

/// Put a fresh, empty active overlay on top of the image below layer `above` (`None`:
/// the current top layer; `Some(i)`: layer `i`, dropping every layer above it from the
/// chain is the caller's business). Returns the new file name; the record is not saved.
pub fn new_active_over(dir: &WorkspaceDir, rec: &mut VolumeRecord, top: usize) -> Result<String> {
    let file = rec.new_file("active");
    let (below, format) = rec.below(dir, Some(top));
    images::create_overlay(&below, format, &dir.volume().join(&file)).map_err(backend_err)?;
    Ok(file)
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
