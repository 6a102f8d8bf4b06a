//! pyro-bench: latency and cost of the main operations on real guests, against a
//! bare-boot floor measured in the same run (the same kernel and QEMU line with an
//! initramfs whose init only reboots). Prints p50/p95 over N runs and the ratio of each
//! p50 to the floor's; with `--write PATH` writes the tables with the machine facts as
//! Markdown (between the `pyro-bench` markers, so notes around them survive).
//!
//! Measured: the floor; `vm_run true`, workspace create and reset, cold (templates off)
//! and as template clones; exec of `true` in-process (one runtime), over the CLI (one
//! process per exec) and over one `pyro mcp serve` session; one guest process spawn;
//! idle CPU and QEMU RSS per workspace (fresh, and after 60 execs); density (N idle
//! clones that all answer an exec).
//!
//! Then the repo-scale table ([`repo_scale`]): create with a ~4 MB and a ~130 MB seed
//! against its floor, diff with one change, export, snapshot create, reset and sync push,
//! each with the peak RSS of the pyro process. `--repo-only` measures only that table.
//!
//! Usage: pyro-bench [--runs N] [--density N] [--environment ENV] [--repo-only]
//!        [--write PATH]

#[path = "pyro-bench/repo_scale.rs"]
mod repo_scale;

use anyhow::{bail, Context, Result};
use pyro::backend::qemu::{accel, launch};
use pyro::params::*;
use pyro::results::{ExecutionMode, Workspace};
use pyro::{Runtime, RuntimeConfig};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    runs: usize,
    density: usize,
    environment: String,
    write: Option<String>,
    repo_only: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        runs: 5,
        density: 40,
        environment: "debian:12-base".into(),
        write: None,
        repo_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => args.runs = it.next().context("--runs N")?.parse()?,
            "--density" => args.density = it.next().context("--density N")?.parse()?,
            "--environment" => args.environment = it.next().context("--environment ENV")?,
            "--write" => args.write = Some(it.next().context("--write PATH")?),
            "--repo-only" => args.repo_only = true,
            "-h" | "--help" => {
                println!(
                    "usage: pyro-bench [--runs N] [--density N] [--environment ENV] [--repo-only] [--write PATH]"
                );
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

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(f64, T)> {
    let t = Instant::now();
    let v = f()?;
    Ok((t.elapsed().as_secs_f64() * 1000.0, v))
}

/// One measured series.
struct Row {
    name: String,
    samples: Vec<f64>,
}

impl Row {
    fn p(&self, q: f64) -> f64 {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        percentile(&s, q)
    }
}

fn with_templates<T>(on: bool, f: impl FnOnce() -> Result<T>) -> Result<T> {
    // Single-threaded here: no other thread reads the environment meanwhile.
    std::env::set_var("PYRO_TEMPLATES", if on { "on" } else { "off" });
    let out = f();
    std::env::remove_var("PYRO_TEMPLATES");
    out
}

fn create(rt: &Runtime, env: &str) -> Result<Workspace> {
    let ws = rt.workspace_create(WorkspaceCreateParams::new(env))?;
    if ws.execution_mode != ExecutionMode::Guest {
        bail!("expected a guest, got {:?}", ws.execution_mode);
    }
    Ok(ws)
}

fn boot_kind(metadata: &std::collections::BTreeMap<String, String>) -> String {
    metadata.get("boot").cloned().unwrap_or_else(|| "?".into())
}

/// The floor: this QEMU line and kernel with an init that only reboots.
fn floor(runs: usize, cache: &Path, work: &Path) -> Result<Row> {
    let tree = work.join("floor-initrd");
    std::fs::create_dir_all(tree.join("bin"))?;
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .context("busybox-static is needed for the floor initramfs (scripts/setup installs it)")?;
    std::fs::copy(busybox, tree.join("bin/busybox"))?;
    std::fs::write(tree.join("init"), "#!/bin/busybox sh\n/bin/busybox reboot -f\n")?;
    let status = Command::new("chmod").arg("0755").arg(tree.join("init")).status()?;
    if !status.success() {
        bail!("chmod failed");
    }
    let initrd = work.join("floor.img");
    let status = Command::new("sh")
        .arg("-c")
        .arg("find . | cpio -o -H newc --quiet > \"$0\"")
        .arg(&initrd)
        .current_dir(&tree)
        .status()?;
    if !status.success() {
        bail!("cpio failed building the floor initramfs");
    }
    let (accel, _) = pyro::backend::qemu::detect_accel();
    let mut samples = Vec::new();
    for _ in 0..runs {
        let (ms, status) = timed(|| {
            Ok(Command::new(launch::qemu_binary())
                .args(["-M", "q35"])
                .args(accel::accel_args(accel))
                .args(["-m", "1024", "-smp", "1", "-nodefaults", "-no-user-config"])
                .args(["-display", "none", "-no-reboot", "-serial", "null"])
                .arg("-kernel")
                .arg(cache.join("boot/vmlinux"))
                .arg("-initrd")
                .arg(&initrd)
                .arg("-append")
                .arg(launch::kernel_cmdline(false, accel))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()?)
        })?;
        if !status.success() {
            bail!("the floor guest did not exit cleanly: {status}");
        }
        samples.push(ms);
    }
    Ok(Row { name: "floor: bare boot (init only reboots)".into(), samples })
}

/// A `pyro mcp serve` child speaking JSON-RPC lines on stdio.
struct Mcp {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
    next: u64,
}

impl Mcp {
    fn start(state: &Path) -> Result<Mcp> {
        let mut child = Command::new(pyro_binary()?)
            .args(["mcp", "serve", "--no-project-source"])
            .env("PYRO_STATE_DIR", state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = BufReader::new(child.stdout.take().context("mcp stdout")?);
        let mut mcp = Mcp { child, out, next: 1 };
        mcp.request(
            "initialize",
            serde_json::json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "pyro-bench", "version": "1" }
            }),
        )?;
        mcp.send(&serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))?;
        Ok(mcp)
    }

    fn send(&mut self, message: &serde_json::Value) -> Result<()> {
        let stdin = self.child.stdin.as_mut().context("mcp stdin")?;
        writeln!(stdin, "{message}")?;
        stdin.flush()?;
        Ok(())
    }

    fn request(&mut self, method: &str, params: serde_json::Value) -> Result<serde_json::Value> {
        let id = self.next;
        self.next += 1;
        self.send(
            &serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }),
        )?;
        loop {
            let mut line = String::new();
            if self.out.read_line(&mut line)? == 0 {
                bail!("pyro mcp serve exited");
            }
            let value: serde_json::Value = serde_json::from_str(&line)?;
            if value.get("id") == Some(&serde_json::json!(id)) {
                if let Some(error) = value.get("error") {
                    bail!("MCP error: {error}");
                }
                return Ok(value["result"].clone());
            }
        }
    }

    fn exec(&mut self, workspace_id: &str, command: &str) -> Result<()> {
        let result = self.request(
            "tools/call",
            serde_json::json!({
                "name": "workspace_exec",
                "arguments": { "workspace_id": workspace_id, "command": command }
            }),
        )?;
        if result.get("isError") == Some(&serde_json::json!(true)) {
            bail!("workspace_exec failed: {result}");
        }
        Ok(())
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pyro_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let pyro = me.with_file_name("pyro");
    if !pyro.is_file() {
        bail!("the pyro binary is not next to pyro-bench ({})", pyro.display());
    }
    Ok(pyro)
}

