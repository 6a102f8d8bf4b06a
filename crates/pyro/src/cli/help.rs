//! Help sections generated from library data, so the CLI never restates what the
//! profiles are: the text comes from [`Profile::instructions`].

use pyro::{Mode, Profile};

/// Wrap `text` at `width` columns, indenting every line by `indent` spaces.
pub fn wrap(text: &str, indent: usize, width: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > width {
            out.push_str(&pad);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&pad);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn profiles_section() -> String {
    let mut out = String::new();
    for profile in Profile::ALL {
        let default = if profile == Profile::default() { " (default)" } else { "" };
        let note = match profile {
            Profile::WorkspaceCore => " (recommended for chat hosts)",
            Profile::WorkspaceFull => " (explicit opt-in)",
            Profile::VmRun => "",
        };
        out.push_str(&format!("  {}{default}{note}\n", profile.name()));
        out.push_str(&wrap(profile.instructions(), 6, 90));
    }
    out
}

fn profile_advice() -> String {
    format!(
        "{} is the default and the recommended profile for chat hosts; {} is the explicit \
         opt-in for shells, services, snapshots, secrets, network policy and disk tools, and \
         {} is the smallest surface for one-shot commands.",
        Profile::default().name(),
        Profile::WorkspaceFull.name(),
        Profile::VmRun.name()
    )
}

fn modes_section() -> String {
    let mut out = String::new();
    for mode in Mode::ALL {
        out.push_str(&format!("  {}\n", mode.name()));
        out.push_str(&wrap(mode.instructions(), 6, 90));
    }
    out
}

const PROJECT_SOURCE: &str = "Started inside a Git checkout, the server seeds workspace_create \
    without seed_path from the checkout's Git-tracked files (never ignored or untracked files; \
    the checkout is only read). --project-path DIR, --repo-url URL [--repo-ref REF] and \
    --no-project-source change that; `pyro doctor` shows the source it would use and why.";

/// The top-level `pyro --help` epilogue: the daily path, the MCP profiles and the exit codes.
pub fn top_level_after_help() -> String {
    format!(
        "Start here (the daily loop with a chat host):\n  \
         pyro doctor                              check the host: QEMU, KVM/TCG, images, project\n  \
         pyro prepare debian:12                   warm the machine and prove the workspace loop\n  \
         pyro run debian:12 -- git --version      one command in a fresh VM\n  \
         pyro host connect codex --mode repro-fix register `pyro mcp serve` in a chat host\n  \
         pyro host doctor                         is every host's entry current?\n\n\
         MCP profiles (`pyro mcp serve --profile NAME`):\n{}\n{}\n\
         Exit codes:\n  \
         0    success\n  \
         1    error (human mode: `error: ...` on stderr; --json: {{\"ok\": false, ...}} on stdout)\n  \
         2    usage error\n  \
         N    `run` and `workspace exec`: the exit code of the guest command\n\n\
         Example:\n  pyro mcp serve\n  pyro mcp serve --profile workspace-full\n",
        profiles_section(),
        wrap(&profile_advice(), 0, 90)
    )
}

/// The `pyro mcp serve --help` epilogue.
pub fn mcp_serve_after_help() -> String {
    format!(
        "Profiles:\n{}\n{}\nModes (`--mode NAME`, instead of --profile; each smaller than \
         workspace-core):\n{}\nProject source:\n{}\n\
         Chat host configuration (stdio; `pyro host connect HOST` writes it for you):\n  \
         {{\"mcpServers\": {{\"pyro\": {{\n    \"command\": \"pyro\",\n    \
         \"args\": [\"mcp\", \"serve\"]\n  }}}}}}\n",
        profiles_section(),
        wrap(&profile_advice(), 0, 90),
        modes_section(),
        wrap(PROJECT_SOURCE, 2, 90),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_respects_width_and_indent() {
        let text = wrap("aaa bbb ccc ddd", 2, 10);
        assert_eq!(text, "  aaa bbb\n  ccc ddd\n");
    }

    #[test]
    fn help_mentions_every_profile_and_the_advice() {
        let help = mcp_serve_after_help();
        for profile in Profile::ALL {
            assert!(help.contains(profile.name()));
        }
        assert!(help.contains("workspace-core (default) (recommended for chat hosts)"));
        assert!(help.contains("workspace-full (explicit opt-in)"));
        for mode in Mode::ALL {
            assert!(help.contains(&format!("  {}\n", mode.name())), "{mode}");
        }
        assert!(help.contains("Git-tracked files"));
        assert!(top_level_after_help().contains("pyro prepare debian:12"));
        let first_words: String =
            Profile::VmRun.instructions().split_whitespace().take(4).collect::<Vec<_>>().join(" ");
        assert!(top_level_after_help().contains(&first_words));
    }
}
