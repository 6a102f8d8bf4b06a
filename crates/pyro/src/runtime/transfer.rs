//! Archive transfers between the host and the guest agent, in bounded chunks.
//!
//! With an agent that names [`STREAM_CAPABILITY`] in its hello (protocol 1.7), an export
//! is packed into a spool file in the guest and read from it in chunks of at most
//! [`TransferLimits::chunk_bytes`], each written straight to a host file; an import
//! streams a host file into a guest spool file the same way, then commits it. The host
//! holds one chunk (plus its base64) at a time, never the archive, and everything the
//! guest says is checked: the announced length against the transfer cap, every chunk's
//! offset and length against what was asked and announced, and the stream's end
//! against the announced length. An older agent (or one that does not name the
//! capability) gets the one-frame `export_tar`/`import_tar` of protocol 1.0, whose
//! answer is capped by the transfer cap.

use super::agent::{self, b64, invalid, unb64, unexpected, QUICK};
use super::error::{PyroError, Result};
use crate::backend::limits::{GuestLimits, MAX_TRANSFER_ENV};
use crate::backend::AgentChannel;
use pyro_protocol::{
    ArchiveStats, ArtifactType, Request, Response, MAX_CHUNK_BYTES, STREAM_CAPABILITY,
};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

/// Environment variable: the chunk size of streamed transfers in KiB.
pub const CHUNK_ENV: &str = "PYRO_TRANSFER_CHUNK_KIB";
/// Environment variable: the most members an archive may hold.
pub const MAX_ENTRIES_ENV: &str = "PYRO_MAX_ARCHIVE_ENTRIES";
/// Default chunk: 1 MiB.
pub const DEFAULT_CHUNK_BYTES: u64 = 1024 * 1024;

/// Longest transfer id accepted from the guest.
const MAX_TRANSFER_ID: usize = 64;

/// The limits of one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferLimits {
    /// Largest archive, either way (the whole stream).
    pub max_total_bytes: u64,
    /// Bytes per chunk.
    pub chunk_bytes: u64,
    /// Most members an archive may hold.
    pub max_entries: u64,
}

impl TransferLimits {
    /// From `PYRO_MAX_TRANSFER_MIB`, `PYRO_TRANSFER_CHUNK_KIB` (1 to 4096) and
    /// `PYRO_MAX_ARCHIVE_ENTRIES` (at least 1), else the defaults.
    pub fn from_env() -> Self {
        let number =
            |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok());
        TransferLimits {
            max_total_bytes: GuestLimits::from_env().max_transfer_bytes,
            chunk_bytes: number(CHUNK_ENV)
                .filter(|k| (1..=MAX_CHUNK_BYTES / 1024).contains(k))
                .map_or(DEFAULT_CHUNK_BYTES, |k| k * 1024),
            max_entries: number(MAX_ENTRIES_ENV)
                .filter(|n| *n >= 1)
                .unwrap_or(pyro_agent::archive::DEFAULT_MAX_ENTRIES),
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// Type of the exported path.
    pub artifact_type: ArtifactType,
    /// The agent's stats of the archive.
    pub stats: ArchiveStats,
    /// Archive length written to the file.
    pub len: u64,
}

fn over_cap(what: &str, len: u64, limits: &TransferLimits) -> PyroError {
    PyroError::invalid(format!(
        "{what} is {} MiB, over the transfer cap of {} MiB (raise it with {MAX_TRANSFER_ENV})",
        len.div_ceil(1024 * 1024),
        limits.max_total_bytes / (1024 * 1024)
    ))
}

fn write_err(e: std::io::Error) -> PyroError {
    PyroError::io("could not write the transferred archive", "(host spool file)", e)
}

/// Check a transfer id the guest chose.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_TRANSFER_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(format!(
            "a transfer id that is not 1-{MAX_TRANSFER_ID} printable characters"
        )));
    }
    Ok(())
}

