//! End-to-end tests of the `pyro` binary.
//!
//! Every test runs the real binary in its own scratch directory with its own
//! `PYRO_STATE_DIR` and `PYRO_CACHE_DIR`. The guest backend may or may not exist on the
//! machine running the tests, so workspace tests force host execution with
//! `PYRO_BACKEND=host_compat` plus `--allow-host-compat`; the fail-closed test checks
//! that the opt-in is really required.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tempfile::TempDir;

/// A scratch environment: state, cache and working directory of the binary.
struct Scratch {
    state: TempDir,
    cache: TempDir,
    cwd: TempDir,
}

/// The result of one run of the binary.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().expect("pyro was killed by a signal"),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {self:?}"))
    }
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            state: TempDir::new().expect("state dir"),
            cache: TempDir::new().expect("cache dir"),
            cwd: TempDir::new().expect("work dir"),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pyro"));
        cmd.args(args)
            .current_dir(self.cwd.path())
            .env("PYRO_STATE_DIR", self.state.path())
            .env("PYRO_CACHE_DIR", self.cache.path())
            .env("PYRO_BACKEND", "host_compat")
            .env_remove("PYRO_LOG")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("run pyro").into()
    }

    /// Run and require exit code 0.
    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "pyro {args:?} failed: {run:?}");
        run
    }

    /// Run with `--json` semantics and require exit code 0; returns the JSON.
    fn json(&self, args: &[&str]) -> Value {
        self.ok(args).json()
    }

    /// Run and require a handled failure (exit 1); returns the run.
    fn fails(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 1, "pyro {args:?} should fail with 1: {run:?}");
        run
    }

    fn path(&self, name: &str) -> PathBuf {
        self.cwd.path().join(name)
    }

    fn workspace_dir(&self, id: &str) -> PathBuf {
        self.state.path().join("workspaces").join(id)
    }

    /// A host_compat workspace, optionally seeded; returns its id.
    fn create(&self, seed: Option<&Path>) -> String {
        let mut args = vec!["workspace", "create", "debian:12", "--allow-host-compat", "--json"];
        let seed = seed.map(|s| s.display().to_string());
        if let Some(seed) = &seed {
            args.extend(["--seed-path", seed.as_str()]);
        }
        let ws = self.json(&args);
        assert_eq!(ws["execution_mode"], "host_compat", "{ws}");
        ws["workspace_id"].as_str().expect("workspace_id").to_string()
    }

    fn diff(&self, id: &str) -> Value {
        self.json(&["workspace", "diff", id, "--json"])
    }
}

mod workspace_flow {
    use super::*;

