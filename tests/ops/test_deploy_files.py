"""The committed deployment files are valid for the tools that read them, offline.

Prometheus config and alert rules through ``promtool`` (including the rules' unit tests), the
Kubernetes manifests against the Kubernetes JSON schemas bundled by ``kubernetes-validate``,
the compose file through ``docker compose config``, and the dashboard against our metrics.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from app.config import Settings
from app.metrics import Metrics
from tests.ops.conftest import DEPLOY, REPO, tool

PROMETHEUS = DEPLOY / "prometheus"
K8S = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "mediagate.json"
DOCUMENTED_METRICS = {
    "mediagate_http_requests_total",
    "mediagate_http_request_duration_seconds",
    "mediagate_jobs_total",
    "mediagate_job_duration_seconds",
    "mediagate_jobs_in_flight",
    "mediagate_queue_depth",
    "mediagate_upstream_requests_total",
    "mediagate_upstream_request_duration_seconds",
    "mediagate_credits_charged_total",
    "mediagate_upstream_spend_total",
    "mediagate_cache_lookups_total",
    "mediagate_cache_upstream_saved_total",
    "mediagate_rate_limited_total",
    "mediagate_circuit_state",
    "mediagate_fallbacks_total",
}
"""docs/metrics.md, word for word."""


def _promtool(*args: str) -> str:
    done = subprocess.run(
        [tool("promtool"), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_alert_rules_pass_promtool_check_rules() -> None:
    out = _promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in out


def test_scrape_config_passes_promtool_check_config() -> None:
    out = _promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in out


def test_alerts_fire_on_the_trouble_they_name() -> None:
    """``alerts.test.yml``: each alert fires on its trouble and stays quiet otherwise."""
    _promtool("test", "rules", "alerts.test.yml")
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "alerts.test.yml").read_text()))
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"]}
    assert alerts == tested, f"alerts without a unit test: {alerts - tested}"
    assert {
        "MediagateUpstreamErrorRateHigh",
        "MediagateQueueGrowing",
        "MediagateCircuitOpen",
        "MediagateRedisDown",
    } <= alerts


def _metric_names(text: str) -> set[str]:
    names = set(re.findall(r"\bmediagate_[a-z_]+", text))
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in names}


def test_dashboards_and_alerts_use_only_metrics_that_exist() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    exported = {family.name for family in registry.collect()}
    # Counters are registered under the name without _total.
    exported |= {f"{name}_total" for name in exported}
    assert DOCUMENTED_METRICS <= exported
    used = _metric_names(DASHBOARD.read_text()) | _metric_names(
        (PROMETHEUS / "alerts.yml").read_text()
    )
    assert used <= exported, f"unknown metrics: {used - exported}"
    # Every §2.6 metric is on the dashboard.
    assert _metric_names(DASHBOARD.read_text()) >= DOCUMENTED_METRICS


def _panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        out.append(item)
        out.extend(_panels(item.get("panels", [])))
    return out


def test_dashboard_panels_are_complete_and_provisioned() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in _panels(dashboard["panels"]) if p["type"] != "row"]
    assert len({p["id"] for p in _panels(dashboard["panels"])}) == len(_panels(dashboard["panels"]))
    for panel in panels:
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for wanted in (
        "requests/s by route",
        "errors/s by route",
        "jobs/s by status",
        "job duration p50 / p95",
        "upstream latency",
        "upstream error rate",
        "queue depth",
        "jobs in flight",
        "credits charged per minute",
        "upstream spend per minute",
        "result cache hits and misses",
        "rate-limit rejections",
        "circuit state",
        "fallbacks",
    ):
        assert wanted in titles, wanted

    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"]
    providers = yaml.safe_load((provisioning / "dashboards" / "mediagate.yml").read_text())
    (provider,) = providers["providers"]
    # docker-compose.yml mounts the dashboards where the provider looks.
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_kubernetes_manifests_validate_against_the_schemas() -> None:
    """Strict: unknown fields are errors too. The schemas ship with the package (no network)."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.latest_version()
    kinds = set()
    for path in sorted(K8S.glob("*.yaml")):
        for doc in _documents(path):
            if doc["kind"] == "Kustomization":
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {exc}")
            kinds.add(doc["kind"])
    assert {
        "Deployment",
        "Service",
        "ConfigMap",
        "Secret",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "StatefulSet",
    } <= kinds


