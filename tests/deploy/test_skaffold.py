"""deploy/skaffold.yaml (no Skaffold binary or cluster here): a Config of Skaffold's v4
schema whose every path exists, whose build script is executable, whose artifact is the
image the Minikube overlay runs, and whose port-forward names a Service of that overlay."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tests.deploy import _helm
from tests.deploy._kustomize import KUSTOMIZE, build

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_skaffold_points_at_what_exists(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "skaffold.yaml").read_text())
    assert config["apiVersion"].startswith("skaffold/v4") and config["kind"] == "Config"
    [artifact] = config["build"]["artifacts"]
    context = (DEPLOY / artifact["context"]).resolve()
    script = context / artifact["custom"]["buildCommand"]
    assert script.is_file() and os.access(script, os.X_OK), script
    for path in artifact["custom"]["dependencies"]["paths"]:
        assert (context / path).exists(), path
    assert artifact["image"] == _helm.chart().values["image"]["repository"]

    [overlay] = config["manifests"]["kustomize"]["paths"]
    assert (DEPLOY / overlay).parent == KUSTOMIZE / "overlays"
    objects = build((DEPLOY / overlay).name, tmp_path)
    images = {
        c["image"].rsplit(":", 1)[0]
        for o in objects
        for c in o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
    }
    assert artifact["image"] in images
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    for forward in config["portForward"]:
        assert forward["resourceName"] in services


def test_the_build_script_is_valid_shell() -> None:
    script = DEPLOY / "image" / "skaffold-build.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
