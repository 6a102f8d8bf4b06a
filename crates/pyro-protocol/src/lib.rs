//! Wire types between the pyro host runtime and `pyro-guest-agent`.
//!
//! # Framing
//!
//! One message per line: a JSON object terminated by `\n` (JSON never contains a raw
//! newline, so a line is always a whole frame). Binary payloads travel as base64 strings.
//! Line framing lets a reader resynchronise after a peer reconnects mid-frame: it drops
//! any line that does not parse and any response whose `id` it did not ask for.
//!
//! # Session
//!
//! The host opens a connection (one virtio-serial port) and sends [`Request::Hello`];
//! the agent answers [`Response::Hello`] with its version and capabilities. Every
//! request carries an `id` chosen by the host (random, so a stale answer meant for an
//! earlier, vanished connection is never mistaken for a fresh one); the agent answers
//! with the same id. Several requests may be in flight on one connection; the agent
//! handles each in its own thread and answers in completion order.
//!
//! # Compatibility
//!
//! [`PROTOCOL_VERSION`] is `(major, minor)`. A new optional field or a new request is
//! a minor bump; removing or changing the meaning of a field is a major bump. Peers
//! ignore unknown fields; an agent answers an unknown `op` with
//! [`ErrorKind::Unsupported`] instead of dropping the connection.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod services;
pub use services::*;

/// Protocol version spoken by this build: `(major, minor)`.
pub const PROTOCOL_VERSION: (u16, u16) = (1, 12);

/// Name of the first virtio-serial port the agent serves. Further ports are named
/// `org.pyro.agent.1`, `org.pyro.agent.2`, ... so several host processes can talk to
/// one guest at once (QEMU's socket chardev accepts a single client per port).
pub const AGENT_PORT_PREFIX: &str = "org.pyro.agent";

/// Number of agent ports a guest is started with.
pub const AGENT_PORT_COUNT: usize = 4;

/// Name of agent port `index`.
pub fn agent_port_name(index: usize) -> String {
    format!("{AGENT_PORT_PREFIX}.{index}")
}

/// Most bytes an [`Request::AddEntropy`] may carry.
pub const MAX_ENTROPY_BYTES: usize = 512;

/// Most bytes one [`Request::TransferRead`] or [`Request::TransferWrite`] moves: a
/// chunk of a streamed transfer (since 1.7). A host may ask for less.
pub const MAX_CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// Capability named in `hello` by agents that serve streamed transfers (since 1.7).
pub const STREAM_CAPABILITY: &str = "tar_stream";

/// Capability named in `hello` by agents that serve [`Request::TreeDiffOpen`] (since 1.8).
pub const TREE_DIFF_CAPABILITY: &str = "tree_diff";
/// Capability named in `hello` by agents that serve streamed exec
/// ([`Request::ExecStart`], [`Request::ExecRead`], [`Request::ExecKill`]; since 1.9).
pub const EXEC_STREAM_CAPABILITY: &str = "exec_stream";

/// Longest an [`Request::ExecStart`] or [`Request::ExecRead`] waits before answering.
pub const EXEC_MAX_WAIT_MS: u64 = 30_000;

/// Guest path of the workspace tree.
pub const WORKSPACE_ROOT: &str = "/workspace";

/// Guest directory where the workspace's baseline (its volume's read-only bottom layer:
/// `/workspace` as it was right after seeding) is mounted read-only, `ro,noload`, by
/// the agent when the host asks it to mount the workspace volume. Untouched files there and in
/// [`WORKSPACE_ROOT`] share inode numbers and ctimes (one file system lineage), so a
/// tree compare can go stat-first.
pub const BASELINE_MOUNT: &str = "/run/pyro-baseline";

/// virtio-blk serial of the workspace volume: the writable disk mounted at
/// [`WORKSPACE_ROOT`] (since 1.10).
pub const WORKSPACE_VOLUME_SERIAL: &str = "pyro-workspace";

/// virtio-blk serial of the read-only baseline disk mounted at [`BASELINE_MOUNT`]
/// (since 1.10).
pub const BASELINE_VOLUME_SERIAL: &str = "pyro-baseline";

/// Capability named in `hello` by agents that serve [`Request::MountWorkspace`],
/// [`Request::FreezeWorkspace`] and [`Request::ThawWorkspace`] (since 1.10).
pub const VOLUME_CAPABILITY: &str = "workspace_volume";

/// Capability named in `hello` by agents that track which paths of `/workspace` may
/// differ from the baseline (fanotify), so a [`Request::TreeDiffOpen`] of `/workspace`
/// against [`BASELINE_MOUNT`] compares only those: they take
/// [`Request::MountWorkspace`]'s `known_changes`, answer [`Request::ChangeCandidates`]
/// and honour [`Request::TreeDiffOpen`]'s `full_walk` (since 1.11).
pub const CHANGE_WATCH_CAPABILITY: &str = "change_watch";

