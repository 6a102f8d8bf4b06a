//! Streamed transfers (protocol 1.7): archives too large for one frame move through a
//! spool file in chunks of at most [`MAX_CHUNK_BYTES`].
//!
//! An export packs into an unlinked temporary file in the spool directory (on the
//! guest's disk, `/var/tmp`, not its memory) that the host reads by offset; an import
//! receives chunks in order into such a file, up to the announced length, and is
//! unpacked from it on commit. Neither side ever holds the whole archive in memory.
//! At most [`MAX_OPEN_TRANSFERS`] are open at once; opening another drops the oldest,
//! so a host that vanished mid-transfer leaks no disk space past that.

use crate::error::SandboxError;
use crate::files;
use pyro_protocol::{ArchiveStats, ArtifactType, MAX_CHUNK_BYTES};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Most transfers open at once.
pub const MAX_OPEN_TRANSFERS: usize = 8;

#[derive(Debug)]
enum Direction {
    Export,
    Import { received: u64 },
}

#[derive(Debug)]
struct Transfer {
    file: Arc<File>,
    size: u64,
    direction: Direction,
}

/// The open transfers of one sandbox.
#[derive(Debug)]
pub(crate) struct Transfers {
    spool_dir: PathBuf,
    next_id: Mutex<u64>,
    open: Mutex<BTreeMap<u64, Transfer>>,
}

/// What an open answers.
pub(crate) struct Opened {
    pub id: String,
    pub size: u64,
    pub artifact_type: Option<ArtifactType>,
    pub stats: ArchiveStats,
}

fn parse_id(id: &str) -> Result<u64, SandboxError> {
    id.strip_prefix('t')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| SandboxError::Invalid(format!("unknown transfer id {id:?}")))
}

fn unknown(id: &str) -> SandboxError {
    SandboxError::Invalid(format!("unknown transfer id {id:?} (closed, committed or evicted)"))
}

impl Transfers {
    pub(crate) fn new(spool_dir: PathBuf) -> Self {
        Transfers { spool_dir, next_id: Mutex::new(1), open: Mutex::default() }
    }

    fn spool(&self) -> Result<File, SandboxError> {
        let dir = self.spool_dir.display().to_string();
        std::fs::create_dir_all(&self.spool_dir)
            .map_err(|e| SandboxError::io("create spool directory", &dir, e))?;
        tempfile::tempfile_in(&self.spool_dir)
            .map_err(|e| SandboxError::io("create spool file in", &dir, e))
    }

    fn insert(&self, transfer: Transfer) -> String {
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        while open.len() >= MAX_OPEN_TRANSFERS {
            open.pop_first();
        }
        open.insert(id, transfer);
        format!("t{id}")
    }

    /// Pack `guest` into a new spool file.
    pub(crate) fn open_export(
        &self,
        workspace_dir: &Path,
        guest: &str,
    ) -> Result<Opened, SandboxError> {
        let file = self.spool()?;
        let (writer, artifact_type, stats) =
            files::export_to(workspace_dir, guest, BufWriter::new(file))?;
        let file = writer
            .into_inner()
            .map_err(|e| SandboxError::io("write spool file for", guest, e.into_error()))?;
        let size = file.metadata().map_err(|e| SandboxError::io("stat spool of", guest, e))?.len();
        let id = self.insert(Transfer { file: Arc::new(file), size, direction: Direction::Export });
        Ok(Opened { id, size, artifact_type: Some(artifact_type), stats })
    }

    /// Spool `document` as JSON, to be read like an export; more than `max_bytes` of
    /// JSON is [`SandboxError::TooLarge`].
    pub(crate) fn open_document<T: serde::Serialize>(
        &self,
        document: &T,
        max_bytes: u64,
    ) -> Result<Opened, SandboxError> {
        let file = self.spool()?;
        let mut writer = BufWriter::new(file);
        serde_json::to_writer(&mut writer, document)
            .map_err(|e| SandboxError::io("write spool file", "(answer)", e.into()))?;
        let file = writer
            .into_inner()
            .map_err(|e| SandboxError::io("write spool file", "(answer)", e.into_error()))?;
        let size =
            file.metadata().map_err(|e| SandboxError::io("stat spool", "(answer)", e))?.len();
        if size > max_bytes {
            return Err(SandboxError::TooLarge(format!(
                "the answer is {size} bytes, more than the {max_bytes} asked for"
            )));
        }
        let id = self.insert(Transfer { file: Arc::new(file), size, direction: Direction::Export });
        Ok(Opened { id, size, artifact_type: None, stats: ArchiveStats::default() })
    }

