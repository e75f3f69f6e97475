"""The chart renders, lints clean and yields objects the Kubernetes API would accept, for
every example values file and the inline variants in _helm.CASES."""

from __future__ import annotations

import functools
import json

import helm_python as helm
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml

from tests.deploy import _helm

CASES = sorted(_helm.CASES)

# The oldest Kubernetes the chart claims (Chart.yaml kubeVersion ">=1.30.0-0"), 1.33, and the
# newest whose schemas kubernetes-validate ships.
KUBE_VERSIONS = sorted(
    {
        "1.30",
        "1.33",
        kubernetes_validate.utils.major_minor(kubernetes_validate.utils.latest_version()),
    },
    key=lambda v: tuple(map(int, v.split("."))),
)

# Custom resources are not in Kubernetes' own schemas, so kubernetes-validate cannot check
# them: these kinds (and only these) are checked for the basics instead.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "Issuer"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("argoproj.io/v1alpha1", "Workflow"),  # its structure: test_chart_lab.py
}


@pytest.fixture(scope="module", autouse=True)
def _cached_schemas():
    """kubernetes-validate reads its multi-megabyte definitions file on every call; read
    each schema file once for this module."""
    original = kubernetes_validate.utils.schema_contents
    kubernetes_validate.utils.schema_contents = functools.cache(original)
    yield
    kubernetes_validate.utils.schema_contents = original


@functools.cache
def _validate(document: str, version: str) -> str | None:
    """None when valid, else the error (cached: many cases render identical objects)."""
    try:
        kubernetes_validate.validate(json.loads(document), version, strict=True)
    except kubernetes_validate.ValidationError as e:
        return f"{'.'.join(str(p) for p in e.path)}: {e.message}"
    except kubernetes_validate.SchemaNotFoundError as e:
        return e.message
    return None


@pytest.mark.parametrize("case", CASES)
def test_lint_is_clean(case: str) -> None:
    files, overrides = _helm.CASES[case]
    for version in KUBE_VERSIONS:
        report = helm.lint(
            _helm.CHART,
            _helm.user_values(files, overrides),
            strict=True,
            namespace=_helm.NAMESPACE,
            kube_version=f"v{version}.0",
        )
        findings = [m for m in report["messages"] if m["severity"] >= 2]
        assert not findings and not report["errors"], f"{case} (Kubernetes {version}): {findings}"


