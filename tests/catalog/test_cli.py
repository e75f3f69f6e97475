"""`hearth catalog ...` run as real processes against a real PostgreSQL: add, list (table and
JSON), remove, and readable refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEARTH = [sys.executable, "-m", "hearth"]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HEARTH, "catalog", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_add_list_remove(database_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env |= {"HEARTH_DATABASE_URL": database_url, "HEARTH_DATA_DIR": str(tmp_path)}

    def ok(*args: str) -> str:
        result = cli(env, *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "nothing in the catalog yet" in ok("models", "list")
    ok(
        "hardware",
        "add",
        "1xL4",
        "--accelerator",
        "L4",
        "--count",
        "1",
        "--on-demand",
        "0.80",
        "--spot",
        "0.35",
    )
    ok("hardware", "add", "cpu-2core", "--cpu-cores", "2", "--memory-gb", "8")
    ok(
        "models",
        "add",
        "qwen2.5-7b",
        "--family",
        "Qwen2.5",
        "--parameters",
        "7.6B",
        "--quantization",
        "AWQ",
    )
    assert "added deployment qwen-l4" in ok(
        "deployments", "add", "qwen-l4", "--model", "qwen2.5-7b", "--hardware", "1xL4",
        "--engine", "vllm", "--replicas", "2",
    )  # fmt: skip

    table = ok("deployments", "list").splitlines()
    assert table[0].split() == [
        "NAME",
        "MODEL",
        "HARDWARE",
        "ENGINE",
        "REPLICAS",
        "ON-DEMAND/H",
        "SOURCE",
    ]
    assert table[1].split() == ["qwen-l4", "qwen2.5-7b", "1xL4", "vllm", "2", "1.6", "manual"]
    (model,) = json.loads(ok("models", "list", "--json"))
    assert (model["name"], model["parameters"], model["quantization"]) == (
        "qwen2.5-7b",
        7_600_000_000,
        "AWQ",
    )
    hardware = {h["name"]: h for h in json.loads(ok("hardware", "list", "--json"))}
    assert (hardware["1xL4"]["accelerator_count"], hardware["1xL4"]["spot_per_hour"]) == (1, 0.35)
    assert (hardware["cpu-2core"]["accelerator"], hardware["cpu-2core"]["accelerator_count"]) == (
        None,
        0,
    )
    assert ok("hardware", "list").splitlines()[1].split()[:2] == ["1xL4", "1xL4"]

    in_use = cli(env, "models", "remove", "qwen2.5-7b")
    assert in_use.returncode == 1 and "used by the deployment qwen-l4" in in_use.stderr
    taken = cli(env, "hardware", "add", "1xL4")
    assert taken.returncode == 1 and "exists" in taken.stderr
    bad = cli(env, "models", "add", "has space")
    assert bad.returncode == 1 and "name" in bad.stderr and "Traceback" not in bad.stderr
    unknown = cli(env, "deployments", "add", "x", "--model", "nope", "--engine", "vllm")
    assert unknown.returncode == 1 and "no model 'nope'" in unknown.stderr
    assert (
        cli(env, "models", "add", "m", "--parameters", "lots").returncode == 2
    )  # click's usage error

    assert "removed deployment qwen-l4" in ok("deployments", "remove", "qwen-l4")
    ok("models", "remove", "qwen2.5-7b")
    ok("hardware", "remove", "1xL4")
    assert json.loads(ok("models", "list", "--json")) == []
    assert [h["name"] for h in json.loads(ok("hardware", "list", "--json"))] == ["cpu-2core"]
    gone = cli(env, "hardware", "remove", "1xL4")
    assert gone.returncode == 1 and "no hardware profile '1xL4'" in gone.stderr