/// Capability named in `hello` by agents that serve [`Request::TreeTotals`] (since
/// 1.12).
pub const TREE_TOTALS_CAPABILITY: &str = "tree_totals";

/// Most paths in a change set ([`Request::MountWorkspace`]'s `known_changes`,
/// [`Response::ChangeCandidates`]); a bigger set is sent as unknown.
pub const MAX_CHANGE_SET_PATHS: usize = 20_000;

/// Most bytes of all paths of a change set together.
pub const MAX_CHANGE_SET_BYTES: usize = 1 << 20;

/// Longest a [`Request::FreezeWorkspace`] may keep `/workspace` frozen, in milliseconds.
pub const MAX_FREEZE_MS: u64 = 30_000;

/// Guest directory holding the installed secrets (on the `/run` tmpfs).
pub const SECRETS_DIR: &str = "/run/pyro-secrets";

/// A request frame: an id plus the operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Host-chosen id echoed in the response.
    pub id: u64,
    /// The operation.
    #[serde(flatten)]
    pub request: Request,
}

/// A response frame: the id of the request it answers plus the outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseFrame {
    /// Id of the request this answers.
    pub id: u64,
    /// The outcome.
    #[serde(flatten)]
    pub response: Response,
}

/// Operations the agent performs. Paths are absolute guest paths that the host has
/// already normalised to lie under [`WORKSPACE_ROOT`]; the agent checks again and
/// refuses to follow symlinks out of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Open a session; must be the first request on a connection.
    Hello {
        /// Protocol version of the host.
        protocol: (u16, u16),
    },
    /// Run a command to completion.
    Exec(ExecRequest),
    /// Start a command as [`Request::Exec`] would run it (same environment, timeout,
    /// output caps), then answer like an [`Request::ExecRead`] from offset 0: the host
    /// sees its output while it runs and can kill it. Answer: [`Response::ExecChunk`].
    /// Since 1.9 (capability [`EXEC_STREAM_CAPABILITY`]).
    ExecStart(ExecStartRequest),
    /// Output of a started command since the given offsets, and its exit once it
    /// ended. Answer: [`Response::ExecChunk`]. Since 1.9.
    ExecRead(ExecReadRequest),
    /// Kill a started command's whole process group (SIGKILL); it then ends with exit
    /// code 137 and `killed`. Killing one that already ended is not an error. Answer:
    /// [`Response::Done`]. Since 1.9.
    ExecKill {
        /// Id given in [`ExecStartRequest::exec_id`].
        exec_id: String,
    },
    /// List entries under a path.
    ListFiles {
        /// Directory (or single entry) to list.
        path: String,
        /// Walk subdirectories (pre-order).
        recursive: bool,
    },
    /// Read a regular file (never through a symlink).
    ReadFile {
        /// File to read.
        path: String,
        /// Return at most this many bytes.
        max_bytes: u64,
    },
    /// Create or atomically replace a regular file, creating parent directories.
    WriteFile {
        /// File to write.
        path: String,
        /// Content, base64.
        data_b64: String,
    },
    /// Remove a file, symlink or directory tree. Missing paths are not an error.
    DeletePath {
        /// Path to remove.
        path: String,
    },
    /// Pack a path (file, symlink or directory) into a tar archive. For a directory
    /// the archive holds its children with relative names; for anything else a single
    /// member named after the final path component.
    ExportTar {
        /// Path to pack.
        path: String,
    },
    /// Unpack a tar archive into a directory, rejecting members that would escape it.
    /// Since 1.6 a guest agent keeps symlinks of any target (absolute ones too) as links;
    /// nothing is ever written through a link either way.
    ImportTar {
        /// Destination directory (created if missing).
        dest: String,
        /// Remove everything under `dest` first (used by reset and restore).
        #[serde(default)]
        replace: bool,
        /// Archive bytes, base64 (plain tar).
        data_b64: String,
    },
    /// Pack a path as [`Request::ExportTar`] does, but into a spool file in the guest
    /// (never whole in memory) that the host then reads in chunks with
    /// [`Request::TransferRead`] and releases with [`Request::TransferClose`]. Answer:
    /// [`Response::TransferOpened`]. Since 1.7.
    ExportOpen {
        /// Path to pack.
        path: String,
    },
    /// Start an import of `size_bytes` of plain tar: the agent opens an empty spool file
    /// the host fills in order with [`Request::TransferWrite`], then unpacks with
    /// [`Request::ImportCommit`]. Answer: [`Response::TransferOpened`]. Since 1.7.
    ImportOpen {
        /// Announced archive length; writes past it and commits short of it fail.
        size_bytes: u64,
    },
    /// Read up to `max_bytes` (at most [`MAX_CHUNK_BYTES`]) of an export's spool file
    /// from `offset`. Answer: [`Response::Chunk`] (empty at the end). Since 1.7.
    TransferRead {
        /// Transfer id from [`Response::TransferOpened`].
        transfer_id: String,
        /// Byte offset into the archive.
        offset: u64,
        /// Most bytes to return.
        max_bytes: u64,
    },
    /// Append a chunk (at most [`MAX_CHUNK_BYTES`]) to an import's spool file. `offset`
    /// must equal the bytes received so far. Answer: [`Response::Written`]. Since 1.7.
    TransferWrite {
        /// Transfer id from [`Response::TransferOpened`].
        transfer_id: String,
        /// Byte offset of this chunk.
        offset: u64,
        /// Chunk bytes, base64.
        data_b64: String,
    },
    /// Unpack a completely received import into `dest`, with the rules of
    /// [`Request::ImportTar`], then drop its spool file. Answer:
    /// [`Response::Imported`]. Since 1.7.
    ImportCommit {
        /// Transfer id from [`Response::TransferOpened`].
        transfer_id: String,
        /// Destination directory (created if missing).
        dest: String,
        /// Remove everything under `dest` first.
        #[serde(default)]
        replace: bool,
    },
    /// Compare the tree at `root` with the one at `baseline_root` in the agent, stat
    /// first (see [`TreeDiffAnswer`]), and spool the answer (JSON of a
    /// [`TreeDiffAnswer`]) for the host to read with [`Request::TransferRead`] and
    /// release with [`Request::TransferClose`]. `root` is a workspace path;
    /// `baseline_root` is a workspace path or [`BASELINE_MOUNT`] (or below it). Neither
    /// walk follows symlinks or crosses into another file system (a mount point inside
    /// either tree is [`ErrorKind::Unsupported`]). Past a limit the answer is
    /// [`ErrorKind::TooLarge`]. Answer: [`Response::TransferOpened`] (no artifact type).
    /// Since 1.8, capability [`TREE_DIFF_CAPABILITY`].
    TreeDiffOpen {
        /// Current tree.
        root: String,
        /// Frozen tree to compare against.
        baseline_root: String,
        /// Bounds on the walk and the answer.
        limits: TreeDiffLimits,
        /// Walk both trees whole even when the agent tracks changes (tests, benchmarks);
        /// such a walk leaves the tracking as it was. Since 1.11; older agents always
        /// walk whole.
        #[serde(default)]
        full_walk: bool,
    },
    /// Drop a transfer and its spool file (missing ids are not an error). Answer:
    /// [`Response::Done`]. Since 1.7.
    TransferClose {
        /// Transfer id.
        transfer_id: String,
    },
    /// Replace every secret file: wipe the guest's secrets directory
    /// (`/run/pyro-secrets`, a tmpfs, never on the workspace disk) and write one file
    /// per entry, `<dir>/<NAME>` with mode 0400. An empty map leaves the directory
    /// empty. Guest mode only; `host_compat` answers [`ErrorKind::Unsupported`].
    /// Since protocol 1.1.
    InstallSecrets {
        /// Secret name (`[A-Za-z_][A-Za-z0-9_]{0,63}`) to value, base64.
        secrets: BTreeMap<String, String>,
    },
    /// Flush guest file systems to their disks.
    Sync,
    /// Mount the workspace volume (the virtio-blk disk whose serial is
    /// [`WORKSPACE_VOLUME_SERIAL`]) read-write at [`WORKSPACE_ROOT`] and the baseline disk
    /// ([`BASELINE_VOLUME_SERIAL`]) read-only (`ro,noload`) at [`BASELINE_MOUNT`]. Each
    /// disk's page cache is dropped first (`BLKFLSBUF`): a clone inherits the cache of
    /// the placeholder disk its template probed. Mounting what is already mounted there
    /// is a no-op. Guest mode only. Answer: [`Response::Done`]. Since 1.10.
    ///
    /// An agent with [`CHANGE_WATCH_CAPABILITY`] starts tracking changes of `/workspace`
    /// when it mounts it (not when it was mounted already).
    MountWorkspace {
        /// The paths (relative to `/workspace`, normalised) that may differ from the
        /// baseline in the volume being mounted, as the host knows them: empty right
        /// after create and after a reset to the baseline; the set taken with
        /// [`Request::ChangeCandidates`] when the snapshot being reset onto was taken;
        /// `None` (unknown: the first diff walks both trees whole) otherwise. At most
        /// [`MAX_CHANGE_SET_PATHS`] paths and [`MAX_CHANGE_SET_BYTES`]. Since 1.11.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        known_changes: Option<Vec<String>>,
    },
    /// The paths of `/workspace` that may differ from the baseline now (tracked since the
    /// mount; taken by the host while `/workspace` is frozen for a snapshot, and given
    /// back as `known_changes` on a reset onto it). Answer: [`Response::ChangeCandidates`].
    /// Since 1.11, capability [`CHANGE_WATCH_CAPABILITY`].
    ChangeCandidates,
    /// Count `/workspace` as an archive of it would: entries below the root
    /// (directories, regular files, symlinks; special files do not count) and the bytes
    /// of its regular files. With `baseline` (the totals of the baseline mount, which
    /// the host computed when it made it) and a known change set, only the candidate
    /// paths are counted on both sides and their difference added to `baseline`, so the
    /// cost is that of what changed; otherwise (or with `full_walk`) `/workspace` is
    /// walked whole. Answer: [`Response::TreeTotals`]. Since 1.12, capability
    /// [`TREE_TOTALS_CAPABILITY`].
    TreeTotals {
        /// Totals of the baseline mount; `None`: walk `/workspace` whole.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        baseline: Option<TreeTotals>,
        /// Walk `/workspace` whole even when the change set is known (tests, benches).
        #[serde(default)]
        full_walk: bool,
    },
    /// Flush and freeze `/workspace` (`FIFREEZE`) so its disk can be copied consistently.
    /// The agent thaws it by itself after `thaw_after_ms` (at most [`MAX_FREEZE_MS`]) if no
    /// [`Request::ThawWorkspace`] came. Guest mode only. Answer: [`Response::Done`].
    /// Since 1.10.
    FreezeWorkspace {
        /// Deadline of the freeze, in milliseconds.
        thaw_after_ms: u64,
    },
    /// Thaw `/workspace` (`FITHAW`); thawing a file system that is not frozen is not an
    /// error. Guest mode only. Answer: [`Response::Done`]. Since 1.10.
    ThawWorkspace,
    /// Set the guest's wall clock (`CLOCK_REALTIME`) to the host's time. Sent right after a
    /// guest was cloned from a template, whose clock stopped when the template was saved.
    /// Guest mode only. Answer: [`Response::Done`]. Since 1.5.
    SetClock {
        /// Nanoseconds since the Unix epoch.
        unix_time_ns: u64,
    },
    /// Mix host entropy into the guest's RNG and reseed it at once (`RNDADDENTROPY`, then
    /// `RNDRESEEDCRNG`), so clones of one template do not share RNG state. Guest mode
    /// only. Answer: [`Response::Done`]. Since 1.5.
    AddEntropy {
        /// Random bytes from the host, base64 (at most [`MAX_ENTROPY_BYTES`]).
        data_b64: String,
    },
    /// Flush and power the guest off. The agent answers before powering off.
    Shutdown,
    /// Start an interactive shell on a new PTY, in its own session with the PTY as
    /// controlling terminal. Guest mode only. Answer: [`Response::Shell`]. Since 1.4.
    ShellOpen(ShellOpenRequest),
    /// Read a shell's output from a character cursor. Answer: [`Response::ShellOutput`].
    /// Since 1.4.
    ShellRead(ShellReadRequest),
    /// Type text into a shell (written to the PTY as is). Answer: [`Response::Shell`].
    /// Since 1.4.
    ShellWrite {
        /// Shell id.
        shell_id: String,
        /// Text to write (include the newline to press Enter).
        input: String,
    },
    /// Send a signal (`HUP`, `INT`, `TERM` or `KILL`) to the shell's foreground process
    /// group; `HUP`, `TERM` and `KILL` also reach the shell's own group. Answer:
    /// [`Response::Shell`]. Since 1.4.
    ShellSignal {
        /// Shell id.
        shell_id: String,
        /// Signal name.
        signal: String,
    },
    /// Change the terminal size (TIOCSWINSZ; the foreground job gets SIGWINCH).
    /// Answer: [`Response::Shell`]. Since 1.4.
    ShellResize {
        /// Shell id.
        shell_id: String,
        /// Columns (> 0).
        cols: u16,
        /// Rows (> 0).
        rows: u16,
    },
    /// End a shell (SIGHUP to its session, up to 5 s, then SIGKILL) and forget it.
    /// Answer: [`Response::Shell`] with its final state. Since 1.4.
    ShellClose {
        /// Shell id.
        shell_id: String,
    },
    /// Start a named service and wait until it is ready, exited or timed out (see
    /// [`ServiceStartRequest`]). A service of the same name may be replaced only when it
    /// is not running. Guest mode only. Answer: [`Response::Service`]. Since 1.3.
    ServiceStart(ServiceStartRequest),
    /// One service's record (refreshed). Answer: [`Response::Service`]. Since 1.3.
    ServiceStatus {
        /// Service name.
        name: String,
    },
    /// Every service's record, sorted by name. Answer: [`Response::Services`]. Since 1.3.
    ServiceList,
    /// A service's record and output. Answer: [`Response::ServiceLogs`]. Since 1.3.
    ServiceLogs {
        /// Service name.
        name: String,
        /// Last N lines of each stream; `None` for everything (up to the size cap).
        tail_lines: Option<u64>,
    },
    /// Stop a running service: SIGTERM to its process group, SIGKILL after 5 s. A
    /// service that is not running is returned unchanged. Answer: [`Response::Service`].
    /// Since 1.3.
    ServiceStop {
        /// Service name.
        name: String,
        /// When set, the service ends `failed` with this stop reason (e.g.
        /// `published_port_failed`) instead of `stopped`.
        #[serde(default)]
        fail_reason: Option<String>,
    },
    /// Stop every running service at once (before the guest is shut down). Answer:
    /// [`Response::Services`]. Since 1.3.
    ServiceStopAll,
}

