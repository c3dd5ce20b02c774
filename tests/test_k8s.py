"""Tests of k8s/: manifests valid offline against the Kubernetes schemas and in step with code.

There is no cluster and no kustomize binary in CI, so the kustomization is rendered here the way
kustomize does it for what it uses (resources plus a file-based configMapGenerator).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from relay.config import Config, load_config
from relay.ops.server import PING_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
K8S_VERSION = "1.30"
CONFIG_PATH = "/etc/clever-relay/config.toml"
SERVICE_CANCEL_DEADLINE_S = 5.0
"""After shutdown_grace_s the service cancels stragglers and waits up to this long for them."""
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "configMapGenerator", "images"}
EXAMPLE_ONLY = {"secret.example.yaml"}


def load(name: str) -> dict[str, Any]:
    """One single-document manifest of k8s/."""
    document: dict[str, Any] = yaml.safe_load((K8S / name).read_text())
    return document


def kustomization() -> dict[str, Any]:
    """k8s/kustomization.yaml."""
    return load("kustomization.yaml")


def render() -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k k8s/`` would create (without the name hash)."""
    kustomize = kustomization()
    objects = [load(name) for name in kustomize["resources"]]
    for generator in kustomize["configMapGenerator"]:
        data = {}
        for entry in generator["files"]:
            key, _, source = entry.partition("=")
            data[key] = (K8S / source).read_text()
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    return objects


def by_kind(kind: str) -> dict[str, Any]:
    """The one rendered object of ``kind``."""
    (found,) = [o for o in render() if o["kind"] == kind]
    return found


def pod_spec() -> dict[str, Any]:
    """The Deployment's pod template spec."""
    spec: dict[str, Any] = by_kind("Deployment")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    """The relay container."""
    (relay,) = pod_spec()["containers"]
    assert isinstance(relay, dict)
    return relay


def secret_env() -> dict[str, str]:
    """The example Secret's keys, as the environment variables they become."""
    data: dict[str, str] = load("secret.example.yaml")["stringData"]
    return data


def k8s_config() -> Config:
    """The shipped config as a pod loads it: the ConfigMap file plus the Secret's overrides."""
    return load_config(K8S / "config.toml", environ=secret_env())


def labels_of_pods() -> dict[str, str]:
    """The labels every relay pod carries."""
    labels: dict[str, str] = by_kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


