"""Process set-up shared by the benchmarks: tuned glibc allocator, no network."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

# Without these, 2-core machines stall for seconds in malloc and throughput drops several-fold
# (see docs/benchmarks.md, "Allocator stalls on small machines").
TUNED_ALLOCATOR = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TRIM_THRESHOLD_": "4294967296",
}


def prepare_process() -> None:
    """Re-executes the script with the tuned allocator unless it is set (glibc reads it at start-up only)."""
    if "MALLOC_ARENA_MAX" not in os.environ:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **TUNED_ALLOCATOR})
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def cpu_model() -> str:
    """The CPU's model name (`/proc/cpuinfo`), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