def test_kubernetes_validation_is_not_a_rubber_stamp() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    (deployment,) = _documents(K8S / "worker.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def _container(path: Path, kind: str) -> dict[str, Any]:
    (doc,) = [d for d in _documents(path) if d["kind"] == kind]
    container: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    return container


def test_api_and_worker_probe_healthz_and_readyz_on_their_ports() -> None:
    api = _container(K8S / "api.yaml", "Deployment")
    worker = _container(K8S / "worker.yaml", "Deployment")
    for container, port in ((api, 8000), (worker, 9100)):
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert [p["containerPort"] for p in container["ports"]] == [port]
    assert api["args"][:2] == ["mediagate", "serve"]
    assert worker["args"] == ["mediagate", "worker"]
    redis = _container(K8S / "redis.yaml", "StatefulSet")
    assert redis["args"][redis["args"].index("--appendonly") + 1] == "yes"


def _known_setting(name: str) -> bool:
    """A field of ``Settings``, or a variable the CLI reads itself (``serve --processes``)."""
    field = name.removeprefix("MEDIAGATE_").split("__")[0].lower()
    cli = (REPO / "app" / "cli.py").read_text()
    return field in Settings.model_fields or f'os.environ.get("{name}"' in cli


def test_every_mediagate_variable_in_the_deploy_files_is_a_setting() -> None:
    files = [*K8S.glob("*.yaml"), REPO / "docker-compose.yml"]
    names = {n for f in files for n in re.findall(r"\bMEDIAGATE_[A-Z0-9_]+", f.read_text())}
    assert names, "no settings found"
    unknown = sorted(n for n in names if not _known_setting(n))
    assert not unknown, unknown


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    (kustomization,) = _documents(K8S / "kustomization.yaml")
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.template.yaml"}
    assert set(kustomization["resources"]) == files


def _compose_command() -> list[str]:
    """``docker compose`` (v2 plugin), else the standalone ``docker-compose``."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is not None:
        return [standalone]
    if docker is None:
        pytest.skip("docker is not installed")
    pytest.skip("docker has no compose plugin and docker-compose is not installed")


def test_docker_compose_accepts_the_compose_file() -> None:
    done = subprocess.run(
        [*_compose_command(), "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert {"gateway", "worker", "redis", "sandbox", "prometheus", "grafana"} <= set(
        compose["services"]
    )
    assert "--appendonly" in compose["services"]["redis"]["command"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in compose["services"]["prometheus"]["volumes"]


def test_compose_keeps_the_sandbox_on_its_internal_network() -> None:
    """No published port, only the internal network; its controls behind the admin token."""
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    sandbox = compose["services"]["sandbox"]
    assert "ports" not in sandbox
    assert sandbox["networks"] == ["providers"]
    assert compose["networks"]["providers"]["internal"] is True
    for name in ("gateway", "worker"):
        assert "providers" in compose["services"][name]["networks"]
    token = sandbox["environment"]["MEDIAGATE_ADMIN_TOKEN"]
    assert token == compose["services"]["gateway"]["environment"]["MEDIAGATE_ADMIN_TOKEN"]
    assert len(token) >= 32
    assert sandbox["environment"]["HEALTHCHECK_URL"].endswith("/_sandbox/healthz")


def test_no_pod_shares_a_disk_the_object_store_comes_from_the_secret() -> None:
    """Kubernetes without a ReadWriteMany volume: API and worker pods keep nothing on a shared
    disk; the object store's URL and credentials reach both from the Secret."""
    for path in K8S.glob("*.yaml"):
        assert "ReadWriteMany" not in path.read_text(), path.name
        assert not [d for d in _documents(path) if d["kind"] == "PersistentVolumeClaim"]
    secret = _documents(K8S / "secret.template.yaml")[0]["stringData"]
    assert secret["MEDIAGATE_BLOB_URL"].startswith("s3://")
    assert {"MEDIAGATE_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(
        secret
    )
    config = _documents(K8S / "configmap.yaml")[0]["data"]
    assert "MEDIAGATE_BLOB_URL" not in config and "AWS_SECRET_ACCESS_KEY" not in config
    for name in ("api.yaml", "worker.yaml"):
        (deployment,) = [d for d in _documents(K8S / name) if d["kind"] == "Deployment"]
        pod = deployment["spec"]["template"]["spec"]
        assert all("persistentVolumeClaim" not in v for v in pod["volumes"]), name
        sources = pod["containers"][0]["envFrom"]
        assert {"secretRef": {"name": "mediagate"}} in sources, name


def test_gateways_scale_on_cpu_and_workers_on_the_due_queue() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    exported = {family.name for family in registry.collect()}
    hpas = {d["metadata"]["name"]: d["spec"] for d in _documents(K8S / "hpa.yaml")}
    (api,) = hpas["mediagate-api"]["metrics"]
    assert api["type"] == "Resource" and api["resource"]["name"] == "cpu"
    (worker,) = hpas["mediagate-worker"]["metrics"]
    assert worker["type"] == "External"
    assert worker["external"]["metric"]["name"] == "mediagate_queue_depth"
    assert "mediagate_queue_depth" in exported
    assert hpas["mediagate-worker"]["scaleTargetRef"]["name"] == "mediagate-worker"


def test_compose_keeps_blobs_in_its_object_store() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    store = services["seaweedfs"]
    assert "-s3" in store["command"]
    config_mount = next(v for v in store["volumes"] if v.endswith(":ro"))
    identities = json.loads((REPO / config_mount.split(":")[0]).read_text())["identities"]
    (credentials,) = identities[0]["credentials"]
    for name in ("gateway", "worker"):
        env = services[name]["environment"]
        assert env["MEDIAGATE_BLOB_URL"].startswith("s3://"), name
        assert env["MEDIAGATE_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
            credentials["accessKey"],
            credentials["secretKey"],
        )
        assert "volumes" not in services[name], f"{name} mounts a disk"
        assert "seaweedfs" in services[name]["depends_on"]
