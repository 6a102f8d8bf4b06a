//! Caps on everything the host accepts from a guest.
//!
//! The guest is hostile once anything ran in it (see `docs/security.md`): it may take
//! the agent's ports over and answer anything. These caps bound what the host holds in
//! memory or on disk for one guest, whatever it sends:
//!
//! - **Transfers** ([`GuestLimits::max_transfer_bytes`], `PYRO_MAX_TRANSFER_MIB`,
//!   default 128 MiB): the largest archive moved in one answer (exports, snapshots,
//!   the diff baseline) and, the same number, the largest seed or sync archive sent in.
//!   One number both ways, so whatever goes in can come back out.
//! - **Answer frames** ([`answer_cap`]): each request has its own cap on the answer
//!   line, derived from what it asked for (a hello is small, an exec answer at most its
//!   two outputs in base64, an export at most one transfer). A line that grows past the
//!   cap without ending is refused as soon as it passes it, so the host never holds more
//!   than the cap plus one read buffer per session.
//!   With an agent that streams (protocol 1.7, see `runtime::transfer`) the cap bounds
//!   the whole stream, moved in chunks: the host holds one chunk, not the archive.
//! - **Console** ([`GuestLimits::max_console_bytes`], `PYRO_CONSOLE_LOG_MAX_MIB`,
//!   default 8 MiB): what the host keeps of the serial console per workspace
//!   (`console.log` plus its one rotated predecessor).
//!
//! Answers to other requests (an earlier client's leftovers) are skipped without being
//! held, up to [`MAX_SKIPPED_ANSWERS`] per call; more is a flood and an invalid answer.

use pyro_protocol::Request;

/// Environment variable: the transfer cap in MiB.
pub const MAX_TRANSFER_ENV: &str = "PYRO_MAX_TRANSFER_MIB";
/// Environment variable: the console log cap in MiB.
pub const MAX_CONSOLE_ENV: &str = "PYRO_CONSOLE_LOG_MAX_MIB";

/// Default transfer cap: fits the checkouts of most real repositories.
pub const DEFAULT_MAX_TRANSFER_BYTES: u64 = 128 * MIB;
/// Default console cap per workspace.
pub const DEFAULT_MAX_CONSOLE_BYTES: u64 = 8 * MIB;

/// Answer cap of a hello (versions and a capability list).
pub const HELLO_ANSWER_CAP: usize = 64 * 1024;
/// Answer cap of requests whose answers are small records (services, shells, writes).
/// Service logs are the largest: two 1 MiB logs, JSON-escaped.
pub const SMALL_ANSWER_CAP: usize = 16 * MIB as usize;
/// Room for the JSON around a base64 payload.
const FRAME_SLACK: usize = 64 * 1024;

/// Most answers to other ids skipped while waiting for one answer.
pub const MAX_SKIPPED_ANSWERS: usize = 4096;

const MIB: u64 = 1024 * 1024;

/// The caps in force (from the environment, else the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLimits {
    /// Largest archive in one transfer, either way.
    pub max_transfer_bytes: u64,
    /// Largest console log kept per workspace (both files together).
    pub max_console_bytes: u64,
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            max_transfer_bytes: DEFAULT_MAX_TRANSFER_BYTES,
            max_console_bytes: DEFAULT_MAX_CONSOLE_BYTES,
        }
    }
}

impl GuestLimits {
    /// The caps from `PYRO_MAX_TRANSFER_MIB` and `PYRO_CONSOLE_LOG_MAX_MIB` (whole MiB,
    /// at least 1; anything else falls back to the default).
    pub fn from_env() -> Self {
        let mib = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|v| (1..=64 * 1024).contains(v))
                .map(|v| v * MIB)
                .unwrap_or(default)
        };
        GuestLimits {
            max_transfer_bytes: mib(MAX_TRANSFER_ENV, DEFAULT_MAX_TRANSFER_BYTES),
            max_console_bytes: mib(MAX_CONSOLE_ENV, DEFAULT_MAX_CONSOLE_BYTES),
        }
    }

    /// The answer cap of one transfer (an archive in base64 plus its frame).
    pub fn transfer_answer_cap(&self) -> usize {
        base64_len(self.max_transfer_bytes).saturating_add(FRAME_SLACK)
    }
}

/// Length of `bytes` bytes in padded base64.
pub fn base64_len(bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(3).saturating_mul(4)).unwrap_or(usize::MAX)
}

/// The largest answer line accepted for `request`.
pub fn answer_cap(request: &Request, limits: &GuestLimits) -> usize {
    match request {
        Request::Hello { .. } => HELLO_ANSWER_CAP,
        // Two outputs, each at most max_output_bytes in base64.
        Request::Exec(exec) => {
            base64_len(exec.max_output_bytes).saturating_mul(2).saturating_add(FRAME_SLACK)
        }
        // A streamed exec's chunk: at most what was asked of each output.
        Request::ExecStart(pyro_protocol::ExecStartRequest { wait, .. })
        | Request::ExecRead(pyro_protocol::ExecReadRequest { wait, .. }) => {
            base64_len(wait.max_bytes).saturating_mul(2).saturating_add(FRAME_SLACK)
        }
        Request::ReadFile { max_bytes, .. } => base64_len(*max_bytes).saturating_add(FRAME_SLACK),
        Request::ExportTar { .. } | Request::ListFiles { .. } => limits.transfer_answer_cap(),
        // One chunk of a streamed transfer: what was asked, never more than a chunk.
        Request::TransferRead { max_bytes, .. } => {
            base64_len((*max_bytes).min(pyro_protocol::MAX_CHUNK_BYTES)).saturating_add(FRAME_SLACK)
        }
        _ => SMALL_ANSWER_CAP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyro_protocol::ExecRequest;

    #[test]
    fn caps_follow_what_was_asked() {
        let limits = GuestLimits::default();
        assert_eq!(answer_cap(&Request::Hello { protocol: (1, 0) }, &limits), HELLO_ANSWER_CAP);
        let read = Request::ReadFile { path: "/workspace/a".into(), max_bytes: 3 };
        assert_eq!(answer_cap(&read, &limits), 4 + FRAME_SLACK);
        let exec = Request::Exec(ExecRequest {
            command: "true".into(),
            cwd: "/workspace".into(),
            env: Default::default(),
            timeout_ms: 1,
            max_output_bytes: 300,
        });
        assert_eq!(answer_cap(&exec, &limits), 800 + FRAME_SLACK);
        let export = Request::ExportTar { path: "/workspace".into() };
        assert!(answer_cap(&export, &limits) > DEFAULT_MAX_TRANSFER_BYTES as usize);
        assert_eq!(answer_cap(&Request::Sync, &limits), SMALL_ANSWER_CAP);
        let chunk =
            Request::TransferRead { transfer_id: "t1".into(), offset: 0, max_bytes: u64::MAX };
        let most = base64_len(pyro_protocol::MAX_CHUNK_BYTES) + FRAME_SLACK;
        assert_eq!(answer_cap(&chunk, &limits), most);
        assert_eq!(base64_len(u64::MAX), usize::MAX);
    }
}
