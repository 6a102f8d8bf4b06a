//! The guest's serial console: capping it, and reading boot markers and the tail shown
//! in errors.
//!
//! # Cap
//!
//! A guest can write to `/dev/ttyS0` forever, and QEMU outlives every pyro process, so
//! the cap must hold with no pyro process around. QEMU starts with the console on a
//! plain file (`-chardev file,id=console`): during boot only the kernel and pyro's own
//! initramfs write to it (no user code has run yet), and a failed boot keeps every line,
//! `PYRO-INIT-FATAL` included. Once the agent answered its hello, [`cap_console`]
//! switches the chardev over QMP (`chardev-change`) to a **ring buffer inside QEMU**
//! ([`ring_size`] bytes, at most 4 MiB): from then on QEMU keeps only the newest bytes
//! in memory and writes nothing to disk. [`drain`] moves what the ring holds into
//! `console.log`, rotating to `console.log.1` at half of
//! [`GuestLimits::max_console_bytes`](super::super::limits::GuestLimits), so the two files
//! together never exceed the cap (default 8 MiB). Stop drains before QEMU quits.
//!
//! The initramfs prints `PYRO-INIT stage=<name> uptime=<secs>` at each stage and
//! `PYRO-INIT-FATAL <reason>` before powering off on a fatal error; the agent prints
//! `PYRO-AGENT ready ports=<n> uptime=<secs>` once it serves its ports. Uptimes are the
//! guest's `/proc/uptime` (seconds since the guest kernel started).

use super::layout::SandboxPaths;
use super::qmp::{QmpClient, QmpError};
use base64::Engine as _;
use serde_json::json;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The id of the console chardev on QEMU's command line.
pub const CONSOLE_CHARDEV: &str = "console";

/// Size of QEMU's console ring for a cap of `max_console_bytes`: a power of two (QEMU
/// requires one), at most half the cap, between 64 KiB and 4 MiB.
pub fn ring_size(max_console_bytes: u64) -> u64 {
    let half = (max_console_bytes / 2).clamp(64 * 1024, 4 * 1024 * 1024);
    1u64 << (63 - half.leading_zeros())
}

/// Switch the console from the boot file to QEMU's in-memory ring (see the module doc).
pub fn cap_console(qmp: &mut QmpClient, max_console_bytes: u64) -> Result<(), QmpError> {
    qmp.execute(
        "chardev-change",
        Some(json!({
            "id": CONSOLE_CHARDEV,
            "backend": { "type": "ringbuf", "data": { "size": ring_size(max_console_bytes) } }
        })),
    )
    .map(|_| ())
}

/// Move what QEMU's console ring holds into `console.log` (rotating, see the module
/// doc); returns the bytes moved. Concurrent drains take turns on `console.lock`.
pub fn drain(
    qmp: &mut QmpClient,
    paths: &SandboxPaths,
    max_console_bytes: u64,
) -> Result<u64, QmpError> {
    let io_err = |context, source| QmpError::Io { context, path: paths.console_log(), source };
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(paths.console_lock())
        .map_err(|e| io_err("open console lock", e))?;
    lock.lock().map_err(|e| io_err("lock console", e))?;
    let size = ring_size(max_console_bytes);
    let value = qmp.execute(
        "ringbuf-read",
        Some(json!({ "device": CONSOLE_CHARDEV, "size": size, "format": "base64" })),
    )?;
    let text = value.as_str().unwrap_or_default();
    // QEMU answers at most `size` bytes; refuse anything else rather than trust it.
    if text.len() as u64 > size.div_ceil(3) * 4 + 4 {
        return Err(QmpError::Protocol(format!("ringbuf-read returned {} characters", text.len())));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| QmpError::Protocol(format!("ringbuf-read returned bad base64: {e}")))?;
    append_rotating(paths, &bytes, max_console_bytes).map_err(|e| io_err("append", e))?;
    Ok(bytes.len() as u64)
}

