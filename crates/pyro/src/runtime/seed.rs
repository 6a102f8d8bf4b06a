//! Host-side archives: turning a seed or sync source into a checked tar, and writing an
//! exported tar to a new host path. Both reuse the agent crate's tar-slip-safe code.

use super::error::{PyroError, Result};
use pyro_agent::archive;
use pyro_protocol::{ArchiveStats, ArtifactType};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest seed or sync archive accepted (bytes, uncompressed).
pub const MAX_SEED_BYTES: u64 = 512 * 1024 * 1024;

/// A checked source archive.
#[derive(Debug)]
pub struct Seed {
    /// Plain tar bytes.
    pub tar: Vec<u8>,
    /// `directory` or `tar_archive`.
    pub mode: &'static str,
    /// Absolute source path.
    pub source: PathBuf,
}

/// Expand `~` and make a host path absolute.
pub fn absolute(path: &str) -> Result<PathBuf> {
    if path.trim().is_empty() {
        return Err(PyroError::invalid("host path must not be empty"));
    }
    let expanded = match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(rest),
        None => PathBuf::from(path),
    };
    if expanded.is_absolute() {
        return Ok(expanded);
    }
    let cwd = std::env::current_dir()
        .map_err(|e| PyroError::io("could not read the current directory", ".", e))?;
    Ok(cwd.join(expanded))
}

fn is_archive_name(path: &Path) -> Option<bool> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".tar") {
        Some(false)
    } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(true)
    } else {
        None
    }
}

/// Read a directory or `.tar`/`.tar.gz`/`.tgz` into a tar that is safe to unpack.
pub fn prepare(path: &str) -> Result<Seed> {
    let source = absolute(path)?;
    let meta = fs::metadata(&source).map_err(|_| {
        PyroError::invalid(format!("seed_path {} does not exist", source.display()))
    })?;
    if meta.is_dir() {
        let (tar, _, _) = archive::pack_path(&source)
            .map_err(|e| PyroError::invalid(format!("could not pack {}: {e}", source.display())))?;
        return Ok(Seed { tar, mode: "directory", source });
    }
    let Some(gzipped) = is_archive_name(&source).filter(|_| meta.is_file()) else {
        return Err(PyroError::invalid(
            "seed_path must be a directory or a .tar/.tar.gz/.tgz archive",
        ));
    };
    let file = fs::File::open(&source).map_err(|e| PyroError::io("could not open", &source, e))?;
    let mut tar = Vec::new();
    let read = if gzipped {
        flate2::read::GzDecoder::new(file).take(MAX_SEED_BYTES + 1).read_to_end(&mut tar)
    } else {
        file.take(MAX_SEED_BYTES + 1).read_to_end(&mut tar)
    };
    read.map_err(|e| {
        PyroError::invalid(format!("could not read archive {}: {e}", source.display()))
    })?;
    if tar.len() as u64 > MAX_SEED_BYTES {
        return Err(PyroError::invalid(format!(
            "archive {} is larger than {} MiB",
            source.display(),
            MAX_SEED_BYTES / (1024 * 1024)
        )));
    }
    archive::validate_archive(&tar).map_err(|e| {
        PyroError::invalid(format!("unsafe or invalid archive {}: {e}", source.display()))
    })?;
    Ok(Seed { tar, mode: "tar_archive", source })
}

/// Write an exported archive to `output` (which must not exist): a directory becomes a
/// new directory, a file or symlink becomes that single entry.
pub fn write_export(tar: &[u8], kind: ArtifactType, output: &Path) -> Result<ArchiveStats> {
    let parent = output.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(|e| PyroError::io("could not create", parent, e))?;
    let staging = parent.join(format!(".pyro-export-{}", super::state::new_id()));
    let result = (|| -> Result<ArchiveStats> {
        let stats = archive::unpack_into(tar, &staging, false).map_err(|e| {
            PyroError::invalid(format!("exported archive could not be written: {e}"))
        })?;
        let from = match kind {
            ArtifactType::Directory => staging.clone(),
            _ => {
                let mut entries = fs::read_dir(&staging)
                    .map_err(|e| PyroError::io("could not read", &staging, e))?
                    .flatten();
                match (entries.next(), entries.next()) {
                    (Some(only), None) => only.path(),
                    _ => {
                        return Err(PyroError::invalid(
                            "exported archive of a single file did not hold exactly one entry",
                        ))
                    }
                }
            }
        };
        fs::rename(&from, output).map_err(|e| PyroError::io("could not write", output, e))?;
        Ok(stats)
    })();
    if staging.exists() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}
