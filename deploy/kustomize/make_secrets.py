#!/usr/bin/env python3
"""Write the env files an overlay's secretGenerator reads: one per Secret the base needs
(base/secrets.json), with new random values; existing files are kept, so running it again
never changes a password the cluster already uses. The files are gitignored.

    python deploy/kustomize/make_secrets.py deploy/kustomize/overlays/minikube
"""

from __future__ import annotations

import json
import secrets
import string
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent / "base"
_ALPHABET = string.ascii_letters + string.digits


def make(overlay: Path) -> list[Path]:
    shapes = json.loads((BASE / "secrets.json").read_text())
    folder = overlay / "secrets"
    folder.mkdir(exist_ok=True)
    written = []
    for name, shape in shapes.items():
        path = folder / f"{name}.env"
        if path.exists():
            continue
        generated = {
            key: "".join(secrets.choice(_ALPHABET) for _ in range(40))
            for key, template in shape.items()
            if template == "{random}"
        }
        lines = [
            f"{key}={generated.get(key) or template.format(**generated)}"
            for key, template in shape.items()
        ]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for path in make(Path(sys.argv[1])):
        print(f"wrote {path}")
