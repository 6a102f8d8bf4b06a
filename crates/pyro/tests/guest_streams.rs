//! Streamed transfers with a real guest (QEMU; TCG here): seeding and exporting an
//! archive 160 times the configured chunk keeps the host's peak RSS within a fixed
//! bound above an unseeded create (well below the archive's size, which the one-frame
//! transfers held two to three times over), the data arrives intact, and an archive
//! over the transfer cap is a clear error. Like every guest test this never skips:
//! without the guest assets it fails and says to run scripts/setup.

mod common;
#[path = "common/peak_rss.rs"]
mod peak_rss;

use std::path::Path;

/// Archive size: 10 files of 4 MiB.
const FILES: usize = 10;
const FILE_BYTES: usize = 4 << 20;
/// Chunk for the test: 256 KiB, so the archive is 160 chunks.
const CHUNK_KIB: &str = "256";
/// Most the peak RSS of a seeded create or an export may exceed an unseeded create's:
/// under half the 40 MiB archive.
const GROWTH_BOUND_KIB: u64 = 16 * 1024;

/// Pseudo-random (incompressible) content, different per file.
fn content(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(FILE_BYTES);
    while out.len() < FILE_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Run the CLI under `/usr/bin/time`: (exit ok, stdout, stderr, peak RSS in KiB).
fn cli(state: &Path, cap_mib: &str, args: &[&str]) -> (bool, String, String, u64) {
    let envs = [("PYRO_MAX_TRANSFER_MIB", cap_mib), ("PYRO_TRANSFER_CHUNK_KIB", CHUNK_KIB)];
    let run = peak_rss::run(state, &envs, args);
    (run.ok, run.stdout, run.stderr, run.peak_kib)
}

fn workspace_id(json: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(json).expect(json);
    value["workspace_id"].as_str().expect("workspace_id").to_owned()
}

#[test]
fn seeding_and_exporting_a_large_tree_keeps_host_memory_bounded() {
    let tmp = common::guest_tempdir();
    let state = tmp.path().join("state");
    let seed = tmp.path().join("seed");
    std::fs::create_dir_all(seed.join("data")).expect("mkdir");
    std::fs::create_dir_all(&state).expect("mkdir state");
    for i in 0..FILES {
        std::fs::write(seed.join(format!("data/blob-{i}.bin")), content(i as u64 + 1))
            .expect("write");
    }
    let seed_arg = seed.display().to_string();

    let (ok, plain, err, floor) =
        cli(&state, "64", &["workspace", "create", "debian:12-base", "--json"]);
    assert!(ok, "unseeded create failed (run scripts/setup?): {err}");
    let plain = workspace_id(&plain);
    let (ok, _, err, _) = cli(&state, "64", &["workspace", "delete", &plain]);
    assert!(ok, "{err}");

    let create = ["workspace", "create", "debian:12-base", "--seed-path", &seed_arg, "--json"];
    let (ok, out, err, seeded_peak) = cli(&state, "64", &create);
    assert!(ok, "seeded create failed: {err}");
    let id = workspace_id(&out);

    let output = tmp.path().join("out");
    let output_arg = output.display().to_string();
    let export = ["workspace", "export", &id, "/workspace/data", "--output", &output_arg, "--json"];
    let (ok, _, err, export_peak) = cli(&state, "64", &export);
    assert!(ok, "export failed: {err}");
    eprintln!(
        "streams: archive {} MiB in {CHUNK_KIB} KiB chunks; peak RSS unseeded create {floor} KiB, \
         seeded create {seeded_peak} KiB, export {export_peak} KiB (bound floor + {GROWTH_BOUND_KIB} KiB)",
        (FILES * FILE_BYTES) >> 20
    );
    for i in 0..FILES {
        let got = std::fs::read(output.join(format!("blob-{i}.bin"))).expect("exported file");
        assert!(got == content(i as u64 + 1), "blob-{i} differs after seed and export");
    }
    assert!(
        seeded_peak <= floor + GROWTH_BOUND_KIB,
        "seeded create peaked at {seeded_peak} KiB, over {floor} + {GROWTH_BOUND_KIB} KiB (a guest agent older than protocol 1.7 moves whole archives: rebuild the boot assets with scripts/setup)"
    );
    assert!(
        export_peak <= floor + GROWTH_BOUND_KIB,
        "export peaked at {export_peak} KiB, over {floor} + {GROWTH_BOUND_KIB} KiB (a guest agent older than protocol 1.7 moves whole archives: rebuild the boot assets with scripts/setup)"
    );

    // Over the transfer cap: a clear error, nothing written.
    let small = tmp.path().join("small");
    let small_arg = small.display().to_string();
    let export = ["workspace", "export", &id, "/workspace", "--output", &small_arg];
    let (ok, _, err, _) = cli(&state, "16", &export);
    assert!(!ok, "an export over the cap must fail");
    assert!(err.contains("over the transfer cap of 16 MiB"), "{err}");
    assert!(err.contains("PYRO_MAX_TRANSFER_MIB"), "{err}");
    assert!(!small.exists());
    let (ok, _, err, _) = cli(&state, "64", &["workspace", "delete", &id]);
    assert!(ok, "{err}");
}
