"""One malloc arena for the engine's process (glibc), so the model thread reuses freed memory.

glibc gives each thread that allocates its own arena after the first; the engine runs all its
torch work on one thread (engine/model_thread.py), so every activation cache and logits tensor
comes from that thread's arena. Measured on this VM (bench/RESULTS.md, gpt2-small shape, 1000
tokens, the same ``run_with_cache`` three times): on the main thread 3.3-4.3 s, 0.7-1.7 s of it
in the kernel; on one long-lived worker thread **3.4-20 s, 0.8-16 s in the kernel**, for the
same ~0.6-1.2 M page faults. With ``M_ARENA_MAX`` at 1 the worker allocates from the main
arena and runs as fast as the main thread (3.3 s, 0.75 s in the kernel). The engine's threads
are Python threads under one GIL, so one arena costs no contention worth measuring.

``mallopt(M_ARENA_MAX, 1)`` applies to threads that have not allocated yet: it is called
before the model thread starts. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

M_ARENA_MAX = -8  # glibc's <malloc.h>


@cache
def one_arena() -> bool:
    """Set glibc's arena limit to 1 for this process (once); whether it was set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_ARENA_MAX, 1) == 1
