//! Fuzzing on stable Rust with proptest: everything that parses input a guest or a caller
//! controls is fed random bytes and mutations of the seed corpus in `tests/fuzz-corpus/`
//! (frames, patches, paths, archives, MCP arguments). None may panic, each keeps the
//! property it promises (paths stay inside `/workspace`, archives unpack only inside
//! their destination), and the process's peak RSS stays under a fixed bound.
//!
//! Failing cases are saved by proptest under `tests/fuzz.proptest-regressions` and
//! replayed first on the next run; check them in with the fix.

use proptest::prelude::*;
use pyro::backend::qemu::channel::Session;
use pyro::runtime::{patch, validate};
use pyro_agent::archive::{self, LinkTargets};
use serde_json::{Map, Value};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Cases per property (cheap parsers get more).
const CASES: u32 = 512;
/// Most the process's peak RSS may reach while fuzzing (all properties together).
const PEAK_RSS_BOUND_KIB: u64 = 512 * 1024;

fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus").join(kind);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("corpus dir").flatten().map(|e| e.path()).collect();
    files.sort();
    let seeds: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).expect("seed")).collect();
    assert!(!seeds.is_empty(), "empty corpus {}", dir.display());
    seeds
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Repeat(usize, usize, u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..32, 1u16..200).prop_map(|(i, n, k)| Mutation::Repeat(i, n, k)),
    ]
}

fn mutate(seed: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for edit in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match edit {
            Mutation::Flip(i, b) if !out.is_empty() => {
                let i = i % out.len();
                out[i] ^= b | 1;
            }
            Mutation::Flip(..) => {}
            Mutation::Insert(i, bytes) => {
                let i = at(*i, out.len());
                out.splice(i..i, bytes.iter().copied());
            }
            Mutation::Delete(i, n) => {
                let i = at(*i, out.len());
                let end = (i + n).min(out.len());
                out.drain(i..end);
            }
            Mutation::Truncate(i) => {
                let i = at(*i, out.len());
                out.truncate(i);
            }
            Mutation::Repeat(i, n, k) => {
                let i = at(*i, out.len());
                let end = (i + n).min(out.len());
                let chunk = out[i..end].to_vec();
                for _ in 0..*k {
                    out.splice(end..end, chunk.iter().copied());
                }
            }
        }
    }
    out
}

