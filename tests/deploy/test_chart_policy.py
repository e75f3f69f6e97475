"""Policy over the rendered objects; every assertion names the object at fault."""

from __future__ import annotations

import base64
import re

import pytest

from tests.deploy import _helm

CASES = sorted(_helm.CASES)
HEARTH_IMAGE = "ghcr.io/hearth-llm/hearth"

# Accepted departures from the chart's pod security rules, by engine kind and field, each
# written in values.yaml and the README: vLLM's torch/Triton/FlashInfer JIT caches need a
# writable root filesystem (Pod Security "restricted" itself does not require a read-only
# root; the chart does, everywhere else).
ENGINE_EXCEPTIONS = {("vllm", "readOnlyRootFilesystem")}

# Pod Security "restricted": allowed volume types.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
# Names that say "secret" (HEARTH_RAG_CHUNK_TOKENS does not; HEARTH_ENGINE_KEY_0 does).
SECRET_WORDS = re.compile(r"password|secret|token$|key$|(key|token)_\d+$", re.IGNORECASE)


def _containers(spec: dict) -> list[tuple[str, dict]]:
    return [("init", c) for c in spec.get("initContainers", [])] + [
        ("main", c) for c in spec["containers"]
    ]


def _engine_kind(meta: dict) -> str | None:
    return meta.get("labels", {}).get("hearth-llm.io/engine-kind")


def _exceptions(meta: dict) -> set[str]:
    kind = _engine_kind(meta)
    return {field for k, field in ENGINE_EXCEPTIONS if k == kind}


@pytest.mark.parametrize("case", CASES)
def test_every_pod_meets_pod_security_restricted(case: str) -> None:
    for owner, meta, spec in _helm.pod_specs(_helm.render_case(case)):
        pod_sc = spec.get("securityContext", {})
        allowed = _exceptions(meta)
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(flag), f"{owner}: {flag}"
        assert spec.get("automountServiceAccountToken") is False, f"{owner}: token mounted"
        for volume in spec.get("volumes", []):
            types = set(volume) - {"name"}
            assert types <= RESTRICTED_VOLUMES, f"{owner}: volume {volume['name']} is {types}"
        for where, c in _containers(spec):
            name = f"{owner} {where} container {c['name']}"
            sc = c.get("securityContext", {})
            merged = pod_sc | sc
            assert merged.get("runAsNonRoot") is True, f"{name}: runAsNonRoot"
            assert merged.get("runAsUser", 1) != 0, f"{name}: runs as root"
            assert merged.get("seccompProfile", {}).get("type") == "RuntimeDefault", (
                f"{name}: seccomp"
            )
            assert sc.get("allowPrivilegeEscalation") is False, f"{name}: privilege escalation"
            assert not sc.get("privileged"), f"{name}: privileged"
            assert "ALL" in sc.get("capabilities", {}).get("drop", []), f"{name}: capabilities"
            assert set(sc.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}, name
            if "readOnlyRootFilesystem" in allowed:
                continue
            assert sc.get("readOnlyRootFilesystem") is True, f"{name}: writable root filesystem"


@pytest.mark.parametrize("case", CASES)
def test_hearth_containers_run_as_10001_without_exceptions(case: str) -> None:
    for owner, _meta, spec in _helm.pod_specs(_helm.render_case(case)):
        for where, c in _containers(spec):
            if not c["image"].startswith(HEARTH_IMAGE + ":"):
                continue
            merged = spec["securityContext"] | c.get("securityContext", {})
            assert merged["runAsUser"] == 10001, f"{owner} {where} {c['name']}"
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, f"{owner} {c['name']}"


@pytest.mark.parametrize("case", CASES)
def test_every_container_has_requests_limits_and_probes(case: str) -> None:
    for owner, _meta, spec in _helm.pod_specs(_helm.render_case(case)):
        # Jobs, test pods and workflow steps run to completion: no probes to ask.
        runs_to_completion = owner.startswith(("Job/", "Pod/", "Workflow/"))
        for where, c in _containers(spec):
            name = f"{owner} {where} container {c['name']}"
            resources = c.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(section, {}), (
                        f"{name}: no {section}.{resource}"
                    )
            if where == "main" and not runs_to_completion:
                for probe in ("livenessProbe", "readinessProbe"):
                    assert probe in c, f"{name}: no {probe}"


