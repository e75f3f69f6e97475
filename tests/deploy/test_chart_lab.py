"""Benchmarks as Jobs (`lab.benchmarks`): the Jobs the API server would accept, their failure
policy, a run id that every pod and every upgrade shares, the command line, the target's key,
the way in and out of the network; and the same benchmarks as an Argo Workflow."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.deploy import _helm
from tests.deploy.test_chart_render import KUBE_VERSIONS

LAB = _helm.LAB
ARGO = _helm.LAB_ARGO
GATEWAY = "http://hearth-web.hearth.svc:8080/v1"


def _jobs(objects: list[dict]) -> dict[str, dict]:
    """Benchmark name -> its Job."""
    return {
        o["metadata"]["labels"]["hearth-llm.io/benchmark"]: o
        for o in objects
        if o["kind"] == "Job" and o["metadata"]["labels"]["app.kubernetes.io/component"] == "bench"
    }


def _container(job: dict, name: str = "bench") -> dict:
    spec = job["spec"]["template"]["spec"]
    return next(c for c in spec["initContainers"] + spec["containers"] if c["name"] == name)


def _run_id(job: dict) -> str:
    args = _container(job)["args"]
    return args[args.index("--run-id") + 1]


def _render_as(release: str, namespace: str, values: dict) -> list[dict]:
    manifests = _helm.chart().render(values, name=release, namespace=namespace, is_install=True)
    return [
        doc
        for path, text in manifests.items()
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def _values(overrides: dict) -> dict:
    return _helm.user_values((), overrides)


# --- the Jobs ----------------------------------------------------------------------------


def test_one_job_per_benchmark_valid_for_every_kubernetes_version() -> None:
    jobs = _jobs(_helm.render((), LAB))
    assert sorted(jobs) == ["azure-mini", "smollm2-sweep"]
    for job in jobs.values():
        assert job["apiVersion"] == "batch/v1"
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(job, version, strict=True)


def test_a_benchmark_is_part_of_the_release_not_a_hook() -> None:
    for job in _jobs(_helm.render((), LAB)).values():
        assert not any(a.startswith("helm.sh/") for a in job["metadata"].get("annotations", {}))
        # a finished Job stays as the record of its run
        assert "ttlSecondsAfterFinished" not in job["spec"]


def test_no_benchmarks_render_nothing_of_the_lab() -> None:
    objects = _helm.render_case("defaults")
    lab = [o for o in objects if o["metadata"]["labels"]["app.kubernetes.io/component"] == "bench"]
    assert lab == []
    web = next(o for o in objects if _helm.ident(o) == "NetworkPolicy/hearth-web")
    assert "bench" not in json.dumps(web["spec"]["ingress"])


def test_failure_policy_retries_disruptions_and_checkpoints_and_fails_on_errors() -> None:
    for job in _jobs(_helm.render((), LAB)).values():
        spec = job["spec"]
        assert spec["podFailurePolicy"]["rules"] == [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "Ignore",
                "onExitCodes": {"containerName": "bench", "operator": "In", "values": [75]},
            },
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "bench", "operator": "In", "values": [1, 2]},
            },
        ]
        assert spec["backoffLimit"] == 3 and spec["activeDeadlineSeconds"] == 86400
        _api_server_accepts_the_failure_policy(spec)


def _api_server_accepts_the_failure_policy(spec: dict) -> None:
    """What the API server checks of a podFailurePolicy beyond the JSON schema (which types
    `action` as any string), as pkg/apis/batch/validation does: an action it knows (Ignore
    with onExitCodes included), exactly one of onExitCodes and onPodConditions, exit codes
    ordered, unique and not 0 for In, a container of the pod, a condition's status, the
    pods' restartPolicy Never, and a podReplacementPolicy of Failed if any."""
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert spec.get("podReplacementPolicy", "Failed") == "Failed"
    names = {c["name"] for c in pod["containers"] + pod.get("initContainers", [])}
    for rule in spec["podFailurePolicy"]["rules"]:
        assert rule["action"] in {"FailJob", "Ignore", "Count"}, rule
        assert ("onExitCodes" in rule) != ("onPodConditions" in rule), rule
        codes = rule.get("onExitCodes")
        if codes:
            assert codes["operator"] in {"In", "NotIn"}
            assert codes["containerName"] in names
            values = codes["values"]
            assert values and values == sorted(set(values)), "must be ordered and unique"
            assert codes["operator"] != "In" or 0 not in values
        for pattern in rule.get("onPodConditions", []):
            assert pattern["status"] in {"True", "False", "Unknown"}


