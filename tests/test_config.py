"""Configuration loading, validation and environment overrides (CONTRACT §3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import (
    ALL_RECORD_TYPES,
    CleverSection,
    Config,
    District,
    WebhookEndpoint,
    load_config,
)
from relay.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = '[[clever.districts]]\nid = "d1"\ntoken = "t"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relay.toml"
    path.write_text(text)
    return path


def problems_of(path: Path | None, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    return info.value.problems


class TestLoadConfig:
    def test_load_config_minimal_file_gets_documented_defaults(self, tmp_path: Path) -> None:
        """A file with one district gets every other value from the contract's defaults."""
        cfg = load_config(write(tmp_path, MINIMAL), environ={})
        assert cfg.relay.components == ["poller", "translator", "http"]
        assert (cfg.clever.base_url, cfg.clever.page_limit, cfg.clever.poll_interval_s) == (
            "https://api.clever.com",
            1000,
            5.0,
        )
        assert (cfg.redis.url, cfg.redis.prefix) == ("redis://127.0.0.1:6379/0", "clever")
        assert cfg.legacy.record_types == list(ALL_RECORD_TYPES)
        assert (cfg.http.host, cfg.http.port) == ("0.0.0.0", 8080)
        assert (cfg.log.level, cfg.log.format) == ("info", "json")
        assert cfg.clever.districts == [District(id="d1", token="t")]

    def test_load_config_example_file_is_valid(self) -> None:
        """config.example.toml at the top of the repository passes validation."""
        cfg = load_config(ROOT / "config.example.toml", environ={})
        assert cfg.clever.districts[0].token_env == "CLEVER_TOKEN_DEMO"

    def test_load_config_reports_every_problem_naming_its_key(self, tmp_path: Path) -> None:
        """Several problems in one file are all reported, one line each, naming the key."""
        text = (
            "[clever]\npage_limit = 20000\ntypo = 1\npoll_interval_s = 0\n"
            '[[clever.districts]]\nid = "d1"\ntoken = "t"\n[http]\nport = 70000\n[bogus]\nx = 1\n'
        )
        assert sorted(problems_of(write(tmp_path, text))) == [
            "bogus: unknown key",
            "clever.page_limit: must be <= 10000",
            "clever.poll_interval_s: must be > 0.0",
            "clever.typo: unknown key",
            "http.port: must be <= 65535",
        ]

    def test_load_config_missing_file_is_one_line(self, tmp_path: Path) -> None:
        """A missing file is one clear problem, not a traceback."""
        assert problems_of(tmp_path / "nope.toml") == [f"{tmp_path / 'nope.toml'}: no such file"]

    def test_load_config_toml_syntax_error_names_the_line(self, tmp_path: Path) -> None:
        """A TOML syntax error is reported with its line number."""
        path = write(tmp_path, "x = 1\n[clever\n")
        assert problems_of(path) == [
            f"{path}: invalid TOML: Expected ']' at the end of a table declaration "
            "(at line 2, column 8)"
        ]

    def test_load_config_token_sources_exactly_one(self, tmp_path: Path) -> None:
        """A district needs exactly one of token, token_env and token_file."""
        text = (
            '[[clever.districts]]\nid = "d1"\ntoken = "t"\ntoken_env = "E"\n'
            '[[clever.districts]]\nid = "d2"\n'
        )
        assert problems_of(write(tmp_path, text)) == [
            "clever.districts[0]: exactly one of token, token_env, token_file is required",
            "clever.districts[1]: exactly one of token, token_env, token_file is required",
        ]

    def test_load_config_semantic_rules(self, tmp_path: Path) -> None:
        """Duplicate district ids, bad start positions and malformed URLs are rejected."""
        text = (
            '[clever]\nbase_url = "ftp://x/path"\n[redis]\nurl = "http://localhost"\n'
            '[[clever.districts]]\nid = "d1"\ntoken = "t"\nstart = "yesterday"\n'
            '[[clever.districts]]\nid = "d1"\ntoken = "t"\n'
        )
        assert problems_of(write(tmp_path, text)) == [
            "clever.base_url: must be scheme://host[:port] with no path",
            "redis.url: must be a redis://, rediss:// or unix:// URL",
            "clever.districts[0].start: must be latest, earliest or a 24-hex Clever event id",
            "clever.districts[1].id: duplicate district id d1",
        ]

    def test_load_config_poller_needs_a_district(self, tmp_path: Path) -> None:
        """Running the poller with no district is an error; a translator-only process is fine."""
        assert problems_of(write(tmp_path, "")) == [
            "clever.districts: at least one district (or [clever.discovery]) is required "
            "to run the poller"
        ]
        cfg = load_config(write(tmp_path, '[relay]\ncomponents = ["translator"]\n'), environ={})
        assert cfg.clever.districts == []