/// What an archive of a tree would count ([`Request::TreeTotals`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TreeTotals {
    /// Entries below the root: directories, regular files and symlinks.
    pub entries: u64,
    /// Bytes of the regular files.
    pub file_bytes: u64,
}

/// Bounds of a [`Request::TreeDiffOpen`]; past any of them the agent answers
/// [`ErrorKind::TooLarge`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeDiffLimits {
    /// Most entries walked, both trees together.
    pub max_entries: u64,
    /// Most bytes of file text in the answer, all files together.
    pub max_text_bytes: u64,
    /// Most bytes of the whole answer (its JSON).
    pub max_answer_bytes: u64,
}

/// The spooled answer to [`Request::TreeDiffOpen`].
///
/// Two entries are unchanged without being read when their stat tuple (type, mode,
/// size, mtime and ctime to the nanosecond, inode number) is identical: in one file system lineage
/// (a block-level snapshot of the same ext4) any write changes ctime, which user space
/// cannot set. Every other pair is a candidate compared by content. Directories are
/// walked, never reported for themselves unless they exist on one side only; a
/// directory present on one side only has every entry below it listed too. Special
/// files (devices, FIFOs, sockets) count as absent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct TreeDiffAnswer {
    /// Entries walked in both trees.
    pub scanned: u64,
    /// Pairs whose stat tuples differed and were compared by content.
    pub candidates: u64,
    /// Paths that differ, in walk order.
    pub changes: Vec<TreeChange>,
    /// Only the tracked candidate paths were compared (not both trees whole). Since 1.11.
    #[serde(default)]
    pub tracked: bool,
    /// How many candidate paths a tracked diff started from. Since 1.11.
    #[serde(default)]
    pub tracked_paths: u64,
}