/// A seed from `kind`, mutated, or plain random bytes.
fn input(kind: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(kind);
    let n = seeds.len();
    prop_oneof![
        4 => (0..n, prop::collection::vec(mutation(), 0..8))
            .prop_map(move |(i, edits)| mutate(&seeds[i], &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..2048),
    ]
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn check_rss() {
    let peak = peak_rss_kib();
    assert!(peak < PEAK_RSS_BOUND_KIB, "peak RSS {peak} KiB while fuzzing");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES / 2, ..ProptestConfig::default() })]

    /// The host's frame reader: any byte stream from the guest ends in an answer, an
    /// error or a timeout, never a panic, and never holds more than its cap.
    #[test]
    fn frame_reader_takes_any_byte_stream(bytes in input("frames"), cap in 16usize..8192) {
        let (host, mut agent) = UnixStream::pair().expect("pair");
        agent.write_all(&bytes).expect("write");
        drop(agent);
        let mut session = Session::new(host, None, None);
        let until = Instant::now() + Duration::from_millis(200);
        let _ = session.receive_until(&[1, 3, 4, 5, 7, 9, 12], until, cap);
        for line in bytes.split(|b| *b == b'\n') {
            let _ = serde_json::from_slice::<pyro_protocol::ResponseFrame>(line);
        }
        check_rss();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, ..ProptestConfig::default() })]

    /// The patch parser accepts only paths inside /workspace, and applying never panics.
    #[test]
    fn patches_parse_safely(bytes in input("patches"), old in ".{0,200}") {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(files) = patch::parse_patch(&text) {
            for file in &files {
                let normalised = validate::workspace_path(&file.path, false);
                prop_assert!(normalised.is_ok(), "patch path {:?} escapes", file.path);
                let _ = patch::apply(file, Some(&old));
                let _ = patch::apply(file, None);
            }
        }
        check_rss();
    }

    /// Path normalisation: anything accepted is /workspace or below it, plainly written.
    #[test]
    fn workspace_paths_stay_inside(bytes in input("paths"), allow_root in any::<bool>()) {
        for line in String::from_utf8_lossy(&bytes).lines().chain([String::from_utf8_lossy(&bytes).as_ref()]) {
            if let Ok(path) = validate::workspace_path(line, allow_root) {
                prop_assert!(path == "/workspace" || path.starts_with("/workspace/"), "{path}");
                prop_assert!(allow_root || path != "/workspace");
                prop_assert!(!path.contains('\0'));
                for part in path.split('/').skip(1) {
                    prop_assert!(!part.is_empty() && part != "." && part != "..", "{path}");
                }
            }
        }
    }

    /// Archive validation never panics, and what it accepts unpacks only inside its
    /// destination (both link policies).
    #[test]
    fn archives_unpack_only_inside(bytes in input("archives"), keep_links in any::<bool>()) {
        let links = if keep_links { LinkTargets::Kept } else { LinkTargets::Contained };
        if archive::validate_archive_with(&bytes, links).is_ok() {
            let tmp = tempfile::tempdir().expect("tempdir");
            let dest = tmp.path().join("dest");
            let _ = archive::unpack_into_with(&bytes, &dest, false, links);
            let top: Vec<_> = std::fs::read_dir(tmp.path()).expect("ls").flatten()
                .map(|e| e.file_name()).collect();
            prop_assert!(top.iter().all(|n| n == "dest"), "written outside: {top:?}");
        }
        check_rss();
    }

    /// MCP arguments: any JSON object parses into every parameter type or fails cleanly.
    #[test]
    fn mcp_arguments_parse_or_fail_cleanly(args in json_object(), name in "[a-z_]{0,24}") {
        parse_all(&args);
        let _ = pyro::mcp::check_profile(&name, pyro::Profile::WorkspaceFull);
        check_rss();
    }

    /// Seeded MCP arguments, mutated as text.
    #[test]
    fn mutated_mcp_arguments_parse_or_fail_cleanly(bytes in input("mcp")) {
        for line in bytes.split(|b| *b == b'\n') {
            if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(line) {
                parse_all(&map);
            }
        }
    }
}

/// Parse `args` as every parameter type of the contract (what the MCP dispatcher does).
fn parse_all(args: &Map<String, Value>) {
    use pyro::params::*;
    let value = Value::Object(args.clone());
    macro_rules! each {
        ($($t:ty),* $(,)?) => { $( let _ = serde_json::from_value::<$t>(value.clone()); )* };
    }
    each!(
        VmRunParams,
        VmCreateParams,
        VmIdParams,
        VmExecParams,
        NoParams,
        WorkspaceCreateParams,
        WorkspaceCreateCoreParams,
        WorkspaceIdParams,
        WorkspaceUpdateParams,
        WorkspaceExecParams,
        WorkspaceExecCoreParams,
        WorkspaceSyncPushParams,
        WorkspaceExportParams,
        WorkspaceFileListParams,
        WorkspaceFileReadParams,
        WorkspaceFileWriteParams,
        WorkspacePatchApplyParams,
        WorkspaceResetParams,
        WorkspaceDiskExportParams,
        SnapshotParams,
        ShellOpenParams,
        ShellIdParams,
        ShellReadParams,
        ShellWriteParams,
        ShellSignalParams,
        ShellResizeParams,
        ServiceStartParams,
        ServiceIdParams,
        ServiceLogsParams,
    );
}

/// Random JSON objects whose keys are mostly real parameter names.
fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        3 => prop::sample::select(vec![
            "workspace_id", "command", "timeout_seconds", "environment", "vcpu_count", "mem_mib",
            "ttl_seconds", "network_policy", "secrets", "path", "text", "max_bytes", "patch",
            "snapshot", "shell_id", "cursor", "max_chars", "plain", "service_name", "readiness",
            "secret_env", "labels", "name", "recursive", "output_path", "source_path", "dest",
            "published_ports", "signal", "cols", "rows", "input", "tail_lines", "all",
        ]).prop_map(str::to_owned),
        1 => "[a-z_]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String("abcdef123456".into())),
        Just(Value::String("debian:12".into())),
    ];
    let value = leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(key, value, 0..10).prop_map(|m| m.into_iter().collect())
}