@pytest.mark.parametrize("case", CASES)
def test_every_image_is_pinned(case: str) -> None:
    for owner, _meta, spec in _helm.pod_specs(_helm.render_case(case)):
        for _where, c in _containers(spec):
            image = c["image"]
            reference = image.split("@")[0]
            name, _, tag = reference.rpartition(":")
            assert name and "/" not in tag, f"{owner} {c['name']}: {image} has no tag"
            assert tag != "latest", f"{owner} {c['name']}: {image}"
    for obj in _helm.render_case(case):
        if obj["kind"] == "Cluster":
            assert re.search(r":[\w.-]+$", obj["spec"]["imageName"]), _helm.ident(obj)
            assert not obj["spec"]["imageName"].endswith(":latest"), _helm.ident(obj)


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("case", CASES)
def test_selectors_match_their_pods_and_services_select_pods(case: str) -> None:
    objects = _helm.render_case(case)
    templates = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            labels = obj["spec"]["template"]["metadata"]["labels"]
            selector = obj["spec"]["selector"]["matchLabels"]
            assert _matches(selector, labels), f"{_helm.ident(obj)}: selector misses its pods"
            templates.append((obj, labels, obj["spec"]["template"]["spec"]))
    for obj in objects:
        if obj["kind"] == "Service":
            selected = [t for t in templates if _matches(obj["spec"]["selector"], t[1])]
            assert len(selected) == 1, f"{_helm.ident(obj)} selects {len(selected)} workloads"
            ports = {
                p["name"]: p["containerPort"]
                for c in selected[0][2]["containers"]
                for p in c.get("ports", [])
            }
            for port in obj["spec"]["ports"]:
                assert port["targetPort"] in ports, f"{_helm.ident(obj)}: {port['targetPort']}"
        if obj["kind"] == "StatefulSet":
            names = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
            assert obj["spec"]["serviceName"] in names, f"{_helm.ident(obj)}: serviceName"


def _replicas(obj: dict, objects: list[dict]) -> int:
    """The fewest replicas a workload runs: its HPA's or ScaledObject's minimum if any."""
    for scaler in objects:
        if scaler["kind"] in ("HorizontalPodAutoscaler", "ScaledObject"):
            if scaler["spec"]["scaleTargetRef"]["name"] == obj["metadata"]["name"]:
                return scaler["spec"].get("minReplicas", scaler["spec"].get("minReplicaCount", 1))
    return obj["spec"].get("replicas", 1)