@pytest.mark.parametrize("case", CASES)
def test_objects_valid_for_kubernetes(case: str) -> None:
    errors = []
    for obj in _helm.render_case(case):
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in CRD_KINDS:
            continue
        for version in KUBE_VERSIONS:
            error = _validate(json.dumps(obj, sort_keys=True), version)
            if error:
                errors.append(f"{_helm.ident(obj)} (Kubernetes {version}): {error}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("case", CASES)
def test_custom_resources_are_well_formed(case: str) -> None:
    """Allow-listed kinds only (any other kind fails the schema test: no schema found)."""
    for obj in _helm.render_case(case):
        if (obj["apiVersion"], obj["kind"]) not in CRD_KINDS:
            continue
        name = obj["metadata"].get("name", "")
        assert name and len(name) <= 63, f"{_helm.ident(obj)}: bad name"
        assert obj["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == _helm.RELEASE
        assert isinstance(obj.get("spec"), dict) and obj["spec"], f"{_helm.ident(obj)}: no spec"


@pytest.mark.parametrize("case", CASES)
def test_names_are_unique_per_kind(case: str) -> None:
    seen: set[tuple[str, str]] = set()
    for obj in _helm.render_case(case):
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in seen, f"{_helm.ident(obj)} is rendered twice"
        seen.add(key)


def _gateway_engines(objects: list[dict]) -> dict[str, list]:
    """HEARTH_ENGINES of every web and worker container, parsed."""
    out = {}
    for owner, _meta, spec in _helm.pod_specs(objects):
        for container in spec["containers"]:
            if container["name"] not in ("web", "worker"):
                continue
            env = {e["name"]: e for e in container.get("env", [])}
            out[owner] = json.loads(env["HEARTH_ENGINES"]["value"])
    return out


@pytest.mark.parametrize("case", CASES)
def test_gateway_lists_every_engine_of_the_values(case: str) -> None:
    files, overrides = _helm.CASES[case]
    values = _helm.chart().merge_values(_helm.user_values(files, overrides))
    expected = [e["name"] for e in values["engines"]]
    gateways = _gateway_engines(_helm.render_case(case))
    assert gateways, f"{case}: no web or worker container"
    for owner, engines in gateways.items():
        assert [e["name"] for e in engines] == expected, owner
        for entry, spec in zip(engines, values["engines"], strict=True):
            assert entry["kind"] in ("openai", "ollama"), f"{owner}: {entry}"
            assert entry["base_url"].startswith(("http://", "https://")), f"{owner}: {entry}"
            assert entry.get("models", []) == spec.get("models", []), f"{owner}: {entry['name']}"
            if "api_key" in entry:
                # a reference Kubernetes expands, never the key itself
                assert entry["api_key"].startswith("$(HEARTH_ENGINE_KEY_"), f"{owner}: {entry}"


@pytest.mark.parametrize("case", CASES)
def test_engine_key_references_are_defined_before_use(case: str) -> None:
    """Kubernetes expands $(VAR) only from variables defined earlier in the same list."""
    for owner, _meta, spec in _helm.pod_specs(_helm.render_case(case)):
        for container in spec["containers"]:
            defined: set[str] = set()
            for env in container.get("env", []):
                for ref in _references(env.get("value", "")):
                    assert ref in defined, (
                        f"{owner}/{container['name']}: {env['name']} uses $({ref})"
                    )
                defined.add(env["name"])


def _references(value: str) -> list[str]:
    refs, start = [], value.find("$(")
    while start >= 0:
        end = value.index(")", start)
        refs.append(value[start + 2 : end])
        start = value.find("$(", end)
    return refs


def test_same_model_on_two_engines_is_one_model_with_two_deployments() -> None:
    engines = next(iter(_gateway_engines(_helm.render_case("prod-aks")).values()))
    serving = [
        e["name"] for e in engines if any(m["name"] == "llama-3.1-8b-instruct" for m in e["models"])
    ]
    assert serving == ["llama-spot", "llama-ondemand"]


@pytest.mark.parametrize("case", CASES)
def test_notes_say_how_to_reach_it_and_create_the_admin(case: str) -> None:
    text = _helm.notes(case)
    assert "hearth users create --admin" in text
    assert "port-forward" in text or "https://" in text or "http://" in text


def test_migrations_run_before_the_release_only_when_the_database_exists() -> None:
    def hooks(case: str) -> str:
        job = next(o for o in _helm.render_case(case) if o["kind"] == "Job")
        return job["metadata"]["annotations"]["helm.sh/hook"]

    assert hooks("external-db") == "pre-install,pre-upgrade"
    for case in ("defaults", "cloudnative-pg", "dev-minikube"):
        assert hooks(case) == "post-install,pre-upgrade", case
    assert hooks("prod-aks") == "pre-install,pre-upgrade"


def test_template_errors_are_readable() -> None:
    cases = {
        "used twice": {
            "engines[1]": {
                "name": "cpu",
                "kind": "hearth",
                "models": [{"name": "x"}],
                "resources": {"requests": {}, "limits": {}},
            }
        },
        "is not a key of modelCaches": {"engines[0].modelCache": {"volume": "nowhere"}},
        "postgresql.external.existingSecret is required": {"postgresql.mode": "external"},
        "run one web replica": {"redis.mode": "none"},
        "the limit is 52": {
            "fullnameOverride": "a-very-long-release-name-for-hearth-xyz",
            "engines[0].name": "a-long-engine-name",
        },
    }
    for message, overrides in cases.items():
        with pytest.raises(helm.HelmError, match=message):
            _helm.render((), overrides)


@pytest.mark.parametrize("case", CASES)
def test_every_object_names_the_release_namespace(case: str) -> None:
    """So that `helm template | kubectl apply` (and the Kustomize base) land where helm would."""
    for obj in _helm.render_case(case):
        assert obj["metadata"].get("namespace") == _helm.NAMESPACE, _helm.ident(obj)


def test_another_release_name_prefixes_every_object() -> None:
    manifests = _helm.chart().render({}, name="acme", namespace="llm", is_install=True)
    objects = [
        doc
        for path, text in manifests.items()
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    assert objects
    for obj in objects:
        assert obj["metadata"]["name"].startswith("acme-hearth-"), _helm.ident(obj)
        assert obj["metadata"]["namespace"] == "llm", _helm.ident(obj)
    web = next(o for o in objects if _helm.ident(o) == "Deployment/acme-hearth-web")
    env = {e["name"]: e for e in web["spec"]["template"]["spec"]["containers"][0]["env"]}
    engines = json.loads(env["HEARTH_ENGINES"]["value"])
    assert engines[0]["base_url"] == "http://acme-hearth-engine-cpu.llm.svc:8081/v1"


def test_local_engines_configure_the_hearth_engine_itself() -> None:
    local = [
        {
            "kind": "llamacpp",
            "name": "local",
            "models": [{"name": "qwen", "path": "/models/q.gguf"}],
        },
        {"kind": "embedder"},
    ]
    objects = _helm.render(
        (),
        {
            "modelCaches.gguf": {"size": "50Gi"},
            "engines[0].localEngines": local,
            "engines[0].modelCache": {"volume": "gguf"},
            "engines[0].models": [
                {"name": "qwen"},
                {"name": "all-minilm-l6-v2", "type": "embedding"},
            ],
        },
    )
    engine = next(o for o in objects if _helm.ident(o) == "Deployment/hearth-engine-cpu")
    spec = engine["spec"]["template"]["spec"]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert json.loads(env["HEARTH_ENGINES"]["value"]) == local
    assert {"name": "models", "mountPath": "/models"} in spec["containers"][0]["volumeMounts"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["hearth-models-gguf"]
    assert "PersistentVolumeClaim/hearth-models-gguf" in {_helm.ident(o) for o in objects}


def test_every_template_renders_in_some_case() -> None:
    """The matrix of cases exercises the whole chart: no template only ever renders empty."""
    rendered: set[str] = set()
    for case in CASES:
        files, overrides = _helm.CASES[case]
        for path, text in _helm.render_manifests(files, overrides).items():
            if any(yaml.safe_load_all(text)) if path.endswith(".yaml") else text.strip():
                rendered.add(path.split("/templates/", 1)[1])
    templates = {
        str(p.relative_to(_helm.CHART / "templates"))
        for p in (_helm.CHART / "templates").rglob("*")
        if p.is_file() and not p.name.startswith("_")
    }
    assert templates - rendered == set()
