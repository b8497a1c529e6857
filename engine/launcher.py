"""Start an engine process and wait for it to answer (used by the app and the tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine.client import EngineClient, EngineUnavailable
from engine.schemas.model import Health

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_engine(
    *,
    port: int,
    model: str | None = None,
    cache_dir: str | None = None,
    token: str | None = None,
    log_path: Path | None = None,
) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "engine", "--host", "127.0.0.1", "--port", str(port)]
    for flag, value in (("--model", model), ("--cache-dir", cache_dir), ("--token", token)):
        if value:
            cmd += [flag, value]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        cmd, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy()
    )


def wait_until_healthy(
    client: EngineClient,
    *,
    timeout: float = 120.0,
    proc: subprocess.Popen | None = None,
    on_wait: Callable[[float], None] | None = None,
) -> Health:
    """Poll ``/health`` until it answers; fail early if `proc` exits."""
    t0 = time.monotonic()
    while True:
        try:
            return client.health(timeout=2.0)
        except EngineUnavailable:
            pass
        if proc is not None and proc.poll() is not None:
            raise EngineUnavailable(
                f"The engine process exited with code {proc.returncode} while starting."
            )
        elapsed = time.monotonic() - t0
        if elapsed > timeout:
            raise EngineUnavailable(f"The engine did not start within {timeout:.0f} s.")
        if on_wait:
            on_wait(elapsed)
        time.sleep(0.25)