class TestManifests:
    """Every manifest is valid against the Kubernetes schemas, offline and strictly."""

    @pytest.mark.parametrize(
        "name", sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    )
    def test_manifests_validate_strictly(self, name: str) -> None:
        """Each manifest file passes strict schema validation (no unknown fields)."""
        for document in yaml.safe_load_all((K8S / name).read_text()):
            assert kubernetes_validate.validate(document, K8S_VERSION, strict=True) == K8S_VERSION

    def test_manifests_rendered_configmap_validates(self) -> None:
        """The ConfigMap kustomize generates is valid too."""
        configmap = by_kind("ConfigMap")
        assert kubernetes_validate.validate(configmap, K8S_VERSION, strict=True) == K8S_VERSION

    def test_manifests_kustomization_lists_every_manifest(self) -> None:
        """kustomization.yaml uses only known fields and applies every manifest but the example."""
        kustomize = kustomization()
        assert set(kustomize) <= KUSTOMIZATION_KEYS
        assert (kustomize["apiVersion"], kustomize["kind"]) == (
            "kustomize.config.k8s.io/v1beta1",
            "Kustomization",
        )
        files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"} - EXAMPLE_ONLY
        assert sorted(kustomize["resources"]) == sorted(files)
        assert kustomize["configMapGenerator"] == [
            {"name": "clever-relay-config", "files": ["config.toml=config.toml"]}
        ]
        assert [i["name"] for i in kustomize["images"]] == [container()["image"].partition(":")[0]]

    def test_manifests_selectors_match_the_pods(self) -> None:
        """Deployment, Service, PDB, NetworkPolicy and spread constraints select the relay pods."""
        pods = labels_of_pods()
        selectors = [
            by_kind("Deployment")["spec"]["selector"]["matchLabels"],
            by_kind("Service")["spec"]["selector"],
            by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
            by_kind("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
            *(c["labelSelector"]["matchLabels"] for c in pod_spec()["topologySpreadConstraints"]),
        ]
        for selector in selectors:
            assert selector.items() <= pods.items()


class TestConfigMap:
    """The ConfigMap carries the repository's example config, unchanged."""

    def test_configmap_is_the_example_config(self) -> None:
        """k8s/config.toml is identical to config.example.toml (copy it over after changes)."""
        assert (K8S / "config.toml").read_text() == (ROOT / "config.example.toml").read_text(), (
            "k8s/config.toml differs: cp config.example.toml k8s/config.toml"
        )

    def test_configmap_is_mounted_where_the_relay_reads_it(self) -> None:
        """The config volume lands at the --config path the container and the image use."""
        relay = container()
        assert relay["args"] == ["run", "--config", CONFIG_PATH]
        (mount,) = [m for m in relay["volumeMounts"] if m["name"] == "config"]
        (volume,) = [v for v in pod_spec()["volumes"] if v["name"] == "config"]
        assert volume["configMap"] == {
            "name": "clever-relay-config",
            "items": [{"key": "config.toml", "path": "config.toml"}],
        }
        assert (mount["mountPath"], mount["readOnly"]) == (str(Path(CONFIG_PATH).parent), True)
        assert "config.toml" in by_kind("ConfigMap")["data"]

    def test_configmap_config_loads_with_the_secret(self) -> None:
        """The shipped config plus the Secret's variables is a valid config for the relay."""
        cfg = k8s_config()
        assert cfg.redis.url == secret_env()["RELAY__REDIS__URL"]
        assert "http" in cfg.relay.components


class TestSecret:
    """Secrets come from a Secret as environment variables, and the example holds none."""

    def test_secret_provides_every_token_env(self) -> None:
        """Each district's token_env is a key of the Secret the container imports."""
        wanted = {d.token_env for d in k8s_config().clever.districts if d.token_env}
        assert wanted
        assert wanted <= set(secret_env())
        assert container()["envFrom"] == [{"secretRef": {"name": "clever-relay-secrets"}}]
        assert load("secret.example.yaml")["metadata"]["name"] == "clever-relay-secrets"

    def test_secret_example_holds_only_placeholders(self) -> None:
        """Every secret value in the example is a REPLACE_ placeholder."""
        for key, value in secret_env().items():
            if key.startswith("CLEVER_TOKEN"):
                assert re.fullmatch(r"REPLACE_[A-Z_]+", value), key
        password = urlsplit(secret_env()["RELAY__REDIS__URL"]).password
        assert password is not None
        assert password.startswith("REPLACE_")

    def test_secret_config_has_no_inline_tokens(self) -> None:
        """The ConfigMap's config names token sources, never tokens."""
        assert all(d.token is None for d in k8s_config().clever.districts)


class TestDeployment:
    """Probes, ports, grace period, resources and hardening agree with the code."""

    def test_deployment_ports_follow_the_config(self) -> None:
        """Container port, Service port, scrape annotations and policy use [http] port."""
        port = k8s_config().http.port
        assert container()["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        service = by_kind("Service")
        assert service["spec"]["ports"] == [
            {"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}
        ]
        assert service["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(port),
            "prometheus.io/path": "/metrics",
        }
        ingress = by_kind("NetworkPolicy")["spec"]["ingress"]
        assert ingress == [{"ports": [{"port": port, "protocol": "TCP"}]}]

    def test_deployment_probes_hit_the_ops_endpoints(self) -> None:
        """Startup and liveness use /healthz, readiness /readyz, with room for the Redis ping."""
        relay = container()
        paths = {
            probe: (relay[probe]["httpGet"]["path"], relay[probe]["httpGet"]["port"])
            for probe in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        assert paths == {
            "startupProbe": ("/healthz", "http"),
            "livenessProbe": ("/healthz", "http"),
            "readinessProbe": ("/readyz", "http"),
        }
        assert relay["readinessProbe"]["timeoutSeconds"] > PING_TIMEOUT_S

    def test_deployment_grace_outlasts_the_drain(self) -> None:
        """terminationGracePeriodSeconds exceeds shutdown_grace_s plus the cancel deadline."""
        grace_s = k8s_config().relay.shutdown_grace_s
        assert pod_spec()["terminationGracePeriodSeconds"] > grace_s + SERVICE_CANCEL_DEADLINE_S

    def test_deployment_sets_requests_and_limits(self) -> None:
        """CPU and memory have both requests and limits."""
        resources = container()["resources"]
        assert set(resources["requests"]) == {"cpu", "memory"}
        assert set(resources["limits"]) == {"cpu", "memory"}

    def test_deployment_is_hardened(self) -> None:
        """Non-root as the image's user, read-only root, no capabilities, no API token."""
        spec = pod_spec()
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["automountServiceAccountToken"] is False
        assert container()["securityContext"] == {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        dockerfile = (ROOT / "Dockerfile").read_text()
        assert "USER 10001:10001" in dockerfile

    def test_deployment_egress_is_dns_redis_and_https_only(self) -> None:
        """The NetworkPolicy lets out DNS, the Redis port of the configured URL, and HTTPS."""
        policy = by_kind("NetworkPolicy")["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        ports = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
        redis_port = urlsplit(k8s_config().redis.url).port or 6379
        assert ports == {(53, "UDP"), (53, "TCP"), (redis_port, "TCP"), (443, "TCP")}
        clever = urlsplit(k8s_config().clever.base_url)
        assert (clever.scheme, clever.port) == ("https", None)
