"""Every benchmark's `--help` works with Hearth installed without its dev extra, and lists
the options that say where its servers listen and where its peers are installed.

Without the dev extra is simulated in this venv: in the subprocess, every module that no
distribution of Hearth's base dependencies (followed transitively, with the extras they ask
for and their markers) provides is made unimportable, the dev extra's httpx, openai and
fpdf among them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

# Each benchmark, and what its --help must offer: servers' ports, peers' venvs.
OPTIONS = {
    "gateway_speed.py": ["--port-base", "--litellm-venv"],
    "webapp.py": ["--port-base", "--owui-venv"],
    "webapp_weight.py": ["--port-base", "--owui-venv"],
    "ingest_speed.py": ["--port-base", "--owui-venv"],
    "core_speed.py": ["--port-base", "--llama-python"],
    "engine_concurrency.py": ["--port-base", "--llama-python"],
    "lab_client.py": ["--port-base", "--guidellm", "--vllm"],
    "search_speed.py": [],  # no server, no peer: all in one process
    "retrieval_quality.py": [],
    "lab_models.py": ["--port-base"],
}

# Run in the subprocess: block what the base install would not have, then the script.
_BOOTSTRAP = """
import importlib.metadata as md, re, runpy, sys
from packaging.requirements import Requirement

def key(name):
    return re.sub(r"[-_.]+", "-", name).lower()

def closure(name, extras, seen):
    # The distributions `name` with `extras` needs, markers evaluated as pip would.
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        return
    for extra in ("", *extras):
        if (key(name), extra) in seen:
            continue
        seen.add((key(name), extra))
        for line in dist.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is None and extra or marker and not marker.evaluate({"extra": extra}):
                continue
            closure(requirement.name, requirement.extras, seen)

seen = set()
closure("hearth", (), seen)
base = {name for name, _ in seen}
blocked = {
    module
    for module, dists in md.packages_distributions().items()
    if not any(key(d) in base for d in dists)
}

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is not installed without the dev extra")
        return None

sys.meta_path.insert(0, Blocker())
script = sys.argv[1]
sys.argv = [script, "--help"]
sys.path.insert(0, str(__import__("pathlib").Path(script).parent))
assert "httpx" in blocked, "the simulation blocks nothing of the dev extra"
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.parametrize("script", sorted(OPTIONS))
def test_help_without_the_dev_extra(script: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP, str(BENCH / script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for option in OPTIONS[script]:
        assert option in done.stdout, (script, option)
    if "--port-base" in OPTIONS[script]:
        assert "free port the OS picks" in done.stdout  # the default, documented


def test_every_benchmark_is_listed() -> None:
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(OPTIONS)