    #[test]
    fn create_write_exec_diff_export_reset_delete() {
        let s = Scratch::new();
        let seed = s.path("seed");
        std::fs::create_dir_all(seed.join("src")).expect("seed dir");
        std::fs::write(seed.join("src/main.txt"), "original\n").expect("seed file");

        let id = s.create(Some(&seed));
        assert!(s.workspace_dir(&id).is_dir(), "state dir entry exists");
        let status = s.json(&["workspace", "status", &id, "--json"]);
        assert_eq!(status["workspace_seed"]["mode"], "directory");
        assert_eq!(status["state"], "started");

        // Clean right after creation.
        assert_eq!(s.diff(&id)["changed"], false);

        let text = "héllo wörld\nline 2\n";
        let write =
            s.json(&["workspace", "file", "write", &id, "notes/a.txt", "--text", text, "--json"]);
        assert_eq!(write["bytes_written"], text.len());

        // exec sees the file; human mode prints exactly the guest's stdout.
        let cat = s.ok(&["workspace", "exec", &id, "--", "cat", "notes/a.txt"]);
        assert_eq!(cat.stdout, text);
        assert!(cat.stderr.contains("[workspace-exec]"), "{}", cat.stderr);
        assert!(cat.stderr.contains("execution_mode=host_compat"), "{}", cat.stderr);

        // The guest exit code becomes ours, in human and --json mode.
        let exit3 = s.run(&["workspace", "exec", &id, "--", "sh", "-c", "exit 3"]);
        assert_eq!(exit3.code, 3, "{exit3:?}");
        let exit4 =
            s.run(&["workspace", "exec", &id, "--json", "--", "sh", "-c", "echo out; exit 4"]);
        assert_eq!(exit4.code, 4, "{exit4:?}");
        let json = exit4.json();
        assert_eq!(json["exit_code"], 4);
        assert_eq!(json["stdout"], "out\n");
        assert_eq!(json["command"], "sh -c 'echo out; exit 4'");

        // The diff shows the written file as added, with its text.
        let diff = s.diff(&id);
        assert_eq!(diff["changed"], true);
        let entries = diff["entries"].as_array().expect("entries");
        let added =
            entries.iter().find(|e| e["path"] == "notes/a.txt").expect("notes/a.txt in diff");
        assert_eq!(added["status"], "added");
        assert!(diff["patch"].as_str().expect("patch").contains("+héllo wörld"));
        let human = s.ok(&["workspace", "diff", &id]);
        assert!(human.stdout.starts_with("[workspace-diff]"), "{}", human.stdout);

        // Export reproduces the file byte for byte, and refuses to overwrite.
        let out = s.path("exported.txt");
        let out_str = out.display().to_string();
        let export =
            s.json(&["workspace", "export", &id, "notes/a.txt", "--output", &out_str, "--json"]);
        assert_eq!(export["artifact_type"], "file");
        assert_eq!(std::fs::read(&out).expect("exported file"), text.as_bytes());
        s.fails(&["workspace", "export", &id, "notes/a.txt", "--output", &out_str]);

        // A whole directory exports too (relative --output resolves against the cwd).
        s.ok(&["workspace", "export", &id, "/workspace", "--output", "tree"]);
        assert_eq!(std::fs::read(s.path("tree/notes/a.txt")).expect("tree file"), text.as_bytes());
        assert_eq!(std::fs::read(s.path("tree/src/main.txt")).expect("seed file"), b"original\n");

        // Reset restores the baseline: clean diff, written file gone, seed still there.
        let reset = s.json(&["workspace", "reset", &id, "--json"]);
        assert_eq!(reset["reset_count"], 1);
        assert_eq!(reset["workspace_reset"]["snapshot_name"], "baseline");
        let diff = s.diff(&id);
        assert_eq!(diff["changed"], false, "{diff}");
        assert_eq!(diff["entries"], Value::Array(vec![]));
        let gone = s.fails(&["workspace", "file", "read", &id, "notes/a.txt"]);
        assert!(gone.stderr.starts_with("error: "), "{gone:?}");
        // The agent's own kind survives every layer: not `sandbox_error`, but not_found.
        let gone = s.fails(&["workspace", "file", "read", &id, "notes/a.txt", "--json"]).json();
        assert_eq!(gone["error"]["kind"], "not_found", "{gone}");
        assert_eq!(gone["error"]["guest_kind"], "not_found", "{gone}");
        assert!(gone["error"]["hint"].as_str().is_some_and(|h| h.contains("file list")), "{gone}");
        let seed_read = s.ok(&["workspace", "file", "read", &id, "src/main.txt", "--content-only"]);
        assert_eq!(seed_read.stdout, "original\n");
        assert_eq!(seed_read.stderr, "", "--content-only prints nothing else");

        // Delete removes the state directory entry; the id is then unknown.
        let deleted = s.ok(&["workspace", "delete", &id]);
        assert_eq!(deleted.stdout.trim(), format!("Deleted workspace: {id}"));
        assert!(!s.workspace_dir(&id).exists(), "state dir entry must be gone");
        s.fails(&["workspace", "status", &id]);
    }

    #[test]
    fn file_read_human_mode_adds_newline_and_footer() {
        let s = Scratch::new();
        let id = s.create(None);
        s.ok(&["workspace", "file", "write", &id, "x.txt", "--text", "no newline"]);
        let read = s.ok(&["workspace", "file", "read", &id, "x.txt"]);
        assert_eq!(read.stdout, "no newline\n");
        assert!(
            read.stderr.contains("[workspace-file-read]") && read.stderr.contains("truncated=no")
        );
        let exact = s.ok(&["workspace", "file", "read", &id, "x.txt", "--content-only"]);
        assert_eq!(exact.stdout, "no newline");
        let list = s.ok(&["workspace", "file", "list", &id]);
        assert!(list.stdout.contains("/workspace/x.txt [file] size=10"), "{}", list.stdout);
    }

