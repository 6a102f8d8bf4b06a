//! Run the `pyro` CLI under `/usr/bin/time` to learn its peak RSS, for tests that hold
//! pyro's host memory to a bound.

use std::path::Path;
use std::process::Command;

/// What one CLI call did.
pub struct PeakRun {
    /// Whether it exited 0.
    pub ok: bool,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// Its peak RSS in KiB.
    pub peak_kib: u64,
}

/// Run `pyro args...` on `state` with `envs` set, under `/usr/bin/time`.
pub fn run(state: &Path, envs: &[(&str, &str)], args: &[&str]) -> PeakRun {
    let peak_file = state.join("peak-rss");
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&peak_file)
        .arg(env!("CARGO_BIN_EXE_pyro"))
        .args(args)
        .env("PYRO_STATE_DIR", state)
        .envs(envs.iter().copied())
        .output()
        .expect("run pyro under /usr/bin/time (apt-get install time)");
    let peak_kib = std::fs::read_to_string(&peak_file)
        .ok()
        .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()))
        .expect("peak rss");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    PeakRun {
        ok: output.status.success(),
        stdout: text(&output.stdout),
        stderr: text(&output.stderr),
        peak_kib,
    }
}
