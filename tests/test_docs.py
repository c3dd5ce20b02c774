"""The documentation agrees with the code it describes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

from relay.config import Config, Discovery, District, V2Client, WebhookEndpoint

ROOT = Path(__file__).resolve().parents[1]


def documented_keys() -> dict[str, str]:
    """``key -> default`` from the table in docs/configuration.md."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9_.\[\]]+)` \| ([^|]+) \|", text, flags=re.MULTILINE)
    return {key: default.strip() for key, default in rows}


def code_keys() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section in msgspec.structs.fields(Config):
        for field in msgspec.structs.fields(section.type):
            out[f"{section.name}.{field.name}"] = field
    for field in msgspec.structs.fields(District):
        out[f"clever.districts[].{field.name}"] = field
    for field in msgspec.structs.fields(WebhookEndpoint):
        out[f"webhooks.endpoints[].{field.name}"] = field
    for field in msgspec.structs.fields(V2Client):
        out[f"v2api.clients[].{field.name}"] = field
    for field in msgspec.structs.fields(Discovery):
        out[f"clever.discovery.{field.name}"] = field
    return out


def default_of(field: Any) -> Any:
    if field.default is not msgspec.NODEFAULT:
        return field.default
    if field.default_factory is not msgspec.NODEFAULT:
        return field.default_factory()
    return msgspec.NODEFAULT


class TestConfigurationDoc:
    def test_configuration_doc_lists_exactly_the_config_keys(self) -> None:
        """Every config key is documented, and nothing documented is missing from the code."""
        assert sorted(documented_keys()) == sorted(code_keys())

    def test_configuration_doc_defaults_match_the_code(self) -> None:
        """Each documented default is the code's default (TOML/JSON spelling)."""
        docs = documented_keys()
        for key, field in code_keys().items():
            default = default_of(field)
            shown = docs[key]
            if default is msgspec.NODEFAULT:
                assert shown == "required", key
            elif default is None:
                assert shown == "none", key
            elif key == "legacy.record_types":
                assert shown == "all ten"
                assert len(default) == 10
            else:
                assert shown == f"`{msgspec.json.encode(default).decode().replace(',', ', ')}`", key

    def test_example_config_mentions_every_key(self) -> None:
        """config.example.toml shows every key (the token alternatives in comments)."""
        text = (ROOT / "config.example.toml").read_text()
        for key in code_keys():
            if key in ("clever.districts", "webhooks.endpoints", "v2api.clients"):
                assert f"[[{key}]]" in text, key  # a table array, shown as [[...]]
                continue
            if key == "clever.discovery":
                assert re.search(r"^(# )?\[clever\.discovery\]$", text, flags=re.MULTILINE), key
                continue
            name = key.rsplit(".", 1)[-1]
            if name in (
                "token",
                "token_file",
                "secret",
                "secret_file",
                "client_id",
                "client_id_file",
                "client_secret",
                "client_secret_file",
            ):
                assert name in text, key
                continue
            # The webhook example is commented out: webhooks are off by default.
            assert re.search(rf"^(# )?{re.escape(name)} = ", text, flags=re.MULTILINE), key


class TestInstallCommands:
    """The README's commands are what CI runs, and they install the tested versions."""

    def test_ci_runs_the_readme_test_command_verbatim(self) -> None:
        """The README's test command appears, character for character, in ``.ci/run``."""
        readme = (ROOT / "README.md").read_text()
        command = next(
            line for line in readme.splitlines() if line.endswith(".venv/bin/python -m pytest")
        )
        assert command in (ROOT / ".ci" / "run").read_text()

    def test_readme_installs_use_the_constraints_file(self) -> None:
        """Both README install commands pin to ``constraints.txt``, which pins every package."""
        readme = (ROOT / "README.md").read_text()
        installs = [line for line in readme.splitlines() if "pip install" in line]
        assert [("-c constraints.txt" in line) for line in installs] == [True, True]
        pins = [
            line
            for line in (ROOT / "constraints.txt").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert [line for line in pins if "==" not in line or "clever" in line] == []


class TestStandsAlone:
    def test_no_user_facing_text_cites_documents_users_do_not_have(self) -> None:
        """Code, docs and examples cite the project's own docs, never the team's external notes."""
        pattern = re.compile(r"CONTRACT §|FACTS §|\.\./shared")
        roots = ["relay", "docs", "examples", "k8s", "bench", "README.md", "config.example.toml"]
        offenders = [
            f"{path.relative_to(ROOT)}:{n}"
            for root in roots
            for path in ([ROOT / root] if (ROOT / root).is_file() else (ROOT / root).rglob("*"))
            if path.is_file() and path.suffix in {".py", ".md", ".toml", ".yaml", ".yml", ".json"}
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if pattern.search(line)
        ]
        assert offenders == []