/// One path that differs between the trees of a [`Request::TreeDiffOpen`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeChange {
    /// Path relative to the roots, `/`-separated (names that are not UTF-8 lossily).
    pub path: String,
    /// The entry in the baseline, if any.
    pub old: Option<TreeSide>,
    /// The entry in the current tree, if any.
    pub new: Option<TreeSide>,
    /// Both sides are regular files whose bytes differ.
    #[serde(default)]
    pub content_changed: bool,
}

/// One side of a [`TreeChange`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeSide {
    /// Kind.
    pub artifact_type: ArtifactType,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Symlink target (symlinks only).
    #[serde(default)]
    pub link_target: Option<String>,
    /// The file's contents when it is text (valid UTF-8 without NUL bytes) and the host
    /// needs them for a patch: an added or deleted file, or both sides of a content
    /// change when both are text.
    #[serde(default)]
    pub text: Option<String>,
}

/// How to run a command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Shell command line, run by `/bin/sh -c` with the login environment (the one
    /// `sh -lc` would set up; agents before 0.1 ran `/bin/sh -lc`).
    pub command: String,
    /// Working directory.
    pub cwd: String,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Kill the whole process group after this many milliseconds.
    pub timeout_ms: u64,
    /// Keep at most this many bytes of each of stdout and stderr.
    pub max_output_bytes: u64,
}

