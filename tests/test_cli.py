"""The command line: exit codes and one-line errors (CONTRACT §2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay.cli import build_parser, main
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
WH_SECRET = "whsec_Y2hlY2stY29uZmlnLXdlYmhvb2stc2VjcmV0LTAwMDE="
"""A valid signing secret (32 bytes once decoded)."""


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m relay`` as a user would, capturing its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


class TestCheckConfig:
    def test_check_config_example_with_token_set_exits_0(self) -> None:
        """The shipped example config is valid once its token variable is set."""
        result = run_cli(
            "check-config", "--config", "config.example.toml", env={"CLEVER_TOKEN_DEMO": "x"}
        )
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == ("config ok: 1 district(s), components poller, translator, http\n")

    def test_check_config_reports_both_problems_and_exits_2(self, tmp_path: Path) -> None:
        """page_limit = 20000 and an unknown key are both printed, one line each, exit 2."""
        path = tmp_path / "bad.toml"
        path.write_text(
            '[clever]\npage_limit = 20000\n[[clever.districts]]\nid = "d"\ntoken = "t"\n'
            "[redis]\nprefx = 'x'\n"
        )
        result = run_cli("check-config", "--config", str(path))
        assert result.returncode == 2
        assert sorted(result.stderr.splitlines()) == [
            "clever.page_limit: must be <= 10000",
            "redis.prefx: unknown key",
        ]

    def test_check_config_unset_token_variable_is_one_line(self) -> None:
        """An unset token_env variable is one clear line, not a traceback."""
        env = {k: v for k, v in os.environ.items() if k != "CLEVER_TOKEN_DEMO"}
        result = subprocess.run(
            [sys.executable, "-m", "relay", "check-config", "--config", "config.example.toml"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert (result.returncode, result.stderr) == (
            2,
            "clever.districts[5a0c91b95c7cc000010d417c].token_env: "
            "variable CLEVER_TOKEN_DEMO is unset\n",
        )

    def test_check_config_checks_webhook_secrets_and_v2_keys(self, tmp_path: Path) -> None:
        """Secrets of the enabled webhooks and v2api components are checked like tokens."""
        path = tmp_path / "relay.toml"
        path.write_text(
            '[relay]\ncomponents = ["webhooks", "v2api"]\n'
            '[[webhooks.endpoints]]\nname = "hook"\nurl = "http://h/"\ntopics = ["*"]\n'
            'secret_env = "CHECK_WH_SECRET"\n'
            '[[v2api.clients]]\nname = "lms"\ndistrict = "d"\ntoken_env = "CHECK_V2_KEY"\n'
        )
        env = {k: v for k, v in os.environ.items() if k not in ("CHECK_WH_SECRET", "CHECK_V2_KEY")}
        result = subprocess.run(
            [sys.executable, "-m", "relay", "check-config", "--config", str(path)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert (result.returncode, result.stderr.splitlines()) == (
            2,
            [
                "webhooks.endpoints[hook].secret_env: variable CHECK_WH_SECRET is unset",
                "v2api.clients[lms].token_env: variable CHECK_V2_KEY is unset",
            ],
        )
        ok = run_cli(
            "check-config",
            "--config",
            str(path),
            env={"CHECK_WH_SECRET": WH_SECRET, "CHECK_V2_KEY": "k" * 32},
        )
        assert (ok.returncode, ok.stdout) == (
            0,
            "config ok: 0 district(s), components webhooks, v2api\n",
        )
        weak = run_cli(
            "check-config",
            "--config",
            str(path),
            env={"CHECK_WH_SECRET": "whsec_YQ==", "CHECK_V2_KEY": "a"},
        )
        assert (weak.returncode, weak.stderr.splitlines()) == (
            2,
            [
                "webhooks.endpoints[hook]: a secret decodes to 1 bytes; 24 to 64 are required",
                "v2api.clients[lms]: key too short (1 characters, at least 32)",
            ],
        )

    def test_check_config_uses_relay_config_variable(self) -> None:
        """RELAY_CONFIG stands in for --config."""
        result = run_cli(
            "check-config", env={"RELAY_CONFIG": "config.example.toml", "CLEVER_TOKEN_DEMO": "x"}
        )
        assert result.returncode == 0

    def test_check_config_without_any_config_is_usage_error(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No --config and no RELAY_CONFIG: exit 2 with one line."""
        monkeypatch.delenv("RELAY_CONFIG", raising=False)
        assert main(["check-config"]) == 2
        assert (
            capsys.readouterr().err == "clever-relay: --config PATH (or RELAY_CONFIG) is required\n"
        )


