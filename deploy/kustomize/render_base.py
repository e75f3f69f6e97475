#!/usr/bin/env python3
"""Render deploy/kustomize/base from the Helm chart (Helm's own engine, in-process:
helm-python-sdk), for those who deploy with Kustomize instead of Helm.

What Helm does at install time that a plain manifest cannot, handled here:
- Secrets the chart would generate (and keep across upgrades with `lookup`) are left out
  of the base, which must hold no secret: each overlay makes them with a secretGenerator
  from env files that `make_secrets.py` writes (never committed). Their shapes (names,
  keys, and how a URL embeds a password) go to base/secrets.json for it.
- Helm hooks: the migrations Job is left out (every `hearth serve` applies migrations at
  start, under an advisory lock); `helm test` pods too.
- `app.kubernetes.io/managed-by` says Kustomize.

    python deploy/kustomize/render_base.py [--out DIR]
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from pathlib import Path

import helm_python as helm
import yaml

HERE = Path(__file__).resolve().parent
CHART = HERE.parent / "helm" / "hearth"
RELEASE = NAMESPACE = "hearth"
_GENERATED = re.compile(r"[A-Za-z0-9]{40}")  # the chart's randAlphaNum 40


def render() -> tuple[list[dict], dict[str, dict[str, str]]]:
    """The base's objects, and the shapes of the Secrets left out of it."""
    values = helm.values_from_yaml((HERE / "values.yaml").read_text())
    manifests = helm.Chart.load(CHART).render(
        values, name=RELEASE, namespace=NAMESPACE, is_install=True
    )
    objects, secrets = [], {}
    for path, text in sorted(manifests.items()):
        if not path.endswith(".yaml"):
            continue
        for obj in yaml.safe_load_all(text):
            if not obj:
                continue
            if "helm.sh/hook" in obj["metadata"].get("annotations", {}):
                continue
            if obj["kind"] == "Secret":
                secrets[obj["metadata"]["name"]] = _shape(obj)
                continue
            _relabel(obj)
            objects.append(obj)
    objects.sort(key=lambda o: (o["kind"], o["metadata"]["name"]))
    return objects, secrets


def _shape(secret: dict) -> dict[str, str]:
    """key → template: a generated value is `{random}`, a value that embeds another key's
    generated value names it (`postgresql://hearth:{password}@...`)."""
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    generated = {k: v for k, v in values.items() if _GENERATED.fullmatch(v)}
    shape = {}
    for key, value in values.items():
        if key in generated:
            shape[key] = "{random}"
            continue
        for other, secret_value in generated.items():
            value = value.replace(secret_value, "{" + other + "}")
        if _GENERATED.search(value):
            raise SystemExit(f"Secret {secret['metadata']['name']}.{key}: a value not modelled")
        shape[key] = value
    return shape


def _relabel(obj: dict) -> None:
    for meta in _metadatas(obj):
        labels = meta.get("labels") or {}
        if labels.get("app.kubernetes.io/managed-by") == "Helm":
            labels["app.kubernetes.io/managed-by"] = "Kustomize"


def _metadatas(obj: dict):  # type: ignore[no-untyped-def]
    yield obj["metadata"]
    template = obj.get("spec", {}).get("template")
    if isinstance(template, dict) and "metadata" in template:
        yield template["metadata"]


def write(out: Path) -> None:
    objects, secrets = render()
    out.mkdir(parents=True, exist_ok=True)
    header = "# Rendered from deploy/helm/hearth by deploy/kustomize/render_base.py: do not edit.\n"
    body = yaml.safe_dump_all(objects, sort_keys=True, default_flow_style=False)
    (out / "hearth.yaml").write_text(header + body)
    (out / "secrets.json").write_text(json.dumps(secrets, indent=2, sort_keys=True) + "\n")
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": ["hearth.yaml"],
    }
    (out / "kustomization.yaml").write_text(header + yaml.safe_dump(kustomization))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "base")
    write(parser.parse_args().out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