/// How to answer a streamed exec read ([`Request::ExecStart`], [`Request::ExecRead`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecWait {
    /// Wait at most this long (capped at [`EXEC_MAX_WAIT_MS`]) for the command to end.
    pub wait_ms: u64,
    /// Answer as soon as any new output arrived, not only at the end or the wait.
    pub return_on_output: bool,
    /// Return at most this many new bytes of each stream.
    pub max_bytes: u64,
}

/// Start a command with output streamed ([`Request::ExecStart`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecStartRequest {
    /// Id chosen by the host (1-64 characters of `[A-Za-z0-9_-]`); must be new.
    pub exec_id: String,
    /// The command, as for [`Request::Exec`].
    pub exec: ExecRequest,
    /// How to answer.
    pub wait: ExecWait,
}

/// Read a started command's output ([`Request::ExecRead`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecReadRequest {
    /// Id given in [`ExecStartRequest::exec_id`].
    pub exec_id: String,
    /// Bytes of stdout the host already has.
    pub stdout_offset: u64,
    /// Bytes of stderr the host already has.
    pub stderr_offset: u64,
    /// How to answer.
    pub wait: ExecWait,
}

/// Answer to [`Request::ExecStart`] and [`Request::ExecRead`]: the output after the
/// asked offsets, and the exit once the command ended and no output is left to send.
/// The agent forgets the command after answering with its exit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecChunk {
    /// Offset of `stdout_b64` in the command's stdout (the asked one).
    pub stdout_offset: u64,
    /// New stdout bytes, base64.
    pub stdout_b64: String,
    /// Offset of `stderr_b64` in the command's stderr.
    pub stderr_offset: u64,
    /// New stderr bytes, base64.
    pub stderr_b64: String,
    /// Milliseconds since the command started.
    pub elapsed_ms: u64,
    /// Set once the command ended and this chunk holds the last of its output.
    pub exit: Option<ExecExit>,
}

