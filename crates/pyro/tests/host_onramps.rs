//! `pyro host connect|print-config|doctor|repair` with a temporary HOME and fake host
//! CLIs on PATH. What was written is parsed (JSON with serde_json, TOML with toml_edit).

use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Home {
    home: tempfile::TempDir,
    bin: tempfile::TempDir,
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn pyro_bin() -> &'static str {
    env!("CARGO_BIN_EXE_pyro")
}

impl Home {
    fn new() -> Self {
        Home { home: tempfile::tempdir().expect("home"), bin: tempfile::tempdir().expect("bin") }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    fn run(&self, args: &[&str]) -> Run {
        let path = format!("{}:/usr/bin:/bin", self.bin.path().display());
        let out = Command::new(pyro_bin())
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", path)
            .current_dir(self.home.path())
            .output()
            .expect("pyro runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn json(&self, args: &[&str]) -> Value {
        let r = self.run(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
    }

    /// A fake host CLI (python) that logs its argv and edits the host's config like the
    /// real one: `mcp add [--scope user] NAME -- CMD...` and `mcp remove [--scope user] NAME`.
    fn fake_cli(&self, name: &str) {
        let script = format!(
            r#"#!/usr/bin/env python3
import json, os, sys
home = os.environ["HOME"]
with open(os.path.join(home, "{name}.log"), "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
args = [a for a in sys.argv[1:] if a not in ("--scope", "user")]
if args[:2] == ["mcp", "add"]:
    sep = args.index("--")
    server, cmd = args[2], args[sep + 1:]
    if "{name}" == "claude":
        path = os.path.join(home, ".claude.json")
        doc = json.load(open(path)) if os.path.exists(path) else {{}}
        if server in doc.get("mcpServers", {{}}):
            sys.stderr.write("MCP server pyro already exists\n"); sys.exit(1)
        doc.setdefault("mcpServers", {{}})[server] = {{"type": "stdio", "command": cmd[0], "args": cmd[1:], "env": {{}}}}
        json.dump(doc, open(path, "w"))
    else:
        os.makedirs(os.path.join(home, ".codex"), exist_ok=True)
        path = os.path.join(home, ".codex", "config.toml")
        text = open(path).read() if os.path.exists(path) else ""
        if "[mcp_servers." + server + "]" in text:
            sys.stderr.write("already exists\n"); sys.exit(1)
        text += "\n[mcp_servers.%s]\ncommand = %s\nargs = %s\n" % (server, json.dumps(cmd[0]), json.dumps(cmd[1:]))
        open(path, "w").write(text)
elif args[:2] == ["mcp", "remove"]:
    server = args[2]
    if "{name}" == "claude":
        path = os.path.join(home, ".claude.json")
        doc = json.load(open(path))
        del doc["mcpServers"][server]
        json.dump(doc, open(path, "w"))
    else:
        path = os.path.join(home, ".codex", "config.toml")
        lines, out, skip = open(path).read().splitlines(), [], False
        for line in lines:
            if line.startswith("["):
                skip = line == "[mcp_servers.%s]" % server
            if not skip:
                out.append(line)
        open(path, "w").write("\n".join(out) + "\n")
else:
    sys.exit(2)
"#
        );
        let path = self.bin.path().join(name);
        fs::write(&path, script).expect("write fake cli");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn log(&self, name: &str) -> Vec<Vec<String>> {
        fs::read_to_string(self.path(&format!("{name}.log")))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("log line"))
            .collect()
    }

    fn backups(&self, dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().contains(".pyro-backup-"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn status_of(doctor: &Value, host: &str) -> String {
    doctor["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|e| e["host"] == host))
        .map(|e| e["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[test]
fn opencode_config_is_written_idempotently_with_backup_and_repaired_when_drifted() {
    let h = Home::new();
    let doctor = h.json(&["host", "doctor", "--json"]);
    for host in ["claude-code", "codex", "opencode"] {
        assert_eq!(status_of(&doctor, host), "not_installed", "{doctor}");
    }
    let config = h.path(".config/opencode/opencode.json");
    fs::create_dir_all(config.parent().expect("parent")).expect("mkdir");
    fs::write(
        &config,
        r#"{"theme": "dark", "mcp": {"other": {"type": "local", "command": ["x"]}}}"#,
    )
    .expect("write");
    assert_eq!(status_of(&h.json(&["host", "doctor", "--json"]), "opencode"), "not_configured");

    let dry = h.json(&["host", "connect", "opencode", "--mode", "inspect", "--dry-run", "--json"]);
    assert_eq!(dry["action"], "wrote_config");
    assert!(dry["diff"].as_str().unwrap_or_default().contains("+      \"enabled\": true"), "{dry}");
    assert!(
        fs::read_to_string(&config).expect("read").contains("theme"),
        "dry run changed nothing"
    );
    assert!(!fs::read_to_string(&config).expect("read").contains("pyro"));

    let cmd = pyro_bin();
    let r =
        h.json(&["host", "connect", "opencode", "--mode", "inspect", "--command", cmd, "--json"]);
    assert_eq!(r["action"], "wrote_config");
    let written: Value =
        serde_json::from_str(&fs::read_to_string(&config).expect("read")).expect("json");
    assert_eq!(
        written["mcp"]["pyro"]["command"],
        json!([cmd, "mcp", "serve", "--mode", "inspect"])
    );
    assert_eq!(written["mcp"]["pyro"]["type"], "local");
    assert_eq!(written["mcp"]["pyro"]["enabled"], true);
    assert_eq!(written["theme"], "dark", "other settings kept");
    let text = fs::read_to_string(&config).expect("read");
    let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} in {text}"));
    assert!(
        at("\"$schema\"") < at("\"theme\"") && at("\"theme\"") < at("\"mcp\""),
        "order kept:\n{text}"
    );
    assert!(at("\"other\"") < at("\"pyro\""), "the new entry goes last:\n{text}");
    assert_eq!(written["mcp"]["other"]["command"], json!(["x"]), "other servers kept");
    let backups = h.backups(config.parent().expect("dir"));
    assert_eq!(backups.len(), 1);
    assert!(!fs::read_to_string(&backups[0]).expect("backup").contains("pyro"));

    let again =
        h.json(&["host", "connect", "opencode", "--mode", "inspect", "--command", cmd, "--json"]);
    assert_eq!(again["action"], "unchanged", "idempotent");
    let doctor =
        h.json(&["host", "doctor", "opencode", "--mode", "inspect", "--command", cmd, "--json"]);
    assert_eq!(status_of(&doctor, "opencode"), "current", "{doctor}");

    // Drift by hand: disabled and a different mode.
    let mut edited = written.clone();
    edited["mcp"]["pyro"]["enabled"] = json!(false);
    edited["mcp"]["pyro"]["command"] = json!([cmd, "mcp", "serve", "--mode", "repro-fix"]);
    fs::write(&config, serde_json::to_string(&edited).expect("encode")).expect("write");
    let doctor =
        h.json(&["host", "doctor", "opencode", "--mode", "inspect", "--command", cmd, "--json"]);
    let entry = &doctor["hosts"][0];
    assert_eq!(entry["status"], "drifted");
    let drift = entry["drift"].to_string();
    assert!(drift.contains("missing `--mode inspect`"), "{drift}");
    assert!(drift.contains("unexpected `--mode repro-fix`"), "{drift}");
    assert!(drift.contains("disabled"), "{drift}");
    assert_eq!(entry["fix"], "pyro host repair opencode");
    let human = h.run(&["host", "doctor", "opencode", "--mode", "inspect", "--command", cmd]);
    assert!(human.stdout.contains("opencode: drifted"), "{human:?}");
    let repaired =
        h.json(&["host", "repair", "opencode", "--mode", "inspect", "--command", cmd, "--json"]);
    assert!(repaired["repaired"].to_string().contains("disabled"), "{repaired}");
    let fixed: Value =
        serde_json::from_str(&fs::read_to_string(&config).expect("read")).expect("json");
    assert_eq!(fixed["mcp"]["pyro"]["enabled"], true);
    assert_eq!(fixed["mcp"]["pyro"]["command"], json!([cmd, "mcp", "serve", "--mode", "inspect"]));
    assert_eq!(h.backups(config.parent().expect("dir")).len(), 2);
    let doctor =
        h.json(&["host", "doctor", "opencode", "--mode", "inspect", "--command", cmd, "--json"]);
    assert_eq!(status_of(&doctor, "opencode"), "current");
}

#[test]
fn codex_toml_is_edited_in_place_keeping_comments_and_other_servers() {
    let h = Home::new();
    let config = h.path(".codex/config.toml");
    fs::create_dir_all(config.parent().expect("parent")).expect("mkdir");
    let original =
        "# my settings\nmodel = \"o3\"\n\n[mcp_servers.other]\ncommand = \"other\"\nargs = []\n";
    fs::write(&config, original).expect("write");
    let project = h.path("src/app");
    fs::create_dir_all(&project).expect("mkdir");
    let project_arg = project.display().to_string();
    let r = h.json(&[
        "host",
        "connect",
        "codex",
        "--mode",
        "repro-fix",
        "--project-path",
        &project_arg,
        "--environment",
        "debian:12-build",
        "--json",
    ]);
    assert_eq!(r["action"], "wrote_config", "{r}");
    assert!(r["diff"].as_str().unwrap_or_default().contains("+[mcp_servers.pyro]"));
    let text = fs::read_to_string(&config).expect("read");
    assert!(text.starts_with("# my settings\nmodel = \"o3\""), "comment and order kept:\n{text}");
    let doc: toml_edit::DocumentMut = text.parse().expect("valid TOML");
    assert_eq!(doc["model"].as_str(), Some("o3"));
    assert_eq!(doc["mcp_servers"]["other"]["command"].as_str(), Some("other"));
    let pyro = &doc["mcp_servers"]["pyro"];
    assert_eq!(pyro["command"].as_str(), Some("pyro"));
    let args: Vec<&str> =
        pyro["args"].as_array().expect("args").iter().filter_map(|v| v.as_str()).collect();
    let canonical = fs::canonicalize(&project).expect("canonical").display().to_string();
    assert_eq!(
        args,
        [
            "mcp",
            "serve",
            "--mode",
            "repro-fix",
            "--project-path",
            &canonical,
            "--environment",
            "debian:12-build"
        ]
    );
    let backups = h.backups(config.parent().expect("dir"));
    assert_eq!(backups.len(), 1);
    assert_eq!(fs::read_to_string(&backups[0]).expect("backup"), original);
    // `pyro` is not on this PATH: the entry is current, with a warning.
    let doctor = h.json(&[
        "host",
        "doctor",
        "codex",
        "--mode",
        "repro-fix",
        "--project-path",
        &project_arg,
        "--environment",
        "debian:12-build",
        "--json",
    ]);
    assert_eq!(doctor["hosts"][0]["status"], "current", "{doctor}");
    assert!(doctor["hosts"][0]["warnings"].to_string().contains("not on PATH"));
    // The registered project goes away: doctor explains why the server would not start.
    let moved = h.path("src/moved");
    fs::rename(&project, &moved).expect("move the project");
    let doctor = h.json(&[
        "host",
        "doctor",
        "codex",
        "--mode",
        "repro-fix",
        "--project-path",
        &canonical,
        "--environment",
        "debian:12-build",
        "--json",
    ]);
    let warnings = doctor["hosts"][0]["warnings"].to_string();
    assert!(
        warnings.contains("does not exist") && warnings.contains("--no-project-source"),
        "{warnings}"
    );
    fs::rename(&moved, &project).expect("move it back");
    // Without the flags the canonical command differs: drifted, and says what.
    let doctor = h.json(&["host", "doctor", "codex", "--json"]);
    assert_eq!(doctor["hosts"][0]["status"], "drifted");
    assert!(doctor["hosts"][0]["drift"].to_string().contains("unexpected `--mode repro-fix`"));
    // print-config changes nothing and shows the same entry.
    let before = fs::read_to_string(&config).expect("read");
    let printed = h.run(&["host", "print-config", "codex", "--mode", "repro-fix"]);
    assert_eq!(printed.code, 0);
    assert!(printed.stdout.contains("codex mcp add pyro -- pyro mcp serve --mode repro-fix"));
    assert!(printed.stdout.contains("[mcp_servers.pyro]"), "{printed:?}");
    assert_eq!(fs::read_to_string(&config).expect("read"), before);
    // A broken file is never overwritten.
    fs::write(&config, "[[[ not toml").expect("write");
    let broken = h.run(&["host", "connect", "codex"]);
    assert_eq!(broken.code, 1, "{broken:?}");
    assert!(broken.stderr.contains("is not valid TOML"), "{broken:?}");
    assert_eq!(fs::read_to_string(&config).expect("read"), "[[[ not toml");
}

#[test]
fn installed_host_clis_are_used_and_drift_is_removed_then_added() {
    let h = Home::new();
    h.fake_cli("claude");
    h.fake_cli("codex");
    let cmd = pyro_bin();
    let doctor = h.json(&["host", "doctor", "--json"]);
    assert_eq!(status_of(&doctor, "claude-code"), "not_configured", "{doctor}");
    assert_eq!(status_of(&doctor, "codex"), "not_configured");
    let r = h.json(&[
        "host",
        "connect",
        "claude-code",
        "--mode",
        "cold-start",
        "--command",
        cmd,
        "--json",
    ]);
    assert_eq!(r["action"], "registered_with_cli");
    let log = h.log("claude");
    assert_eq!(log.len(), 1);
    let mut expected = vec!["mcp", "add", "--scope", "user", "pyro", "--", cmd, "mcp", "serve"];
    expected.extend(["--mode", "cold-start"]);
    assert_eq!(log[0], expected);
    let written: Value =
        serde_json::from_str(&fs::read_to_string(h.path(".claude.json")).expect("read"))
            .expect("json");
    assert_eq!(
        written["mcpServers"]["pyro"]["args"],
        json!(["mcp", "serve", "--mode", "cold-start"])
    );
    let doctor = h.json(&[
        "host",
        "doctor",
        "claude-code",
        "--mode",
        "cold-start",
        "--command",
        cmd,
        "--json",
    ]);
    assert_eq!(doctor["hosts"][0]["status"], "current", "{doctor}");
    assert_eq!(doctor["hosts"][0]["warnings"], json!([]));
    // Unchanged: the CLI is not called again.
    h.json(&["host", "connect", "claude-code", "--mode", "cold-start", "--command", cmd, "--json"]);
    assert_eq!(h.log("claude").len(), 1);
    // Another mode: remove, then add.
    let r = h.json(&[
        "host",
        "connect",
        "claude-code",
        "--mode",
        "review-eval",
        "--command",
        cmd,
        "--json",
    ]);
    assert_eq!(r["cli_commands"].as_array().map(Vec::len), Some(2), "{r}");
    let log = h.log("claude");
    assert_eq!(log[1], ["mcp", "remove", "--scope", "user", "pyro"]);
    assert!(log[2].ends_with(&["--mode".to_string(), "review-eval".to_string()]));
    // Codex through its CLI; then drift by hand and repair.
    h.json(&["host", "connect", "codex", "--command", cmd, "--json"]);
    let toml_text = fs::read_to_string(h.path(".codex/config.toml")).expect("read");
    let doc: toml_edit::DocumentMut = toml_text.parse().expect("toml");
    assert_eq!(doc["mcp_servers"]["pyro"]["command"].as_str(), Some(cmd));
    let doctor = h.json(&[
        "host",
        "doctor",
        "codex",
        "--profile",
        "workspace-full",
        "--command",
        cmd,
        "--json",
    ]);
    assert_eq!(doctor["hosts"][0]["status"], "drifted");
    h.json(&["host", "repair", "codex", "--profile", "workspace-full", "--command", cmd, "--json"]);
    let codex_log = h.log("codex");
    assert_eq!(codex_log.len(), 3, "add, remove, add: {codex_log:?}");
    assert_eq!(codex_log[1], ["mcp", "remove", "pyro"]);
    let doctor = h.json(&[
        "host",
        "doctor",
        "codex",
        "--profile",
        "workspace-full",
        "--command",
        cmd,
        "--json",
    ]);
    assert_eq!(doctor["hosts"][0]["status"], "current", "{doctor}");
}

#[test]
fn claude_code_json_without_its_cli_keeps_everything_else_in_order() {
    let h = Home::new();
    let config = h.path(".claude.json");
    let original = "{\n  \"numStartups\": 3,\n  \"projects\": {\"/src\": {\"allowedTools\": []}},\n  \"mcpServers\": {\n    \"x\": {\"type\": \"stdio\", \"command\": \"x\", \"args\": []}\n  },\n  \"zeta\": true\n}\n";
    fs::write(&config, original).expect("write");
    let r = h.json(&["host", "connect", "claude-code", "--mode", "review-eval", "--json"]);
    assert_eq!(r["action"], "wrote_config", "{r}");
    let text = fs::read_to_string(&config).expect("read");
    let doc: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(doc["mcpServers"]["pyro"]["command"], "pyro");
    assert_eq!(doc["mcpServers"]["pyro"]["args"], json!(["mcp", "serve", "--mode", "review-eval"]));
    assert_eq!(doc["mcpServers"]["pyro"]["type"], "stdio");
    assert_eq!(doc["mcpServers"]["x"]["command"], "x");
    assert_eq!(doc["projects"]["/src"]["allowedTools"], json!([]));
    let at = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle} in {text}"));
    assert!(at("numStartups") < at("projects") && at("projects") < at("mcpServers"), "{text}");
    assert!(at("mcpServers") < at("zeta"), "{text}");
    assert!(
        text.contains("\"projects\": {\"/src\": {\"allowedTools\": []}}"),
        "untouched values keep their text:\n{text}"
    );
    let backups = h.backups(h.home.path());
    assert_eq!(fs::read_to_string(&backups[0]).expect("backup"), original);
    let doctor = h.json(&["host", "doctor", "claude-code", "--mode", "review-eval", "--json"]);
    assert_eq!(doctor["hosts"][0]["status"], "current", "{doctor}");
}

#[test]
fn bad_host_usage_is_a_clear_error() {
    let h = Home::new();
    let r = h.run(&["host", "repair", "opencode"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("pyro host connect opencode"), "{r:?}");
    let r = h.run(&["host", "connect", "vscode"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = h.run(&["host", "connect", "codex", "--mode", "inspect", "--profile", "vm-run"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("cannot be used with"), "{r:?}");
}