    #[test]
    fn patch_apply_from_file_then_snapshot_and_reset_to_it() {
        let s = Scratch::new();
        let id = s.create(None);
        s.ok(&["workspace", "file", "write", &id, "a.txt", "--text", "broken\n"]);
        std::fs::write(
            s.path("fix.diff"),
            "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-broken\n+fixed\n",
        )
        .expect("patch file");
        let patch =
            s.json(&["workspace", "patch", "apply", &id, "--patch-file", "fix.diff", "--json"]);
        assert_eq!(patch["changed"], true);
        assert_eq!(patch["summary"]["modified"], 1);
        s.ok(&["workspace", "snapshot", "create", &id, "fixed"]);
        let snaps = s.json(&["workspace", "snapshot", "list", &id, "--json"]);
        let names: Vec<&str> = snaps["snapshots"]
            .as_array()
            .expect("snapshots")
            .iter()
            .filter_map(|s| s["snapshot_name"].as_str())
            .collect();
        assert!(names.contains(&"baseline") && names.contains(&"fixed"), "{names:?}");
        s.ok(&["workspace", "file", "write", &id, "a.txt", "--text", "changed again\n"]);
        s.ok(&["workspace", "reset", &id, "--snapshot", "fixed"]);
        let read = s.ok(&["workspace", "file", "read", &id, "a.txt", "--content-only"]);
        assert_eq!(read.stdout, "fixed\n");
        let del = s.ok(&["workspace", "snapshot", "delete", &id, "fixed"]);
        assert_eq!(del.stdout.trim(), "Deleted workspace snapshot: fixed");
    }
}

mod summary {
    use super::*;

    #[test]
    fn summary_prints_pasteable_markdown_and_json_with_the_seed_origin() {
        let s = Scratch::new();
        let seed = s.path("seed");
        std::fs::create_dir_all(&seed).expect("seed dir");
        std::fs::write(seed.join("a.txt"), "one\n").expect("seed file");
        let id = s.create(Some(&seed));
        s.run(&["workspace", "exec", &id, "--", "sh", "-c", "exit 4"]);
        s.ok(&["workspace", "file", "write", &id, "b.txt", "--text", "two"]);
        s.ok(&["workspace", "exec", &id, "--", "cat", "b.txt"]);
        let human = s.ok(&["workspace", "summary", &id]).stdout;
        assert!(human.starts_with(&format!("### pyro workspace {id}")), "{human}");
        assert!(human.contains("**passed**"), "{human}");
        assert!(human.contains("`sh -c 'exit 4'` → exit 4"), "{human}");
        assert!(human.contains("added b.txt"), "{human}");
        assert!(human.contains(&format!("pyro workspace logs {id}")), "{human}");
        let json = s.json(&["workspace", "summary", &id, "--json"]);
        assert_eq!(json["workspace_id"], id.as_str());
        assert_eq!(json["origin_kind"], "seed_path");
        assert_eq!(json["command_count"], 2);
        assert_eq!(json["text"].as_str(), Some(human.as_str()));
        let missing = s.run(&["workspace", "summary", "0123456789ab"]);
        assert_eq!(missing.code, 1);
        assert!(missing.stderr.contains("does not exist"), "{missing:?}");
    }
}

mod persistence {
    use super::*;

    #[test]
    fn a_second_process_sees_the_workspace() {
        let s = Scratch::new();
        let created = s.ok(&[
            "workspace",
            "create",
            "debian:12",
            "--allow-host-compat",
            "--name",
            "shared",
            "--label",
            "team=core",
            "--id-only",
        ]);
        let id = created.stdout.trim_end_matches('\n').to_string();
        assert_eq!(created.stdout, format!("{id}\n"), "--id-only prints just the id");
        assert!(!id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()), "{id:?}");

        let list = s.json(&["workspace", "list", "--json"]);
        assert_eq!(list["count"], 1);
        assert_eq!(list["workspaces"][0]["workspace_id"], id.as_str());
        assert_eq!(list["workspaces"][0]["name"], "shared");
        assert_eq!(list["workspaces"][0]["labels"]["team"], "core");