@pytest.mark.parametrize("case", CASES)
def test_every_component_with_several_replicas_has_a_pdb(case: str) -> None:
    objects = _helm.render_case(case)
    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet") or _replicas(obj, objects) < 2:
            continue
        labels = obj["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in pdbs if _matches(p["spec"]["selector"]["matchLabels"], labels)]
        assert len(covering) == 1, f"{_helm.ident(obj)} runs several pods, PDBs: {covering}"


def test_pdbs_follow_replica_counts() -> None:
    objects = _helm.render_case("prod-aks")
    pdbs = {o["metadata"]["name"] for o in objects if o["kind"] == "PodDisruptionBudget"}
    assert pdbs == {
        "hearth-web",
        "hearth-worker",
        "hearth-engine-llama-spot",
        "hearth-engine-embed",
    }
    dev = _helm.render_case("dev-minikube")
    assert not [o for o in dev if o["kind"] == "PodDisruptionBudget"]


def _secret_values(objects: list[dict]) -> set[str]:
    values = set()
    for obj in objects:
        if obj["kind"] == "Secret":
            for value in obj.get("data", {}).values():
                values.add(base64.b64decode(value).decode())
            values.update(obj.get("stringData", {}).values())
    return {v for v in values if len(v) >= 8}


@pytest.mark.parametrize("case", CASES)
def test_no_secret_in_a_configmap_or_a_literal_env_value(case: str) -> None:
    objects = _helm.render_case(case)
    secrets = _secret_values(objects)
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            for key, value in obj.get("data", {}).items():
                assert not SECRET_WORDS.search(key), f"{_helm.ident(obj)}: key {key}"
                assert not any(s in value for s in secrets), f"{_helm.ident(obj)}: {key}"
    for owner, _meta, spec in _helm.pod_specs(objects):
        for _where, c in _containers(spec):
            for env in c.get("env", []):
                if "value" not in env:
                    continue
                where = f"{owner} {c['name']} env {env['name']}"
                assert not SECRET_WORDS.search(env["name"]), f"{where}: a literal value"
                assert not any(s in env["value"] for s in secrets), f"{where}: holds a secret"
            for arg in c.get("args", []) + c.get("command", []):
                assert not any(s in arg for s in secrets), f"{owner} {c['name']}: secret in args"


def test_generated_secrets_are_kept_across_upgrades() -> None:
    """Each generated Secret looks itself up first (offline, lookup finds nothing)."""
    for template in ("postgresql-secret.yaml", "redis-secret.yaml", "engine-keys-secret.yaml"):
        text = (_helm.CHART / "templates" / template).read_text()
        assert "hearth.keptSecretValue" in text, template
    helpers = (_helm.CHART / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret"' in helpers


@pytest.mark.parametrize("case", CASES)
def test_gpu_pods_request_gpus_and_tolerate_the_gpu_taint(case: str) -> None:
    files, overrides = _helm.CASES[case]
    values = _helm.chart().merge_values(_helm.user_values(files, overrides))
    gpu_engines = {
        e["name"]
        for e in values["engines"]
        if any(k.startswith("nvidia.com/") for k in e.get("resources", {}).get("limits", {}))
    }
    for owner, meta, spec in _helm.pod_specs(_helm.render_case(case)):
        engine = meta.get("labels", {}).get("hearth-llm.io/engine")
        requests_gpu = any(
            k.startswith("nvidia.com/")
            for c in spec["containers"]
            for section in ("requests", "limits")
            for k in c["resources"].get(section, {})
        )
        assert requests_gpu == (engine in gpu_engines), f"{owner}: GPU request"
        tolerates = any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations", []))
        assert tolerates == requests_gpu, f"{owner}: GPU toleration"


def test_examples_have_gpu_engines_where_promised() -> None:
    for case, count in (("prod-aks", 2), ("ollama-gpu", 1), ("dev-minikube", 0)):
        gpu = [
            owner
            for owner, _m, spec in _helm.pod_specs(_helm.render_case(case))
            if any("nvidia.com/gpu" in c["resources"]["limits"] for c in spec["containers"])
        ]
        assert len(gpu) == count, f"{case}: {gpu}"


def test_spot_engines_tolerate_spot_and_prefer_spot_nodes() -> None:
    pods = {o: (m, s) for o, m, s in _helm.pod_specs(_helm.render_case("prod-aks"))}
    spot_toleration = {
        "key": "kubernetes.azure.com/scalesetpriority",
        "operator": "Equal",
        "value": "spot",
        "effect": "NoSchedule",
    }
    _meta, spot = pods["StatefulSet/hearth-engine-llama-spot"]
    assert spot_toleration in spot["tolerations"]
    preferred = spot["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["preference"]["matchExpressions"][0]["values"] == ["spot"]
    _meta, ondemand = pods["StatefulSet/hearth-engine-llama-ondemand"]
    assert spot_toleration not in ondemand["tolerations"], "the fallback must not land on spot"


def test_tolerations_concatenate_defaults_entry_spot_and_gpu() -> None:
    objects = _helm.render(
        ("prod-aks.yaml",),
        {
            "engineDefaults.tolerations": [{"key": "pool", "operator": "Exists"}],
            "engines[0].tolerations": [{"key": "team", "operator": "Equal", "value": "ml"}],
        },
    )
    spec = next(s for o, _m, s in _helm.pod_specs(objects) if o.endswith("llama-spot"))
    assert [t["key"] for t in spec["tolerations"]] == [
        "pool",
        "team",
        "kubernetes.azure.com/scalesetpriority",
        "nvidia.com/gpu",
    ]


@pytest.mark.parametrize("case", CASES)
def test_one_service_account_per_component_and_no_rbac(case: str) -> None:
    objects = _helm.render_case(case)
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}, case
    accounts = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceAccount"}
    for account in accounts.values():
        assert account["automountServiceAccountToken"] is False, _helm.ident(account)
    used: dict[str, str] = {}
    for owner, meta, spec in _helm.pod_specs(objects):
        name = spec.get("serviceAccountName")
        assert name in accounts, f"{owner}: service account {name!r} is not rendered"
        component = meta["labels"]["app.kubernetes.io/component"]
        if component == "test":
            continue  # the helm test pods borrow web's identity (no token either)
        identity = f"{component}/{meta['labels'].get('hearth-llm.io/engine', '')}"
        assert used.setdefault(name, identity) == identity, f"{owner} shares {name}"


@pytest.mark.parametrize("case", CASES)
def test_streaming_ingress_settings(case: str) -> None:
    for obj in _helm.render_case(case):
        if obj["kind"] != "Ingress":
            continue
        a = obj["metadata"]["annotations"]
        name = _helm.ident(obj)
        assert a["nginx.ingress.kubernetes.io/proxy-buffering"] == "off", name
        assert int(a["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600, name
        assert int(a["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600, name
        # the body limit admits the largest upload (its limit plus the multipart framing)
        assert int(a["nginx.ingress.kubernetes.io/proxy-body-size"]) == 52428800 + 65536, name
        assert obj["spec"]["ingressClassName"] == "nginx", name


def test_readiness_of_web_does_not_depend_on_engines() -> None:
    for owner, _meta, spec in _helm.pod_specs(_helm.render_case("defaults")):
        if owner == "Deployment/hearth-web":
            probe = spec["containers"][0]["readinessProbe"]["httpGet"]
            assert probe["path"] == "/readyz?only=database"


def test_mig_slices_count_as_gpus() -> None:
    objects = _helm.render(
        ("ollama-gpu.yaml",),
        {
            "engines[0].resources": {
                "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/mig-1g.10gb": 1},
                "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/mig-1g.10gb": 1},
            }
        },
    )
    spec = next(s for o, _m, s in _helm.pod_specs(objects) if o.endswith("engine-ollama"))
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]


def test_engine_keys_from_an_existing_secret() -> None:
    objects = _helm.render((), {"engineKeys.existingSecret": "my-engine-keys"})
    assert "Secret/hearth-engine-keys" not in {_helm.ident(o) for o in objects}
    for owner, _meta, spec in _helm.pod_specs(objects):
        for c in spec["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef", {})
                if env["name"] in ("HEARTH_ENGINE_KEY_0", "HEARTH_ENGINE_API_KEY", "KEY"):
                    assert ref == {"name": "my-engine-keys", "key": "cpu"}, f"{owner} {env}"
