//! pyro-bench: latency of the main operations on real guests, with host_compat measured
//! in the same run as the baseline. Prints a table (p50/p95 over N runs) and, with
//! `--write PATH`, writes it with the machine facts as Markdown.
//!
//! Usage: pyro-bench [--runs N] [--environment ENV] [--write docs/benchmarks.md]

use anyhow::{bail, Context, Result};
use pyro::params::*;
use pyro::results::{ExecutionMode, Workspace};
use pyro::{Runtime, RuntimeConfig};
use std::fmt::Write as _;
use std::time::Instant;

struct Args {
    runs: usize,
    environment: String,
    write: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args { runs: 10, environment: "debian:12-base".into(), write: None };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => args.runs = it.next().context("--runs N")?.parse()?,
            "--environment" => args.environment = it.next().context("--environment ENV")?,
            "--write" => args.write = Some(it.next().context("--write PATH")?),
            "-h" | "--help" => {
                println!("usage: pyro-bench [--runs N] [--environment ENV] [--write PATH]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if args.runs < 2 {
        bail!("--runs must be at least 2");
    }
    Ok(args)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[derive(Default)]
struct Series {
    guest: Vec<f64>,
    host: Vec<f64>,
}

impl Series {
    fn slot(&mut self, host: bool) -> &mut Vec<f64> {
        if host {
            &mut self.host
        } else {
            &mut self.guest
        }
    }
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(f64, T)> {
    let t = Instant::now();
    let v = f()?;
    Ok((t.elapsed().as_secs_f64() * 1000.0, v))
}

fn create(rt: &Runtime, env: &str, host: bool) -> Result<Workspace> {
    let mut p = WorkspaceCreateParams::new(env);
    p.allow_host_compat = host;
    let ws = rt.workspace_create(p)?;
    let want = if host { ExecutionMode::HostCompat } else { ExecutionMode::Guest };
    if ws.execution_mode != want {
        bail!("expected {want:?}, got {:?}", ws.execution_mode);
    }
    Ok(ws)
}

/// Median of each `boot_*_ms` entry over the guests created, for the boot breakdown.
type BootSamples = Vec<std::collections::BTreeMap<String, String>>;

fn measure(
    rt: &Runtime,
    args: &Args,
    host: bool,
    out: &mut [Series; 4],
    boots: &mut BootSamples,
) -> Result<()> {
    let env = &args.environment;
    for _ in 0..args.runs {
        let mut p = VmRunParams::new(env.clone(), "true");
        p.allow_host_compat = host;
        let (ms, r) = timed(|| Ok(rt.vm_run(p)?))?;
        if r.exit_code != 0 {
            bail!("vm_run true exited {}", r.exit_code);
        }
        out[0].slot(host).push(ms);
    }
    let mut ids = Vec::new();
    for _ in 0..args.runs {
        let (ms, ws) = timed(|| create(rt, env, host))?;
        out[1].slot(host).push(ms);
        if !host {
            boots.push(ws.metadata.clone());
        }
        ids.push(ws.workspace_id);
    }
    let id = ids[0].clone();
    for _ in 0..args.runs {
        let (ms, r) = timed(|| Ok(rt.workspace_exec(WorkspaceExecParams::new(&id, "true"))?))?;
        if r.exit_code != 0 {
            bail!("exec true exited {}", r.exit_code);
        }
        out[2].slot(host).push(ms);
    }
    let text = "x".repeat(1024 * 1024);
    for i in 0..args.runs {
        let path = format!("bench/{i}.txt");
        let (ms, ()) = timed(|| {
            rt.workspace_file_write(WorkspaceFileWriteParams {
                workspace_id: id.clone(),
                path: path.clone(),
                text: text.clone(),
            })?;
            let back = rt.workspace_file_read(WorkspaceFileReadParams {
                workspace_id: id.clone(),
                path: path.clone(),
                max_bytes: 1024 * 1024,
            })?;
            if back.content.len() != text.len() {
                bail!("read back {} bytes", back.content.len());
            }
            Ok(())
        })?;
        out[3].slot(host).push(ms);
    }
    for id in ids {
        rt.workspace_delete(&id)?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let state = std::env::temp_dir().join(format!("pyro-bench-{}", std::process::id()));
    let config = RuntimeConfig { state_dir: state.clone(), ..RuntimeConfig::from_env() };
    let rt = Runtime::new(config);
    let doctor = rt.doctor();
    if !doctor.runtime_ok {
        bail!("guest backend not ready: {:?}; run scripts/setup", doctor.issues);
    }
    let mut series: [Series; 4] = Default::default();
    eprintln!("[bench] guest ({:?}), {} runs each", doctor.accel, args.runs);
    let mut boots = BootSamples::new();
    measure(&rt, &args, false, &mut series, &mut boots)?;
    std::env::set_var("PYRO_BACKEND", "host_compat");
    eprintln!("[bench] host_compat baseline");
    measure(&rt, &args, true, &mut series, &mut boots)?;
    std::env::remove_var("PYRO_BACKEND");
    let _ = std::fs::remove_dir_all(&state);

    let names = [
        "vm_run `true` end to end",
        "workspace create (boot + baseline)",
        "workspace exec `true` round trip",
        "1 MiB file write + read",
    ];
    let mut table = String::new();
    writeln!(
        table,
        "| operation | guest p50 ms | guest p95 ms | host_compat p50 ms | guest/host p50 |"
    )?;
    writeln!(table, "|---|---:|---:|---:|---:|")?;
    for (name, s) in names.iter().zip(series.iter_mut()) {
        s.guest.sort_by(f64::total_cmp);
        s.host.sort_by(f64::total_cmp);
        let (g50, g95, h50) =
            (percentile(&s.guest, 0.5), percentile(&s.guest, 0.95), percentile(&s.host, 0.5));
        writeln!(
            table,
            "| {name} | {g50:.1} | {g95:.1} | {h50:.1} | {:.1}x |",
            g50 / h50.max(0.001)
        )?;
    }
    let mut keys: Vec<&String> = boots
        .iter()
        .flat_map(|m| m.keys())
        .filter(|k| k.starts_with("boot_") && k.ends_with("_ms"))
        .collect();
    keys.sort();
    keys.dedup();
    writeln!(table, "\nWhere a workspace boot goes (median over {} guest boots; `guest_*` = guest uptime at that marker):\n", boots.len())?;
    writeln!(table, "| boot step | median ms | min | max |")?;
    writeln!(table, "|---|---:|---:|---:|")?;
    for key in keys {
        let mut v: Vec<u64> = boots.iter().filter_map(|m| m.get(key)?.parse().ok()).collect();
        v.sort_unstable();
        if let (Some(min), Some(max)) = (v.first(), v.last()) {
            writeln!(
                table,
                "| {} | {} | {min} | {max} |",
                key.trim_start_matches("boot_").trim_end_matches("_ms"),
                v[v.len() / 2]
            )?;
        }
    }
    println!("{table}");
    if let Some(path) = args.write {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
            })
            .unwrap_or_default();
        let mut doc = String::new();
        writeln!(
            doc,
            "Generated by `make bench` (`pyro-bench --runs {} --write {path}`).\n",
            args.runs
        )?;
        writeln!(
            doc,
            "- machine: {} cores, `{cpu}`, {}",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            doctor.platform
        )?;
        writeln!(doc, "- accel: {:?} ({})", doctor.accel, doctor.accel_reason)?;
        writeln!(doc, "- QEMU: {}", doctor.qemu_version.clone().unwrap_or_default())?;
        writeln!(doc, "- guest kernel: {}", doctor.kernel_release.clone().unwrap_or_default())?;
        writeln!(doc, "- environment: {}", args.environment)?;
        writeln!(doc, "- date: {}\n", chrono_like_now())?;
        doc.push_str(&table);
        // Only the generated block is replaced; notes written around it survive reruns.
        let (begin, end) = ("<!-- pyro-bench:begin -->", "<!-- pyro-bench:end -->");
        let block = format!("{begin}\n{doc}{end}\n");
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let new = match (old.find(begin), old.find(end)) {
            (Some(b), Some(e)) if b < e => {
                format!("{}{block}{}", &old[..b], old[e + end.len()..].trim_start_matches('\n'))
            }
            _ => format!("# Benchmarks\n\n{block}"),
        };
        std::fs::write(&path, new).with_context(|| format!("writing {path}"))?;
        eprintln!("[bench] wrote {path}");
    }
    Ok(())
}

fn chrono_like_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