        let human = s.ok(&["workspace", "list"]);
        assert!(
            human.stdout.contains(&format!("workspace_id={id} name='shared'")),
            "{}",
            human.stdout
        );

        let status = s.ok(&["workspace", "status", &id]);
        assert!(status.stdout.starts_with(&format!("Workspace ID: {id}\n")), "{}", status.stdout);
        assert!(status.stdout.contains("Execution mode: host_compat"), "{}", status.stdout);

        let updated = s.json(&["workspace", "update", &id, "--clear-label", "team", "--json"]);
        assert_eq!(updated["labels"], serde_json::json!({}));
    }

    #[test]
    fn empty_list() {
        let s = Scratch::new();
        assert_eq!(s.ok(&["workspace", "list"]).stdout, "No workspaces.\n");
        assert_eq!(s.json(&["workspace", "list", "--json"])["count"], 0);
    }
}

mod errors {
    use super::*;

    #[test]
    fn unknown_workspace_json_error_shape() {
        let s = Scratch::new();
        let run = s.fails(&["workspace", "status", "0123456789ab", "--json"]);
        let json = run.json();
        assert_eq!(json["ok"], false);
        assert_eq!(json["error"]["kind"], "not_found");
        let message = json["error"]["message"].as_str().expect("message");
        assert!(message.contains("0123456789ab"), "{message}");
        assert_eq!(json.as_object().map(|o| o.len()), Some(2), "only ok and error: {json}");

        let human = s.fails(&["workspace", "status", "0123456789ab"]);
        assert_eq!(human.stdout, "");
        assert!(human.stderr.starts_with("error: workspace '0123456789ab' does not exist"));
        assert_eq!(human.stderr.lines().count(), 1, "one line: {:?}", human.stderr);
    }

    #[test]
    fn path_escapes_are_rejected_and_change_nothing() {
        let s = Scratch::new();
        let id = s.create(None);
        // A symlink inside the workspace pointing at the host's root.
        s.ok(&["workspace", "exec", &id, "--", "ln", "-s", "/", "escape"]);
        let before = s.diff(&id);
        let victim_dir = TempDir::new().expect("victim dir");
        let victim = victim_dir.path().join("pwned");
        let through_link = format!("escape{}", victim.display());

        for path in ["../x", "/etc/passwd", "/workspace/../x", through_link.as_str()] {
            let run = s.fails(&["workspace", "file", "write", &id, path, "--text", "owned"]);
            assert!(run.stderr.starts_with("error: "), "{path}: {run:?}");
            assert!(
                run.stderr.contains("/workspace") || run.stderr.contains("symlink"),
                "{path}: message should explain the confinement: {}",
                run.stderr
            );
        }
        let read = s.fails(&["workspace", "file", "read", &id, "escape/etc/hostname", "--json"]);
        assert_eq!(read.json()["ok"], false);
        assert_eq!(read.json()["error"]["kind"], "invalid_argument", "{}", read.json());
        assert_eq!(read.json()["error"]["guest_kind"], "path_escape", "{}", read.json());
        assert!(!victim.exists(), "nothing was written through the symlink");
        assert!(!s.workspace_dir(&id).join("x").exists());
        assert_eq!(s.diff(&id), before, "the workspace is unchanged");
    }

    #[test]
    fn oversized_text_is_rejected() {
        let s = Scratch::new();
        let id = s.create(None);
        // One argument cannot exceed 128 KiB on Linux (MAX_ARG_STRLEN), so a > 1 MiB
        // payload can only reach the binary through --text-file; the inline --text limit
        // is covered by the unit tests of cli::parse.
        std::fs::write(s.path("big.txt"), vec![b'a'; 1024 * 1024 + 1]).expect("big file");
        let run =
            s.fails(&["workspace", "file", "write", &id, "big.txt", "--text-file", "big.txt"]);
        assert!(run.stderr.contains("1 MiB"), "{run:?}");
        let list = s.json(&["workspace", "file", "list", &id, "--json"]);
        assert_eq!(list["entries"], Value::Array(vec![]), "nothing was written");
        let patch =
            s.fails(&["workspace", "patch", "apply", &id, "--patch-file", "big.txt", "--json"]);
        assert_eq!(patch.json()["error"]["kind"], "invalid_argument");
    }