fn qemu_pid(state: &Path, id: &str) -> Result<i32> {
    let pidfile = state.join("workspaces").join(id).join("sandbox/qemu.pid");
    Ok(std::fs::read_to_string(&pidfile)?.trim().parse()?)
}

/// utime + stime of `pid` in clock ticks.
fn cpu_ticks(pid: i32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').context("stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// QEMU memory of one process in MiB, from `/proc/<pid>/smaps_rollup`.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    /// Resident pages, shared ones counted in full.
    rss: f64,
    /// Proportional set size: each shared page divided among the processes mapping it
    /// (the QEMU binary, libraries and the template's RAM file are shared by all clones).
    pss: f64,
    /// Pages only this process maps (what deleting the workspace gives back).
    private: f64,
}

fn memory_mib(pid: i32) -> Result<Memory> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let field = |name: &str| -> Result<f64> {
        let kib: f64 = rollup
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(':'))
            .and_then(|l| l.split_whitespace().nth(1))
            .with_context(|| format!("{name} in smaps_rollup"))?
            .parse()?;
        Ok(kib / 1024.0)
    };
    Ok(Memory {
        rss: field("Rss")?,
        pss: field("Pss")?,
        private: field("Private_Clean")? + field("Private_Dirty")?,
    })
}

/// Percent of one core each pid used over `window`.
fn idle_cpu(pids: &[i32], window: Duration) -> Result<Vec<f64>> {
    // USER_HZ, which /proc/<pid>/stat counts in, is 100 on Linux x86_64.
    let hz = 100.0;
    let before: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect::<Result<_>>()?;
    std::thread::sleep(window);
    let after: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect::<Result<_>>()?;
    Ok(before
        .iter()
        .zip(after)
        .map(|(b, a)| (a - b) as f64 / hz / window.as_secs_f64() * 100.0)
        .collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    percentile(&v, 0.5)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let work = std::env::temp_dir().join(format!("pyro-bench-{}", std::process::id()));
    let state = work.join("state");
    std::fs::create_dir_all(&state)?;
    let config = RuntimeConfig { state_dir: state.clone(), ..RuntimeConfig::from_env() };
    let cache = config.cache_dir.clone();
    let rt = Runtime::new(config);
    let doctor = rt.doctor();
    if !doctor.runtime_ok {
        bail!("guest backend not ready: {:?}; run scripts/setup", doctor.issues);
    }
    let env = args.environment.clone();
    let n = args.runs;
    let mut rows: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    /// The repo-scale seeds: ~4 MB and ~130 MB of sources.
    const REPO_SEEDS: [u64; 2] = [4_000_000, 130_000_000];
    if args.repo_only {
        let text = repo_scale::table(&work, &env, n, &REPO_SEEDS)?;
        let _ = std::fs::remove_dir_all(&work);
        println!("{text}");
        if let Some(path) = &args.write {
            write_doc(path, &args, &doctor, n, &text)?;
        }
        return Ok(());
    }

    eprintln!("[bench] floor");
    rows.push(floor(n, &cache, &work)?);

    // Make sure the template exists before the clone series (its build is not a sample).
    with_templates(true, || {
        let ws = create(&rt, &env)?;
        rt.workspace_delete(&ws.workspace_id)?;
        Ok(())
    })?;

    for clone in [false, true] {
        let kind = if clone { "clone" } else { "cold" };
        eprintln!("[bench] {kind}: vm_run, create, reset");
        with_templates(clone, || {
            let mut run =
                Row { name: format!("vm_run `true` end to end ({kind})"), samples: vec![] };
            for _ in 0..n {
                let (ms, r) = timed(|| Ok(rt.vm_run(VmRunParams::new(env.clone(), "true"))?))?;
                if r.exit_code != 0 || boot_kind(&r.metadata) != kind {
                    bail!("vm_run: exit {} boot {}", r.exit_code, boot_kind(&r.metadata));
                }
                run.samples.push(ms);
            }
            let mut make = Row { name: format!("workspace create ({kind})"), samples: vec![] };
            let mut ids = Vec::new();
            for _ in 0..n {
                let (ms, ws) = timed(|| create(&rt, &env))?;
                if boot_kind(&ws.metadata) != kind {
                    bail!("create booted {}", boot_kind(&ws.metadata));
                }
                make.samples.push(ms);
                ids.push(ws.workspace_id);
            }
            let mut reset =
                Row { name: format!("workspace reset, small workspace ({kind})"), samples: vec![] };
            let id = ids[0].clone();
            rt.workspace_exec(WorkspaceExecParams::new(&id, "echo hi > /workspace/a.txt"))?;
            for _ in 0..n {
                let (ms, r) = timed(|| {
                    Ok(rt.workspace_reset(WorkspaceResetParams {
                        workspace_id: id.clone(),
                        snapshot: "baseline".into(),
                    })?)
                })?;
                if boot_kind(&r.workspace.metadata) != kind {
                    bail!("reset booted {}", boot_kind(&r.workspace.metadata));
                }
                reset.samples.push(ms);
            }
            for id in ids {
                rt.workspace_delete(&id)?;
            }
            rows.extend([run, make, reset]);
            Ok(())
        })?;
    }

    eprintln!("[bench] exec paths and guest process spawn");
    let ws = create(&rt, &env)?;
    let id = ws.workspace_id.clone();
    let runs = n.max(10);
    let mut inproc = Row { name: "exec `true`, one runtime (SDK)".into(), samples: vec![] };
    for _ in 0..runs {
        let (ms, r) = timed(|| Ok(rt.workspace_exec(WorkspaceExecParams::new(&id, "true"))?))?;
        if r.exit_code != 0 {
            bail!("exec true exited {}", r.exit_code);
        }
        inproc.samples.push(ms);
    }
    let mut cli =
        Row { name: "exec `true` over the CLI (process per exec)".into(), samples: vec![] };
    for _ in 0..runs {
        let (ms, status) = timed(|| {
            Ok(Command::new(pyro_binary()?)
                .args(["workspace", "exec", &id, "--", "true"])
                .env("PYRO_STATE_DIR", &state)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?)
        })?;
        if !status.success() {
            bail!("pyro workspace exec failed: {status}");
        }
        cli.samples.push(ms);
    }
    let mut mcp_row = Row { name: "exec `true` over one MCP session".into(), samples: vec![] };
    {
        let mut mcp = Mcp::start(&state)?;
        mcp.exec(&id, "true")?; // opens the kept session
        for _ in 0..runs {
            let (ms, ()) = timed(|| mcp.exec(&id, "true"))?;
            mcp_row.samples.push(ms);
        }
    }
    let spawn = rt.workspace_exec(WorkspaceExecParams::new(
        &id,
        "a=$(date +%s%N); for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do /bin/true; done; b=$(date +%s%N); echo $(( (b - a) / 20000 ))",
    ))?;
    let spawn_us: f64 = spawn.stdout.trim().parse().context("spawn timing")?;
    let login = rt.workspace_exec(WorkspaceExecParams::new(
        &id,
        "a=$(date +%s%N); for i in 1 2 3 4 5; do sh -lc true; done; b=$(date +%s%N); echo $(( (b - a) / 5000 ))",
    ))?;
    let login_us: f64 = login.stdout.trim().parse().context("login shell timing")?;
    rows.extend([inproc, cli, mcp_row]);
    rows.push(Row {
        name: "one guest process spawn (fork+exec `/bin/true`)".into(),
        samples: vec![spawn_us / 1000.0; 2],
    });
    rows.push(Row {
        name: "one login shell in the guest (`sh -lc true`, the old exec)".into(),
        samples: vec![login_us / 1000.0; 2],
    });

    eprintln!("[bench] idle cost");
    let mut cold_ws = None;
    with_templates(false, || {
        cold_ws = Some(create(&rt, &env)?);
        Ok(())
    })?;
    let cold_ws = cold_ws.context("cold workspace")?;
    let used = create(&rt, &env)?;
    for _ in 0..60 {
        rt.workspace_exec(WorkspaceExecParams::new(&used.workspace_id, "true"))?;
    }
    for _ in 0..60 {
        rt.workspace_exec(WorkspaceExecParams::new(&cold_ws.workspace_id, "true"))?;
    }
    std::thread::sleep(Duration::from_secs(5));
    let subjects = [
        ("clone, fresh", id.clone()),
        ("clone, after 60 execs", used.workspace_id.clone()),
        ("cold boot, after 60 execs", cold_ws.workspace_id.clone()),
    ];
    let pids: Vec<i32> =
        subjects.iter().map(|(_, w)| qemu_pid(&state, w)).collect::<Result<_>>()?;
    let cpu = idle_cpu(&pids, Duration::from_secs(10))?;
    let mut idle_table = String::new();
    writeln!(
        idle_table,
        "| idle workspace (`{env}`, 1024 MiB guest) | QEMU CPU over 10 s | QEMU RSS MiB | PSS MiB | private MiB |"
    )?;
    writeln!(idle_table, "|---|---:|---:|---:|---:|")?;
    for ((label, _), (pid, cpu)) in subjects.iter().zip(pids.iter().zip(cpu)) {
        let m = memory_mib(*pid)?;
        writeln!(
            idle_table,
            "| {label} | {cpu:.2}% of a core | {:.0} | {:.0} | {:.0} |",
            m.rss, m.pss, m.private
        )?;
    }
    for w in [&id, &used.workspace_id, &cold_ws.workspace_id] {
        rt.workspace_delete(w)?;
    }

    eprintln!("[bench] density: {} idle clones", args.density);
    let mut density_ids = Vec::new();
    let started = Instant::now();
    for _ in 0..args.density {
        density_ids.push(create(&rt, &env)?.workspace_id);
    }
    let create_all = started.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let started = Instant::now();
    let mut answered = 0;
    let mut exec_ms = Vec::new();
    for w in &density_ids {
        let (ms, r) = timed(|| Ok(rt.workspace_exec(WorkspaceExecParams::new(w, "echo ok"))?))?;
        if r.stdout == "ok\n" {
            answered += 1;
        }
        exec_ms.push(ms);
    }
    let exec_all = started.elapsed();
    let dpids: Vec<i32> = density_ids.iter().map(|w| qemu_pid(&state, w)).collect::<Result<_>>()?;
    let dcpu = idle_cpu(&dpids, Duration::from_secs(10))?;
    let dmem = dpids.iter().map(|p| memory_mib(*p)).collect::<Result<Vec<_>>>()?;
    let total = |f: fn(&Memory) -> f64| dmem.iter().map(f).sum::<f64>();
    let (total_rss, total_pss, total_private) =
        (total(|m| m.rss), total(|m| m.pss), total(|m| m.private));
    let each = |v: f64| v / args.density.max(1) as f64;
    let mut density = String::new();
    writeln!(
        density,
        "{answered} of {} idle clones answered an exec (created in {:.1} s; all execs {:.1} s, p50 {:.0} ms); \
         together they used {:.1}% of a core while idle; QEMU PSS {:.0} MiB ({:.0} MiB each), \
         private {:.0} MiB ({:.0} MiB each), RSS {:.0} MiB ({:.0} MiB each: RSS counts the QEMU \
         binary and the template's RAM file pages, shared by all clones, once per clone).",
        args.density,
        create_all.as_secs_f64(),
        exec_all.as_secs_f64(),
        median(exec_ms),
        dcpu.iter().sum::<f64>(),
        total_pss,
        each(total_pss),
        total_private,
        each(total_private),
        total_rss,
        each(total_rss)
    )?;
    for w in density_ids {
        rt.workspace_delete(&w)?;
    }
    notes.push(density);
    eprintln!("[bench] repo-scale table");
    let repo = repo_scale::table(&work, &env, n, &REPO_SEEDS)?;
    let _ = std::fs::remove_dir_all(&work);

    let floor_p50 = rows[0].p(0.5);
    let mut table = String::new();
    writeln!(table, "| operation | p50 ms | p95 ms | p50 / floor |")?;
    writeln!(table, "|---|---:|---:|---:|")?;
    for row in &rows {
        let (p50, p95) = (row.p(0.5), row.p(0.95));
        writeln!(table, "| {} | {p50:.1} | {p95:.1} | {:.3}x |", row.name, p50 / floor_p50)?;
    }
    let mut text = format!("{table}\n{idle_table}\nDensity: {}\n\n{repo}", notes.join("\n"));
    text = text.replace("\n\n\n", "\n\n");
    println!("{text}");
    if let Some(path) = &args.write {
        write_doc(path, &args, &doctor, n, &text)?;
    }
    Ok(())
}

fn write_doc(
    path: &str,
    args: &Args,
    doctor: &pyro::runtime::DoctorReport,
    runs: usize,
    text: &str,
) -> Result<()> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut doc = String::new();
    writeln!(
        doc,
        "Generated by `make bench` (`pyro-bench --runs {runs} --density {} --write {path}`).\n",
        args.density
    )?;
    writeln!(
        doc,
        "- machine: {} cores, `{cpu}`, {}; load average at the end `{}`",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        doctor.platform,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )?;
    writeln!(doc, "- accel: {:?} ({})", doctor.accel, doctor.accel_reason)?;
    writeln!(doc, "- QEMU: {}", doctor.qemu_version.clone().unwrap_or_default())?;
    writeln!(doc, "- guest kernel: {}", doctor.kernel_release.clone().unwrap_or_default())?;
    writeln!(doc, "- environment: {}", args.environment)?;
    writeln!(doc, "- date: {}\n", chrono_like_now())?;
    doc.push_str(text);
    let (begin, end) = ("<!-- pyro-bench:begin -->", "<!-- pyro-bench:end -->");
    let block = format!("{begin}\n{doc}{end}\n");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(begin), old.find(end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{block}{}", &old[..b], old[e + end.len()..].trim_start_matches('\n'))
        }
        _ => format!("# Benchmarks\n\n{block}"),
    };
    std::fs::write(path, new).with_context(|| format!("writing {path}"))?;
    eprintln!("[bench] wrote {path}");
    Ok(())
}

fn chrono_like_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
