"""Dashboards and alerts: well-formed, labelled for the Grafana sidecar, and every metric
their PromQL reads is one a running Hearth exposes on /metrics (scraped here) or one of
the listed exporters' metrics."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hearth.config import Settings
from hearth.engine_server.app import create_engine_app
from tests._server import Running, running
from tests.deploy import _helm

# Metrics of the other exporters the dashboards and alerts read, with where they are listed.
EXTERNAL_METRICS = {
    # vLLM v0.11 V1 engine metrics (docs/design/metrics.md; vllm/v1/metrics/loggers.py)
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "vllm:kv_cache_usage_perc",
    "vllm:generation_tokens_total",
    "vllm:prompt_tokens_total",
    # NVIDIA dcgm-exporter default counters (etc/default-counters.csv)
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_POWER_USAGE",
    # kube-state-metrics (docs/metrics/workload/deployment-metrics.md, pod-metrics.md)
    "kube_deployment_status_replicas_available",
    "kube_pod_container_status_restarts_total",
    # KEDA operator (docs: operate/prometheus, keda_scaler_metrics_value)
    "keda_scaler_metrics_value",
    # Prometheus itself, per scrape target
    "up",
}

PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
}


_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
    "untyped": ("",),
}


def _exposed(text: str) -> set[str]:
    """Sample names a Prometheus text exposition declares (a labelled family with no
    children yet still has its # TYPE line)."""
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in _SUFFIXES[family.type]
    }


@pytest.fixture(scope="module")
def hearth_metrics(hearth: Running, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """What a running Hearth exposes on /metrics: `hearth serve`'s app (the suite's running
    Hearth, whose worker metrics are the same registry's) and a running `hearth engine`."""
    names = _exposed(httpx.get(f"{hearth.url}/metrics").text)
    settings = Settings(data_dir=tmp_path_factory.mktemp("engine-metrics"))
    with running(create_engine_app(settings)) as engine:
        names |= _exposed(httpx.get(f"{engine.url}/metrics").text)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords,
    label names (inside {} or by/without lists) or durations."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def _objects(kind: str) -> list[dict]:
    return [o for o in _helm.render_case("prod-aks") if o["kind"] == kind]


def _dashboards() -> dict[str, dict]:
    out = {}
    for cm in _objects("ConfigMap"):
        for key, text in cm["data"].items():
            out[f"{_helm.ident(cm)}:{key}"] = json.loads(text)
    return out


def test_dashboards_are_configmaps_for_the_grafana_sidecar() -> None:
    configmaps = _objects("ConfigMap")
    assert {c["metadata"]["name"] for c in configmaps} == {
        "hearth-dashboard-gateway",
        "hearth-dashboard-engines",
        "hearth-dashboard-gpus",
        "hearth-dashboard-documents",
    }
    for cm in configmaps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1", _helm.ident(cm)
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Hearth"}, _helm.ident(cm)


def test_dashboards_are_valid_with_unique_uids_and_queries() -> None:
    uids = set()
    for name, board in _dashboards().items():
        assert board["uid"] not in uids, name
        uids.add(board["uid"])
        assert board["panels"], name
        for panel in board["panels"]:
            assert panel["targets"], f"{name} panel {panel['title']!r}"
            assert all(t["expr"].strip() for t in panel["targets"]), f"{name} {panel['title']}"


def _expressions() -> dict[str, str]:
    out = {}
    for name, board in _dashboards().items():
        for panel in board["panels"]:
            for target in panel["targets"]:
                out[f"{name} / {panel['title']}"] = target["expr"]
    for rule in _objects("PrometheusRule"):
        for group in rule["spec"]["groups"]:
            for r in group["rules"]:
                out[f"{_helm.ident(rule)} / {r['alert']}"] = r["expr"]
    return out


def test_every_metric_queried_exists(hearth_metrics: set[str]) -> None:
    known = hearth_metrics | EXTERNAL_METRICS
    assert "hearth_gateway_requests_total" in known  # the scrape found Hearth's
    assert "hearth_engine_requests_waiting" in known
    for where, expr in _expressions().items():
        unknown = metric_names(expr) - known
        assert not unknown, f"{where}: {sorted(unknown)} in {expr!r}"


def test_the_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, model) (rate(x_bucket{a="b",c=~"d.*"}[5m])))'
        " / on (pod) vllm:y > 5 and up == 0"
    )
    assert metric_names(expr) == {"x_bucket", "vllm:y", "up"}


def test_alerts_cover_what_operators_page_for() -> None:
    alerts = {
        r["alert"]
        for o in _objects("PrometheusRule")
        for g in o["spec"]["groups"]
        for r in g["rules"]
    }
    assert alerts == {
        "HearthGatewayErrorRatio",
        "HearthTimeToFirstTokenHigh",
        "HearthDeploymentEjected",
        "HearthWebUnavailable",
        "HearthEngineDown",
        "HearthCrashLooping",
        "HearthGpuMemoryNearlyFull",
        "HearthJobQueueBacklog",
    }
    for rule in _objects("PrometheusRule"):
        for group in rule["spec"]["groups"]:
            for r in group["rules"]:
                assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
                assert r["annotations"]["summary"], r["alert"]


def test_monitors_scrape_every_component_with_metrics() -> None:
    objects = _helm.render_case("monitoring-on")
    monitors = {
        (o["kind"], o["metadata"]["name"]) for o in objects if o["kind"].endswith("Monitor")
    }
    assert monitors == {
        ("ServiceMonitor", "hearth-web"),
        ("PodMonitor", "hearth-worker"),
        ("ServiceMonitor", "hearth-engine-cpu"),
        ("ServiceMonitor", "hearth-dcgm-exporter"),
    }


@pytest.mark.parametrize("case", ["defaults", "prod-aks-monitoring-off"])
def test_monitoring_is_off_by_default_and_when_switched_off(case: str) -> None:
    kinds = {o["kind"] for o in _helm.render_case(case)}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"}, case


def test_engine_autoscaling_scales_on_the_engine_queue() -> None:
    scaled = {o["metadata"]["name"]: o for o in _objects("ScaledObject")}
    trigger = scaled["hearth-engine-llama-spot"]["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert metric_names(trigger["metadata"]["query"]) == {"vllm:num_requests_waiting"}
    assert scaled["hearth-engine-llama-spot"]["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    worker = scaled["hearth-worker"]["spec"]["triggers"][0]
    assert worker["type"] == "postgresql"
    assert "procrastinate_jobs" in worker["metadata"]["query"]
    assert "status = 'todo'" in worker["metadata"]["query"]
