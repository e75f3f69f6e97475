"""Render the Hearth chart in-process with Helm's own engine (helm-python-sdk: Helm v4's Go
SDK behind a C ABI), offline: no helm binary, no cluster, `lookup` returns nothing."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "hearth"
EXAMPLES = CHART / "examples"
RELEASE = "hearth"
NAMESPACE = "hearth"

# The values the tests render: every example file, plus inline variants of the defaults.
# name -> (values files, --set style overrides)
EXTERNAL_DB = {
    "postgresql.mode": "external",
    "postgresql.external.existingSecret": "hearth-database",
    "postgresql.external.egress": [{"cidr": "10.20.2.0/24", "ports": [5432]}],
    "redis.mode": "external",
    "redis.external.existingSecret": "hearth-redis-url",
    "redis.external.egress": [{"cidr": "10.20.3.0/24", "ports": [6380]}],
}
MONITORING_ON = {
    "monitoring.serviceMonitors.enabled": True,
    "monitoring.dashboards.enabled": True,
    "monitoring.prometheusRules.enabled": True,
    "monitoring.dcgmExporter.enabled": True,
    "worker.keda.enabled": True,
    "worker.keda.minReplicas": 2,
    "web.keda.enabled": True,
}
HTTP_ROUTE = {
    "httpRoute.enabled": True,
    "httpRoute.parentRefs": [{"name": "shared", "namespace": "gateway-system"}],
    "tls.mode": "certManager",
    "tls.certManager.issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt"},
}
INGRESS_EXISTING_TLS = {
    "ingress.enabled": True,
    "ingress.hosts": ["hearth.internal.example"],
    "tls.mode": "existingSecret",
    "tls.secretName": "hearth-tls",
    "hearth.env": {"HEARTH_RAG_CHUNK_TOKENS": 192, "HEARTH_SESSION_DAYS": 7},
    "hearth.secretEnv": [
        {"name": "HEARTH_OIDC_CLIENT_SECRET", "secretName": "oidc", "secretKey": "client-secret"}
    ],
}
EXTERNAL_ENGINE = {
    "engines[1]": {
        "name": "azure",
        "kind": "external",
        "url": "https://example.openai.azure.com/openai/v1",
        "apiKeySecret": {"name": "azure-openai", "key": "api-key"},
        "models": [
            {"name": "gpt-4o-mini"},
            {"name": "text-embedding-3-small", "type": "embedding"},
        ],
        "egress": [{"cidr": "20.0.0.0/8", "ports": [443]}],
    },
}
# Two benchmarks: one of this release's gateway with its key from a Secret, on spot nodes;
# one of an external target with its egress list.
BENCHMARKS = [
    {
        "name": "smollm2-sweep",
        "model": "smollm2-135m-instruct",
        "args": ["--stage", "sweep:3", "--requests", "50", "--output-tokens", "64"],
        "apiKey": {"secretName": "bench-key", "key": "api-key"},
        "nodeSelector": {"kubernetes.azure.com/scalesetpriority": "spot"},
        "tolerations": [
            {
                "key": "kubernetes.azure.com/scalesetpriority",
                "operator": "Equal",
                "value": "spot",
                "effect": "NoSchedule",
            }
        ],
    },
    {
        "name": "azure-mini",
        "model": "gpt-4o-mini",
        "target": "https://example.openai.azure.com/openai/v1",
        "apiKey": {"secretName": "azure-openai", "key": "api-key"},
        "egress": [{"cidr": "20.0.0.0/8", "ports": [443]}],
        "args": ["--stage", "concurrency:4", "--requests", "20"],
    },
]
LAB = {"lab.benchmarks": BENCHMARKS}
LAB_ARGO = LAB | {
    "lab.argo.enabled": True,
    "lab.argo.executorServiceAccountName": "argo-executor",
    "networkPolicy.benchExtraEgress": [
        {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"port": 443, "protocol": "TCP"}]}
    ],
}
CASES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "defaults": ((), {}),
    "dev-minikube": (("dev-minikube.yaml",), {}),
    "prod-aks": (("prod-aks.yaml",), {}),
    "ollama-gpu": (("ollama-gpu.yaml",), {}),
    "external-db": ((), EXTERNAL_DB | EXTERNAL_ENGINE),
    "cloudnative-pg": ((), {"postgresql.mode": "cloudnative-pg"}),
    "monitoring-on": ((), MONITORING_ON),
    "prod-aks-monitoring-off": (
        ("prod-aks.yaml",),
        {
            "monitoring.serviceMonitors.enabled": False,
            "monitoring.dashboards.enabled": False,
            "monitoring.prometheusRules.enabled": False,
            "engines[0].autoscaling.enabled": False,
        },
    ),
    "networkpolicies-off": ((), {"networkPolicy.enabled": False}),
    "one-web-no-redis": (
        (),
        {"redis.mode": "none", "web.replicas": 1, "web.autoscaling.enabled": False},
    ),
    "httproute": ((), HTTP_ROUTE),
    "ingress-existing-tls": ((), INGRESS_EXISTING_TLS),
    "lab-benchmarks": ((), LAB),
    "lab-benchmarks-external-db": ((), EXTERNAL_DB | LAB),
    "lab-argo": ((), LAB_ARGO),
}


@functools.cache
def chart() -> helm.Chart:
    """The chart, loaded once (a Chart is immutable and safe to share)."""
    return helm.Chart.load(CHART)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of several -f/--set inputs (pkg/cli/values mergeMaps): maps merge
    key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_set(values: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """One override: Helm's own --set-json parser turns `a.b[1].c` into the nested
    structure. Unlike `helm --set`, which replaces a list it indexes into (padding it with
    nulls), an index here updates that element of the list the values already hold — the
    files', else the chart's default — which is what a test means by `engines[0].spot`."""
    parsed = helm.parse_set_json(f"{path}={json.dumps(value)}")
    return _merge_indexed(values, parsed)


def _merge_indexed(base: Any, parsed: Any) -> Any:
    """Lay `parsed` over `base`: maps key by key, lists element by element (None: keep)."""
    if isinstance(base, dict) and isinstance(parsed, dict):
        out = dict(base)
        for key, value in parsed.items():
            out[key] = _merge_indexed(base.get(key), value)
        return out
    if isinstance(base, list) and isinstance(parsed, list):
        # the parser pads the list with nulls up to the index it sets
        out = list(base) + [None] * max(0, len(parsed) - len(base))
        for i, value in enumerate(parsed):
            if value is not None:
                out[i] = _merge_indexed(out[i], value)
        return out
    return parsed


def user_values(values_files: tuple[str, ...] = (), set: dict[str, Any] | None = None) -> dict:
    """The values a user passes: the files in order (relative names are examples/), then
    the overrides, with the chart's defaults under the lists that --set indexes into."""
    values: dict[str, Any] = {}
    for name in values_files:
        path = Path(name) if Path(name).is_absolute() else EXAMPLES / name
        values = _merge(values, helm.values_from_yaml(path.read_text()))
    if set:
        # --set into a list indexes the list the chart would use: the user's, else the default.
        defaults = chart().values
        for key, value in set.items():
            top = key.split(".")[0].split("[")[0]
            if "[" in key.split(".")[0] and top not in values:
                values[top] = defaults[top]
            values = _apply_set(values, key, value)
    return values


