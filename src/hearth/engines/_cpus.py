"""How many threads the CPU engines generate with by default: one per physical core this
process may run on, capped by its cgroup's CPU limit.

Measured on a 2-core machine (bench/engine_concurrency.py, bench/RESULTS.md): two threads
against one gave 101 against 75 tokens/s for one stream and 166 against 106 for eight.
Hyperthreads are not counted (llama.cpp's own default, cpu_get_num_math, does the same: two
threads on one core's siblings share its vector units and slow each other), and a
container's limit is (a pod limited to 4 CPUs on a 64-core node running 32 threads would
spend its time throttled).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_CPU = Path("/sys/devices/system/cpu")


def default_threads() -> int:
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = _physical_cores(cpus) or len(cpus)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _physical_cores(cpus: list[int]) -> int:
    """Distinct (package, core) pairs among `cpus`; 0 where the topology cannot be read."""
    seen = set()
    for cpu in cpus:
        topology = _CPU / f"cpu{cpu}" / "topology"
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return 0
        seen.add((package, core))
    return len(seen)