/// How a streamed command ended (the fields of [`ExecOutput`] besides the output).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecExit {
    /// True when stdout or stderr was cut at `max_output_bytes`.
    pub truncated: bool,
    /// Exit code; 124 on timeout, 128+N when killed by signal N.
    pub exit_code: i32,
    /// Signal that ended the process, if any.
    pub signal: Option<i32>,
    /// True when the timeout fired and the process group was killed.
    pub timed_out: bool,
    /// True when [`Request::ExecKill`] killed it.
    pub killed: bool,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// Outcome of [`Request::Exec`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecOutput {
    /// Captured stdout (base64), at most `max_output_bytes`.
    pub stdout_b64: String,
    /// Captured stderr (base64), at most `max_output_bytes`.
    pub stderr_b64: String,
    /// True when stdout or stderr was cut at `max_output_bytes`.
    pub truncated: bool,
    /// Exit code; 124 on timeout, 128+N when killed by signal N.
    pub exit_code: i32,
    /// Signal that ended the process, if any.
    pub signal: Option<i32>,
    /// True when the timeout fired and the process group was killed.
    pub timed_out: bool,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
}

/// How to start an interactive shell ([`Request::ShellOpen`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShellOpenRequest {
    /// Id chosen by the host (12 lowercase hex characters); must be new.
    pub shell_id: String,
    /// Working directory: a directory under `/workspace`.
    pub cwd: String,
    /// Terminal columns (> 0).
    pub cols: u16,
    /// Terminal rows (> 0).
    pub rows: u16,
    /// Extra environment variables (on top of the agent's, `TERM`, `PS1`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Strings replaced by `[REDACTED]` in the output buffer (secret values).
    #[serde(default)]
    pub redact: Vec<String>,
}

/// How to read a shell's output ([`Request::ShellRead`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShellReadRequest {
    /// Shell id.
    pub shell_id: String,
    /// Character offset into the whole output since open (clamped to its length).
    pub cursor: u64,
    /// Return at most this many characters.
    pub max_chars: u64,
    /// When set, keep waiting for output until none arrived for this many
    /// milliseconds, `max_chars` were collected or the shell ended (the agent caps the
    /// whole wait at [`SHELL_MAX_WAIT_MS`]).
    #[serde(default)]
    pub wait_for_idle_ms: Option<u64>,
}

/// Longest a [`Request::ShellRead`] with `wait_for_idle_ms` waits in total.
pub const SHELL_MAX_WAIT_MS: u64 = 30_000;

/// State of a shell, in every shell answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShellStatus {
    /// Shell id.
    pub shell_id: String,
    /// Working directory it was opened in.
    pub cwd: String,
    /// Current terminal columns.
    pub cols: u16,
    /// Current terminal rows.
    pub rows: u16,
    /// True until the shell process has exited.
    pub running: bool,
    /// Exit code once it exited (128 + N when killed by signal N).
    pub exit_code: Option<i32>,
    /// Milliseconds since it exited (guest monotonic clock), once it exited.
    pub ended_ago_ms: Option<u64>,
}

/// Answer to [`Request::ShellRead`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShellOutput {
    /// The shell's state after the read.
    pub shell: ShellStatus,
    /// The cursor actually used (the request's, clamped to the buffer length).
    pub cursor: u64,
    /// Cursor after the returned output.
    pub next_cursor: u64,
    /// Output since `cursor`: UTF-8 (invalid bytes replaced), redacted.
    pub output: String,
    /// More output is buffered after `next_cursor`.
    pub truncated: bool,
}

/// Kind of a file system entry.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactType {
    /// Regular file.
    File,
    /// Directory.
    Directory,
    /// Symbolic link (never followed).
    Symlink,
}

/// One entry of [`Request::ListFiles`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Absolute guest path.
    pub path: String,
    /// Entry kind.
    pub artifact_type: ArtifactType,
    /// Size (0 for directories, lstat size for symlinks).
    pub size_bytes: u64,
    /// Symlink target, if a symlink.
    pub link_target: Option<String>,
}

/// Summary of an archive produced or consumed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ArchiveStats {
    /// Members in the archive (directories included).
    pub entry_count: u64,
    /// Sum of regular file sizes.
    pub bytes_written: u64,
    /// Symlink members (stored as links, never followed). Since protocol 1.5; older
    /// agents leave it out (0).
    #[serde(default)]
    pub symlink_count: u64,
}

