"""The repro-fix-loop recipe through `pyro mcp serve --mode repro-fix`, driven by the
official Python MCP client, from a project checkout (the server's working directory).

Usage: recipe_repro_fix.py PYRO_BIN PROJECT_DIR EXPORT_DIR
The project has `check.sh`, which fails until `src/answer.txt` says 42.
Prints one line per step and exits non-zero on the first failed check.
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def check(cond, message):
    if not cond:
        print(f"FAIL: {message}", flush=True)
        sys.exit(1)


async def ok(session, name, args):
    result = await session.call_tool(name, args)
    text = "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
    check(not result.isError, f"{name} failed: {text}")
    check(json.loads(text) == result.structuredContent, f"{name} text differs from structured content")
    print(f"ok {name}", flush=True)
    return result.structuredContent


async def main():
    pyro_bin, project, export_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    params = StdioServerParameters(
        command=pyro_bin,
        args=["mcp", "serve", "--mode", "repro-fix", "--environment", "debian:12-base"],
        env=dict(os.environ),
        cwd=project,
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check("repro-fix" in (init.instructions or ""), "instructions name the mode")
            tools = {t.name: t for t in (await session.list_tools()).tools}
            check("workspace_summary" in tools and "vm_run" not in tools, f"mode tools {sorted(tools)}")
            check("Git-tracked files of the project" in tools["workspace_create"].description,
                  tools["workspace_create"].description)
            # 1. Create from the project: no seed_path, no environment (server default).
            ws = await ok(session, "workspace_create", {"name": "repro"})
            wid = ws["workspace_id"]
            check(ws["execution_mode"] == "guest", f"execution_mode {ws['execution_mode']}")
            check(ws["environment"] == "debian:12-base", ws["environment"])
            check(ws["workspace_seed"]["origin_kind"] == "project_path", ws["workspace_seed"])
            listing = await ok(session, "workspace_exec", {"workspace_id": wid, "command": "find . -type f | sort"})
            check(listing["stdout"].split() == ["./.gitignore", "./check.sh", "./src/answer.txt"],
                  f"only tracked files: {listing['stdout']!r}")
            # 2. Reproduce the failure.
            fail = await ok(session, "workspace_exec", {"workspace_id": wid, "command": "sh check.sh"})
            check(fail["exit_code"] == 1 and "want 42" in fail["stdout"], f"failing run {fail}")
            # 3. Read, patch, rerun.
            answer = await ok(session, "workspace_file_read", {"workspace_id": wid, "path": "src/answer.txt"})
            check(answer["content"] == "41\n", answer["content"])
            patch = "--- a/src/answer.txt\n+++ b/src/answer.txt\n@@ -1 +1 @@\n-41\n+42\n"
            await ok(session, "workspace_patch_apply", {"workspace_id": wid, "patch": patch})
            fixed = await ok(session, "workspace_exec", {"workspace_id": wid, "command": "sh check.sh"})
            check(fixed["exit_code"] == 0, f"fixed run {fixed}")
            # 4. Diff, summary, export.
            diff = await ok(session, "workspace_diff", {"workspace_id": wid})
            check([e["path"] for e in diff["entries"]] == ["src/answer.txt"], f"diff {diff['entries']}")
            check("+42" in diff["patch"], diff["patch"])
            summary = await ok(session, "workspace_summary", {"workspace_id": wid})
            check(summary["outcome"] == "passed" and summary["failed_command_count"] == 1, summary)
            check(summary["origin_kind"] == "project_path", summary["origin_kind"])
            check("modified src/answer.txt" in summary["text"], summary["text"])
            out = os.path.join(export_dir, "answer.txt")
            await ok(session, "workspace_export", {"workspace_id": wid, "path": "src/answer.txt", "output_path": out})
            with open(out) as f:
                check(f.read() == "42\n", "exported fix")
            # 5. Reset is the retry: back to the project's content.
            await ok(session, "workspace_reset", {"workspace_id": wid})
            again = await ok(session, "workspace_file_read", {"workspace_id": wid, "path": "src/answer.txt"})
            check(again["content"] == "41\n", "reset restores the project")
            summary = await ok(session, "workspace_summary", {"workspace_id": wid})
            check(summary["since"] == "reset" and summary["command_count"] == 0, summary)
            await ok(session, "workspace_delete", {"workspace_id": wid})
            print("ok recipe repro-fix", flush=True)


asyncio.run(main())