def test_the_command_line() -> None:
    jobs = _jobs(_helm.render((), LAB))
    gateway, external = jobs["smollm2-sweep"], jobs["azure-mini"]
    run = _run_id(gateway)
    assert _container(gateway)["args"] == [
        "bench",
        "run",
        "--run-id",
        run,
        "--name",
        "smollm2-sweep",
        "--stopped-exit-code",
        "75",
        "--grace",
        "30",
        "--url",
        GATEWAY,
        "--model",
        "smollm2-135m-instruct",
        "--key-env",
        "BENCH_API_KEY",
        "--stage",
        "sweep:3",
        "--requests",
        "50",
        "--output-tokens",
        "64",
    ]
    args = _container(external)["args"]
    assert args[args.index("--url") + 1] == "https://example.openai.azure.com/openai/v1"
    assert args[args.index("--model") + 1] == "gpt-4o-mini"
    # the image's entrypoint is `hearth`: a Job gives only the arguments, as web and worker
    assert "command" not in _container(gateway)


def test_the_targets_key_comes_from_its_secret() -> None:
    job = _jobs(_helm.render((), LAB))["smollm2-sweep"]
    env = {e["name"]: e for e in _container(job)["env"]}
    assert env["BENCH_API_KEY"] == {
        "name": "BENCH_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "bench-key", "key": "api-key"}},
    }
    assert env["HEARTH_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "hearth-postgresql"
    without = {"lab.benchmarks": [{"name": "plain", "model": "m", "apiKey": {"secretName": ""}}]}
    job = _jobs(_helm.render((), without))["plain"]
    assert "BENCH_API_KEY" not in {e["name"] for e in _container(job)["env"]}
    assert "--key-env" not in _container(job)["args"]


def test_grace_resources_placement_and_identity() -> None:
    overrides = LAB | {
        "lab.grace": 50,
        "lab.benchmarks[1].resources": {
            "requests": {"cpu": "1", "memory": "1Gi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        },
    }
    jobs = _jobs(_helm.render((), overrides))
    spot = jobs["smollm2-sweep"]["spec"]["template"]["spec"]
    assert spot["terminationGracePeriodSeconds"] == 65  # the grace, then 15 s to save
    assert "--grace" in _container(jobs["smollm2-sweep"])["args"]
    assert _container(jobs["smollm2-sweep"])["args"][8:10] == ["--grace", "50"]
    assert spot["nodeSelector"] == {"kubernetes.azure.com/scalesetpriority": "spot"}
    assert spot["tolerations"][0]["value"] == "spot"
    assert (
        _container(jobs["smollm2-sweep"])["resources"] == _helm.chart().values["lab"]["resources"]
    )
    assert _container(jobs["azure-mini"])["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    external = jobs["azure-mini"]["spec"]["template"]["spec"]
    assert "nodeSelector" not in external and "tolerations" not in external
    assert spot["serviceAccountName"] == "hearth-bench"
    assert spot["automountServiceAccountToken"] is False


# --- the run id --------------------------------------------------------------------------


def test_run_id_is_the_same_for_every_render_and_pod() -> None:
    first = _jobs(_render_as("hearth", "hearth", _values(LAB)))
    again = _jobs(_render_as("hearth", "hearth", _values(LAB)))
    for name, job in first.items():
        run = _run_id(job)
        assert run == _run_id(again[name])
        assert job["metadata"]["name"] == again[name]["metadata"]["name"]
        # the pods carry it too (kubectl get pods -l hearth-llm.io/run-id=...)
        assert job["spec"]["template"]["metadata"]["labels"]["hearth-llm.io/run-id"] == run
        assert job["metadata"]["labels"]["hearth-llm.io/run-id"] == run


def test_run_id_differs_between_benchmarks_releases_and_namespaces() -> None:
    ours = _jobs(_render_as("hearth", "hearth", _values(LAB)))
    runs = {_run_id(j) for j in ours.values()}
    assert len(runs) == 2
    for release, namespace in (("acme", "hearth"), ("hearth", "llm")):
        theirs = _jobs(_render_as(release, namespace, _values(LAB)))
        assert runs.isdisjoint({_run_id(j) for j in theirs.values()}), (release, namespace)


def test_an_upgrade_replaces_the_job_and_resumes_the_run() -> None:
    """A new image changes the pod template (which a Job cannot change): a new Job by name,
    the same run; new arguments for the run are a new run."""
    before = _jobs(_helm.render((), LAB))
    upgraded = _jobs(_helm.render((), LAB | {"image.tag": "0.2.0"}))
    changed = _jobs(_helm.render((), LAB | {"lab.benchmarks[0].args": ["--requests", "99"]}))
    for name in before:
        assert upgraded[name]["metadata"]["name"] != before[name]["metadata"]["name"]
        assert _run_id(upgraded[name]) == _run_id(before[name])
    assert _run_id(changed["smollm2-sweep"]) != _run_id(before["smollm2-sweep"])
    assert _run_id(changed["azure-mini"]) == _run_id(before["azure-mini"])
    for job in before.values():
        assert re.fullmatch(r"hearth-bench-[a-z0-9-]+-[0-9a-f]{8}", job["metadata"]["name"])


def test_run_id_is_the_documented_derivation() -> None:
    """SHA-256 of namespace, release, name and the run's arguments, as an RFC 9562 UUIDv8."""
    job = _jobs(_helm.render((), LAB))["smollm2-sweep"]
    args = _container(job)["args"]
    run_args = args[args.index("--url") :]
    arguments = json.dumps(run_args, separators=(",", ":"))  # as Helm's toJson writes them
    seed = "\n".join(["hearth-bench", "hearth", "hearth", "smollm2-sweep", arguments])
    digest = hashlib.sha256(seed.encode()).hexdigest()
    expected = uuid.UUID(digest[:32])
    expected = uuid.UUID(int=(expected.int & ~(0xF << 76) & ~(0x3 << 62)) | (8 << 76) | (2 << 62))
    run = uuid.UUID(_run_id(job))
    assert run == expected
    assert run.version == 8 and run.variant == uuid.RFC_4122


def test_an_entrys_run_id_wins() -> None:
    given = "0B3B1C52-8E1F-4B4E-9C1D-2E5A6B7C8D9E"
    job = _jobs(_helm.render((), LAB | {"lab.benchmarks[0].runId": given}))["smollm2-sweep"]
    assert _run_id(job) == given.lower()


# --- waiting for the target --------------------------------------------------------------


def test_the_pod_first_waits_for_the_database_and_the_target() -> None:
    jobs = _jobs(_helm.render((), LAB))
    ready = {
        name: {e["name"]: e.get("value") for e in _container(job, "wait-for-target")["env"]}
        for name, job in jobs.items()
    }
    assert ready["smollm2-sweep"]["READY_URL"] == "http://hearth-web.hearth.svc:8080/readyz"
    assert ready["azure-mini"]["READY_URL"] == "https://example.openai.azure.com/openai/v1/models"
    wait = _container(jobs["smollm2-sweep"], "wait-for-target")
    assert wait["command"][:2] == ["python", "-c"]
    assert wait["image"] == _container(jobs["smollm2-sweep"])["image"]


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Iterator[http.server.HTTPServer]:
    """A target answering every GET with the test's `status`."""
    handler = type("Answer", (_Answer,), {"status": request.node.callspec.params["status"]})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [200, 401])
def test_the_wait_ends_when_both_answer(target: http.server.HTTPServer, status: int) -> None:
    """The rendered script itself, against a listening "database" and a target answering
    200 (web's /readyz) or 401 (an external target's /models without a key: it is up)."""
    wait = _container(_jobs(_helm.render((), LAB))["smollm2-sweep"], "wait-for-target")
    with socket.socket() as database:
        database.bind(("127.0.0.1", 0))
        database.listen()
        port = database.getsockname()[1]
        env = {
            "HEARTH_DATABASE_URL": f"postgresql://u:p%40ss@127.0.0.1:{port}/hearth",
            "READY_URL": f"http://127.0.0.1:{target.server_address[1]}/readyz",
        }
        done = subprocess.run(
            [sys.executable, *wait["command"][1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "p%40ss" not in done.stdout + done.stderr  # never prints the database URL


# --- the network -------------------------------------------------------------------------


def test_network_policy_lets_benchmarks_reach_the_database_and_their_targets() -> None:
    objects = {_helm.ident(o): o for o in _helm.render((), LAB)}
    bench = objects["NetworkPolicy/hearth-bench"]["spec"]
    assert bench["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "bench"
    assert "ingress" not in bench and bench["policyTypes"] == ["Ingress", "Egress"]
    reached = [
        (
            peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component"),
            peer.get("ipBlock", {}).get("cidr"),
            [p["port"] for p in rule["ports"]],
        )
        for rule in bench["egress"]
        for peer in rule["to"]
    ]
    assert reached == [
        ("postgresql", None, [5432]),
        ("web", None, [8080]),
        (None, "20.0.0.0/8", [443]),
    ]
    for policy in ("NetworkPolicy/hearth-web", "NetworkPolicy/hearth-postgresql"):
        peers = objects[policy]["spec"]["ingress"][0]["from"]
        components = {
            p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
            for p in peers
        }
        assert "bench" in components, policy


def test_benchmarks_of_external_targets_only_do_not_open_web() -> None:
    only_external = {"lab.benchmarks": [_helm.BENCHMARKS[1]]}
    objects = {_helm.ident(o): o for o in _helm.render((), only_external)}
    assert "bench" not in json.dumps(objects["NetworkPolicy/hearth-web"]["spec"]["ingress"])
    assert "8080" not in json.dumps(objects["NetworkPolicy/hearth-bench"]["spec"]["egress"])


def test_extra_egress_of_benchmarks() -> None:
    rule = {
        "to": [{"namespaceSelector": {"matchLabels": {"team": "ml"}}}],
        "ports": [{"port": 8000}],
    }
    objects = {
        _helm.ident(o): o
        for o in _helm.render((), LAB | {"networkPolicy.benchExtraEgress": [rule]})
    }
    assert objects["NetworkPolicy/hearth-bench"]["spec"]["egress"][-1] == rule


# --- values and their checks -------------------------------------------------------------

BENCH = {"name": "b", "model": "m"}
WRONG = [
    ({"lab": {"benchmarks": [{"model": "m"}]}}, "at '/lab/benchmarks/0': missing property 'name'"),
    ({"lab": {"benchmarks": [{"name": "b"}]}}, "at '/lab/benchmarks/0': missing property 'model'"),
    ({"lab": {"benchmarks": [BENCH | {"name": "Big_Name"}]}}, "at '/lab/benchmarks/0/name'"),
    ({"lab": {"benchmarks": [BENCH | {"name": "x" * 31}]}}, "at '/lab/benchmarks/0/name'"),
    (
        {"lab": {"benchmarks": [BENCH | {"gpus": 1}]}},
        "at '/lab/benchmarks/0': additional properties 'gpus' not allowed",
    ),
    ({"lab": {"benchmarks": [BENCH | {"target": "example.com"}]}}, "at '/lab/benchmarks/0/target'"),
    (
        {"lab": {"benchmarks": [BENCH | {"args": ["--run-id", "x"]}]}},
        "at '/lab/benchmarks/0/args/0'",
    ),
    (
        {"lab": {"benchmarks": [BENCH | {"args": ["--url=http://x"]}]}},
        "at '/lab/benchmarks/0/args/0'",
    ),
    (
        {"lab": {"benchmarks": [BENCH | {"args": ["--requests", 50]}]}},
        "at '/lab/benchmarks/0/args/1': got number, want string",
    ),
    ({"lab": {"benchmarks": [BENCH | {"runId": "run-1"}]}}, "at '/lab/benchmarks/0/runId'"),
    (
        {"lab": {"benchmarks": [BENCH | {"apiKey": {"secretName": "s"}}]}},
        "at '/lab/benchmarks/0/apiKey': missing property 'key'",
    ),
    (
        {"lab": {"benchmarks": [BENCH | {"apiKey": {"name": "s", "key": "k"}}]}},
        "additional properties 'name' not allowed",
    ),
    (
        {"lab": {"benchmarks": [BENCH | {"resources": {"requests": {"cpu": "1"}}}]}},
        "at '/lab/benchmarks/0/resources': missing property 'limits'",
    ),
    ({"lab": {"grace": "30s"}}, "at '/lab/grace': got string, want integer"),
    ({"lab": {"gracePeriod": 30}}, "at '/lab': additional properties 'gracePeriod' not allowed"),
    ({"lab": {"argo": {"enabled": "yes"}}}, "at '/lab/argo/enabled': got string, want boolean"),
]


@pytest.mark.parametrize(("values", "message"), WRONG, ids=[m for _v, m in WRONG])
def test_schema_rejects_a_bad_benchmark(values: dict, message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        _helm.chart().validate_schema(values)
    assert message in str(caught.value)


def test_template_errors_are_readable() -> None:
    run = "0b3b1c52-8e1f-4b4e-9c1d-2e5a6b7c8d9e"
    cases = {
        "is used twice": {"lab.benchmarks": [BENCH, BENCH | {"model": "other"}]},
        "each benchmark needs its own run": {
            "lab.benchmarks": [BENCH | {"runId": run}, BENCH | {"name": "c", "runId": run}]
        },
        "the limit is 54": {
            "fullnameOverride": "a-very-long-release-name-for-hearth",
            "lab.benchmarks": [BENCH | {"name": "a-rather-long-benchmark"}],
        },
        "lab.argo.executorServiceAccountName is required": {
            "lab.benchmarks": [BENCH],
            "lab.argo.enabled": True,
        },
    }
    for message, overrides in cases.items():
        with pytest.raises(helm.HelmError, match=message):
            _helm.render((), overrides)


def test_every_benchmark_key_of_the_schema_is_documented() -> None:
    readme = (_helm.CHART / "README.md").read_text()
    section = readme.split("## Benchmarks as Jobs", 1)[1].split("\n## ", 1)[0]
    keys = _helm.chart().schema["definitions"]["benchmark"]["properties"]
    missing = [key for key in keys if f"`{key}`" not in section]
    assert not missing, f"benchmark keys not in README.md's Benchmarks as Jobs table: {missing}"


# --- Argo Workflows ----------------------------------------------------------------------


def _workflow(objects: list[dict]) -> dict:
    [workflow] = [o for o in objects if o["kind"] == "Workflow"]
    return workflow


def test_argo_is_off_by_default_and_replaces_the_jobs_when_on() -> None:
    assert not [o for o in _helm.render((), LAB) if o["kind"] == "Workflow"]
    objects = _helm.render((), ARGO)
    assert _jobs(objects) == {}
    workflow = _workflow(objects)
    assert workflow["apiVersion"] == "argoproj.io/v1alpha1"
    assert re.fullmatch(r"hearth-bench-[0-9a-f]{8}", workflow["metadata"]["name"])


def test_argo_runs_the_benchmarks_one_after_another() -> None:
    spec = _workflow(_helm.render((), ARGO))["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    assert len(templates) == len(spec["templates"]), "template names must be unique"
    entry = templates[spec["entrypoint"]]
    # one step per group: sequential, in the order of the values
    assert [[s["name"] for s in group] for group in entry["steps"]] == [
        ["smollm2-sweep"],
        ["azure-mini"],
    ]
    for [step] in entry["steps"]:
        assert step["template"] in templates
        assert step["continueOn"] == {"failed": True}


def test_argo_retries_disruptions_and_checkpoints_only() -> None:
    spec = _workflow(_helm.render((), ARGO))["spec"]
    for template in spec["templates"]:
        if "container" not in template:
            continue
        retry = template["retryStrategy"]
        assert retry["retryPolicy"] == "Always" and retry["limit"] == 20
        retried = {
            (status, code): _expr(retry["expression"], status, code)
            for status, code in [("Error", ""), ("Failed", "75"), ("Failed", "1"), ("Failed", "2")]
        }
        assert retried == {
            ("Error", ""): True,
            ("Failed", "75"): True,
            ("Failed", "1"): False,
            ("Failed", "2"): False,
        }
        assert json.loads(template["podSpecPatch"]) == {"terminationGracePeriodSeconds": 45}


def _expr(expression: str, status: str, exit_code: str) -> bool:
    """Argo's retry expression (expr-lang), for the subset it uses: ==, ||, &&, strings."""
    assert re.fullmatch(r'[\w. "=|&]+', expression), expression
    python = expression.replace("||", " or ").replace("&&", " and ")

    class LastRetry:
        status = ""
        exitCode = ""  # Argo's name

    LastRetry.status, LastRetry.exitCode = status, exit_code
    # the pattern above admits names, strings, == and the two operators: nothing else runs
    return bool(eval(python, {"__builtins__": {}}, {"lastRetry": LastRetry}))


def test_argo_pods_are_the_jobs_pods() -> None:
    """The same command, environment, init container and placement as the Jobs; the
    command spelled out (Argo's emissary executor would look it up in the registry)."""
    jobs = _jobs(_helm.render((), LAB))
    workflow = _workflow(_helm.render((), ARGO))
    spec = workflow["spec"]
    assert spec["serviceAccountName"] == "hearth-bench"
    assert spec["automountServiceAccountToken"] is False
    assert spec["executor"] == {"serviceAccountName": "argo-executor"}
    assert spec["activeDeadlineSeconds"] == 2 * 86400
    assert spec["podMetadata"]["labels"]["app.kubernetes.io/component"] == "bench"
    templates = {t["name"]: t for t in spec["templates"]}
    volumes = {v["name"] for v in spec["volumes"]}
    for name, job in jobs.items():
        template = templates[f"bench-{name}"]
        pod = job["spec"]["template"]["spec"]
        container = template["container"]
        assert container["command"] == ["hearth"]
        assert {k: v for k, v in container.items() if k != "command"} == pod["containers"][0]
        assert template["initContainers"] == pod["initContainers"]
        assert spec["securityContext"] == pod["securityContext"]
        for key in ("nodeSelector", "tolerations", "affinity"):
            assert template.get(key) == pod.get(key), key
        assert template["metadata"]["labels"] == job["spec"]["template"]["metadata"]["labels"]
        mounts = {
            m["name"] for c in [container, *template["initContainers"]] for m in c["volumeMounts"]
        }
        assert mounts <= volumes