/// Export guest `path` as a tar into `out` (written from its start).
pub fn export_into(
    channel: &mut dyn AgentChannel,
    path: &str,
    out: &mut File,
    limits: &TransferLimits,
) -> Result<Exported> {
    out.set_len(0).and_then(|()| out.rewind()).map_err(write_err)?;
    if !channel.supports(STREAM_CAPABILITY) {
        let response = agent::call(channel, Request::ExportTar { path: path.into() }, QUICK)?;
        let Response::Tar { artifact_type, stats, data_b64 } = response else {
            return Err(unexpected("export_tar", &response));
        };
        let data = unb64(&data_b64)?;
        out.write_all(&data).map_err(write_err)?;
        return Ok(Exported { artifact_type, stats, len: data.len() as u64 });
    }
    let opened = agent::call(channel, Request::ExportOpen { path: path.into() }, QUICK)?;
    let Response::TransferOpened { transfer_id, size_bytes, artifact_type, stats } = opened else {
        return Err(unexpected("export_open", &opened));
    };
    check_id(&transfer_id)?;
    let result = (|| {
        let Some(artifact_type) = artifact_type else {
            return Err(invalid("an export_open answer without the exported type"));
        };
        if size_bytes > limits.max_total_bytes {
            return Err(over_cap(&format!("the archive of {path}"), size_bytes, limits));
        }
        read_chunks(channel, &transfer_id, size_bytes, out, limits)?;
        Ok(Exported { artifact_type, stats, len: size_bytes })
    })();
    close(channel, &transfer_id);
    result
}

/// Read the `size` announced bytes of transfer `transfer_id` into `out`, checking every
/// chunk against what was asked and announced.
pub(crate) fn read_chunks(
    channel: &mut dyn AgentChannel,
    transfer_id: &str,
    size: u64,
    out: &mut dyn Write,
    limits: &TransferLimits,
) -> Result<()> {
    let mut offset = 0u64;
    while offset < size {
        let request = Request::TransferRead {
            transfer_id: transfer_id.into(),
            offset,
            max_bytes: limits.chunk_bytes,
        };
        let response = agent::call(channel, request, QUICK)?;
        let Response::Chunk { offset: at, data_b64 } = response else {
            return Err(unexpected("transfer_read", &response));
        };
        if at != offset {
            return Err(invalid(format!("a chunk at offset {at} when {offset} was asked for")));
        }
        let data = unb64(&data_b64)?;
        let len = data.len() as u64;
        if len > limits.chunk_bytes {
            return Err(invalid(format!(
                "a chunk of {len} bytes when at most {} were asked for",
                limits.chunk_bytes
            )));
        }
        if len == 0 {
            return Err(invalid(format!(
                "the archive stream ended at {offset} of its announced {size} bytes"
            )));
        }
        if offset + len > size {
            return Err(invalid(format!(
                "a chunk ending at {} beyond the announced length {size}",
                offset + len
            )));
        }
        out.write_all(&data).map_err(write_err)?;
        offset += len;
    }
    Ok(())
}

/// Release a transfer (best effort).
pub(crate) fn close(channel: &mut dyn AgentChannel, transfer_id: &str) {
    let request = Request::TransferClose { transfer_id: transfer_id.into() };
    if let Err(e) = agent::call(channel, request, QUICK) {
        tracing::debug!(error = %e, "could not close a transfer");
    }
}