    #[test]
    fn host_execution_requires_the_opt_in() {
        let s = Scratch::new();
        let run = s.fails(&["workspace", "create", "debian:12"]);
        assert!(run.stderr.contains("pyro doctor"), "{}", run.stderr);
        assert!(run.stderr.contains("--allow-host-compat"), "{}", run.stderr);
        let entries =
            std::fs::read_dir(s.state.path().join("workspaces")).map(|d| d.count()).unwrap_or(0);
        assert_eq!(entries, 0, "no workspace was left behind");

        let run = s.fails(&["run", "debian:12", "--json", "--", "true"]);
        assert_eq!(run.json()["error"]["kind"], "guest_unavailable");
    }

    #[test]
    fn missing_command_after_dashdash() {
        let s = Scratch::new();
        let run = s.fails(&["run", "debian:12", "--allow-host-compat"]);
        assert_eq!(run.stderr, "error: command is required after `--`\n");
        let run = s.fails(&["workspace", "exec", "0123456789ab", "--json"]);
        assert_eq!(run.json()["error"]["message"], "command is required after `--`");
    }

    #[test]
    fn unimplemented_features_fail_clearly() {
        let s = Scratch::new();
        let id = s.create(None);
        let shell = s.fails(&["workspace", "shell", "open", &id, "--cols", "80"]);
        assert!(
            shell.stderr.contains(
                "interactive shells require guest execution and are unavailable for this \
                 workspace: host_compat backend"
            ),
            "{shell:?}"
        );
        let svc = s.fails(&["workspace", "service", "list", &id, "--json"]);
        assert_eq!(svc.json()["error"]["kind"], "unsupported");
        let disk = s.fails(&["workspace", "disk", "read", &id, "a.txt", "--max-bytes", "10"]);
        assert!(disk.stderr.contains("workspace_disk_read"), "{disk:?}");
        let two = s.fails(&[
            "workspace",
            "service",
            "start",
            &id,
            "web",
            "--ready-file",
            "a",
            "--ready-tcp",
            "127.0.0.1:1",
            "--",
            "true",
        ]);
        assert_eq!(
            two.stderr,
            "error: choose at most one of --ready-file, --ready-tcp, --ready-http, or --ready-command\n"
        );
        let ollama = s.fails(&["demo", "ollama"]);
        assert!(ollama.stderr.contains("not implemented in this build"), "{ollama:?}");
        assert_eq!(ollama.stderr.lines().count(), 1);
    }
}

mod cli_surface {
    use super::*;

    #[test]
    fn flags_after_positionals_work() {
        let s = Scratch::new();
        let id = s.create(None);
        let run = s.ok(&["workspace", "exec", &id, "--json", "--", "echo", "hi"]);
        assert_eq!(run.json()["stdout"], "hi\n");
        let run =
            s.ok(&["workspace", "exec", &id, "--timeout-seconds", "5", "--", "echo", "--json"]);
        assert_eq!(run.stdout, "--json\n", "words after -- belong to the command");
    }

    #[test]
    fn run_passes_output_and_exit_code_through() {
        let s = Scratch::new();
        let run = s.run(&[
            "run",
            "debian:12",
            "--allow-host-compat",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 5",
        ]);
        assert_eq!(run.code, 5, "{run:?}");
        assert_eq!(run.stdout, "out\n");
        assert!(run.stderr.contains("[run] phase=create environment=debian:12"), "{}", run.stderr);
        assert!(run.stderr.contains("err\n"), "{}", run.stderr);
        assert!(run.stderr.contains("execution_mode=host_compat"), "{}", run.stderr);
        assert!(run.stderr.contains("accel=none"), "{}", run.stderr);

        let json = s.run(&[
            "run",
            "debian:12",
            "--json",
            "--allow-host-compat",
            "--",
            "sh",
            "-c",
            "exit 7",
        ]);
        assert_eq!(json.code, 7);
        assert_eq!(json.json()["exit_code"], 7);
    }

