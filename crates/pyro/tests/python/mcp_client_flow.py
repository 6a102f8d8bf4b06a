"""Drive `pyro mcp serve` with the official Python MCP client (the `mcp` package).

Usage: mcp_client_flow.py PYRO_BIN PROFILE MODE
  MODE=list      check tools/list against the expected names given on stdin (one per line)
  MODE=flow      run a workspace-core flow (create, write, exec, diff, export, reset, delete)
Environment: PYRO_STATE_DIR, and whatever selects the backend (PYRO_BACKEND, ...).
FLOW_ALLOW_HOST_COMPAT=1 passes allow_host_compat to workspace_create.
Prints one line per step and exits non-zero on the first failed check.
"""
import asyncio
import json
import os
import sys
import tempfile

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def check(cond, message):
    if not cond:
        print(f"FAIL: {message}", flush=True)
        sys.exit(1)


async def call(session, name, args):
    result = await session.call_tool(name, args)
    text = "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
    return result, text


async def ok(session, name, args):
    result, text = await call(session, name, args)
    check(not result.isError, f"{name} failed: {text}")
    check(isinstance(result.structuredContent, dict), f"{name} has no structured content")
    check(json.loads(text) == result.structuredContent, f"{name} text differs from structured content")
    print(f"ok {name}", flush=True)
    return result.structuredContent


async def main():
    pyro_bin, profile, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    params = StdioServerParameters(
        command=pyro_bin, args=["mcp", "serve", "--no-project-source", "--profile", profile], env=dict(os.environ)
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(profile in (init.instructions or ""), "instructions name the profile")
            tools = await session.list_tools()
            names = [t.name for t in tools.tools]
            if mode == "list":
                expected = [line.strip() for line in sys.stdin if line.strip()]
                check(names == expected, f"tools/list {names} != {expected}")
                print(f"ok list {len(names)} tools", flush=True)
                return
            check("workspace_create" in names, "workspace_create listed")
            args = {"environment": os.environ.get("FLOW_ENVIRONMENT", "debian:12")}
            if os.environ.get("FLOW_ALLOW_HOST_COMPAT") == "1":
                args["allow_host_compat"] = True
            ws = await ok(session, "workspace_create", args)
            wid = ws["workspace_id"]
            expected_mode = os.environ.get("FLOW_EXPECT_MODE", "host_compat")
            check(ws["execution_mode"] == expected_mode, f"execution_mode {ws['execution_mode']}")
            await ok(session, "workspace_file_write", {"workspace_id": wid, "path": "note.txt", "text": "from python\n"})
            ex = await ok(session, "workspace_exec", {"workspace_id": wid, "command": "cat note.txt && uname -s"})
            check(ex["stdout"] == "from python\nLinux\n", f"exec stdout {ex['stdout']!r}")
            check(ex["exit_code"] == 0, "exit code 0")
            diff = await ok(session, "workspace_diff", {"workspace_id": wid})
            check(diff["changed"] and [e["path"] for e in diff["entries"]] == ["note.txt"], f"diff {diff}")
            check("+from python" in diff["patch"], "patch shows the line")
            out = os.path.join(tempfile.mkdtemp(), "note.txt")
            await ok(session, "workspace_export", {"workspace_id": wid, "path": "note.txt", "output_path": out})
            with open(out, "rb") as f:
                check(f.read() == b"from python\n", "export byte for byte")
            reset = await ok(session, "workspace_reset", {"workspace_id": wid})
            check(reset["reset_count"] == 1, "reset_count 1")
            diff = await ok(session, "workspace_diff", {"workspace_id": wid})
            check(not diff["changed"] and diff["entries"] == [], "diff empty after reset")
            result, text = await call(session, "workspace_file_read", {"workspace_id": wid, "path": "note.txt"})
            check(result.isError and "does not exist" in text, f"file gone after reset: {text}")
            await ok(session, "workspace_delete", {"workspace_id": wid})
            state = os.environ["PYRO_STATE_DIR"]
            check(not os.path.exists(os.path.join(state, "workspaces", wid)), "state dir entry gone")
            print("ok flow", flush=True)


asyncio.run(main())