/// Import the tar in `source` (read from its start) into guest directory `dest`.
pub fn import_from(
    channel: &mut dyn AgentChannel,
    dest: &str,
    source: &mut File,
    replace: bool,
    limits: &TransferLimits,
) -> Result<ArchiveStats> {
    let read_err = |e: std::io::Error| {
        PyroError::io("could not read the archive to send", "(host spool file)", e)
    };
    let len = source.seek(SeekFrom::End(0)).map_err(read_err)?;
    source.rewind().map_err(read_err)?;
    if len > limits.max_total_bytes {
        return Err(over_cap("the archive to send", len, limits));
    }
    if !channel.supports(STREAM_CAPABILITY) {
        let mut data = Vec::new();
        source.read_to_end(&mut data).map_err(read_err)?;
        let request = Request::ImportTar { dest: dest.into(), replace, data_b64: b64(&data) };
        return match agent::call(channel, request, QUICK)? {
            Response::Imported { stats } => Ok(stats),
            other => Err(unexpected("import_tar", &other)),
        };
    }
    let opened = agent::call(channel, Request::ImportOpen { size_bytes: len }, QUICK)?;
    let Response::TransferOpened { transfer_id, size_bytes, .. } = opened else {
        return Err(unexpected("import_open", &opened));
    };
    check_id(&transfer_id)?;
    if size_bytes != len {
        close(channel, &transfer_id);
        return Err(invalid(format!("an import opened for {size_bytes} bytes, not {len}")));
    }
    let chunk = usize::try_from(limits.chunk_bytes).unwrap_or(1024 * 1024);
    let mut buf = vec![0u8; chunk];
    let mut offset = 0u64;
    let sent = (|| {
        while offset < len {
            let want = usize::try_from((len - offset).min(limits.chunk_bytes)).unwrap_or(chunk);
            source.read_exact(&mut buf[..want]).map_err(read_err)?;
            let request = Request::TransferWrite {
                transfer_id: transfer_id.clone(),
                offset,
                data_b64: b64(&buf[..want]),
            };
            match agent::call(channel, request, QUICK)? {
                Response::Written { bytes_written } if bytes_written == want as u64 => {}
                other => return Err(unexpected("transfer_write", &other)),
            }
            offset += want as u64;
        }
        Ok(())
    })();
    if let Err(e) = sent {
        close(channel, &transfer_id);
        return Err(e);
    }
    let commit =
        Request::ImportCommit { transfer_id: transfer_id.clone(), dest: dest.into(), replace };
    match agent::call(channel, commit, QUICK) {
        Ok(Response::Imported { stats }) => Ok(stats),
        Ok(other) => Err(unexpected("import_commit", &other)),
        Err(e) => {
            close(channel, &transfer_id);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    //! Streams forged by a hostile agent: each is a clear "invalid answer" error, and
    //! the host never asks for or keeps more than a chunk.
    use super::*;
    use crate::backend::BackendError;
    use std::time::Duration;

    /// A fake agent announcing `announced` bytes and answering reads with `chunk(offset,
    /// max_bytes)`.
    /// Answers a chunk read at `(offset, max_bytes)`.
    type ChunkFn = Box<dyn FnMut(u64, u64) -> Response + Send>;

    struct Forged {
        announced: u64,
        chunk: ChunkFn,
        asked: Vec<u64>,
    }

    impl AgentChannel for Forged {
        fn call(&mut self, request: Request, _: Duration) -> Result<Response, BackendError> {
            Ok(match request {
                Request::ExportOpen { .. } => Response::TransferOpened {
                    transfer_id: "t1".into(),
                    size_bytes: self.announced,
                    artifact_type: Some(ArtifactType::Directory),
                    stats: ArchiveStats::default(),
                },
                Request::TransferRead { offset, max_bytes, .. } => {
                    self.asked.push(max_bytes);
                    (self.chunk)(offset, max_bytes)
                }
                _ => Response::Done,
            })
        }

        fn supports(&mut self, capability: &str) -> bool {
            capability == STREAM_CAPABILITY
        }
    }

    fn limits() -> TransferLimits {
        TransferLimits { max_total_bytes: 1 << 20, chunk_bytes: 1024, max_entries: 10 }
    }

    fn export(
        announced: u64,
        chunk: impl FnMut(u64, u64) -> Response + Send + 'static,
    ) -> (Result<Exported>, Vec<u64>) {
        let mut agent = Forged { announced, chunk: Box::new(chunk), asked: Vec::new() };
        let mut out = tempfile::tempfile().expect("tempfile");
        let result = export_into(&mut agent, "/workspace", &mut out, &limits());
        (result, agent.asked)
    }

    fn data(offset: u64, len: usize) -> Response {
        Response::Chunk { offset, data_b64: b64(&vec![7u8; len]) }
    }

    #[test]
    fn an_honest_stream_arrives_in_chunks_of_the_configured_size() {
        let (result, asked) =
            export(5000, |offset, max| data(offset, max.min(5000 - offset) as usize));
        assert_eq!(result.expect("export").len, 5000);
        assert_eq!(asked, [1024; 5], "five chunks of the configured 1 KiB");
    }

    #[test]
    fn forged_streams_are_invalid_answers() {
        let cases: Vec<(&str, u64, ChunkFn, &str)> = vec![
            ("over the cap", 2 << 20, Box::new(|o, _| data(o, 1)), "over the transfer cap"),
            (
                "beyond the announced length",
                1500,
                Box::new(|o, m| data(o, m as usize)),
                "beyond the announced length",
            ),
            (
                "bigger than asked",
                5000,
                Box::new(|o, m| data(o, m as usize + 1)),
                "at most 1024 were asked",
            ),
            ("wrong offset", 5000, Box::new(|o, m| data(o + 1, m as usize)), "when 0 was asked"),
            ("ends early", 5000, Box::new(|o, _| data(o, 0)), "ended at 0 of its announced 5000"),
            (
                "not a chunk",
                5000,
                Box::new(|_, _| Response::Done),
                "unexpected answer to transfer_read",
            ),
        ];
        for (case, announced, chunk, expected) in cases {
            let (result, _) = export(announced, chunk);
            let err = result.expect_err(case).to_string();
            assert!(err.contains(expected), "{case}: {err}");
        }
    }
}