class TestDiscovery:
    def test_discovery_alone_runs_the_poller_with_documented_defaults(self, tmp_path: Path) -> None:
        """A discovery table with one source per credential is enough to run the poller."""
        text = '[clever.discovery]\nclient_id = "app"\nclient_secret_env = "APP_SECRET"\n'
        cfg = load_config(write(tmp_path, text), environ={})
        discovery = cfg.clever.discovery
        assert discovery is not None
        assert (discovery.oauth_base_url, discovery.interval_s, discovery.onboard) == (
            "https://clever.com",
            300.0,
            "sync",
        )
        assert discovery.max_onboarding == 4

    def test_discovery_rules_name_each_key(self, tmp_path: Path) -> None:
        """Two id sources, no secret source, a URL with a path and a bad mode are each named."""
        text = (
            '[clever.discovery]\nclient_id = "a"\nclient_id_env = "B"\n'
            'oauth_base_url = "https://clever.com/oauth"\nonboard = "later"\n'
        )
        assert problems_of(write(tmp_path, text)) == [
            "clever.discovery.onboard: invalid value 'later'",
        ]
        text = text.replace('onboard = "later"\n', "")
        assert problems_of(write(tmp_path, text)) == [
            "clever.discovery: exactly one of client_id, client_id_env, client_id_file is required",
            "clever.discovery: exactly one of client_secret, client_secret_env, "
            "client_secret_file is required",
            "clever.discovery.oauth_base_url: must be scheme://host[:port] with no path",
        ]

    def test_sync_onboarding_is_refused_on_a_cluster(self, tmp_path: Path) -> None:
        """onboard = "sync" with Redis Cluster is a config error naming the key."""
        text = (
            '[redis]\ncluster = true\nprefix = "{c}"\n'
            '[clever.discovery]\nclient_id = "a"\nclient_secret = "b"\n'
        )
        assert problems_of(write(tmp_path, text)) == [
            'clever.discovery.onboard: "sync" is not supported with redis.cluster = true yet '
            '(the Data API sync does not run on Redis Cluster); use "latest" or "earliest"'
        ]

    def test_credentials_resolve_and_never_show(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Credentials come from env and file; the repr and errors never show a value."""
        secret_file = tmp_path / "secret"
        secret_file.write_text("s3cr3t\n")
        text = (
            f'[clever.discovery]\nclient_id_env = "APP_ID"\nclient_secret_file = "{secret_file}"\n'
        )
        cfg = load_config(write(tmp_path, text), environ={})
        discovery = cfg.clever.discovery
        assert discovery is not None
        monkeypatch.setenv("APP_ID", "app-1")
        assert discovery.resolve_credentials() == ("app-1", "s3cr3t")
        assert "s3cr3t" not in repr(discovery)
        monkeypatch.delenv("APP_ID")
        with pytest.raises(ConfigError) as err:
            discovery.resolve_credentials()
        assert err.value.problems == ["clever.discovery.client_id_env: variable APP_ID is unset"]


class TestEnvOverrides:
    def test_env_override_replaces_and_types_values(self, tmp_path: Path) -> None:
        """RELAY__SECTION__KEY overrides the file, parsed as a TOML value when it is one."""
        env = {
            "RELAY__REDIS__URL": "redis://redis:6380/1",
            "RELAY__CLEVER__PAGE_LIMIT": "500",
            "RELAY__RELAY__COMPONENTS": '["poller"]',
            "RELAY__CLEVER__DISTRICTS__0__START": "earliest",
            "UNRELATED": "x",
        }
        cfg = load_config(write(tmp_path, MINIMAL), environ=env)
        assert cfg.redis.url == "redis://redis:6380/1"
        assert cfg.clever.page_limit == 500
        assert cfg.relay.components == ["poller"]
        assert cfg.clever.districts[0].start == "earliest"

    def test_env_override_bad_values_are_reported_like_file_values(self, tmp_path: Path) -> None:
        """An override with a wrong type or value is reported against its key."""
        env = {"RELAY__CLEVER__PAGE_LIMIT": "lots", "RELAY__LOG__LEVEL": "loud"}
        assert problems_of(write(tmp_path, MINIMAL), env) == [
            "clever.page_limit: must be int, got str",
            "log.level: invalid value 'loud'",
        ]

    def test_env_override_that_cannot_apply_is_reported(self, tmp_path: Path) -> None:
        """An override into a scalar, an unindexed array or an empty key part is an error."""
        env = {
            "RELAY__REDIS__URL__HOST": "x",
            "RELAY__CLEVER__DISTRICTS__TOKEN_ENV": "T",
            "RELAY__LOG__": "debug",
        }
        path = write(tmp_path, MINIMAL + '[redis]\nurl = "redis://h:6379/0"\n')
        assert problems_of(path, env) == [
            "RELAY__CLEVER__DISTRICTS__TOKEN_ENV: clever.districts is an array of tables: "
            "address an entry by index",
            "RELAY__LOG__: empty key part",
            "RELAY__REDIS__URL__HOST: redis.url is not a table",
        ]

    def test_env_override_can_add_a_district_absent_from_the_file(self) -> None:
        """RELAY__CLEVER__DISTRICTS__0__... creates the array when the file has none."""
        env = {"RELAY__CLEVER__DISTRICTS__0__ID": "d9", "RELAY__CLEVER__DISTRICTS__0__TOKEN": "t"}
        cfg = load_config(None, defaults={}, environ=env)
        assert cfg.clever.districts == [District(id="d9", token="t")]

    def test_env_override_without_file_uses_defaults(self) -> None:
        """The demo's built-in defaults honour the same overrides."""
        defaults = {"clever": {"districts": [{"id": "d", "token": "t"}]}}
        cfg = load_config(None, defaults=defaults, environ={"RELAY__REDIS__PREFIX": "{demo}"})
        assert cfg.redis.prefix == "{demo}"


class TestDistrictToken:
    def test_resolve_token_from_env_and_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Tokens come from the environment or a file (trailing newline stripped)."""
        monkeypatch.setenv("TOKEN_X", "from-env")
        (tmp_path / "tok").write_text("from-file\n")
        assert District(id="a", token_env="TOKEN_X").resolve_token() == "from-env"
        assert District(id="a", token_file=str(tmp_path / "tok")).resolve_token() == "from-file"

    def test_resolve_token_unset_variable_is_one_line(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An unset token variable names the key and the variable."""
        monkeypatch.delenv("TOKEN_MISSING", raising=False)
        with pytest.raises(ConfigError) as info:
            District(id="a", token_env="TOKEN_MISSING").resolve_token()
        assert info.value.problems == [
            "clever.districts[a].token_env: variable TOKEN_MISSING is unset"
        ]

    def test_district_repr_hides_the_token(self) -> None:
        """A district printed anywhere never shows its token."""
        district = District(id="a", token="super-secret-token")
        assert repr(district) == "District(id='a')"
        assert "super-secret-token" not in repr(Config(clever=CleverSection(districts=[district])))


ROTATION = [
    "whsec_cm90YXRpb24tc2VjcmV0LW51bWJlci1vbmUtMDAwMQ==",
    "whsec_cm90YXRpb24tc2VjcmV0LW51bWJlci10d28tMDAwMg==",
]
"""Two valid signing secrets (31 bytes each once decoded)."""


class TestWebhookSecrets:
    def test_resolve_secrets_accepts_rotation_pair(self) -> None:
        """Two valid whsec_ secrets, space-separated, are both returned."""
        endpoint = WebhookEndpoint(
            name="e", url="http://h/", topics=["*"], secret=f"{ROTATION[0]} {ROTATION[1]}"
        )
        assert endpoint.resolve_secrets() == ROTATION

    def test_resolve_secrets_rejects_undecodable_base64(self) -> None:
        """A secret shaped like whsec_<base64> that does not decode is a config error."""
        endpoint = WebhookEndpoint(name="e", url="http://h/", topics=["*"], secret="whsec_abc")
        with pytest.raises(ConfigError) as info:
            endpoint.resolve_secrets()
        assert info.value.problems == [
            "webhooks.endpoints[e]: secrets must be whsec_<base64>, space-separated"
        ]

    @pytest.mark.parametrize(
        ("secret", "size"),
        [
            ("whsec_YQ==", 1),
            ("whsec_c2hvcnQtc2VjcmV0LTIzLWJ5dGVzISE=", 23),
            ("whsec_" + "eHh4" * 21 + "eHg=", 65),
        ],
    )
    def test_resolve_secrets_rejects_weak_or_oversized_secrets(
        self, secret: str, size: int
    ) -> None:
        """A secret decoding to fewer than 24 or more than 64 bytes is refused, naming the key."""
        endpoint = WebhookEndpoint(name="e", url="http://h/", topics=["*"], secret=secret)
        with pytest.raises(ConfigError) as info:
            endpoint.resolve_secrets()
        assert info.value.problems == [
            f"webhooks.endpoints[e]: a secret decodes to {size} bytes; 24 to 64 are required"
        ]