@functools.cache
def _render(values_json: str) -> tuple[tuple[str, str], ...]:
    manifests = chart().render(
        json.loads(values_json), name=RELEASE, namespace=NAMESPACE, is_install=True
    )
    return tuple(sorted(manifests.items()))


def render_manifests(values_files=(), set=None) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), cached per input."""
    values = user_values(tuple(values_files), set)
    return dict(_render(json.dumps(values, sort_keys=True)))


@functools.cache
def _objects(values_json: str) -> tuple[dict, ...]:
    objects = []
    for path, text in _render(values_json):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {})
                objects.append(doc)
    return tuple(objects)


def render(values_files=(), set=None) -> list[dict]:
    """Every object the chart renders for these values (hooks and tests included), cached
    per input. Callers must not modify the objects."""
    values = user_values(tuple(values_files), set)
    return list(_objects(json.dumps(values, sort_keys=True)))


def render_case(name: str) -> list[dict]:
    files, overrides = CASES[name]
    return render(files, overrides)


def notes(name: str) -> str:
    files, overrides = CASES[name]
    manifests = render_manifests(files, overrides)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def ident(obj: dict) -> str:
    """How an assertion names an object: Kind/name."""
    return f"{obj['kind']}/{obj['metadata'].get('name')}"


def pod_specs(objects: list[dict]) -> list[tuple[str, dict, dict]]:
    """(owner, pod metadata, pod spec) of every pod the objects create."""
    out = []
    for obj in objects:
        kind = obj["kind"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            template = obj["spec"]["template"]
            out.append((ident(obj), template.get("metadata", {}), template["spec"]))
        elif kind == "Pod":
            out.append((ident(obj), obj["metadata"], obj["spec"]))
        elif kind == "Workflow":
            out += _workflow_pods(obj)
    return out


# What an Argo Workflow's pod takes from the Workflow's spec (the rest is its template's).
_WORKFLOW_POD_FIELDS = (
    "serviceAccountName",
    "automountServiceAccountToken",
    "securityContext",
    "imagePullSecrets",
    "volumes",
)
_TEMPLATE_POD_FIELDS = ("nodeSelector", "tolerations", "affinity", "initContainers")


def _workflow_pods(workflow: dict) -> list[tuple[str, dict, dict]]:
    """The pod each container template of an Argo Workflow makes, as Argo builds it: the
    Workflow's podMetadata and pod-level fields, then the template's (without the init and
    wait containers Argo's executor adds: its controller's settings, not the chart's)."""
    spec = workflow["spec"]
    out = []
    for template in spec["templates"]:
        if "container" not in template:
            continue
        labels = spec.get("podMetadata", {}).get("labels", {}) | template.get("metadata", {}).get(
            "labels", {}
        )
        pod = {k: spec[k] for k in _WORKFLOW_POD_FIELDS if k in spec}
        pod |= {k: template[k] for k in _TEMPLATE_POD_FIELDS if k in template}
        pod["containers"] = [template["container"]]
        out.append((f"{ident(workflow)}/{template['name']}", {"labels": labels}, pod))
    return out
