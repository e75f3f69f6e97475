"""deploy/helmfile.yaml.gotmpl, rendered for each environment with Helm's own template
engine (helmfile's templates are Go templates with the same functions; the one object
they use that Helm lacks, `.Environment.Name`, is handed in as a value): the releases each
environment installs, every chart pinned, every path and values file present, and the
chart rendering with the values each environment gives it."""

from __future__ import annotations

import re
from pathlib import Path

import helm_python as helm
import pytest
import yaml

from tests.deploy import _helm

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
HELMFILE = DEPLOY / "helmfile.yaml.gotmpl"
PINNED = re.compile(r"^v?\d+\.\d+\.\d+$")
PREREQUISITES = {
    "cert-manager",
    "ingress-nginx",
    "kube-prometheus-stack",
    "gpu-operator",
    "keda",
    "cloudnative-pg",
}


def _environments() -> dict[str, list[str]]:
    header = HELMFILE.read_text().split("\n---\n", 1)[0]
    envs = yaml.safe_load(header)["environments"]
    return {name: spec.get("values", []) for name, spec in envs.items()}


def render_helmfile(environment: str, tmp: Path) -> list[dict]:
    values: dict = {}
    for name in _environments()[environment]:
        values.update(yaml.safe_load((DEPLOY / name).read_text()))
    chart = tmp / "helmfile-as-chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: helmfile\nversion: 0.0.0\n")
    text = HELMFILE.read_text().replace(".Environment.Name", ".Values.helmfileEnvironment")
    (chart / "templates" / "helmfile.yaml").write_text(text)
    rendered = helm.Chart.load(chart).render(
        {**values, "helmfileEnvironment": environment}, name="x", namespace="x"
    )
    return [doc for doc in yaml.safe_load_all(rendered["helmfile/templates/helmfile.yaml"]) if doc]


def test_three_environments_with_their_values_files() -> None:
    environments = _environments()
    assert set(environments) == {"init", "dev", "prod"}
    for files in environments.values():
        for name in files:
            assert (DEPLOY / name).is_file(), name


def test_init_installs_the_prerequisites_pinned(tmp_path: Path) -> None:
    _, spec = render_helmfile("init", tmp_path)
    repositories = {r["name"] for r in spec["repositories"]}
    releases = {r["name"]: r for r in spec["releases"]}
    assert set(releases) == PREREQUISITES
    for name, release in releases.items():
        assert PINNED.match(str(release["version"])), f"{name} is not pinned: {release}"
        assert release["chart"].split("/")[0] in repositories, name
        assert release.get("namespace"), name


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_hearth_releases_render(environment: str, tmp_path: Path) -> None:
    _, spec = render_helmfile(environment, tmp_path)
    [release] = spec["releases"]
    assert release["name"] == "hearth" and release["namespace"] == "hearth"
    chart = (DEPLOY / release["chart"]).resolve()
    assert chart == _helm.CHART
    files = [str((DEPLOY / name).resolve()) for name in release["values"]]
    assert all(Path(f).is_file() for f in files), files
    objects = _helm.render(tuple(files))
    assert any(o["kind"] == "Deployment" and o["metadata"]["name"] == "hearth-web" for o in objects)
