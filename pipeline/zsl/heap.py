"""Stage two keeps the memory it frees, so its steps do not pay for page faults.

A stage-two step allocates and frees the same few megabytes of activations and gradients every time. glibc's
``malloc`` serves blocks above its mmap threshold (128 KiB, adapted up to the largest block freed so far) with
fresh ``mmap`` pages and returns freed heap tops over its trim threshold to the kernel, so most of those
megabytes come back as new pages that fault in, zero-filled, on first touch: ~1,850 faults (7.4 MB) an epoch in
``bench/stage2_cost.py``'s SMIE run, about 4 ms of kernel time on the project's VM (4.5 ms per 8 MB measured),
an eighth of the epoch, spent on one core while the second waits. :func:`keep_freed_memory` raises both thresholds with ``mallopt``
(the documented ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` tunables, set from inside the process),
so freed blocks are reused: the run's faults drop to start-up's. Values and results are untouched; the process
keeps up to ``TRIM_BYTES`` of freed memory for reuse instead of handing it back.

Stage one does not call it: a GCN's blocks are hundreds of megabytes, and keeping them fragmented the heap
(2.6x the peak memory of an extraction); docs/performance.md gives the process-start setting that suits it.

``SMIE_HEAP=system`` in the environment leaves the allocator alone. Other C libraries (musl, macOS, Windows)
are left alone too. :func:`heap_mode` says what a process does; ``metrics.json`` records it
(``compute.heap``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from smie.features.store import SmieError

MODES = ("keep", "system")
MMAP_BYTES = 256 << 20
"""Blocks below this come from the reusable heap (glibc's default: 128 KiB, adaptive up to 32 MiB)."""
TRIM_BYTES = 1 << 30
"""Free memory at the heap's top is returned to the kernel only beyond this much."""
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_state: dict[str, str] = {}


def heap_mode() -> str:
    """``keep`` when this process has raised glibc's thresholds, else ``system``."""
    return _state.get("mode", "system")


def keep_freed_memory() -> str:
    """Raise glibc's mmap and trim thresholds once per process (unless ``SMIE_HEAP=system`` or not glibc);
    return :func:`heap_mode`."""
    if "mode" in _state:
        return _state["mode"]
    choice = os.environ.get("SMIE_HEAP", "keep").strip().lower() or "keep"
    if choice not in MODES:
        raise SmieError(f"SMIE_HEAP must be one of {', '.join(MODES)}, got {choice!r}")
    _state["mode"] = "keep" if choice == "keep" and _mallopt(_M_MMAP_THRESHOLD, MMAP_BYTES) \
        and _mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES) else "system"
    return _state["mode"]


def _mallopt(param: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        if not libc.gnu_get_libc_version():
            return False
        return libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1
    except (OSError, AttributeError):
        return False