class TestDebugFlag:
    def test_debug_flag_is_accepted_after_the_command(self) -> None:
        """--debug is accepted after the (sub)command as well as before it."""
        args = ["--config", "nonexistent.toml"]
        assert build_parser().parse_args(["run", *args, "--debug"]).debug is True
        assert build_parser().parse_args(["--debug", "run", *args]).debug is True
        assert build_parser().parse_args(["run", *args]).debug is False
        nested = ["webhooks", "list", *args, "--endpoint", "e", "--debug"]
        assert build_parser().parse_args(nested).debug is True


class TestSchema:
    def test_schema_events_prints_the_normalized_message_schema(self) -> None:
        """`clever-relay schema events` prints a JSON Schema naming every message field."""
        result = run_cli("schema", "events")
        schema = json.loads(result.stdout)
        props = schema["$defs"]["EventMessage"]["properties"]
        assert sorted(props) == sorted(
            [
                "id",
                "type",
                "record_type",
                "action",
                "district",
                "created",
                "object",
                "previous_attributes",
                "roles",
                "api_version",
            ]
        )


class TestWebhooksCommands:
    def _config(self, tmp_path: Path, redis_url: str) -> Path:
        path = tmp_path / "hooks.toml"
        path.write_text(
            '[relay]\ncomponents = ["webhooks"]\n'
            f'[redis]\nurl = "{redis_url}"\nprefix = "clitest"\n'
            '[[webhooks.endpoints]]\nname = "roster"\nurl = "http://127.0.0.1:9/hook"\n'
            f'topics = ["students.*"]\nsecret = "{WH_SECRET}"\n'
        )
        return path

    def test_webhooks_list_replay_purge_on_empty_dead_letters(
        self, tmp_path: Path, redis_server: RedisServer
    ) -> None:
        """With no dead letters: list prints nothing, replay and purge report zero."""
        path = str(self._config(tmp_path, redis_server.url))
        listed = run_cli("webhooks", "list", "--config", path, "--endpoint", "roster")
        replayed = run_cli("webhooks", "replay", "--config", path, "--endpoint", "roster")
        purged = run_cli("webhooks", "purge", "--config", path, "--endpoint", "roster")
        assert (listed.returncode, listed.stdout) == (0, "")
        assert (replayed.returncode, replayed.stdout) == (
            0,
            "roster: 0 dead letter(s) queued for delivery again\n",
        )
        assert (purged.returncode, purged.stdout) == (0, "roster: 0 dead letter(s) deleted\n")

    def test_webhooks_unknown_endpoint_exits_2(
        self, tmp_path: Path, redis_server: RedisServer
    ) -> None:
        """Naming an endpoint the config does not have is a usage error."""
        path = str(self._config(tmp_path, redis_server.url))
        result = run_cli("webhooks", "list", "--config", path, "--endpoint", "nope")
        assert result.returncode == 2
        assert len(result.stderr.splitlines()) == 1
        assert "nope" in result.stderr


class TestRuntimeErrors:
    def test_redis_down_is_one_line_and_exit_1(self, tmp_path: Path) -> None:
        """A command that cannot reach Redis prints one line, no traceback, and exits 1."""
        path = tmp_path / "dead.toml"
        path.write_text(
            '[relay]\ncomponents = ["translator"]\n[redis]\nurl = "redis://127.0.0.1:1/0"\n'
            '[[clever.districts]]\nid = "d1"\ntoken = "t"\n'
        )
        result = run_cli("cursor", "show", "--config", str(path))
        assert result.returncode == 1
        assert result.stderr.startswith("clever-relay: ConnectionError: ")
        assert len(result.stderr.splitlines()) == 1
        assert "Traceback" not in result.stderr
