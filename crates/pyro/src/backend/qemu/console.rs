//! Reading the guest's serial console log: boot markers and the tail shown in errors.
//!
//! The initramfs prints `PYRO-INIT stage=<name> uptime=<secs>` at each stage and
//! `PYRO-INIT-FATAL <reason>` before powering off on a fatal error; the agent prints
//! `PYRO-AGENT ready ports=<n> uptime=<secs>` once it serves its ports. Uptimes are the
//! guest's `/proc/uptime` (seconds since the guest kernel started).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

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
