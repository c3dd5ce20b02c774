"""Every shell block in README.md and docs/ runs as written, or says why it cannot.

A block preceded by ``<!-- runnable -->`` is executed with bash from the repository root, with
this venv's ``clever-relay`` on the PATH, ``REDIS_URL`` pointing at the test session's private
Redis and ``redis-cli`` wrapped to use it, so documented commands never touch a real Redis. A
block preceded by ``<!-- not runnable: <reason> -->`` is skipped for that stated reason (it
needs a cluster, a placeholder value, or is what CI already runs verbatim).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"(?:[ \t]*<!-- (?P<marker>runnable|not runnable: [^>]+) -->\n)?"
    r"[ \t]*```(?:sh|bash|shell)\n(?P<body>.*?)```",
    flags=re.DOTALL,
)


def blocks() -> list[tuple[str, str | None, str]]:
    """(where, marker, body) of every shell block."""
    out = []
    for path in DOCS:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("body"))
            out.append((f"{path.name}:{line}", match.group("marker"), match.group("body")))
    return out


class TestDocCommands:
    @pytest.mark.parametrize(("where", "marker", "body"), blocks(), ids=lambda v: str(v)[:40])
    def test_doc_shell_block_runs_or_says_why_not(
        self, where: str, marker: str | None, body: str, redis_server: RedisServer
    ) -> None:
        """A runnable block exits 0; any other block names why it is not run."""
        assert marker is not None, f"{where}: mark the block <!-- runnable --> or say why not"
        if marker != "runnable":
            return
        prelude = (
            f'redis-cli() {{ command redis-cli -u "{redis_server.url}" "$@"; }}\n'
            "set -euo pipefail\n"
        )
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "REDIS_URL": redis_server.url,
            "CLEVER_TOKEN_DEMO": "doc-test-token",
        }
        result = subprocess.run(
            ["bash", "-c", prelude + body.replace('-u "$REDIS_URL" ', "")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{where}:\n{result.stdout}\n{result.stderr}"
