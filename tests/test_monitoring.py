"""Tests of k8s/monitoring/: alert rules (promtool), the PrometheusRule, the Grafana dashboard.

The rules are unit-tested by ``promtool test rules`` (Debian's ``prometheus`` package): every
alert fires on synthetic series and resolves. The PrometheusRule must carry exactly the groups
of the plain rule file, and every metric the rules and the dashboard query must exist in the
relay's ``/metrics``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from relay.config import validate
from relay.health import Health
from relay.ops.server import build_app
from relay.ops.status import StatusSource
from relay.webhooks import metrics as webhook_metrics

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from pytest_aiohttp import AiohttpClient

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "k8s" / "monitoring"
PROMTOOL = shutil.which("promtool")
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def load(name: str) -> Any:
    """One YAML file of k8s/monitoring/."""
    return yaml.safe_load((MONITORING / name).read_text())


def alerts() -> dict[str, dict[str, Any]]:
    """Every alert rule of the plain rule file, by name."""
    return {r["alert"]: r for g in load("rules.yaml")["groups"] for r in g["rules"]}


def dashboard_exprs() -> list[str]:
    """Every PromQL expression the Grafana dashboard runs."""
    board = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def queried_metrics(exprs: list[str]) -> set[str]:
    """The relay metric names used in PromQL expressions."""
    return {name for expr in exprs for name in re.findall(r"clever_relay_[a-z0-9_]+", expr)}


class TestPrometheusRule:
    def test_prometheusrule_carries_exactly_the_plain_rules(self) -> None:
        """The operator's PrometheusRule and the plain rule file hold the same groups."""
        rule = load("prometheusrule.yaml")
        assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
        assert rule["spec"]["groups"] == load("rules.yaml")["groups"]

    def test_prometheusrule_is_a_crd_the_schemas_do_not_know(self) -> None:
        """kubernetes-validate has no schema for the operator's CRD: checked above instead."""
        with pytest.raises(kubernetes_validate.SchemaNotFoundError):
            kubernetes_validate.validate(load("prometheusrule.yaml"), "1.30", strict=True)

    def test_every_alert_has_a_severity_and_a_summary(self) -> None:
        """Routing needs a severity, the person paged needs a summary."""
        assert [
            name
            for name, rule in alerts().items()
            if rule["labels"].get("severity") not in ("page", "warn")
            or not rule["annotations"].get("summary")
        ] == []

    def test_every_alert_fires_and_resolves_in_the_unit_tests(self) -> None:
        """rules.test.yaml checks each alert once firing and once resolved."""
        checks: dict[str, list[bool]] = {}
        for case in load("rules.test.yaml")["tests"]:
            for check in case["alert_rule_test"]:
                checks.setdefault(check["alertname"], []).append(bool(check["exp_alerts"]))
        assert {name: sorted(seen) for name, seen in checks.items()} == {
            name: [False, True] for name in alerts()
        }


@pytest.mark.promtool
@pytest.mark.skipif(PROMTOOL is None, reason="needs promtool (apt-get install prometheus)")
class TestPromtool:
    def test_promtool_checks_the_rules(self) -> None:
        """promtool accepts the rule file."""
        result = subprocess.run(
            [str(PROMTOOL), "check", "rules", "rules.yaml"],
            cwd=MONITORING,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (result.returncode, result.stdout.split()) == (
            0,
            ["Checking", "rules.yaml", "SUCCESS:", str(len(alerts())), "rules", "found"],
        )

    def test_promtool_unit_tests_fire_and_resolve_each_alert(self) -> None:
        """promtool test rules passes: every alert fires and resolves as written."""
        result = subprocess.run(
            [str(PROMTOOL), "test", "rules", "rules.test.yaml"],
            cwd=MONITORING,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert (result.returncode, result.stdout.split()) == (
            0,
            ["Unit", "Testing:", "rules.test.yaml", "SUCCESS"],
        ), result.stdout + result.stderr


class TestMetricsExist:
    async def test_rules_and_dashboard_query_only_exposed_metrics(
        self, aiohttp_client: AiohttpClient, redis_client: aioredis.Redis
    ) -> None:
        """Every metric the alerts and the dashboard query is a family served by /metrics."""
        cfg = validate({"redis": {"prefix": "mon"}, "relay": {"components": ["http"]}})
        health = Health()
        source = StatusSource(cfg=cfg, redis=redis_client, health=health)
        client = await aiohttp_client(
            build_app(cfg=cfg, redis=redis_client, health=health, status=source)
        )
        text = await (await client.get("/metrics")).text()
        families = {f.name for f in text_string_to_metric_families(text)}
        # The webhook component's metrics (imported above) are served on the same registry.
        assert webhook_metrics.BACKLOG._name in families
        exprs = dashboard_exprs() + [r["expr"] for r in alerts().values()]
        queried = queried_metrics(exprs)
        assert len(queried) >= 20
        missing = sorted(
            name
            for name in queried
            if name not in families and not any(name.removesuffix(s) in families for s in SUFFIXES)
        )
        assert missing == []