/// Machine-readable error category.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Path does not exist.
    NotFound,
    /// Path leaves `/workspace` (`..`, absolute elsewhere, symlink out).
    PathEscape,
    /// Wrong entry type (e.g. reading a directory).
    WrongType,
    /// Payload over a limit.
    TooLarge,
    /// Malformed request or archive.
    Invalid,
    /// Operation unknown to this agent.
    Unsupported,
    /// Any other I/O failure.
    Io,
}

/// Outcomes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    /// Answer to [`Request::Hello`].
    Hello {
        /// Agent crate version.
        agent_version: String,
        /// Protocol version of the agent.
        protocol: (u16, u16),
        /// Feature names this agent supports (e.g. `exec`, `files`, `tar`).
        capabilities: Vec<String>,
        /// `uname -r` of the guest kernel.
        kernel_release: String,
    },
    /// Answer to [`Request::Exec`].
    Exec(ExecOutput),
    /// Answer to [`Request::ExecStart`] and [`Request::ExecRead`]. Since 1.9.
    ExecChunk(ExecChunk),
    /// Answer to [`Request::TreeTotals`]. Since 1.12.
    TreeTotals {
        /// The totals of `/workspace`.
        totals: TreeTotals,
        /// Only the candidate paths were counted (added to the given baseline).
        tracked: bool,
    },
    /// Answer to [`Request::ChangeCandidates`]. Since 1.11.
    ChangeCandidates {
        /// Relative, normalised paths that may differ from the baseline (a directory
        /// stands for everything below it); `None`: not known (tracking lost events, or
        /// the set is over [`MAX_CHANGE_SET_PATHS`] or [`MAX_CHANGE_SET_BYTES`]).
        paths: Option<Vec<String>>,
    },
    /// Answer to [`Request::ListFiles`].
    Files {
        /// Entries, sorted as documented on the request.
        entries: Vec<FileEntry>,
    },
    /// Answer to [`Request::ReadFile`].
    FileData {
        /// Full size of the file.
        size_bytes: u64,
        /// The first `max_bytes` bytes, base64.
        data_b64: String,
        /// True when the file is larger than what was returned.
        truncated: bool,
    },
    /// Answer to [`Request::WriteFile`].
    Written {
        /// Bytes written.
        bytes_written: u64,
    },
    /// Answer to [`Request::ExportTar`].
    Tar {
        /// Type of the exported path.
        artifact_type: ArtifactType,
        /// Archive stats.
        stats: ArchiveStats,
        /// Archive bytes, base64.
        data_b64: String,
    },
    /// Answer to [`Request::ImportTar`].
    Imported {
        /// Archive stats.
        stats: ArchiveStats,
    },
    /// Answer to [`Request::ExportOpen`] and [`Request::ImportOpen`]. Since 1.7.
    TransferOpened {
        /// Id naming the transfer in later requests.
        transfer_id: String,
        /// Archive length in bytes (the announced length for an import).
        size_bytes: u64,
        /// Type of the exported path (exports only).
        #[serde(default)]
        artifact_type: Option<ArtifactType>,
        /// Archive stats (exports only; zero for an import).
        #[serde(default)]
        stats: ArchiveStats,
    },
    /// Answer to [`Request::TransferRead`]. Since 1.7.
    Chunk {
        /// Offset of these bytes in the archive.
        offset: u64,
        /// The bytes, base64 (empty at the end of the archive).
        data_b64: String,
    },
    /// Success without data (delete, sync, shutdown).
    Done,
    /// Answer to [`Request::ShellOpen`], `ShellWrite`, `ShellSignal`, `ShellResize`
    /// and `ShellClose`. Since 1.4.
    Shell(ShellStatus),
    /// Answer to [`Request::ShellRead`]. Since 1.4.
    ShellOutput(ShellOutput),
    /// Answer to [`Request::ServiceStart`], `ServiceStatus` and `ServiceStop`. Since 1.3.
    Service {
        /// The service.
        service: ServiceRecord,
    },
    /// Answer to [`Request::ServiceList`] and `ServiceStopAll`. Since 1.3.
    Services {
        /// Services sorted by name.
        services: Vec<ServiceRecord>,
    },
    /// Answer to [`Request::ServiceLogs`]. Since 1.3.
    ServiceLogs(ServiceLogs),
    /// Failure.
    Error {
        /// Category.
        kind: ErrorKind,
        /// Human-readable message (no secrets).
        message: String,
    },
}

