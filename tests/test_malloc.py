"""One malloc arena for the engine (engine/malloc.py): the model thread allocates from the main
arena, so memory a freed activation cache gave back is reused instead of faulted in afresh.

Ground truth: glibc's own ``malloc_info``, which lists one ``<heap>`` per arena, read in a
fresh process (the arena limit applies to threads that have not allocated yet).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from engine.launcher import REPO_ROOT

SCRIPT = textwrap.dedent(
    """
    import ctypes, os, sys, tempfile, threading
    if sys.argv[1] == "engine":
        from engine.model_thread import ModelThread
        worker = ModelThread()
        run = worker.run
    else:
        def run(f):
            t = threading.Thread(target=f); t.start(); t.join()
    kept = []
    run(lambda: kept.append(bytearray(1 << 20)))  # a thread's allocation, kept alive
    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p  # a FILE *, not an int
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    path = tempfile.mktemp()
    fp = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    print(open(path).read().count("<heap nr="))
    os.unlink(path)
    """
)


def heaps(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=REPO_ROOT, env={"PATH": ""},
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_info")
def test_the_model_thread_allocates_from_the_main_arena():
    assert heaps("thread") >= 2  # a plain thread: an arena of its own (glibc's default)
    assert heaps("engine") == 1  # the engine's model thread: the main arena