    #[test]
    fn version() {
        let s = Scratch::new();
        let run = s.ok(&["--version"]);
        assert_eq!(run.stdout, format!("pyro {}\n", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn completions_come_from_the_definitions() {
        let s = Scratch::new();
        let bash = s.ok(&["completions", "bash"]);
        assert!(bash.stdout.contains("workspace"), "bash completion mentions workspace");
        assert!(bash.stdout.contains("--allow-host-compat"));
        let fish = s.ok(&["completions", "fish"]);
        assert!(fish.stdout.contains("snapshot"));
        assert_eq!(s.run(&["completions", "powershell"]).code, 2, "only bash, zsh and fish");
    }

    #[test]
    fn usage_errors_exit_2() {
        let s = Scratch::new();
        let run = s.run(&["mcp", "serve", "--profile", "nope"]);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stderr.contains("workspace-core"), "lists the valid profiles: {}", run.stderr);
        assert_eq!(run.stdout, "");
        let run = s.run(&["workspace", "create", "debian:12", "--json", "--id-only"]);
        assert_eq!(run.code, 2, "{run:?}");
        let run = s.run(&["workspace", "file", "write", "w", "p"]);
        assert_eq!(run.code, 2, "--text or --text-file is required: {run:?}");
    }

    #[test]
    fn help_explains_the_profiles() {
        let s = Scratch::new();
        let top = s.ok(&["--help"]).stdout;
        let serve = s.ok(&["mcp", "serve", "--help"]).stdout;
        for help in [&top, &serve] {
            assert!(
                help.contains("workspace-core (default) (recommended for chat hosts)"),
                "{help}"
            );
            assert!(help.contains("workspace-full (explicit opt-in)"), "{help}");
            assert!(help.contains("vm-run"), "{help}");
        }
    }

    #[test]
    fn env_list_shows_the_catalog() {
        let s = Scratch::new();
        let list = s.json(&["env", "list", "--json"]);
        let names: Vec<&str> = list["environments"]
            .as_array()
            .expect("environments")
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(names.contains(&"debian:12"), "{names:?}");
        assert_eq!(list["count"], names.len());
        let human = s.ok(&["env", "list"]);
        assert!(human.stdout.contains("debian:12 [not installed]"), "{}", human.stdout);
    }

    #[test]
    fn doctor_reports_and_checks_the_platform() {
        let s = Scratch::new();
        let report = s.json(&["doctor", "--json"]);
        assert_eq!(report["platform"], "linux-x86_64");
        assert!(report["runtime_ok"].is_boolean(), "{report}");
        assert_eq!(report["state_dir"], s.state.path().display().to_string());
        assert_eq!(s.run(&["doctor", "--platform", "linux-arm64"]).code, 2);
    }

    #[test]
    fn stop_start_and_logs() {
        let s = Scratch::new();
        let id = s.create(None);
        s.ok(&["workspace", "exec", &id, "--", "sh", "-c", "echo to-out; echo to-err >&2"]);
        let logs = s.ok(&["workspace", "logs", &id]);
        assert!(logs.stdout.starts_with("#1 exit_code=0"), "{}", logs.stdout);
        assert!(logs.stdout.contains("$ sh -c 'echo to-out; echo to-err >&2'\nto-out\n"));
        assert_eq!(logs.stderr, "to-err\n");

        let stopped = s.ok(&["workspace", "stop", &id]);
        assert!(stopped.stdout.starts_with(&format!("Stopped workspace ID: {id}")));
        let refused = s.fails(&["workspace", "exec", &id, "--json", "--", "true"]);
        assert_eq!(refused.json()["error"]["kind"], "wrong_state");
        let started = s.json(&["workspace", "start", &id, "--json"]);
        assert_eq!(started["state"], "started");
        s.ok(&["workspace", "exec", &id, "--", "true"]);
    }

    #[test]
    fn broken_pipe_exits_zero() {
        let s = Scratch::new();
        let id = s.create(None);
        std::fs::write(s.path("big.txt"), vec![b'x'; 1024 * 1024]).expect("file");
        s.ok(&["workspace", "file", "write", &id, "big.txt", "--text-file", "big.txt"]);
        let mut child = s
            .command(&[
                "workspace",
                "file",
                "read",
                &id,
                "big.txt",
                "--max-bytes",
                "1048576",
                "--content-only",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Close our end of stdout before pyro writes 1 MiB into it.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}