    /// An empty spool file for an import of `size` bytes.
    pub(crate) fn open_import(&self, size: u64) -> Result<Opened, SandboxError> {
        let file = self.spool()?;
        let id = self.insert(Transfer {
            file: Arc::new(file),
            size,
            direction: Direction::Import { received: 0 },
        });
        Ok(Opened { id, size, artifact_type: None, stats: ArchiveStats::default() })
    }

    /// Up to `max_bytes` of an export from `offset`.
    pub(crate) fn read(
        &self,
        id: &str,
        offset: u64,
        max_bytes: u64,
    ) -> Result<Vec<u8>, SandboxError> {
        let key = parse_id(id)?;
        let (file, size) = {
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            match open.get(&key) {
                Some(t @ Transfer { direction: Direction::Export, .. }) => (t.file.clone(), t.size),
                Some(_) => {
                    return Err(SandboxError::Invalid(format!("transfer {id} is an import")))
                }
                None => return Err(unknown(id)),
            }
        };
        if offset > size {
            return Err(SandboxError::Invalid(format!(
                "offset {offset} is past the end of transfer {id} ({size} bytes)"
            )));
        }
        let len = max_bytes.min(MAX_CHUNK_BYTES).min(size - offset);
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| SandboxError::io("read spool of transfer", id, e))?;
        Ok(buf)
    }

    /// Append `data` at `offset` of an import.
    pub(crate) fn write(&self, id: &str, offset: u64, data: &[u8]) -> Result<u64, SandboxError> {
        let key = parse_id(id)?;
        if data.len() as u64 > MAX_CHUNK_BYTES {
            return Err(SandboxError::Invalid(format!(
                "chunk of {} bytes is larger than {MAX_CHUNK_BYTES}",
                data.len()
            )));
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let transfer = open.get_mut(&key).ok_or_else(|| unknown(id))?;
        let size = transfer.size;
        let Direction::Import { received } = &mut transfer.direction else {
            return Err(SandboxError::Invalid(format!("transfer {id} is an export")));
        };
        if offset != *received {
            return Err(SandboxError::Invalid(format!(
                "chunk at offset {offset} of transfer {id}, expected {received}"
            )));
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > size {
            return Err(SandboxError::Invalid(format!(
                "chunk ends at {end}, beyond the announced length {size} of transfer {id}"
            )));
        }
        // Writes of one transfer are serialised by the lock, in order.
        (&*transfer.file)
            .write_all(data)
            .map_err(|e| SandboxError::io("write spool of transfer", id, e))?;
        *received = end;
        Ok(data.len() as u64)
    }

    /// Take a completely received import out of the table: its file, rewound.
    pub(crate) fn take_import(&self, id: &str) -> Result<Arc<File>, SandboxError> {
        let key = parse_id(id)?;
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(&key) {
            Some(Transfer { direction: Direction::Import { received }, size, .. })
                if received == size => {}
            Some(Transfer { direction: Direction::Import { received }, size, .. }) => {
                return Err(SandboxError::Invalid(format!(
                    "transfer {id} received {received} of its announced {size} bytes"
                )))
            }
            Some(_) => return Err(SandboxError::Invalid(format!("transfer {id} is an export"))),
            None => return Err(unknown(id)),
        }
        let transfer = open.remove(&key).ok_or_else(|| unknown(id))?;
        Ok(transfer.file)
    }

    /// Forget a transfer (its unlinked spool file goes with the last handle).
    pub(crate) fn close(&self, id: &str) {
        if let Ok(key) = parse_id(id) {
            self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        }
    }
}