/// Append `bytes` to `console.log`, first renaming it to `console.log.1` when it would
/// pass half the cap. Only the newest half-cap of `bytes` is kept.
fn append_rotating(
    paths: &SandboxPaths,
    bytes: &[u8],
    max_console_bytes: u64,
) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let half = usize::try_from((max_console_bytes / 2).max(1)).unwrap_or(usize::MAX);
    let bytes = &bytes[bytes.len().saturating_sub(half)..];
    let log = paths.console_log();
    let len = fs::symlink_metadata(&log).map(|m| m.len()).unwrap_or(0);
    if len.saturating_add(bytes.len() as u64) > half as u64 {
        match fs::rename(&log, paths.console_log_rotated()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let mut file =
        OpenOptions::new().create(true).append(true).custom_flags(libc::O_NOFOLLOW).open(&log)?;
    file.write_all(bytes)
}

/// Bytes the console keeps on disk now (`console.log` plus `console.log.1`).
pub fn kept_bytes(paths: &SandboxPaths) -> u64 {
    [paths.console_log(), paths.console_log_rotated()]
        .iter()
        .filter_map(|p| fs::symlink_metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// The markers found in a console log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsoleMarkers {
    /// `(stage, guest uptime in seconds)` in console order.
    pub stages: Vec<(String, f64)>,
    /// Guest uptime when the agent reported ready.
    pub agent_ready: Option<f64>,
    /// Number of ports the agent serves, from its ready line.
    pub agent_ports: Option<usize>,
    /// The reason of a `PYRO-INIT-FATAL` line.
    pub fatal: Option<String>,
}

/// Value of `key=` among whitespace-separated `key=value` words.
fn field<'a>(words: &'a str, key: &str) -> Option<&'a str> {
    words.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Find the markers in console text (kernel messages may share lines with them).
pub fn parse_markers(text: &str) -> ConsoleMarkers {
    let mut markers = ConsoleMarkers::default();
    for line in text.lines() {
        if let Some(pos) = line.find("PYRO-INIT-FATAL") {
            let reason = line[pos + "PYRO-INIT-FATAL".len()..].trim();
            markers.fatal = Some(reason.to_owned());
        } else if let Some(pos) = line.find("PYRO-INIT ") {
            let rest = &line[pos..];
            let stage = field(rest, "stage");
            let uptime = field(rest, "uptime").and_then(|u| u.parse::<f64>().ok());
            if let (Some(stage), Some(uptime)) = (stage, uptime) {
                markers.stages.push((stage.to_owned(), uptime));
            }
        } else if let Some(pos) = line.find("PYRO-AGENT ready") {
            let rest = &line[pos..];
            markers.agent_ready = field(rest, "uptime").and_then(|u| u.parse::<f64>().ok());
            markers.agent_ports = field(rest, "ports").and_then(|p| p.parse::<usize>().ok());
        }
    }
    markers
}

/// Read the console log (lossily, it may hold any bytes), at most its last `max_bytes`.
pub fn read_console(path: &Path, max_bytes: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > max_bytes {
        let _ = file.seek(SeekFrom::Start(len - max_bytes));
    }
    let mut bytes = Vec::new();
    let _ = file.take(max_bytes).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last `lines` non-empty lines of `text`, without carriage returns.
pub fn tail_lines(text: &str, lines: usize) -> String {
    let kept: Vec<&str> =
        text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.trim().is_empty()).collect();
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "\
[    0.000000] Linux version 6.1.0\r
PYRO-INIT stage=modules-start uptime=0.41\r
PYRO-INIT stage=modules-done uptime=0.62\r
[    0.700000] EXT4-fs (vda): mounted filesystem PYRO-INIT stage=root-mounted uptime=0.71\r
PYRO-INIT stage=switch-root uptime=0.75\r
PYRO-INIT stage=broken uptime=soon\r
PYRO-AGENT ready ports=4 uptime=0.83\r
";

    #[test]
    fn markers_are_found_even_mid_line() {
        let m = parse_markers(BOOT);
        let stages: Vec<&str> = m.stages.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(stages, ["modules-start", "modules-done", "root-mounted", "switch-root"]);
        assert_eq!(m.stages[2].1, 0.71);
        assert_eq!(m.agent_ready, Some(0.83));
        assert_eq!(m.agent_ports, Some(4));
        assert_eq!(m.fatal, None);
    }

    #[test]
    fn fatal_reason_is_kept() {
        let m = parse_markers(
            "PYRO-INIT stage=modules-start uptime=0.4\nPYRO-INIT-FATAL insmod virtio_blk failed\n",
        );
        assert_eq!(m.fatal.as_deref(), Some("insmod virtio_blk failed"));
        assert_eq!(m.agent_ready, None);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail_lines("a\r\n\r\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("", 5), "");
    }

    #[test]
    fn ring_sizes_are_powers_of_two_within_bounds() {
        assert_eq!(ring_size(8 << 20), 4 << 20);
        assert_eq!(ring_size(6 << 20), 2 << 20);
        assert_eq!(ring_size(1 << 20), 512 << 10);
        assert_eq!(ring_size(1), 64 << 10);
        assert_eq!(ring_size(u64::MAX), 4 << 20);
    }

    #[test]
    fn appends_rotate_and_stay_under_the_cap() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let paths = SandboxPaths::from_canonical(tmp.path().canonicalize().expect("canon"));
        let cap = 1000;
        for i in 0..50u8 {
            append_rotating(&paths, &[b'a' + (i % 26); 130], cap).expect("append");
            assert!(kept_bytes(&paths) <= cap, "round {i}: {}", kept_bytes(&paths));
        }
        append_rotating(&paths, &[b'z'; 5000], cap).expect("append");
        assert!(kept_bytes(&paths) <= cap);
        assert!(fs::read(paths.console_log()).expect("log").iter().all(|b| *b == b'z'));
    }

    #[test]
    fn read_console_keeps_the_end_of_big_logs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join("console.log");
        std::fs::write(&log, format!("{}\nend\n", "x".repeat(10_000))).expect("write");
        let text = read_console(&log, 100);
        assert_eq!(text.len(), 100);
        assert!(text.ends_with("end\n"));
        assert_eq!(read_console(&tmp.path().join("none"), 100), "");
    }
}
