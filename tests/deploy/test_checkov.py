"""checkov's Kubernetes checks (a well-kept scanner that runs offline) over what the chart
renders for every values case: no finding but the ones accepted below, each with its
reason; a new finding fails and names the object and the check."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy import _helm

CHECKOV = os.environ.get("HEARTH_TEST_CHECKOV", "")

# (check, object or "*" for every object) → why Hearth accepts it.
ACCEPTED = {
    ("CKV_K8S_15", "*"): "imagePullPolicy IfNotPresent: every image is pinned to a tag (or a "
    "digest, `image.digest`), so Always would only add a registry round trip to every start",
    ("CKV_K8S_43", "*"): "tags are pinned everywhere; digests are supported (`image.digest`, "
    "per-engine `image.digest`) and recommended in the chart README, not forced",
    ("CKV_K8S_35", "*"): "Hearth reads its configuration from HEARTH_* environment variables "
    "(one Settings object); the values come from secretKeyRefs, never literals",
    ("CKV_K8S_8", "Pod/hearth-test-chat"): "a `helm test` pod: runs once, no probe applies",
    ("CKV_K8S_9", "Pod/hearth-test-chat"): "a `helm test` pod: runs once, no probe applies",
    ("CKV_K8S_8", "Pod/hearth-test-readyz"): "a `helm test` pod: runs once, no probe applies",
    ("CKV_K8S_9", "Pod/hearth-test-readyz"): "a `helm test` pod: runs once, no probe applies",
    ("CKV_K8S_40", "StatefulSet/hearth-postgresql"): "the pgvector image's postgres user is "
    "uid 999 (its data directory's owner); non-root, as restricted PSS asks",
    ("CKV_K8S_40", "Deployment/hearth-redis"): "the Redis image's redis user is uid 999; "
    "non-root, as restricted PSS asks",
    ("CKV_K8S_40", "vllm"): "vLLM runs as uid 1000 (its image's root made non-root by the "
    "chart; see engineDefaults in values.yaml)",
    ("CKV_K8S_22", "vllm"): "vLLM writes to its Python packages' folders at start (triton and "
    "torch compile caches); the chart's values document this exception",
    ("CKV_K8S_40", "ollama"): "Ollama runs as uid 1000 with HOME on its model volume",
}


# Offline (no guideline download), results only, as JSON.
_QUIET_JSON = ["--skip-download", "--quiet", "--compact", "-o", "json"]


def _engine_kind(objects: list[dict], ident: str) -> str | None:
    for obj in objects:
        if _helm.ident(obj) == ident:
            return obj["metadata"].get("labels", {}).get("hearth-llm.io/engine-kind")
    return None


def _acceptance(check: str, ident: str, objects: list[dict]) -> tuple[str, str] | None:
    """The ACCEPTED entry that covers this finding, if any."""
    kind = _engine_kind(objects, ident)
    keys = ((check, "*"), (check, ident), (check, kind or ""))
    return next((key for key in keys if key in ACCEPTED), None)


# Findings accepted for one values case only: what its values ask for.
ACCEPTED_IN_CASE = {
    ("networkpolicies-off", "CKV2_K8S_6"): "the case turns NetworkPolicies off "
    "(networkPolicy.enabled=false), so no pod has one",
}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One checkov run over every case, a file per case (a run costs seconds to start)."""
    if not CHECKOV:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs checkov: HEARTH_TEST_CHECKOV must name it (make test)")
        pytest.skip("checkov not installed (make deploy-tools; HEARTH_TEST_CHECKOV)")
    folder = tmp_path_factory.mktemp("checkov")
    for case in _helm.CASES:
        (folder / f"{case}.yaml").write_text(yaml.safe_dump_all(_helm.render_case(case)))
    done = subprocess.run(
        [CHECKOV, "-d", str(folder), "--framework", "kubernetes", *_QUIET_JSON],
        capture_output=True,
        text=True,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    return json.loads(done.stdout)


def test_checkov_read_every_case(report: dict) -> None:
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] > 10 * len(_helm.CASES)


@pytest.mark.parametrize("case", sorted(_helm.CASES))
def test_checkov_finds_nothing_unaccepted(case: str, report: dict) -> None:
    objects = _helm.render_case(case)
    findings = []
    for failed in report["results"]["failed_checks"]:
        if Path(failed["file_path"]).stem != case:
            continue
        kind, _namespace, name = failed["resource"].split(".", 2)
        # A pod's resource name carries its labels after the name: "web.app.kubernetes.io/..."
        ident = f"{kind}/{name.split('.', 1)[0]}"
        if (case, failed["check_id"]) in ACCEPTED_IN_CASE:
            continue
        if _acceptance(failed["check_id"], ident, objects) is None:
            findings.append(f"{failed['check_id']} {ident}: {failed['check_name']}")
    assert not findings, "checkov findings not accepted:\n" + "\n".join(findings)


def test_every_acceptance_is_still_needed(report: dict) -> None:
    """An exception whose finding no longer occurs is removed, not kept "just in case"."""
    used = set()
    for failed in report["results"]["failed_checks"]:
        case = Path(failed["file_path"]).stem
        kind, _namespace, name = failed["resource"].split(".", 2)
        ident = f"{kind}/{name.split('.', 1)[0]}"
        used.add(_acceptance(failed["check_id"], ident, _helm.render_case(case)))
    assert set(ACCEPTED) - used == set()
