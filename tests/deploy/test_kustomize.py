"""deploy/kustomize: the base is what render_base.py makes from the chart now (a drift
fails here), and each overlay builds with the real `kubectl kustomize` into objects the
Kubernetes API accepts, whose Secret references all resolve, with no secret committed."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy._kustomize import KUSTOMIZE, build, script

OVERLAYS = sorted(p.name for p in (KUSTOMIZE / "overlays").iterdir())


def test_the_committed_base_is_the_chart_rendered_now(tmp_path: Path) -> None:
    script("render_base.py", "--out", str(tmp_path))
    for path in sorted(tmp_path.iterdir()):
        committed = KUSTOMIZE / "base" / path.name
        assert committed.is_file(), f"base/{path.name} is missing"
        assert committed.read_text() == path.read_text(), (
            f"base/{path.name} differs from the chart: run python deploy/kustomize/render_base.py"
        )
    assert {p.name for p in (KUSTOMIZE / "base").iterdir()} == {p.name for p in tmp_path.iterdir()}


def test_the_base_holds_no_secret() -> None:
    kinds = {
        o["kind"] for o in yaml.safe_load_all((KUSTOMIZE / "base" / "hearth.yaml").read_text())
    }
    assert "Secret" not in kinds
    shapes = json.loads((KUSTOMIZE / "base" / "secrets.json").read_text())
    for name, shape in shapes.items():
        for key, template in shape.items():
            assert template == "{random}" or "{" in template, f"{name}.{key} holds a value"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_valid_objects(overlay: str, tmp_path: Path) -> None:
    objects = build(overlay, tmp_path)
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        assert obj["metadata"].get("namespace") == "hearth", name
        for version in ("1.30", "1.33"):
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{name} invalid for {version}: {e.message}")
    secrets = {
        (o["metadata"]["name"], key)
        for o in objects
        if o["kind"] == "Secret"
        for key in o.get("data", {})
    }
    for obj in objects:
        template = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in template.get("containers", []) + template.get("initContainers", []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert (ref["name"], ref["key"]) in secrets, (
                        f"{obj['kind']}/{obj['metadata']['name']}: {ref} is not generated"
                    )