/// Serialise a frame as one line (with the trailing newline).
pub fn encode_line<T: Serialize>(frame: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = serde_json::to_vec(frame)?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_frame_round_trips_with_flattened_op() {
        let frame = RequestFrame {
            id: 7,
            request: Request::ReadFile { path: "/workspace/a".into(), max_bytes: 10 },
        };
        let line = encode_line(&frame).expect("encode");
        assert_eq!(line.last(), Some(&b'\n'));
        let text = std::str::from_utf8(&line).expect("utf8");
        assert!(text.contains("\"op\":\"read_file\""), "{text}");
        let back: RequestFrame = serde_json::from_slice(&line).expect("decode");
        assert_eq!(back.id, 7);
        assert!(matches!(back.request, Request::ReadFile { max_bytes: 10, .. }));
    }

    #[test]
    fn change_watch_fields_are_optional_both_ways() {
        // An older host's mount and tree diff requests still parse (unknown set, no forced
        // walk) ...
        let old: RequestFrame =
            serde_json::from_str(r#"{"id":1,"op":"mount_workspace"}"#).expect("parse");
        assert!(matches!(old.request, Request::MountWorkspace { known_changes: None }));
        let old: RequestFrame = serde_json::from_str(
            r#"{"id":2,"op":"tree_diff_open","root":"/workspace","baseline_root":"/b",
               "limits":{"max_entries":1,"max_text_bytes":1,"max_answer_bytes":1}}"#,
        )
        .expect("parse");
        assert!(matches!(old.request, Request::TreeDiffOpen { full_walk: false, .. }));
        // ... an unknown set is left out of the line, so an older agent sees what it knows
        let line = encode_line(&RequestFrame {
            id: 3,
            request: Request::MountWorkspace { known_changes: None },
        })
        .expect("encode");
        assert_eq!(
            std::str::from_utf8(&line).expect("utf8"),
            "{\"id\":3,\"op\":\"mount_workspace\"}\n"
        );
        // ... and an older agent's answer has no tracking fields.
        let answer: TreeDiffAnswer =
            serde_json::from_str(r#"{"scanned":2,"candidates":0,"changes":[]}"#).expect("parse");
        assert!(!answer.tracked && answer.tracked_paths == 0);
        let known = RequestFrame {
            id: 4,
            request: Request::MountWorkspace { known_changes: Some(vec!["a/b".into()]) },
        };
        let back: RequestFrame =
            serde_json::from_slice(&encode_line(&known).expect("encode")).expect("decode");
        assert!(
            matches!(back.request, Request::MountWorkspace { known_changes: Some(ref p) } if p == &["a/b"])
        );
    }

    #[test]
    fn unknown_fields_are_ignored_and_unknown_ops_fail_to_parse() {
        let ok: RequestFrame =
            serde_json::from_str(r#"{"id":1,"op":"sync","future_field":true}"#).expect("parse");
        assert!(matches!(ok.request, Request::Sync));
        let err = serde_json::from_str::<RequestFrame>(r#"{"id":1,"op":"teleport"}"#);
        assert!(err.is_err());
    }

    #[test]
    fn shell_frames_round_trip() {
        let frame = RequestFrame {
            id: 3,
            request: Request::ShellRead(ShellReadRequest {
                shell_id: "0123456789ab".into(),
                cursor: 5,
                max_chars: 10,
                wait_for_idle_ms: None,
            }),
        };
        let line = String::from_utf8(encode_line(&frame).expect("encode")).expect("utf8");
        assert!(line.contains("\"op\":\"shell_read\""), "{line}");
        // An older host leaves out the optional wait.
        let back: RequestFrame = serde_json::from_str(
            r#"{"id":3,"op":"shell_read","shell_id":"s","cursor":0,"max_chars":1}"#,
        )
        .expect("decode");
        assert!(matches!(
            back.request,
            Request::ShellRead(ShellReadRequest { wait_for_idle_ms: None, .. })
        ));
        let status = ShellStatus {
            shell_id: "s".into(),
            cwd: "/workspace".into(),
            cols: 80,
            rows: 24,
            running: true,
            exit_code: None,
            ended_ago_ms: None,
        };
        let out = ResponseFrame {
            id: 3,
            response: Response::ShellOutput(ShellOutput {
                shell: status,
                cursor: 0,
                next_cursor: 2,
                output: "hi".into(),
                truncated: false,
            }),
        };
        let line = encode_line(&out).expect("encode");
        let back: ResponseFrame = serde_json::from_slice(&line).expect("decode");
        match back.response {
            Response::ShellOutput(o) => assert_eq!((o.output.as_str(), o.shell.cols), ("hi", 80)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timestamps_survive_a_json_round_trip_exactly() {
        // Records written to disk and read back must compare equal (serde_json's
        // `float_roundtrip`); this value came back one ULP off without it.
        let t = 1_795_619_107.838_523_9_f64;
        let text = serde_json::to_string(&t).expect("encode");
        let back: f64 = serde_json::from_str(&text).expect("decode");
        assert_eq!(back.to_bits(), t.to_bits(), "{text}");
    }

    #[test]
    fn port_names_are_numbered() {
        assert_eq!(agent_port_name(0), "org.pyro.agent.0");
    }
}
