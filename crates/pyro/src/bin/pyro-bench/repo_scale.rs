//! The repo-scale table (issue 11): seeding, diff, export, snapshot, reset and sync push
//! of workspaces holding a real source tree (~4 MB and ~130 MB of crate sources copied
//! from the cargo registry on this machine), each operation a `pyro` CLI process run
//! under `/usr/bin/time` for its peak RSS. The seed target's floor is measured in the
//! same run: `tar` of the tree piped to `cat > /dev/null` (GNU tar skips reading files
//! when its archive is `/dev/null` itself) plus a create without a seed.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// One series: milliseconds and peak RSS (KiB) of each run.
struct Series {
    name: String,
    ms: Vec<f64>,
    peak_kib: Vec<u64>,
}

impl Series {
    fn new(name: &str) -> Self {
        Series { name: name.into(), ms: Vec::new(), peak_kib: Vec::new() }
    }
    fn p(&self, q: f64) -> f64 {
        let mut s = self.ms.clone();
        s.sort_by(f64::total_cmp);
        super::percentile(&s, q)
    }
    fn peak_mib(&self) -> f64 {
        self.peak_kib.iter().copied().max().unwrap_or(0) as f64 / 1024.0
    }
}

/// Copy crate directories from the cargo registry sources into `dest` until at least
/// `bytes` of regular files are there. Returns (files, bytes).
fn make_tree(dest: &Path, bytes: u64) -> Result<(u64, u64)> {
    let home = std::env::var_os("HOME").context("HOME")?;
    let registry = PathBuf::from(home).join(".cargo/registry/src");
    let mut crates: Vec<PathBuf> = std::fs::read_dir(&registry)
        .with_context(|| {
            format!("reading {} (the bench copies crate sources)", registry.display())
        })?
        .flatten()
        .flat_map(|index| std::fs::read_dir(index.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect();
    crates.sort();
    if crates.is_empty() {
        bail!("no crate sources in {}", registry.display());
    }
    let (mut files, mut total) = (0u64, 0u64);
    // A registry smaller than `bytes` is copied again under `again-<n>/`.
    for round in 0.. {
        let into =
            if round == 0 { dest.to_path_buf() } else { dest.join(format!("again-{round}")) };
        std::fs::create_dir_all(&into)?;
        for krate in &crates {
            if total >= bytes {
                return Ok((files, total));
            }
            let status = Command::new("cp").arg("-r").arg(krate).arg(&into).status()?;
            if !status.success() {
                bail!("cp -r {} failed", krate.display());
            }
            let (f, b) = count(&into.join(krate.file_name().context("name")?))?;
            files += f;
            total += b;
        }
    }
    Ok((files, total))
}

fn count(root: &Path) -> Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let meta = entry.path().symlink_metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    Ok((files, bytes))
}

/// Run `pyro args` under `/usr/bin/time`; returns (ms, peak KiB, stdout).
fn pyro(state: &Path, args: &[&str]) -> Result<(f64, u64, String)> {
    let peak_file = state.join("peak-rss");
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&peak_file)
        .arg(super::pyro_binary()?)
        .args(args)
        .env("PYRO_STATE_DIR", state)
        // The ~130 MB tree is larger than the default 128 MiB transfer cap as a tar.
        .env("PYRO_MAX_TRANSFER_MIB", "1024")
        .stdin(Stdio::null())
        .output()
        .context("running pyro under /usr/bin/time (apt-get install time)")?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !output.status.success() {
        bail!("pyro {args:?} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let peak = std::fs::read_to_string(&peak_file)?
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("peak RSS")?;
    Ok((ms, peak, String::from_utf8_lossy(&output.stdout).into_owned()))
}

fn workspace_id(json: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    Ok(v["workspace_id"].as_str().context("workspace_id")?.to_owned())
}

/// `tar` of `tree` through a pipe, in ms.
fn host_tar(tree: &Path) -> Result<f64> {
    let started = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg("tar -cf - -C \"$1\" . | cat > /dev/null")
        .arg("sh")
        .arg(tree)
        .status()?;
    if !status.success() {
        bail!("host tar failed");
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// The table for seeds of `sizes` (bytes), `runs` runs each.
pub fn table(work: &Path, env: &str, runs: usize, sizes: &[u64]) -> Result<String> {
    let state = work.join("repo-state");
    std::fs::create_dir_all(&state)?;
    let mut out = String::new();
    writeln!(out, "Repo-scale workspaces (each operation one `pyro` CLI process; peak RSS of that process):\n")?;
    writeln!(out, "| seed | operation | p50 ms | p95 ms | peak RSS MiB |")?;
    writeln!(out, "|---|---|---:|---:|---:|")?;
    let mut ratios = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let tree = work.join(format!("seed-{i}"));
        let (files, bytes) = make_tree(&tree, *size)?;
        let label = format!("{:.1} MB / {files} files", bytes as f64 / 1e6);
        eprintln!("[bench] repo-scale seed {label}");
        let tree_s = tree.display().to_string();
        let mut floor = Series::new("floor: host tar + create without seed");
        let mut create = Series::new("create with the seed");
        let mut ids = Vec::new();
        for _ in 0..runs {
            let tar_ms = host_tar(&tree)?;
            let (ms, _, json) = pyro(&state, &["workspace", "create", env, "--json"])?;
            pyro(&state, &["workspace", "delete", &workspace_id(&json)?])?;
            floor.ms.push(tar_ms + ms);
            let (ms, peak, json) =
                pyro(&state, &["workspace", "create", env, "--seed-path", &tree_s, "--json"])?;
            create.ms.push(ms);
            create.peak_kib.push(peak);
            ids.push(workspace_id(&json)?);
        }
        let id = ids[0].clone();
        for other in &ids[1..] {
            pyro(&state, &["workspace", "delete", other])?;
        }
        let mut diff = Series::new("diff with one file changed");
        let mut export = Series::new("export /workspace");
        let mut snapshot = Series::new("snapshot create");
        let mut reset = Series::new("reset to the baseline");
        let mut push = Series::new("sync push of the seed tree");
        for r in 0..runs {
            let change = format!(
                "echo change-{r} >> \"$(find /workspace -type f -name '*.rs' | head -n 1)\""
            );
            pyro(&state, &["workspace", "exec", &id, "--", "sh", "-c", &change])?;
            let (ms, peak, _) = pyro(&state, &["workspace", "diff", &id, "--json"])?;
            diff.ms.push(ms);
            diff.peak_kib.push(peak);
            let target = work.join(format!("export-{i}-{r}"));
            let target_s = target.display().to_string();
            let (ms, peak, _) =
                pyro(&state, &["workspace", "export", &id, "/workspace", "--output", &target_s])?;
            export.ms.push(ms);
            export.peak_kib.push(peak);
            let _ = std::fs::remove_dir_all(&target);
            let name = format!("s{r}");
            let (ms, peak, _) = pyro(&state, &["workspace", "snapshot", "create", &id, &name])?;
            snapshot.ms.push(ms);
            snapshot.peak_kib.push(peak);
            let (ms, peak, _) = pyro(&state, &["workspace", "reset", &id])?;
            reset.ms.push(ms);
            reset.peak_kib.push(peak);
        }
        for r in 0..runs {
            let dest = format!("/workspace/pushed-{r}");
            let (ms, peak, _) =
                pyro(&state, &["workspace", "sync", "push", &id, &tree_s, "--dest", &dest])?;
            push.ms.push(ms);
            push.peak_kib.push(peak);
        }
        pyro(&state, &["workspace", "delete", &id])?;
        let _ = std::fs::remove_dir_all(&tree);
        for s in [&floor, &create, &diff, &export, &snapshot, &reset, &push] {
            let rss =
                if s.peak_kib.is_empty() { "-".into() } else { format!("{:.0}", s.peak_mib()) };
            writeln!(out, "| {label} | {} | {:.0} | {:.0} | {rss} |", s.name, s.p(0.5), s.p(0.95))?;
        }
        ratios.push(format!(
            "{label}: create with the seed {:.2}x its floor (target <= 2x)",
            create.p(0.5) / floor.p(0.5)
        ));
    }
    writeln!(out, "\n{}", ratios.join("; "))?;
    Ok(out)
}
